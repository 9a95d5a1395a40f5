//! A reference model of the reflection contract, in plain Rust, written from the README's
//! rules ("How it works", the table of pass reasons, the VLAN/QinQ and IPv4 options rules,
//! the TTL rule, the forbidden sources, the flow table) and not from the kernel program.
//!
//! For any frame and any state of the port maps, this host's addresses and the flow table,
//! [`Host::handle`] decides what the kernel program must do: reflect the frame (and with
//! which exact bytes, counted in which direction, family and port-map slot, recording
//! which flow) or pass it untouched under one named reason. The differential fuzzer
//! (`crate::differential`) holds the kernel program to it, frame by frame.
//!
//! Where the README leaves a choice open the rule picked here is written in the README
//! too (the order the checks apply in, what "malformed" covers, how a checksum that was
//! already wrong on arrival leaves); each such rule is marked "README:" below.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use reflector_common::{
    Direction, DropReason, Family, FlowKey, FlowValue, PassReason, Protocol,
    admission::{LOOP_TTL_DROP, loop_hash, loop_slot_index, loop_tag},
};

use crate::test_run::address_key;

/// 802.1Q tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad (`QinQ` service) tag.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IPv4.
const ETHERTYPE_IPV4: u16 = 0x0800;
/// IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethernet header length.
const ETH_LEN: usize = 14;
/// VLAN tags reflected: one 802.1Q tag, or a `QinQ` pair.
const MAX_VLAN_TAGS: usize = 2;
/// IPv6 "next header" values that are extension headers (IANA's list, RFC 8200 section 4),
/// apart from the fragment header (44), which has its own reason.
const IPV6_EXTENSION_HEADERS: [u8; 10] = [0, 43, 50, 51, 60, 135, 139, 140, 253, 254];
/// The IPv6 fragment header.
const IPV6_FRAGMENT: u8 = 44;

/// What an address is to this host (`LOCAL_ADDRS`' kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressKind {
    /// Assigned to one of its interfaces.
    Local,
    /// The broadcast address of one of its IPv4 subnets.
    Broadcast,
}

/// One port map `L:P/protocol`, counted in `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortMap {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The listen port `L`.
    pub listen: u16,
    /// The target port `P`.
    pub target: u16,
    /// Its counter slot in `MAP_STATS`.
    pub slot: u16,
}

/// A reflected flow as the model records it: family-aware addresses (the kernel's key maps
/// IPv4 into IPv6; [`Flow::key`] gives that form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The client `S`.
    pub client: IpAddr,
    /// This host's address `A` the client connected to.
    pub local: IpAddr,
    /// The target port `P`.
    pub target: u16,
    /// The client's port `s`.
    pub client_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl Flow {
    /// The kernel's key for this flow.
    #[must_use]
    pub fn key(&self) -> FlowKey {
        FlowKey::new(
            address_key(self.client),
            address_key(self.local),
            self.target,
            self.client_port,
            self.protocol as u8,
        )
    }
}

/// The state a frame is judged against (ordered maps: the generator draws from them, and
/// the same seed must give the same frames).
#[derive(Clone, Debug, Default)]
pub struct Host {
    /// The port maps.
    pub maps: Vec<PortMap>,
    /// This host's addresses, and its IPv4 subnet broadcast addresses.
    pub addresses: BTreeMap<IpAddr, AddressKind>,
    /// The flow table: where replies of each flow go back to, and the highest TTL each
    /// direction of it arrived with.
    pub flows: BTreeMap<Flow, FlowValue>,
    /// The enforced allow-list (prefixes of either family); `None`: every source allowed.
    /// (The new-flow rate limits depend on time and are off here: the kernel table tests
    /// them.)
    pub allow: Option<Vec<(IpAddr, u8)>>,
    /// Whether every map keeps the flow table, even one whose target port is unique
    /// (`ADMISSION_FLOW_TABLE_ALWAYS`).
    pub flow_table_forced: bool,
    /// The loop memory of packets without flow state: slot index (`LOOP_MEMORY`'s) to the
    /// tuple that holds it and that tuple's highest TTL; slots not here are empty.
    pub loop_memory: BTreeMap<u32, LoopSlot>,
}

