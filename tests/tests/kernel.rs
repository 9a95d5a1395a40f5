//! Kernel tests: every case of the table in `kernel/cases.rs` runs through
//! `BPF_PROG_TEST_RUN` on both `reflector_xdp` and `reflector_tc`, each in a freshly loaded
//! program with the host of `reflector_tests::kernel_fixture`, and must give the case's verdict, exactly
//! the case's output bytes, correct checksums whenever the input's were (by etherparse's own
//! computation), exactly one
//! increment of the case's STATS counter, exactly one increment of the case's port-map
//! counter in `MAP_STATS` (reflected frames; none for passed ones), and (forward frames)
//! exactly the case's new flow.
//!
//! They need root (`CAP_BPF` and `CAP_NET_ADMIN`) and the kernel object embedded in the
//! `reflector` crate; without it every test fails and says so.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

#[path = "kernel/cases.rs"]
mod cases;
#[path = "kernel/own_sockets.rs"]
mod own_sockets;

use std::{
    collections::{BTreeSet, HashMap as StdHashMap},
    io::ErrorKind,
};

use aya::{Ebpf, programs::ProgramError, sys::SyscallError};
use reflector_common::{
    Counter, Direction, Family, FlowKey, FlowValue, MapStatIndex, Protocol, STATS_LEN, StatIndex,
    maps::programs::{TC, XDP},
    stats::COUNTERS_PER_MAP,
};

use reflector_tests::differential::stat_name;
use reflector_tests::hexdump::{byte_diff, hex};
use reflector_tests::{
    bench_object::{self, bench_object},
    enter::EnteredNetns,
    kernel_fixture as fixture, names,
    netns::Netns,
    packets::{ETH_LEN, Frame, Vlan, arp_request, verify_checksums},
    test_run::{Hook, Kernel, Run},
    topology::kernel_object,
};

use crate::cases::{Case, Expect};

/// Runs `case` at both hooks and fails with every problem found at either.
fn run_case(case: &Case) {
    // The programs look for this host's own sockets (a reply to one is not reflected) in
    // the namespace of the thread that runs them: an empty one of its own, so a socket of
    // the test process (or of anything else on the machine) cannot change the verdict.
    let ns = Netns::new(names::next_id(), "kc");
    let _entered = EnteredNetns::enter(&ns);
    let report: Vec<String> = Hook::BOTH
        .into_iter()
        .filter_map(|hook| {
            let problems = run_at(hook, case);
            (!problems.is_empty()).then(|| {
                format!(
                    "  at {}:\n    - {}",
                    hook.reflector_program(),
                    problems.join("\n    - ")
                )
            })
        })
        .collect();
    assert!(
        report.is_empty(),
        "case {:?} failed\n{}\ninput frame ({} bytes):\n{}",
        case.description,
        report.join("\n"),
        case.input.len(),
        hex(&case.input),
    );
}

