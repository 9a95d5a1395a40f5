//! The differential fuzzer's inputs: a seeded, deterministic generator of host states
//! ([`Scenario`]) and of frames ([`frame`]), valid ones of every shape (IPv4 and IPv6, TCP
//! and UDP, 802.1Q and `QinQ` tags, IPv4 options, IPv6 extension headers, fragments) and
//! mutated ones (truncated, bits flipped, wrong lengths and IHL, odd flags, TTL 0/1/255,
//! every forbidden source, to and from mapped and unmapped ports, known and unknown flows).
//!
//! The same seed gives the same scenarios and frames on every machine: the PRNG is
//! `SplitMix64`, written out here, so no crate's version can change the stream.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reflector_common::{FlowValue, Protocol};

use crate::{
    model::{AddressKind, Flow, Host, PortMap},
    packets::{CLIENT_MAC, HOST_MAC},
};

/// `SplitMix64`: small, fast, and good enough to pick frames.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The generator of scenario `index` of a run seeded with `seed`: each scenario can be
    /// replayed alone.
    #[must_use]
    pub fn for_scenario(seed: u64, index: u64) -> Self {
        let mut mix = Self(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
        Self(mix.next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `bound` (> 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// A random 16-bit word.
    pub fn word(&mut self) -> u16 {
        self.next_u64() as u16
    }
}

/// This host's possible IPv4 addresses (each scenario makes some of them local).
pub const HOST_POOL_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(10, 0, 0, 1),
];
/// This host's possible subnet broadcast addresses.
pub const BROADCAST_POOL_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(192, 0, 2, 255),
    Ipv4Addr::new(10, 255, 255, 255),
];
/// This host's possible IPv6 addresses.
pub const HOST_POOL_V6: [Ipv6Addr; 3] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
];

/// Ordinary IPv4 clients, and a few unusual but unicast sources.
const CLIENTS_V4: [Ipv4Addr; 7] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(198, 51, 100, 8),
    Ipv4Addr::new(203, 0, 113, 9),
    Ipv4Addr::new(10, 1, 2, 3),
    Ipv4Addr::new(169, 254, 1, 1),
    Ipv4Addr::new(240, 0, 0, 1),
    Ipv4Addr::new(0, 1, 2, 3),
];
/// Ordinary IPv6 clients, and a few unusual but unicast-looking sources (IPv4-mapped,
/// IPv4-compatible, NAT64).
const CLIENTS_V6: [Ipv6Addr; 7] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 7),
    Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 8),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc633, 0x6407),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0xc633, 0x6407),
    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0xc633, 0x6407),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x99),
];
/// IPv4 sources a reflection must never go to (beyond this host's own).
const FORBIDDEN_V4: [Ipv4Addr; 6] = [
    Ipv4Addr::new(224, 0, 0, 1),
    Ipv4Addr::new(239, 255, 255, 250),
    Ipv4Addr::BROADCAST,
    Ipv4Addr::LOCALHOST,
    Ipv4Addr::new(127, 1, 2, 3),
    Ipv4Addr::UNSPECIFIED,
];
/// IPv6 sources a reflection must never go to (beyond this host's own), and the
/// IPv4-mapped forms of IPv4 ones.
const FORBIDDEN_V6: [Ipv6Addr; 10] = [
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 0x101),
    Ipv6Addr::LOCALHOST,
    Ipv6Addr::UNSPECIFIED,
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xe000, 1),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xffff, 0xffff),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201),
    Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0xc000, 0x02ff),
];
/// Ports maps are made of, and clients use: well-known, ephemeral and edge values.
const PORTS: [u16; 10] = [22, 53, 80, 443, 8080, 10022, 10053, 40000, 1, 65535];
/// Client source ports.
const CLIENT_PORTS: [u16; 6] = [40000, 40001, 55555, 1024, 80, 65535];

