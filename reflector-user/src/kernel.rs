//! The kernel path: loads the program, fills its maps and attaches it to interfaces.
//! Dropping a [`KernelPath`] detaches everything: every attachment is an fd-based link
//! (XDP links, TCX on kernels >= 6.6), so nothing stays behind even if the process dies.

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::{ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode, tc},
};
use log::{debug, warn};
use reflector_common::{
    Counter, PortEntry,
    maps::{FLOWS, LOCAL_ADDRS, PORTS, STATS, programs},
};
use thiserror::Error;

use crate::{interfaces::Interface, mode::Attach, portmap::PortMap};

/// The kernel path could not be set up.
#[derive(Debug, Error)]
pub enum KernelError {
    /// The object did not load (no BPF, no permission, verifier refusal, ...).
    #[error("loading the kernel program failed")]
    Load(#[source] EbpfError),
    /// A program did not load into the kernel.
    #[error("loading program {name} failed")]
    Program {
        /// The program.
        name: &'static str,
        /// Why.
        #[source]
        source: ProgramError,
    },
    /// The object lacks a map or program this build expects.
    #[error("the kernel object has no {0}: it does not match this reflector build")]
    Missing(&'static str),
    /// A map update failed.
    #[error("writing map {name} failed")]
    Map {
        /// The map.
        name: &'static str,
        /// Why.
        #[source]
        source: MapError,
    },
    /// Attaching to an interface failed.
    #[error("attaching {attach} to {interface} failed")]
    Attach {
        /// The interface.
        interface: String,
        /// How.
        attach: Attach,
        /// Why.
        #[source]
        source: ProgramError,
    },
}

/// Where the program is attached.
#[derive(Debug)]
enum Link {
    Xdp(aya::programs::xdp::XdpLinkId),
    Tc(aya::programs::tc::SchedClassifierLinkId),
}

/// The loaded kernel program and its attachments.
pub struct KernelPath {
    ebpf: Ebpf,
    links: Vec<(Interface, Attach, Link)>,
}

/// Options for loading the kernel program.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Room in the flow table.
    pub flow_table_size: u32,
    /// Whether the program sends its debug events (one per new flow) to the daemon's log.
    pub debug_events: bool,
}

impl KernelPath {
    /// Loads `object` into the kernel (verifying both programs) without attaching it.
    ///
    /// # Errors
    /// [`KernelError::Load`] or [`KernelError::Program`] when the kernel refuses.
    pub fn load(object: &[u8], options: LoadOptions) -> Result<Self, KernelError> {
        // aya-log checks this level in the program before it writes an event; 0 silences
        // the program entirely, so no per-flow work is done unless debug logging is on.
        let level: u8 = if options.debug_events { 0xff } else { 0 };
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(FLOWS, options.flow_table_size)
            .override_global("AYA_LOG_LEVEL", &level, false)
            .load(object)
            .map_err(KernelError::Load)?;
        if options.debug_events {
            spawn_event_logger(&mut ebpf);
        }
        let xdp: &mut Xdp = program(&mut ebpf, programs::XDP)?;
        xdp.load().map_err(|source| KernelError::Program {
            name: programs::XDP,
            source,
        })?;
        let tc: &mut SchedClassifier = program(&mut ebpf, programs::TC)?;
        tc.load().map_err(|source| KernelError::Program {
            name: programs::TC,
            source,
        })?;
        Ok(Self {
            ebpf,
            links: Vec::new(),
        })
    }

    /// Writes the port table for `maps`, clearing entries no map needs any more.
    ///
    /// # Errors
    /// [`KernelError::Map`] when an update fails.
    pub fn set_port_maps(&mut self, old: &[PortMap], new: &[PortMap]) -> Result<(), KernelError> {
        let map_error = |source| KernelError::Map {
            name: PORTS,
            source,
        };
        let mut ports: Array<&mut MapData, PortEntry> = Array::try_from(
            self.ebpf
                .map_mut(PORTS)
                .ok_or(KernelError::Missing(PORTS))?,
        )
        .map_err(map_error)?;
        let table = crate::portmap::port_table(new);
        for index in crate::portmap::port_table(old).keys() {
            if !table.contains_key(index) {
                ports
                    .set(*index, PortEntry::default(), 0)
                    .map_err(map_error)?;
            }
        }
        for (index, entry) in &table {
            ports.set(*index, entry, 0).map_err(map_error)?;
        }
        Ok(())
    }