/// A packet's 5-tuple as it arrived: source, destination, their ports, protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tuple {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// Source port.
    pub source_port: u16,
    /// Destination port.
    pub destination_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl Tuple {
    /// The kernel's hash of the tuple: which slot it uses, and the tag it leaves there.
    fn hash(&self) -> u64 {
        loop_hash(
            &address_key(self.source),
            &address_key(self.destination),
            self.source_port,
            self.destination_port,
            self.protocol as u8,
        )
    }
}

/// One slot of the loop memory as the model keeps it: the whole tuple, not its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopSlot {
    /// The tuple that last took the slot.
    pub tuple: Tuple,
    /// The highest TTL it arrived with.
    pub highest: u8,
}

impl LoopSlot {
    /// The slot's value as the kernel stores it: the tuple's tag, then the TTL.
    #[must_use]
    pub fn kernel_value(&self) -> u64 {
        (u64::from(loop_tag(self.tuple.hash())) << 32) | u64::from(self.highest)
    }
}

/// What must happen to a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Sent back out of the interface it came in on.
    Reflect(Reflection),
    /// Passed to the network stack untouched, counted under this reason.
    Pass(PassReason),
    /// Dropped untouched, counted under this reason.
    Drop(DropReason),
}

/// A reflected frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reflection {
    /// The exact frame that leaves.
    pub output: Vec<u8>,
    /// The direction counted.
    pub direction: Direction,
    /// The family counted.
    pub family: Family,
    /// The port map's counter slot in `MAP_STATS`.
    pub map_slot: u16,
    /// The frame's flow as it stands after the frame: recorded or refreshed by a forward
    /// frame, its reverse TTL raised by a reply.
    pub flow: Option<(Flow, FlowValue)>,
    /// The loop-memory slot a frame without flow state wrote, and what it holds now.
    pub loop_slot: Option<(u32, LoopSlot)>,
}

/// The verdict on one frame and what it did to the flow table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handled {
    /// What must happen to the frame.
    pub outcome: Outcome,
    /// Whether the frame created a flow-table entry that was not there (counted in
    /// `flows_created`).
    pub flow_created: bool,
}

/// A frame's IP packet, as far as the contract looks at it.
struct Packet {
    family: Family,
    /// Offset of the IP header.
    ip: usize,
    /// Offset of the transport header.
    l4: usize,
    protocol: Protocol,
    source: IpAddr,
    destination: IpAddr,
    ttl: u8,
    source_port: u16,
    destination_port: u16,
}

impl Host {
    /// The port map listening on `port` for `protocol`.
    #[must_use]
    pub fn listening(&self, protocol: Protocol, port: u16) -> Option<&PortMap> {
        self.maps
            .iter()
            .find(|map| map.protocol == protocol && map.listen == port)
    }

    /// Whether `port` is the target port of some map of `protocol`.
    #[must_use]
    pub fn is_target(&self, protocol: Protocol, port: u16) -> bool {
        self.maps
            .iter()
            .any(|map| map.protocol == protocol && map.target == port)
    }

