//! The kernel path: loads the program, fills its maps and attaches it to interfaces.
//! Dropping a [`KernelPath`] detaches everything: every attachment is an fd-based link
//! (XDP links, TCX on kernels >= 6.6), so nothing stays behind even if the process dies;
//! before 6.6, TC attaches through a clsact qdisc, removed on detach if it was added here.
//! The exception is a pinned path ([`KernelPath::pinned`]): its maps, programs and links
//! live on in a bpffs directory until `reflector detach`, and the next start adopts them.

use std::{
    collections::BTreeMap,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuValues},
    pin::PinError,
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc,
    },
};
use log::{debug, info, warn};
use reflector_common::{
    Counter, Direction, Family, FlowKey, FlowValue, MapStatIndex, PortEntry, Protocol,
    maps::{FLOWS, LOCAL_ADDRS, MAP_STATS, PORTS, PORTS_LEN, STATS, programs},
    stats::COUNTERS_PER_MAP,
};
use thiserror::Error;

use crate::{
    clsact,
    interfaces::Interface,
    map_slots::{MapSlots, TooManyMaps},
    mode::Attach,
    pin,
    portmap::PortMap,
    telemetry::MapCounters,
};

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
pub struct KernelPath {
    programs: Programs,
    ports: Map,
    flows: Map,
    local_addrs: Option<Map>,
    stats: Option<Map>,
    map_stats: Map,
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

/// The flow table, as telemetry reads it.
pub type FlowTable = HashMap<MapData, FlowKey, FlowValue>;

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
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(KernelError::Missing(name));
        let ports = take(PORTS)?;
        let flows = take(FLOWS)?;
        let local_addrs = take(LOCAL_ADDRS)?;
        let stats = take(STATS)?;
        let map_stats = take(MAP_STATS)?;
        Ok(Self {
            programs: Programs::Loaded(ebpf),
            ports,
            flows,
            local_addrs: Some(local_addrs),
            stats: Some(stats),
            map_stats,
            slots: Arc::default(),
            links: Vec::new(),
            added_clsact: Vec::new(),
            pin: None,
            adopted: false,
        })
    }

    /// Like [`KernelPath::load`], but keeping everything in the bpffs directory `dir`, so
    /// that it outlives this process: when `dir` holds a pinned reflector already, its
    /// maps (ports, local addresses, flows, counters), programs and links are adopted as they
    /// are; otherwise `object` is loaded and its maps and programs pinned there.
    ///
    /// # Errors
    /// [`KernelError::Pin`] when `dir` is not on a bpffs or its pins cannot be opened,
    /// otherwise as [`KernelPath::load`].
    pub fn pinned(object: &[u8], options: LoadOptions, dir: &Path) -> Result<Self, KernelError> {
        pin::prepare_dir(dir)?;
        if let Some(state) = pin::open(dir)? {
            let map = |name: &'static str, data: MapData| {
                Map::from_map_data(data).map_err(|source| KernelError::Map { name, source })
            };
            let flows = state.flows.info().map_or(0, |info| info.max_entries());
            if flows != options.flow_table_size {
                warn!(
                    "the pinned flow table holds {flows} flows; flow-table-size {} takes \
                     `reflector detach --pin {}` and a restart",
                    options.flow_table_size,
                    dir.display()
                );
            }
            info!(
                "adopted the pinned state at {} (port table, local addresses, flows, counters; \
                 programs and links stay attached)",
                dir.display()
            );
            return Ok(Self {
                programs: Programs::Pinned {
                    xdp: Box::new(state.xdp),
                    tc: Box::new(state.tc),
                },
                ports: map(PORTS, state.ports)?,
                flows: map(FLOWS, state.flows)?,
                local_addrs: Some(map(LOCAL_ADDRS, state.local_addrs)?),
                stats: Some(map(STATS, state.stats)?),
                map_stats: map(MAP_STATS, state.map_stats)?,
                slots: Arc::default(),
                links: Vec::new(),
                added_clsact: Vec::new(),
                pin: Some((dir.to_owned(), state.links)),
                adopted: true,
            });
        }
        let mut kernel = Self::load(object, options)?;
        let pin_error = |what: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| KernelError::PinObject {
                what: what.to_owned(),
                path,
                source,
            }
        };
        let path = dir.join(pin::PROG_XDP);
        kernel
            .programs
            .xdp()?
            .pin(&path)
            .map_err(pin_error("program", &path))?;
        let path = dir.join(pin::PROG_TC);
        kernel
            .programs
            .tc()?
            .pin(&path)
            .map_err(pin_error("program", &path))?;
        let mut maps = vec![(FLOWS, &kernel.flows)];
        maps.extend(kernel.local_addrs.as_ref().map(|map| (LOCAL_ADDRS, map)));
        maps.extend(kernel.stats.as_ref().map(|map| (STATS, map)));
        maps.push((MAP_STATS, &kernel.map_stats));
        // The port table last, after the layout stamp: its pin marks the directory as
        // complete.
        pin::stamp_layout(dir)?;
        maps.push((PORTS, &kernel.ports));
        for (name, map) in maps {
            let path = dir.join(name);
            map.pin(&path).map_err(pin_error("map", &path))?;
        }
        info!(
            "pinned the kernel program and its maps at {}",
            dir.display()
        );
        kernel.pin = Some((dir.to_owned(), Vec::new()));
        Ok(kernel)
    }

    /// Whether the state was adopted from a pin directory rather than loaded anew.
    #[must_use]
    pub fn is_adopted(&self) -> bool {
        self.adopted
    }

    /// Writes the port table for `new` (replacing `old`), clearing entries no map needs any
    /// more. Maps that stay keep their counter slot; a new map gets a free slot, whose
    /// counters are zeroed first.
    ///
    /// # Errors
    /// [`KernelError::TooManyMaps`] (nothing changed), or [`KernelError::Map`] when an
    /// update fails.
    pub fn set_port_maps(&mut self, old: &[PortMap], new: &[PortMap]) -> Result<(), KernelError> {
        let shared = Arc::clone(&self.slots);
        let mut slots = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = slots.clone();
        let fresh = next.update(new)?;
        self.zero_slots(&fresh)?;
        let stale = crate::portmap::port_table(old, &next).into_keys();
        self.write_port_table(stale, &crate::portmap::port_table(new, &next))?;
        *slots = next;
        Ok(())
    }

    /// Clears the entries at `stale` indices that `table` does not set, then writes `table`.
    fn write_port_table(
        &mut self,
        stale: impl IntoIterator<Item = u32>,
        table: &BTreeMap<u32, PortEntry>,
    ) -> Result<(), KernelError> {
        let map_error = |source| KernelError::Map {
            name: PORTS,
            source,
        };
        let mut ports: Array<&mut MapData, PortEntry> =
            Array::try_from(&mut self.ports).map_err(map_error)?;
        for index in stale {
            if !table.contains_key(&index) {
                ports
                    .set(index, PortEntry::default(), 0)
                    .map_err(map_error)?;
            }
        }
        for (index, entry) in table {
            ports.set(*index, entry, 0).map_err(map_error)?;
        }
        Ok(())
    }

    /// Writes the port table for `maps` into an adopted table whose maps are not known:
    /// every entry is read, the counter slots it records are kept for the maps that stay,
    /// and the entries `maps` do not need are cleared.
    ///
    /// # Errors
    /// [`KernelError::TooManyMaps`], or [`KernelError::Map`] when a read or update fails.
    pub fn set_port_maps_adopted(&mut self, maps: &[PortMap]) -> Result<(), KernelError> {
        let map_error = |source| KernelError::Map {
            name: PORTS,
            source,
        };
        let pinned = {
            let ports: Array<&MapData, PortEntry> =
                Array::try_from(&self.ports).map_err(map_error)?;
            let mut pinned = Vec::new();
            for index in 0..PORTS_LEN {
                let entry = ports.get(&index, 0).map_err(map_error)?;
                if entry != PortEntry::default() {
                    pinned.push((index, entry));
                }
            }
            pinned
        };
        let mut slots = MapSlots::from_table(pinned.iter().map(|&(index, entry)| {
            let (protocol, port) = port_of_index(index);
            (protocol, port, entry)
        }));
        let fresh = slots.update(maps)?;
        self.zero_slots(&fresh)?;
        let stale = pinned.iter().map(|&(index, _)| index);
        self.write_port_table(stale, &crate::portmap::port_table(maps, &slots))?;
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = slots;
        Ok(())
    }

    /// Zeroes every CPU's per-map counters of `slots`, before they are given to new maps.
    fn zero_slots(&mut self, slots: &[u16]) -> Result<(), KernelError> {
        if slots.is_empty() {
            return Ok(());
        }
        let map_error = |source| KernelError::Map {
            name: MAP_STATS,
            source,
        };
        let mut counters: PerCpuArray<&mut MapData, Counter> =
            PerCpuArray::try_from(&mut self.map_stats).map_err(map_error)?;
        let cpus =
            aya::util::nr_cpus().map_err(|(_, error)| map_error(MapError::IoError(error)))?;
        for &slot in slots {
            let first = MapStatIndex::new(slot, Direction::Forward, Family::V4).get();
            for index in first..first + COUNTERS_PER_MAP {
                let zero = PerCpuValues::try_from(vec![Counter::default(); cpus])
                    .map_err(|error| map_error(MapError::IoError(error)))?;
                counters.set(index, zero, 0).map_err(map_error)?;
            }
        }
        Ok(())
    }

    /// A reader of the per-map counters, and the slot table that says which map each
    /// counter belongs to, for telemetry.
    ///
    /// # Errors
    /// [`KernelError::Map`] when the counter map cannot be opened a second time.
    pub fn map_counters(&self) -> Result<MapCounters, KernelError> {
        let map_error = |source| KernelError::Map {
            name: MAP_STATS,
            source,
        };
        let Map::PerCpuArray(data) = &self.map_stats else {
            return Err(KernelError::Missing(MAP_STATS));
        };
        let data = second_handle(data).map_err(map_error)?;
        let counters = PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(map_error)?;
        Ok((counters, Arc::clone(&self.slots)))
    }

    /// A second handle on the flow table, for counting its entries (telemetry).
    ///
    /// # Errors
    /// [`KernelError::Map`] when the flow table cannot be opened a second time.
    pub fn flow_table(&self) -> Result<FlowTable, KernelError> {
        let map_error = |source| KernelError::Map {
            name: FLOWS,
            source,
        };
        let Map::LruHashMap(data) = &self.flows else {
            return Err(KernelError::Missing(FLOWS));
        };
        let data = second_handle(data).map_err(map_error)?;
        HashMap::try_from(Map::LruHashMap(data)).map_err(map_error)
    }

    /// Takes the local-address map out, for the task that keeps it current.
    ///
    /// # Errors
    /// [`KernelError::Missing`] when the object has no such map (or it was taken already).
    pub fn take_local_addrs(&mut self) -> Result<HashMap<MapData, [u8; 16], u32>, KernelError> {
        let map = self
            .local_addrs
            .take()
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
        let map = self.stats.take().ok_or(KernelError::Missing(STATS))?;
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
                let xdp = self.programs.xdp()?;
                let id = xdp.attach(&interface.name, mode).map_err(attach_error)?;
                match &self.pin {
                    Some((dir, _)) => {
                        let link = xdp.take_link(id).map_err(attach_error)?;
                        let link = FdLink::try_from(link).map_err(unpinnable(interface, attach))?;
                        Link::Pinned(pin_link(link, dir, interface, attach)?)
                    }
                    None => Link::Xdp(id),
                }
            }
            Attach::Tc => {
                // TCX (kernel >= 6.6) needs no qdisc and gives fd-based links; older kernels
                // attach through a clsact qdisc (removed on detach when added here), whose
                // netlink filters cannot be pinned.
                let tcx = clsact::tcx_supported();
                if !tcx && self.pin.is_some() {
                    return Err(KernelError::TcNeedsTcx {
                        interface: interface.name.clone(),
                    });
                }
                let added = !tcx
                    && clsact::add(interface.index).map_err(|source| KernelError::Clsact {
                        interface: interface.name.clone(),
                        source,
                    })?;
                if !tcx && !added {
                    remove_stale_filter(interface);
                }
                let attached = self.programs.tc().and_then(|tc| {
                    tc.attach(&interface.name, TcAttachType::Ingress)
                        .map_err(attach_error)
                });
                let id = match attached {
                    Ok(id) => id,
                    Err(error) => {
                        if added {
                            remove_clsact(interface);
                        }
                        return Err(error);
                    }
                };
                if added {
                    self.added_clsact.push(interface.clone());
                }
                match &self.pin {
                    Some((dir, _)) => {
                        let link = self.programs.tc()?.take_link(id).map_err(attach_error)?;
                        let link = FdLink::try_from(link).map_err(unpinnable(interface, attach))?;
                        Link::Pinned(pin_link(link, dir, interface, attach)?)
                    }
                    None => Link::Tc(id),
                }
            }
        };
        self.links.push((interface.clone(), attach, link));
        Ok(())
    }

    /// Adopts the pinned link on `interface`, if the pin directory has one of a mode among
    /// `candidates`; it stays attached throughout. A pinned link of another mode there is
    /// detached (the caller attaches anew). Returns the adopted link's mode.
    pub fn adopt_link(&mut self, interface: &Interface, candidates: &[Attach]) -> Option<Attach> {
        let (_, unadopted) = self.pin.as_mut()?;
        let mut adopted = None;
        let mut index = 0;
        while index < unadopted.len() {
            if unadopted[index].interface != interface.name {
                index += 1;
                continue;
            }
            let file = unadopted.swap_remove(index);
            if adopted.is_none() && candidates.contains(&file.attach) {
                match PinnedLink::from_pin(&file.path) {
                    Ok(link) => {
                        info!(
                            "{}: adopted the pinned {} link {}",
                            interface.name,
                            file.attach,
                            file.path.display()
                        );
                        adopted = Some((file.attach, link));
                        continue;
                    }
                    Err(error) => warn!("{}: {error}; attaching anew", file.path.display()),
                }
            }
            pin::remove_link(&file);
        }
        let (attach, link) = adopted?;
        self.links
            .push((interface.clone(), attach, Link::Pinned(link)));
        Some(attach)
    }

    /// Detaches the pinned links that no interface adopted (interfaces no longer
    /// configured).
    pub fn release_unadopted(&mut self) {
        if let Some((_, unadopted)) = self.pin.as_mut() {
            for file in unadopted.drain(..) {
                pin::remove_link(&file);
            }
        }
    }

    /// The pin directory, when the state outlives the process.
    #[must_use]
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pin.as_ref().map(|(dir, _)| dir.as_path())
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
                Link::Xdp(id) => self
                    .programs
                    .xdp()
                    .and_then(|xdp| xdp.detach(id).map_err(program_error(programs::XDP))),
                Link::Tc(id) => self
                    .programs
                    .tc()
                    .and_then(|tc| tc.detach(id).map_err(program_error(programs::TC))),
                Link::Pinned(link) => {
                    debug!("{}: {attach} stays attached (pinned)", interface.name);
                    drop(link);
                    continue;
                }
            };
            match result {
                Ok(()) => debug!("detached {attach} from {}", interface.name),
                Err(error) => warn!("detaching {attach} from {}: {error}", interface.name),
            }
        }
        for interface in self.added_clsact.drain(..) {
            remove_clsact(&interface);
        }
    }
}

