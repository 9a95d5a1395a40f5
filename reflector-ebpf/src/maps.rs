//! Every map the kernel program uses. Names and value types come from `reflector-common`
//! so the control plane finds them.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray},
};
use reflector_common::{
    AdmissionConfig, Counter, FlowKey, FlowValue, PortEntry, STATS_LEN,
    admission::LOOP_MEMORY_LEN,
    maps::{
        ALLOW_LEN, FLOWS_DEFAULT_LEN, LOCAL_ADDRS_LEN, MAP_STATS_LEN, PORTS_LEN, SOURCE_BUCKETS_LEN,
    },
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

/// The allow-list switch, the new-flow rate limits and the loop-guard switch (one entry;
/// zeroed means `AdmissionConfig::DEFAULT`).
#[map(name = "ADMISSION")]
pub(crate) static ADMISSION: Array<AdmissionConfig> = Array::with_max_entries(1, 0);

/// Allowed IPv4 source prefixes, looked up when the allow-list is enforced.
#[map(name = "ALLOW_V4")]
pub(crate) static ALLOW_V4: LpmTrie<[u8; 4], u32> = LpmTrie::with_max_entries(ALLOW_LEN, 0);

/// Allowed IPv6 source prefixes, looked up when the allow-list is enforced.
#[map(name = "ALLOW_V6")]
pub(crate) static ALLOW_V6: LpmTrie<[u8; 16], u32> = LpmTrie::with_max_entries(ALLOW_LEN, 0);

/// The new-flow bucket of each recently seen source prefix (a GCRA arrival time, ns);
/// shared by every CPU, the least recently used evicted (which refills it).
#[map(name = "SOURCE_BUCKETS")]
pub(crate) static SOURCE_BUCKETS: LruHashMap<[u8; 16], u64> =
    LruHashMap::with_max_entries(SOURCE_BUCKETS_LEN, 0);

/// The global new-flow bucket (one entry, as `SOURCE_BUCKETS`' values).
#[map(name = "GLOBAL_BUCKET")]
pub(crate) static GLOBAL_BUCKET: Array<u64> = Array::with_max_entries(1, 0);

/// The loop guard's memory for maps without flow state: a tuple's tag and highest TTL per
/// slot (`reflector_common::admission::remember_ttl`); shared by every CPU, as a loop's
/// packets may come in on any.
#[map(name = "LOOP_MEMORY")]
pub(crate) static LOOP_MEMORY: Array<u64> = Array::with_max_entries(LOOP_MEMORY_LEN, 0);