    /// The one listen port mapped to target `port` of `protocol`, when exactly one is and the
    /// flow table is not forced: replies from `port` then need no flow entry, and forward
    /// packets of its map record none.
    ///
    /// README: a target port two listen ports share keeps the flow table, and so does a
    /// target port that is also a listen port (a reflection to it could loop).
    #[must_use]
    pub fn stateless_listen(&self, protocol: Protocol, port: u16) -> Option<u16> {
        if self.flow_table_forced || self.listening(protocol, port).is_some() {
            return None;
        }
        let mut listen = self
            .maps
            .iter()
            .filter(|map| map.protocol == protocol && map.target == port)
            .map(|map| map.listen);
        match (listen.next(), listen.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// Whether `addr` is one of this host's own (unicast) addresses.
    ///
    /// README: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is never one of this host's
    /// IPv6 addresses, even when `a.b.c.d` is one of its IPv4 addresses.
    #[must_use]
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.addresses.get(&addr) == Some(&AddressKind::Local)
    }

    /// Judges `frame` and applies what it does to the flow table.
    pub fn handle(&mut self, frame: &[u8]) -> Handled {
        let outcome = self.decide(frame);
        if let Outcome::Reflect(Reflection {
            loop_slot: Some((index, value)),
            ..
        }) = &outcome
        {
            self.loop_memory.insert(*index, *value);
        }
        let mut flow_created = false;
        if let Outcome::Reflect(Reflection {
            flow: Some((flow, value)),
            direction,
            ..
        }) = &outcome
        {
            // README: recording a flow again with another listen port (another map to
            // the same target port) counts as a new flow.
            let previous = self.flows.insert(*flow, *value);
            flow_created = *direction == Direction::Forward
                && !previous.is_some_and(|previous| previous.same_route(value));
        }
        Handled {
            outcome,
            flow_created,
        }
    }

    /// Whether the allow-list lets `source` open a flow. README: IPv4 sources are matched
    /// against IPv4 prefixes, IPv6 sources (IPv4-mapped ones too) against IPv6 prefixes.
    fn allowed(&self, source: IpAddr) -> bool {
        let Some(allow) = &self.allow else {
            return true;
        };
        allow.iter().any(|&(prefix, len)| match (prefix, source) {
            (IpAddr::V4(prefix), IpAddr::V4(source)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                u32::from(prefix) & mask == u32::from(source) & mask
            }
            (IpAddr::V6(prefix), IpAddr::V6(source)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                u128::from(prefix) & mask == u128::from(source) & mask
            }
            _ => false,
        })
    }

    /// What must happen to `frame` in the current state.
    #[must_use]
    pub fn decide(&self, frame: &[u8]) -> Outcome {
        match parse(frame) {
            Ok(packet) => self.policy(frame, &packet),
            Err(reason) => Outcome::Pass(reason),
        }
    }

    /// Forward, reverse or pass, for a TCP/UDP packet.
    ///
    /// README: a packet to a listen port `L` is checked in this order: its destination
    /// (`destination_not_local`), its source (the `source_*` reasons), its TTL
    /// (`ttl_expired`); a packet whose flow is already recorded skips the address checks
    /// (they were made when it was recorded). A packet from a target port `P` (and not to a
    /// listen port) is a reply only if its flow is recorded (`no_flow`), then its TTL is
    /// checked. Anything else is `port_not_mapped`. A forward packet that would record a
    /// new flow is then dropped when its source is outside an enforced allow-list
    /// (`source_not_allowed`); a packet of a known flow (either direction) is dropped when
    /// it arrives `LOOP_TTL_DROP` or more below the highest TTL that direction of the flow
    /// arrived with (`loop_detected`), and otherwise raises it.
    ///
    /// README: without flow state (a target one listen port maps to), every packet, forward
    /// or reverse, gets the checks and the admission of a new flow's first packet, and
    /// records nothing but its TTL in the loop memory ([`Self::remember_ttl`]); a reply is
    /// reflected from the map's listen port unless this host has a socket of its own for
    /// it (the model's host has none).
    fn policy(&self, frame: &[u8], packet: &Packet) -> Outcome {
        let protocol = packet.protocol;
        if let Some(outcome) = self.stateless(frame, packet) {
            return outcome;
        }
        if let Some(map) = self.listening(protocol, packet.destination_port).copied() {
            // Forward: S:s -> A:L leaves as A:s -> S:P, and (S, A, P, s) -> L is recorded.
            let flow = Flow {
                client: packet.source,
                local: packet.destination,
                target: map.target,
                client_port: packet.source_port,
                protocol,
            };
            let route = FlowValue::new(map.listen, map.slot);
            let known = self
                .flows
                .get(&flow)
                .filter(|value| value.same_route(&route))
                .copied();
            let value = if let Some(mut value) = known {
                // README: a known flow skips the address checks and admission; after the
                // TTL check comes the loop guard.
                if packet.ttl <= 1 {
                    return Outcome::Pass(PassReason::TtlExpired);
                }
                if u16::from(packet.ttl) + u16::from(LOOP_TTL_DROP) <= u16::from(value.forward_ttl)
                {
                    return Outcome::Drop(DropReason::LoopDetected);
                }
                value.forward_ttl = value.forward_ttl.max(packet.ttl);
                value
            } else {
                if let Some(refused) = self.check_unvouched(packet) {
                    return refused;
                }
                route.with_forward_ttl(packet.ttl)
            };
            return Outcome::Reflect(Reflection {
                output: reflect(frame, packet, packet.source_port, map.target),
                direction: Direction::Forward,
                family: packet.family,
                map_slot: map.slot,
                flow: Some((flow, value)),
                loop_slot: None,
            });
        }
        if !self.is_target(protocol, packet.source_port) {
            return Outcome::Pass(PassReason::PortNotMapped);
        }
        // Reverse: S:P -> A:s of a recorded flow leaves as A:L -> S:s.
        let flow = Flow {
            client: packet.source,
            local: packet.destination,
            target: packet.source_port,
            client_port: packet.destination_port,
            protocol,
        };
        let Some(mut value) = self.flows.get(&flow).copied() else {
            return Outcome::Pass(PassReason::NoFlow);
        };
        if packet.ttl <= 1 {
            return Outcome::Pass(PassReason::TtlExpired);
        }
        // README: the loop guard keeps the replies' highest TTL apart from the forward one.
        if u16::from(packet.ttl) + u16::from(LOOP_TTL_DROP) <= u16::from(value.reverse_ttl) {
            return Outcome::Drop(DropReason::LoopDetected);
        }
        value.reverse_ttl = value.reverse_ttl.max(packet.ttl);
        Outcome::Reflect(Reflection {
            output: reflect(frame, packet, value.listen_port, packet.destination_port),
            direction: Direction::Reverse,
            family: packet.family,
            map_slot: value.map_slot,
            flow: Some((flow, value)),
            loop_slot: None,
        })
    }

    /// What happens to a packet of a map without flow state (to its listen port, or from
    /// its target port and not to a listen port); `None` for any other packet.
    fn stateless(&self, frame: &[u8], packet: &Packet) -> Option<Outcome> {
        let protocol = packet.protocol;
        if let Some(map) = self.listening(protocol, packet.destination_port).copied()
            && self.stateless_listen(protocol, map.target).is_some()
        {
            if let Some(refused) = self.check_unvouched(packet) {
                return Some(refused);
            }
            let loop_slot = match self.remember_ttl(packet) {
                Ok(slot) => slot,
                Err(reason) => return Some(Outcome::Drop(reason)),
            };
            return Some(Outcome::Reflect(Reflection {
                output: reflect(frame, packet, packet.source_port, map.target),
                direction: Direction::Forward,
                family: packet.family,
                map_slot: map.slot,
                flow: None,
                loop_slot,
            }));
        }
        if self.listening(protocol, packet.destination_port).is_none()
            && let Some(listen) = self.stateless_listen(protocol, packet.source_port)
        {
            if let Some(refused) = self.check_unvouched(packet) {
                return Some(refused);
            }
            let loop_slot = match self.remember_ttl(packet) {
                Ok(slot) => slot,
                Err(reason) => return Some(Outcome::Drop(reason)),
            };
            let map = self
                .listening(protocol, listen)
                .expect("a stateless target's listen port is mapped");
            return Some(Outcome::Reflect(Reflection {
                output: reflect(frame, packet, listen, packet.destination_port),
                direction: Direction::Reverse,
                family: packet.family,
                map_slot: map.slot,
                flow: None,
                loop_slot,
            }));
        }
        None
    }

    /// The loop guard of a packet without flow state, after its admission. `Ok` with the
    /// slot to write, if any.
    ///
    /// README: without flow state a loop is told by the same 5-tuple coming back lower:
    /// the tuple's slot (the hash picks it) keeps the highest TTL the tuple arrived with,
    /// and a packet arriving `LOOP_TTL_DROP` or more below it is dropped; a higher TTL
    /// raises it; a tuple finding its slot held by another takes it over.
    fn remember_ttl(&self, packet: &Packet) -> Result<Option<(u32, LoopSlot)>, DropReason> {
        let tuple = Tuple {
            source: packet.source,
            destination: packet.destination,
            source_port: packet.source_port,
            destination_port: packet.destination_port,
            protocol: packet.protocol,
        };
        let index = loop_slot_index(tuple.hash());
        let fresh = LoopSlot {
            tuple,
            highest: packet.ttl,
        };
        match self.loop_memory.get(&index) {
            Some(slot) if slot.tuple == tuple => {
                if u16::from(packet.ttl) + u16::from(LOOP_TTL_DROP) <= u16::from(slot.highest) {
                    Err(DropReason::LoopDetected)
                } else if packet.ttl > slot.highest {
                    Ok(Some((index, fresh)))
                } else {
                    Ok(None)
                }
            }
            _ => Ok(Some((index, fresh))),
        }
    }

    /// The checks and admission of a packet nothing vouches for (a new flow's first, or any
    /// packet without flow state), in order; `None` when it passes them all.
    fn check_unvouched(&self, packet: &Packet) -> Option<Outcome> {
        if !self.is_local(packet.destination) {
            return Some(Outcome::Pass(PassReason::DestinationNotLocal));
        }
        if let Some(reason) = self.forbidden_source(packet.source) {
            return Some(Outcome::Pass(reason));
        }
        if packet.ttl <= 1 {
            return Some(Outcome::Pass(PassReason::TtlExpired));
        }
        if !self.allowed(packet.source) {
            return Some(Outcome::Drop(DropReason::SourceNotAllowed));
        }
        None
    }

    /// Why `source` must never be sent a reflection, if it must not.
    ///
    /// README: an IPv4-mapped IPv6 source (`::ffff:a.b.c.d`) is judged as the IPv4 address
    /// `a.b.c.d` it stands for.
    fn forbidden_source(&self, source: IpAddr) -> Option<PassReason> {
        let source = match source {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(source, IpAddr::V4),
            IpAddr::V4(_) => source,
        };
        let kind = self.addresses.get(&source);
        let reason = match source {
            IpAddr::V4(addr) if addr.is_multicast() => PassReason::SourceMulticast,
            IpAddr::V4(addr) if addr.is_broadcast() => PassReason::SourceBroadcast,
            IpAddr::V4(addr) if addr.is_loopback() => PassReason::SourceLoopback,
            IpAddr::V4(addr) if addr.is_unspecified() => PassReason::SourceUnspecified,
            IpAddr::V6(addr) if addr.is_multicast() => PassReason::SourceMulticast,
            IpAddr::V6(addr) if addr.is_loopback() => PassReason::SourceLoopback,
            IpAddr::V6(addr) if addr.is_unspecified() => PassReason::SourceUnspecified,
            _ if kind == Some(&AddressKind::Broadcast) => PassReason::SourceBroadcast,
            _ if kind == Some(&AddressKind::Local) => PassReason::SourceLocal,
            _ => return None,
        };
        Some(reason)
    }
}

/// Reads the Ethernet, VLAN, IP and transport headers of `frame`, or says why the frame is
/// passed before any port or address is looked at.
///
/// README: "truncated" is a frame that ends inside a header the program reads: the
/// Ethernet header, a VLAN tag, the fixed IPv4 or IPv6 header, the IPv4 options (as IHL
/// says), the fixed TCP (20 bytes) or UDP (8 bytes) header. "malformed" is an IP version
/// that is not the ethertype's, or an IPv4 IHL below 5. Checks run header by header,
/// outside in; in the IP header: version and IHL, then fragment, then protocol. Length
/// fields (IPv4 total length, IPv6 payload length, UDP length, TCP data offset) are not
/// checked: the bytes after the fixed transport header leave as they came.
fn parse(frame: &[u8]) -> Result<Packet, PassReason> {
    let mut ethertype = be16(frame, 12).ok_or(PassReason::Truncated)?;
    // README: a group (multicast or broadcast) Ethernet source, which 802.3 forbids and a
    // reflection would be sent to, is malformed.
    if frame[6] & 1 != 0 {
        return Err(PassReason::Malformed);
    }
    let mut offset = ETH_LEN;
    let mut tags = 0;
    while ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
        if tags == MAX_VLAN_TAGS {
            // README: a third tag is not walked.
            return Err(PassReason::NotIp);
        }
        // The tag's own ethertype field ends the tag.
        ethertype = be16(frame, offset + 2).ok_or(PassReason::Truncated)?;
        offset += 4;
        tags += 1;
    }
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(frame, offset),
        ETHERTYPE_IPV6 => parse_ipv6(frame, offset),
        _ => Err(PassReason::NotIp),
    }
}

