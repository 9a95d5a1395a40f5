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
/// `Array<AdmissionConfig>` of one entry: the allow-list switch, the rate limits, the loop
/// guard switch ([`crate::AdmissionConfig`]; zeroed means its `DEFAULT`).
pub const ADMISSION: &str = "ADMISSION";
/// `LpmTrie<[u8; 4], u32>`: allowed IPv4 source prefixes (value unused, 1), looked up when
/// the allow-list is enforced.
pub const ALLOW_V4: &str = "ALLOW_V4";
/// `LpmTrie<[u8; 16], u32>`: allowed IPv6 source prefixes (value unused, 1). IPv4-mapped
/// sources of IPv6 packets are looked up here as they are (`::ffff:0:0/96`).
pub const ALLOW_V6: &str = "ALLOW_V6";
/// `LruHashMap<[u8; 16], u64>`: the new-flow bucket of each source prefix
/// ([`crate::admission::source_bucket_key`]), as a GCRA arrival time in `bpf_ktime_get_ns`
/// nanoseconds ([`crate::admission::admit`]).
pub const SOURCE_BUCKETS: &str = "SOURCE_BUCKETS";
/// `Array<u64>` of one entry: the global new-flow bucket, as [`SOURCE_BUCKETS`]' values.
pub const GLOBAL_BUCKET: &str = "GLOBAL_BUCKET";
/// `Array<u64>` of [`crate::admission::LOOP_MEMORY_LEN`] slots: the loop guard's memory for
/// maps without flow state ([`crate::admission::remember_ttl`]). The kernel program's alone:
/// not pinned, never read by the control plane, it lives as long as the program does.
pub const LOOP_MEMORY: &str = "LOOP_MEMORY";

/// Entries in [`PORTS`]: one per port for each of the two protocols.
pub const PORTS_LEN: u32 = 2 * 65_536;
/// Counter slots in [`MAP_STATS`]: the most port maps (listen port and protocol) the control
/// plane accepts.
pub const MAP_SLOTS: u32 = 1_024;
/// Entries in [`MAP_STATS`]: [`crate::stats::COUNTERS_PER_MAP`] per slot.
pub const MAP_STATS_LEN: u32 = MAP_SLOTS * crate::stats::COUNTERS_PER_MAP;
/// Room in [`LOCAL_ADDRS`]; a host with more addresses than this is told so at start.
pub const LOCAL_ADDRS_LEN: u32 = 4_096;
/// Prefixes each allow-list trie holds ([`ALLOW_V4`], [`ALLOW_V6`]). Tries are not
/// preallocated: memory grows with the prefixes written (about 100 bytes each).
pub const ALLOW_LEN: u32 = 16_384;
/// Source prefixes [`SOURCE_BUCKETS`] tracks at once; the least recently used is evicted,
/// which refills that prefix's bucket: eviction only ever admits more. An LRU hash map is
/// preallocated: 72 bytes an entry (a 48-byte element header with its LRU node and hash,
/// the 16-byte key, the 8-byte value) plus a 16-byte hash bucket per entry (the bucket count
/// is the entries rounded up to a power of two): 88 bytes, 5.5 MiB in all (5,768,064 B by
/// the kernel's `memlock`).
pub const SOURCE_BUCKETS_LEN: u32 = 65_536;
/// Default room in [`FLOWS`]; the loader may resize it before loading.
pub const FLOWS_DEFAULT_LEN: u32 = 131_072;

/// Program names, as the kernel object exports them.
pub mod programs {
    /// The XDP reflector.
    pub const XDP: &str = "reflector_xdp";
    /// The TC (clsact ingress) reflector.
    pub const TC: &str = "reflector_tc";
}

