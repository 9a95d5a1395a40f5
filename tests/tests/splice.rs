//! End-to-end tests of userspace reflection (`--mode splice`), of `auto` falling back to
//! it, and of the listeners the daemon keeps on the mapped ports in every mode.
//!
//! The topology is `e2e.rs`'s: X (client and service) and R (the reflector host) joined by
//! a veth pair. In splice mode R accepts the client's connection to `R:L` and connects back
//! to the client's address on port `P`, so the service in X sees R's address, from a port
//! R's kernel chose (not the client's). Every test builds its own topology, so they run in
//! parallel. They need root, the daemon binary (`$REFLECTOR_BIN`, else
//! `target/<profile>/reflector`) and python3; some need nft (nftables), setpriv
//! and prlimit (util-linux), and say so when missing.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use reflector_tests::client::{
    self, IO_TIMEOUT, assert_pending, connect_expecting_reset, exchange_line, expect_closed,
    expect_reset, half_close_exchange, tcp_connect, try_tcp_line, udp_exchange_on, udp_socket,
    udp_try_exchange,
};
use reflector_tests::daemon::{self, has_count, has_ready_line, splice_summary};
use reflector_tests::firewall::{drop_incoming_tcp, dropped_packets};
use reflector_tests::process::open_fds;
use reflector_tests::reflection::{Path, assert_reflected, map_arg};
use reflector_tests::servers::{Session, parse_peer_reply, peer_service, session_service};
use reflector_tests::wait::{poll_until, wait_until};
use reflector_tests::{
    Family, Mode, Netns, Proto, Reflector, TempDir, Topology, assert_nothing_attached, command,
    require_tool, seccomp,
};

/// `L` and `P` of the TCP tests: like `--map 10022:22`.
const TCP_MAP: (u16, u16) = (10_022, 22);
/// `L` and `P` of the UDP tests.
const UDP_MAP: (u16, u16) = (10_053, 53);
/// Exchanges per protocol and family in the basic test.
const ROUNDS: usize = 3;
/// What the refused-connection tests allow between connecting and being reset.
const RESET_WITHIN: Duration = Duration::from_secs(1);

/// `--map <map>... --iface <R's veth> --mode <mode> <extra>...`.
fn daemon_args(topology: &Topology, mode: Mode, maps: &[String], extra: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for map in maps {
        args.extend(["--map".to_owned(), map.clone()]);
    }
    args.extend(["--iface", topology.r_iface(), "--mode", mode.as_arg()].map(str::to_owned));
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Starts the daemon in R on R's veth in `mode`, with `maps` and `extra` arguments, and
/// waits until it is ready.
fn start(topology: &Topology, mode: Mode, maps: &[String], extra: &[&str]) -> Reflector {
    let args = daemon_args(topology, mode, maps, extra);
    Reflector::start_with_args(topology.r(), &as_strs(&args))
}

/// Stops the daemon with SIGTERM, checks that it exited 0, and returns its exit summary
/// line (`splice: ...`).
fn stop_for_summary(reflector: Reflector) -> String {
    let (status, log) = reflector.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "the reflector must exit 0 on SIGTERM ({status}); its log:\n{log}"
    );
    splice_summary(&log)
        .unwrap_or_else(|| panic!("the reflector logged no `splice: ` summary at exit:\n{log}"))
        .to_owned()
}

/// Panics unless the exit summary counts `phrase` (e.g. `refused 2`) exactly.
fn assert_counted(summary: &str, phrase: &str) {
    assert!(
        has_count(summary, phrase),
        "the exit summary must say `{phrase}`:\n{summary}"
    );
}

/// The log line that says how `iface` reflects (`<iface>: reflecting with <mode> ...`).
fn mode_line<'a>(log: &'a str, iface: &str) -> &'a str {
    let needle = format!("{iface}: reflecting with ");
    log.lines()
        .find(|line| line.contains(&needle))
        .unwrap_or_else(|| panic!("the reflector did not log `{needle}...`; its log:\n{log}"))
}

/// Panics unless the daemon's log says it reflects on R's veth in splice mode.
fn assert_splice_on(topology: &Topology, log: &str) {
    let line = mode_line(log, topology.r_iface());
    let needle = format!("{}: reflecting with splice", topology.r_iface());
    assert!(
        line.contains(&needle),
        "the reflector must reflect with splice on {}: {line:?}; its log:\n{log}",
        topology.r_iface()
    );
}

