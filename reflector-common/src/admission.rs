//! Who may open a new flow, and how often: the source allow-list, the new-flow rate limits
//! and the loop guard, as the kernel program and the userspace path both apply them. The
//! arithmetic lives here, once, so both paths admit exactly the same packets.
//!
//! - **Allow-list**: two LPM tries of allowed source prefixes (IPv4, IPv6). Enforced only
//!   when [`ADMISSION_ALLOW_LIST`] is set; by default every source is allowed.
//! - **Rate limits**: a token bucket per source prefix ([`source_bucket_key`]) and one
//!   global bucket, both kept as a GCRA "theoretical arrival time" ([`admit`]): one `u64`
//!   per bucket, read and written once per new flow.
//! - **Loop guard** ([`loop_detected`]): a flow remembers the highest TTL each direction
//!   arrived with; a packet of it arriving [`LOOP_TTL_DROP`] or more below went round a
//!   loop of reflectors. A map without flow state has no flow to remember it in, so its
//!   packets remember theirs in a slot of a fixed array instead ([`loop_hash`],
//!   [`remember_ttl`]): a loop repeats a packet's exact 5-tuple, so the packet meets its own
//!   slot again, a few reflections lower.
//!
//! Only packets nothing vouches for are admitted: a forward packet that would record a new
//! flow, and every packet of a map without flow state ([`crate::PORT_FLAG_STATELESS`],
//! either direction). Packets of a known flow were vouched for when it was recorded, and are
//! never limited. Without flow state, every packet meets the allow-list, and the rate limits
//! charge the packets that open a flow ([`opens_flow`]): a TCP segment with SYN set, every
//! UDP datagram.

use bytemuck::{Pod, Zeroable};

use crate::DropReason;

/// Set in [`AdmissionConfig::flags`] by the control plane when it wrote the entry. A
/// zeroed entry (no control plane has written one yet) means [`AdmissionConfig::DEFAULT`].
pub const ADMISSION_CONFIGURED: u32 = 1;
/// Set in [`AdmissionConfig::flags`] when the allow-list is enforced: a source in neither
/// trie is refused. Clear: every source is allowed (the tries are not even looked up).
pub const ADMISSION_ALLOW_LIST: u32 = 1 << 1;
/// Set in [`AdmissionConfig::flags`] to turn the loop guard off (paths whose hop count
/// swings by [`LOOP_TTL_DROP`] or more within a flow; the kernel benchmark, which feeds a
/// reflected frame back to the program on purpose).
pub const ADMISSION_LOOP_GUARD_OFF: u32 = 1 << 2;
/// Set in [`AdmissionConfig::flags`] to keep the flow table for every map, even those whose
/// target port is unique ([`crate::PORT_FLAG_STATELESS`]): forward packets record flows and
/// only replies of recorded flows are reflected, as before stateless reverse paths.
pub const ADMISSION_FLOW_TABLE_ALWAYS: u32 = 1 << 3;

/// How far below the highest TTL seen on a flow (per direction) a packet of that flow must
/// arrive to be taken for one that went round a loop. Each reflection takes one from the
/// TTL, so a packet bouncing between two reflectors arrives 2 lower each round trip (more
/// with routers between them): 4 lets two round trips through (4 reflections in all) and
/// drops the next, while a legitimate client's packets (retransmissions included) arrive
/// with the TTL they always had. A route that grows by 4 hops within a flow is taken for a
/// loop: the residual cost.
pub const LOOP_TTL_DROP: u8 = 4;

/// TCP's SYN flag, in the flags byte (offset 13 of the TCP header).
pub const TCP_FLAG_SYN: u8 = 0x02;

/// Whether a packet of a map without flow state is charged against the rate limits as the
/// opening of a flow: a TCP segment with SYN set (the client's SYN forward, the service's
/// SYN-ACK in reverse), any UDP datagram (nothing tells its first one apart). `tcp_flags` is
/// the TCP header's flags byte, ignored for UDP.
#[inline]
#[must_use]
pub const fn opens_flow(protocol: crate::Protocol, tcp_flags: u8) -> bool {
    match protocol {
        crate::Protocol::Tcp => tcp_flags & TCP_FLAG_SYN != 0,
        crate::Protocol::Udp => true,
    }
}