/// Runs `case` in a fresh program at `hook`; returns what went wrong.
#[expect(
    clippy::too_many_lines,
    reason = "one case's setup, run and every check in order reads best as one function"
)]
fn run_at(hook: Hook, case: &Case) -> Vec<String> {
    let mut kernel = Kernel::reflector(hook);
    fixture::configure(&mut kernel);
    if let Some(setup) = case.setup {
        setup(&mut kernel);
    }
    for (i, frame) in case.prelude.iter().enumerate() {
        let run = kernel.run(frame);
        if run.verdict != hook.reflect_verdict() {
            return vec![format!(
                "prelude frame {i} (which the case needs reflected) got verdict {}, not {}",
                hook.verdict_name(run.verdict),
                hook.verdict_name(hook.reflect_verdict())
            )];
        }
    }
    let stats_before = kernel.stats();
    let map_stats_before = kernel.map_stats();
    let flows_before = kernel.flows();
    let run = match kernel.try_run(&case.input) {
        Ok(run) => run,
        Err(ProgramError::SyscallError(SyscallError { io_error, .. }))
            if hook == Hook::Tc
                && case.skb_test_run_may_refuse
                && io_error.kind() == ErrorKind::InvalidInput =>
        {
            println!(
                "note: case {:?}: this kernel's BPF_PROG_TEST_RUN refuses the frame for skb \
                 programs (EINVAL: IP ethertype without a full fixed IP header), so it ran at \
                 XDP only",
                case.description
            );
            return Vec::new();
        }
        Err(error) => return vec![format!("BPF_PROG_TEST_RUN failed: {error:?}")],
    };
    let stats_after = kernel.stats();
    let map_stats_after = kernel.map_stats();
    let flows_after = kernel.flows();

    let mut problems = Vec::new();
    let (verdict, output, counted, map_counted, new_flow) = match &case.expect {
        Expect::Reflect {
            output,
            direction,
            family,
            map_slot,
            new_flow,
        } => (
            hook.reflect_verdict(),
            output,
            StatIndex::reflected(*direction, *family),
            Some(MapStatIndex::new(*map_slot, *direction, *family)),
            *new_flow,
        ),
        Expect::Pass(reason) => (
            hook.pass_verdict(),
            &case.input,
            StatIndex::passed(*reason),
            None,
            None,
        ),
        Expect::Drop(reason) => (
            hook.drop_verdict(),
            &case.input,
            StatIndex::dropped(*reason),
            None,
            None,
        ),
    };
    if run.verdict != verdict {
        problems.push(format!(
            "verdict {}, expected {}",
            hook.verdict_name(run.verdict),
            hook.verdict_name(verdict)
        ));
    }
    if run.output != *output {
        let what = match case.expect {
            Expect::Reflect { .. } => "the expected reflected frame",
            Expect::Pass(_) => "the input (a passed frame must be unchanged)",
            Expect::Drop(_) => {
                "the input (every drop reason but rewrite_failed comes before the rewrite)"
            }
        };
        problems.push(format!(
            "output frame differs from {what}: {}",
            byte_diff(output, &run.output)
        ));
    }
    // Checksums are updated, not recomputed (README): correct out when they were correct
    // in (every case but those whose length fields are wrong on purpose).
    if matches!(case.expect, Expect::Reflect { .. }) && verify_checksums(&case.input).is_ok() {
        if let Err(problem) = verify_checksums(&run.output) {
            problems.push(format!("output checksums: {problem}"));
        }
    }
    problems.extend(check_stats(
        &stats_before,
        &stats_after,
        counted,
        case.input.len() as u64,
        new_flow.is_some(),
    ));
    problems.extend(check_map_stats(
        &map_stats_before,
        &map_stats_after,
        map_counted,
        case.input.len() as u64,
    ));
    problems.extend(check_flows(
        &flows_before,
        &flows_after,
        new_flow.or(case.flow_update),
    ));
    problems
}

/// Checks that the flow table holds exactly what it held before plus `new_flow` (a new
/// entry, or an entry changed in place).
fn check_flows(
    before: &StdHashMap<FlowKey, FlowValue>,
    after: &StdHashMap<FlowKey, FlowValue>,
    new_flow: Option<(FlowKey, FlowValue)>,
) -> Option<String> {
    let mut expected = before.clone();
    if let Some((key, value)) = new_flow {
        expected.insert(key, value);
    }
    (*after != expected).then(|| {
        format!("FLOWS holds {after:?}, expected {expected:?} (before the frame: {before:?})")
    })
}

/// How much a counter went up between two reads.
fn delta(before: &Counter, after: &Counter) -> Counter {
    Counter {
        packets: after.packets.wrapping_sub(before.packets),
        bytes: after.bytes.wrapping_sub(before.bytes),
    }
}

/// Checks that exactly the counter `counted` went up by one packet of `bytes` bytes, and
/// that the flows-created counter went up by one exactly when `flow_created`.
fn check_stats(
    before: &[Counter],
    after: &[Counter],
    counted: StatIndex,
    bytes: u64,
    flow_created: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, (before, after)) in (0u32..).zip(before.iter().zip(after)) {
        let delta = delta(before, after);
        let name = stat_name(index);
        if index == StatIndex::FLOWS_CREATED.get() {
            // Its packet counter counts flows; its byte counter is not specified.
            let expected = u64::from(flow_created);
            if delta.packets != expected {
                problems.push(format!(
                    "STATS[{name}] counted {} flows, expected {expected}",
                    delta.packets
                ));
            }
            continue;
        }
        let expected = if index == counted.get() {
            Counter { packets: 1, bytes }
        } else {
            Counter::default()
        };
        if delta != expected {
            problems.push(format!(
                "STATS[{name}] went up by {} packets / {} bytes, expected {} / {}",
                delta.packets, delta.bytes, expected.packets, expected.bytes
            ));
        }
    }
    problems
}

