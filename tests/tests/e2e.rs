//! End-to-end tests across two network namespaces: X (client and service) and R (the
//! reflector host), joined by a veth pair.
//!
//! From X, a connection to R's listen port `L` must land on X's own service on port `P`,
//! which must see R's address (and, on the kernel path, the client's own source port) as
//! its peer. Every test builds its own topology, so they run in parallel. They need root
//! and the daemon binary (`$REFLECTOR_BIN`, else `target/<profile>/reflector`). What is
//! particular to userspace reflection (splice) is tested in `splice.rs`.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::net::{IpAddr, SocketAddr};
use std::process::Output;
use std::time::Duration;

use reflector_tests::attach::{has_clsact, kernel_has_tcx};
use reflector_tests::client::{self, curl, curl_to_file, http_url, sha256, under_check_load};
use reflector_tests::daemon::run_to_exit;
use reflector_tests::reflection::{Path, assert_reflected, map_arg};
use reflector_tests::servers::{Nginx, parse_peer_reply, peer_service};
use reflector_tests::{
    Attachments, Family, Mode, Proto, Reflector, Topology, TopologyOptions,
    assert_nothing_attached, require_root,
};

/// `L` and `P` of the TCP tests: like `--map 10022:22`.
const TCP_MAP: (u16, u16) = (10_022, 22);
/// `L` and `P` of the UDP tests.
const UDP_MAP: (u16, u16) = (10_053, 53);
/// `L` and `P` of the nginx tests.
const HTTP_MAP: (u16, u16) = (10_080, 80);
/// Connections (TCP) or sockets (UDP) per reflection test, each from its own source port.
const ROUNDS: usize = 3;
/// Size of the large file served by nginx.
const LARGE_FILE_LEN: usize = 8 << 20;

/// X's service on `P` is reached through `R:L`, `ROUNDS` times.
fn reflects_to_own_service(mode: Mode, proto: Proto, family: Family) {
    let topology = Topology::for_mode(mode);
    let (listen, target) = match proto {
        Proto::Tcp => TCP_MAP,
        Proto::Udp => UDP_MAP,
    };
    let _service = peer_service(topology.x(), proto, family, target);
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg((listen, target), proto.as_str())],
    );
    for round in 0..ROUNDS {
        assert_reflected(
            &topology,
            Path::of(mode),
            proto,
            family,
            listen,
            &format!("round{round}"),
        );
    }
}

#[test]
fn tcp_v4_xdp() {
    reflects_to_own_service(Mode::Xdp, Proto::Tcp, Family::V4);
}

#[test]
fn tcp_v6_xdp() {
    reflects_to_own_service(Mode::Xdp, Proto::Tcp, Family::V6);
}

#[test]
fn udp_v4_xdp() {
    reflects_to_own_service(Mode::Xdp, Proto::Udp, Family::V4);
}

#[test]
fn udp_v6_xdp() {
    reflects_to_own_service(Mode::Xdp, Proto::Udp, Family::V6);
}

#[test]
fn tcp_v4_xdp_skb() {
    reflects_to_own_service(Mode::XdpSkb, Proto::Tcp, Family::V4);
}

#[test]
fn tcp_v6_xdp_skb() {
    reflects_to_own_service(Mode::XdpSkb, Proto::Tcp, Family::V6);
}

#[test]
fn udp_v4_xdp_skb() {
    reflects_to_own_service(Mode::XdpSkb, Proto::Udp, Family::V4);
}

#[test]
fn udp_v6_xdp_skb() {
    reflects_to_own_service(Mode::XdpSkb, Proto::Udp, Family::V6);
}

#[test]
fn tcp_v4_tc() {
    reflects_to_own_service(Mode::Tc, Proto::Tcp, Family::V4);
}

#[test]
fn tcp_v6_tc() {
    reflects_to_own_service(Mode::Tc, Proto::Tcp, Family::V6);
}

#[test]
fn udp_v4_tc() {
    reflects_to_own_service(Mode::Tc, Proto::Udp, Family::V4);
}

#[test]
fn udp_v6_tc() {
    reflects_to_own_service(Mode::Tc, Proto::Udp, Family::V6);
}

/// `auto` (the default) on a veth: TC, so the kernel path.
#[test]
fn tcp_v4_auto() {
    reflects_to_own_service(Mode::Auto, Proto::Tcp, Family::V4);
}

