//! The kernel path: loads the program, fills its maps and attaches it to interfaces.
//! Dropping a [`KernelPath`] detaches everything: every attachment is an fd-based link
//! (XDP links, TCX on kernels >= 6.6), so nothing stays behind even if the process dies;
//! before 6.6, TC attaches through a clsact qdisc, removed on detach if it was added here.
//! The exception is a pinned path ([`KernelPath::pinned`]): its maps, programs and links
//! live on in a bpffs directory until `reflector detach`, and the next start adopts them.

mod admission;
mod attach;
mod load;
mod port_table;
mod readers;
pub(crate) mod slots;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use aya::{
    Ebpf, EbpfError,
    maps::{HashMap, Map, MapError},
    pin::PinError,
    programs::{
        ProgramError, SchedClassifier, Xdp,
        links::{LinkError, PinnedLink},
    },
};
use reflector_common::maps::{LOCAL_ADDRS, programs};
use thiserror::Error;

use self::slots::MapSlots;
pub(crate) use self::{load::LoadOptions, readers::Readers, slots::TooManyMaps};
use crate::{interfaces::Interface, local_addrs::LocalAddrMap, mode::Attach, pin};

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
    /// More port maps than the per-map counters have room for.
    #[error(transparent)]
    TooManyMaps(#[from] TooManyMaps),
    /// Pinning to, or adopting from, the pin directory failed.
    #[error(transparent)]
    Pin(#[from] pin::PinDirError),
    /// A map, program or link could not be pinned.
    #[error("pinning {what} at {} failed", path.display())]
    PinObject {
        /// What.
        what: String,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: PinError,
    },
    /// A link cannot be pinned (it is not an fd-based link).
    #[error(
        "the {attach} link on {interface} cannot be pinned (it needs an fd-based link: XDP links, or TCX on kernel >= 6.6)"
    )]
    Unpinnable {
        /// The interface.
        interface: String,
        /// How.
        attach: Attach,
        /// Why.
        #[source]
        source: LinkError,
    },
    /// TC mode with pinning on a kernel without TCX: its netlink filters are not links.
    #[error(
        "TC on {interface} cannot be pinned on this kernel (pinning needs TCX links, kernel >= 6.6): use xdp or xdp-skb with --pin"
    )]
    TcNeedsTcx {
        /// The interface.
        interface: String,
    },
    /// The clsact qdisc TC needs before kernel 6.6 could not be added.
    #[error("adding a clsact qdisc to {interface} failed")]
    Clsact {
        /// The interface.
        interface: String,
        /// Why.
        #[source]
        source: std::io::Error,
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

/// The maps of admission: the configuration entry and the allow-lists the daemon writes,
/// and the buckets it only pins (the program keeps them).
struct AdmissionMaps {
    config: Map,
    allow_v4: Map,
    allow_v6: Map,
    source_buckets: Map,
    global_bucket: Map,
}

/// Where the program is attached.
#[derive(Debug)]
enum Link {
    Xdp(aya::programs::xdp::XdpLinkId),
    Tc(aya::programs::tc::SchedClassifierLinkId),
    /// Pinned: stays attached when this process ends.
    Pinned(PinnedLink),
}

/// The programs: loaded from the object by this process, or adopted from pins.
enum Programs {
    Loaded(Ebpf),
    Pinned {
        xdp: Box<Xdp>,
        tc: Box<SchedClassifier>,
    },
}

impl Programs {
    fn xdp(&mut self) -> Result<&mut Xdp, KernelError> {
        match self {
            Self::Loaded(ebpf) => program(ebpf, programs::XDP),
            Self::Pinned { xdp, .. } => Ok(xdp),
        }
    }

    fn tc(&mut self) -> Result<&mut SchedClassifier, KernelError> {
        match self {
            Self::Loaded(ebpf) => program(ebpf, programs::TC),
            Self::Pinned { tc, .. } => Ok(tc),
        }
    }
}

/// The loaded kernel program, its maps and its attachments.
pub(crate) struct KernelPath {
    programs: Programs,
    ports: Map,
    flows: Map,
    local_addrs: Option<Map>,
    stats: Map,
    map_stats: Map,
    admission: AdmissionMaps,
    /// The counter slot of each port map, shared with the telemetry that labels the
    /// per-map counters.
    slots: Arc<Mutex<MapSlots>>,
    links: Vec<(Interface, Attach, Link)>,
    /// The interfaces whose clsact qdisc this process added (kernels without TCX), removed
    /// again on detach.
    added_clsact: Vec<Interface>,
    /// The pin directory and the pinned links found there not yet adopted, when pinned.
    pin: Option<(PathBuf, Vec<pin::PinnedLinkFile>)>,
    /// Whether the state was adopted from pins rather than loaded anew.
    adopted: bool,
}

impl KernelPath {
    /// Whether the state was adopted from a pin directory rather than loaded anew.
    #[must_use]
    pub(crate) fn is_adopted(&self) -> bool {
        self.adopted
    }

    /// The pin directory, when the state outlives the process.
    #[must_use]
    pub(crate) fn pin_dir(&self) -> Option<&Path> {
        self.pin.as_ref().map(|(dir, _)| dir.as_path())
    }

    /// Takes the local-address map out, for the task that keeps it current.
    ///
    /// # Errors
    /// [`KernelError::Missing`] when the object has no such map (or it was taken already).
    pub(crate) fn take_local_addrs(&mut self) -> Result<LocalAddrMap, KernelError> {
        let map = self
            .local_addrs
            .take()
            .ok_or(KernelError::Missing(LOCAL_ADDRS))?;
        HashMap::try_from(map).map_err(|source| KernelError::Map {
            name: LOCAL_ADDRS,
            source,
        })
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