/// A host state to run frames against: port maps, local addresses and flows already
/// recorded (of clients and addresses that may no longer be valid).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The state the model starts from (and the kernel is set to).
    pub host: Host,
}

impl Scenario {
    /// A random scenario.
    #[must_use]
    pub fn random(rng: &mut Rng) -> Self {
        let mut host = Host::default();
        let map_count = 1 + rng.below(4);
        let mut slots = Vec::new();
        while host.maps.len() < map_count {
            let protocol = rng.pick(&[Protocol::Tcp, Protocol::Udp]);
            let listen = rng.pick(&PORTS);
            let target = if rng.percent(10) {
                listen
            } else if !host.maps.is_empty() && rng.percent(25) {
                // Another map's target: shared by two listen ports, it keeps the flow table.
                rng.pick(&host.maps).target
            } else {
                rng.pick(&PORTS)
            };
            if host.listening(protocol, listen).is_some() {
                continue;
            }
            // Slot 0 is as valid as any, and the last slot probes the array's end.
            let slot = match rng.below(4) {
                0 => 0,
                1 => 1023,
                _ => rng.below(1024) as u16,
            };
            if slots.contains(&slot) {
                continue;
            }
            slots.push(slot);
            host.maps.push(PortMap {
                protocol,
                listen,
                target,
                slot,
            });
        }
        for addr in HOST_POOL_V4 {
            if rng.percent(70) {
                host.addresses.insert(addr.into(), AddressKind::Local);
            }
        }
        for addr in HOST_POOL_V6 {
            if rng.percent(70) {
                host.addresses.insert(addr.into(), AddressKind::Local);
            }
        }
        for addr in BROADCAST_POOL_V4 {
            if rng.percent(70) {
                host.addresses.insert(addr.into(), AddressKind::Broadcast);
            }
        }
        // Flows recorded earlier: of valid clients to local addresses (as only those are
        // recorded), some of maps since changed (another listen port or slot, or a target
        // port no longer mapped).
        for _ in 0..rng.below(6) {
            let map = rng.pick(&host.maps);
            let v6 = rng.percent(50);
            let locals: Vec<IpAddr> = host
                .addresses
                .iter()
                .filter(|(addr, kind)| addr.is_ipv6() == v6 && **kind == AddressKind::Local)
                .map(|(addr, _)| *addr)
                .collect();
            if locals.is_empty() {
                continue;
            }
            let client: IpAddr = if v6 {
                rng.pick(&CLIENTS_V6).into()
            } else {
                rng.pick(&CLIENTS_V4).into()
            };
            let flow = Flow {
                client,
                local: locals[rng.below(locals.len())],
                target: if rng.percent(80) {
                    map.target
                } else {
                    rng.pick(&PORTS)
                },
                client_port: rng.pick(&CLIENT_PORTS),
                protocol: map.protocol,
            };
            let (listen, slot) = if rng.percent(80) {
                (map.listen, map.slot)
            } else {
                (rng.pick(&PORTS), rng.below(1024) as u16)
            };
            let ttl = rng.pick(&[0, 64, 255]);
            host.flows
                .insert(flow, FlowValue::new(listen, slot).with_forward_ttl(ttl));
        }
        host.allow = random_allow_list(rng);
        // The flow table forced for every map in a third of the scenarios; otherwise maps
        // whose target is unique run without flow state.
        host.flow_table_forced = rng.percent(33);
        Self { host }
    }
}

/// An enforced allow-list in a third of the scenarios: prefixes of the clients, of various
/// lengths, sometimes none at all (nothing allowed). `None`: every source allowed.
fn random_allow_list(rng: &mut Rng) -> Option<Vec<(IpAddr, u8)>> {
    if !rng.percent(33) {
        return None;
    }
    let mut allow = Vec::new();
    for _ in 0..rng.below(4) {
        if rng.percent(50) {
            allow.push((
                IpAddr::V4(rng.pick(&CLIENTS_V4)),
                rng.pick(&[0, 8, 24, 31, 32]),
            ));
        } else {
            allow.push((
                IpAddr::V6(rng.pick(&CLIENTS_V6)),
                rng.pick(&[0, 16, 64, 127, 128]),
            ));
        }
    }
    Some(allow)
}