#[test]
fn udp_v6_auto() {
    reflects_to_own_service(Mode::Auto, Proto::Udp, Family::V6);
}

/// Several maps at once, one of them for both protocols.
#[test]
fn several_maps_xdp() {
    let mode = Mode::Xdp;
    let topology = Topology::for_mode(mode);
    let (x, (l1, p1), (l2, p2)) = (topology.x(), TCP_MAP, HTTP_MAP);
    let _services = [
        peer_service(x, Proto::Tcp, Family::V4, p1),
        peer_service(x, Proto::Udp, Family::V4, p1),
        peer_service(x, Proto::Tcp, Family::V6, p2),
    ];
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg((l1, p1), "tcp,udp"), &map_arg((l2, p2), "tcp")],
    );
    let path = Path::of(mode);
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, l1, "both-tcp");
    assert_reflected(&topology, path, Proto::Udp, Family::V4, l1, "both-udp");
    assert_reflected(&topology, path, Proto::Tcp, Family::V6, l2, "second");
}

/// Traffic the maps do not cover (another port; a mapped port with the other protocol)
/// still reaches R's own services, which see X's address.
fn unmapped_traffic_reaches_r(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, (listen, target)) = (topology.r(), TCP_MAP);
    let _services = [
        peer_service(r, Proto::Tcp, Family::V4, 9000),
        peer_service(r, Proto::Tcp, Family::V6, 9000),
        peer_service(r, Proto::Udp, Family::V4, listen),
    ];
    let _reflector = Reflector::start(
        r,
        topology.r_iface(),
        mode,
        &[&map_arg((listen, target), "tcp")],
    );
    for (proto, family, port) in [
        (Proto::Tcp, Family::V4, 9000),
        (Proto::Tcp, Family::V6, 9000),
        (Proto::Udp, Family::V4, listen),
    ] {
        let to = SocketAddr::new(topology.r_addr(family), port);
        let (local, reply) = match proto {
            Proto::Tcp => client::tcp_line(topology.x(), to, "plain"),
            Proto::Udp => {
                let (local, from, reply) =
                    client::udp_exchange(topology.x(), topology.x_addr(family), to, "plain");
                assert_eq!(from, to, "the UDP reply must come from R's own service");
                (local, reply)
            }
        };
        assert_eq!(
            parse_peer_reply(&reply),
            (local.ip(), local.port(), "plain"),
            "{proto} {local} -> {to} is not mapped: R's own service must answer and see X \
             (reply {reply:?})"
        );
    }
}

#[test]
fn unmapped_traffic_reaches_r_xdp() {
    unmapped_traffic_reaches_r(Mode::Xdp);
}

#[test]
fn unmapped_traffic_reaches_r_tc() {
    unmapped_traffic_reaches_r(Mode::Tc);
}

/// In splice mode the daemon listens on the mapped ports, for the mapped protocols only:
/// the same UDP port stays free for R's own service.
#[test]
fn unmapped_traffic_reaches_r_splice() {
    unmapped_traffic_reaches_r(Mode::Splice);
}

/// Deterministic bytes that do not compress (xorshift64).
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// curl in X fetches from nginx in X through `R:L`, over IPv4 and IPv6: a small page
/// (compared byte for byte) and a large file (compared by SHA-256); nginx logs R's address
/// as the client.
fn nginx_through_reflector(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (listen, target) = HTTP_MAP;
    let page = format!(
        "nginx in X, reached through the reflector ({})\n",
        mode.as_arg()
    );
    let large = pseudo_random(LARGE_FILE_LEN, u64::from(topology.id()) + 1);
    let nginx = Nginx::start(
        topology.x(),
        target,
        &[("index.txt", page.as_bytes()), ("large.bin", &large)],
    );
    let large_sha = sha256(topology.x(), &nginx.scratch("www/large.bin"));
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg((listen, target), "tcp")],
    );
    for (family, name) in [(Family::V4, "v4"), (Family::V6, "v6")] {
        let r = topology.r_addr(family);
        let to = SocketAddr::new(r, listen);
        let path = format!("index.txt?family={name}");
        assert_eq!(
            curl(topology.x(), &http_url(to, &path)),
            page,
            "{path} via {to}"
        );
        let request = format!(" 200 GET /{path} HTTP/1.1");
        let line = nginx
            .wait_access(&request, Duration::from_secs(5))
            .unwrap_or_else(|| {
                panic!(
                    "nginx did not log{request}; access log:\n{}",
                    nginx.access_log()
                )
            });
        assert_eq!(
            line.split(' ').next(),
            Some(r.to_string().as_str()),
            "nginx must see the reflector's address as the client: {line:?}"
        );
        let out = nginx.scratch(&format!("large-{name}.bin"));
        curl_to_file(topology.x(), &http_url(to, "large.bin"), &out);
        let got = std::fs::metadata(&out).map_or(0, |m| m.len());
        assert_eq!(got, LARGE_FILE_LEN as u64, "size of large.bin via {to}");
        assert_eq!(
            sha256(topology.x(), &out),
            large_sha,
            "SHA-256 of large.bin via {to}"
        );
    }
}

