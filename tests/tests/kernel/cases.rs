//! The case table: each case is an input frame, the verdict the contract asks for, and the
//! exact frame that must leave (or "unchanged" for a frame passed to the stack).
//!
//! Expected frames are written from the expected field values by etherparse (its checksums,
//! not the program's); see [`reflector_tests::packets::Frame::reflected`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Ipv4Header, Ipv6Extensions};
use reflector_common::{
    AdmissionConfig, Direction, DropReason, Family, FlowKey, FlowValue, PassReason, Protocol,
    admission::{ADMISSION_ALLOW_LIST, ADMISSION_FLOW_TABLE_ALWAYS, ADMISSION_LOOP_GUARD_OFF},
};

use reflector_tests::{
    kernel_fixture::{
        self as fixture, CLIENT_PORT, CLIENT_V4, CLIENT_V6, HOST_V4, HOST_V4_OTHER, HOST_V6,
        HOST_V6_OTHER, NOT_LOCAL_V4, NOT_LOCAL_V6, SUBNET_BROADCAST_V4, TCP_LISTEN, UNMAPPED_PORT,
    },
    packets::{
        ETH_LEN, Frame, IPV4_LEN, IPV6_LEN, TCP_LEN, UDP_LEN, VLAN_TAG_LEN, Vlan, arp_request,
        ipv6_fragment_extension, ipv6_padding_options, transport_checksum, verify_checksums,
    },
    test_run::Kernel,
};

/// One row of the table.
pub(crate) struct Case {
    /// What the case checks.
    pub description: String,
    /// Frames run first on the same loaded program, each of which must be reflected (the
    /// forward frame that records the flow a reverse case needs).
    pub prelude: Vec<Vec<u8>>,
    /// The frame under test.
    pub input: Vec<u8>,
    /// What must happen to it.
    pub expect: Expect,
    /// Run on the freshly configured program before the prelude: admission settings,
    /// allow-lists, flows recorded by the control plane.
    pub setup: Option<fn(&mut Kernel)>,
    /// A flow entry the frame changes in place without creating it (the loop guard's
    /// highest TTLs).
    pub flow_update: Option<(FlowKey, FlowValue)>,
    /// The kernel may refuse `input` for skb programs (see
    /// [`Case::refused_by_skb_test_run`]): at TC an `EINVAL` from `BPF_PROG_TEST_RUN` is
    /// then reported as a note instead of a failure.
    pub skb_test_run_may_refuse: bool,
}

/// The expected outcome of a case.
pub(crate) enum Expect {
    /// Reflected: `XDP_TX` / `TC_ACT_REDIRECT`, leaving as `output`.
    Reflect {
        /// The exact frame that leaves.
        output: Vec<u8>,
        /// The direction counted.
        direction: Direction,
        /// The family counted.
        family: Family,
        /// The counter slot of the port map counted in `MAP_STATS`.
        map_slot: u16,
        /// The flow entry the frame records (forward frames), beyond those already there.
        new_flow: Option<(FlowKey, FlowValue)>,
    },
    /// Passed to the stack unchanged (`XDP_PASS` / `TC_ACT_OK`) and counted under `reason`.
    Pass(PassReason),
    /// Dropped (`XDP_DROP` / `TC_ACT_SHOT`) unchanged and counted under `reason`.
    Drop(DropReason),
}

impl Case {
    /// A forward frame `input`, reflected as the contract says, recording its flow.
    fn forward(description: &str, input: &Frame) -> Self {
        let output = fixture::forward_reflected(input).bytes();
        checked_expectation(description, &output);
        Self {
            description: description.to_owned(),
            prelude: Vec::new(),
            input: input.bytes(),
            expect: Expect::Reflect {
                output,
                direction: Direction::Forward,
                family: input.family(),
                map_slot: fixture::map_slot(input.protocol()),
                new_flow: Some(fixture::forward_flow(input)),
            },
            skb_test_run_may_refuse: false,
            setup: None,
            flow_update: None,
        }
    }

    /// A reply `reply` of the flow `forward` records, reflected back as the contract says.
    fn reverse(description: &str, forward: &Frame, reply: &Frame) -> Self {
        let output = fixture::reverse_reflected(reply).bytes();
        checked_expectation(description, &output);
        let (key, mut value) = fixture::forward_flow(forward);
        value.reverse_ttl = reply.ttl();
        Self {
            description: description.to_owned(),
            prelude: vec![forward.bytes()],
            input: reply.bytes(),
            expect: Expect::Reflect {
                output,
                direction: Direction::Reverse,
                family: reply.family(),
                map_slot: fixture::map_slot(reply.protocol()),
                new_flow: None,
            },
            skb_test_run_may_refuse: false,
            setup: None,
            flow_update: Some((key, value)),
        }
    }

    /// A frame passed to the stack unchanged for `reason`.
    fn pass(description: &str, input: Vec<u8>, reason: PassReason) -> Self {
        Self {
            description: description.to_owned(),
            prelude: Vec::new(),
            input,
            expect: Expect::Pass(reason),
            skb_test_run_may_refuse: false,
            setup: None,
            flow_update: None,
        }
    }

    /// Marks a frame whose ethertype is IPv4 (IPv6) but which holds fewer than 20 (40) bytes
    /// after the Ethernet header. Recent kernels (the stable fix that made
    /// `bpf_prog_test_run_skb` check `skb_headlen` before reading the IP addresses) refuse
    /// such a frame for skb programs with `EINVAL` before the program runs, so at TC the
    /// case can only run on older kernels; at XDP it always runs.
    fn refused_by_skb_test_run(mut self) -> Self {
        self.skb_test_run_may_refuse = true;
        self
    }

    /// A frame dropped unchanged for `reason`.
    fn drop(description: &str, input: Vec<u8>, reason: DropReason) -> Self {
        Self {
            expect: Expect::Drop(reason),
            ..Self::pass(description, input, PassReason::NotIp)
        }
    }

    /// This case, with `setup` run on the program first.
    fn with_setup(mut self, setup: fn(&mut Kernel)) -> Self {
        self.setup = Some(setup);
        self
    }

    /// This case, after `frame` was reflected first.
    fn after(mut self, frame: &Frame) -> Self {
        self.prelude.push(frame.bytes());
        self
    }
}

/// Expected frames come from etherparse; a wrong one is a broken case, not a program bug.
fn checked_expectation(description: &str, output: &[u8]) {
    if let Err(problem) = verify_checksums(output) {
        panic!("case {description:?} expects a frame with bad checksums: {problem}");
    }
}

fn v4(addr: Ipv4Addr) -> IpAddr {
    IpAddr::V4(addr)
}

fn v6(addr: Ipv6Addr) -> IpAddr {
    IpAddr::V6(addr)
}

/// A TCP frame from `src` to this host's listen port, in `src`'s family: everything valid
/// but the source.
fn tcp_to_listen_from(src: IpAddr) -> Frame {
    let dst = match src {
        IpAddr::V4(_) => v4(HOST_V4),
        IpAddr::V6(_) => v6(HOST_V6),
    };
    Frame::tcp(src, CLIENT_PORT, dst, TCP_LISTEN)
}

/// The first `len` bytes of `frame`.
fn cut(frame: &Frame, len: usize) -> Vec<u8> {
    let bytes = frame.bytes();
    assert!(
        len < bytes.len(),
        "cutting a {}-byte frame at {len}",
        bytes.len()
    );
    bytes[..len].to_vec()
}

// ---------------------------------------------------------------------------------------
// Reflected: forward.

pub(crate) fn ipv4_tcp_forward() -> Case {
    Case::forward(
        "IPv4 TCP to A:L leaves from A:s to S:P",
        &fixture::forward(Protocol::Tcp, Family::V4),
    )
}

pub(crate) fn ipv4_udp_forward() -> Case {
    Case::forward(
        "IPv4 UDP to A:L leaves from A:s to S:P",
        &fixture::forward(Protocol::Udp, Family::V4),
    )
}