/// Checks that exactly the per-map counter `counted` went up by one packet of `bytes`
/// bytes (none at all when `None`), and no other counter of `MAP_STATS`.
fn check_map_stats(
    before: &[Counter],
    after: &[Counter],
    counted: Option<MapStatIndex>,
    bytes: u64,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, (before, after)) in (0u32..).zip(before.iter().zip(after)) {
        let delta = delta(before, after);
        let expected = if counted.is_some_and(|counted| counted.get() == index) {
            Counter { packets: 1, bytes }
        } else {
            Counter::default()
        };
        if delta != expected {
            problems.push(format!(
                "MAP_STATS[{}] went up by {} packets / {} bytes, expected {} / {}",
                map_stat_name(index),
                delta.packets,
                delta.bytes,
                expected.packets,
                expected.bytes
            ));
        }
    }
    problems
}

/// A readable name for a `MAP_STATS` index: slot, direction, family.
fn map_stat_name(index: u32) -> String {
    let slot = u16::try_from(index / COUNTERS_PER_MAP).unwrap_or(u16::MAX);
    for direction in [Direction::Forward, Direction::Reverse] {
        for family in [Family::V4, Family::V6] {
            if MapStatIndex::new(slot, direction, family).get() == index {
                return format!("slot {slot}/{direction:?}/{family:?}");
            }
        }
    }
    format!("#{index}")
}

/// One `#[test]` per case of the table, each running its case at both hooks.
macro_rules! kernel_cases {
    ($($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                run_case(&cases::$case());
            }
        )+
    };
}