#[test]
fn nginx_xdp() {
    nginx_through_reflector(Mode::Xdp);
}

#[test]
fn nginx_xdp_skb() {
    nginx_through_reflector(Mode::XdpSkb);
}

#[test]
fn nginx_tc() {
    nginx_through_reflector(Mode::Tc);
}

#[test]
fn nginx_splice() {
    nginx_through_reflector(Mode::Splice);
}

/// `auto` on a veth picks TC: nginx through the daemon's own choice.
#[test]
fn nginx_auto() {
    nginx_through_reflector(Mode::Auto);
}

/// While running, the daemon's program is attached the way `mode` says; on `signal` it
/// exits 0 and leaves nothing attached.
fn clean_exit(mode: Mode, signal: nix::sys::signal::Signal) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let reflector = Reflector::start(r, iface, mode, &[&map_arg(TCP_MAP, "tcp,udp")]);
    let attached = Attachments::of(r, iface);
    let expected = match mode {
        Mode::Xdp => attached.has_xdp() && !attached.link.contains("xdpgeneric"),
        Mode::XdpSkb => attached.link.contains("xdpgeneric"),
        // `auto` prefers TC on a veth.
        Mode::Tc | Mode::Auto => !attached.has_xdp() && attached.has_tc(),
        Mode::Splice => !attached.any(),
    };
    assert!(
        expected,
        "while running in {} mode the reflector must be attached that way:\n{attached}",
        mode.as_arg()
    );
    let (status, log) = reflector.stop_with(signal);
    assert_eq!(
        status.code(),
        Some(0),
        "the reflector must exit 0 on {signal} ({status}); its log:\n{log}"
    );
    assert_nothing_attached(r, iface);
}

/// TC mode picks its attach path by kernel: a TCX link from 6.6, needing no qdisc; before,
/// a netlink filter on a clsact qdisc it adds, and removes again on exit.
#[test]
fn tc_removes_the_clsact_it_added() {
    let topology = Topology::for_mode(Mode::Tc);
    let (r, iface) = (topology.r(), topology.r_iface());
    assert!(!has_clsact(r, iface), "a new veth has no clsact qdisc");
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, TCP_MAP.1);
    let reflector = Reflector::start(r, iface, Mode::Tc, &[&map_arg(TCP_MAP, "tcp")]);
    let attached = Attachments::of(r, iface);
    if kernel_has_tcx() {
        assert!(
            !attached.tcx.is_empty() && attached.tc_filters.trim().is_empty(),
            "from kernel 6.6 TC attaches as a TCX link:\n{attached}"
        );
        assert!(
            !has_clsact(r, iface),
            "TCX needs no clsact qdisc:\n{attached}"
        );
    } else {
        assert!(
            attached.tc_filters.contains("reflector_tc"),
            "before kernel 6.6 TC attaches as a netlink filter on clsact:\n{attached}"
        );
        assert!(has_clsact(r, iface), "before kernel 6.6 TC needs clsact");
    }
    assert_reflected(
        &topology,
        Path::of(Mode::Tc),
        Proto::Tcp,
        Family::V4,
        TCP_MAP.0,
        "clsact",
    );
    let (status, log) = reflector.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "clean exit; its log:\n{log}");
    assert_nothing_attached(r, iface);
    assert!(
        !has_clsact(r, iface),
        "the clsact qdisc the daemon added must be gone after it exits; its log:\n{log}"
    );
}

