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

use reflector_common::{AdmissionConfig, DropReason};

pub use allow_list::{AllowList, Prefix, PrefixError};
pub use limiter::{BUCKETS_LEN, Limiter};

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
