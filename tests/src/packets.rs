//! Test frames: a small model of the frames reflector handles, serialised by etherparse so
//! every checksum of an input frame, and of an expected output frame, is etherparse's own
//! computation and never the code under test's.

use std::net::IpAddr;

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpDscp, IpEcn, IpFragOffset, IpHeaders,
    IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions, Ipv6FlowLabel, Ipv6Header,
    NetHeaders, PacketBuilder, PacketHeaders, TcpHeader, TcpOptionElement, TransportHeader, VlanId,
};
use reflector_common::{Family, Protocol};

use crate::test_run::address_key;

/// The client's Ethernet address: the source of every frame built here.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x1e, 0x00, 0x00, 0x01];
/// The host's Ethernet address: the destination of every frame built here.
pub const HOST_MAC: [u8; 6] = [0x02, 0x40, 0x57, 0x00, 0x00, 0x02];

/// Length of an Ethernet II header.
pub const ETH_LEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = 20;
/// Length of an IPv6 header.
pub const IPV6_LEN: usize = 40;
/// Length of a TCP header without options.
pub const TCP_LEN: usize = 20;
/// Length of a UDP header.
pub const UDP_LEN: usize = 8;

/// VLAN tagging of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vlan {
    /// No tag.
    Untagged,
    /// One 802.1Q (0x8100) tag with this VLAN id.
    Single(u16),
    /// `QinQ`: an outer 802.1ad (0x88a8) tag and an inner 802.1Q (0x8100) tag.
    Double {
        /// Outer (service) VLAN id.
        outer: u16,
        /// Inner (customer) VLAN id.
        inner: u16,
    },
}

/// The IP header of a frame (length, protocol and checksum fields are filled in when the
/// frame is written).
#[derive(Clone, Debug)]
pub enum Net {
    /// IPv4, options included.
    V4(Ipv4Header),
    /// IPv6 with its extension headers (boxed: etherparse's are large).
    V6(Ipv6Header, Box<Ipv6Extensions>),
}

/// The transport header of a frame.
#[derive(Clone, Debug)]
pub enum Transport {
    /// TCP; the checksum is computed when the frame is written.
    Tcp(TcpHeader),
    /// UDP; the checksum is computed when the frame is written unless `checksum_zero`
    /// ("no checksum", IPv4 only).
    Udp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
        /// Write 0 in the checksum field.
        checksum_zero: bool,
    },
    /// An ICMP (IPv4) or `ICMPv6` (IPv6) echo request.
    Echo,
}

/// An Ethernet frame carrying IP.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Ethernet source.
    pub mac_src: [u8; 6],
    /// Ethernet destination.
    pub mac_dst: [u8; 6],
    /// VLAN tags.
    pub vlan: Vlan,
    /// IP header.
    pub net: Net,
    /// Transport header.
    pub transport: Transport,
    /// Transport payload.
    pub payload: Vec<u8>,
    /// Bytes after the IP packet (Ethernet padding).
    pub trailer: Vec<u8>,
}

/// TTL / hop limit of every frame unless a case says otherwise.
pub const DEFAULT_TTL: u8 = 64;

impl Frame {
    /// A TCP segment from `src:source_port` to `dst:destination_port`, with non-trivial
    /// sequence and acknowledgment numbers, flags, window and options (all of which a
    /// reflected segment keeps).
    #[must_use]
    pub fn tcp(src: IpAddr, source_port: u16, dst: IpAddr, destination_port: u16) -> Self {
        let mut tcp = TcpHeader::new(source_port, destination_port, 0x1234_5678, 0x7210);
        tcp.ack = true;
        tcp.psh = true;
        tcp.acknowledgment_number = 0x9abc_def0;
        tcp.set_options(&[
            TcpOptionElement::Noop,
            TcpOptionElement::Noop,
            TcpOptionElement::Timestamp(0x0102_0304, 0x0506_0708),
        ])
        .expect("valid TCP options");
        Self::new(
            src,
            dst,
            Transport::Tcp(tcp),
            b"reflected tcp payload".to_vec(),
        )
    }

    /// A UDP datagram from `src:source_port` to `dst:destination_port`.
    #[must_use]
    pub fn udp(src: IpAddr, source_port: u16, dst: IpAddr, destination_port: u16) -> Self {
        Self::new(
            src,
            dst,
            Transport::Udp {
                source_port,
                destination_port,
                checksum_zero: false,
            },
            b"reflected udp payload!".to_vec(),
        )
    }

    /// An ICMP / `ICMPv6` echo request from `src` to `dst`.
    #[must_use]
    pub fn echo(src: IpAddr, dst: IpAddr) -> Self {
        Self::new(src, dst, Transport::Echo, b"ping".to_vec())
    }

