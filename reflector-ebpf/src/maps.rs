//! Every map the kernel program uses. Names and value types come from `reflector-common`
//! so the control plane finds them.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
};
use reflector_common::{
    Counter, FlowKey, FlowValue, PortEntry, STATS_LEN,
    maps::{FLOWS_DEFAULT_LEN, LOCAL_ADDRS_LEN, MAP_STATS_LEN, PORTS_LEN},
};

/// Which (protocol, port) pairs are listen ports `L` or target ports `P`.
#[map(name = "PORTS")]
pub(crate) static PORTS: Array<PortEntry> = Array::with_max_entries(PORTS_LEN, 0);

/// This host's own addresses (IPv4-mapped for IPv4), kept current by the control plane.
#[map(name = "LOCAL_ADDRS")]
pub(crate) static LOCAL_ADDRS: HashMap<[u8; 16], u32> =
    HashMap::with_max_entries(LOCAL_ADDRS_LEN, 0);

/// Reflected flows, keyed as their replies see them; the least recently used go first.
#[map(name = "FLOWS")]
pub(crate) static FLOWS: LruHashMap<FlowKey, FlowValue> =
    LruHashMap::with_max_entries(FLOWS_DEFAULT_LEN, 0);

/// Packet and byte counters per verdict, per CPU so counting never contends.
#[map(name = "STATS")]
pub(crate) static STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(STATS_LEN, 0);

/// Reflected packets and bytes per port map, direction and family, per CPU.
#[map(name = "MAP_STATS")]
pub(crate) static MAP_STATS: PerCpuArray<Counter> = PerCpuArray::with_max_entries(MAP_STATS_LEN, 0);
