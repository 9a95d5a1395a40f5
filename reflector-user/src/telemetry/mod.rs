//! Telemetry: the counters of both paths read as one [`Snapshot`], rendered as Prometheus
//! metrics ([`metrics`]) and served over HTTP with health and readiness checks ([`http`]).

pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod snapshot;

use std::sync::{
    Arc, PoisonError,
    atomic::{AtomicBool, Ordering::Relaxed},
};

use aya::maps::{MapData, MapError, PerCpuArray};
use log::warn;
use reflector_common::Counter;

pub(crate) use snapshot::{InterfaceMode, Snapshot};

use self::snapshot::{KernelSnapshot, SpliceSnapshot};
use crate::{kernel::Readers, splice::SpliceCounters};

/// What the daemon shares with everything that reports on it: the counters of both paths,
/// how each interface is reflected, and whether the daemon is ready.
pub struct Telemetry {
    splice: Arc<SpliceCounters>,
    kernel: Option<Readers>,
    interfaces: Vec<InterfaceMode>,
    ready: AtomicBool,
    /// Whether a failed read of the kernel counters was already logged.
    read_failed: AtomicBool,
}

impl Telemetry {
    /// Telemetry over the userspace path's `splice` counters, the kernel path's maps
    /// (when the program is loaded), and the mode of each interface. Not ready until
    /// [`Telemetry::set_ready`].
    #[must_use]
    pub fn new(
        splice: Arc<SpliceCounters>,
        kernel: Option<Readers>,
        interfaces: Vec<InterfaceMode>,
    ) -> Self {
        Self {
            splice,
            kernel,
            interfaces,
            ready: AtomicBool::new(false),
            read_failed: AtomicBool::new(false),
        }
    }

    /// Marks every interface's mode as active.
    pub fn set_ready(&self) {
        self.ready.store(true, Relaxed);
    }

    /// Whether every interface has its mode active.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// Every counter now. The kernel counters are summed over CPUs; if they cannot be read,
    /// the kernel section is left out (and the failure logged once).
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let kernel = self.kernel.as_ref().and_then(|readers| {
            let kernel = KernelSnapshot::read(|index| read_counter(&readers.stats, index.get()))
                .and_then(|mut kernel| {
                    let slots = readers.slots.lock().unwrap_or_else(PoisonError::into_inner);
                    kernel.maps = KernelSnapshot::read_maps(&slots, |index| {
                        read_counter(&readers.map_counters, index.get())
                    })?;
                    kernel.reply_paths = KernelSnapshot::reply_paths(&slots);
                    // One system call per entry: the kernel keeps no count of an LRU table's
                    // entries. Bounded by --flow-table-size.
                    kernel.flows_active = readers.flows.keys().flatten().count() as u64;
                    // Created was read first: a flow created since counts as active only,
                    // never as evicted.
                    kernel.flows_evicted = kernel.flows_created.saturating_sub(kernel.flows_active);
                    Ok(kernel)
                });
            match kernel {
                Ok(kernel) => Some(kernel),
                Err(error) => {
                    if !self.read_failed.swap(true, Relaxed) {
                        warn!(
                            "metrics: reading the kernel statistics failed: {}",
                            crate::error_text::render(&error)
                        );
                    }
                    None
                }
            }
        });
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            interfaces: self.interfaces.clone(),
            ready: self.is_ready(),
            kernel,
            splice: SpliceSnapshot::from(&*self.splice),
        }
    }
}

/// The counter at `index` summed over every CPU.
fn read_counter(stats: &PerCpuArray<MapData, Counter>, index: u32) -> Result<Counter, MapError> {
    let values = stats.get(&index, 0)?;
    Ok(values
        .iter()
        .fold(Counter::default(), |sum, value| Counter {
            packets: sum.packets.wrapping_add(value.packets),
            bytes: sum.bytes.wrapping_add(value.bytes),
        }))
}