fn parse_ipv4(frame: &[u8], ip: usize) -> Result<Packet, PassReason> {
    if frame.len() < ip + 20 {
        return Err(PassReason::Truncated);
    }
    let header_len = usize::from(frame[ip] & 0x0f) * 4;
    if frame[ip] >> 4 != 4 || header_len < 20 {
        return Err(PassReason::Malformed);
    }
    let fragment = be16(frame, ip + 6).expect("inside the header");
    // More fragments, or a fragment offset.
    if fragment & 0x3fff != 0 {
        return Err(PassReason::Fragment);
    }
    let protocol = Protocol::from_ip_number(frame[ip + 9]).ok_or(PassReason::NotTcpUdp)?;
    let source: [u8; 4] = frame[ip + 12..ip + 16].try_into().expect("4 bytes");
    let destination: [u8; 4] = frame[ip + 16..ip + 20].try_into().expect("4 bytes");
    transport(
        frame,
        Packet {
            family: Family::V4,
            ip,
            l4: ip + header_len,
            protocol,
            source: Ipv4Addr::from(source).into(),
            destination: Ipv4Addr::from(destination).into(),
            ttl: frame[ip + 8],
            source_port: 0,
            destination_port: 0,
        },
    )
}

fn parse_ipv6(frame: &[u8], ip: usize) -> Result<Packet, PassReason> {
    if frame.len() < ip + 40 {
        return Err(PassReason::Truncated);
    }
    if frame[ip] >> 4 != 6 {
        return Err(PassReason::Malformed);
    }
    let next_header = frame[ip + 6];
    if next_header == IPV6_FRAGMENT {
        return Err(PassReason::Fragment);
    }
    if IPV6_EXTENSION_HEADERS.contains(&next_header) {
        return Err(PassReason::Ipv6ExtensionHeader);
    }
    let protocol = Protocol::from_ip_number(next_header).ok_or(PassReason::NotTcpUdp)?;
    let source: [u8; 16] = frame[ip + 8..ip + 24].try_into().expect("16 bytes");
    let destination: [u8; 16] = frame[ip + 24..ip + 40].try_into().expect("16 bytes");
    transport(
        frame,
        Packet {
            family: Family::V6,
            ip,
            l4: ip + 40,
            protocol,
            source: Ipv6Addr::from(source).into(),
            destination: Ipv6Addr::from(destination).into(),
            ttl: frame[ip + 7],
            source_port: 0,
            destination_port: 0,
        },
    )
}

