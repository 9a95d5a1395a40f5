//! Without flow state, a reply from a target port `P` is reflected unless this host has a
//! socket of its own for it: its own connection to some `S:P` (established, `SYN-SENT`,
//! `TIME_WAIT`) or its own UDP socket. The program finds them with the kernel's socket
//! lookups, which under `BPF_PROG_TEST_RUN` search the namespace of the thread that runs
//! the program: each test makes a namespace holding this host's address `A` and the real
//! sockets, and runs both programs from inside it. Each test also runs a frame that no
//! socket matches (another client port), which must be reflected, so a program that
//! passed every reply would fail here too.

use std::{
    io::Read,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant},
};

use reflector_common::{PassReason, Protocol, StatIndex};
use reflector_tests::{
    enter::EnteredNetns,
    kernel_fixture::{self as fixture, CLIENT_V4, CLIENT_V6, HOST_V4, HOST_V6},
    names,
    netns::Netns,
    packets::Frame,
    test_run::{Hook, Kernel},
};
use socket2::{Domain, Socket, Type};

/// A remote service address nothing answers: routed to a veth peer that drops what it gets
/// (not its address, and a new namespace does not forward), so a connection to it stays in
/// `SYN-SENT`.
const SILENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);

/// A namespace where this host has `A` ([`HOST_V4`], [`HOST_V6`]) and the client's services
/// `S` ([`CLIENT_V4`], [`CLIENT_V6`]) are local too (their listeners stand in for the
/// client's), with [`SILENT_V4`] routed out of a veth pair whose other end drops it.
fn host_namespace() -> Netns {
    let ns = Netns::new(names::next_id(), "os");
    ns.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ns.ip(&["link", "set", "d0", "up"]);
    ns.ip(&["link", "set", "d1", "up"]);
    for addr in [
        format!("{HOST_V4}/24"),
        format!("{CLIENT_V4}/32"),
        format!("{HOST_V6}/64"),
        format!("{CLIENT_V6}/128"),
    ] {
        ns.ip(&["addr", "add", &addr, "dev", "d0", "nodad"]);
    }
    ns.ip(&["route", "add", &format!("{SILENT_V4}/32"), "dev", "d0"]);
    // No ARP reply will come: a permanent entry sends the SYN on its way at once.
    ns.ip(&[
        "neigh",
        "add",
        &SILENT_V4.to_string(),
        "lladdr",
        "02:00:00:00:00:08",
        "dev",
        "d0",
        "nud",
        "permanent",
    ]);
    ns
}

/// Runs `frame` at `hook`, in the current thread's namespace; whether it was passed to the
/// stack untouched and counted `no_flow` (`true`), or reflected (`false`). Anything else
/// fails the test.
fn passed_as_own(kernel: &Kernel, hook: Hook, frame: &Frame) -> bool {
    let no_flow = StatIndex::passed(PassReason::NoFlow).get() as usize;
    let before = kernel.stats()[no_flow].packets;
    let input = frame.bytes();
    let run = kernel.run(&input);
    let after = kernel.stats()[no_flow].packets;
    if run.verdict == hook.pass_verdict() {
        assert_eq!(run.output, input, "a passed frame must leave untouched");
        assert_eq!(
            after,
            before + 1,
            "a reply to an own socket counts as no_flow"
        );
        true
    } else {
        assert_eq!(
            run.verdict,
            hook.reflect_verdict(),
            "neither passed nor reflected: {}",
            hook.verdict_name(run.verdict)
        );
        assert_eq!(
            run.output,
            fixture::reverse_reflected(frame).bytes(),
            "reflected, but not as the contract says"
        );
        false
    }
}

/// Loads the program of each hook with both maps stateless and checks, from inside the
/// current namespace, that `own` (a reply to this host's own socket) is passed and
/// `foreign` (the same reply to a port no socket has) is reflected.
fn check_both_hooks(own: &Frame, foreign: &Frame) {
    for hook in Hook::BOTH {
        let mut kernel = Kernel::reflector(hook);
        fixture::configure(&mut kernel);
        fixture::configure_stateless(&mut kernel);
        assert!(
            passed_as_own(&kernel, hook, own),
            "{}: a reply to this host's own socket was reflected",
            hook.reflector_program()
        );
        assert!(
            !passed_as_own(&kernel, hook, foreign),
            "{}: a reply no socket of this host matches was passed",
            hook.reflector_program()
        );
    }
}

/// A TCP socket bound to `local`, not yet connected.
fn bound_tcp(local: SocketAddr) -> Socket {
    let socket = Socket::new(Domain::for_address(local), Type::STREAM, None)
        .unwrap_or_else(|e| panic!("TCP socket: {e}"));
    socket
        .bind(&local.into())
        .unwrap_or_else(|e| panic!("binding {local}: {e}"));
    socket
}