    /// Takes the local-address map out, for the task that keeps it current.
    ///
    /// # Errors
    /// [`KernelError::Missing`] when the object has no such map (or it was taken already).
    pub fn take_local_addrs(&mut self) -> Result<HashMap<MapData, [u8; 16], u32>, KernelError> {
        let map = self
            .ebpf
            .take_map(LOCAL_ADDRS)
            .ok_or(KernelError::Missing(LOCAL_ADDRS))?;
        HashMap::try_from(map).map_err(|source| KernelError::Map {
            name: LOCAL_ADDRS,
            source,
        })
    }

    /// Takes the per-CPU statistics map out, for reading the counters (metrics).
    ///
    /// # Errors
    /// [`KernelError::Missing`] when the object has no such map (or it was taken already).
    pub fn take_stats(&mut self) -> Result<PerCpuArray<MapData, Counter>, KernelError> {
        let map = self
            .ebpf
            .take_map(STATS)
            .ok_or(KernelError::Missing(STATS))?;
        PerCpuArray::try_from(map).map_err(|source| KernelError::Map {
            name: STATS,
            source,
        })
    }

    /// Attaches the program to `interface` in the way `attach` says.
    ///
    /// # Errors
    /// [`KernelError::Attach`] with the kernel's reason.
    pub fn attach(&mut self, interface: &Interface, attach: Attach) -> Result<(), KernelError> {
        let attach_error = |source| KernelError::Attach {
            interface: interface.name.clone(),
            attach,
            source,
        };
        let link = match attach {
            Attach::XdpNative | Attach::XdpGeneric => {
                let mode = if attach == Attach::XdpNative {
                    XdpMode::Driver
                } else {
                    XdpMode::Skb
                };
                let xdp: &mut Xdp = program(&mut self.ebpf, programs::XDP)?;
                Link::Xdp(xdp.attach(&interface.name, mode).map_err(attach_error)?)
            }
            Attach::Tc => {
                // TCX (kernel >= 6.6) needs no qdisc; older kernels attach through clsact,
                // which is left in place on exit (it is harmless and may be shared).
                if let Err(error) = tc::qdisc_add_clsact(&interface.name) {
                    debug!(
                        "clsact on {}: {error} (fine with TCX or when present)",
                        interface.name
                    );
                }
                let tc: &mut SchedClassifier = program(&mut self.ebpf, programs::TC)?;
                Link::Tc(
                    tc.attach(&interface.name, TcAttachType::Ingress)
                        .map_err(attach_error)?,
                )
            }
        };
        self.links.push((interface.clone(), attach, link));
        Ok(())
    }

    /// The interfaces attached so far and how.
    pub fn attached(&self) -> impl Iterator<Item = (&Interface, Attach)> {
        self.links
            .iter()
            .map(|(interface, attach, _)| (interface, *attach))
    }

    /// Detaches from every interface, logging any failure; the links' fds close anyway
    /// when the program is dropped.
    pub fn detach_all(&mut self) {
        for (interface, attach, link) in self.links.drain(..) {
            let result = match link {
                Link::Xdp(id) => program::<Xdp>(&mut self.ebpf, programs::XDP)
                    .and_then(|xdp| xdp.detach(id).map_err(program_error(programs::XDP))),
                Link::Tc(id) => program::<SchedClassifier>(&mut self.ebpf, programs::TC)
                    .and_then(|tc| tc.detach(id).map_err(program_error(programs::TC))),
            };
            match result {
                Ok(()) => debug!("detached {attach} from {}", interface.name),
                Err(error) => warn!("detaching {attach} from {}: {error}", interface.name),
            }
        }
    }

    /// The loaded object, for reading maps (statistics) and tests.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

impl Drop for KernelPath {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn program_error(name: &'static str) -> impl Fn(ProgramError) -> KernelError {
    move |source| KernelError::Program { name, source }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, KernelError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(KernelError::Missing(name))?
        .try_into()
        .map_err(program_error(name))
}

/// Forwards the program's aya-log events to this process's logger.
fn spawn_event_logger(ebpf: &mut Ebpf) {
    let logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(logger) => logger,
        Err(error) => {
            warn!("kernel program events will not be logged: {error}");
            return;
        }
    };
    // SAFETY: the logger owns its ring buffer's fd and keeps it open, unchanged, for as
    // long as it lives, which is as long as the `AsyncFd` that owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(logger, tokio::io::Interest::READABLE)
    };
    let Ok(mut logger) = registered else {
        warn!("kernel program events will not be logged: cannot poll the event ring");
        return;
    };
    tokio::spawn(async move {
        loop {
            let Ok(mut guard) = logger.readable_mut().await else {
                return;
            };
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
}