/// Nanoseconds per second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What the kernel program admits as new flows. One entry, in the
/// [`crate::maps::ADMISSION`] array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct AdmissionConfig {
    /// [`ADMISSION_CONFIGURED`], [`ADMISSION_ALLOW_LIST`], [`ADMISSION_LOOP_GUARD_OFF`],
    /// [`ADMISSION_FLOW_TABLE_ALWAYS`].
    pub flags: u32,
    /// The prefix length IPv4 sources are aggregated to for their rate limit (0..=32).
    pub source_prefix_v4: u32,
    /// The prefix length IPv6 sources are aggregated to for their rate limit (0..=128).
    pub source_prefix_v6: u32,
    /// New flows per second per source prefix; 0 disables the per-source limit.
    pub source_rate: u32,
    /// New flows a source prefix may open at once (the bucket's depth; 0 counts as 1).
    pub source_burst: u32,
    /// New flows per second from all sources together; 0 disables the global limit.
    pub global_rate: u32,
    /// New flows all sources may open at once (0 counts as 1).
    pub global_burst: u32,
    /// Always zero: keeps the entry free of padding.
    pad: u32,
}

const _: () = assert!(core::mem::size_of::<AdmissionConfig>() == 32);

impl AdmissionConfig {
    /// Every source allowed; the default limits; the loop guard on. The rates are generous
    /// on purpose, sized for the users reflector has, so that no legitimate pattern meets
    /// them while a reflector left open cannot be used as a bouncer at packet rate:
    ///
    /// - **10,000 new flows/s per source prefix, bursts of 20,000**: a node health-checking
    ///   a handful of ports every second opens ~10 flows/s, 0.1% of it; a NAT gateway or a
    ///   Kubernetes node that SNATs a thousand such pods still fits, and a `/64` of IPv6
    ///   containers shares one bucket the same way. It bounds what a forged source aimed at
    ///   one victim gets reflected to it: 10,000 packets/s, ~5 Mbit/s of 64-byte SYNs.
    /// - **100,000 new flows/s in all, bursts of 100,000**: tens of thousands of nodes each
    ///   checking a few ports every second fit; a spoofed flood, where every packet is a new
    ///   flow from a fresh source (which per-source buckets cannot see), is held to 100,000
    ///   reflections/s (~51 Mbit/s of 64-byte SYNs), whatever it is sent at. The kernel's
    ///   ICMP limiter needed such a global bucket once spoofed sources multiplied.
    pub const DEFAULT: Self = Self {
        flags: ADMISSION_CONFIGURED,
        source_prefix_v4: 32,
        source_prefix_v6: 64,
        source_rate: 10_000,
        source_burst: 20_000,
        global_rate: 100_000,
        global_burst: 100_000,
        pad: 0,
    };

    /// Every source allowed, no limits, the loop guard on.
    pub const UNLIMITED: Self = Self::DEFAULT
        .with_source_limit(0, Self::DEFAULT.source_burst)
        .with_global_limit(0, Self::DEFAULT.global_burst);

    /// The configuration in force for an entry as read from the map: the entry itself once
    /// the control plane wrote it, [`Self::DEFAULT`] while it is still zeroed.
    #[inline]
    #[must_use]
    pub const fn in_force(entry: Option<&Self>) -> Self {
        match entry {
            Some(config) if config.flags & ADMISSION_CONFIGURED != 0 => *config,
            _ => Self::DEFAULT,
        }
    }

    /// Whether the allow-list is enforced.
    #[inline]
    #[must_use]
    pub const fn allow_list_enforced(&self) -> bool {
        self.flags & ADMISSION_ALLOW_LIST != 0
    }

    /// Whether the loop guard is on.
    #[inline]
    #[must_use]
    pub const fn loop_guard(&self) -> bool {
        self.flags & ADMISSION_LOOP_GUARD_OFF == 0
    }

    /// Whether every map keeps the flow table ([`ADMISSION_FLOW_TABLE_ALWAYS`]).
    #[inline]
    #[must_use]
    pub const fn flow_table_forced(&self) -> bool {
        self.flags & ADMISSION_FLOW_TABLE_ALWAYS != 0
    }

    /// This configuration with the per-source limit at `rate` new flows/s, bursts of `burst`
    /// (rate 0: no per-source limit).
    #[must_use]
    pub const fn with_source_limit(mut self, rate: u32, burst: u32) -> Self {
        self.source_rate = rate;
        self.source_burst = burst;
        self
    }

