//! Names and sizes of the maps the kernel program declares, so the loader finds them by
//! the same names the program gives them.

/// `Array<PortEntry>` indexed by [`crate::port_index`]: which ports are mapped.
pub const PORTS: &str = "PORTS";
/// `HashMap<[u8; 16], u32>`: this host's own addresses (IPv4-mapped for IPv4), with an
/// [`crate::addr_kind`] value.
pub const LOCAL_ADDRS: &str = "LOCAL_ADDRS";
/// `LruHashMap<FlowKey, FlowValue>`: reflected flows, looked up by reply packets.
pub const FLOWS: &str = "FLOWS";
/// `PerCpuArray<Counter>` indexed by [`crate::StatIndex`]: packet and byte counters.
pub const STATS: &str = "STATS";
/// `PerCpuArray<Counter>` indexed by [`crate::MapStatIndex`]: reflected packets and bytes
/// per port map (counter slot), direction and IP family.
pub const MAP_STATS: &str = "MAP_STATS";

/// Entries in [`PORTS`]: one per port for each of the two protocols.
pub const PORTS_LEN: u32 = 2 * 65_536;
/// Counter slots in [`MAP_STATS`]: the most port maps (listen port and protocol) the control
/// plane accepts.
pub const MAP_SLOTS: u32 = 1_024;
/// Entries in [`MAP_STATS`]: [`crate::stats::COUNTERS_PER_MAP`] per slot.
pub const MAP_STATS_LEN: u32 = MAP_SLOTS * crate::stats::COUNTERS_PER_MAP;
/// Room in [`LOCAL_ADDRS`]; a host with more addresses than this is told so at start.
pub const LOCAL_ADDRS_LEN: u32 = 4_096;
/// Default room in [`FLOWS`]; the loader may resize it before loading.
pub const FLOWS_DEFAULT_LEN: u32 = 131_072;

/// Program names, as the kernel object exports them.
pub mod programs {
    /// The XDP reflector.
    pub const XDP: &str = "reflector_xdp";
    /// The TC (clsact ingress) reflector.
    pub const TC: &str = "reflector_tc";
    /// A minimal XDP program that only swaps MAC addresses and returns `XDP_TX`: the
    /// baseline the reflector's cost per packet is compared with.
    pub const BASELINE_MAC_SWAP: &str = "baseline_mac_swap";
    /// A second reference: swaps MAC addresses after one lookup of the frame's flow in
    /// `FLOWS` (IPv4 and TCP at fixed offsets, nothing checked beyond the frame's length):
    /// the least a reflector with a flow table does per packet.
    pub const BASELINE_FLOW_LOOKUP: &str = "baseline_flow_lookup";
    /// An XDP program that passes every frame. A veth end only receives `XDP_TX` frames
    /// from its peer when it runs an XDP program itself; this is that program.
    pub const XDP_PASS: &str = "xdp_pass";
}