/// Sends `line` on a reflected connection and checks that the session service in X
/// answered it, seeing R's `r` as its peer.
fn assert_line(stream: &TcpStream, r: IpAddr, line: &str) {
    let reply = exchange_line(stream, line);
    let (peer, _, echoed) = parse_peer_reply(&reply);
    assert_eq!(
        (peer, echoed),
        (r, line),
        "the service in X must see the reflector {r} as its peer and get {line:?} (reply \
         {reply:?})"
    );
}

/// Deterministic bytes of every value, not a repeating short pattern.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 253) as u8).collect()
}

/// Splice mode reflects TCP and UDP over IPv4 and IPv6, interleaved on one daemon: the
/// service in X sees R's address, UDP replies come from `R:L`, and nothing is attached.
#[test]
fn splice_reflects_tcp_and_udp_v4_v6() {
    let topology = Topology::for_mode(Mode::Splice);
    let x = topology.x();
    let _services = [
        peer_service(x, Proto::Tcp, Family::V4, TCP_MAP.1),
        peer_service(x, Proto::Tcp, Family::V6, TCP_MAP.1),
        peer_service(x, Proto::Udp, Family::V4, UDP_MAP.1),
        peer_service(x, Proto::Udp, Family::V6, UDP_MAP.1),
    ];
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp"), map_arg(UDP_MAP, "udp")],
        &[],
    );
    assert_splice_on(&topology, &reflector.log());
    assert_nothing_attached(topology.r(), topology.r_iface());
    for round in 0..ROUNDS {
        for (proto, listen) in [(Proto::Tcp, TCP_MAP.0), (Proto::Udp, UDP_MAP.0)] {
            for family in [Family::V4, Family::V6] {
                assert_reflected(
                    &topology,
                    Path::Splice,
                    proto,
                    family,
                    listen,
                    &format!("round{round}"),
                );
            }
        }
    }
    let summary = stop_for_summary(reflector);
    // Each TCP exchange is a connection, each UDP exchange a socket of its own: a flow.
    assert_counted(&summary, &format!("tcp {} accepted", 2 * ROUNDS));
    assert_counted(&summary, &format!("udp {} flows", 2 * ROUNDS));
    assert_nothing_attached(topology.r(), topology.r_iface());
}

/// A half-close crosses the splice: the client sends a request and shuts its sending side;
/// the service (which answers only at end of file) reads the whole request, then sends
/// its reply on the still-open other direction, and the client gets all of it.
#[test]
fn half_close_propagates() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let _services = [Family::V4, Family::V6].map(|f| session_service(x, Session::Eof, f, target));
    let _reflector = start(&topology, Mode::Splice, &[map_arg(TCP_MAP, "tcp")], &[]);
    let request = payload(256 << 10);
    for family in [Family::V4, Family::V6] {
        let r = topology.r_addr(family);
        let to = SocketAddr::new(r, listen);
        for _ in 0..2 {
            let (local, reply) = half_close_exchange(x, to, &request);
            let newline = reply.iter().position(|&b| b == b'\n').unwrap_or_else(|| {
                panic!(
                    "{local} -> {to}: the reply has no header line ({} bytes)",
                    reply.len()
                )
            });
            let header = String::from_utf8_lossy(&reply[..newline]);
            let (peer, _, received) = parse_peer_reply(&header);
            assert_eq!(
                (peer, received),
                (r, request.len().to_string().as_str()),
                "{local} -> {to}: the service must see the reflector as its peer and read \
                 the whole request up to end of file (header {header:?})"
            );
            let body = &reply[newline + 1..];
            assert!(
                body == request.as_slice(),
                "{local} -> {to}: the reply after the half-close must carry back all {} bytes \
                 sent; got {} bytes{}",
                request.len(),
                body.len(),
                body.iter()
                    .zip(&request)
                    .position(|(got, sent)| got != sent)
                    .map_or_else(String::new, |at| format!(", first difference at {at}"))
            );
        }
    }
}