kernel_cases! {
    // Reflected, forward.
    ipv4_tcp_forward,
    ipv4_udp_forward,
    ipv6_tcp_forward,
    ipv6_udp_forward,
    vlan_ipv4_tcp_forward,
    vlan_ipv6_udp_forward,
    qinq_ipv4_udp_forward,
    qinq_ipv6_tcp_forward,
    ipv4_options_ihl6_tcp_forward,
    ipv4_options_ihl15_udp_forward,
    ipv4_ttl2_forward,
    ipv6_hop_limit2_forward,
    ipv4_udp_checksum_zero_forward,
    ipv4_udp_output_checksum_zero_written_ffff,
    ipv6_udp_output_checksum_zero_written_ffff,
    ipv4_udp_input_checksum_ffff_forward,
    ipv4_udp_ethernet_padding_forward,
    ipv4_tcp_full_size_forward,
    ipv6_udp_full_size_forward,
    ipv4_udp_odd_payload_forward,
    ipv6_tcp_empty_payload_forward,
    ipv4_total_length_beyond_frame_forward,
    // Reflected, reverse.
    ipv4_tcp_reverse,
    ipv4_udp_reverse,
    ipv6_tcp_reverse,
    ipv6_udp_reverse,
    vlan_ipv4_udp_reverse,
    qinq_ipv6_tcp_reverse,
    ipv4_options_ihl6_tcp_reverse,
    ipv4_udp_checksum_zero_reverse,
    // Passed: no flow.
    ipv4_tcp_reverse_without_flow,
    ipv6_udp_reverse_without_flow,
    ipv4_udp_reverse_other_client_port,
    ipv6_tcp_reverse_other_client_address,
    // Passed: fragments, extension headers.
    ipv4_fragment_more_fragments,
    ipv4_fragment_nonzero_offset,
    ipv4_fragment_middle,
    ipv6_fragment_header,
    ipv6_hop_by_hop_header,
    ipv6_destination_options_header,
    ipv6_experimental_extension_header,
    // Passed: truncated.
    truncated_vlan_tag,
    truncated_qinq_inner_tag,
    truncated_ipv4_empty,
    truncated_ipv4_fixed_header,
    truncated_vlan_ipv4_fixed_header,
    truncated_ipv4_options,
    truncated_ipv4_no_transport_header,
    truncated_ipv4_tcp_header,
    truncated_ipv4_udp_header,
    truncated_ipv4_options_udp_header,
    truncated_ipv6_header,
    truncated_ipv6_tcp_header,
    truncated_ipv6_udp_header,
    // Passed: malformed.
    ipv4_ihl_below_5,
    ipv4_ethertype_version_6,
    ipv6_ethertype_version_4,
    group_source_mac_malformed,
    broadcast_source_mac_malformed,
    // Passed: destination, port.
    ipv4_destination_not_local,
    ipv6_destination_not_local,
    ipv4_destination_subnet_broadcast,
    ipv6_destination_ipv4_mapped_local,
    ipv6_mapped_forward_of_ipv4_flow,
    ipv6_mapped_reply_of_ipv4_flow,
    ipv4_tcp_port_not_mapped,
    ipv6_udp_port_not_mapped,
    udp_to_tcp_listen_port_not_mapped,
    // Passed: source.
    ipv4_source_multicast,
    ipv6_source_multicast,
    ipv4_source_limited_broadcast,
    ipv4_source_subnet_broadcast,
    ipv4_source_loopback,
    ipv4_source_loopback_net,
    ipv6_source_loopback,
    ipv4_source_unspecified,
    ipv6_source_unspecified,
    ipv4_source_local,
    ipv6_source_local,
    // Passed: TTL.
    ipv4_ttl1,
    ipv4_ttl0,
    ipv6_hop_limit1,
    ipv6_hop_limit0,
    ipv4_tcp_reverse_ttl1,
    // Passed: not IP, not TCP/UDP.
    arp_not_ip,
    vlan_arp_not_ip,
    ipv4_icmp_not_tcp_udp,
    ipv6_icmp_not_tcp_udp,
    qinq_ipv6_icmp_not_tcp_udp,
    // Dropped: the allow-list.
    ipv4_source_not_allowed,
    ipv6_source_not_allowed,
    ipv4_source_allowed_forward,
    ipv6_source_allowed_forward,
    allow_list_not_enforced_allows_every_source,
    known_flow_forward_skips_allow_list,
    known_flow_reverse_skips_allow_list,
    // Dropped: rate limits.
    ipv4_rate_limited_per_source,
    ipv6_rate_limited_per_64,
    ipv4_rate_limit_other_source_own_bucket,
    ipv4_rate_limited_per_24,
    ipv4_rate_limit_burst,
    global_rate_limited,
    known_flow_not_rate_limited,
    reply_not_rate_limited,
    refused_flow_does_not_charge_the_global_bucket,
    // Dropped: the loop guard.
    ipv4_loop_detected,
    ipv6_loop_detected,
    ipv4_retransmission_not_a_loop,
    ipv4_ttl_3_below_not_a_loop,
    ipv4_higher_ttl_raises_the_flow,
    ipv4_reverse_loop_detected,
    loop_guard_off_reflects,
    // Without flow state (a unique target port).
    ipv4_tcp_stateless_reverse,
    ipv4_udp_stateless_reverse,
    ipv6_tcp_stateless_reverse,
    ipv6_udp_stateless_reverse,
    vlan_ipv4_udp_stateless_reverse,
    stateless_forward_records_no_flow,
    ipv6_udp_stateless_forward_records_no_flow,
    shared_target_reverse_without_flow,
    flow_table_forced_reverse_without_flow,
    flow_table_forced_forward_records_its_flow,
    stateless_reverse_destination_not_local,
    stateless_reverse_source_local,
    stateless_reverse_ttl1,
    stateless_reverse_source_not_allowed,
    stateless_forward_source_not_allowed,
    stateless_reverse_source_allowed,
    stateless_reverse_syn_rate_limited,
    stateless_reverse_udp_rate_limited,
    stateless_forward_syn_rate_limited,
    stateless_reverse_ack_not_charged,
}

/// The names of the programs in the eBPF object `object`.
fn program_names(object: &[u8]) -> BTreeSet<String> {
    let ebpf = Ebpf::load(object).unwrap_or_else(|e| panic!("cannot load the object: {e}"));
    ebpf.programs().map(|(name, _)| name.to_owned()).collect()
}

