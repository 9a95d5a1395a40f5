//! The host every kernel test and the benchmark's kernel workload run against: its
//! addresses, its port map, and the client that talks to it. Documentation ranges only
//! (RFC 5737, RFC 3849).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reflector_common::{Family, FlowKey, FlowValue, Protocol, addr_kind};

pub use crate::packets::{CLIENT_MAC, HOST_MAC};
use crate::{packets::Frame, test_run::Kernel};

/// This host's IPv4 address `A` (kind LOCAL).
pub const HOST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Another IPv4 address of this host (kind LOCAL).
pub const HOST_V4_OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The broadcast address of this host's IPv4 subnet (kind BROADCAST).
pub const SUBNET_BROADCAST_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 255);
/// An IPv4 address that is not this host's.
pub const NOT_LOCAL_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
/// The client's IPv4 address `S`.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// This host's IPv6 address `A` (kind LOCAL).
pub const HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Another IPv6 address of this host (kind LOCAL).
pub const HOST_V6_OTHER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// An IPv6 address that is not this host's.
pub const NOT_LOCAL_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99);
/// The client's IPv6 address `S`.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 7);

/// TCP listen port `L`, mapped to [`TCP_TARGET`].
pub const TCP_LISTEN: u16 = 8080;
/// TCP target port `P`.
pub const TCP_TARGET: u16 = 80;
/// UDP listen port `L`, mapped to [`UDP_TARGET`].
pub const UDP_LISTEN: u16 = 10053;
/// UDP target port `P`.
pub const UDP_TARGET: u16 = 53;
/// The counter slot of the TCP map in `MAP_STATS` (not 0, so a slot the program fails to
/// carry shows).
pub const TCP_MAP_SLOT: u16 = 3;
/// The counter slot of the UDP map in `MAP_STATS`.
pub const UDP_MAP_SLOT: u16 = 6;
/// The client's source port `s`.
pub const CLIENT_PORT: u16 = 40_000;
/// A port mapped for neither protocol.
pub const UNMAPPED_PORT: u16 = 9_999;

/// Fills the maps of `kernel` with this host: `8080:80/tcp` (counter slot
/// [`TCP_MAP_SLOT`]), `10053:53/udp` ([`UDP_MAP_SLOT`]), and the addresses above.
pub fn configure(kernel: &mut Kernel) {
    kernel.map_port(Protocol::Tcp, TCP_LISTEN, TCP_TARGET, TCP_MAP_SLOT);
    kernel.map_port(Protocol::Udp, UDP_LISTEN, UDP_TARGET, UDP_MAP_SLOT);
    for local in [
        IpAddr::V4(HOST_V4),
        IpAddr::V4(HOST_V4_OTHER),
        IpAddr::V6(HOST_V6),
        IpAddr::V6(HOST_V6_OTHER),
    ] {
        kernel.add_address(local, addr_kind::LOCAL);
    }
    kernel.add_address(IpAddr::V4(SUBNET_BROADCAST_V4), addr_kind::BROADCAST);
}

/// Marks both maps of [`configure`] stateless, as the control plane does for a target port
/// only one listen port maps to: replies need no flow entry, forward packets record none.
pub fn configure_stateless(kernel: &mut Kernel) {
    kernel.map_port_stateless(Protocol::Tcp, TCP_LISTEN, TCP_TARGET, TCP_MAP_SLOT);
    kernel.map_port_stateless(Protocol::Udp, UDP_LISTEN, UDP_TARGET, UDP_MAP_SLOT);
}

/// The listen port `L` of `protocol`.
#[must_use]
pub const fn listen_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => TCP_LISTEN,
        Protocol::Udp => UDP_LISTEN,
    }
}

/// The counter slot of the map of `protocol`.
#[must_use]
pub const fn map_slot(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => TCP_MAP_SLOT,
        Protocol::Udp => UDP_MAP_SLOT,
    }
}

/// The target port `P` of `protocol`.
#[must_use]
pub const fn target_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Tcp => TCP_TARGET,
        Protocol::Udp => UDP_TARGET,
    }
}

/// This host's address `A` of `family`.
#[must_use]
pub const fn host(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(HOST_V4),
        Family::V6 => IpAddr::V6(HOST_V6),
    }
}

/// The client's address `S` of `family`.
#[must_use]
pub const fn client(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(CLIENT_V4),
        Family::V6 => IpAddr::V6(CLIENT_V6),
    }
}

/// A forward frame: client `S:s` to this host's `A:L`.
#[must_use]
pub fn forward(protocol: Protocol, family: Family) -> Frame {
    Frame::transport(
        protocol,
        client(family),
        CLIENT_PORT,
        host(family),
        listen_port(protocol),
    )
}

/// What the contract says leaves for a forward `input` to `A:L` from `S:s`: from `A:s` to
/// `S:P`.
#[must_use]
pub fn forward_reflected(input: &Frame) -> Frame {
    let (client_port, _) = input.ports();
    input.reflected(client_port, target_port(input.protocol()))
}

/// The flow entry a forward `input` from `S:s` to `A:L` records:
/// `(S, A, P, s, protocol) -> (L, slot)`, with the frame's TTL as the highest seen forward.
#[must_use]
pub fn forward_flow(input: &Frame) -> (FlowKey, FlowValue) {
    let (client_port, listen) = input.ports();
    let protocol = input.protocol();
    (
        FlowKey::new(
            input.source_key(),
            input.destination_key(),
            target_port(protocol),
            client_port,
            protocol as u8,
        ),
        FlowValue::new(listen, map_slot(protocol)).with_forward_ttl(input.ttl()),
    )
}

/// A reply frame of the flow a [`forward`] frame creates: the client's service `S:P` to this
/// host's `A:s`.
#[must_use]
pub fn reverse(protocol: Protocol, family: Family) -> Frame {
    Frame::transport(
        protocol,
        client(family),
        target_port(protocol),
        host(family),
        CLIENT_PORT,
    )
}

/// What the contract says leaves for a reply `input` from `S:P` to `A:s`: from `A:L` to
/// `S:s`.
#[must_use]
pub fn reverse_reflected(input: &Frame) -> Frame {
    let (_, client_port) = input.ports();
    input.reflected(listen_port(input.protocol()), client_port)
}