/// A return port that a firewall filters for one client (its connect-back times out) does
/// not hold up another client: B's exchanges complete while A's connection is still
/// pending, and A is reset once the connect timeout is over.
#[test]
fn filtered_return_port_does_not_delay_other_clients() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let r = topology.r_addr(Family::V4);
    let a = topology.add_x_addr(Family::V4, 3);
    let _service = peer_service(x, Proto::Tcp, Family::V4, target);
    drop_incoming_tcp(x, SocketAddr::new(a, target));
    let connect_timeout = Duration::from_secs(10);
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp")],
        &["--connect-timeout", "10s"],
    );
    let to = SocketAddr::new(r, listen);

    let a_started = Instant::now();
    let a_stream = tcp_connect(x, Some(a), to);
    wait_until(
        &format!("the reflector's connect-back to {a}:{target} (dropped by X's firewall)"),
        Duration::from_secs(5),
        || dropped_packets(x) > 0,
    );
    for round in 0..ROUNDS {
        let (local, reply) = client::tcp_line(x, to, &format!("b{round}"));
        assert_eq!(
            local.ip(),
            topology.x_addr(Family::V4),
            "client B's address"
        );
        let (peer, _, echoed) = parse_peer_reply(&reply);
        assert_eq!(
            (peer, echoed),
            (r, format!("b{round}").as_str()),
            "client B {local} -> {to} (reply {reply:?})"
        );
    }
    let b_done = a_started.elapsed();
    assert!(
        b_done < connect_timeout,
        "client B's exchanges took until {b_done:?} after A connected: they waited for A's \
         connect-back"
    );
    assert_pending(&a_stream);

    let bound = Duration::from_secs(20);
    expect_reset(&a_stream, bound.saturating_sub(a_started.elapsed()));
    let reset_after = a_started.elapsed();
    assert!(
        reset_after >= connect_timeout,
        "client A was reset {reset_after:?} after connecting, before the connect timeout \
         ({connect_timeout:?})"
    );
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, "timeout 1");
}

/// A return port where nothing listens (X answers the connect-back with a reset): the
/// client's connection to `R:L` is reset within a second.
#[test]
fn refused_return_port_resets_the_client() {
    let topology = Topology::for_mode(Mode::Splice);
    let reflector = start(&topology, Mode::Splice, &[map_arg(TCP_MAP, "tcp")], &[]);
    for family in [Family::V4, Family::V6] {
        let to = SocketAddr::new(topology.r_addr(family), TCP_MAP.0);
        connect_expecting_reset(topology.x(), to, RESET_WITHIN);
    }
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, "refused 2");
}

/// Connections in [`no_fd_left_after_a_thousand_connections`].
const FD_CONNECTIONS: usize = 1_000;
/// Every this many of them go to a port where nothing listens (refused connect-back).
const FD_REFUSED_EVERY: usize = 10;
/// Clients running side by side.
const FD_CLIENTS: usize = 2;

/// A thousand reflected connections, most with a real exchange and some refused, leave no
/// file descriptor behind in the daemon once they are all closed.
#[test]
fn no_fd_left_after_a_thousand_connections() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, r) = (topology.x(), topology.r_addr(Family::V4));
    let refused_map = (10_023, 23);
    let _service = peer_service(x, Proto::Tcp, Family::V4, TCP_MAP.1);
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp"), map_arg(refused_map, "tcp")],
        &[],
    );
    let pid = reflector.pid();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let binary = fs::canonicalize(reflector_tests::daemon::binary())
        .expect("the reflector binary's canonical path");
    assert_eq!(exe, binary, "process {pid} must be the reflector binary");
    let baseline = open_fds(pid);

    let refused = thread::scope(|scope| {
        let clients: Vec<_> = (0..FD_CLIENTS)
            .map(|client| {
                scope.spawn(move || {
                    let mut refused = 0;
                    for i in (client..FD_CONNECTIONS).step_by(FD_CLIENTS) {
                        if i % FD_REFUSED_EVERY == 0 {
                            let to = SocketAddr::new(r, refused_map.0);
                            connect_expecting_reset(x, to, IO_TIMEOUT);
                            refused += 1;
                        } else {
                            let to = SocketAddr::new(r, TCP_MAP.0);
                            let message = format!("c{i}");
                            let (local, reply) = client::tcp_line(x, to, &message);
                            let (peer, _, echoed) = parse_peer_reply(&reply);
                            assert_eq!(
                                (peer, echoed),
                                (r, message.as_str()),
                                "connection {i}, {local} -> {to} (reply {reply:?})"
                            );
                        }
                    }
                    refused
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|client| client.join().expect("a client thread panicked (see above)"))
            .sum::<usize>()
    });

    let mut now = Vec::new();
    let settled = poll_until(Duration::from_secs(10), || {
        now = open_fds(pid);
        now.len() == baseline.len()
    });
    assert!(
        settled,
        "{FD_CONNECTIONS} connections later, all closed, the reflector has {} file descriptors \
         open, {} when it was idle after start\n--- now ---\n{}\n--- after start ---\n{}",
        now.len(),
        baseline.len(),
        now.join("\n"),
        baseline.join("\n")
    );
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, &format!("tcp {FD_CONNECTIONS} accepted"));
    assert_counted(&summary, &format!("refused {refused}"));
}

/// `--max-conns 2`: with two reflected connections open, a third client is reset at once,
/// the two keep working, and once one of them closes a new client gets through.
#[test]
fn max_conns_resets_extra_clients() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let r = topology.r_addr(Family::V4);
    let _service = session_service(x, Session::Lines, Family::V4, target);
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp")],
        &["--max-conns", "2"],
    );
    let to = SocketAddr::new(r, listen);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|i| {
            let stream = tcp_connect(x, None, to);
            assert_line(&stream, r, &format!("held{i}"));
            stream
        })
        .collect();

    connect_expecting_reset(x, to, RESET_WITHIN);
    for (i, stream) in held.iter().enumerate() {
        assert_line(stream, r, &format!("held{i} again"));
    }

    // The daemon notices the close asynchronously: until it has, a new client is reset
    // (and counted) like the extra one.
    drop(held.pop());
    let mut resets = 1;
    let freed = poll_until(Duration::from_secs(5), || {
        match try_tcp_line(x, to, "after") {
            Ok((local, reply)) => {
                let (peer, _, echoed) = parse_peer_reply(&reply);
                assert_eq!((peer, echoed), (r, "after"), "{local} -> {to}: {reply:?}");
                true
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ),
                    "a client beyond --max-conns must be reset, not: {e}"
                );
                resets += 1;
                false
            }
        }
    });
    assert!(
        freed,
        "5 s after one of the two connections closed, new clients were still reset ({resets} \
         resets): the slot was not freed"
    );
    assert_line(&held[0], r, "held0 at the end");
    drop(held);
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, &format!("{resets} refused at max-conns"));
}