/// One of this host's possible addresses of the family (`v6`), local in the scenario or
/// not.
fn host_address(rng: &mut Rng, v6: bool) -> IpAddr {
    if v6 {
        rng.pick(&HOST_POOL_V6).into()
    } else {
        rng.pick(&HOST_POOL_V4).into()
    }
}

/// A source address: mostly an ordinary client, sometimes a forbidden one.
fn source(rng: &mut Rng, v6: bool) -> IpAddr {
    match (rng.below(10), v6) {
        (0..=6, false) => rng.pick(&CLIENTS_V4).into(),
        (0..=6, true) => rng.pick(&CLIENTS_V6).into(),
        (7, false) => rng.pick(&FORBIDDEN_V4).into(),
        (7, true) => rng.pick(&FORBIDDEN_V6).into(),
        (8, false) => rng.pick(&BROADCAST_POOL_V4).into(),
        _ => host_address(rng, v6),
    }
}

/// A destination address: mostly one of this host's, sometimes anything.
fn destination(rng: &mut Rng, v6: bool) -> IpAddr {
    match (rng.below(10), v6) {
        (0..=7, _) => host_address(rng, v6),
        (8, false) => rng.pick(&BROADCAST_POOL_V4).into(),
        (8, true) => rng.pick(&FORBIDDEN_V6).into(),
        (_, false) => rng.pick(&CLIENTS_V4).into(),
        (_, true) => rng.pick(&CLIENTS_V6).into(),
    }
}

/// What goes above IP.
#[derive(Clone, Copy)]
enum Upper {
    Tcp,
    Udp,
    /// ICMP or `ICMPv6` echo, or any other protocol number with a few bytes.
    Other(u8),
}

/// Where the generator put each header of a frame, for mutations that aim at one.
#[derive(Clone, Copy, Default)]
struct Layout {
    /// Offset of the innermost ethertype field.
    ethertype: usize,
    /// Offset of the IP header.
    ip: usize,
    /// Offset of the transport header (after IPv4 options or IPv6 extension headers).
    l4: usize,
    v6: bool,
}

/// A frame for `host`: built valid, then (about half the time) mutated.
#[must_use]
pub fn frame(rng: &mut Rng, host: &Host) -> Vec<u8> {
    let (mut bytes, layout) = valid_frame(rng, host);
    if rng.percent(50) {
        for _ in 0..=rng.below(3) {
            mutate(rng, &mut bytes, layout);
        }
        if rng.percent(60) {
            fix_checksums(&mut bytes);
        }
    }
    bytes
}

/// A well-formed frame, with every checksum correct, aimed at the scenario's maps, flows
/// and addresses most of the time.
fn valid_frame(rng: &mut Rng, host: &Host) -> (Vec<u8>, Layout) {
    let map = rng.pick(&host.maps);
    let known_flow = (!host.flows.is_empty() && rng.percent(30)).then(|| {
        let flows: Vec<&Flow> = host.flows.keys().collect();
        *flows[rng.below(flows.len())]
    });
    let mut v6 = rng.percent(50);
    let (src, dst, sport, dport, protocol) = match (known_flow, rng.below(10)) {
        // A reply of a recorded flow.
        (Some(flow), _) => {
            v6 = flow.client.is_ipv6();
            let (src, dst) = if flow.client.is_ipv6() == flow.local.is_ipv6() {
                (flow.client, flow.local)
            } else {
                (flow.client, host_address(rng, v6))
            };
            (src, dst, flow.target, flow.client_port, flow.protocol)
        }
        // To a listen port.
        (None, 0..=5) => (
            source(rng, v6),
            destination(rng, v6),
            rng.pick(&CLIENT_PORTS),
            map.listen,
            map.protocol,
        ),
        // From a target port, no flow behind it (or one, by chance).
        (None, 6 | 7) => (
            source(rng, v6),
            destination(rng, v6),
            map.target,
            rng.pick(&CLIENT_PORTS),
            map.protocol,
        ),
        // Anything.
        (None, _) => (
            source(rng, v6),
            destination(rng, v6),
            rng.pick(&PORTS),
            rng.pick(&PORTS),
            rng.pick(&[Protocol::Tcp, Protocol::Udp]),
        ),
    };
    let upper = match (rng.below(20), protocol) {
        (0, _) => Upper::Other(if v6 { 58 } else { 1 }),
        (1, _) => Upper::Other(rng.byte()),
        (_, Protocol::Tcp) => Upper::Tcp,
        (_, Protocol::Udp) => Upper::Udp,
    };
    let ttl = match rng.below(10) {
        0 => rng.pick(&[0, 1, 2, 255]),
        1 => rng.byte(),
        _ => 64,
    };
    build(rng, src, dst, sport, dport, upper, ttl)
}