pub(crate) fn ipv6_tcp_forward() -> Case {
    Case::forward(
        "IPv6 TCP to A:L leaves from A:s to S:P",
        &fixture::forward(Protocol::Tcp, Family::V6),
    )
}

pub(crate) fn ipv6_udp_forward() -> Case {
    Case::forward(
        "IPv6 UDP to A:L leaves from A:s to S:P",
        &fixture::forward(Protocol::Udp, Family::V6),
    )
}

pub(crate) fn vlan_ipv4_tcp_forward() -> Case {
    Case::forward(
        "802.1Q-tagged IPv4 TCP forward keeps its tag",
        &fixture::forward(Protocol::Tcp, Family::V4).with_vlan(Vlan::Single(100)),
    )
}

pub(crate) fn vlan_ipv6_udp_forward() -> Case {
    Case::forward(
        "802.1Q-tagged IPv6 UDP forward keeps its tag",
        &fixture::forward(Protocol::Udp, Family::V6).with_vlan(Vlan::Single(4094)),
    )
}

pub(crate) fn qinq_ipv4_udp_forward() -> Case {
    Case::forward(
        "QinQ (0x88a8 + 0x8100) IPv4 UDP forward keeps both tags",
        &fixture::forward(Protocol::Udp, Family::V4).with_vlan(Vlan::Double {
            outer: 200,
            inner: 300,
        }),
    )
}

pub(crate) fn qinq_ipv6_tcp_forward() -> Case {
    Case::forward(
        "QinQ (0x88a8 + 0x8100) IPv6 TCP forward keeps both tags",
        &fixture::forward(Protocol::Tcp, Family::V6).with_vlan(Vlan::Double { outer: 1, inner: 2 }),
    )
}

/// IPv4 Router Alert: one 4-byte option, IHL 6.
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

/// A Record Route option with room for 9 addresses and an end-of-options byte: 40 bytes of
/// options, IHL 15.
fn record_route_options() -> [u8; 40] {
    let mut options = [0u8; 40];
    options[..3].copy_from_slice(&[7, 39, 4]);
    options
}

pub(crate) fn ipv4_options_ihl6_tcp_forward() -> Case {
    Case::forward(
        "IPv4 with IHL 6 (Router Alert) TCP forward keeps its options",
        &fixture::forward(Protocol::Tcp, Family::V4).with_ipv4_options(&ROUTER_ALERT),
    )
}

pub(crate) fn ipv4_options_ihl15_udp_forward() -> Case {
    Case::forward(
        "IPv4 with IHL 15 (40 bytes of options) UDP forward keeps its options",
        &fixture::forward(Protocol::Udp, Family::V4).with_ipv4_options(&record_route_options()),
    )
}

pub(crate) fn ipv4_ttl2_forward() -> Case {
    Case::forward(
        "IPv4 TTL 2 is reflected with TTL 1",
        &fixture::forward(Protocol::Tcp, Family::V4).with_ttl(2),
    )
}

pub(crate) fn ipv6_hop_limit2_forward() -> Case {
    Case::forward(
        "IPv6 hop limit 2 is reflected with hop limit 1",
        &fixture::forward(Protocol::Udp, Family::V6).with_ttl(2),
    )
}

pub(crate) fn ipv4_udp_checksum_zero_forward() -> Case {
    Case::forward(
        "IPv4 UDP with checksum 0 (none) leaves with checksum 0",
        &fixture::forward(Protocol::Udp, Family::V4).with_udp_checksum_zero(),
    )
}

/// A forward UDP frame whose reflected frame's correct checksum computes to 0, so it must be
/// written as 0xffff.
fn udp_forward_with_zero_output_checksum(family: Family) -> Frame {
    let probe = fixture::forward(Protocol::Udp, family);
    assert!(
        probe.payload.len().is_multiple_of(2),
        "the adjusting word must be 16-bit aligned"
    );
    let mut payload = probe.payload.clone();
    payload.extend_from_slice(&[0, 0]);
    let probe = probe.with_payload(payload.clone());
    // Adding the one's complement of the checksum as a data word makes the one's complement
    // sum 0xffff, so the checksum computes to 0.
    let checksum = transport_checksum(&fixture::forward_reflected(&probe).bytes());
    let end = payload.len();
    payload[end - 2..].copy_from_slice(&checksum.to_be_bytes());
    let input = probe.with_payload(payload);
    assert_eq!(
        transport_checksum(&fixture::forward_reflected(&input).bytes()),
        0xffff,
        "case construction: the reflected frame's checksum must compute to 0"
    );
    assert_ne!(transport_checksum(&input.bytes()), 0xffff);
    input
}

pub(crate) fn ipv4_udp_output_checksum_zero_written_ffff() -> Case {
    Case::forward(
        "IPv4 UDP whose new checksum computes to 0 is written as 0xffff",
        &udp_forward_with_zero_output_checksum(Family::V4),
    )
}

pub(crate) fn ipv6_udp_output_checksum_zero_written_ffff() -> Case {
    Case::forward(
        "IPv6 UDP whose new checksum computes to 0 is written as 0xffff",
        &udp_forward_with_zero_output_checksum(Family::V6),
    )
}

pub(crate) fn ipv4_udp_input_checksum_ffff_forward() -> Case {
    let probe = fixture::forward(Protocol::Udp, Family::V4);
    let mut payload = probe.payload.clone();
    payload.extend_from_slice(&[0, 0]);
    let probe = probe.with_payload(payload.clone());
    let checksum = transport_checksum(&probe.bytes());
    let end = payload.len();
    payload[end - 2..].copy_from_slice(&checksum.to_be_bytes());
    let input = probe.with_payload(payload);
    assert_eq!(
        transport_checksum(&input.bytes()),
        0xffff,
        "case construction: the input's checksum must compute to 0 (written 0xffff)"
    );
    Case::forward(
        "IPv4 UDP arriving with checksum 0xffff (a computed 0) is reflected with a correct checksum",
        &input,
    )
}

pub(crate) fn ipv4_udp_ethernet_padding_forward() -> Case {
    let input = fixture::forward(Protocol::Udp, Family::V4).with_payload(b"ab".to_vec());
    // 14 + 20 + 8 + 2 = 44 bytes: padded to the 60-byte Ethernet minimum with 16 bytes the
    // checksums must not cover.
    let input = input.with_trailer(vec![0xee; 16]);
    Case::forward(
        "IPv4 UDP in a frame with Ethernet padding: padding kept, not checksummed",
        &input,
    )
}

/// `len` bytes of a non-repeating-looking pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

pub(crate) fn ipv4_tcp_full_size_forward() -> Case {
    // 14 + 20 + 32 (TCP with 12 bytes of options) + 1448 = 1514 bytes: a full 1500-byte MTU.
    let input = fixture::forward(Protocol::Tcp, Family::V4).with_payload(pattern(1448));
    assert_eq!(input.bytes().len(), 1514);
    Case::forward("IPv4 TCP in a full-size (1514-byte) frame", &input)
}

pub(crate) fn ipv6_udp_full_size_forward() -> Case {
    // 14 + 40 + 8 + 1452 = 1514 bytes.
    let input = fixture::forward(Protocol::Udp, Family::V6).with_payload(pattern(1452));
    assert_eq!(input.bytes().len(), 1514);
    Case::forward("IPv6 UDP in a full-size (1514-byte) frame", &input)
}

pub(crate) fn ipv4_udp_odd_payload_forward() -> Case {
    Case::forward(
        "IPv4 UDP with an odd payload length (checksum pads the last byte)",
        &fixture::forward(Protocol::Udp, Family::V4).with_payload(pattern(33)),
    )
}

pub(crate) fn ipv6_tcp_empty_payload_forward() -> Case {
    Case::forward(
        "IPv6 TCP with no payload",
        &fixture::forward(Protocol::Tcp, Family::V6).with_payload(Vec::new()),
    )
}