/// `--idle-timeout` of [`idle_tcp_connection_is_closed`].
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after its last exchange a silent connection may take to be closed.
const IDLE_CLOSED_WITHIN: Duration = Duration::from_secs(5);

/// `--idle-timeout 1s`: a reflected connection (IPv4 and IPv6) that carried an exchange and
/// then stays silent both ways is closed, end of file or reset, about a second later: still
/// open at half the timeout, closed within a few seconds.
#[test]
fn idle_tcp_connection_is_closed() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let _services = [Family::V4, Family::V6].map(|f| session_service(x, Session::Lines, f, target));
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp")],
        &["--idle-timeout", "1s"],
    );
    // One family after the other: each connection's silence is timed from its own exchange
    // (the first IPv6 packets of a fresh topology can wait a second for neighbour discovery).
    for family in [Family::V4, Family::V6] {
        let r = topology.r_addr(family);
        let stream = tcp_connect(x, None, SocketAddr::new(r, listen));
        assert_line(&stream, r, "before the silence");
        let silent_since = Instant::now();
        thread::sleep((IDLE_TIMEOUT / 2).saturating_sub(silent_since.elapsed()));
        assert_pending(&stream);
        let how = expect_closed(
            &stream,
            IDLE_CLOSED_WITHIN.saturating_sub(silent_since.elapsed()),
        );
        eprintln!(
            "{family:?}: closed ({how}) {:?} after the last exchange",
            silent_since.elapsed()
        );
    }
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, "tcp 2 accepted, 0 active");
}

/// How long a client whose datagrams should be dropped waits for a reply that must not come.
const UDP_DROPPED_WAIT: Duration = Duration::from_millis(500);
/// How long client A stays silent before B tries again: twice `--udp-idle-timeout`.
const UDP_SILENCE: Duration = Duration::from_secs(2);

/// Panics unless a UDP reply `received` (its source and text) came from `to` (the
/// reflector's listen port) and says that the service in X saw the reflector `r` as its
/// peer and got `message`.
fn assert_udp_reply(received: &(SocketAddr, String), to: SocketAddr, r: IpAddr, message: &str) {
    let (from, reply) = received;
    let (peer, _, echoed) = parse_peer_reply(reply);
    assert_eq!(
        (*from, peer, echoed),
        (to, r, message),
        "the reply to {message:?} must come from {to}, and the service in X must see the \
         reflector {r} as its peer (reply {reply:?} from {from})"
    );
}