/// reflector's kernel object carries reflector's two programs and nothing else: the
/// benchmark's baselines and the pass-through live in the reference object.
#[test]
fn kernel_object_holds_only_reflector() {
    assert_eq!(
        program_names(kernel_object()),
        BTreeSet::from([XDP, TC].map(str::to_owned)),
        "the programs of reflector's kernel object"
    );
    assert_eq!(
        program_names(bench_object()),
        BTreeSet::from(
            [
                bench_object::programs::BASELINE_MAC_SWAP,
                bench_object::programs::BASELINE_FLOW_LOOKUP,
                bench_object::programs::REFERENCE_REFLECTOR,
                bench_object::programs::XDP_PASS,
            ]
            .map(str::to_owned)
        ),
        "the programs of the benchmark's reference object"
    );
}

/// `reference_reflector` reflects a frame to its hard-coded port with exact bytes (the
/// TTL untouched: it does nothing it need not) and passes anything else untouched.
#[test]
fn reference_reflector_reflects_its_one_map() {
    use bench_object::programs::REFERENCE_PORT;
    use reflector_tests::packets::DEFAULT_TTL;
    let kernel = Kernel::reference_reflector();
    let hook = kernel.hook();
    for (protocol, family) in [
        (Protocol::Tcp, Family::V4),
        (Protocol::Udp, Family::V4),
        (Protocol::Tcp, Family::V6),
        (Protocol::Udp, Family::V6),
    ] {
        let input = Frame::transport(
            protocol,
            fixture::client(family),
            fixture::CLIENT_PORT,
            fixture::host(family),
            REFERENCE_PORT,
        );
        let expected = input
            .reflected(fixture::CLIENT_PORT, REFERENCE_PORT)
            .with_ttl(DEFAULT_TTL)
            .bytes();
        let run = kernel.run(&input.bytes());
        let context = format!("{protocol:?} {family:?}");
        assert_reflected_as(&run, hook, &expected, &context);
        verify_checksums(&run.output).unwrap_or_else(|e| panic!("{context}: {e}"));
        let other = fixture::forward(protocol, family).bytes();
        let run = kernel.run(&other);
        assert_eq!(run.verdict, hook.pass_verdict(), "another port is passed");
        assert_eq!(run.output, other, "a passed frame leaves untouched");
    }
}

/// `reference_reflector` loaded for a map of two different ports, as the benchmark runs it:
/// a frame to `L` leaves to `P`, a frame from `P` (not to `L`) leaves from `L`, with exact
/// bytes and checksums verified by etherparse; frames from `L`, to `P`, or between other
/// ports are passed untouched. The ports come from the loader (the defaults map 10022 to
/// itself), so a program that ignored them fails every reflected case.
#[test]
fn reference_reflector_reflects_both_directions_of_a_configured_map() {
    use reflector_tests::packets::DEFAULT_TTL;
    const LISTEN: u16 = 10_122;
    const TARGET: u16 = 2_222;
    let kernel = Kernel::reference_reflector_for(LISTEN, TARGET);
    let hook = kernel.hook();
    for (protocol, family) in [
        (Protocol::Tcp, Family::V4),
        (Protocol::Udp, Family::V4),
        (Protocol::Tcp, Family::V6),
        (Protocol::Udp, Family::V6),
    ] {
        let (client, host, s) = (
            fixture::client(family),
            fixture::host(family),
            fixture::CLIENT_PORT,
        );
        // (what, input's source and destination port, output's, if reflected)
        let cases = [
            ("forward S:s -> A:L", (s, LISTEN), Some((s, TARGET))),
            ("reverse S:P -> A:s", (TARGET, s), Some((LISTEN, s))),
            (
                "from P to L: forward",
                (TARGET, LISTEN),
                Some((TARGET, TARGET)),
            ),
            ("from L", (LISTEN, s), None),
            ("to P", (s, TARGET), None),
            ("other ports", (s, fixture::UNMAPPED_PORT), None),
        ];
        for (what, (source_port, destination_port), reflected) in cases {
            let input = Frame::transport(protocol, client, source_port, host, destination_port);
            let run = kernel.run(&input.bytes());
            let context = format!("{protocol:?} {family:?} {what}");
            let Some((out_source, out_destination)) = reflected else {
                assert_eq!(run.verdict, hook.pass_verdict(), "{context}: passed");
                assert_eq!(run.output, input.bytes(), "{context}: left untouched");
                continue;
            };
            let expected = input
                .reflected(out_source, out_destination)
                .with_ttl(DEFAULT_TTL)
                .bytes();
            assert_reflected_as(&run, hook, &expected, &context);
            verify_checksums(&run.output).unwrap_or_else(|e| panic!("{context}: {e}"));
        }
    }
    // An IPv4 UDP reply without a checksum (0) leaves without one.
    let input = Frame::transport(
        Protocol::Udp,
        fixture::client(Family::V4),
        TARGET,
        fixture::host(Family::V4),
        fixture::CLIENT_PORT,
    )
    .with_udp_checksum_zero();
    let expected = input
        .reflected(LISTEN, fixture::CLIENT_PORT)
        .with_ttl(DEFAULT_TTL)
        .bytes();
    let run = kernel.run(&input.bytes());
    assert_reflected_as(&run, hook, &expected, "UDP checksum 0");
}

