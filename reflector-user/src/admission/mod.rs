//! Admission on the userspace (splice) path: the same allow-list and new-flow rate limits
//! the kernel program applies (`reflector_common::admission` holds the arithmetic both
//! share), for the connections and datagrams the hybrid listener and the splice mode
//! reflect. A refused TCP connection is reset at accept (`splice::relay::reset`, then
//! dropped); a refused UDP datagram is dropped. Each refusal is counted under its
//! [`DropReason`].
//!
//! Every accepted connection and every datagram that would open a new UDP flow is a new
//! flow here, as a first packet is in the kernel; the established ones are not asked again.

mod allow_list;
mod limiter;

use std::{net::IpAddr, sync::Mutex, time::Instant};

use reflector_common::{
    AdmissionConfig, DropReason,
    admission::{ADMISSION_ALLOW_LIST, ADMISSION_FLOW_TABLE_ALWAYS},
};

use crate::flow_table::FlowTable;

pub use allow_list::{AllowList, Prefix, PrefixError};
pub use limiter::{BUCKETS_LEN, Limiter};

/// Who may open a new flow and how often, as the operator sets it (`--allow`,
/// `--limit-*`); both paths apply the same ([`AdmissionSettings::config`] for the kernel,
/// [`Admission`] for the userspace path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// Allowed source prefixes; empty: every source.
    pub allow: Vec<Prefix>,
    /// New flows per second per source prefix; 0: no per-source limit.
    pub limit_per_source: u32,
    /// New flows a source prefix may open at once.
    pub limit_per_source_burst: u32,
    /// New flows per second from all sources together; 0: no global limit.
    pub limit_global: u32,
    /// New flows all sources may open at once.
    pub limit_global_burst: u32,
    /// The prefix length IPv4 sources are counted by.
    pub limit_prefix_v4: u8,
    /// The prefix length IPv6 sources are counted by.
    pub limit_prefix_v6: u8,
    /// Which maps keep the flow table (`--flow-table`): written in the same kernel entry,
    /// as a map without flow state is admitted packet by packet.
    pub flow_table: FlowTable,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        let config = AdmissionConfig::DEFAULT;
        Self {
            allow: Vec::new(),
            limit_per_source: config.source_rate,
            limit_per_source_burst: config.source_burst,
            limit_global: config.global_rate,
            limit_global_burst: config.global_burst,
            limit_prefix_v4: config.source_prefix_v4 as u8,
            limit_prefix_v6: config.source_prefix_v6 as u8,
            flow_table: FlowTable::default(),
        }
    }
}

impl AdmissionSettings {
    /// The kernel program's configuration entry for these settings: the allow-list
    /// enforced when it has prefixes, the limits, the loop guard on.
    #[must_use]
    pub fn config(&self) -> AdmissionConfig {
        AdmissionConfig::DEFAULT
            .with_source_limit(self.limit_per_source, self.limit_per_source_burst)
            .with_global_limit(self.limit_global, self.limit_global_burst)
            .with_source_prefixes(
                u32::from(self.limit_prefix_v4),
                u32::from(self.limit_prefix_v6),
            )
            .with_flag(ADMISSION_ALLOW_LIST, !self.allow.is_empty())
            .with_flag(
                ADMISSION_FLOW_TABLE_ALWAYS,
                self.flow_table == FlowTable::Always,
            )
    }

    /// The userspace path's admission for these settings (fresh buckets).
    #[must_use]
    pub fn admission(&self) -> Admission {
        Admission::new(self.config(), AllowList::new(self.allow.clone()))
    }

    /// The limits as the log shows them: `at most 10000/s per /32 (IPv4) or /64 (IPv6)
    /// source, bursts of 20000; 100000/s in all, bursts of 100000`.
    #[must_use]
    pub fn limits(&self) -> String {
        let per_source = if self.limit_per_source == 0 {
            "no limit per source".to_owned()
        } else {
            format!(
                "at most {}/s per /{} (IPv4) or /{} (IPv6) source, bursts of {}",
                self.limit_per_source,
                self.limit_prefix_v4,
                self.limit_prefix_v6,
                self.limit_per_source_burst
            )
        };
        let global = if self.limit_global == 0 {
            "no limit in all".to_owned()
        } else {
            format!(
                "{}/s in all, bursts of {}",
                self.limit_global, self.limit_global_burst
            )
        };
        format!("{per_source}; {global}")
    }

    /// The allow-list as the logs and replies show it: `10.0.0.0/8 fd00::/8`, or `every
    /// source`.
    #[must_use]
    pub fn allow_list(&self) -> String {
        if self.allow.is_empty() {
            return "every source".to_owned();
        }
        let names: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
        names.join(" ")
    }
}

/// The allow-list and the rate limits of the userspace path, shared by its workers.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    allow: AllowList,
    limiter: Mutex<Limiter>,
}

