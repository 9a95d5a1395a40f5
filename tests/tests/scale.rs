//! The userspace path (splice) at scale (issue 11): many reflected TCP connections held at
//! once, and as many UDP flows. Every connection stays intact (a line exchanged on each
//! after all are open), the daemon's memory per connection is measured, and its file
//! descriptors come back to what it had after start once everything is closed.
//!
//! `REFLECTOR_SCALE` sets how many (default 1,000, what CI runs); the 10,000:
//! `REFLECTOR_SCALE=10000 cargo xtask test -- scale_` (about a minute). The measured figures
//! are printed (`cargo test ... -- --nocapture` shows them).
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use reflector_tests::client::{tcp_connect, udp_socket};
use reflector_tests::process::open_fds;
use reflector_tests::reflection::map_arg;
use reflector_tests::servers::{Session, parse_peer_reply, peer_service, session_service};
use reflector_tests::wait::poll_until;
use reflector_tests::{Family, Mode, Proto, Reflector, Topology};

/// `L` and `P`.
const MAP: (u16, u16) = (10_022, 22);
/// Connections and flows when `REFLECTOR_SCALE` is not set.
const DEFAULT_SCALE: usize = 1_000;
/// How long the daemon may take to close everything after the clients did.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(90);
/// `--udp-idle-timeout` here, in seconds: longer than setting up every flow takes (about a
/// millisecond each), so all are alive at once; short, so they are soon forgotten after.
fn udp_idle_seconds(n: usize) -> usize {
    5 + n / 500
}

fn scale() -> usize {
    std::env::var("REFLECTOR_SCALE")
        .ok()
        .map_or(DEFAULT_SCALE, |text| {
            text.parse()
                .unwrap_or_else(|e| panic!("REFLECTOR_SCALE={text:?}: {e}"))
        })
}

/// This process's own soft limit on open files, raised to the hard one: it holds `scale()`
/// client sockets.
fn raise_own_fd_limit() {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit to the hard limit");
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Sends `line` on `stream` and reads the service's answer `<peer ip> <peer port> <line>`
/// (read byte by byte up to its newline: no buffered reader, so no second descriptor per
/// connection in this process).
fn exchange(stream: &TcpStream, line: &str) -> String {
    (&*stream)
        .write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{line}: send: {e}"));
    let mut reply = Vec::new();
    let mut byte = [0_u8; 1];
    // Bounded: a reply longer than this is wrong anyway.
    while reply.len() < 256 {
        match (&*stream).read(&mut byte) {
            Ok(0) => panic!("{line}: closed after {:?}", String::from_utf8_lossy(&reply)),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => reply.push(byte[0]),
            Err(e) => panic!("{line}: receive: {e}"),
        }
    }
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (_, _, echoed) = parse_peer_reply(&reply);
    echoed.to_owned()
}

fn start(topology: &Topology, n: usize) -> Reflector {
    let max = (n + 100).to_string();
    let maps = map_arg(MAP, "tcp,udp");
    Reflector::start_with_args(
        topology.r(),
        &[
            "--map",
            &maps,
            "--iface",
            topology.r_iface(),
            "--mode",
            "splice",
            "--max-conns",
            &max,
            "--max-udp-flows",
            &max,
            "--udp-idle-timeout",
            &format!("{}s", udp_idle_seconds(n)),
        ],
    )
}

/// Waits until the daemon `pid` is back to `baseline` descriptors.
fn assert_fds_back(pid: u32, baseline: &[String], what: &str) {
    let mut now = Vec::new();
    let settled = poll_until(SETTLE_TIMEOUT, || {
        now = open_fds(pid);
        now.len() <= baseline.len()
    });
    assert!(
        settled,
        "after {what}, the reflector has {} descriptors open, {} after start",
        now.len(),
        baseline.len()
    );
}

#[test]
fn scale_tcp_connections_held() {
    raise_own_fd_limit();
    let n = scale();
    let topology = Topology::for_mode(Mode::Splice);
    let _service = session_service(topology.x(), Session::Lines, Family::V4, MAP.1);
    let reflector = start(&topology, n);
    let pid = reflector.pid();
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid));
    let to = SocketAddr::new(topology.r_addr(Family::V4), MAP.0);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let stream = tcp_connect(topology.x(), None, to);
        let echoed = exchange(&stream, &format!("open {i}"));
        assert_eq!(echoed, format!("open {i}"), "connection {i} on opening");
        held.push(stream);
    }
    let (fds_held, rss_held) = (open_fds(pid).len(), rss_kib(pid));
    // Every connection intact, all of them open at once.
    for (i, stream) in held.iter().enumerate() {
        let echoed = exchange(stream, &format!("held {i}"));
        assert_eq!(echoed, format!("held {i}"), "connection {i}, with {n} held");
    }
    let per_connection = (rss_held.saturating_sub(rss_before) * 1024) / n as u64;
    println!(
        "{n} TCP connections held through splice: daemon RSS {rss_before} KiB -> {rss_held} \
         KiB ({per_connection} bytes per connection), descriptors {} -> {fds_held}",
        fds_before.len()
    );
    drop(held);
    assert_fds_back(pid, &fds_before, &format!("{n} TCP connections closed"));
    reflector.stop_cleanly();
}