/// `bytes` (an untagged IPv4 frame) with the IPv4 total length set to `total_len` and the
/// header checksum recomputed by etherparse.
fn with_ipv4_total_len(mut bytes: Vec<u8>, total_len: u16) -> Vec<u8> {
    let (mut header, _) =
        Ipv4Header::from_slice(&bytes[ETH_LEN..]).expect("an IPv4 header after Ethernet");
    header.total_len = total_len;
    header.header_checksum = header.calc_header_checksum();
    let end = ETH_LEN + header.header_len();
    bytes[ETH_LEN..end].copy_from_slice(&header.to_bytes());
    bytes
}

pub(crate) fn ipv4_total_length_beyond_frame_forward() -> Case {
    // Length fields are not checked (README, "The rules in detail"): only fixed fields at
    // fixed places are read and rewritten, and the rest leaves as it came.
    let input = fixture::forward(Protocol::Udp, Family::V4);
    let output = fixture::forward_reflected(&input).bytes();
    let wrong = (input.bytes().len() - ETH_LEN + 100) as u16;
    Case {
        description: "IPv4 UDP whose total length claims 100 bytes beyond the frame: \
                      reflected with its length fields as they came"
            .to_owned(),
        prelude: Vec::new(),
        input: with_ipv4_total_len(input.bytes(), wrong),
        expect: Expect::Reflect {
            output: with_ipv4_total_len(output, wrong),
            direction: Direction::Forward,
            family: Family::V4,
            map_slot: fixture::map_slot(Protocol::Udp),
            new_flow: Some(fixture::forward_flow(&input)),
        },
        skb_test_run_may_refuse: false,
        setup: None,
        flow_update: None,
    }
}

// ---------------------------------------------------------------------------------------
// Reflected: reverse (after the forward frame that records the flow).

fn reverse_case(description: &str, protocol: Protocol, family: Family) -> Case {
    Case::reverse(
        description,
        &fixture::forward(protocol, family),
        &fixture::reverse(protocol, family),
    )
}

pub(crate) fn ipv4_tcp_reverse() -> Case {
    reverse_case(
        "IPv4 TCP reply from S:P to A:s of a flow leaves from A:L to S:s",
        Protocol::Tcp,
        Family::V4,
    )
}

pub(crate) fn ipv4_udp_reverse() -> Case {
    reverse_case(
        "IPv4 UDP reply from S:P to A:s of a flow leaves from A:L to S:s",
        Protocol::Udp,
        Family::V4,
    )
}

pub(crate) fn ipv6_tcp_reverse() -> Case {
    reverse_case(
        "IPv6 TCP reply from S:P to A:s of a flow leaves from A:L to S:s",
        Protocol::Tcp,
        Family::V6,
    )
}

pub(crate) fn ipv6_udp_reverse() -> Case {
    reverse_case(
        "IPv6 UDP reply from S:P to A:s of a flow leaves from A:L to S:s",
        Protocol::Udp,
        Family::V6,
    )
}

pub(crate) fn vlan_ipv4_udp_reverse() -> Case {
    let vlan = Vlan::Single(100);
    Case::reverse(
        "802.1Q-tagged IPv4 UDP reply keeps its tag",
        &fixture::forward(Protocol::Udp, Family::V4).with_vlan(vlan),
        &fixture::reverse(Protocol::Udp, Family::V4).with_vlan(vlan),
    )
}

pub(crate) fn qinq_ipv6_tcp_reverse() -> Case {
    let vlan = Vlan::Double {
        outer: 10,
        inner: 20,
    };
    Case::reverse(
        "QinQ IPv6 TCP reply keeps both tags",
        &fixture::forward(Protocol::Tcp, Family::V6).with_vlan(vlan),
        &fixture::reverse(Protocol::Tcp, Family::V6).with_vlan(vlan),
    )
}

pub(crate) fn ipv4_options_ihl6_tcp_reverse() -> Case {
    Case::reverse(
        "IPv4 TCP reply with IHL 6 keeps its options",
        &fixture::forward(Protocol::Tcp, Family::V4),
        &fixture::reverse(Protocol::Tcp, Family::V4).with_ipv4_options(&ROUTER_ALERT),
    )
}

pub(crate) fn ipv4_udp_checksum_zero_reverse() -> Case {
    Case::reverse(
        "IPv4 UDP reply with checksum 0 (none) leaves with checksum 0",
        &fixture::forward(Protocol::Udp, Family::V4),
        &fixture::reverse(Protocol::Udp, Family::V4).with_udp_checksum_zero(),
    )
}

// ---------------------------------------------------------------------------------------
// Passed: no flow.

pub(crate) fn ipv4_tcp_reverse_without_flow() -> Case {
    Case::pass(
        "IPv4 TCP from target port P with no flow recorded",
        fixture::reverse(Protocol::Tcp, Family::V4).bytes(),
        PassReason::NoFlow,
    )
}

pub(crate) fn ipv6_udp_reverse_without_flow() -> Case {
    Case::pass(
        "IPv6 UDP from target port P with no flow recorded",
        fixture::reverse(Protocol::Udp, Family::V6).bytes(),
        PassReason::NoFlow,
    )
}

pub(crate) fn ipv4_udp_reverse_other_client_port() -> Case {
    let forward = fixture::forward(Protocol::Udp, Family::V4);
    let reply = Frame::udp(
        v4(CLIENT_V4),
        fixture::UDP_TARGET,
        v4(HOST_V4),
        CLIENT_PORT + 1,
    );
    Case::pass(
        "IPv4 UDP from P to a client port other than the recorded flow's",
        reply.bytes(),
        PassReason::NoFlow,
    )
    .after(&forward)
}

pub(crate) fn ipv6_tcp_reverse_other_client_address() -> Case {
    let forward = fixture::forward(Protocol::Tcp, Family::V6);
    let reply = Frame::tcp(
        v6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 8)),
        fixture::TCP_TARGET,
        v6(HOST_V6),
        CLIENT_PORT,
    );
    Case::pass(
        "IPv6 TCP from P of a client address other than the recorded flow's",
        reply.bytes(),
        PassReason::NoFlow,
    )
    .after(&forward)
}

// ---------------------------------------------------------------------------------------
// Passed: fragments and IPv6 extension headers.

pub(crate) fn ipv4_fragment_more_fragments() -> Case {
    Case::pass(
        "IPv4 first fragment (MF set, offset 0)",
        fixture::forward(Protocol::Udp, Family::V4)
            .with_ipv4_fragment(true, 0)
            .bytes(),
        PassReason::Fragment,
    )
}

pub(crate) fn ipv4_fragment_nonzero_offset() -> Case {
    Case::pass(
        "IPv4 last fragment (MF clear, offset 185)",
        fixture::forward(Protocol::Udp, Family::V4)
            .with_ipv4_fragment(false, 185)
            .bytes(),
        PassReason::Fragment,
    )
}

pub(crate) fn ipv4_fragment_middle() -> Case {
    Case::pass(
        "IPv4 middle fragment (MF set, offset 1)",
        fixture::forward(Protocol::Tcp, Family::V4)
            .with_ipv4_fragment(true, 1)
            .bytes(),
        PassReason::Fragment,
    )
}

pub(crate) fn ipv6_fragment_header() -> Case {
    Case::pass(
        "IPv6 with a fragment header (next header 44)",
        fixture::forward(Protocol::Udp, Family::V6)
            .with_ipv6_extensions(ipv6_fragment_extension())
            .bytes(),
        PassReason::Fragment,
    )
}

pub(crate) fn ipv6_hop_by_hop_header() -> Case {
    Case::pass(
        "IPv6 with a hop-by-hop options header (next header 0)",
        fixture::forward(Protocol::Udp, Family::V6)
            .with_ipv6_extensions(Ipv6Extensions {
                hop_by_hop_options: Some(ipv6_padding_options()),
                ..Ipv6Extensions::default()
            })
            .bytes(),
        PassReason::Ipv6ExtensionHeader,
    )
}

