//! What an address is, from its 16 bytes alone (IPv4 as IPv4-mapped IPv6, as the maps key
//! it). Pure, so it is also built and tested on the host.

use reflector_common::PassReason;

/// Whether `addr` is IPv4-mapped (`::ffff:a.b.c.d`): how the maps key an IPv4 address.
#[inline(always)]
pub(crate) fn is_v4_mapped(addr: &[u8; 16]) -> bool {
    addr[..10].iter().all(|&b| b == 0) && addr[10] == 0xff && addr[11] == 0xff
}

/// Refuses a source no unicast host has, whatever this host's addresses: unspecified,
/// loopback, multicast, or (IPv4) the limited broadcast. A reflected packet must never be
/// sent to one.
///
/// # Errors
/// The reason naming what the source is.
#[inline(always)]
pub(crate) fn check_source_scope(addr: &[u8; 16]) -> Result<(), PassReason> {
    if is_v4_mapped(addr) {
        match [addr[12], addr[13], addr[14], addr[15]] {
            [0, 0, 0, 0] => Err(PassReason::SourceUnspecified),
            [127, ..] => Err(PassReason::SourceLoopback),
            [224..=239, ..] => Err(PassReason::SourceMulticast),
            [255, 255, 255, 255] => Err(PassReason::SourceBroadcast),
            _ => Ok(()),
        }
    } else if addr[0] == 0xff {
        Err(PassReason::SourceMulticast)
    } else if addr[..15].iter().all(|&b| b == 0) {
        match addr[15] {
            0 => Err(PassReason::SourceUnspecified),
            1 => Err(PassReason::SourceLoopback),
            _ => Ok(()),
        }
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;
    use reflector_common::{PassReason, v4_mapped};

    use super::{check_source_scope, is_v4_mapped};

    /// What std says a source is, as the reason it is refused for.
    fn std_verdict(addr: IpAddr) -> Result<(), PassReason> {
        if addr.is_unspecified() {
            Err(PassReason::SourceUnspecified)
        } else if addr.is_loopback() {
            Err(PassReason::SourceLoopback)
        } else if addr.is_multicast() {
            Err(PassReason::SourceMulticast)
        } else if matches!(addr, IpAddr::V4(v4) if v4.is_broadcast()) {
            Err(PassReason::SourceBroadcast)
        } else {
            Ok(())
        }
    }

    /// IPv4 addresses, the special ones and their neighbours as often as random ones.
    fn v4() -> impl Strategy<Value = [u8; 4]> {
        prop_oneof![
            any::<[u8; 4]>(),
            Just([0, 0, 0, 0]),
            Just([255, 255, 255, 255]),
            (any::<u8>(), any::<[u8; 3]>()).prop_map(|(first, rest)| {
                // Around 127/8 and 224/4..239: the edges are where a range is written wrong.
                let first = [0, 1, 126, 127, 128, 223, 224, 239, 240, 255][usize::from(first % 10)];
                [first, rest[0], rest[1], rest[2]]
            }),
        ]
    }

    /// IPv6 addresses, with the special prefixes as often as random ones.
    fn v6() -> impl Strategy<Value = [u8; 16]> {
        prop_oneof![
            any::<[u8; 16]>(),
            (any::<u8>(), any::<[u8; 15]>()).prop_map(|(first, rest)| {
                let first = [0xfe, 0xff, 0x00][usize::from(first % 3)];
                let mut addr = [first; 16];
                addr[1..].copy_from_slice(&rest);
                addr
            }),
            any::<u8>().prop_map(|last| {
                let mut addr = [0; 16];
                addr[15] = last % 4;
                addr
            }),
            any::<[u8; 4]>().prop_map(|v4| {
                // One byte off IPv4-mapped: must be judged as IPv6.
                let mut addr = v4_mapped(v4);
                addr[11] = 0xfe;
                addr
            }),
        ]
    }

    proptest! {
        #[test]
        fn v4_sources_are_judged_as_std_sees_them(addr in v4()) {
            prop_assert_eq!(
                check_source_scope(&v4_mapped(addr)),
                std_verdict(Ipv4Addr::from(addr).into())
            );
        }

        #[test]
        fn v6_sources_are_judged_as_std_sees_them(addr in v6()) {
            let std_addr = Ipv6Addr::from(addr);
            prop_assume!(std_addr.to_ipv4_mapped().is_none());
            prop_assert_eq!(check_source_scope(&addr), std_verdict(std_addr.into()));
        }

        #[test]
        fn v4_mapped_is_what_std_calls_so(addr in prop_oneof![v6(), v4().prop_map(v4_mapped)]) {
            prop_assert_eq!(
                is_v4_mapped(&addr),
                Ipv6Addr::from(addr).to_ipv4_mapped().is_some()
            );
        }
    }
}