impl Admission {
    /// Admission under `config` (its allow-list switch and limits; the loop guard is the
    /// kernel's) with the prefixes `allow`.
    #[must_use]
    pub fn new(config: AdmissionConfig, allow: AllowList) -> Self {
        Self {
            config,
            allow,
            limiter: Mutex::new(Limiter::new(BUCKETS_LEN)),
        }
    }

    /// Whether a new flow from `source` is admitted now.
    ///
    /// # Errors
    /// [`DropReason::SourceNotAllowed`] or [`DropReason::RateLimited`].
    pub fn admit(&self, source: IpAddr) -> Result<(), DropReason> {
        self.admit_at(source, Instant::now())
    }

    /// [`Self::admit`] at `now`.
    ///
    /// # Errors
    /// As [`Self::admit`].
    pub fn admit_at(&self, source: IpAddr, now: Instant) -> Result<(), DropReason> {
        // A dual-stack socket reports an IPv4 client as `::ffff:a.b.c.d`; on the wire it is
        // IPv4, and the kernel judges it as IPv4.
        let source = source.to_canonical();
        if self.config.allow_list_enforced() && !self.allow.contains(source) {
            return Err(DropReason::SourceNotAllowed);
        }
        // A poisoned lock means a worker panicked mid-update; the buckets are plain numbers,
        // still sound to use.
        let mut limiter = self
            .limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if limiter.admit(source, now, &self.config) {
            Ok(())
        } else {
            Err(DropReason::RateLimited)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr, Ipv6Addr},
        time::{Duration, Instant},
    };

    use reflector_common::{AdmissionConfig, DropReason, admission::ADMISSION_ALLOW_LIST};

    use super::{Admission, AllowList};

    fn allow(prefixes: &[&str]) -> AllowList {
        AllowList::parse(prefixes.iter().copied()).expect("valid prefixes")
    }

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn by_default_every_source_is_admitted_within_generous_limits() {
        let admission = Admission::new(AdmissionConfig::DEFAULT, AllowList::default());
        let now = Instant::now();
        for _ in 0..AdmissionConfig::DEFAULT.source_burst {
            assert_eq!(admission.admit_at(CLIENT, now), Ok(()));
        }
        assert_eq!(
            admission.admit_at(CLIENT, now),
            Err(DropReason::RateLimited)
        );
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8));
        assert_eq!(admission.admit_at(other, now), Ok(()));
    }

    #[test]
    fn an_enforced_allow_list_refuses_sources_outside() {
        let config = AdmissionConfig::UNLIMITED.with_flag(ADMISSION_ALLOW_LIST, true);
        let admission = Admission::new(config, allow(&["198.51.100.0/24", "2001:db8::/32"]));
        assert_eq!(admission.admit(CLIENT), Ok(()));
        assert_eq!(
            admission.admit(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1))),
            Err(DropReason::SourceNotAllowed)
        );
        assert_eq!(
            admission.admit(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1))),
            Ok(())
        );
        // An IPv4 client through a dual-stack socket is judged as IPv4.
        let mapped = Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped();
        assert_eq!(admission.admit(IpAddr::V6(mapped)), Ok(()));
        let mapped_outside = Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped();
        assert_eq!(
            admission.admit(IpAddr::V6(mapped_outside)),
            Err(DropReason::SourceNotAllowed)
        );
    }

    #[test]
    fn a_list_not_enforced_allows_everyone() {
        let admission = Admission::new(AdmissionConfig::UNLIMITED, allow(&["10.0.0.0/8"]));
        assert_eq!(admission.admit(CLIENT), Ok(()));
    }

    #[test]
    fn the_global_limit_holds_across_sources_and_refills() {
        let config = AdmissionConfig::UNLIMITED.with_global_limit(10, 2);
        let admission = Admission::new(config, AllowList::default());
        let now = Instant::now();
        let source = |i: u8| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i));
        assert_eq!(admission.admit_at(source(1), now), Ok(()));
        assert_eq!(admission.admit_at(source(2), now), Ok(()));
        assert_eq!(
            admission.admit_at(source(3), now),
            Err(DropReason::RateLimited)
        );
        let later = now + Duration::from_millis(100);
        assert_eq!(admission.admit_at(source(3), later), Ok(()));
    }

    #[test]
    fn an_allow_list_refusal_costs_no_tokens() {
        let config = AdmissionConfig::DEFAULT
            .with_global_limit(1, 1)
            .with_flag(ADMISSION_ALLOW_LIST, true);
        let admission = Admission::new(config, allow(&["198.51.100.0/24"]));
        let now = Instant::now();
        let outsider = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
        for _ in 0..100 {
            assert_eq!(
                admission.admit_at(outsider, now),
                Err(DropReason::SourceNotAllowed)
            );
        }
        assert_eq!(admission.admit_at(CLIENT, now), Ok(()));
    }
}