/// `run` reflected its frame, leaving exactly `expected`.
fn assert_reflected_as(run: &Run, hook: Hook, expected: &[u8], context: &str) {
    assert_eq!(run.verdict, hook.reflect_verdict(), "{context}");
    assert_eq!(
        run.output,
        expected,
        "{context}: {}",
        byte_diff(expected, &run.output)
    );
}

/// `baseline_mac_swap` swaps the Ethernet addresses of any frame, changes nothing else, and
/// returns `XDP_TX`.
#[test]
fn baseline_mac_swap_swaps_macs_and_transmits() {
    let frames = [
        (
            "IPv4 TCP",
            fixture::forward(Protocol::Tcp, Family::V4).bytes(),
        ),
        (
            "QinQ IPv6 UDP",
            fixture::forward(Protocol::Udp, Family::V6)
                .with_vlan(Vlan::Double {
                    outer: 200,
                    inner: 300,
                })
                .bytes(),
        ),
        (
            "ARP",
            arp_request(
                Vlan::Untagged,
                fixture::CLIENT_V4.octets(),
                fixture::HOST_V4.octets(),
            ),
        ),
        (
            "ICMP",
            Frame::echo(fixture::client(Family::V4), fixture::host(Family::V4)).bytes(),
        ),
    ];
    let kernel = Kernel::baseline();
    assert_eq!(kernel.hook(), Hook::Xdp);
    for (what, input) in frames {
        let mut expected = input.clone();
        expected[..6].copy_from_slice(&input[6..12]);
        expected[6..12].copy_from_slice(&input[..6]);
        let run = kernel.run(&input);
        assert_eq!(
            run.verdict,
            Hook::Xdp.reflect_verdict(),
            "baseline_mac_swap on {what}: verdict {}",
            Hook::Xdp.verdict_name(run.verdict)
        );
        assert!(
            run.output == expected,
            "baseline_mac_swap on {what}: {}",
            byte_diff(&expected, &run.output)
        );
    }
}

/// The independent checksum check itself notices a wrong checksum (no kernel needed): a
/// reflected frame with one payload byte changed, and one with its IPv4 header checksum
/// changed, are both reported.
#[test]
fn checksum_verification_catches_corruption() {
    let frame = fixture::forward_reflected(&fixture::forward(Protocol::Udp, Family::V4)).bytes();
    assert_eq!(verify_checksums(&frame), Ok(()));
    let mut payload_changed = frame.clone();
    *payload_changed.last_mut().expect("a non-empty frame") ^= 0x01;
    assert!(verify_checksums(&payload_changed).is_err_and(|e| e.contains("UDP")));
    let mut header_changed = frame;
    // The IPv4 header checksum of an untagged frame: bytes 24 and 25.
    header_changed[25] ^= 0x01;
    assert!(verify_checksums(&header_changed).is_err_and(|e| e.contains("IPv4 header")));
}

/// How two reflectors are aimed at each other in a [`ping_pong`].
#[derive(Clone, Copy, Debug)]
enum Chain {
    /// `80:80` on both (the flow table: a target that is also a listen port keeps it), the
    /// packet spoofed to one's listen port.
    SameMap,
    /// Maps without flow state chained forward: `10022:22` on one, `22:10022` on the other,
    /// the packet spoofed to the first one's listen port 10022; each reflection arrives at
    /// the other as a forward packet.
    StatelessForward,
    /// The same maps, the packet spoofed as a reply from target port 22 to the first one:
    /// each reflection arrives at the other as a reply from its target port.
    StatelessReverse,
}