/// `--max-udp-flows 1 --udp-idle-timeout 1s`: while client A's flow is open, the datagrams
/// of client B (another source port) are dropped and counted, and A keeps working; once A
/// has been silent past the idle timeout its flow is forgotten, and B gets through.
#[test]
fn udp_flow_limit_and_idle_expiry() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), UDP_MAP);
    let r = topology.r_addr(Family::V4);
    let _service = peer_service(x, Proto::Udp, Family::V4, target);
    let reflector = start(
        &topology,
        Mode::Splice,
        &[map_arg(UDP_MAP, "udp")],
        &["--max-udp-flows", "1", "--udp-idle-timeout", "1s"],
    );
    let to = SocketAddr::new(r, listen);
    let [client_a, client_b] = [(); 2].map(|()| udp_socket(x, topology.x_addr(Family::V4)));

    assert_udp_reply(&udp_exchange_on(&client_a, to, "a1"), to, r, "a1");
    // Right after A's reply its flow has most of a second to live.
    match udp_try_exchange(&client_b, to, "b-early", UDP_DROPPED_WAIT) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => panic!("client B, whose datagram should be dropped: {e}"),
        Ok((from, reply)) => panic!(
            "client B got {reply:?} from {from} while client A's flow was open: \
             --max-udp-flows 1 must drop B's datagrams"
        ),
    }
    assert_udp_reply(&udp_exchange_on(&client_a, to, "a2"), to, r, "a2");

    thread::sleep(UDP_SILENCE);
    assert_udp_reply(&udp_exchange_on(&client_b, to, "b-late"), to, r, "b-late");
    let summary = stop_for_summary(reflector);
    assert_counted(&summary, "udp 2 flows");
    assert_counted(&summary, "1 dropped at max-udp-flows");
}

/// The soft and hard `RLIMIT_NOFILE` the daemon starts under in
/// [`daemon_survives_running_out_of_file_descriptors`]; the hard one stays.
const FD_LIMIT: u32 = 48;
/// Reflected connections held open there (two sockets each).
const FD_HELD: usize = 4;

/// The lowest file descriptor number `pid` does not use: the next one it opens. With the
/// soft `RLIMIT_NOFILE` at this number, opening anything fails with `EMFILE`.
fn lowest_free_fd(pid: u32) -> u32 {
    let dir = format!("/proc/{pid}/fd");
    let used: HashSet<u32> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // Of the numbers up to how many there are, one is free.
    let count = u32::try_from(used.len()).expect("fewer than 2^32 descriptors");
    (0..=count)
        .find(|fd| !used.contains(fd))
        .expect("one number up to the count is free")
}

/// Sets the soft `RLIMIT_NOFILE` of the running process `pid` to `soft` (hard: [`FD_LIMIT`]).
fn set_fd_limit(pid: u32, soft: u32) {
    command::run(Command::new("prlimit").args([
        "--pid",
        &pid.to_string(),
        &format!("--nofile={soft}:{FD_LIMIT}"),
    ]));
}

/// The CPU time `pid` used so far, all threads, user and system (`/proc/<pid>/stat`).
fn cpu_time(pid: u32) -> Duration {
    /// `USER_HZ`, the unit of the times in `/proc/<pid>/stat`: 100 on every architecture.
    const TICKS_PER_SECOND: u64 = 100;
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    // After the command name in parentheses: field 3 (state) onwards; utime and stime are
    // fields 14 and 15.
    let (_, fields) = stat
        .rsplit_once(')')
        .unwrap_or_else(|| panic!("{path}: {stat:?}"));
    let ticks: u64 = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| {
            field
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("{path}: {field:?}: {e}"))
        })
        .sum();
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// Starts the daemon in splice mode on `topology` through `prlimit --nofile=48:48`
/// ([`FD_LIMIT`]) and checks that the process is the daemon itself (prlimit execs it).
fn start_with_fd_limit(topology: &Topology) -> Reflector {
    let args = daemon_args(topology, Mode::Splice, &[map_arg(TCP_MAP, "tcp")], &[]);
    let limit = format!("--nofile={FD_LIMIT}:{FD_LIMIT}");
    let binary = daemon::binary();
    let mut cmd = topology
        .r()
        .command(&["prlimit", &limit, "--", &binary.to_string_lossy()]);
    cmd.args(&args).env("RUST_LOG", "info");
    let reflector = Reflector::start_command(&mut cmd);
    let pid = reflector.pid();
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    let binary = fs::canonicalize(binary).expect("the reflector binary's canonical path");
    assert_eq!(exe, binary, "process {pid} must be the reflector binary");
    reflector
}

