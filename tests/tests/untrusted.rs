//! End-to-end tests of reflector on an untrusted network (issue 13), across network
//! namespaces with real clients and servers:
//!
//! - **Allow-list**, in every mode (xdp, xdp-skb, tc, splice): X has a second address; with
//!   `--allow` naming only X's first, a TCP or UDP exchange from the first is reflected and
//!   one from the second gets nothing through (the kernel drops it: no answer at all; the
//!   userspace path resets a TCP client at accept and drops a datagram), counted as
//!   `source_not_allowed`. `reflector allow add` of the second address lets it through,
//!   `allow del` stops it again.
//! - **Rate limits under a spoofed flood**: from X, a bounded flood of UDP datagrams with
//!   forged sources (raw IP socket, sources in 198.18.0.0/15, which nothing routes: the
//!   reflected datagrams go back to X, which drops them) against small limits: sources in
//!   one /24 are held to its prefix's bucket while an allowed client in another prefix
//!   keeps its checks passing; sources over 512 prefixes are held to the global bucket.
//!   The counters (and metrics) show what was reflected and what was dropped as
//!   `rate_limited`.
//! - **Loop guard**: two reflectors aimed at each other (R, and X running a second daemon),
//!   each with the map `8080:8080/udp`, and one forged datagram; it is reflected at most 4
//!   times in all (TTL 64 and 255, IPv4 and IPv6) and the guard counts `loop_detected`,
//!   while a legitimate TCP client through R, retransmitted SYN included, is unaffected.
//!   The same bound holds where the kernel's guard cannot see the loop: a forged datagram
//!   with TTL 1 (passed to the hybrid listener, which relays it with a fresh TTL), and a
//!   userspace (splice) reflector facing a splice or a TC one (each relay a new flow with
//!   a fresh TTL).
//!
//! Every test builds its own topology, so they run in parallel. They need root, the daemon
//! binary (`$REFLECTOR_BIN`, else `target/<profile>/reflector`), python3 and nft.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use reflector_tests::client::{try_tcp_line_within, udp_socket, udp_try_exchange};
use reflector_tests::control_socket::{ControlSocket, Stats};
use reflector_tests::framegen::Rng;
use reflector_tests::packets::Frame;
use reflector_tests::raw::RawSender;
use reflector_tests::reflection::{Path, assert_reflected, map_arg};
use reflector_tests::servers::{parse_peer_reply, peer_service};
use reflector_tests::wait::poll_until;
use reflector_tests::{
    Family, Mode, Netns, Process, Proto, Reflector, Topology, in_netns, require_tool,
};
use socket2::{Domain, Protocol, Socket, Type};

/// `L` and `P` of the TCP exchanges.
const TCP_MAP: (u16, u16) = (10_022, 22);
/// `L` and `P` of the UDP exchanges, and of the spoofed flood.
const UDP_MAP: (u16, u16) = (10_053, 53);
/// Both families, in the order the tests go through them.
const FAMILIES: [Family; 2] = [Family::V4, Family::V6];
/// Host number of X's second address (X is 1, R is 2).
const OTHER_HOST: u8 = 3;
/// How long an exchange that must get nothing through is given: a kernel drop shows as a
/// connect (or a datagram) with no answer in this time.
const REFUSED_WAIT: Duration = Duration::from_secs(2);
/// How long each step of an exchange that must succeed may take.
const EXCHANGE_WAIT: Duration = Duration::from_secs(3);
/// Attempts of an exchange that must succeed (UDP may lose a datagram; a health checker
/// retries too).
const ATTEMPTS: usize = 3;
/// How long a counter may take to show what just happened (the userspace path counts a
/// refusal after its accept).
const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// The drop reason of a source outside the allow-list.
const SOURCE_NOT_ALLOWED: &str = "source_not_allowed";
/// The drop reason of a new flow over a rate limit.
const RATE_LIMITED: &str = "rate_limited";
/// The drop reason of a packet that went round a loop of reflectors.
const LOOP_DETECTED: &str = "loop_detected";

/// `<addr>/32` or `<addr>/128`: exactly that address.
fn host_prefix(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(_) => format!("{addr}/32"),
        IpAddr::V6(_) => format!("{addr}/128"),
    }
}

/// One exchange from `from` in `ns` to `to`: TCP (connect, send a line, read one back) or
/// UDP (send a datagram, receive one, which must come from `to`), every step within
/// `wait`. Returns the local address and the reply.
fn exchange(
    ns: &Netns,
    proto: Proto,
    from: IpAddr,
    to: SocketAddr,
    message: &str,
    wait: Duration,
) -> io::Result<(SocketAddr, String)> {
    match proto {
        Proto::Tcp => try_tcp_line_within(ns, Some(from), to, message, wait),
        Proto::Udp => {
            let socket = udp_socket(ns, from);
            let local = socket.local_addr()?;
            let (source, reply) = udp_try_exchange(&socket, to, message, wait)?;
            if source != to {
                return Err(io::Error::other(format!(
                    "a datagram from {source}, not from {to}: {reply:?}"
                )));
            }
            Ok((local, reply))
        }
    }
}