/// Removes a filter of this program that a killed reflector left on `interface` (netlink
/// filters, unlike links, outlive their process): it would run first, on stale maps.
fn remove_stale_filter(interface: &Interface) {
    match tc::qdisc_detach_program(&interface.name, TcAttachType::Ingress, programs::TC) {
        Ok(()) => warn!(
            "{}: removed the {} filter a previous reflector left attached",
            interface.name,
            programs::TC
        ),
        Err(tc::TcError::IoError(error)) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => warn!(
            "{}: looking for a {} filter left attached: {error}",
            interface.name,
            programs::TC
        ),
    }
}

/// Removes the clsact qdisc this process added to `interface`, logging a failure.
fn remove_clsact(interface: &Interface) {
    match clsact::remove(interface.index) {
        Ok(()) => debug!("removed the clsact qdisc added to {}", interface.name),
        Err(error) => warn!(
            "removing the clsact qdisc added to {}: {error}",
            interface.name
        ),
    }
}

/// A second handle on a map this process holds, from a duplicate of its fd. Opening the
/// map again by id would need `BPF_MAP_GET_FD_BY_ID`, which the kernel allows only with
/// `CAP_SYS_ADMIN`; duplicating an fd needs no capability at all.
fn second_handle(data: &MapData) -> Result<MapData, MapError> {
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(MapError::IoError)?;
    MapData::from_fd(fd)
}

/// The protocol and port of port-table index `index` ([`reflector_common::port_index`]).
fn port_of_index(index: u32) -> (Protocol, u16) {
    let protocol = if index >> 16 == 0 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    (protocol, (index & 0xffff) as u16)
}

fn unpinnable(interface: &Interface, attach: Attach) -> impl FnOnce(LinkError) -> KernelError {
    let interface = interface.name.clone();
    move |source| KernelError::Unpinnable {
        interface,
        attach,
        source,
    }
}

/// Pins `link` in `dir` as the link of `interface`.
fn pin_link(
    link: FdLink,
    dir: &Path,
    interface: &Interface,
    attach: Attach,
) -> Result<PinnedLink, KernelError> {
    let path = dir.join(pin::link_file_name(&interface.name, attach));
    link.pin(&path).map_err(|source| KernelError::PinObject {
        what: format!("the {attach} link on {}", interface.name),
        path,
        source,
    })
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
