//! Plain-old-data types shared by reflector's kernel program (`reflector-ebpf`) and its
//! control plane (`reflector-user`).
//!
//! Everything here is `#[repr(C)]` without padding so both sides agree on the bytes. With the
//! `user` feature the types also implement [`aya::Pod`], which aya's typed maps require.
#![no_std]

pub mod admission;
pub mod flow;
pub mod maps;
pub mod port;
pub mod reason;
pub mod stats;

pub use admission::AdmissionConfig;
pub use flow::{FlowKey, FlowValue};
pub use port::{
    PORT_FLAG_LISTEN_STATELESS, PORT_FLAG_STATELESS, PORT_FLAG_TARGET, PortEntry, Protocol,
    port_index,
};
pub use reason::{DropReason, NotReflected, PassReason};
pub use stats::{Counter, Direction, Family, MapStatIndex, STATS_LEN, StatIndex};

/// What an entry of the local-address map says about an address of this host.
pub mod addr_kind {
    /// A unicast address assigned to one of this host's interfaces: a valid destination of
    /// a forward packet, and never a valid source.
    pub const LOCAL: u32 = 1;
    /// A subnet broadcast address of one of this host's IPv4 networks: never a valid source.
    pub const BROADCAST: u32 = 2;
}

/// Maps an IPv4 address to the IPv4-mapped IPv6 form (`::ffff:a.b.c.d`) used for every
/// address key, so one map serves both families.
#[must_use]
pub const fn v4_mapped(octets: [u8; 4]) -> [u8; 16] {
    // One 128-bit value, not an array literal: LLVM zeroes the literal's ten leading bytes
    // with a call to a byte-wise `memset` on the BPF target, on every packet.
    ((0xffff_u128 << 32) | u32::from_be_bytes(octets) as u128).to_be_bytes()
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is `#[repr(C)]`, made only of integers and byte arrays, and has no
    // padding (checked by the size assertions next to each definition).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowValue {}
    unsafe impl aya::Pod for super::PortEntry {}
    unsafe impl aya::Pod for super::Counter {}
    unsafe impl aya::Pod for super::AdmissionConfig {}
}

#[cfg(test)]
mod tests {
    use super::v4_mapped;

    #[test]
    fn v4_mapped_is_the_rfc_4291_form() {
        assert_eq!(
            v4_mapped([192, 0, 2, 1]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]
        );
        let mapped = core::net::Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped();
        assert_eq!(v4_mapped([198, 51, 100, 7]), mapped.octets());
    }
}