/// Whether `e` is what a client sees when its packets are dropped: no answer in time.
fn is_no_answer(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Whether `e` is what a TCP client sees when the peer accepts and closes at once.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

/// An exchange from `from` in X to `R:L` (of `proto`'s map) reaches X's own service on `P`,
/// which sees R's address as its peer (and the client's port on the kernel path); up to
/// [`ATTEMPTS`] tries. Returns how many tries it took.
fn assert_reflected_from(
    topology: &Topology,
    path: Path,
    proto: Proto,
    from: IpAddr,
    tag: &str,
) -> usize {
    let family = if from.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let r = topology.r_addr(family);
    let listen = match proto {
        Proto::Tcp => TCP_MAP.0,
        Proto::Udp => UDP_MAP.0,
    };
    let to = SocketAddr::new(r, listen);
    let message = format!("{tag}-{}", topology.id());
    let mut failures = Vec::new();
    for attempt in 1..=ATTEMPTS {
        match exchange(topology.x(), proto, from, to, &message, EXCHANGE_WAIT) {
            Ok((local, reply)) => {
                let (peer_ip, peer_port, echoed) = parse_peer_reply(&reply);
                assert!(
                    peer_ip == r
                        && echoed == message
                        && (path == Path::Splice || peer_port == local.port()),
                    "{proto} {local} -> {to}: the service in X must see the reflector ({r}) as \
                     its peer{} and get the message (reply {reply:?})",
                    if path == Path::Kernel {
                        ", with the client's port"
                    } else {
                        ""
                    }
                );
                return attempt;
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    panic!("{proto} from {from} to {to}: not reflected in {ATTEMPTS} tries: {failures:?}")
}

/// An exchange from `from` in X to `R:L` gets nothing through: on the kernel path no
/// answer at all (dropped, so not even a reset); on the userspace path a TCP client is
/// closed (reset at accept) without a reply, and a datagram gets no answer.
fn assert_refused_from(topology: &Topology, path: Path, proto: Proto, from: IpAddr) {
    let family = if from.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    let listen = match proto {
        Proto::Tcp => TCP_MAP.0,
        Proto::Udp => UDP_MAP.0,
    };
    let to = SocketAddr::new(topology.r_addr(family), listen);
    let outcome = exchange(topology.x(), proto, from, to, "refused", REFUSED_WAIT);
    let expected = match (path, proto) {
        (Path::Splice, Proto::Tcp) => "closed (reset at accept)",
        _ => "no answer (dropped)",
    };
    match outcome {
        Ok((local, reply)) => panic!(
            "{proto} {local} -> {to}: {from} is not allowed, yet the exchange got through \
             (reply {reply:?})"
        ),
        Err(e) if expected.starts_with("closed") && is_closed(&e) => {}
        Err(e) if expected.starts_with("no answer") && is_no_answer(&e) => {}
        Err(e) => panic!("{proto} from {from} to {to}: {e}, where {expected} was expected"),
    }
}

/// Refusals of `source_not_allowed` so far where `path` counts them: the kernel's drops,
/// or the userspace path's refusals.
fn not_allowed(stats: &Stats, path: Path) -> u64 {
    match path {
        Path::Kernel => stats.dropped(SOURCE_NOT_ALLOWED),
        Path::Splice => {
            stats.splice_refused("tcp", SOURCE_NOT_ALLOWED)
                + stats.splice_refused("udp", SOURCE_NOT_ALLOWED)
        }
    }
}

/// Waits until the refusals counted on `path` reach `at_least`; returns the count.
fn wait_not_allowed(control: &ControlSocket, path: Path, at_least: u64) -> u64 {
    let mut count = 0;
    poll_until(COUNT_TIMEOUT, || {
        count = not_allowed(&control.stats(), path);
        count >= at_least
    });
    count
}

/// Adds X's second address of `family` ([`OTHER_HOST`]) and returns it. An IPv6 one is
/// added deprecated (`preferred_lft 0`): Linux picks the newest preferred IPv6 address as
/// the source of what a service bound to `::` sends, so a UDP service would otherwise
/// answer a datagram to the first address from the second (which no flow knows); a
/// socket bound to the deprecated address still uses it.
fn second_address(topology: &Topology, family: Family) -> IpAddr {
    let addr = topology.add_x_addr(family, OTHER_HOST);
    if family == Family::V6 {
        topology.x().ip(&[
            "-6",
            "addr",
            "change",
            &format!("{addr}/64"),
            "dev",
            topology.x_iface(),
            "preferred_lft",
            "0",
            "nodad",
        ]);
    }
    addr
}

/// The UDP peer-address service (`<peer ip> <peer port> <datagram>`, as
/// [`peer_service`]'s) bound to one address: what it sends leaves from that address. The
/// wildcard service on the same port (both with `SO_REUSEADDR`) answers datagrams to X's
/// other addresses from X's first one, which no flow of theirs knows. Runs in a thread,
/// stopped (within [`AddressedUdpService::POLL`]) on drop.
struct AddressedUdpService {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl AddressedUdpService {
    /// How often the thread looks at its stop flag.
    const POLL: Duration = Duration::from_millis(100);

    fn start(ns: &Netns, addr: IpAddr, port: u16) -> Self {
        let at = SocketAddr::new(addr, port);
        let socket = in_netns(ns, || {
            let socket = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
            socket.set_reuse_address(true)?;
            if at.is_ipv6() {
                socket.set_only_v6(true)?;
            }
            socket.bind(&at.into())?;
            socket.set_read_timeout(Some(Self::POLL))?;
            Ok::<_, io::Error>(UdpSocket::from(socket))
        })
        .unwrap_or_else(|e| panic!("UDP service on {at} in {}: {e}", ns.name()));
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut buffer = [0_u8; 2048];
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((len, peer)) = socket.recv_from(&mut buffer) {
                    let mut reply = format!("{} {} ", peer.ip(), peer.port()).into_bytes();
                    reply.extend_from_slice(&buffer[..len]);
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for AddressedUdpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The arguments every daemon in R here starts with: both maps, the interface, `mode`,
/// `control` and metrics.
fn daemon_args(topology: &Topology, mode: Mode, control: &ControlSocket) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--map".into(),
        map_arg(TCP_MAP, "tcp"),
        "--map".into(),
        map_arg(UDP_MAP, "udp"),
        "--iface".into(),
        topology.r_iface().into(),
        "--mode".into(),
        mode.as_arg().into(),
    ];
    args.extend(control.daemon_args());
    args.extend(["--metrics".into(), METRICS.into()]);
    args
}

/// Starts the daemon in R in `mode` with both maps, `control`, metrics, and `--allow` for
/// exactly the addresses `allowed`.
fn start_allowing(
    topology: &Topology,
    mode: Mode,
    control: &ControlSocket,
    allowed: &[IpAddr],
) -> Reflector {
    let mut args = daemon_args(topology, mode, control);
    for addr in allowed {
        args.extend(["--allow".into(), host_prefix(*addr)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Reflector::start_with_args(topology.r(), &args)
}

/// The refusals as reported: on the kernel path none reached the hybrid listener (the
/// kernel drops, it does not pass), and the metric counts what `reflector stats` counts.
fn assert_refusals_reported(topology: &Topology, control: &ControlSocket, path: Path) {
    let stats = control.stats();
    if path == Path::Kernel {
        let seen = stats.splice_refused("tcp", SOURCE_NOT_ALLOWED)
            + stats.splice_refused("udp", SOURCE_NOT_ALLOWED);
        assert_eq!(
            seen, 0,
            "the kernel drops a source outside the allow-list: the hybrid listener must \
             never see one (it did: the kernel passed it): {:?}",
            stats.0
        );
    }
    let (series, counted) = match path {
        Path::Kernel => (
            format!("reflector_dropped_packets_total{{reason=\"{SOURCE_NOT_ALLOWED}\"}}"),
            stats.dropped(SOURCE_NOT_ALLOWED),
        ),
        Path::Splice => (
            format!(
                "reflector_splice_refused_total{{protocol=\"tcp\",reason=\"{SOURCE_NOT_ALLOWED}\"}}"
            ),
            stats.splice_refused("tcp", SOURCE_NOT_ALLOWED),
        ),
    };
    assert_eq!(
        metric_value(topology.r(), &series),
        counted,
        "`{series}` must count what `reflector stats` counts"
    );
}

/// `--allow` naming X's first addresses only: X's second ones get nothing through, in
/// `mode`, TCP and UDP, both families, and are counted; a runtime `allow add` lets them
/// through and `allow del` stops them again. On the kernel path the hybrid listener never
/// sees a refused client (the kernel drops, it does not pass).
fn allow_list(mode: Mode) {
    let path = Path::of(mode);
    let topology = Topology::for_mode(mode);
    let x = topology.x();
    let _services: Vec<Process> = FAMILIES
        .iter()
        .flat_map(|&family| {
            [
                peer_service(x, Proto::Tcp, family, TCP_MAP.1),
                peer_service(x, Proto::Udp, family, UDP_MAP.1),
            ]
        })
        .collect();
    let firsts = FAMILIES.map(|family| topology.x_addr(family));
    let others = FAMILIES.map(|family| second_address(&topology, family));
    let _other_services = others.map(|other| AddressedUdpService::start(x, other, UDP_MAP.1));
    let control = ControlSocket::new();
    let reflector = start_allowing(&topology, mode, &control, &firsts);

    let every_exchange = || {
        FAMILIES
            .iter()
            .enumerate()
            .flat_map(|(i, _)| [(i, Proto::Tcp), (i, Proto::Udp)])
    };
    let refused_round = |round: &str| {
        let before = not_allowed(&control.stats(), path);
        for (i, proto) in every_exchange() {
            assert_reflected_from(&topology, path, proto, firsts[i], round);
            assert_refused_from(&topology, path, proto, others[i]);
        }
        // At least one packet (a SYN, retransmitted within the wait or not; a datagram)
        // or one refused connection per refused exchange.
        let refusals = FAMILIES.len() as u64 * 2;
        let after = wait_not_allowed(&control, path, before + refusals);
        assert!(
            after >= before + refusals,
            "{round}: {refusals} exchanges from outside the allow-list must be counted as \
             {SOURCE_NOT_ALLOWED} ({}): {before} before, {after} after",
            match path {
                Path::Kernel => "kernel drops",
                Path::Splice => "userspace refusals",
            }
        );
        eprintln!("{round}: {} refusals counted", after - before);
    };

    refused_round("start");

    for other in others {
        control.ok(&["allow", "add", &host_prefix(other)]);
    }
    let listed = control.ok(&["allow", "list"]);
    for prefix in firsts.iter().chain(&others).map(|addr| host_prefix(*addr)) {
        assert!(
            listed.contains(&prefix),
            "`reflector allow list` must list {prefix}:\n{listed}"
        );
    }
    for (i, proto) in every_exchange() {
        assert_reflected_from(&topology, path, proto, firsts[i], "added-first");
        assert_reflected_from(&topology, path, proto, others[i], "added-other");
    }

    for other in others {
        control.ok(&["allow", "del", &host_prefix(other)]);
    }
    let listed = control.ok(&["allow", "list"]);
    for other in others {
        assert!(
            !listed.contains(&host_prefix(other)),
            "`reflector allow list` must no longer list {}:\n{listed}",
            host_prefix(other)
        );
    }
    refused_round("deleted");
    assert_refusals_reported(&topology, &control, path);
    reflector.stop_cleanly();
}

/// Where the daemons of these tests serve `/metrics`, inside their namespace.
const METRICS: &str = "127.0.0.1:9477";

/// The value of the sample `series` (name and labels, as printed) in the `/metrics` of the
/// daemon in `ns`; 0 when it is not there.
fn metric_value(ns: &Netns, series: &str) -> u64 {
    let text = ns.exec(&[
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        "5",
        &format!("http://{METRICS}/metrics"),
    ]);
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0, |value| {
            value
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("`{series}` has no count ({e}):\n{text}"))
        })
}

#[test]
fn allow_list_xdp() {
    allow_list(Mode::Xdp);
}

#[test]
fn allow_list_xdp_skb() {
    allow_list(Mode::XdpSkb);
}

#[test]
fn allow_list_tc() {
    allow_list(Mode::Tc);
}

#[test]
fn allow_list_splice() {
    allow_list(Mode::Splice);
}

/// New flows per second per source prefix in the flood test.
const SOURCE_RATE: u64 = 50;
/// Burst per source prefix in the flood test.
const SOURCE_BURST: u64 = 50;
/// New flows per second in all in the flood test.
const GLOBAL_RATE: u64 = 200;
/// Global burst in the flood test.
const GLOBAL_BURST: u64 = 200;
/// Source prefix length (IPv4) the flood test aggregates buckets to.
const PREFIX_V4: u8 = 24;
/// Spoofed datagrams per flood.
const FLOOD_PACKETS: u64 = 4_000;
/// How long a flood is spread over (so 2,000 datagrams/s); it stops at twice this, sent or
/// not.
const FLOOD_TIME: Duration = Duration::from_secs(2);
/// Health checks the allowed client makes during a flood.
const CHECKS: usize = 20;

/// Where a flood's forged sources come from.
#[derive(Clone, Copy, Debug)]
enum Spoofed {
    /// Random hosts of one /24 (198.18.7.0/24): one source prefix's bucket.
    OnePrefix,
    /// Random hosts of 198.18.0.0/15: 512 prefixes, so the global bucket.
    ManyPrefixes,
}

impl Spoofed {
    fn source(self, rng: &mut Rng) -> Ipv4Addr {
        let host = 1 + u8::try_from(rng.below(254)).expect("below 254");
        match self {
            Self::OnePrefix => Ipv4Addr::new(198, 18, 7, host),
            Self::ManyPrefixes => {
                let third = rng.byte();
                Ipv4Addr::new(198, 18 + u8::from(rng.percent(50)), third, host)
            }
        }
    }
}

/// Sends [`FLOOD_PACKETS`] UDP datagrams to `to` from `sender`, each from a forged source
/// of `spoofed` and a random port (so each is a new flow), spread evenly over
/// [`FLOOD_TIME`] and stopped at twice that. Returns how many were sent and how long it
/// took.
fn flood(sender: &RawSender, spoofed: Spoofed, to: SocketAddr, seed: u64) -> (u64, Duration) {
    let mut rng = Rng::new(seed);
    let began = Instant::now();
    let mut sent = 0;
    for i in 0..FLOOD_PACKETS {
        let due = FLOOD_TIME * u32::try_from(i).expect("few packets")
            / u32::try_from(FLOOD_PACKETS).expect("few packets");
        let elapsed = began.elapsed();
        if elapsed >= 2 * FLOOD_TIME {
            break;
        }
        if let Some(ahead) = due.checked_sub(elapsed) {
            thread::sleep(ahead);
        }
        let port = 1_024 + rng.word() % 60_000;
        let frame = Frame::udp(
            IpAddr::V4(spoofed.source(&mut rng)),
            port,
            to.ip(),
            to.port(),
        )
        .with_payload(b"flood".to_vec());
        if sender.send(&frame).is_ok() {
            sent += 1;
        }
    }
    (sent, began.elapsed())
}

/// What one flood did, from the counters.
#[derive(Debug)]
struct FloodFigures {
    sent: u64,
    elapsed: Duration,
    reflected: u64,
    rate_limited: u64,
    checks_first_try: usize,
    checks_retried: usize,
    checks_failed: usize,
    /// Checks that began before the flood ended.
    checks_during_flood: usize,
    /// Checks that took a second or more: a SYN of theirs was dropped and retransmitted.
    checks_slow: usize,
}

/// Floods `R:L` (UDP) from X with forged sources of `spoofed` while the allowed client in
/// X makes [`CHECKS`] TCP checks through `R:L` (TCP), each with up to [`ATTEMPTS`] tries.
fn flood_with_checks(
    topology: &Topology,
    control: &ControlSocket,
    spoofed: Spoofed,
    seed: u64,
) -> FloodFigures {
    let sender = RawSender::new(topology.x(), Family::V4);
    let r = topology.r_addr(Family::V4);
    let client = topology.x_addr(Family::V4);
    let before = control.stats();
    let flood_began = Instant::now();
    let ((sent, elapsed), checks) = thread::scope(|scope| {
        let flooding = scope.spawn(|| flood(&sender, spoofed, SocketAddr::new(r, UDP_MAP.0), seed));
        let mut checks = Vec::new();
        for check in 0..CHECKS {
            let began = Instant::now();
            let message = format!("check{check}-{}", topology.id());
            let to = SocketAddr::new(r, TCP_MAP.0);
            let tries = (1..=ATTEMPTS).find(|_| {
                exchange(
                    topology.x(),
                    Proto::Tcp,
                    client,
                    to,
                    &message,
                    EXCHANGE_WAIT,
                )
                .is_ok_and(|(local, reply)| {
                    parse_peer_reply(&reply) == (r, local.port(), message.as_str())
                })
            });
            checks.push((tries, began, began.elapsed()));
            if let Some(left) = (FLOOD_TIME / CHECKS as u32).checked_sub(began.elapsed()) {
                thread::sleep(left);
            }
        }
        (flooding.join().expect("the flood thread"), checks)
    });
    let after = control.stats();
    let figures = FloodFigures {
        sent,
        elapsed,
        reflected: after.map_packets(UDP_MAP.0, "udp", "forward")
            - before.map_packets(UDP_MAP.0, "udp", "forward"),
        rate_limited: after.dropped(RATE_LIMITED) - before.dropped(RATE_LIMITED),
        checks_first_try: checks.iter().filter(|c| c.0 == Some(1)).count(),
        checks_retried: checks.iter().filter(|c| c.0.is_some_and(|t| t > 1)).count(),
        checks_failed: checks.iter().filter(|c| c.0.is_none()).count(),
        checks_during_flood: checks
            .iter()
            .filter(|c| c.1 < flood_began + elapsed)
            .count(),
        checks_slow: checks
            .iter()
            .filter(|c| c.2 >= Duration::from_secs(1))
            .count(),
    };
    eprintln!("flood of {spoofed:?}: {figures:?}");
    figures
}

/// Panics unless every flooded datagram is accounted for, reflected or dropped as
/// `rate_limited` (a few may be lost on the way: at least 95%), and no more were reflected
/// than a bucket of `rate` and `burst` admits in the flood's time.
fn assert_limited(figures: &FloodFigures, rate: u64, burst: u64, what: &str) {
    let FloodFigures {
        sent,
        elapsed,
        reflected,
        rate_limited,
        ..
    } = *figures;
    let accounted = reflected + rate_limited;
    // The client's SYNs share the counter: up to 3 per try (the SYN and its retransmissions
    // at 1 s and 3 s) when the global bucket refuses them.
    let client_syns = (CHECKS * ATTEMPTS * 3) as u64;
    assert!(
        accounted <= sent + client_syns && accounted * 100 >= sent * 95,
        "{what}: {sent} forged datagrams sent, {reflected} reflected + {rate_limited} dropped \
         as {RATE_LIMITED} = {accounted}: every one must be one or the other (plus at most \
         {client_syns} SYNs of the client's checks)"
    );
    // GCRA admits the burst at once, then one flow per 1/rate: at most burst + rate * t in
    // t, plus a tenth of a second of rate for datagrams still queued when the flood ended.
    let millis = u64::try_from(elapsed.as_millis()).expect("a short flood") + 100;
    let bound = burst + (rate * millis).div_ceil(1_000);
    assert!(
        rate_limited > 0 && reflected <= bound,
        "{what}: {sent} forged datagrams in {elapsed:?}: {reflected} reflected (at most \
         {bound} allowed by {rate}/s, bursts of {burst}), {rate_limited} dropped as \
         {RATE_LIMITED}"
    );
}

/// A spoofed flood against small limits, in `mode`: forged sources all in one /24 are held
/// to that prefix's bucket while the allowed client (another prefix) keeps every check
/// passing; forged sources spread over 512 prefixes are held to the global bucket.
fn spoofed_flood(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let x = topology.x();
    let _service = peer_service(x, Proto::Tcp, Family::V4, TCP_MAP.1);
    let control = ControlSocket::new();
    let limits = [
        ("--limit-per-source", SOURCE_RATE),
        ("--limit-per-source-burst", SOURCE_BURST),
        ("--limit-global", GLOBAL_RATE),
        ("--limit-global-burst", GLOBAL_BURST),
        ("--limit-prefix-v4", u64::from(PREFIX_V4)),
    ];
    let mut args = daemon_args(&topology, mode, &control);
    for (flag, value) in limits {
        args.extend([flag.to_owned(), value.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let reflector = Reflector::start_with_args(topology.r(), &args);
    assert_reflected(
        &topology,
        Path::of(mode),
        Proto::Tcp,
        Family::V4,
        TCP_MAP.0,
        "before",
    );

    let one = flood_with_checks(&topology, &control, Spoofed::OnePrefix, 13);
    assert_limited(&one, SOURCE_RATE, SOURCE_BURST, "forged sources in one /24");
    assert!(
        one.reflected >= SOURCE_BURST,
        "the /24's bucket admits its burst ({SOURCE_BURST}) at once: {one:?}"
    );
    assert!(
        one.checks_failed == 0 && one.checks_during_flood >= CHECKS / 2,
        "an allowed client in another prefix must keep its checks passing while one forged \
         prefix floods (each check up to {ATTEMPTS} tries; at least half of them during the \
         flood): {one:?}"
    );

    // Let the global bucket refill before the next flood.
    thread::sleep(Duration::from_secs(1));
    let many = flood_with_checks(&topology, &control, Spoofed::ManyPrefixes, 31);
    assert_limited(
        &many,
        GLOBAL_RATE,
        GLOBAL_BURST,
        "forged sources in 512 /24s",
    );
    // The allowed client shares the global bucket with the forged flows: its checks are
    // measured and reported, not asserted (a global limit cannot tell them apart; an
    // allow-list that leaves the forged prefixes out can, see the allow-list tests).
    eprintln!(
        "flood of 512 prefixes: the allowed client's checks: {} first try, {} retried, {} \
         failed, {} slow (a SYN retransmitted), {} begun during the flood",
        many.checks_first_try,
        many.checks_retried,
        many.checks_failed,
        many.checks_slow,
        many.checks_during_flood
    );
    assert_reflected(
        &topology,
        Path::of(mode),
        Proto::Tcp,
        Family::V4,
        TCP_MAP.0,
        "after",
    );
    let counted = control.stats().dropped(RATE_LIMITED);
    let series = format!("reflector_dropped_packets_total{{reason=\"{RATE_LIMITED}\"}}");
    assert_eq!(
        metric_value(topology.r(), &series),
        counted,
        "`{series}` must count what `reflector stats` counts"
    );
    reflector.stop_cleanly();
}

#[test]
fn spoofed_flood_tc() {
    spoofed_flood(Mode::Tc);
}

#[test]
fn spoofed_flood_xdp() {
    spoofed_flood(Mode::Xdp);
}

/// The map of both reflectors in the loop test: its target port is the other's listen port.
const LOOP_MAP: (u16, u16) = (8_080, 8_080);
/// How long a loop may take to settle (it ends within microseconds when guarded).
const LOOP_SETTLE: Duration = Duration::from_secs(3);
/// At most this many reflections of one forged packet between two reflectors (issue 13).
const LOOP_MAX_REFLECTIONS: u64 = 4;

/// The loop figures of both daemons together.
fn loop_counts(controls: &[&ControlSocket]) -> (u64, u64, u64) {
    controls.iter().fold((0, 0, 0), |(r, l, t), control| {
        let stats = control.stats();
        // A packet the kernel passes (TTL 1, say) reaches the hybrid listener, which relays
        // it as a new UDP flow: a reflection too.
        let relayed = stats.0["splice"]["udp_flows"].as_u64().unwrap_or(0);
        // The userspace path's own guard counts what it refuses beside the kernel's drops.
        let refused = stats.0["splice"]["refused"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["protocol"] == "udp" && entry["reason"] == LOOP_DETECTED)
            .filter_map(|entry| entry["count"].as_u64())
            .sum::<u64>();
        (
            r + stats.reflected("forward") + stats.reflected("reverse") + relayed,
            l + stats.dropped(LOOP_DETECTED) + refused,
            t + stats.passed("ttl_expired"),
        )
    })
}

/// Injects one forged datagram from X:`port` to R:8080 with `ttl` (from X's own address:
/// the packet a reflector in X would send), waits until the two reflectors are done with
/// it and returns how many times it was reflected in all, after asserting that it was
/// reflected at least once, at most [`LOOP_MAX_REFLECTIONS`] times, then dropped once as
/// `loop_detected`.
fn reflections_of_one_packet(
    topology: &Topology,
    controls: &[&ControlSocket],
    family: Family,
    ttl: u8,
    port: u16,
) -> u64 {
    let (reflected_before, loops_before, expired_before) = loop_counts(controls);
    let frame = Frame::udp(
        topology.x_addr(family),
        port,
        topology.r_addr(family),
        LOOP_MAP.0,
    )
    .with_ttl(ttl)
    .with_payload(b"ping-pong".to_vec());
    RawSender::new(topology.x(), family)
        .send(&frame)
        .unwrap_or_else(|e| panic!("cannot send the forged datagram: {e}"));
    // Settled: the guard fired, and nothing changed for a moment since.
    let mut last = loop_counts(controls);
    poll_until(LOOP_SETTLE, || {
        thread::sleep(Duration::from_millis(200));
        let now = loop_counts(controls);
        let settled = now == last && now.1 > loops_before;
        last = now;
        settled
    });
    let (reflected, loops, expired) = last;
    let reflections = reflected - reflected_before;
    let detected = loops - loops_before;
    let expired = expired - expired_before;
    eprintln!(
        "{family:?}, TTL {ttl}: reflected {reflections} times, {LOOP_DETECTED} {detected}, \
         ttl_expired {expired}"
    );
    // At TTL 1 the datagram can go no further: the kernel passes it (`ttl_expired`) and
    // the hybrid listener refuses it rather than relay it with a fresh TTL.
    let fewest = u64::from(ttl > 1);
    assert!(
        (fewest..=LOOP_MAX_REFLECTIONS).contains(&reflections) && detected == 1,
        "{family:?}: one forged datagram (TTL {ttl}) between two reflectors must be reflected \
         at least {fewest} and at most {LOOP_MAX_REFLECTIONS} times, then dropped once as \
         {LOOP_DETECTED}: reflected {reflections} times, {LOOP_DETECTED} {detected}, \
         ttl_expired {expired}"
    );
    reflections
}

/// A legitimate client in X through R (map `10022:22`): its first SYN is lost on the way
/// to the service (X drops it) and retransmitted with the TTL it had, and the
/// retransmission is reflected in the same connection; then plain connections, both
/// families. None of it is taken for a loop.
fn legitimate_client_unaffected(topology: &Topology, control_r: &ControlSocket) {
    let x = topology.x();
    let loops_before = control_r.stats().dropped(LOOP_DETECTED);
    x.exec(&["nft", "add table inet untrusted_test"]);
    x.exec(&[
        "nft",
        "add chain inet untrusted_test input { type filter hook input priority 0; policy accept; }",
    ]);
    x.exec(&[
        "nft",
        &format!(
            "add rule inet untrusted_test input tcp dport {} tcp flags & (syn | ack) == syn \
             numgen inc mod 1000000 == 0 counter drop",
            TCP_MAP.1
        ),
    ]);
    let began = Instant::now();
    let tries = assert_reflected_from(
        topology,
        Path::Kernel,
        Proto::Tcp,
        topology.x_addr(Family::V4),
        "retransmitted",
    );
    let took = began.elapsed();
    let listing = x.exec(&["nft", "list", "table", "inet", "untrusted_test"]);
    assert!(
        tries == 1 && took >= Duration::from_millis(900) && listing.contains("packets 1 "),
        "the first SYN must be dropped once (nft: {listing}) and its retransmission (after \
         ~1 s; took {took:?}, {tries} tries) reflected in the same connection"
    );
    for family in FAMILIES {
        for round in 0..3 {
            assert_reflected(
                topology,
                Path::Kernel,
                Proto::Tcp,
                family,
                TCP_MAP.0,
                &format!("legit{round}"),
            );
        }
    }
    let loops_after = control_r.stats().dropped(LOOP_DETECTED);
    assert_eq!(
        loops_after, loops_before,
        "a legitimate client (a retransmitted SYN, then plain connections) must never be \
         taken for a loop"
    );
}

/// Starts a daemon in `ns` in `mode` on `iface` with `maps`, `control` and `extra`
/// arguments.
fn start_in(
    ns: &Netns,
    iface: &str,
    mode: Mode,
    control: &ControlSocket,
    maps: &[String],
    extra: &[&str],
) -> Reflector {
    let mut args: Vec<String> = Vec::new();
    for map in maps {
        args.extend(["--map".into(), map.clone()]);
    }
    args.extend([
        "--iface".into(),
        iface.into(),
        "--mode".into(),
        mode.as_arg().into(),
    ]);
    args.extend(control.daemon_args());
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Reflector::start_with_args(ns, &args)
}

/// Two reflectors aimed at each other: R (the topology's reflector host, also mapping
/// [`TCP_MAP`]) and X, each running a daemon in TC mode on its end of the veth with the
/// map `8080:8080/udp`; X's TCP service on both families. Returns them with their control
/// sockets (R's first).
struct KernelPair {
    // Field order is drop order: the daemons before their sockets' directories.
    reflectors: [Reflector; 2],
    controls: [ControlSocket; 2],
    _services: [Process; 2],
}

impl KernelPair {
    fn start(topology: &Topology) -> Self {
        let x = topology.x();
        let services = FAMILIES.map(|family| peer_service(x, Proto::Tcp, family, TCP_MAP.1));
        let controls = [ControlSocket::new(), ControlSocket::new()];
        let reflector_r = start_in(
            topology.r(),
            topology.r_iface(),
            Mode::Tc,
            &controls[0],
            &[map_arg(LOOP_MAP, "udp"), map_arg(TCP_MAP, "tcp")],
            &[],
        );
        let reflector_x = start_in(
            x,
            topology.x_iface(),
            Mode::Tc,
            &controls[1],
            &[map_arg(LOOP_MAP, "udp")],
            &[],
        );
        Self {
            reflectors: [reflector_r, reflector_x],
            controls,
            _services: services,
        }
    }

    fn controls(&self) -> [&ControlSocket; 2] {
        [&self.controls[0], &self.controls[1]]
    }

    /// One forged datagram per family and TTL of `ttls`, each from its own port from
    /// `first_port` on (a fresh flow each time): reflected at most 4 times in all each.
    fn inject_each(&self, topology: &Topology, ttls: &[u8], first_port: u16) {
        let mut figures = Vec::new();
        for family in FAMILIES {
            for (port, &ttl) in (first_port..).zip(ttls) {
                let reflections =
                    reflections_of_one_packet(topology, &self.controls(), family, ttl, port);
                figures.push((family, ttl, reflections));
            }
        }
        eprintln!("loop figures (family, TTL, reflections): {figures:?}");
    }

    fn stop_cleanly(self) {
        for reflector in self.reflectors {
            reflector.stop_cleanly();
        }
    }
}

/// Two kernel reflectors aimed at each other ([`KernelPair`]): one forged datagram from
/// X:8080 (`80:80` on two hosts) to R:8080 is reflected to X:8080, which reflects it to
/// R:8080, and so on; the loop guard must stop it within 4 reflections, at TTL 64 and 255,
/// IPv4 and IPv6. A legitimate TCP client in X through R is not taken for a loop.
#[test]
fn two_reflectors_loop() {
    require_tool("nft", "nftables");
    let topology = Topology::for_mode(Mode::Tc);
    let pair = KernelPair::start(&topology);
    pair.inject_each(&topology, &[64, 255], LOOP_MAP.0);
    legitimate_client_unaffected(&topology, &pair.controls[0]);
    pair.stop_cleanly();
}

/// As [`two_reflectors_loop`], with the forged datagram sent with TTL 1 and 2. At TTL 1 R's
/// kernel program passes it (`ttl_expired`) to the stack, where the hybrid listener on
/// 8080 gets it: it must refuse it (`loop_detected`) rather than relay it with a fresh TTL,
/// which would buy the loop another round.
#[test]
fn two_reflectors_loop_from_low_ttl() {
    let topology = Topology::for_mode(Mode::Tc);
    let pair = KernelPair::start(&topology);
    pair.inject_each(&topology, &[1, 2], LOOP_MAP.0 + 10);
    pair.stop_cleanly();
}

/// `--max-udp-flows` of the userspace loop test: a bound on how far a loop the userspace
/// path does not stop can run, so the test stays cheap if it does.
const SPLICE_LOOP_MAX_FLOWS: &str = "256";

/// Per daemon: UDP flows its userspace path started and forward packets its kernel
/// program reflected so far, each one a reflection.
fn splice_loop_counts(controls: &[&ControlSocket]) -> Vec<(u64, u64)> {
    controls
        .iter()
        .map(|control| {
            let stats = control.stats();
            (
                stats.0["splice"]["udp_flows"].as_u64().unwrap_or(0),
                stats.reflected("forward"),
            )
        })
        .collect()
}

fn total(counts: &[(u64, u64)]) -> u64 {
    counts.iter().map(|(flows, kernel)| flows + kernel).sum()
}

/// Two reflectors aimed at each other, R on the userspace path (splice mode) and X in
/// `x_mode`, both with `8080:8080/udp`: one forged datagram to R:8080 is relayed to X:8080
/// from a socket of R's own, which X reflects (kernel) or relays (splice) to R:8080, and R
/// relays again from a new socket: each hop a new flow with a fresh TTL, so neither the
/// kernel's loop guard nor the TTL can end it. It must be reflected at most 4 times in
/// all, as between two kernel reflectors. Counted as new UDP flows on the userspace paths
/// (and forward reflections of X's kernel program).
fn splice_loop(x_mode: Mode) {
    let topology = Topology::for_mode(Mode::Splice);
    let (control_r, control_x) = (ControlSocket::new(), ControlSocket::new());
    let extra = ["--max-udp-flows", SPLICE_LOOP_MAX_FLOWS];
    let maps = [map_arg(LOOP_MAP, "udp")];
    let reflector_r = start_in(
        topology.r(),
        topology.r_iface(),
        Mode::Splice,
        &control_r,
        &maps,
        &extra,
    );
    let reflector_x = start_in(
        topology.x(),
        topology.x_iface(),
        x_mode,
        &control_x,
        &maps,
        &extra,
    );
    let controls = [&control_r, &control_x];
    let before = splice_loop_counts(&controls);
    let frame = Frame::udp(
        topology.x_addr(Family::V4),
        LOOP_MAP.0 + 2,
        topology.r_addr(Family::V4),
        LOOP_MAP.0,
    )
    .with_payload(b"ping-pong".to_vec());
    RawSender::new(topology.x(), Family::V4)
        .send(&frame)
        .unwrap_or_else(|e| panic!("cannot send the forged datagram: {e}"));
    // Settled: nothing changed for a moment.
    let mut last = splice_loop_counts(&controls);
    poll_until(LOOP_SETTLE, || {
        thread::sleep(Duration::from_millis(300));
        let now = splice_loop_counts(&controls);
        let settled = now == last && total(&now) > total(&before);
        last = now;
        settled
    });
    let reflections = total(&last) - total(&before);
    let detail: Vec<String> = ["R", "X"]
        .iter()
        .zip(last.iter().zip(&before))
        .map(|(host, (now, then))| {
            format!(
                "{host}: {} userspace UDP flows, {} kernel forward reflections",
                now.0 - then.0,
                now.1 - then.1
            )
        })
        .collect();
    eprintln!(
        "splice and {}: one forged datagram reflected {reflections} times ({})",
        x_mode.as_arg(),
        detail.join("; ")
    );
    assert!(
        (1..=LOOP_MAX_REFLECTIONS).contains(&reflections),
        "one forged datagram between a userspace reflector and a {} one must be reflected at \
         least once and at most {LOOP_MAX_REFLECTIONS} times: reflected {reflections} times \
         ({}; bounded here by --max-udp-flows {SPLICE_LOOP_MAX_FLOWS} per daemon)",
        x_mode.as_arg(),
        detail.join("; ")
    );
    reflector_x.stop_cleanly();
    reflector_r.stop_cleanly();
}

#[test]
fn two_splice_reflectors_loop() {
    splice_loop(Mode::Splice);
}

#[test]
fn splice_and_tc_reflectors_loop() {
    splice_loop(Mode::Tc);
}
