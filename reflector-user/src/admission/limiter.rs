//! The new-flow token buckets of the userspace path: one per source prefix and a global
//! one, with the kernel's GCRA arithmetic (`reflector_common::admission::admit`) and its
//! prefix aggregation, in a bounded table.

use std::{collections::HashMap, net::IpAddr, time::Instant};

use reflector_common::{
    AdmissionConfig,
    admission::{admit, source_bucket_key},
    v4_mapped,
};

/// Source prefixes tracked at once, as the kernel's `SOURCE_BUCKETS`. Each costs a 16-byte
/// key, an 8-byte value and the hash table's overhead (~50 bytes in all): ~3 MiB when full.
pub const BUCKETS_LEN: usize = reflector_common::maps::SOURCE_BUCKETS_LEN as usize;

/// The buckets. Time is nanoseconds since the limiter was made, so a bucket never seen
/// (arrival time 0) is full, as in the kernel.
#[derive(Debug)]
pub struct Limiter {
    origin: Instant,
    capacity: usize,
    sources: HashMap<[u8; 16], u64>,
    global: u64,
}

impl Limiter {
    /// Buckets for at most `capacity` source prefixes.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            origin: Instant::now(),
            capacity: capacity.max(1),
            sources: HashMap::new(),
            global: 0,
        }
    }

    /// Source prefixes tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether no source prefix is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether a new flow from `source` at `now` is within both limits of `config`;
    /// charges both buckets when it is, neither when it is not.
    pub fn admit(&mut self, source: IpAddr, now: Instant, config: &AdmissionConfig) -> bool {
        let now = u64::try_from(now.saturating_duration_since(self.origin).as_nanos())
            .unwrap_or(u64::MAX);
        let mut source_next = None;
        let key = match source {
            IpAddr::V4(v4) => source_bucket_key(v4_mapped(v4.octets()), true, config),
            IpAddr::V6(v6) => source_bucket_key(v6.octets(), false, config),
        };
        if config.source_rate != 0 {
            let tat = self.sources.get(&key).copied().unwrap_or(0);
            match admit(tat, now, config.source_rate, config.source_burst) {
                Some(next) => source_next = Some(next),
                None => return false,
            }
        }
        if config.global_rate != 0 {
            match admit(self.global, now, config.global_rate, config.global_burst) {
                Some(next) => self.global = next,
                None => return false,
            }
        }
        if let Some(next) = source_next {
            self.make_room(&key, now);
            self.sources.insert(key, next);
        }
        true
    }

    /// Keeps the table within its capacity before `key` is inserted: first forgets the
    /// buckets that are full again (arrival time in the past: the same as no bucket), then,
    /// if every bucket is still busy, the one closest to full. Forgetting a bucket only
    /// ever admits more, as an eviction from the kernel's LRU map does.
    fn make_room(&mut self, key: &[u8; 16], now: u64) {
        if self.sources.len() < self.capacity || self.sources.contains_key(key) {
            return;
        }
        self.sources.retain(|_, tat| *tat > now);
        if self.sources.len() >= self.capacity
            && let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, tat)| **tat)
                .map(|(key, _)| *key)
        {
            self.sources.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr, Ipv6Addr},
        time::{Duration, Instant},
    };

    use reflector_common::AdmissionConfig;

    use super::Limiter;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, last))
    }

    #[test]
    fn sources_are_limited_per_prefix() {
        let config = AdmissionConfig::UNLIMITED.with_source_limit(1, 1);
        let mut limiter = Limiter::new(16);
        let now = Instant::now();
        assert!(limiter.admit(v4(7), now, &config));
        assert!(!limiter.admit(v4(7), now, &config));
        assert!(limiter.admit(v4(8), now, &config), "another /32");
        let per_24 = config.with_source_prefixes(24, 64);
        let mut limiter = Limiter::new(16);
        let now = Instant::now();
        assert!(limiter.admit(v4(7), now, &per_24));
        assert!(!limiter.admit(v4(8), now, &per_24), "the same /24");
        // The same /64 of IPv6.
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
        assert!(limiter.admit(a, now, &per_24));
        assert!(!limiter.admit(b, now, &per_24));
        assert!(limiter.admit(a, now + Duration::from_secs(1), &per_24));
    }

    #[test]
    fn a_refused_flow_charges_neither_bucket() {
        let config = AdmissionConfig::UNLIMITED
            .with_source_limit(1, 1)
            .with_global_limit(1, 2);
        let mut limiter = Limiter::new(16);
        let now = Instant::now();
        assert!(limiter.admit(v4(7), now, &config));
        assert!(
            !limiter.admit(v4(7), now, &config),
            "its own bucket is empty"
        );
        assert!(
            limiter.admit(v4(8), now, &config),
            "the global bucket kept one"
        );
        assert!(
            !limiter.admit(v4(9), now, &config),
            "now the global one is empty"
        );
    }

    #[test]
    fn a_flood_of_sources_costs_at_most_the_capacity_and_spares_known_sources() {
        let config = AdmissionConfig::UNLIMITED.with_source_limit(1, 1);
        let mut limiter = Limiter::new(64);
        let start = Instant::now();
        for i in 0..10_000_u32 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let now = start + Duration::from_micros(u64::from(i));
            assert!(limiter.admit(source, now, &config), "a fresh source");
            assert!(limiter.len() <= 64);
        }
        // A source evicted by the flood finds a full bucket: eviction only admits more.
        assert!(limiter.admit(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)), start, &config));
    }

    #[test]
    fn no_limits_track_nothing() {
        let mut limiter = Limiter::new(16);
        for _ in 0..100 {
            assert!(limiter.admit(v4(7), Instant::now(), &AdmissionConfig::UNLIMITED));
        }
        assert!(limiter.is_empty());
    }
}