/// Reads the ports of `packet`'s fixed transport header, which must be in the frame.
fn transport(frame: &[u8], mut packet: Packet) -> Result<Packet, PassReason> {
    let fixed_len = match packet.protocol {
        Protocol::Tcp => 20,
        Protocol::Udp => 8,
    };
    if frame.len() < packet.l4 + fixed_len {
        return Err(PassReason::Truncated);
    }
    packet.source_port = be16(frame, packet.l4).expect("inside the header");
    packet.destination_port = be16(frame, packet.l4 + 2).expect("inside the header");
    Ok(packet)
}

/// `frame` turned around: Ethernet and IP addresses swapped, TTL / hop limit one lower,
/// transport ports `source_port` and `destination_port`, and every checksum updated for
/// exactly these changes (RFC 1624, equation 3).
///
/// README: a checksum is updated, not recomputed, so a frame whose checksum was correct
/// leaves with a correct one, and a frame whose checksum was already wrong leaves exactly
/// as wrong (its receiver drops it, as it would have dropped the original). A UDP checksum
/// of 0 stays 0 (over IPv4 it means "none"; over IPv6 it is invalid, and stays so), and a
/// UDP checksum that computes to 0 is written 0xffff (RFC 768).
fn reflect(frame: &[u8], packet: &Packet, source_port: u16, destination_port: u16) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&frame[..6]);
    let ip = packet.ip;
    let (addresses, address_len, ttl_at) = match packet.family {
        Family::V4 => (ip + 12, 4, ip + 8),
        Family::V6 => (ip + 8, 16, ip + 7),
    };
    let (source, destination) = (addresses, addresses + address_len);
    out[source..destination].copy_from_slice(&frame[destination..destination + address_len]);
    out[destination..destination + address_len].copy_from_slice(&frame[source..destination]);
    out[ttl_at] = packet.ttl - 1;
    if packet.family == Family::V4 {
        // The TTL shares its 16-bit word with the protocol; the swapped addresses leave
        // the sum as it was.
        let old = be16(frame, ip + 8).expect("inside the header");
        let new = be16(&out, ip + 8).expect("inside the header");
        let checksum = be16(frame, ip + 10).expect("inside the header");
        put16(&mut out, ip + 10, updated(checksum, &[old], &[new]));
    }

    let l4 = packet.l4;
    let old_ports = [
        be16(frame, l4).expect("inside the packet"),
        be16(frame, l4 + 2).expect("inside the packet"),
    ];
    let new_ports = [source_port, destination_port];
    put16(&mut out, l4, source_port);
    put16(&mut out, l4 + 2, destination_port);
    // The pseudo-header's addresses are swapped, not changed: only the ports move the sum.
    let checksum_at = match packet.protocol {
        Protocol::Tcp => l4 + 16,
        Protocol::Udp => l4 + 6,
    };
    let checksum = be16(frame, checksum_at).expect("inside the packet");
    let udp = packet.protocol == Protocol::Udp;
    let new_checksum = if udp && checksum == 0 {
        0
    } else {
        match updated(checksum, &old_ports, &new_ports) {
            0 if udp => 0xffff,
            sum => sum,
        }
    };
    put16(&mut out, checksum_at, new_checksum);
    out
}

/// The checksum `checksum` after the 16-bit words `old` became `new` (RFC 1624, eqn. 3:
/// `HC' = ~(~HC + ~m + m')`, in one's complement arithmetic).
fn updated(checksum: u16, old: &[u16], new: &[u16]) -> u16 {
    let mut sum = u32::from(!checksum);
    for word in old {
        sum += u32::from(!word);
    }
    for word in new {
        sum += u32::from(*word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn put16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1624_update_matches_a_full_recomputation() {
        // A header's checksum over words [a, b, c] is !(a + b + c); changing b to b'
        // incrementally must give !(a + b' + c).
        let full = |words: &[u16]| {
            let mut sum: u32 = words.iter().map(|w| u32::from(*w)).sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            !(sum as u16)
        };
        let before = [0x4500, 0x1234, 0xfedc];
        let after = [0x4500, 0x0034, 0xfedc];
        assert_eq!(updated(full(&before), &[0x1234], &[0x0034]), full(&after));
    }
}