    /// This configuration with the global limit at `rate` new flows/s, bursts of `burst`
    /// (rate 0: no global limit).
    #[must_use]
    pub const fn with_global_limit(mut self, rate: u32, burst: u32) -> Self {
        self.global_rate = rate;
        self.global_burst = burst;
        self
    }

    /// This configuration with sources aggregated to `v4` (IPv4) and `v6` (IPv6) bit
    /// prefixes for their rate limit.
    #[must_use]
    pub const fn with_source_prefixes(mut self, v4: u32, v6: u32) -> Self {
        self.source_prefix_v4 = v4;
        self.source_prefix_v6 = v6;
        self
    }

    /// This configuration with `flag` set (`on`) or cleared.
    #[must_use]
    pub const fn with_flag(mut self, flag: u32, on: bool) -> Self {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
        self
    }
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The key of a source's rate-limit bucket in [`crate::maps::SOURCE_BUCKETS`]: its
/// address (IPv4-mapped for IPv4, as `v4` says) with the bits past the configured prefix
/// cleared, so every address of the prefix shares one bucket.
#[inline]
#[must_use]
pub const fn source_bucket_key(addr: [u8; 16], v4: bool, config: &AdmissionConfig) -> [u8; 16] {
    let bits = if v4 {
        96 + min(config.source_prefix_v4, 32)
    } else {
        min(config.source_prefix_v6, 128)
    };
    mask(addr, bits)
}

const fn min(a: u32, b: u32) -> u32 {
    if a < b { a } else { b }
}

/// `addr` with every bit past the first `bits` (at most 128) cleared. In two 64-bit halves:
/// a variable 128-bit shift has no BPF instruction.
#[inline]
#[must_use]
pub const fn mask(addr: [u8; 16], bits: u32) -> [u8; 16] {
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        b0,
        b1,
        b2,
        b3,
        b4,
        b5,
        b6,
        b7,
    ] = addr;
    let high = u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
    let low = u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let high_mask = if bits >= 64 {
        u64::MAX
    } else if bits == 0 {
        0
    } else {
        u64::MAX << (64 - bits)
    };
    let low_mask = if bits >= 128 {
        u64::MAX
    } else if bits <= 64 {
        0
    } else {
        u64::MAX << (128 - bits)
    };
    let [a0, a1, a2, a3, a4, a5, a6, a7] = (high & high_mask).to_be_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = (low & low_mask).to_be_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

/// One token bucket's decision, as GCRA (the generic cell rate algorithm, a token bucket
/// kept as one timestamp): a bucket whose theoretical arrival time is `tat` admits a new
/// flow at `now` (nanoseconds) when at most `burst - 1` flows' worth of time is booked
/// ahead of `now`. Returns the bucket's new `tat` when the flow is admitted, `None` when it
/// is over the limit (the bucket then stays as it was). A bucket never seen is `tat = 0`:
/// full. `rate` must not be 0 (0 means no limit; the caller skips the bucket).
#[inline]
#[must_use]
pub const fn admit(tat: u64, now: u64, rate: u32, burst: u32) -> Option<u64> {
    // A rate above 10^9/s books less than a nanosecond per flow: 1 ns, the finest there is.
    let interval = if rate as u64 >= NANOS_PER_SECOND {
        1
    } else {
        NANOS_PER_SECOND / rate as u64
    };
    let depth = if burst == 0 { 1 } else { burst as u64 };
    // At most 10^9 * 2^32 < 2^63: no overflow.
    let tolerance = interval * (depth - 1);
    let start = if tat > now { tat } else { now };
    if start - now > tolerance {
        None
    } else {
        Some(start + interval)
    }
}

/// The loop guard's decision for a packet of a known flow arriving with `ttl`, when the
/// highest TTL seen so far in its direction is `highest` (0: none yet). `Err` when the
/// packet went round a loop; `Ok` with the highest TTL to remember otherwise.
///
/// # Errors
/// [`DropReason::LoopDetected`] when `ttl` is [`LOOP_TTL_DROP`] or more below `highest`.
#[inline]
pub const fn loop_detected(highest: u8, ttl: u8) -> Result<u8, DropReason> {
    if (ttl as u16) + (LOOP_TTL_DROP as u16) <= highest as u16 {
        Err(DropReason::LoopDetected)
    } else if ttl > highest {
        Ok(ttl)
    } else {
        Ok(highest)
    }
}

/// Slots of the loop memory of maps without flow state ([`crate::maps::LOOP_MEMORY`]).
/// Only packets looping within a few microseconds have to find their slot unchanged, so
/// 65,536 slots (512 KiB) are overwritten by other tuples only at rates far beyond a
/// reflector's.
pub const LOOP_MEMORY_LEN: u32 = 65_536;

/// Multiplier of [`loop_hash`]'s mixing: 2^64 divided by the golden ratio, odd.
const LOOP_HASH_K: u64 = 0x9e37_79b9_7f4a_7c15;

/// A 64-bit hash of a packet's 5-tuple as it arrives (addresses IPv4-mapped for IPv4):
/// its low bits pick the packet's loop-memory slot ([`loop_slot_index`]), its high 32 are
/// the tag kept in the slot ([`loop_tag`]), so two tuples sharing a slot are told apart
/// but for a 1-in-2^32 chance. Not keyed: a sender who crafts tuples to share a slot can
/// only make the guard forget, and the TTL still ends every loop.
#[inline]
#[must_use]
pub const fn loop_hash(
    source: &[u8; 16],
    destination: &[u8; 16],
    source_port: u16,
    destination_port: u16,
    protocol: u8,
) -> u64 {
    let words = [
        u64::from_le_bytes([
            source[0], source[1], source[2], source[3], source[4], source[5], source[6], source[7],
        ]),
        u64::from_le_bytes([
            source[8], source[9], source[10], source[11], source[12], source[13], source[14],
            source[15],
        ]),
        u64::from_le_bytes([
            destination[0],
            destination[1],
            destination[2],
            destination[3],
            destination[4],
            destination[5],
            destination[6],
            destination[7],
        ]),
        u64::from_le_bytes([
            destination[8],
            destination[9],
            destination[10],
            destination[11],
            destination[12],
            destination[13],
            destination[14],
            destination[15],
        ]),
        ((source_port as u64) << 32) | ((destination_port as u64) << 16) | protocol as u64,
    ];
    let mut hash: u64 = 0;
    let mut i = 0;
    while i < words.len() {
        hash = (hash ^ words[i]).wrapping_mul(LOOP_HASH_K).rotate_left(29);
        i += 1;
    }
    // The final avalanche of splitmix64: every input bit reaches the low (index) bits.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The loop-memory slot of a packet whose [`loop_hash`] is `hash`.
#[inline]
#[must_use]
pub const fn loop_slot_index(hash: u64) -> u32 {
    (hash as u32) & (LOOP_MEMORY_LEN - 1)
}

/// The tag a packet whose [`loop_hash`] is `hash` leaves in its slot.
#[inline]
#[must_use]
pub const fn loop_tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The loop guard of a packet without flow state: `slot` is its loop-memory slot as found
/// (the tag of the last tuple to use it in the high 32 bits, the highest TTL that tuple
/// arrived with in the low 8; zero when never used), `tag` and `ttl` the packet's. As
/// [`loop_detected`] when the slot is the packet's own; a slot another tuple holds is
/// taken over. `Ok(Some(slot))` is the value to write, `Ok(None)` leaves it as it is (a
/// steady flow's packets never write).
///
/// # Errors
/// [`DropReason::LoopDetected`] when the slot is the packet's and `ttl` is
/// [`LOOP_TTL_DROP`] or more below its TTL.
#[inline]
pub const fn remember_ttl(slot: u64, tag: u32, ttl: u8) -> Result<Option<u64>, DropReason> {
    let own = (slot >> 32) as u32 == tag && slot != 0;
    let highest = if own { slot as u8 } else { 0 };
    match loop_detected(highest, ttl) {
        Err(reason) => Err(reason),
        Ok(raised) if own && raised == highest => Ok(None),
        Ok(raised) => Ok(Some(((tag as u64) << 32) | raised as u64)),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::{
        AdmissionConfig, LOOP_MEMORY_LEN, LOOP_TTL_DROP, admit, loop_detected, loop_hash,
        loop_slot_index, loop_tag, mask, remember_ttl, source_bucket_key,
    };
    use crate::{DropReason, v4_mapped};

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_fresh_bucket_admits_a_burst_then_one_per_interval() {
        let now = 5 * SECOND;
        let mut tat = 0;
        for i in 0..3 {
            tat = admit(tat, now, 10, 3).unwrap_or_else(|| panic!("flow {i} of the burst"));
        }
        assert_eq!(admit(tat, now, 10, 3), None, "the fourth flow at once");
        // A tenth of a second later, one more token.
        assert!(admit(tat, now + SECOND / 10, 10, 3).is_some());
        assert_eq!(admit(tat, now + SECOND / 10 - 1, 10, 3), None);
    }

    #[test]
    fn a_burst_of_zero_counts_as_one_and_huge_rates_never_refuse() {
        let tat = admit(0, SECOND, 1, 0).expect("the first flow");
        assert_eq!(admit(tat, SECOND, 1, 0), None);
        let mut tat = 0;
        for _ in 0..1_000 {
            tat = admit(tat, SECOND, u32::MAX, 1).expect("1 ns per flow, 1 ns apart");
            // What a flow one nanosecond later sees.
            tat -= 1;
        }
    }

    #[test]
    fn an_idle_bucket_refills_only_up_to_its_burst() {
        let tat = admit(0, SECOND, 1, 2).expect("first");
        // Long idle: the bucket is full again, but not fuller than its burst.
        let later = 100 * SECOND;
        let tat = admit(tat, later, 1, 2).expect("first after idle");
        let tat = admit(tat, later, 1, 2).expect("second after idle");
        assert_eq!(admit(tat, later, 1, 2), None);
    }

    #[test]
    fn prefixes_aggregate_sources() {
        let config = AdmissionConfig::DEFAULT.with_source_prefixes(24, 64);
        let a = source_bucket_key(v4_mapped([198, 51, 100, 7]), true, &config);
        let b = source_bucket_key(v4_mapped([198, 51, 100, 200]), true, &config);
        let c = source_bucket_key(v4_mapped([198, 51, 101, 7]), true, &config);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, v4_mapped([198, 51, 100, 0]));
        let v6 = core::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6).octets();
        let key = source_bucket_key(v6, false, &AdmissionConfig::DEFAULT);
        assert_eq!(
            key,
            core::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0).octets()
        );
        // Out-of-range lengths are clamped, not wrapped.
        let whole = AdmissionConfig::DEFAULT.with_source_prefixes(99, 999);
        assert_eq!(source_bucket_key(v6, false, &whole), v6);
        assert_eq!(
            source_bucket_key(v4_mapped([1, 2, 3, 4]), true, &whole),
            v4_mapped([1, 2, 3, 4])
        );
    }