/// This host's own established connection from `A:s` to `S:P`, and the listener's end.
fn established(host: IpAddr, client: IpAddr, port: u16) -> (TcpStream, TcpStream) {
    let service = SocketAddr::new(client, fixture::TCP_TARGET);
    let listener =
        TcpListener::bind(service).unwrap_or_else(|e| panic!("listening on {service}: {e}"));
    let socket = bound_tcp(SocketAddr::new(host, port));
    socket
        .connect(&service.into())
        .unwrap_or_else(|e| panic!("connecting to {service}: {e}"));
    let (accepted, _) = listener
        .accept()
        .unwrap_or_else(|e| panic!("accepting on {service}: {e}"));
    (socket.into(), accepted)
}

/// A reply from the client's service `S:P` to `A:port`.
fn reply(protocol: Protocol, client: IpAddr, host: IpAddr, port: u16) -> Frame {
    Frame::transport(protocol, client, fixture::target_port(protocol), host, port)
}

#[test]
fn stateless_reply_to_own_established_tcp_connection_is_passed() {
    let ns = host_namespace();
    let _entered = EnteredNetns::enter(&ns);
    for (host, client) in [
        (IpAddr::V4(HOST_V4), IpAddr::V4(CLIENT_V4)),
        (IpAddr::V6(HOST_V6), IpAddr::V6(CLIENT_V6)),
    ] {
        let port = 40_001;
        let _connection = established(host, client, port);
        check_both_hooks(
            &reply(Protocol::Tcp, client, host, port),
            &reply(Protocol::Tcp, client, host, port + 1),
        );
    }
}

#[test]
fn stateless_reply_to_own_syn_sent_tcp_connection_is_passed() {
    let ns = host_namespace();
    let _entered = EnteredNetns::enter(&ns);
    let port = 40_003;
    let socket = bound_tcp(SocketAddr::new(IpAddr::V4(HOST_V4), port));
    socket.set_nonblocking(true).expect("non-blocking socket");
    let silent = SocketAddr::new(IpAddr::V4(SILENT_V4), fixture::TCP_TARGET);
    match socket.connect(&silent.into()) {
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) => {}
        other => panic!("connecting to {silent} should stay in progress, got {other:?}"),
    }
    let syn_ack = |port| {
        reply(
            Protocol::Tcp,
            IpAddr::V4(SILENT_V4),
            IpAddr::V4(HOST_V4),
            port,
        )
    };
    check_both_hooks(&syn_ack(port).with_syn(), &syn_ack(port + 1).with_syn());
    drop(socket);
}

/// `EINPROGRESS`, as `connect` reports a non-blocking connection under way.
fn libc_einprogress() -> i32 {
    nix::errno::Errno::EINPROGRESS as i32
}

#[test]
fn stateless_reply_to_own_time_wait_tcp_connection_is_passed() {
    let ns = host_namespace();
    let _entered = EnteredNetns::enter(&ns);
    let (host, client) = (IpAddr::V4(HOST_V4), IpAddr::V4(CLIENT_V4));
    let port = 40_004;
    let (ours, mut theirs) = established(host, client, port);
    // This host closes first, so its end is the one left in TIME_WAIT.
    drop(ours);
    let mut rest = Vec::new();
    theirs
        .read_to_end(&mut rest)
        .expect("reading the peer's end to EOF");
    drop(theirs);
    wait_time_wait(port);
    check_both_hooks(
        &reply(Protocol::Tcp, client, host, port),
        &reply(Protocol::Tcp, client, host, port + 1),
    );
}

/// Waits (at most 5 s) until a TCP socket with local port `port` is in `TIME_WAIT` in the
/// current namespace (`/proc/net/tcp`, state 06).
fn wait_time_wait(port: u16) {
    let local = format!(":{port:04X} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // /proc/net resolves to the reading thread's namespace through /proc/thread-self.
        let table = std::fs::read_to_string("/proc/thread-self/net/tcp")
            .unwrap_or_else(|e| panic!("reading /proc/thread-self/net/tcp: {e}"));
        let in_time_wait = table.lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && format!("{} ", fields[1]).ends_with(&local) && fields[3] == "06"
        });
        if in_time_wait {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} never reached TIME_WAIT:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stateless_reply_to_own_udp_socket_is_passed() {
    let ns = host_namespace();
    let _entered = EnteredNetns::enter(&ns);
    for (host, client) in [
        (IpAddr::V4(HOST_V4), IpAddr::V4(CLIENT_V4)),
        (IpAddr::V6(HOST_V6), IpAddr::V6(CLIENT_V6)),
    ] {
        // Connected to S:P, and only bound (a resolver's unconnected socket): both are
        // this host's.
        let connected_port = 40_005;
        let connected = UdpSocket::bind(SocketAddr::new(host, connected_port))
            .unwrap_or_else(|e| panic!("binding UDP {host}: {e}"));
        connected
            .connect(SocketAddr::new(client, fixture::UDP_TARGET))
            .expect("connecting the UDP socket");
        let bound_port = 40_007;
        let _bound = UdpSocket::bind(SocketAddr::new(host, bound_port))
            .unwrap_or_else(|e| panic!("binding UDP {host}: {e}"));
        let foreign = reply(Protocol::Udp, client, host, 40_009);
        check_both_hooks(
            &reply(Protocol::Udp, client, host, connected_port),
            &foreign,
        );
        check_both_hooks(&reply(Protocol::Udp, client, host, bound_port), &foreign);
    }
}