pub(crate) fn ipv6_destination_options_header() -> Case {
    Case::pass(
        "IPv6 with a destination options header (next header 60)",
        fixture::forward(Protocol::Tcp, Family::V6)
            .with_ipv6_extensions(Ipv6Extensions {
                destination_options: Some(ipv6_padding_options()),
                ..Ipv6Extensions::default()
            })
            .bytes(),
        PassReason::Ipv6ExtensionHeader,
    )
}

pub(crate) fn ipv6_experimental_extension_header() -> Case {
    let mut bytes = fixture::forward(Protocol::Udp, Family::V6).bytes();
    // Next header 253, reserved for experiments (RFC 3692) as an extension header.
    bytes[ETH_LEN + 6] = 253;
    Case::pass(
        "IPv6 with next header 253 (an experimental extension header)",
        bytes,
        PassReason::Ipv6ExtensionHeader,
    )
}

// ---------------------------------------------------------------------------------------
// Passed: truncated at each header boundary. A frame shorter than its Ethernet header
// cannot be tested here: BPF_PROG_TEST_RUN rejects data shorter than ETH_HLEN (14) with
// EINVAL before any program runs, for XDP and for skb programs alike.

pub(crate) fn truncated_vlan_tag() -> Case {
    let frame = fixture::forward(Protocol::Tcp, Family::V4).with_vlan(Vlan::Single(100));
    Case::pass(
        "802.1Q frame ending inside its tag",
        cut(&frame, ETH_LEN + 2),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_qinq_inner_tag() -> Case {
    let frame = fixture::forward(Protocol::Udp, Family::V4).with_vlan(Vlan::Double {
        outer: 200,
        inner: 300,
    });
    Case::pass(
        "QinQ frame ending inside its inner tag",
        cut(&frame, ETH_LEN + VLAN_TAG_LEN + 2),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_empty() -> Case {
    Case::pass(
        "IPv4 ethertype with no IP header at all (14-byte frame)",
        cut(&fixture::forward(Protocol::Tcp, Family::V4), ETH_LEN),
        PassReason::Truncated,
    )
    .refused_by_skb_test_run()
}

pub(crate) fn truncated_ipv4_fixed_header() -> Case {
    Case::pass(
        "IPv4 frame ending one byte short of the 20-byte header",
        cut(
            &fixture::forward(Protocol::Tcp, Family::V4),
            ETH_LEN + IPV4_LEN - 1,
        ),
        PassReason::Truncated,
    )
    .refused_by_skb_test_run()
}

pub(crate) fn truncated_vlan_ipv4_fixed_header() -> Case {
    let frame = fixture::forward(Protocol::Udp, Family::V4).with_vlan(Vlan::Single(7));
    Case::pass(
        "802.1Q IPv4 frame ending inside the IPv4 header",
        cut(&frame, ETH_LEN + VLAN_TAG_LEN + IPV4_LEN - 1),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_options() -> Case {
    let frame = fixture::forward(Protocol::Udp, Family::V4).with_ipv4_options(&ROUTER_ALERT);
    Case::pass(
        "IPv4 frame (IHL 6) ending inside its options",
        cut(&frame, ETH_LEN + IPV4_LEN + 2),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_no_transport_header() -> Case {
    Case::pass(
        "IPv4 UDP frame ending right after the IPv4 header",
        cut(
            &fixture::forward(Protocol::Udp, Family::V4),
            ETH_LEN + IPV4_LEN,
        ),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_tcp_header() -> Case {
    Case::pass(
        "IPv4 TCP frame ending one byte short of the 20-byte TCP header",
        cut(
            &fixture::forward(Protocol::Tcp, Family::V4),
            ETH_LEN + IPV4_LEN + TCP_LEN - 1,
        ),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_udp_header() -> Case {
    Case::pass(
        "IPv4 UDP frame ending one byte short of the 8-byte UDP header",
        cut(
            &fixture::forward(Protocol::Udp, Family::V4),
            ETH_LEN + IPV4_LEN + UDP_LEN - 1,
        ),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv4_options_udp_header() -> Case {
    let frame = fixture::forward(Protocol::Udp, Family::V4).with_ipv4_options(&ROUTER_ALERT);
    Case::pass(
        "IPv4 (IHL 6) UDP frame ending inside the UDP header (which starts after the options)",
        cut(&frame, ETH_LEN + IPV4_LEN + 4 + UDP_LEN - 1),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv6_header() -> Case {
    Case::pass(
        "IPv6 frame ending one byte short of the 40-byte header",
        cut(
            &fixture::forward(Protocol::Tcp, Family::V6),
            ETH_LEN + IPV6_LEN - 1,
        ),
        PassReason::Truncated,
    )
    .refused_by_skb_test_run()
}

pub(crate) fn truncated_ipv6_tcp_header() -> Case {
    Case::pass(
        "IPv6 TCP frame ending one byte short of the 20-byte TCP header",
        cut(
            &fixture::forward(Protocol::Tcp, Family::V6),
            ETH_LEN + IPV6_LEN + TCP_LEN - 1,
        ),
        PassReason::Truncated,
    )
}

pub(crate) fn truncated_ipv6_udp_header() -> Case {
    Case::pass(
        "IPv6 UDP frame ending one byte short of the 8-byte UDP header",
        cut(
            &fixture::forward(Protocol::Udp, Family::V6),
            ETH_LEN + IPV6_LEN + UDP_LEN - 1,
        ),
        PassReason::Truncated,
    )
}

// ---------------------------------------------------------------------------------------
// Passed: malformed.

/// The byte holding the IP version and (IPv4) IHL in an untagged frame.
const VERSION_BYTE: usize = ETH_LEN;

pub(crate) fn ipv4_ihl_below_5() -> Case {
    let mut bytes = fixture::forward(Protocol::Tcp, Family::V4).bytes();
    bytes[VERSION_BYTE] = 0x44;
    Case::pass("IPv4 with IHL 4 (< 5)", bytes, PassReason::Malformed)
}

pub(crate) fn ipv4_ethertype_version_6() -> Case {
    let mut bytes = fixture::forward(Protocol::Udp, Family::V4).bytes();
    bytes[VERSION_BYTE] = 0x65;
    Case::pass(
        "IPv4 ethertype carrying an IP version 6 header",
        bytes,
        PassReason::Malformed,
    )
}

pub(crate) fn ipv6_ethertype_version_4() -> Case {
    let mut bytes = fixture::forward(Protocol::Udp, Family::V6).bytes();
    bytes[VERSION_BYTE] = 0x40 | (bytes[VERSION_BYTE] & 0x0f);
    Case::pass(
        "IPv6 ethertype carrying an IP version 4 header",
        bytes,
        PassReason::Malformed,
    )
}

pub(crate) fn group_source_mac_malformed() -> Case {
    let mut input = fixture::forward(Protocol::Tcp, Family::V4);
    // The individual/group bit: a multicast source address, which 802.3 forbids and which
    // a reflection would be sent to.
    input.mac_src[0] |= 0x01;
    Case::pass(
        "a frame from a group (multicast) Ethernet address",
        input.bytes(),
        PassReason::Malformed,
    )
}

pub(crate) fn broadcast_source_mac_malformed() -> Case {
    let mut input = fixture::reverse(Protocol::Udp, Family::V6);
    input.mac_src = [0xff; 6];
    Case::pass(
        "a reply of a flow from the broadcast Ethernet address",
        input.bytes(),
        PassReason::Malformed,
    )
    .after(&fixture::forward(Protocol::Udp, Family::V6))
}

// ---------------------------------------------------------------------------------------
// Passed: not for this host, or not a mapped port.

pub(crate) fn ipv4_destination_not_local() -> Case {
    Case::pass(
        "IPv4 TCP to a mapped port of an address that is not this host's",
        Frame::tcp(v4(CLIENT_V4), CLIENT_PORT, v4(NOT_LOCAL_V4), TCP_LISTEN).bytes(),
        PassReason::DestinationNotLocal,
    )
}

pub(crate) fn ipv6_destination_not_local() -> Case {
    Case::pass(
        "IPv6 UDP to a mapped port of an address that is not this host's",
        Frame::udp(
            v6(CLIENT_V6),
            CLIENT_PORT,
            v6(NOT_LOCAL_V6),
            fixture::UDP_LISTEN,
        )
        .bytes(),
        PassReason::DestinationNotLocal,
    )
}

pub(crate) fn ipv6_destination_ipv4_mapped_local() -> Case {
    // IPv4 addresses are keyed IPv4-mapped in LOCAL_ADDRS: an IPv6 packet to ::ffff:A must
    // not find A's entry.
    Case::pass(
        "IPv6 TCP to the IPv4-mapped form of this host's IPv4 address (::ffff:192.0.2.1)",
        Frame::tcp(
            v6(CLIENT_V6),
            CLIENT_PORT,
            v6(HOST_V4.to_ipv6_mapped()),
            TCP_LISTEN,
        )
        .bytes(),
        PassReason::DestinationNotLocal,
    )
}

/// An IPv6 frame between the IPv4-mapped forms of the client's and this host's IPv4
/// addresses, from the client's `source_port` to this host's `destination_port`.
fn ipv6_between_mapped(protocol: Protocol, source_port: u16, destination_port: u16) -> Frame {
    Frame::transport(
        protocol,
        v6(CLIENT_V4.to_ipv6_mapped()),
        source_port,
        v6(HOST_V4.to_ipv6_mapped()),
        destination_port,
    )
}

pub(crate) fn ipv6_mapped_forward_of_ipv4_flow() -> Case {
    // The IPv4 flow's key (IPv4-mapped addresses) is the IPv6 frame's: a recorded flow must
    // not let it skip the destination check.
    Case::pass(
        "IPv6 UDP between IPv4-mapped addresses to L, with the same IPv4 flow recorded",
        ipv6_between_mapped(Protocol::Udp, CLIENT_PORT, fixture::UDP_LISTEN).bytes(),
        PassReason::DestinationNotLocal,
    )
    .after(&fixture::forward(Protocol::Udp, Family::V4))
}

pub(crate) fn ipv6_mapped_reply_of_ipv4_flow() -> Case {
    Case::pass(
        "IPv6 TCP between IPv4-mapped addresses from P, with the same IPv4 flow recorded",
        ipv6_between_mapped(Protocol::Tcp, fixture::TCP_TARGET, CLIENT_PORT).bytes(),
        PassReason::NoFlow,
    )
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

pub(crate) fn ipv4_destination_subnet_broadcast() -> Case {
    Case::pass(
        "IPv4 UDP to a mapped port of this host's subnet broadcast address (kind BROADCAST)",
        Frame::udp(
            v4(CLIENT_V4),
            CLIENT_PORT,
            v4(SUBNET_BROADCAST_V4),
            fixture::UDP_LISTEN,
        )
        .bytes(),
        PassReason::DestinationNotLocal,
    )
}

pub(crate) fn ipv4_tcp_port_not_mapped() -> Case {
    Case::pass(
        "IPv4 TCP to an unmapped port",
        Frame::tcp(v4(CLIENT_V4), CLIENT_PORT, v4(HOST_V4), UNMAPPED_PORT).bytes(),
        PassReason::PortNotMapped,
    )
}

pub(crate) fn ipv6_udp_port_not_mapped() -> Case {
    Case::pass(
        "IPv6 UDP to an unmapped port",
        Frame::udp(v6(CLIENT_V6), CLIENT_PORT, v6(HOST_V6), UNMAPPED_PORT).bytes(),
        PassReason::PortNotMapped,
    )
}

pub(crate) fn udp_to_tcp_listen_port_not_mapped() -> Case {
    Case::pass(
        "IPv4 UDP to the TCP listen port (mapped for TCP only)",
        Frame::udp(v4(CLIENT_V4), CLIENT_PORT, v4(HOST_V4), TCP_LISTEN).bytes(),
        PassReason::PortNotMapped,
    )
}

// ---------------------------------------------------------------------------------------
// Passed: sources a reflection must never go to.

pub(crate) fn ipv4_source_multicast() -> Case {
    Case::pass(
        "IPv4 from a multicast source (224.0.0.251)",
        tcp_to_listen_from(v4(Ipv4Addr::new(224, 0, 0, 251))).bytes(),
        PassReason::SourceMulticast,
    )
}

pub(crate) fn ipv6_source_multicast() -> Case {
    Case::pass(
        "IPv6 from a multicast source (ff02::1)",
        tcp_to_listen_from(v6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1))).bytes(),
        PassReason::SourceMulticast,
    )
}

pub(crate) fn ipv4_source_limited_broadcast() -> Case {
    Case::pass(
        "IPv4 from 255.255.255.255",
        tcp_to_listen_from(v4(Ipv4Addr::BROADCAST)).bytes(),
        PassReason::SourceBroadcast,
    )
}

pub(crate) fn ipv4_source_subnet_broadcast() -> Case {
    Case::pass(
        "IPv4 from this host's subnet broadcast address (LOCAL_ADDRS kind BROADCAST)",
        tcp_to_listen_from(v4(SUBNET_BROADCAST_V4)).bytes(),
        PassReason::SourceBroadcast,
    )
}

pub(crate) fn ipv4_source_loopback() -> Case {
    Case::pass(
        "IPv4 from 127.0.0.1",
        tcp_to_listen_from(v4(Ipv4Addr::LOCALHOST)).bytes(),
        PassReason::SourceLoopback,
    )
}

pub(crate) fn ipv4_source_loopback_net() -> Case {
    Case::pass(
        "IPv4 from 127.1.2.3 (127.0.0.0/8 is all loopback)",
        tcp_to_listen_from(v4(Ipv4Addr::new(127, 1, 2, 3))).bytes(),
        PassReason::SourceLoopback,
    )
}

pub(crate) fn ipv6_source_loopback() -> Case {
    Case::pass(
        "IPv6 from ::1",
        tcp_to_listen_from(v6(Ipv6Addr::LOCALHOST)).bytes(),
        PassReason::SourceLoopback,
    )
}

pub(crate) fn ipv4_source_unspecified() -> Case {
    Case::pass(
        "IPv4 from 0.0.0.0",
        tcp_to_listen_from(v4(Ipv4Addr::UNSPECIFIED)).bytes(),
        PassReason::SourceUnspecified,
    )
}

pub(crate) fn ipv6_source_unspecified() -> Case {
    Case::pass(
        "IPv6 from ::",
        tcp_to_listen_from(v6(Ipv6Addr::UNSPECIFIED)).bytes(),
        PassReason::SourceUnspecified,
    )
}

pub(crate) fn ipv4_source_local() -> Case {
    Case::pass(
        "IPv4 from another of this host's addresses (kind LOCAL)",
        tcp_to_listen_from(v4(HOST_V4_OTHER)).bytes(),
        PassReason::SourceLocal,
    )
}

pub(crate) fn ipv6_source_local() -> Case {
    Case::pass(
        "IPv6 from another of this host's addresses (kind LOCAL)",
        tcp_to_listen_from(v6(HOST_V6_OTHER)).bytes(),
        PassReason::SourceLocal,
    )
}

// ---------------------------------------------------------------------------------------
// Passed: TTL / hop limit.

pub(crate) fn ipv4_ttl1() -> Case {
    Case::pass(
        "IPv4 with TTL 1",
        fixture::forward(Protocol::Tcp, Family::V4)
            .with_ttl(1)
            .bytes(),
        PassReason::TtlExpired,
    )
}

pub(crate) fn ipv4_ttl0() -> Case {
    Case::pass(
        "IPv4 with TTL 0",
        fixture::forward(Protocol::Udp, Family::V4)
            .with_ttl(0)
            .bytes(),
        PassReason::TtlExpired,
    )
}

pub(crate) fn ipv6_hop_limit1() -> Case {
    Case::pass(
        "IPv6 with hop limit 1",
        fixture::forward(Protocol::Udp, Family::V6)
            .with_ttl(1)
            .bytes(),
        PassReason::TtlExpired,
    )
}

pub(crate) fn ipv6_hop_limit0() -> Case {
    Case::pass(
        "IPv6 with hop limit 0",
        fixture::forward(Protocol::Tcp, Family::V6)
            .with_ttl(0)
            .bytes(),
        PassReason::TtlExpired,
    )
}

pub(crate) fn ipv4_tcp_reverse_ttl1() -> Case {
    Case::pass(
        "IPv4 TCP reply of a flow with TTL 1",
        fixture::reverse(Protocol::Tcp, Family::V4)
            .with_ttl(1)
            .bytes(),
        PassReason::TtlExpired,
    )
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

// ---------------------------------------------------------------------------------------
// Passed: not IP, not TCP/UDP.

pub(crate) fn arp_not_ip() -> Case {
    Case::pass(
        "ARP request",
        arp_request(Vlan::Untagged, CLIENT_V4.octets(), HOST_V4.octets()),
        PassReason::NotIp,
    )
}

pub(crate) fn vlan_arp_not_ip() -> Case {
    Case::pass(
        "802.1Q-tagged ARP request",
        arp_request(Vlan::Single(100), CLIENT_V4.octets(), HOST_V4.octets()),
        PassReason::NotIp,
    )
}

pub(crate) fn ipv4_icmp_not_tcp_udp() -> Case {
    Case::pass(
        "ICMP echo request to this host",
        Frame::echo(v4(CLIENT_V4), v4(HOST_V4)).bytes(),
        PassReason::NotTcpUdp,
    )
}

pub(crate) fn ipv6_icmp_not_tcp_udp() -> Case {
    Case::pass(
        "ICMPv6 echo request to this host",
        Frame::echo(v6(CLIENT_V6), v6(HOST_V6)).bytes(),
        PassReason::NotTcpUdp,
    )
}

pub(crate) fn qinq_ipv6_icmp_not_tcp_udp() -> Case {
    Case::pass(
        "QinQ ICMPv6 echo request to this host",
        Frame::echo(v6(CLIENT_V6), v6(HOST_V6))
            .with_vlan(Vlan::Double {
                outer: 200,
                inner: 300,
            })
            .bytes(),
        PassReason::NotTcpUdp,
    )
}

// ---------------------------------------------------------------------------------------
// Dropped: the allow-list.

/// The allow-list enforced, holding `203.0.113.0/24` and the client's IPv6 `/64`, and not
/// the client's IPv4 address.
fn allow_others_and_client_v6(kernel: &mut Kernel) {
    kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
    kernel.allow(v4(Ipv4Addr::new(203, 0, 113, 0)), 24);
    kernel.allow(v6(CLIENT_V6), 64);
}

/// The allow-list enforced, holding `2001:db8:ffff::/48` and the client's IPv4 `/24`.
fn allow_client_v4_only(kernel: &mut Kernel) {
    kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
    kernel.allow(v6(Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0)), 48);
    kernel.allow(v4(CLIENT_V4), 24);
}

pub(crate) fn ipv4_source_not_allowed() -> Case {
    Case::drop(
        "IPv4 TCP from a source outside an enforced allow-list is dropped",
        fixture::forward(Protocol::Tcp, Family::V4).bytes(),
        DropReason::SourceNotAllowed,
    )
    .with_setup(allow_others_and_client_v6)
}

pub(crate) fn ipv6_source_not_allowed() -> Case {
    Case::drop(
        "IPv6 UDP from a source outside an enforced allow-list is dropped",
        fixture::forward(Protocol::Udp, Family::V6).bytes(),
        DropReason::SourceNotAllowed,
    )
    .with_setup(allow_client_v4_only)
}

pub(crate) fn ipv4_source_allowed_forward() -> Case {
    Case::forward(
        "IPv4 UDP from a source inside an enforced allow-list (its /24) is reflected",
        &fixture::forward(Protocol::Udp, Family::V4),
    )
    .with_setup(allow_client_v4_only)
}

pub(crate) fn ipv6_source_allowed_forward() -> Case {
    Case::forward(
        "IPv6 TCP from a source inside an enforced allow-list (its /64) is reflected",
        &fixture::forward(Protocol::Tcp, Family::V6),
    )
    .with_setup(allow_others_and_client_v6)
}

pub(crate) fn allow_list_not_enforced_allows_every_source() -> Case {
    Case::forward(
        "prefixes in the allow-list but the list not enforced (the default): every source",
        &fixture::forward(Protocol::Tcp, Family::V4),
    )
    .with_setup(|kernel| kernel.allow(v4(Ipv4Addr::new(203, 0, 113, 0)), 24))
}

/// The client's TCP flow recorded (as before an allow-list change), highest forward TTL
/// that of the fixture's frames, then the allow-list enforced without the client.
fn known_flow_then_client_not_allowed(kernel: &mut Kernel) {
    let (key, value) = fixture::forward_flow(&fixture::forward(Protocol::Tcp, Family::V4));
    kernel.insert_flow(key, value);
    kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
    kernel.allow(v4(Ipv4Addr::new(203, 0, 113, 0)), 24);
}

pub(crate) fn known_flow_forward_skips_allow_list() -> Case {
    let input = fixture::forward(Protocol::Tcp, Family::V4);
    let mut case = Case::forward(
        "a forward packet of a known flow is not checked against the allow-list",
        &input,
    )
    .with_setup(known_flow_then_client_not_allowed);
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case
}

pub(crate) fn known_flow_reverse_skips_allow_list() -> Case {
    let forward = fixture::forward(Protocol::Tcp, Family::V4);
    let mut case = Case::reverse(
        "a reply of a known flow is not checked against the allow-list",
        &forward,
        &fixture::reverse(Protocol::Tcp, Family::V4),
    )
    .with_setup(known_flow_then_client_not_allowed);
    case.prelude.clear();
    case
}

// ---------------------------------------------------------------------------------------
// Dropped: rate limits. A rate of 1 flow/s: the second flow within the same second finds
// the bucket empty (the cases run in milliseconds).

/// One new flow per second and source prefix (`/32`, `/64`), no global limit.
fn one_flow_per_source(kernel: &mut Kernel) {
    kernel.set_admission(
        AdmissionConfig::DEFAULT
            .with_source_limit(1, 1)
            .with_global_limit(0, 1),
    );
}

/// The client's forward frame from port `port`.
fn forward_from_port(protocol: Protocol, family: Family, port: u16) -> Frame {
    let (_, listen) = fixture::forward(protocol, family).ports();
    Frame::transport(
        protocol,
        fixture::client(family),
        port,
        fixture::host(family),
        listen,
    )
}

pub(crate) fn ipv4_rate_limited_per_source() -> Case {
    Case::drop(
        "IPv4: a second new flow from one source within its bucket's interval is dropped",
        forward_from_port(Protocol::Tcp, Family::V4, CLIENT_PORT + 1).bytes(),
        DropReason::RateLimited,
    )
    .with_setup(one_flow_per_source)
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

pub(crate) fn ipv6_rate_limited_per_64() -> Case {
    let neighbour = Frame::udp(
        v6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0xa, 0xb, 0xc, 0xd)),
        CLIENT_PORT,
        v6(HOST_V6),
        fixture::listen_port(Protocol::Udp),
    );
    Case::drop(
        "IPv6: another address of the same /64 shares the source's bucket",
        neighbour.bytes(),
        DropReason::RateLimited,
    )
    .with_setup(one_flow_per_source)
    .after(&fixture::forward(Protocol::Udp, Family::V6))
}

pub(crate) fn ipv4_rate_limit_other_source_own_bucket() -> Case {
    Case::forward(
        "IPv4: another /32 has a bucket of its own",
        &Frame::tcp(
            v4(Ipv4Addr::new(198, 51, 100, 8)),
            CLIENT_PORT,
            v4(HOST_V4),
            TCP_LISTEN,
        ),
    )
    .with_setup(one_flow_per_source)
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

pub(crate) fn ipv4_rate_limited_per_24() -> Case {
    Case::drop(
        "IPv4 aggregated per /24: a neighbour shares the source's bucket",
        Frame::tcp(
            v4(Ipv4Addr::new(198, 51, 100, 8)),
            CLIENT_PORT,
            v4(HOST_V4),
            TCP_LISTEN,
        )
        .bytes(),
        DropReason::RateLimited,
    )
    .with_setup(|kernel| {
        kernel.set_admission(
            AdmissionConfig::DEFAULT
                .with_source_prefixes(24, 64)
                .with_source_limit(1, 1)
                .with_global_limit(0, 1),
        );
    })
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

pub(crate) fn ipv4_rate_limit_burst() -> Case {
    Case::drop(
        "IPv4: a burst of 3 admits three new flows at once, and not a fourth",
        forward_from_port(Protocol::Udp, Family::V4, CLIENT_PORT + 3).bytes(),
        DropReason::RateLimited,
    )
    .with_setup(|kernel| {
        kernel.set_admission(
            AdmissionConfig::DEFAULT
                .with_source_limit(1, 3)
                .with_global_limit(0, 1),
        );
    })
    .after(&forward_from_port(Protocol::Udp, Family::V4, CLIENT_PORT))
    .after(&forward_from_port(
        Protocol::Udp,
        Family::V4,
        CLIENT_PORT + 1,
    ))
    .after(&forward_from_port(
        Protocol::Udp,
        Family::V4,
        CLIENT_PORT + 2,
    ))
}

pub(crate) fn global_rate_limited() -> Case {
    Case::drop(
        "the global bucket: a new flow from another source over the global limit is dropped",
        fixture::forward(Protocol::Tcp, Family::V6).bytes(),
        DropReason::RateLimited,
    )
    .with_setup(|kernel| {
        kernel.set_admission(
            AdmissionConfig::DEFAULT
                .with_source_limit(0, 1)
                .with_global_limit(1, 1),
        );
    })
    .after(&fixture::forward(Protocol::Tcp, Family::V4))
}

pub(crate) fn known_flow_not_rate_limited() -> Case {
    let input = fixture::forward(Protocol::Tcp, Family::V4);
    let mut case = Case::forward(
        "a forward packet of a known flow passes an empty bucket",
        &input,
    )
    .with_setup(one_flow_per_source)
    .after(&input);
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case
}

pub(crate) fn reply_not_rate_limited() -> Case {
    reverse_case(
        "a reply of a known flow passes an empty bucket",
        Protocol::Udp,
        Family::V6,
    )
    .with_setup(one_flow_per_source)
}

pub(crate) fn refused_flow_does_not_charge_the_global_bucket() -> Case {
    Case::forward(
        "a flow refused by its source's bucket leaves the global bucket as it was",
        &Frame::tcp(
            v4(Ipv4Addr::new(203, 0, 113, 9)),
            CLIENT_PORT,
            v4(HOST_V4),
            TCP_LISTEN,
        ),
    )
    .with_setup(|kernel| {
        // Room for two flows in all: the client's first takes one, its second is refused
        // by its own bucket and must not take the other.
        kernel.set_admission(
            AdmissionConfig::DEFAULT
                .with_source_limit(1, 1)
                .with_global_limit(1, 2),
        );
        let hook = kernel.hook();
        for (port, verdict) in [
            (CLIENT_PORT, hook.reflect_verdict()),
            (CLIENT_PORT + 1, hook.drop_verdict()),
        ] {
            let frame = forward_from_port(Protocol::Tcp, Family::V4, port).bytes();
            let run = kernel.run(&frame);
            assert_eq!(
                run.verdict,
                verdict,
                "setting up: the client's flow from port {port}: {}",
                hook.verdict_name(run.verdict)
            );
        }
    })
}

// ---------------------------------------------------------------------------------------
// Dropped: the loop guard.

/// The fixture's forward frame with TTL `ttl`.
fn forward_with_ttl(protocol: Protocol, family: Family, ttl: u8) -> Frame {
    fixture::forward(protocol, family).with_ttl(ttl)
}

pub(crate) fn ipv4_loop_detected() -> Case {
    Case::drop(
        "IPv4: a known flow's forward packet 4 below its highest TTL went round a loop",
        forward_with_ttl(Protocol::Tcp, Family::V4, 60).bytes(),
        DropReason::LoopDetected,
    )
    .after(&forward_with_ttl(Protocol::Tcp, Family::V4, 64))
}

pub(crate) fn ipv6_loop_detected() -> Case {
    Case::drop(
        "IPv6: a known flow's forward packet far below its highest hop limit is dropped",
        forward_with_ttl(Protocol::Udp, Family::V6, 2).bytes(),
        DropReason::LoopDetected,
    )
    .after(&forward_with_ttl(Protocol::Udp, Family::V6, 255))
}

pub(crate) fn ipv4_retransmission_not_a_loop() -> Case {
    let input = fixture::forward(Protocol::Tcp, Family::V4);
    let mut case = Case::forward(
        "a retransmission (the same segment, the same TTL) is reflected again",
        &input,
    )
    .after(&input)
    .after(&input);
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case
}

pub(crate) fn ipv4_ttl_3_below_not_a_loop() -> Case {
    let input = forward_with_ttl(Protocol::Tcp, Family::V4, 61);
    let mut case = Case::forward(
        "a packet 3 below the flow's highest TTL (a longer route) is reflected",
        &input,
    )
    .after(&forward_with_ttl(Protocol::Tcp, Family::V4, 64));
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        // The flow keeps its highest TTL, 64.
        *new_flow = None;
    }
    case
}

pub(crate) fn ipv4_higher_ttl_raises_the_flow() -> Case {
    let input = forward_with_ttl(Protocol::Udp, Family::V4, 128);
    let mut case = Case::forward(
        "a higher TTL is reflected and becomes the flow's highest",
        &input,
    )
    .after(&forward_with_ttl(Protocol::Udp, Family::V4, 64));
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        case.flow_update = new_flow.take();
    }
    case
}

pub(crate) fn ipv4_reverse_loop_detected() -> Case {
    let forward = fixture::forward(Protocol::Udp, Family::V4);
    let reply = fixture::reverse(Protocol::Udp, Family::V4);
    Case::drop(
        "a reply 4 below the highest TTL of the flow's replies went round a loop",
        reply.clone().with_ttl(60).bytes(),
        DropReason::LoopDetected,
    )
    .after(&forward)
    .after(&reply)
}

pub(crate) fn loop_guard_off_reflects() -> Case {
    let input = forward_with_ttl(Protocol::Tcp, Family::V4, 60);
    let mut case = Case::forward(
        "with the loop guard off, a packet far below the flow's highest TTL is reflected",
        &input,
    )
    .with_setup(|kernel| {
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_LOOP_GUARD_OFF, true));
    })
    .after(&forward_with_ttl(Protocol::Tcp, Family::V4, 64));
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case
}

// ---------------------------------------------------------------------------------------
// Without flow state: a target port one listen port maps to (the control plane marks it
// stateless). This host's own sockets are in `own_sockets.rs`: they need a namespace.

/// A reply from `S:P` with no flow entry, reflected from `L` all the same, counted under
/// the map's slot, recording nothing.
fn stateless_reverse_case(description: &str, reply: &Frame) -> Case {
    let output = fixture::reverse_reflected(reply).bytes();
    checked_expectation(description, &output);
    Case {
        description: description.to_owned(),
        prelude: Vec::new(),
        input: reply.bytes(),
        expect: Expect::Reflect {
            output,
            direction: Direction::Reverse,
            family: reply.family(),
            map_slot: fixture::map_slot(reply.protocol()),
            new_flow: None,
        },
        skb_test_run_may_refuse: false,
        setup: Some(fixture::configure_stateless),
        flow_update: None,
    }
}

pub(crate) fn ipv4_tcp_stateless_reverse() -> Case {
    stateless_reverse_case(
        "IPv4 TCP from S:P of a unique target, no flow: leaves from A:L to S:s",
        &fixture::reverse(Protocol::Tcp, Family::V4),
    )
}

pub(crate) fn ipv4_udp_stateless_reverse() -> Case {
    stateless_reverse_case(
        "IPv4 UDP from S:P of a unique target, no flow: leaves from A:L to S:s",
        &fixture::reverse(Protocol::Udp, Family::V4),
    )
}

pub(crate) fn ipv6_tcp_stateless_reverse() -> Case {
    stateless_reverse_case(
        "IPv6 TCP SYN-ACK from S:P of a unique target, no flow: leaves from A:L to S:s",
        &fixture::reverse(Protocol::Tcp, Family::V6).with_syn(),
    )
}

pub(crate) fn ipv6_udp_stateless_reverse() -> Case {
    stateless_reverse_case(
        "IPv6 UDP from S:P of a unique target, no flow: leaves from A:L to S:s",
        &fixture::reverse(Protocol::Udp, Family::V6),
    )
}

pub(crate) fn vlan_ipv4_udp_stateless_reverse() -> Case {
    stateless_reverse_case(
        "802.1Q-tagged IPv4 UDP stateless reply keeps its tag",
        &fixture::reverse(Protocol::Udp, Family::V4).with_vlan(Vlan::Single(100)),
    )
}

pub(crate) fn stateless_forward_records_no_flow() -> Case {
    let mut case = Case::forward(
        "IPv4 TCP to A:L of a unique target: reflected, no flow recorded",
        &fixture::forward(Protocol::Tcp, Family::V4),
    );
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case.with_setup(fixture::configure_stateless)
}

pub(crate) fn ipv6_udp_stateless_forward_records_no_flow() -> Case {
    let mut case = Case::forward(
        "IPv6 UDP to A:L of a unique target: reflected, no flow recorded",
        &fixture::forward(Protocol::Udp, Family::V6),
    );
    if let Expect::Reflect { new_flow, .. } = &mut case.expect {
        *new_flow = None;
    }
    case.with_setup(fixture::configure_stateless)
}

pub(crate) fn shared_target_reverse_without_flow() -> Case {
    Case::pass(
        "a reply from a target two listen ports share, without a flow entry: no_flow",
        fixture::reverse(Protocol::Tcp, Family::V4).bytes(),
        PassReason::NoFlow,
    )
    .with_setup(|kernel| {
        // As the control plane writes 8080:80 and 8081:80: the target keeps the flow table.
        kernel.map_port(Protocol::Tcp, TCP_LISTEN + 1, fixture::TCP_TARGET, 9);
    })
}

pub(crate) fn flow_table_forced_reverse_without_flow() -> Case {
    Case::pass(
        "a unique target with the flow table forced: a reply without a flow entry is no_flow",
        fixture::reverse(Protocol::Udp, Family::V4).bytes(),
        PassReason::NoFlow,
    )
    .with_setup(|kernel| {
        fixture::configure_stateless(kernel);
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_FLOW_TABLE_ALWAYS, true));
    })
}

pub(crate) fn flow_table_forced_forward_records_its_flow() -> Case {
    Case::forward(
        "a unique target with the flow table forced: the forward packet records its flow",
        &fixture::forward(Protocol::Udp, Family::V4),
    )
    .with_setup(|kernel| {
        fixture::configure_stateless(kernel);
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_FLOW_TABLE_ALWAYS, true));
    })
}

pub(crate) fn stateless_reverse_destination_not_local() -> Case {
    Case::pass(
        "a stateless reply to an address that is not this host's: destination_not_local",
        Frame::udp(
            v4(CLIENT_V4),
            fixture::UDP_TARGET,
            v4(NOT_LOCAL_V4),
            CLIENT_PORT,
        )
        .bytes(),
        PassReason::DestinationNotLocal,
    )
    .with_setup(fixture::configure_stateless)
}

pub(crate) fn stateless_reverse_source_local() -> Case {
    Case::pass(
        "a stateless reply from one of this host's own addresses: source_local",
        Frame::tcp(
            v6(HOST_V6_OTHER),
            fixture::TCP_TARGET,
            v6(HOST_V6),
            CLIENT_PORT,
        )
        .bytes(),
        PassReason::SourceLocal,
    )
    .with_setup(fixture::configure_stateless)
}

pub(crate) fn stateless_reverse_ttl1() -> Case {
    Case::pass(
        "a stateless reply with TTL 1: ttl_expired",
        fixture::reverse(Protocol::Tcp, Family::V4)
            .with_ttl(1)
            .bytes(),
        PassReason::TtlExpired,
    )
    .with_setup(fixture::configure_stateless)
}

pub(crate) fn stateless_reverse_source_not_allowed() -> Case {
    Case::drop(
        "a stateless reply from a source outside the allow-list is dropped: nothing vouches \
         for it",
        fixture::reverse(Protocol::Tcp, Family::V4).bytes(),
        DropReason::SourceNotAllowed,
    )
    .with_setup(|kernel| {
        fixture::configure_stateless(kernel);
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
        kernel.allow(v4(Ipv4Addr::new(203, 0, 113, 0)), 24);
    })
}

pub(crate) fn stateless_forward_source_not_allowed() -> Case {
    Case::drop(
        "every stateless forward packet meets the allow-list, not only a flow's first",
        fixture::forward(Protocol::Udp, Family::V6).bytes(),
        DropReason::SourceNotAllowed,
    )
    .with_setup(|kernel| {
        fixture::configure_stateless(kernel);
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
        kernel.allow(v6(Ipv6Addr::new(0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 0)), 48);
    })
}

pub(crate) fn stateless_reverse_source_allowed() -> Case {
    stateless_reverse_case(
        "a stateless reply from a source inside the allow-list is reflected",
        &fixture::reverse(Protocol::Udp, Family::V6),
    )
    .with_setup(|kernel| {
        fixture::configure_stateless(kernel);
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_ALLOW_LIST, true));
        kernel.allow(v6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0)), 48);
    })
}

/// Stateless, and one flow opening per source.
fn stateless_one_flow_per_source(kernel: &mut Kernel) {
    fixture::configure_stateless(kernel);
    one_flow_per_source(kernel);
}

pub(crate) fn stateless_reverse_syn_rate_limited() -> Case {
    Case::drop(
        "a stateless SYN-ACK past its source's bucket is dropped: it opens a flow",
        fixture::reverse(Protocol::Tcp, Family::V4)
            .with_syn()
            .bytes(),
        DropReason::RateLimited,
    )
    .with_setup(stateless_one_flow_per_source)
    .after(&fixture::reverse(Protocol::Tcp, Family::V4).with_syn())
}

pub(crate) fn stateless_reverse_udp_rate_limited() -> Case {
    Case::drop(
        "every stateless UDP reply is charged: the second within the interval is dropped",
        fixture::reverse(Protocol::Udp, Family::V4).bytes(),
        DropReason::RateLimited,
    )
    .with_setup(stateless_one_flow_per_source)
    .after(&fixture::reverse(Protocol::Udp, Family::V4))
}

pub(crate) fn stateless_forward_syn_rate_limited() -> Case {
    Case::drop(
        "a stateless forward SYN past its source's bucket is dropped",
        fixture::forward(Protocol::Tcp, Family::V6)
            .with_syn()
            .bytes(),
        DropReason::RateLimited,
    )
    .with_setup(stateless_one_flow_per_source)
    .after(&fixture::forward(Protocol::Tcp, Family::V6).with_syn())
}

pub(crate) fn stateless_reverse_ack_not_charged() -> Case {
    stateless_reverse_case(
        "a stateless TCP reply without SYN passes an empty bucket: it opens nothing",
        &fixture::reverse(Protocol::Tcp, Family::V4),
    )
    .with_setup(stateless_one_flow_per_source)
    .after(&fixture::reverse(Protocol::Tcp, Family::V4).with_syn())
}