#[test]
fn scale_udp_flows() {
    raise_own_fd_limit();
    let n = scale();
    let topology = Topology::for_mode(Mode::Splice);
    let _service = peer_service(topology.x(), Proto::Udp, Family::V4, MAP.1);
    let reflector = start(&topology, n);
    let pid = reflector.pid();
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid));
    let to = SocketAddr::new(topology.r_addr(Family::V4), MAP.0);
    let x_addr = topology.x_addr(Family::V4);
    let clients: Vec<UdpSocket> = (0..n).map(|_| udp_socket(topology.x(), x_addr)).collect();
    for (i, client) in clients.iter().enumerate() {
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        client
            .send_to(format!("flow {i}").as_bytes(), to)
            .unwrap_or_else(|e| panic!("flow {i}: {e}"));
        let mut buffer = [0_u8; 256];
        let (len, from) = client
            .recv_from(&mut buffer)
            .unwrap_or_else(|e| panic!("flow {i}: no reply: {e}"));
        let reply = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let (_, _, echoed) = parse_peer_reply(&reply);
        assert_eq!(
            (echoed, from),
            (format!("flow {i}").as_str(), to),
            "flow {i}"
        );
    }
    let (fds_held, rss_held) = (open_fds(pid).len(), rss_kib(pid));
    // Every flow intact, all of them alive at once.
    for (i, client) in clients.iter().enumerate() {
        let message = format!("again {i}");
        client
            .send_to(message.as_bytes(), to)
            .unwrap_or_else(|e| panic!("flow {i}: {e}"));
        let mut buffer = [0_u8; 256];
        let (len, _) = client
            .recv_from(&mut buffer)
            .unwrap_or_else(|e| panic!("flow {i}, with {n} alive: no reply: {e}"));
        let reply = String::from_utf8_lossy(&buffer[..len]).into_owned();
        assert_eq!(
            parse_peer_reply(&reply).2,
            message,
            "flow {i}, with {n} alive"
        );
    }
    assert!(
        fds_held >= fds_before.len() + n,
        "{n} UDP flows at once take a socket each: {fds_held} descriptors, {} after start",
        fds_before.len()
    );
    let per_flow = (rss_held.saturating_sub(rss_before) * 1024) / n as u64;
    println!(
        "{n} UDP flows through splice: daemon RSS {rss_before} KiB -> {rss_held} KiB \
         ({per_flow} bytes per flow), descriptors {} -> {fds_held}",
        fds_before.len()
    );
    drop(clients);
    let idle = udp_idle_seconds(n);
    assert_fds_back(
        pid,
        &fds_before,
        &format!("{n} UDP flows idle for {idle} s"),
    );
    reflector.stop_cleanly();
}