/// Version of the layout a pinned kernel path (`--pin`) shares with the daemons that adopt
/// it: the maps' names, types, key and value layouts and sizes, and the meaning of every
/// slot of [`STATS`] ([`crate::PassReason`], [`crate::StatIndex`]), [`MAP_STATS`] and
/// [`PORTS`]. A daemon adopts only a pin directory stamped with this version. Bump it with
/// any change to those; the test `pinned_layout_is_frozen` records what each version means.
pub const PIN_LAYOUT_VERSION: u32 = 3;

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use super::{ALLOW_LEN, SOURCE_BUCKETS_LEN};
    use super::{FLOWS_DEFAULT_LEN, LOCAL_ADDRS_LEN, MAP_STATS_LEN, PIN_LAYOUT_VERSION, PORTS_LEN};
    use crate::{
        AdmissionConfig, Counter, DropReason, FlowKey, FlowValue, PassReason, PortEntry, STATS_LEN,
        StatIndex,
    };

    /// Everything [`PIN_LAYOUT_VERSION`] stands for, as text.
    fn layout() -> String {
        let reasons: Vec<String> = PassReason::ALL
            .iter()
            .map(|&reason| format!("{}={}", reason.name(), StatIndex::passed(reason).get()))
            .collect();
        let drops: Vec<String> = DropReason::ALL
            .iter()
            .map(|&reason| format!("{}={}", reason.name(), StatIndex::dropped(reason).get()))
            .collect();
        let admission = format!(
            "; drops {}; allow_len={ALLOW_LEN} source_buckets_len={SOURCE_BUCKETS_LEN} \
             admission_config={}",
            drops.join(","),
            size_of::<AdmissionConfig>()
        );
        let layout = format!(
            "reasons {}; flows_created={} flow_insert_failed={} stats_len={STATS_LEN}; \
             map_stats_len={MAP_STATS_LEN} ports_len={PORTS_LEN} local_addrs_len={LOCAL_ADDRS_LEN} \
             flows_default_len={FLOWS_DEFAULT_LEN}; sizes: flow_key={} flow_value={} \
             port_entry={} counter={}",
            reasons.join(","),
            StatIndex::FLOWS_CREATED.get(),
            StatIndex::FLOW_INSERT_FAILED.get(),
            size_of::<FlowKey>(),
            size_of::<FlowValue>(),
            size_of::<PortEntry>(),
            size_of::<Counter>(),
        );
        // Version 3: maps without flow state (the port flags, the target's listen port in
        // the port entry) and the forced flow table.
        let stateless = format!(
            "; port flags target={} stateless={} listen_stateless={}; admission flags \
             allow_list={} loop_guard_off={} flow_table_always={}",
            crate::PORT_FLAG_TARGET,
            crate::PORT_FLAG_STATELESS,
            crate::PORT_FLAG_LISTEN_STATELESS,
            crate::admission::ADMISSION_ALLOW_LIST,
            crate::admission::ADMISSION_LOOP_GUARD_OFF,
            crate::admission::ADMISSION_FLOW_TABLE_ALWAYS,
        );
        match PIN_LAYOUT_VERSION {
            1 => layout,
            2 => layout + &admission,
            _ => layout + &admission + &stateless,
        }
    }

    #[test]
    fn pinned_layout_is_frozen() {
        let frozen = match PIN_LAYOUT_VERSION {
            1 => {
                "reasons not_ip=0,not_tcp_udp=1,truncated=2,malformed=3,fragment=4,\
                 ipv6_extension_header=5,port_not_mapped=6,no_flow=7,destination_not_local=8,\
                 source_multicast=9,source_broadcast=10,source_loopback=11,\
                 source_unspecified=12,source_local=13,ttl_expired=14; flows_created=19 \
                 flow_insert_failed=20 stats_len=21; map_stats_len=4096 ports_len=131072 \
                 local_addrs_len=4096 flows_default_len=131072; sizes: flow_key=40 \
                 flow_value=4 port_entry=8 counter=16"
            }
            2 => {
                "reasons not_ip=0,not_tcp_udp=1,truncated=2,malformed=3,fragment=4,\
                 ipv6_extension_header=5,port_not_mapped=6,no_flow=7,destination_not_local=8,\
                 source_multicast=9,source_broadcast=10,source_loopback=11,\
                 source_unspecified=12,source_local=13,ttl_expired=14; flows_created=19 \
                 flow_insert_failed=20 stats_len=25; map_stats_len=4096 ports_len=131072 \
                 local_addrs_len=4096 flows_default_len=131072; sizes: flow_key=40 \
                 flow_value=8 port_entry=8 counter=16; drops source_not_allowed=21,\
                 rate_limited=22,loop_detected=23,rewrite_failed=24; allow_len=16384 \
                 source_buckets_len=65536 admission_config=32"
            }
            3 => {
                "reasons not_ip=0,not_tcp_udp=1,truncated=2,malformed=3,fragment=4,\
                 ipv6_extension_header=5,port_not_mapped=6,no_flow=7,destination_not_local=8,\
                 source_multicast=9,source_broadcast=10,source_loopback=11,\
                 source_unspecified=12,source_local=13,ttl_expired=14; flows_created=19 \
                 flow_insert_failed=20 stats_len=25; map_stats_len=4096 ports_len=131072 \
                 local_addrs_len=4096 flows_default_len=131072; sizes: flow_key=40 \
                 flow_value=8 port_entry=8 counter=16; drops source_not_allowed=21,\
                 rate_limited=22,loop_detected=23,rewrite_failed=24; allow_len=16384 \
                 source_buckets_len=65536 admission_config=32; port flags target=1 \
                 stateless=2 listen_stateless=4; admission flags allow_list=2 \
                 loop_guard_off=4 flow_table_always=8"
            }
            version => panic!("layout {version} is not recorded here: add it"),
        };
        assert_eq!(
            layout(),
            frozen,
            "the pinned layout changed: a program pinned by an older daemon would be read \
             wrongly. Append, never renumber; then bump PIN_LAYOUT_VERSION and record the new \
             layout here as a new version (keep the old ones)"
        );
    }
}