/// A clsact qdisc that was there before the daemon started stays after it exits (it may
/// carry other programs); only the daemon's own filter goes.
#[test]
fn tc_keeps_a_clsact_that_was_there() {
    let topology = Topology::for_mode(Mode::Tc);
    let (r, iface) = (topology.r(), topology.r_iface());
    r.exec(&["tc", "qdisc", "add", "dev", iface, "clsact"]);
    let reflector = Reflector::start(r, iface, Mode::Tc, &[&map_arg(TCP_MAP, "tcp")]);
    assert!(Attachments::of(r, iface).has_tc(), "TC attached");
    let (status, log) = reflector.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "clean exit; its log:\n{log}");
    assert_nothing_attached(r, iface);
    assert!(
        has_clsact(r, iface),
        "a clsact qdisc present before the daemon must stay; its log:\n{log}"
    );
}

/// SIGKILL gives the daemon no chance to clean up, and still nothing stays attached: every
/// attachment is a link owned by a file descriptor, which the kernel closes with the process.
fn nothing_left_after_sigkill(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let reflector = Reflector::start(r, iface, mode, &[&map_arg(TCP_MAP, "tcp")]);
    let attached = Attachments::of(r, iface);
    assert!(
        attached.any(),
        "while running in {} mode the program must be attached:\n{attached}",
        mode.as_arg()
    );
    let (status, log) = reflector.stop_with(nix::sys::signal::Signal::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(nix::sys::signal::Signal::SIGKILL as i32),
        "the reflector must have died of SIGKILL ({status}); its log:\n{log}"
    );
    assert_nothing_left_after_kill(r, iface, mode);
}

/// After a SIGKILL nothing stays attached: the kernel frees a link once its last file
/// descriptor is gone (which may take a moment after the process is reaped). Before kernel
/// 6.6 (no TCX), TC's netlink filter is no link and stays; the next daemon removes it when
/// it starts, and after that one exits nothing is attached.
fn assert_nothing_left_after_kill(r: &reflector_tests::Netns, iface: &str, mode: Mode) {
    if mode == Mode::Tc && !kernel_has_tcx() {
        let attached = Attachments::of(r, iface);
        assert!(
            attached.tc_filters.contains("reflector_tc"),
            "before kernel 6.6 a killed daemon's TC filter stays:\n{attached}"
        );
        let next = Reflector::start(r, iface, mode, &[&map_arg(TCP_MAP, "tcp")]);
        let log = next.log();
        assert!(
            log.contains("removed the reflector_tc filter a previous reflector left attached"),
            "the next daemon removes the stale filter:\n{log}"
        );
        let attached = Attachments::of(r, iface);
        // One line per filter: `filter ... handle 0x1 reflector_tc direct-action ...`.
        let filters = attached
            .tc_filters
            .lines()
            .filter(|line| line.contains(" handle ") && line.contains("reflector_tc"))
            .count();
        assert_eq!(filters, 1, "only the new daemon's filter:\n{attached}");
        next.stop_cleanly();
    } else {
        reflector_tests::wait::wait_until(
            "the kernel to drop the killed daemon's links",
            Duration::from_secs(5),
            || !Attachments::of(r, iface).any(),
        );
    }
    assert_nothing_attached(r, iface);
}

/// Health-check workers of the kill-under-load test.
const LOAD_WORKERS: usize = 8;
/// How long the load runs before the kill.
const LOAD_BEFORE_KILL: Duration = Duration::from_secs(1);
/// Checks that began this shortly before the kill may be cut by it (the kill takes the
/// reflection away mid-exchange: a reply that never comes, or a reset); a check takes a
/// millisecond or two, so any begun earlier had time to finish.
const IN_FLIGHT_AT_KILL: Duration = Duration::from_millis(200);