/// Watches the daemon, out of file descriptors with a client waiting, for a second: it must
/// stay alive and back off rather than retry accepting at once (which would burn a CPU).
fn assert_backs_off(reflector: &mut Reflector) {
    let pid = reflector.pid();
    let (cpu_before, since) = (cpu_time(pid), Instant::now());
    thread::sleep(Duration::from_secs(1));
    let (cpu, wall) = (cpu_time(pid).saturating_sub(cpu_before), since.elapsed());
    assert!(
        reflector.is_running(),
        "the reflector died out of file descriptors; its log:\n{}",
        reflector.log()
    );
    assert!(
        cpu < wall / 4,
        "out of file descriptors, the reflector used {cpu:?} of CPU in {wall:?}: it must back \
         off, not retry accepting at once"
    );
}

/// Once descriptors were freed: tries exchanges from `x` to `to` until one is
/// reflected (the service in X sees `r`) within 10 s; until then the daemon may still be
/// short of descriptors and reset clients. Returns how many were reset.
fn reflected_again(x: &Netns, to: SocketAddr, r: IpAddr, reflector: &Reflector) -> usize {
    let mut resets = 0;
    let recovered = poll_until(Duration::from_secs(10), || {
        match try_tcp_line(x, to, "after") {
            Ok((local, reply)) => {
                let (peer, _, echoed) = parse_peer_reply(&reply);
                assert_eq!((peer, echoed), (r, "after"), "{local} -> {to}: {reply:?}");
                true
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                    "a client the reflector has no descriptor for must be reset, not: {e}"
                );
                resets += 1;
                false
            }
        }
    });
    assert!(
        recovered,
        "10 s after the held connections closed, new clients were still reset ({resets} \
         resets); the reflector's log:\n{}",
        reflector.log()
    );
    resets
}

/// Started under `prlimit --nofile=48:48`, the daemon holds reflected connections and then
/// runs out of file descriptors (its soft limit lowered to exactly what it uses). A new
/// client then waits in the backlog, unaccepted, while the daemon backs off (stays alive,
/// does not spin) and the held connections keep working; with one descriptor free, clients
/// are accepted but reset (no socket for the connect-back), counted as `resources`. Once the
/// held connections close, clients are reflected again and no descriptor is left behind.
#[test]
fn daemon_survives_running_out_of_file_descriptors() {
    require_tool("prlimit", "util-linux");
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let r = topology.r_addr(Family::V4);
    let to = SocketAddr::new(r, listen);
    let _service = session_service(x, Session::Lines, Family::V4, target);
    let mut reflector = start_with_fd_limit(&topology);
    let pid = reflector.pid();
    let baseline = open_fds(pid);

    let mut held: Vec<TcpStream> = (0..FD_HELD)
        .map(|i| {
            let stream = tcp_connect(x, None, to);
            assert_line(&stream, r, &format!("held{i}"));
            stream
        })
        .collect();
    let exhausted = lowest_free_fd(pid);
    assert!(
        exhausted < FD_LIMIT,
        "with {FD_HELD} connections the reflector uses descriptors up to {exhausted}, at its \
         limit of {FD_LIMIT} already:\n{}",
        open_fds(pid).join("\n")
    );
    eprintln!(
        "the reflector had {} descriptors open after start; with {FD_HELD} connections held, \
         {exhausted} is the lowest free one and its soft limit",
        baseline.len()
    );
    set_fd_limit(pid, exhausted);

    // R's kernel completes the handshake (the backlog); the daemon cannot accept.
    let waiting = tcp_connect(x, None, to);
    (&waiting)
        .write_all(b"waiting\n")
        .unwrap_or_else(|e| panic!("send on the waiting client: {e}"));
    wait_until(
        "the reflector's warning that accepting fails for lack of file descriptors",
        Duration::from_secs(5),
        || {
            reflector.log().lines().any(|line| {
                line.contains("accepting on port") && line.contains("Too many open files")
            })
        },
    );
    assert_backs_off(&mut reflector);
    assert_pending(&waiting);
    for (i, stream) in held.iter().enumerate() {
        assert_line(stream, r, &format!("held{i} out of descriptors"));
    }

    // One free: the waiting client is accepted, the connect-back gets no socket.
    set_fd_limit(pid, exhausted + 1);
    expect_reset(&waiting, IO_TIMEOUT);
    connect_expecting_reset(x, to, IO_TIMEOUT);
    assert!(
        reflector.is_running(),
        "the reflector died when a connect-back had no descriptor; its log:\n{}",
        reflector.log()
    );

    // The daemon notices the closes asynchronously: until it has, a new client is reset
    // (and counted) like the last one.
    held.clear();
    let resets = reflected_again(x, to, r, &reflector);
    let mut now = Vec::new();
    let settled = poll_until(Duration::from_secs(10), || {
        now = open_fds(pid);
        now.len() == baseline.len()
    });
    assert!(
        settled,
        "with every connection closed, the reflector has {} file descriptors open, {} when it \
         was idle after start\n--- now ---\n{}\n--- after start ---\n{}",
        now.len(),
        baseline.len(),
        now.join("\n"),
        baseline.join("\n")
    );
    let summary = stop_for_summary(reflector);
    // The held ones, the waiting one, the one reset at once, the resets, the last one.
    let accepted = FD_HELD + 2 + resets + 1;
    assert_counted(&summary, &format!("tcp {accepted} accepted, 0 active"));
    assert_counted(&summary, &format!("resources {}", 2 + resets));
}