    /// A transport message of `protocol` (TCP or UDP).
    #[must_use]
    pub fn transport(
        protocol: Protocol,
        src: IpAddr,
        source_port: u16,
        dst: IpAddr,
        destination_port: u16,
    ) -> Self {
        match protocol {
            Protocol::Tcp => Self::tcp(src, source_port, dst, destination_port),
            Protocol::Udp => Self::udp(src, source_port, dst, destination_port),
        }
    }

    fn new(src: IpAddr, dst: IpAddr, transport: Transport, payload: Vec<u8>) -> Self {
        let net = match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Net::V4(Ipv4Header {
                source: src.octets(),
                destination: dst.octets(),
                time_to_live: DEFAULT_TTL,
                identification: 0x4321,
                dont_fragment: true,
                // Non-zero DSCP and ECN: a reflected packet keeps them.
                dscp: IpDscp::try_new(10).expect("valid DSCP"),
                ecn: IpEcn::Ect0,
                ..Ipv4Header::default()
            }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Net::V6(
                Ipv6Header {
                    traffic_class: 0x28,
                    flow_label: Ipv6FlowLabel::try_new(0x1_2345).expect("valid flow label"),
                    hop_limit: DEFAULT_TTL,
                    source: src.octets(),
                    destination: dst.octets(),
                    ..Ipv6Header::default()
                },
                Box::default(),
            ),
            _ => panic!("test frame with mixed address families: {src} -> {dst}"),
        };
        Self {
            mac_src: CLIENT_MAC,
            mac_dst: HOST_MAC,
            vlan: Vlan::Untagged,
            net,
            transport,
            payload,
            trailer: Vec::new(),
        }
    }

    /// This frame with VLAN tags `vlan`.
    #[must_use]
    pub fn with_vlan(mut self, vlan: Vlan) -> Self {
        self.vlan = vlan;
        self
    }

    /// This frame with TTL / hop limit `ttl`.
    #[must_use]
    pub fn with_ttl(mut self, ttl: u8) -> Self {
        match &mut self.net {
            Net::V4(ip) => ip.time_to_live = ttl,
            Net::V6(ip, _) => ip.hop_limit = ttl,
        }
        self
    }

    /// This frame with IPv4 options `options` (a multiple of 4 bytes, at most 40).
    #[must_use]
    pub fn with_ipv4_options(mut self, options: &[u8]) -> Self {
        let Net::V4(ip) = &mut self.net else {
            panic!("IPv4 options on an IPv6 frame");
        };
        ip.options = Ipv4Options::try_from(options).expect("IPv4 options of a valid length");
        self
    }

    /// This frame as an IPv4 fragment.
    #[must_use]
    pub fn with_ipv4_fragment(mut self, more_fragments: bool, offset_units: u16) -> Self {
        let Net::V4(ip) = &mut self.net else {
            panic!("IPv4 fragment fields on an IPv6 frame");
        };
        ip.dont_fragment = false;
        ip.more_fragments = more_fragments;
        ip.fragment_offset = IpFragOffset::try_new(offset_units).expect("valid fragment offset");
        self
    }

    /// This frame with IPv6 extension headers `extensions`.
    #[must_use]
    pub fn with_ipv6_extensions(mut self, extensions: Ipv6Extensions) -> Self {
        let Net::V6(_, exts) = &mut self.net else {
            panic!("IPv6 extension headers on an IPv4 frame");
        };
        **exts = extensions;
        self
    }

    /// This TCP segment with SYN set (a SYN-ACK, as it keeps ACK): what opens a flow.
    #[must_use]
    pub fn with_syn(mut self) -> Self {
        let Transport::Tcp(tcp) = &mut self.transport else {
            panic!("SYN on a non-TCP frame");
        };
        tcp.syn = true;
        self
    }

    /// This frame with a UDP checksum field of 0 ("no checksum").
    #[must_use]
    pub fn with_udp_checksum_zero(mut self) -> Self {
        let Transport::Udp { checksum_zero, .. } = &mut self.transport else {
            panic!("UDP checksum 0 on a non-UDP frame");
        };
        *checksum_zero = true;
        self
    }

    /// This frame with transport payload `payload`.
    #[must_use]
    pub fn with_payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// This frame followed by `trailer` (bytes after the IP packet: Ethernet padding).
    #[must_use]
    pub fn with_trailer(mut self, trailer: Vec<u8>) -> Self {
        self.trailer = trailer;
        self
    }

    /// The IP family.
    #[must_use]
    pub const fn family(&self) -> Family {
        match self.net {
            Net::V4(_) => Family::V4,
            Net::V6(..) => Family::V6,
        }
    }

