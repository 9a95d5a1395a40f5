//! What every frame the kernel program transmits must satisfy, whatever the model says:
//! checked with etherparse's parser and checksums (an implementation independent of both
//! the program and the model).

use std::net::IpAddr;

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket};

use crate::{
    model::{AddressKind, Host},
    packets::verify_checksums,
};

/// Checks the frame `output` the program transmitted for `input`, on `host`:
/// - the same length;
/// - a TCP or UDP packet right after the IP header (etherparse reads it, length fields
///   aside);
/// - checksums correct whenever the input's were;
/// - only the fields a reflection changes differ: Ethernet addresses, IP addresses,
///   TTL / hop limit, the IPv4 header checksum, the ports and the transport checksum;
/// - sent to a unicast Ethernet address and to an IP address that is not multicast,
///   broadcast, loopback, unspecified or this host's (also in IPv4-mapped form).
///
/// # Errors
/// Each broken invariant, described.
pub fn check_transmitted(input: &[u8], output: &[u8], host: &Host) -> Result<(), String> {
    let mut problems = Vec::new();
    if input.len() != output.len() {
        problems.push(format!(
            "length changed from {} to {}",
            input.len(),
            output.len()
        ));
    }
    // Lax: the program does not check length fields (README), so neither may this.
    let packet = LaxSlicedPacket::from_ethernet(output)
        .map_err(|e| format!("etherparse cannot read the transmitted frame: {e}"))?;
    let mut allowed = vec![false; output.len()];
    let mut allow = |start: usize, len: usize| {
        for flag in allowed.iter_mut().skip(start).take(len) {
            *flag = true;
        }
    };
    allow(0, 12);
    let offset = |slice: &[u8]| slice.as_ptr() as usize - output.as_ptr() as usize;
    let (destination, l4, protocol) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let header = ip.header();
            let at = offset(header.slice());
            allow(at + 8, 1);
            allow(at + 10, 2);
            allow(at + 12, 8);
            (
                IpAddr::V4(header.destination_addr()),
                at + header.slice().len(),
                header.protocol(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let header = ip.header();
            let at = offset(header.slice());
            allow(at + 7, 1);
            allow(at + 8, 32);
            (
                IpAddr::V6(header.destination_addr()),
                at + header.slice().len(),
                header.next_header(),
            )
        }
        other => return Err(format!("transmitted a frame that is not IP: {other:?}")),
    };
    match protocol {
        IpNumber::TCP if output.len() >= l4 + 20 => {
            allow(l4, 4);
            allow(l4 + 16, 2);
        }
        IpNumber::UDP if output.len() >= l4 + 8 => {
            allow(l4, 4);
            allow(l4 + 6, 2);
        }
        other => problems.push(format!(
            "transmitted a frame without a whole TCP or UDP header after the IP header \
             (protocol {other:?})"
        )),
    }
    let changed: Vec<String> = input
        .iter()
        .zip(output)
        .enumerate()
        .filter(|&(at, (a, b))| a != b && !allowed[at])
        .map(|(at, _)| format!("@{at}"))
        .collect();
    if !changed.is_empty() {
        problems.push(format!(
            "bytes a reflection must not change were changed: {}",
            changed.join(", ")
        ));
    }
    if verify_checksums(input).is_ok() {
        if let Err(problem) = verify_checksums(output) {
            problems.push(format!(
                "the input's checksums were correct, the output's are not: {problem}"
            ));
        }
    }
    if output[0] & 1 != 0 {
        problems.push(format!(
            "sent to a group Ethernet address {:02x?}",
            &output[..6]
        ));
    }
    if let Some(why) = forbidden_destination(destination, host) {
        problems.push(format!("sent to {destination}: {why}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Why a reflection must never be sent to `addr`, if it must not.
fn forbidden_destination(addr: IpAddr, host: &Host) -> Option<&'static str> {
    let forms = match addr {
        IpAddr::V6(v6) => [Some(addr), v6.to_ipv4_mapped().map(IpAddr::V4)],
        IpAddr::V4(_) => [Some(addr), None],
    };
    forms.into_iter().flatten().find_map(|addr| {
        let kind = host.addresses.get(&addr);
        match addr {
            _ if addr.is_multicast() => Some("multicast"),
            IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
            _ if kind == Some(&AddressKind::Broadcast) => Some("this host's subnet broadcast"),
            _ if addr.is_loopback() => Some("loopback"),
            _ if addr.is_unspecified() => Some("unspecified"),
            _ if kind == Some(&AddressKind::Local) => Some("this host's own address"),
            _ => None,
        }
    })
}