/// A service that accepts, reads the request and resets the connection (`SO_LINGER` 0):
/// the client, connected through `R:L`, is reset too, not closed cleanly (end of file would
/// tell a health check that the service answered and finished).
#[test]
fn service_reset_reaches_the_client() {
    let topology = Topology::for_mode(Mode::Splice);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let _services = [Family::V4, Family::V6].map(|f| session_service(x, Session::Reset, f, target));
    let reflector = start(&topology, Mode::Splice, &[map_arg(TCP_MAP, "tcp")], &[]);
    for family in [Family::V4, Family::V6] {
        let to = SocketAddr::new(topology.r_addr(family), listen);
        let stream = tcp_connect(x, None, to);
        (&stream)
            .write_all(b"request\n")
            .unwrap_or_else(|e| panic!("TCP send to {to}: {e}"));
        expect_reset(&stream, IO_TIMEOUT);
    }
    let summary = stop_for_summary(reflector);
    // The connect-backs succeeded: the resets came from the service, through the relay.
    assert_counted(
        &summary,
        "tcp 2 accepted, 0 active, 0 connect-back failures",
    );
}

/// `--mode auto` where bpf(2) fails with `EPERM` (a seccomp filter, as a container runtime
/// would install): the daemon says why it skipped the kernel modes, reflects with splice,
/// and attaches nothing.
#[test]
fn auto_falls_back_to_splice_when_bpf_is_denied() {
    let topology = Topology::for_mode(Mode::Auto);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let _services = [Family::V4, Family::V6].map(|f| peer_service(x, Proto::Tcp, f, target));
    let args = daemon_args(&topology, Mode::Auto, &[map_arg(TCP_MAP, "tcp")], &[]);
    let mut cmd = daemon::command(topology.r(), &daemon::binary(), &as_strs(&args));
    seccomp::deny_bpf(&mut cmd);
    let reflector = Reflector::start_command(&mut cmd);
    let log = reflector.log();
    assert_splice_on(&topology, &log);
    assert!(
        log.lines().any(|line| line.contains("skipped")
            && (line.contains("EPERM") || line.contains("Operation not permitted"))),
        "the reflector must say it skipped the kernel modes because bpf(2) failed with EPERM; \
         its log:\n{log}"
    );
    assert_nothing_attached(topology.r(), topology.r_iface());
    assert_splice_reflects_tcp(&topology, listen, "seccomp");
    let (status, log) = reflector.stop();
    assert_eq!(status.code(), Some(0), "exit on SIGTERM; log:\n{log}");
    assert_nothing_attached(topology.r(), topology.r_iface());
}

/// TCP over both families from X to `R:listen` takes the splice path.
fn assert_splice_reflects_tcp(topology: &Topology, listen: u16, tag: &str) {
    for family in [Family::V4, Family::V6] {
        assert_reflected(topology, Path::Splice, Proto::Tcp, family, listen, tag);
    }
}

/// Run as nobody (no capabilities at all), `--mode auto --map 10022:22` falls back to
/// splice and reflects.
#[test]
fn unprivileged_auto_falls_back_to_splice() {
    require_tool("setpriv", "util-linux");
    let topology = Topology::for_mode(Mode::Auto);
    let (x, (listen, target)) = (topology.x(), TCP_MAP);
    let _services = [Family::V4, Family::V6].map(|f| peer_service(x, Proto::Tcp, f, target));
    // nobody may not be able to reach the build tree: a copy it can run.
    let dir = TempDir::new("bin");
    let bin = dir.join("reflector");
    fs::copy(daemon::binary(), &bin).unwrap_or_else(|e| panic!("copy the reflector: {e}"));
    for path in [dir.path(), bin.as_path()] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod 755 {}: {e}", path.display()));
    }
    let args = daemon_args(&topology, Mode::Auto, &[format!("{listen}:{target}")], &[]);
    let mut cmd = topology.r().command(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        &bin.to_string_lossy(),
    ]);
    cmd.args(&args).env("RUST_LOG", "info");
    let reflector = Reflector::start_command(&mut cmd);

    let pid = reflector.pid();
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let uids: Vec<&str> = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .map(|uids| uids.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        uids, ["65534"; 4],
        "the reflector (pid {pid}) must run as nobody:\n{status}"
    );
    assert_splice_on(&topology, &reflector.log());
    assert_nothing_attached(topology.r(), topology.r_iface());
    assert_splice_reflects_tcp(&topology, listen, "nobody");
    let (status, log) = reflector.stop();
    assert_eq!(status.code(), Some(0), "exit on SIGTERM; log:\n{log}");
}