    /// The transport protocol (panics for ICMP).
    #[must_use]
    pub fn protocol(&self) -> Protocol {
        match self.transport {
            Transport::Tcp(_) => Protocol::Tcp,
            Transport::Udp { .. } => Protocol::Udp,
            Transport::Echo => panic!("an echo request has no TCP/UDP protocol"),
        }
    }

    /// The TTL / hop limit.
    #[must_use]
    pub fn ttl(&self) -> u8 {
        match &self.net {
            Net::V4(ip) => ip.time_to_live,
            Net::V6(ip, _) => ip.hop_limit,
        }
    }

    /// The IP source.
    #[must_use]
    pub fn source(&self) -> IpAddr {
        match &self.net {
            Net::V4(ip) => ip.source.into(),
            Net::V6(ip, _) => ip.source.into(),
        }
    }

    /// The IP destination.
    #[must_use]
    pub fn destination(&self) -> IpAddr {
        match &self.net {
            Net::V4(ip) => ip.destination.into(),
            Net::V6(ip, _) => ip.destination.into(),
        }
    }

    /// The IP source as an address-map key (IPv4-mapped for IPv4).
    #[must_use]
    pub fn source_key(&self) -> [u8; 16] {
        address_key(self.source())
    }

    /// The IP destination as an address-map key (IPv4-mapped for IPv4).
    #[must_use]
    pub fn destination_key(&self) -> [u8; 16] {
        address_key(self.destination())
    }

    /// The transport source and destination ports (panics for ICMP).
    #[must_use]
    pub fn ports(&self) -> (u16, u16) {
        match &self.transport {
            Transport::Tcp(tcp) => (tcp.source_port, tcp.destination_port),
            Transport::Udp {
                source_port,
                destination_port,
                ..
            } => (*source_port, *destination_port),
            Transport::Echo => panic!("an echo request has no ports"),
        }
    }

    /// The frame a reflector sends back for this one, by the contract: Ethernet addresses
    /// swapped, IP addresses swapped, TTL / hop limit one lower, ports `source_port` and
    /// `destination_port`; every other field, tag, option and payload byte the same, and
    /// every checksum recomputed (by etherparse, when written).
    #[must_use]
    pub fn reflected(&self, source_port: u16, destination_port: u16) -> Self {
        let mut out = self.clone();
        out.mac_src = self.mac_dst;
        out.mac_dst = self.mac_src;
        match &mut out.net {
            Net::V4(ip) => {
                core::mem::swap(&mut ip.source, &mut ip.destination);
                ip.time_to_live = ip
                    .time_to_live
                    .checked_sub(1)
                    .expect("a reflected frame had a TTL above 0");
            }
            Net::V6(ip, _) => {
                core::mem::swap(&mut ip.source, &mut ip.destination);
                ip.hop_limit = ip
                    .hop_limit
                    .checked_sub(1)
                    .expect("a reflected frame had a hop limit above 0");
            }
        }
        match &mut out.transport {
            Transport::Tcp(tcp) => {
                tcp.source_port = source_port;
                tcp.destination_port = destination_port;
            }
            Transport::Udp {
                source_port: src,
                destination_port: dst,
                ..
            } => {
                *src = source_port;
                *dst = destination_port;
            }
            Transport::Echo => panic!("an echo request is never reflected"),
        }
        out
    }

    /// The frame's bytes.
    #[must_use]
    pub fn bytes(&self) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(self.mac_src, self.mac_dst);
        let ip = match &self.net {
            Net::V4(ip) => IpHeaders::Ipv4(ip.clone(), Ipv4Extensions::default()),
            Net::V6(ip, exts) => IpHeaders::Ipv6(ip.clone(), (**exts).clone()),
        };
        let step = match self.vlan {
            Vlan::Untagged => builder.ip(ip),
            Vlan::Single(id) => builder.single_vlan(vlan_id(id)).ip(ip),
            Vlan::Double { outer, inner } => {
                builder.double_vlan(vlan_id(outer), vlan_id(inner)).ip(ip)
            }
        };
        let mut out = Vec::new();
        let written = match (&self.transport, &self.net) {
            (Transport::Tcp(tcp), _) => step.tcp_header(tcp.clone()).write(&mut out, &self.payload),
            (
                Transport::Udp {
                    source_port,
                    destination_port,
                    ..
                },
                _,
            ) => step
                .udp(*source_port, *destination_port)
                .write(&mut out, &self.payload),
            (Transport::Echo, Net::V4(_)) => step
                .icmpv4_echo_request(0x0b0b, 7)
                .write(&mut out, &self.payload),
            (Transport::Echo, Net::V6(..)) => step
                .icmpv6_echo_request(0x0b0b, 7)
                .write(&mut out, &self.payload),
        };
        written.unwrap_or_else(|e| panic!("etherparse cannot write {self:?}: {e:?}"));
        if let Transport::Udp {
            checksum_zero: true,
            ..
        } = self.transport
        {
            // The UDP header ends where the payload starts; its checksum is its last field.
            let checksum = out.len() - self.payload.len() - 2;
            out[checksum..checksum + 2].fill(0);
        }
        out.extend_from_slice(&self.trailer);
        out
    }
}