    #[test]
    fn mask_keeps_exactly_the_prefix() {
        let all = [0xff; 16];
        for bits in 0..=128_u32 {
            let masked = u128::from_be_bytes(mask(all, bits));
            assert_eq!(masked.count_ones(), bits, "/{bits}");
            assert_eq!(masked.leading_ones(), bits, "/{bits}");
        }
    }

    #[test]
    fn the_loop_guard_drops_only_well_below_the_highest_ttl() {
        assert_eq!(loop_detected(0, 64), Ok(64), "the first packet sets it");
        assert_eq!(loop_detected(64, 64), Ok(64), "a retransmission");
        assert_eq!(loop_detected(64, 61), Ok(64), "a route 3 hops longer");
        assert_eq!(
            loop_detected(64, 64 - LOOP_TTL_DROP),
            Err(DropReason::LoopDetected)
        );
        assert_eq!(loop_detected(64, 200), Ok(200), "a higher TTL raises it");
        assert_eq!(loop_detected(255, 0), Err(DropReason::LoopDetected));
        assert_eq!(loop_detected(3, 0), Ok(3));
    }

    #[test]
    fn the_default_is_what_a_zeroed_entry_means() {
        assert_eq!(
            AdmissionConfig::in_force(Some(&bytemuck::Zeroable::zeroed())),
            AdmissionConfig::DEFAULT
        );
        assert_eq!(AdmissionConfig::in_force(None), AdmissionConfig::DEFAULT);
        assert_eq!(
            AdmissionConfig::in_force(Some(&AdmissionConfig::UNLIMITED)),
            AdmissionConfig::UNLIMITED
        );
        assert!(!AdmissionConfig::DEFAULT.allow_list_enforced());
        assert!(AdmissionConfig::DEFAULT.loop_guard());
    }

