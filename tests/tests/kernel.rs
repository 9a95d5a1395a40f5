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

use std::{
    collections::{BTreeSet, HashMap as StdHashMap},
    io::ErrorKind,
};

use aya::{Ebpf, programs::ProgramError, sys::SyscallError};
use reflector_common::{
    Counter, Direction, Family, FlowKey, FlowValue, MapStatIndex, Protocol, StatIndex,
    maps::programs::{TC, XDP},
    stats::COUNTERS_PER_MAP,
};

use reflector_tests::differential::stat_name;
use reflector_tests::hexdump::{byte_diff, hex};
use reflector_tests::{
    bench_object::{self, bench_object},
    kernel_fixture as fixture,
    packets::{Frame, Vlan, arp_request, verify_checksums},
    test_run::{Hook, Kernel},
    topology::kernel_object,
};

use crate::cases::{Case, Expect};

/// Runs `case` at both hooks and fails with every problem found at either.
fn run_case(case: &Case) {
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
fn run_at(hook: Hook, case: &Case) -> Vec<String> {
    let mut kernel = Kernel::reflector(hook);
    fixture::configure(&mut kernel);
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
    problems.extend(check_flows(&flows_before, &flows_after, new_flow));
    problems
}

/// Checks that the flow table holds exactly what it held before plus `new_flow`.
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
                bench_object::programs::XDP_PASS,
            ]
            .map(str::to_owned)
        ),
        "the programs of the benchmark's reference object"
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