/// In `mode`, the daemon also listens on the mapped ports: from R itself, `127.0.0.1:L` and
/// `[::1]:L` (TCP and UDP) reach R's own service on `P`, which sees the loopback address as
/// its peer; X's traffic still takes `mode`'s path.
fn loopback_reaches_own_service(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, (listen, target)) = (topology.r(), TCP_MAP);
    let mut services = Vec::new();
    for family in [Family::V4, Family::V6] {
        for proto in [Proto::Tcp, Proto::Udp] {
            services.push(peer_service(r, proto, family, target));
        }
    }
    services.push(peer_service(topology.x(), Proto::Tcp, Family::V4, target));
    let _reflector = start(&topology, mode, &[map_arg(TCP_MAP, "tcp,udp")], &[]);
    for loopback in [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ] {
        let to = SocketAddr::new(loopback, listen);
        let (local, reply) = client::tcp_line(r, to, "loop-tcp");
        let (peer, _, echoed) = parse_peer_reply(&reply);
        assert_eq!(
            (peer, echoed),
            (loopback, "loop-tcp"),
            "TCP {local} -> {to} in R ({}): R's own service on {target} must answer, seeing \
             {loopback} (reply {reply:?})",
            mode.as_arg()
        );
        let (local, from, reply) = client::udp_exchange(r, loopback, to, "loop-udp");
        assert_eq!(from, to, "the UDP reply to {local} must come from {to}");
        let (peer, _, echoed) = parse_peer_reply(&reply);
        assert_eq!(
            (peer, echoed),
            (loopback, "loop-udp"),
            "UDP {local} -> {to} in R ({}): R's own service on {target} must answer, seeing \
             {loopback} (reply {reply:?})",
            mode.as_arg()
        );
    }
    assert_reflected(
        &topology,
        Path::of(mode),
        Proto::Tcp,
        Family::V4,
        listen,
        "from-x",
    );
}

#[test]
fn loopback_reaches_own_service_tc() {
    loopback_reaches_own_service(Mode::Tc);
}

#[test]
fn loopback_reaches_own_service_xdp_skb() {
    loopback_reaches_own_service(Mode::XdpSkb);
}

#[test]
fn loopback_reaches_own_service_splice() {
    loopback_reaches_own_service(Mode::Splice);
}

/// The daemon given `flag value` exits 2 (a usage error) with a message naming the flag,
/// without starting.
fn rejects_flag_value(flag: &str, value: &str) {
    let topology = Topology::for_mode(Mode::Splice);
    let args = daemon_args(
        &topology,
        Mode::Splice,
        &[map_arg(TCP_MAP, "tcp")],
        &[flag, value],
    );
    let output = daemon::run_to_exit(topology.r(), &as_strs(&args));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "reflector {args:?} must exit 2, a usage error ({})\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains(flag),
        "the error of reflector {args:?} must name {flag}\n--- stderr ---\n{stderr}"
    );
    assert!(
        !has_ready_line(&stderr),
        "reflector {args:?} logged `ready`:\n{stderr}"
    );
}

#[test]
fn rejects_connect_timeout_banana() {
    rejects_flag_value("--connect-timeout", "banana");
}

#[test]
fn rejects_idle_timeout_without_unit() {
    rejects_flag_value("--idle-timeout", "10");
}

#[test]
fn rejects_udp_idle_timeout_banana() {
    rejects_flag_value("--udp-idle-timeout", "banana");
}

#[test]
fn rejects_max_conns_zero() {
    rejects_flag_value("--max-conns", "0");
}

#[test]
fn rejects_max_udp_flows_zero() {
    rejects_flag_value("--max-udp-flows", "0");
}

#[test]
fn rejects_max_conns_not_a_number() {
    rejects_flag_value("--max-conns", "many");
}