/// SIGKILL under heavy traffic (8 workers of back-to-back health checks against nginx):
/// every check begun before the kill (but those in flight at it) succeeded, and nothing
/// stays attached after it.
fn nothing_left_after_sigkill_under_load(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let _nginx = Nginx::start(topology.x(), HTTP_MAP.1, &[("index.html", b"ok\n")]);
    let reflector = Reflector::start(r, iface, mode, &[&map_arg(HTTP_MAP, "tcp")]);
    let to = SocketAddr::new(topology.r_addr(Family::V4), HTTP_MAP.0);
    let (killed, outcomes) = under_check_load(topology.x(), to, LOAD_WORKERS, || {
        std::thread::sleep(LOAD_BEFORE_KILL);
        let killed = std::time::Instant::now();
        let (status, log) = reflector.stop_with(nix::sys::signal::Signal::SIGKILL);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(nix::sys::signal::Signal::SIGKILL as i32),
            "killed by SIGKILL ({status}):\n{log}"
        );
        killed
    });
    let before: Vec<_> = outcomes
        .iter()
        .filter(|(began, _)| *began + IN_FLIGHT_AT_KILL < killed)
        .collect();
    let failed: Vec<_> = before
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(
        !before.is_empty() && failed.is_empty(),
        "{} mode: {} checks before the kill, {} failed: {:?}",
        mode.as_arg(),
        before.len(),
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_nothing_left_after_kill(r, iface, mode);
}

#[test]
fn nothing_left_after_sigkill_under_load_tc() {
    nothing_left_after_sigkill_under_load(Mode::Tc);
}

#[test]
fn nothing_left_after_sigkill_under_load_xdp() {
    nothing_left_after_sigkill_under_load(Mode::Xdp);
}

#[test]
fn nothing_left_after_sigkill_xdp() {
    nothing_left_after_sigkill(Mode::Xdp);
}

#[test]
fn nothing_left_after_sigkill_xdp_skb() {
    nothing_left_after_sigkill(Mode::XdpSkb);
}

#[test]
fn nothing_left_after_sigkill_tc() {
    nothing_left_after_sigkill(Mode::Tc);
}