    /// A packet's tuple, IPv4-mapped, as `loop_hash` takes it.
    fn hash_of(source: [u8; 4], destination: [u8; 4], ports: (u16, u16), protocol: u8) -> u64 {
        let mapped = |a: [u8; 4]| crate::v4_mapped(a);
        loop_hash(
            &mapped(source),
            &mapped(destination),
            ports.0,
            ports.1,
            protocol,
        )
    }

    #[test]
    fn the_loop_memory_drops_a_tuple_that_comes_back_lower() {
        let hash = hash_of([10, 0, 0, 2], [10, 0, 0, 1], (40_000, 10_022), 6);
        let tag = loop_tag(hash);
        let first = remember_ttl(0, tag, 64).expect("an empty slot takes any packet");
        assert_eq!(first, Some((u64::from(tag) << 32) | 0x40));
        let slot = first.unwrap_or_default();
        assert_eq!(
            remember_ttl(slot, tag, 64),
            Ok(None),
            "a steady flow never writes"
        );
        assert_eq!(
            remember_ttl(slot, tag, 62),
            Ok(None),
            "one round trip lower"
        );
        assert_eq!(
            remember_ttl(slot, tag, 64 - LOOP_TTL_DROP),
            Err(DropReason::LoopDetected),
            "two round trips between two reflectors lower"
        );
        assert_eq!(
            remember_ttl(slot, tag, 100),
            Ok(Some((u64::from(tag) << 32) | 0x64)),
            "a higher TTL raises it"
        );
        // Another tuple in the same slot takes it over, whatever its TTL.
        assert_eq!(
            remember_ttl(slot, tag ^ 1, 2),
            Ok(Some((u64::from(tag ^ 1) << 32) | 2))
        );
        // Tag 0 is a tag like any other once written.
        assert_eq!(remember_ttl(0, 0, 64), Ok(Some(64)));
        assert_eq!(remember_ttl(64, 0, 60), Err(DropReason::LoopDetected));
    }