/// Writes a frame with every header and checksum valid.
fn build(
    rng: &mut Rng,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    upper: Upper,
    ttl: u8,
) -> (Vec<u8>, Layout) {
    let mut out = Vec::with_capacity(1600);
    out.extend_from_slice(&HOST_MAC);
    out.extend_from_slice(&CLIENT_MAC);
    // VLAN tags: none, one 802.1Q, QinQ (0x88a8 outside, or 0x8100 twice), rarely three.
    let tags: &[u16] = match rng.below(10) {
        0..=4 => &[],
        5 | 6 => &[0x8100],
        7 => &[0x88a8, 0x8100],
        8 => &[0x8100, 0x8100],
        _ => &[0x88a8, 0x8100, 0x8100],
    };
    for tpid in tags {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&(rng.word() & 0xefff | 1).to_be_bytes());
    }
    let ethertype = out.len();
    let v6 = src.is_ipv6();
    out.extend_from_slice(&if v6 { 0x86dd_u16 } else { 0x0800 }.to_be_bytes());
    let ip = out.len();
    let protocol = match upper {
        Upper::Tcp => 6,
        Upper::Udp => 17,
        Upper::Other(number) => number,
    };

    // The transport message first, so the IP header knows its length.
    let l4 = transport_message(rng, sport, dport, upper, v6);

    let l4_at = if v6 {
        let mut extensions = Vec::new();
        let mut next = protocol;
        // Extension headers, innermost first: each one's next header is the one after.
        if rng.percent(15) {
            for _ in 0..=rng.below(2) {
                let kind = rng.pick(&[0, 43, 44, 60, 51, 135]);
                let header = extension_header(rng, kind, next);
                extensions.splice(0..0, header);
                next = kind;
            }
        }
        let payload_len = (extensions.len() + l4.len()) as u16;
        out.push(0x60 | (rng.byte() & 0x0f));
        out.extend_from_slice(&[rng.byte(), rng.byte(), rng.byte()]);
        out.extend_from_slice(&payload_len.to_be_bytes());
        out.push(next);
        out.push(ttl);
        out.extend_from_slice(&address_bytes(src));
        out.extend_from_slice(&address_bytes(dst));
        out.extend_from_slice(&extensions);
        out.len()
    } else {
        let option_words = match rng.below(10) {
            0 => 1,
            1 => 10,
            2 => rng.below(11),
            _ => 0,
        };
        let header_len = 20 + option_words * 4;
        let total = (header_len + l4.len()) as u16;
        out.push(0x40 | (5 + option_words as u8));
        out.push(rng.byte());
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&rng.word().to_be_bytes());
        let fragment: u16 = match rng.below(12) {
            0 => 0x2000,
            1 => 1 + rng.word() % 0x1fff,
            2 => 0x2000 | (1 + rng.word() % 0x1fff),
            3 => 0x8000 | 0x4000,
            4 => 0x0000,
            _ => 0x4000,
        };
        out.extend_from_slice(&fragment.to_be_bytes());
        out.push(ttl);
        out.push(protocol);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&address_bytes(src));
        out.extend_from_slice(&address_bytes(dst));
        for i in 0..option_words * 4 {
            // Router Alert, Record Route shapes, NOPs, end of options.
            out.push(match (option_words, i) {
                (1, 0) => 0x94,
                (1, 1) => 4,
                _ => {
                    let any = rng.byte();
                    rng.pick(&[1, 0, 7, 0x94, any])
                }
            });
        }
        out.len()
    };
    out.extend_from_slice(&l4);
    // Ethernet padding to the 60-byte minimum, or odd trailing bytes.
    match rng.below(8) {
        0 => out.resize(out.len().max(60), 0),
        1 => out.extend((0..=rng.below(20)).map(|_| rng.byte())),
        _ => {}
    }
    fix_checksums(&mut out);
    let layout = Layout {
        ethertype,
        ip,
        l4: l4_at,
        v6,
    };
    (out, layout)
}