/// Two reflectors aimed at each other as `chain` says, and one packet spoofed from one to
/// the other. Runs the packet back and forth, each program's output the other's input
/// (`hops` routers between them, each taking one from the TTL), until one of them does not
/// reflect it; returns the reflections and the last verdict's reason.
fn ping_pong(
    hook: Hook,
    family: Family,
    ttl: u8,
    hops: u8,
    guard: bool,
    chain: Chain,
) -> (u32, StatIndex) {
    use reflector_common::{
        AdmissionConfig, DropReason, PassReason, addr_kind, admission::ADMISSION_LOOP_GUARD_OFF,
    };
    const PORT: u16 = 80;
    let (r1_addr, r2_addr) = (fixture::host(family), fixture::client(family));
    let mut reflectors = [(r1_addr, 0), (r2_addr, 1)].map(|(local, which)| {
        let mut kernel = Kernel::reflector(hook);
        kernel.add_address(local, addr_kind::LOCAL);
        match (chain, which) {
            (Chain::SameMap, _) => kernel.map_port(Protocol::Tcp, PORT, PORT, 1),
            (_, 0) => kernel.map_port_stateless(Protocol::Tcp, 10_022, 22, 1),
            (_, _) => kernel.map_port_stateless(Protocol::Tcp, 22, 10_022, 1),
        }
        kernel.set_admission(AdmissionConfig::DEFAULT.with_flag(ADMISSION_LOOP_GUARD_OFF, !guard));
        kernel
    });
    let (source_port, destination_port) = match chain {
        Chain::SameMap => (fixture::CLIENT_PORT, PORT),
        Chain::StatelessForward => (fixture::CLIENT_PORT, 10_022),
        Chain::StatelessReverse => (22, fixture::CLIENT_PORT),
    };
    let mut frame = Frame::tcp(r2_addr, source_port, r1_addr, destination_port)
        .with_ttl(ttl)
        .bytes();
    // Every turn before the one that stops the packet reflected it once.
    for (reflections, turn) in (0..1_000).enumerate() {
        let kernel = &mut reflectors[turn % 2];
        let before = kernel.stats();
        let run = kernel.run(&frame);
        if run.verdict != hook.reflect_verdict() {
            let after = kernel.stats();
            let reason = (0..STATS_LEN)
                .find(|&i| after[i as usize].packets != before[i as usize].packets)
                .expect("the last verdict was counted");
            let known = [
                StatIndex::dropped(DropReason::LoopDetected),
                StatIndex::passed(PassReason::TtlExpired),
            ];
            let reason = known
                .into_iter()
                .find(|index| index.get() == reason)
                .unwrap_or_else(|| panic!("stopped for {}", stat_name(reason)));
            return (reflections as u32, reason);
        }
        frame = run.output;
        // The routers between them: IPv6 only (no header checksum to fix).
        if hops > 0 {
            assert_eq!(family, Family::V6, "routers between reflectors: IPv6 only");
            let hop_limit = ETH_LEN + 7;
            frame[hop_limit] = frame[hop_limit].saturating_sub(hops);
        }
    }
    panic!("1000 reflections and counting")
}