    #[test]
    fn the_loop_hash_tells_every_field_apart() {
        let base = hash_of([10, 0, 0, 2], [10, 0, 0, 1], (40_000, 10_022), 6);
        let variants = [
            hash_of([10, 0, 0, 3], [10, 0, 0, 1], (40_000, 10_022), 6),
            hash_of([10, 0, 0, 2], [10, 0, 0, 9], (40_000, 10_022), 6),
            hash_of([10, 0, 0, 1], [10, 0, 0, 2], (40_000, 10_022), 6),
            hash_of([10, 0, 0, 2], [10, 0, 0, 1], (40_001, 10_022), 6),
            hash_of([10, 0, 0, 2], [10, 0, 0, 1], (10_022, 40_000), 6),
            hash_of([10, 0, 0, 2], [10, 0, 0, 1], (40_000, 10_022), 17),
        ];
        for variant in variants {
            assert_ne!(loop_tag(variant), loop_tag(base));
            assert_ne!(variant, base);
        }
        let v6 = |last: u8| {
            let mut addr = [0xfd, 0x52, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            addr[15] = last;
            addr
        };
        assert_ne!(
            loop_hash(&v6(2), &v6(1), 1, 2, 6),
            loop_hash(&v6(3), &v6(1), 1, 2, 6)
        );
    }

    #[test]
    fn the_loop_hash_spreads_over_every_slot() {
        // 4 tuples per slot on average from consecutive client ports and addresses: a
        // hash that left index bits unmixed would pile them into a few slots.
        let mut used = vec![0_u32; LOOP_MEMORY_LEN as usize];
        for client in 0..64_u8 {
            for port in 0..4_096_u16 {
                let hash = hash_of([10, 0, 1, client], [10, 0, 0, 1], (32_768 + port, 80), 6);
                used[loop_slot_index(hash) as usize] += 1;
            }
        }
        let empty = used.iter().filter(|&&n| n == 0).count();
        let fullest = used.iter().copied().max().unwrap_or_default();
        // Poisson with a mean of 4: e^-4 = 1.8% of slots empty, almost none above 16.
        assert!(empty < 2_000, "{empty} of {LOOP_MEMORY_LEN} slots unused");
        assert!(fullest <= 16, "a slot took {fullest} tuples");
    }
}
