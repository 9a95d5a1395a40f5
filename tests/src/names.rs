//! Unique names and addresses, so tests running in parallel (threads of one test binary,
//! or several test binaries) never share a namespace, an interface or a subnet.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

/// Every name starts with this, so anything left behind is easy to recognise.
pub const PREFIX: &str = "rfl";

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number no other call in this process returns.
#[must_use]
pub fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// `rfl<pid>-<id><role>`, e.g. `rfl41234-3x`: unique across processes (pid) and within
/// this one (`id`, from [`next_id`]).
///
/// Panics when the name would not fit an interface name, so every name from here can be
/// used for one.
#[must_use]
pub fn name(id: u32, role: &str) -> String {
    let name = format!("{PREFIX}{}-{id}{role}", std::process::id());
    assert!(
        name.len() <= IFNAME_MAX,
        "name {name:?} is longer than an interface name may be ({IFNAME_MAX} bytes)"
    );
    name
}

/// The IPv4 /24 of topology `id`: `10.<pid-derived>.<id>.0`.
#[must_use]
pub fn subnet_v4(id: u32) -> [u8; 3] {
    let pid = std::process::id();
    [10, (pid % 250 + 1) as u8, (id % 256) as u8]
}

/// Host `host` of the IPv4 /24 of topology `id`.
#[must_use]
pub fn addr_v4(id: u32, host: u8) -> Ipv4Addr {
    let [a, b, c] = subnet_v4(id);
    Ipv4Addr::new(a, b, c, host)
}

/// Host `host` of the IPv6 /64 of topology `id`: `fd52:<pid>:<id>::<host>` (unique local).
#[must_use]
pub fn addr_v6(id: u32, host: u8) -> Ipv6Addr {
    let pid = std::process::id();
    Ipv6Addr::new(
        0xfd52,
        (pid & 0xffff) as u16,
        (id & 0xffff) as u16,
        0,
        0,
        0,
        0,
        u16::from(host),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit_an_interface() {
        let (a, b) = (next_id(), next_id());
        assert_ne!(name(a, "x"), name(b, "x"));
        assert!(name(999, "r").len() <= IFNAME_MAX);
        assert!(name(a, "x").starts_with(PREFIX));
    }

    #[test]
    fn addresses_are_private() {
        assert!(addr_v4(7, 1).is_private());
        assert_eq!(addr_v6(7, 2).segments()[0] & 0xfe00, 0xfc00);
    }
}