/// The loop guard bounds a ping-pong between two reflectors to 4 reflections (2 round
/// trips) when they are neighbours, 2 with a router between them, whatever the spoofed
/// packet's TTL, with the flow table and without flow state (the loop memory), forward and
/// reverse; without it the packet bounces until its TTL runs out.
#[test]
fn two_reflectors_aimed_at_each_other_stop_a_spoofed_packet() {
    use reflector_common::DropReason;
    let loop_detected = StatIndex::dropped(DropReason::LoopDetected);
    let mut report = Vec::new();
    let chains = [
        Chain::SameMap,
        Chain::StatelessForward,
        Chain::StatelessReverse,
    ];
    for (hook, chain) in Hook::BOTH
        .into_iter()
        .flat_map(|hook| chains.map(|chain| (hook, chain)))
    {
        for ttl in [64, 255] {
            for family in [Family::V4, Family::V6] {
                let got = ping_pong(hook, family, ttl, 0, true, chain);
                if got != (4, loop_detected) {
                    report.push(format!(
                        "{hook:?} {chain:?} {family:?} TTL {ttl}, neighbours: {} reflections, \
                         stopped by {}; expected 4, loop_detected",
                        got.0,
                        stat_name(got.1.get())
                    ));
                }
            }
            let got = ping_pong(hook, Family::V6, ttl, 1, true, chain);
            if got != (2, loop_detected) {
                report.push(format!(
                    "{hook:?} {chain:?} IPv6 TTL {ttl}, a router between: {} reflections, \
                     stopped by {}; expected 2, loop_detected",
                    got.0,
                    stat_name(got.1.get())
                ));
            }
        }
        // The guard off: what it prevents. Each reflection takes one from the TTL, and
        // the packet is passed at TTL 1.
        let got = ping_pong(hook, Family::V4, 64, 0, false, chain);
        if got.0 != 63 {
            report.push(format!(
                "{hook:?} {chain:?} without the loop guard: {} reflections, expected 63 (TTL \
                 64 to 1)",
                got.0
            ));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
}

/// A forward frame from `source` (port `port`) to this host's TCP listen port.
fn from_source(source: std::net::Ipv4Addr, port: u16) -> Vec<u8> {
    Frame::tcp(
        source.into(),
        port,
        fixture::HOST_V4.into(),
        fixture::TCP_LISTEN,
    )
    .bytes()
}

/// A flood of new flows from more spoofed sources than `SOURCE_BUCKETS` holds costs no more
/// than its bound, and an allowed source within its limit is still reflected after it:
/// outside an enforced allow-list the flood is dropped before any bucket; with every source
/// allowed (per-source limit only), each spoofed source gets a bucket, the LRU map stays at
/// its size, and the client's bucket (evicted or not) still admits it.
#[test]
fn a_flood_of_spoofed_sources_is_bounded_and_spares_an_allowed_client() {
    use reflector_common::{
        AdmissionConfig, DropReason, admission::ADMISSION_ALLOW_LIST, maps::SOURCE_BUCKETS_LEN,
    };
    let flood = SOURCE_BUCKETS_LEN + 4_096;
    let spoofed = |i: u32| std::net::Ipv4Addr::from(0x0a00_0000 + i);
    for (enforced, expected) in [
        (true, Hook::Xdp.drop_verdict()),
        (false, Hook::Xdp.reflect_verdict()),
    ] {
        let mut kernel = Kernel::reflector(Hook::Xdp);
        fixture::configure(&mut kernel);
        kernel.set_admission(
            AdmissionConfig::DEFAULT
                .with_global_limit(0, 0)
                .with_source_limit(1, 1)
                .with_flag(ADMISSION_ALLOW_LIST, enforced),
        );
        kernel.allow(fixture::CLIENT_V4.into(), 24);
        let first = kernel.run(&from_source(fixture::CLIENT_V4, fixture::CLIENT_PORT));
        assert_eq!(
            first.verdict,
            Hook::Xdp.reflect_verdict(),
            "the client's first flow"
        );
        for i in 0..flood {
            let run = kernel.run(&from_source(spoofed(i), 1_024));
            assert_eq!(
                run.verdict,
                expected,
                "spoofed source {} (allow-list enforced: {enforced}): {}",
                spoofed(i),
                Hook::Xdp.verdict_name(run.verdict)
            );
        }
        let buckets = kernel.source_buckets();
        let stats = kernel.stats();
        if enforced {
            assert_eq!(buckets, 1, "only the client's bucket: the flood got none");
            assert_eq!(
                stats[StatIndex::dropped(DropReason::SourceNotAllowed).get() as usize].packets,
                u64::from(flood)
            );
        } else {
            assert!(
                buckets <= SOURCE_BUCKETS_LEN as usize,
                "{buckets} buckets, more than the map's {SOURCE_BUCKETS_LEN}"
            );
            // Full, so the last of the flood got in by evicting: the map is at its bound.
            assert!(
                buckets > SOURCE_BUCKETS_LEN as usize / 2,
                "the flood filled the map: {buckets} buckets of {SOURCE_BUCKETS_LEN}"
            );
        }
        // A second later the client's bucket holds a flow again, evicted or not.
        std::thread::sleep(std::time::Duration::from_millis(1_050));
        let again = kernel.run(&from_source(fixture::CLIENT_V4, fixture::CLIENT_PORT + 1));
        assert_eq!(
            again.verdict,
            Hook::Xdp.reflect_verdict(),
            "the client's next flow after the flood (allow-list enforced: {enforced})"
        );
    }
}