/// A TCP segment, UDP datagram or other message from `sport` to `dport`, checksum 0 (set
/// when the frame is complete), with options and payload of random sizes.
fn transport_message(rng: &mut Rng, sport: u16, dport: u16, upper: Upper, v6: bool) -> Vec<u8> {
    let mut l4 = Vec::new();
    match upper {
        Upper::Tcp => {
            let option_words = match rng.below(4) {
                0 => 0,
                1 => 3,
                _ => rng.below(11),
            };
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            l4.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            let flags = match rng.below(6) {
                0 => 0x02,
                1 => 0x12,
                2 => 0x11,
                3 => 0x04,
                4 => rng.word() & 0x01ff,
                _ => 0x18,
            };
            l4.extend_from_slice(&(((5 + option_words as u16) << 12) | flags).to_be_bytes());
            l4.extend_from_slice(&rng.word().to_be_bytes());
            l4.extend_from_slice(&[0, 0]);
            l4.extend_from_slice(&rng.word().to_be_bytes());
            for _ in 0..option_words * 4 {
                l4.push(if rng.percent(50) { 1 } else { rng.byte() });
            }
        }
        Upper::Udp => {
            l4.extend_from_slice(&sport.to_be_bytes());
            l4.extend_from_slice(&dport.to_be_bytes());
            l4.extend_from_slice(&[0, 0, 0, 0]);
        }
        Upper::Other(_) => {
            l4.extend_from_slice(&[if v6 { 128 } else { 8 }, 0, 0, 0]);
            l4.extend_from_slice(&rng.word().to_be_bytes());
            l4.extend_from_slice(&rng.word().to_be_bytes());
        }
    }
    let payload_len = match rng.below(10) {
        0 => 0,
        1 => 1 + rng.below(1400),
        _ => rng.below(64),
    };
    for _ in 0..payload_len {
        l4.push(rng.byte());
    }
    if let Upper::Udp = upper {
        let len = l4.len() as u16;
        l4[4..6].copy_from_slice(&len.to_be_bytes());
    }
    l4
}

/// An IPv6 extension header of type `kind` whose next header is `next`.
fn extension_header(rng: &mut Rng, kind: u8, next: u8) -> Vec<u8> {
    match kind {
        // Fragment header: 8 bytes, first fragment or not.
        44 => {
            let offset_flags: u16 = rng.pick(&[0x0001, 0x0000, 0x0008, 0x0009]);
            let mut header = vec![next, 0];
            header.extend_from_slice(&offset_flags.to_be_bytes());
            header.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
            header
        }
        // AH: length in 4-byte units minus 2.
        51 => {
            let mut header = vec![next, 4, 0, 0];
            header.extend((0..20).map(|_| rng.byte()));
            header
        }
        // Options, routing, mobility: length in 8-byte units minus 1; PadN filling.
        _ => {
            let units = rng.below(2);
            let mut header = vec![next, units as u8, 1, (4 + units * 8) as u8];
            header.resize(8 + units * 8, 0);
            header
        }
    }
}