fn vlan_id(id: u16) -> VlanId {
    VlanId::try_new(id).expect("valid VLAN id")
}

/// An ARP request from the client for `target`, with VLAN tags `vlan`.
#[must_use]
pub fn arp_request(vlan: Vlan, sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation::REQUEST,
        &CLIENT_MAC,
        &sender,
        &[0; 6],
        &target,
    )
    .expect("a valid ARP request");
    let builder = PacketBuilder::ethernet2(CLIENT_MAC, [0xff; 6]);
    let mut out = Vec::new();
    let written = match vlan {
        Vlan::Untagged => builder.arp(arp).write(&mut out),
        Vlan::Single(id) => builder.single_vlan(vlan_id(id)).arp(arp).write(&mut out),
        Vlan::Double { outer, inner } => builder
            .double_vlan(vlan_id(outer), vlan_id(inner))
            .arp(arp)
            .write(&mut out),
    };
    written.expect("etherparse writes an ARP request");
    out
}

/// The transport checksum field of a written TCP or UDP frame, as etherparse reads it.
#[must_use]
pub fn transport_checksum(frame: &[u8]) -> u16 {
    let headers = PacketHeaders::from_ethernet_slice(frame).expect("a frame etherparse reads");
    match headers.transport {
        Some(TransportHeader::Tcp(tcp)) => tcp.checksum,
        Some(TransportHeader::Udp(udp)) => udp.checksum,
        other => panic!("not a TCP/UDP frame: {other:?}"),
    }
}

/// Checks every checksum of `frame` with etherparse's own computation: the IPv4 header
/// checksum and the TCP / UDP checksum over the pseudo-header, header and payload. A UDP
/// checksum of 0 over IPv4 means "no checksum" and is accepted here (the exact byte
/// comparison decides whether it was expected).
///
/// # Errors
/// A description of each wrong checksum.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let headers = PacketHeaders::from_ethernet_slice(frame)
        .map_err(|e| format!("etherparse cannot parse the frame: {e}"))?;
    let payload = headers.payload.slice();
    let mut problems = Vec::new();
    let mut check = |what: &str, found: u16, correct: u16| {
        if found != correct {
            problems.push(format!(
                "{what} checksum is {found:#06x}, etherparse computes {correct:#06x}"
            ));
        }
    };
    match (&headers.net, &headers.transport) {
        (Some(NetHeaders::Ipv4(ip, _)), transport) => {
            check("IPv4 header", ip.header_checksum, ip.calc_header_checksum());
            match transport {
                Some(TransportHeader::Tcp(tcp)) => check(
                    "TCP",
                    tcp.checksum,
                    tcp.calc_checksum_ipv4(ip, payload)
                        .expect("TCP length fits"),
                ),
                Some(TransportHeader::Udp(udp)) if udp.checksum != 0 => check(
                    "UDP",
                    udp.checksum,
                    udp.calc_checksum_ipv4(ip, payload)
                        .expect("UDP length fits"),
                ),
                _ => {}
            }
        }
        (Some(NetHeaders::Ipv6(ip, _)), transport) => match transport {
            Some(TransportHeader::Tcp(tcp)) => check(
                "TCP",
                tcp.checksum,
                tcp.calc_checksum_ipv6(ip, payload)
                    .expect("TCP length fits"),
            ),
            Some(TransportHeader::Udp(udp)) => check(
                "UDP",
                udp.checksum,
                udp.calc_checksum_ipv6(ip, payload)
                    .expect("UDP length fits"),
            ),
            _ => {}
        },
        _ => {}
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// An IPv6 hop-by-hop or destination options header holding one `PadN` option (the
/// smallest valid such header: 8 bytes).
#[must_use]
pub fn ipv6_padding_options() -> etherparse::Ipv6RawExtHeader {
    // The next-header field is filled in when the frame is written.
    etherparse::Ipv6RawExtHeader::new_raw(IpNumber::UDP, &[1, 4, 0, 0, 0, 0])
        .expect("a valid options header")
}

/// IPv6 extension headers with only a fragment header (first fragment, more to come).
#[must_use]
pub fn ipv6_fragment_extension() -> Ipv6Extensions {
    Ipv6Extensions {
        fragment: Some(etherparse::Ipv6FragmentHeader::new(
            IpNumber::UDP,
            IpFragOffset::ZERO,
            true,
            0x0102_0304,
        )),
        ..Ipv6Extensions::default()
    }
}