#[test]
fn clean_exit_on_sigterm_xdp() {
    clean_exit(Mode::Xdp, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn clean_exit_on_sigterm_xdp_skb() {
    clean_exit(Mode::XdpSkb, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn clean_exit_on_sigterm_tc() {
    clean_exit(Mode::Tc, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn clean_exit_on_sigterm_splice() {
    clean_exit(Mode::Splice, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn clean_exit_on_sigint_splice() {
    clean_exit(Mode::Splice, nix::sys::signal::Signal::SIGINT);
}

#[test]
fn clean_exit_on_sigterm_auto() {
    clean_exit(Mode::Auto, nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn clean_exit_on_sigint_tc() {
    clean_exit(Mode::Tc, nix::sys::signal::Signal::SIGINT);
}

/// Whether `text` names `value` as a whole word (`0` in `port 0` or `0:22`, not in `10`).
fn names_value(text: &str, value: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .any(|word| word == value)
}

/// The daemon, given `maps` (and R's interface unless `iface` names another), exits
/// non-zero without attaching anything, with a message naming `bad`.
fn assert_rejected(maps: &[&str], iface: Option<&str>, bad: &str) {
    require_root();
    let topology = Topology::new(TopologyOptions::default());
    let mut args = Vec::new();
    for map in maps {
        args.extend(["--map", map]);
    }
    args.extend([
        "--iface",
        iface.unwrap_or(topology.r_iface()),
        "--mode",
        "tc",
    ]);
    let Output {
        status,
        stdout,
        stderr,
    } = run_to_exit(topology.r(), &args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    assert!(
        !status.success(),
        "reflector {args:?} must fail, but exited with {status}\n--- stderr ---\n{stderr}"
    );
    assert!(
        names_value(&stderr, bad) || names_value(&stdout, bad),
        "the error of reflector {args:?} must name {bad:?}\n--- stdout ---\n{stdout}\n--- \
         stderr ---\n{stderr}"
    );
    assert!(
        !reflector_tests::daemon::has_ready_line(&stderr),
        "reflector {args:?} logged `ready`:\n{stderr}"
    );
    assert_nothing_attached(topology.r(), topology.r_iface());
}

#[test]
fn rejects_listen_port_zero() {
    assert_rejected(&["0:22/tcp"], None, "0");
}

#[test]
fn rejects_target_port_zero() {
    assert_rejected(&["10022:0/tcp"], None, "0");
}

#[test]
fn rejects_listen_port_70000() {
    assert_rejected(&["70000:22/tcp"], None, "70000");
}

#[test]
fn rejects_target_port_70000() {
    assert_rejected(&["10022:70000/tcp"], None, "70000");
}

#[test]
fn rejects_same_listen_port_twice() {
    assert_rejected(&["10022:22/tcp", "10022:23/tcp"], None, "10022");
}

#[test]
fn rejects_unknown_interface() {
    assert_rejected(&["10022:22/tcp"], Some("rflnosuch0"), "rflnosuch0");
}

#[test]
fn names_value_matches_whole_words() {
    assert!(names_value("invalid port 0 in '0:22'", "0"));
    assert!(names_value("no interface rfl1-2r", "rfl1-2r"));
    assert!(!names_value("port 10 is fine", "0"));
}

/// The harness itself, without the reflector: X reaches R's own services directly (TCP and
/// UDP, both families, nginx with curl), and everything is gone after drop.
#[test]
fn harness_works_without_reflector() {
    require_root();
    let topology = Topology::new(TopologyOptions::default());
    let names = [
        topology.x().name().to_owned(),
        topology.r().name().to_owned(),
    ];
    let r = topology.r();
    let services = [
        peer_service(r, Proto::Tcp, Family::V4, 9000),
        peer_service(r, Proto::Tcp, Family::V6, 9000),
        peer_service(r, Proto::Udp, Family::V6, 9000),
    ];
    let pids: Vec<u32> = services.iter().map(reflector_tests::Process::pid).collect();
    for family in [Family::V4, Family::V6] {
        let to = SocketAddr::new(topology.r_addr(family), 9000);
        let (local, reply) = client::tcp_line(topology.x(), to, "direct");
        assert_eq!(
            parse_peer_reply(&reply),
            (local.ip(), local.port(), "direct")
        );
    }
    let to = SocketAddr::new(topology.r_addr(Family::V6), 9000);
    let (local, from, reply) =
        client::udp_exchange(topology.x(), topology.x_addr(Family::V6), to, "direct");
    assert_eq!(from, to);
    assert_eq!(
        parse_peer_reply(&reply),
        (local.ip(), local.port(), "direct")
    );
    let nginx = Nginx::start(r, 80, &[("index.txt", b"direct\n")]);
    let to = SocketAddr::new(topology.r_addr(Family::V6), 80);
    assert_eq!(curl(topology.x(), &http_url(to, "index.txt")), "direct\n");
    let nginx_pid = nginx.process().pid();
    drop(nginx);
    drop(services);
    drop(topology);
    for pid in pids.into_iter().chain([nginx_pid]) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived its guard"
        );
    }
    let listed =
        reflector_tests::command::run(std::process::Command::new("ip").args(["netns", "list"]));
    for name in names {
        assert!(
            !listed.contains(&name),
            "namespace {name} survived its guard"
        );
    }
}

/// An address added to R after the daemon is ready is reflected without a restart: the
/// daemon follows address changes over netlink.
fn follows_addresses_added_at_runtime(mode: Mode) {
    use reflector_tests::{names, wait::wait_until};

    let topology = Topology::for_mode(mode);
    let (listen, target) = TCP_MAP;
    let _services = [
        peer_service(topology.x(), Proto::Tcp, Family::V4, target),
        peer_service(topology.x(), Proto::Tcp, Family::V6, target),
    ];
    let reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg((listen, target), "tcp")],
    );
    let syncs = |log: &str| log.matches("local addresses:").count();
    for (added, prefix) in [
        (IpAddr::V4(names::addr_v4(topology.id(), 3)), "24"),
        (IpAddr::V6(names::addr_v6(topology.id(), 3)), "64"),
    ] {
        let before = syncs(&reflector.log());
        let cidr = format!("{added}/{prefix}");
        let mut args = vec!["addr", "add", &cidr, "dev", topology.r_iface()];
        if added.is_ipv6() {
            args.push("nodad");
        }
        topology.r().ip(&args);
        wait_until(
            &format!("the daemon to learn {added}"),
            Duration::from_secs(5),
            || syncs(&reflector.log()) > before,
        );
        let to = SocketAddr::new(added, listen);
        let (local, reply) = client::tcp_line(topology.x(), to, "added");
        assert_eq!(
            parse_peer_reply(&reply),
            (added, local.port(), "added"),
            "{local} -> {to}: an address added after start must be reflected (reply {reply:?})"
        );
    }
}

#[test]
fn follows_addresses_added_at_runtime_xdp() {
    follows_addresses_added_at_runtime(Mode::Xdp);
}

#[test]
fn follows_addresses_added_at_runtime_tc() {
    follows_addresses_added_at_runtime(Mode::Tc);
}