fn address_bytes(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// Damages `bytes` in one of many ways, aimed at the headers `layout` locates.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, layout: Layout) {
    let len = bytes.len();
    let ip = layout.ip;
    let l4 = layout.l4;
    match rng.below(17) {
        // Cut anywhere (BPF_PROG_TEST_RUN needs the 14-byte Ethernet header).
        0 => bytes.truncate(14 + rng.below(len - 13)),
        // Cut just inside or after a header.
        1 => {
            let at = rng.pick(&[ip, ip + 20, ip + 40, l4, l4 + 8, l4 + 20]) + rng.below(3);
            bytes.truncate(at.clamp(14, len));
        }
        2 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        3 => {
            let at = rng.below(len.min(l4 + 20));
            bytes[at] ^= 1 << rng.below(8);
        }
        4 => {
            let at = rng.below(len.min(l4 + 20));
            bytes[at] = rng.byte();
        }
        // IHL.
        5 if !layout.v6 => {
            let value = bytes.get(ip).map_or(0x40, |b| b & 0xf0) | rng.below(16) as u8;
            set(bytes, ip, value);
        }
        // IPv4 total length / IPv6 payload length.
        5 | 6 => wrong_length(rng, bytes, ip + if layout.v6 { 4 } else { 2 }),
        // UDP length / TCP data offset (whichever the transport is).
        7 => wrong_length(rng, bytes, l4 + 4),
        8 => {
            let low = bytes.get(l4 + 12).map_or(0, |b| b & 0x0f);
            set(bytes, l4 + 12, ((rng.below(16) as u8) << 4) | low);
        }
        // The innermost ethertype.
        9 => {
            let value: u16 = rng.pick(&[0x0800, 0x86dd, 0x8100, 0x88a8, 0x0806, 0x9100, 0x0004]);
            set(bytes, layout.ethertype, (value >> 8) as u8);
            set(bytes, layout.ethertype + 1, value as u8);
        }
        // The IP version.
        10 => {
            let value = ((rng.below(16) as u8) << 4) | bytes.get(ip).map_or(0, |b| b & 0x0f);
            set(bytes, ip, value);
        }
        // IPv4 flags and fragment offset.
        11 if !layout.v6 => {
            set(
                bytes,
                ip + 6,
                rng.byte() & rng.pick(&[0xe0, 0xff, 0x20, 0x80]),
            );
            set(bytes, ip + 7, rng.byte() & rng.pick(&[0, 0xff]));
        }
        // TTL / hop limit.
        11 | 12 => {
            let at = ip + if layout.v6 { 7 } else { 8 };
            set(bytes, at, rng.pick(&[0, 1, 2, 255]));
        }
        // Protocol / next header.
        13 => {
            let at = ip + if layout.v6 { 6 } else { 9 };
            let any = rng.byte();
            let value = rng.pick(&[6, 17, 1, 58, 0, 43, 44, 50, 51, 59, 60, 135, 253, any]);
            set(bytes, at, value);
        }
        // Ethernet addresses: a group source (invalid) or a broadcast destination.
        14 => {
            if rng.percent(50) {
                bytes[6] |= 1;
            } else {
                bytes[..6].fill(0xff);
            }
        }
        // Trailing bytes beyond the IP packet.
        15 => bytes.extend((0..=rng.below(30)).map(|_| rng.byte())),
        // The transport checksum: "none", or all ones.
        _ => {
            let at = l4
                + if bytes.get(ip + 9) == Some(&6) || bytes.get(ip + 6) == Some(&6) {
                    16
                } else {
                    6
                };
            let value = rng.pick(&[0, 0xff]);
            set(bytes, at, value);
            set(bytes, at + 1, value);
        }
    }
}

/// Writes a wrong value into the 16-bit length field at `at`: anything, 0, or a little
/// more or less than it was.
fn wrong_length(rng: &mut Rng, bytes: &mut [u8], at: usize) {
    let old = bytes
        .get(at..at + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let new = match rng.below(4) {
        0 => rng.word(),
        1 => rng.word() % 16,
        2 => old.wrapping_add(1 + rng.below(8) as u16),
        _ => old.wrapping_sub(1 + rng.below(8) as u16),
    };
    set(bytes, at, (new >> 8) as u8);
    set(bytes, at + 1, new as u8);
}

/// Sets byte `at` of `bytes`, if the frame still reaches that far.
fn set(bytes: &mut [u8], at: usize, value: u8) {
    if let Some(byte) = bytes.get_mut(at) {
        *byte = value;
    }
}

/// Sets the IPv4 header checksum and the TCP / UDP checksum of `bytes` to the correct
/// values for what its headers say now, as far as they can be read (after a mutation,
/// this keeps many damaged frames otherwise checksum-correct, so they reach the policy).
fn fix_checksums(bytes: &mut [u8]) {
    let Some(mut ethertype) = read16(bytes, 12) else {
        return;
    };
    let mut at = 14;
    for _ in 0..3 {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        let Some(next) = read16(bytes, at + 2) else {
            return;
        };
        ethertype = next;
        at += 4;
    }
    let (l4, end, protocol, pseudo) = match ethertype {
        0x0800 => {
            let Some(&first) = bytes.get(at) else { return };
            let header_len = usize::from(first & 0x0f) * 4;
            if header_len < 20 || bytes.len() < at + header_len {
                return;
            }
            bytes[at + 10..at + 12].fill(0);
            let sum = !fold(sum_words(&bytes[at..at + header_len], 0));
            bytes[at + 10..at + 12].copy_from_slice(&sum.to_be_bytes());
            let total = usize::from(read16(bytes, at + 2).unwrap_or(0));
            let end = (at + total).min(bytes.len());
            let protocol = bytes[at + 9];
            let l4 = at + header_len;
            let pseudo = sum_words(&bytes[at + 12..at + 20], 0);
            (l4, end, protocol, pseudo)
        }
        0x86dd => {
            if bytes.len() < at + 40 {
                return;
            }
            let end = (at + 40 + usize::from(read16(bytes, at + 4).unwrap_or(0))).min(bytes.len());
            (
                at + 40,
                end,
                bytes[at + 6],
                sum_words(&bytes[at + 8..at + 40], 0),
            )
        }
        _ => return,
    };
    let checksum_at = match protocol {
        6 => l4 + 16,
        17 => l4 + 6,
        _ => return,
    };
    if end < checksum_at + 2 || end < l4 {
        return;
    }
    let mut end = end;
    if protocol == 17 {
        let udp_len = usize::from(read16(bytes, l4 + 4).unwrap_or(0));
        if udp_len >= 8 {
            end = end.min(l4 + udp_len);
        }
        if end < checksum_at + 2 {
            return;
        }
    }
    bytes[checksum_at..checksum_at + 2].fill(0);
    let length = (end - l4) as u32;
    let sum = sum_words(&bytes[l4..end], pseudo + u32::from(protocol) + length);
    let mut checksum = !fold(sum);
    if protocol == 17 && checksum == 0 {
        checksum = 0xffff;
    }
    bytes[checksum_at..checksum_at + 2].copy_from_slice(&checksum.to_be_bytes());
}

fn read16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// `initial` plus the big-endian 16-bit words of `bytes` (an odd last byte padded with 0).
fn sum_words(bytes: &[u8], initial: u32) -> u32 {
    let mut sum = u64::from(initial);
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], chunk.get(1).copied().unwrap_or(0)]);
        sum += u64::from(word);
    }
    while sum > 0xffff_ffff {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum as u32
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
