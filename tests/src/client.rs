//! Clients run from inside a namespace: plain sockets (created in the namespace, with
//! timeouts on every step) and curl.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::enter::in_netns;
use crate::netns::Netns;

/// Timeout of each connect, send and receive.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A TCP connection from `ns` to `to`, from address `from` (any port) when given, with
/// [`IO_TIMEOUT`] on the connect and on every later read and write.
///
/// # Errors
///
/// When the socket cannot be set up or the connect fails. A connection the peer resets
/// right after the handshake, before this call looks at it, also fails here
/// (`ConnectionReset`).
pub fn try_tcp_connect(ns: &Netns, from: Option<IpAddr>, to: SocketAddr) -> io::Result<TcpStream> {
    try_tcp_connect_within(ns, from, to, IO_TIMEOUT)
}

/// [`try_tcp_connect`] with `wait` for the connect and for each read and write, for a
/// caller that expects no answer and need not wait long for it.
///
/// # Errors
///
/// When the socket cannot be made or bound, or the connect fails or takes longer.
pub fn try_tcp_connect_within(
    ns: &Netns,
    from: Option<IpAddr>,
    to: SocketAddr,
    wait: Duration,
) -> io::Result<TcpStream> {
    // Created inside the namespace: a socket belongs to the namespace it was made in.
    let socket = in_netns(ns, || {
        Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))
    })?;
    if let Some(from) = from {
        socket.bind(&SocketAddr::new(from, 0).into())?;
    }
    socket.connect_timeout(&to.into(), wait)?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(wait))?;
    stream.set_write_timeout(Some(wait))?;
    Ok(stream)
}

/// [`try_tcp_connect`], panicking when the connect fails.
#[must_use]
pub fn tcp_connect(ns: &Netns, from: Option<IpAddr>, to: SocketAddr) -> TcpStream {
    try_tcp_connect(ns, from, to).unwrap_or_else(|e| {
        let from = from.map_or_else(String::new, |from| format!(" (from {from})"));
        panic!(
            "TCP connect from {}{from} to {to}: {}",
            ns.name(),
            describe(&e)
        )
    })
}

/// Connects from `ns` to `to` and expects the connection to be reset by its peer within
/// `within` (see [`expect_reset`]), or already when the connect completes: a peer that
/// resets at once may be faster than this thread.
pub fn connect_expecting_reset(ns: &Netns, to: SocketAddr, within: Duration) {
    match try_tcp_connect(ns, None, to) {
        Ok(stream) => expect_reset(&stream, within),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "TCP connect from {} to {to}: {}, where a reset was expected",
            ns.name(),
            describe(&e)
        ),
    }
}

/// The local address of a connected stream, and its peer's for messages: the peer's is
/// gone once the connection was reset (`getpeername` fails with `ENOTCONN`), which some
/// tests expect to happen at any moment.
fn ends(stream: &TcpStream) -> (SocketAddr, String) {
    (
        stream
            .local_addr()
            .expect("local address of a connected socket"),
        stream
            .peer_addr()
            .map_or_else(|e| format!("<peer gone: {e}>"), |peer| peer.to_string()),
    )
}

/// Sends `line` (plus a newline) on `stream` and reads one line back (which must be all the
/// peer sent meanwhile). Returns it without its newline.
#[must_use]
pub fn exchange_line(stream: &TcpStream, line: &str) -> String {
    let (local, to) = ends(stream);
    let mut writer = stream;
    writer
        .write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("TCP send {local} -> {to}: {}", describe(&e)));
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .unwrap_or_else(|e| panic!("TCP receive {local} <- {to}: {}", describe(&e)));
    assert!(
        reply.ends_with('\n'),
        "TCP {local} <- {to}: connection closed before a whole line (got {reply:?})"
    );
    reply.pop();
    reply
}

/// One TCP exchange from `ns` to `to`: connects, sends `line` (plus a newline), reads one
/// line back. Returns the connection's local address and the line, without its newline.
#[must_use]
pub fn tcp_line(ns: &Netns, to: SocketAddr, line: &str) -> (SocketAddr, String) {
    let stream = tcp_connect(ns, None, to);
    let (local, _) = ends(&stream);
    (local, exchange_line(&stream, line))
}

/// Like [`tcp_line`], but returns what went wrong instead of panicking, for a caller that
/// expects some attempts to fail (connect, send or receive; end of file before a whole line
/// reads as `UnexpectedEof`).
///
/// # Errors
///
/// The first failure of the connect, the send or the receive.
pub fn try_tcp_line(ns: &Netns, to: SocketAddr, line: &str) -> io::Result<(SocketAddr, String)> {
    try_tcp_line_within(ns, None, to, line, IO_TIMEOUT)
}

/// [`try_tcp_line`] from `from` (when given), every step within `wait`.
///
/// # Errors
///
/// The first failure of the connect, the send or the receive.
pub fn try_tcp_line_within(
    ns: &Netns,
    from: Option<IpAddr>,
    to: SocketAddr,
    line: &str,
    wait: Duration,
) -> io::Result<(SocketAddr, String)> {
    let stream = try_tcp_connect_within(ns, from, to, wait)?;
    let local = stream.local_addr()?;
    (&stream).write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    if !reply.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("closed before a whole line (got {reply:?})"),
        ));
    }
    reply.pop();
    Ok((local, reply))
}

/// A request and its reply with a half-close in between: connects from `ns` to `to`, sends
/// all of `request`, shuts its sending side down (`shutdown(SHUT_WR)`: the peer reads end
/// of file) and reads until the peer closes. Returns the local address and every byte
/// received.
#[must_use]
pub fn half_close_exchange(ns: &Netns, to: SocketAddr, request: &[u8]) -> (SocketAddr, Vec<u8>) {
    let stream = tcp_connect(ns, None, to);
    let (local, _) = ends(&stream);
    (&stream)
        .write_all(request)
        .unwrap_or_else(|e| panic!("TCP send {local} -> {to}: {}", describe(&e)));
    stream
        .shutdown(Shutdown::Write)
        .unwrap_or_else(|e| panic!("TCP shutdown(SHUT_WR) {local} -> {to}: {e}"));
    let mut reply = Vec::new();
    (&stream).read_to_end(&mut reply).unwrap_or_else(|e| {
        panic!(
            "TCP receive {local} <- {to} after a half-close (got {} bytes): {}",
            reply.len(),
            describe(&e)
        )
    });
    (local, reply)
}

/// Waits up to `within` for `stream` to be reset by its peer (a read failing with
/// `ECONNRESET`); panics when it gets data, end of file, another error or nothing in time.
pub fn expect_reset(stream: &TcpStream, within: Duration) {
    let closed = expect_closed(stream, within);
    if closed != "reset" {
        let (local, to) = ends(stream);
        panic!("TCP {local} <- {to}: {closed}, where a reset was expected");
    }
}

/// Waits up to `within` for `stream` to be closed by its peer, with a FIN or a reset (a
/// read returning end of file or failing with `ECONNRESET`); panics when it gets data,
/// another error or nothing in time. Returns what it got, for messages: `end of file` or
/// `reset`.
#[must_use]
pub fn expect_closed(stream: &TcpStream, within: Duration) -> &'static str {
    let (local, to) = ends(stream);
    let deadline = std::time::Instant::now() + within;
    let mut buffer = [0_u8; 4096];
    // A signal to this process (a child's exit, say) interrupts a read with a timeout
    // (`EINTR`, not restarted): read again for the time left, a bounded number of times.
    let mut outcome = Err(io::Error::from(io::ErrorKind::Interrupted));
    for _ in 0..100 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        stream
            .set_read_timeout(Some(left))
            .expect("set read timeout");
        outcome = (&*stream).read(&mut buffer);
        if !matches!(&outcome, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            break;
        }
    }
    match outcome {
        Ok(0) => "end of file",
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => "reset",
        Ok(n) => panic!(
            "TCP {local} <- {to}: {n} bytes ({:?}), where the connection should be closed",
            String::from_utf8_lossy(&buffer[..n])
        ),
        Err(e) => panic!(
            "TCP {local} <- {to}: not closed within {within:?}: {}",
            describe(&e)
        ),
    }
}

/// Panics unless `stream` is still open with nothing to read: not reset, no end of file,
/// no data. Does not wait.
pub fn assert_pending(stream: &TcpStream) {
    let (local, to) = ends(stream);
    stream.set_nonblocking(true).expect("set non-blocking");
    let mut buffer = [0_u8; 1];
    let peeked = stream.peek(&mut buffer);
    stream.set_nonblocking(false).expect("set blocking");
    match peeked {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Ok(0) => panic!("TCP {local} <- {to}: end of file, where it should still be pending"),
        Ok(_) => panic!("TCP {local} <- {to}: data, where it should still be pending"),
        Err(e) => panic!("TCP {local} <- {to}: {e}, where it should still be pending"),
    }
}

/// Datagrams `udp_exchange` sends before giving up, each waited for `UDP_WAIT`: UDP may
/// lose a datagram, and real UDP clients (dig, health checkers) resend too.
pub const UDP_ATTEMPTS: usize = 3;
/// How long `udp_exchange` waits for the reply to each datagram.
pub const UDP_WAIT: Duration = Duration::from_secs(2);

/// One UDP exchange from `ns` to `to`: sends `message` from an unconnected socket bound to
/// `from` (any port) and receives one datagram, whatever its source, resending up to
/// [`UDP_ATTEMPTS`] times (said on stderr, so a pattern of lost first datagrams shows).
/// Returns the socket's local address, the datagram's source and its text.
#[must_use]
pub fn udp_exchange(
    ns: &Netns,
    from: IpAddr,
    to: SocketAddr,
    message: &str,
) -> (SocketAddr, SocketAddr, String) {
    let socket = udp_socket(ns, from);
    let local = socket
        .local_addr()
        .expect("local address of a bound socket");
    let (source, reply) = udp_exchange_on(&socket, to, message);
    (local, source, reply)
}

/// An unconnected UDP socket in `ns` bound to `from` (any port): one client, one source
/// port, for several exchanges.
#[must_use]
pub fn udp_socket(ns: &Netns, from: IpAddr) -> UdpSocket {
    in_netns(ns, || UdpSocket::bind(SocketAddr::new(from, 0)))
        .unwrap_or_else(|e| panic!("UDP bind to {from} in {}: {e}", ns.name()))
}

/// [`udp_exchange`] on an existing `socket` (from [`udp_socket`]): sends `message` to `to`
/// and receives one datagram, resending as `udp_exchange` does. Returns the datagram's
/// source and its text.
#[must_use]
pub fn udp_exchange_on(socket: &UdpSocket, to: SocketAddr, message: &str) -> (SocketAddr, String) {
    let local = socket
        .local_addr()
        .expect("local address of a bound socket");
    for attempt in 1..=UDP_ATTEMPTS {
        match udp_try_exchange(socket, to, message, UDP_WAIT) {
            Ok(received) => return received,
            Err(e) if attempt < UDP_ATTEMPTS => {
                eprintln!(
                    "UDP {local} -> {to}: no reply to datagram {attempt} ({}); resending",
                    describe(&e)
                );
            }
            Err(e) => panic!(
                "UDP receive on {local} (sent to {to}, {UDP_ATTEMPTS} datagrams): {}",
                describe(&e)
            ),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// Sends `message` once on `socket` to `to` and waits up to `wait` for one datagram,
/// whatever its source; for a caller that expects no reply at times. Returns the
/// datagram's source and its text.
///
/// # Errors
///
/// When nothing came within `wait` (`WouldBlock` or `TimedOut`), or the receive failed.
pub fn udp_try_exchange(
    socket: &UdpSocket,
    to: SocketAddr,
    message: &str,
    wait: Duration,
) -> io::Result<(SocketAddr, String)> {
    let local = socket.local_addr()?;
    socket
        .send_to(message.as_bytes(), to)
        .unwrap_or_else(|e| panic!("UDP send {local} -> {to}: {e}"));
    socket.set_read_timeout(Some(wait))?;
    let mut buffer = vec![0_u8; 65_536];
    let (len, source) = socket.recv_from(&mut buffer)?;
    Ok((source, String::from_utf8_lossy(&buffer[..len]).into_owned()))
}

/// An I/O error, with socket timeouts (which read as `EAGAIN`) spelled out and the errno's
/// name appended as the daemon prints it (`[EADDRNOTAVAIL]`): tests match on the name,
/// which the standard library's text does not carry.
fn describe(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("nothing in time ({e})")
        }
        _ => e.to_string(),
    };
    match e.raw_os_error() {
        Some(code) => format!("{text} [{:?}]", nix::errno::Errno::from_raw(code)),
        None => text,
    }
}

/// `http://<to>/<path>`, with brackets around an IPv6 address.
#[must_use]
pub fn http_url(to: SocketAddr, path: &str) -> String {
    format!("http://{to}/{path}")
}

/// curl's flags for every fetch: quiet but for errors, failing on HTTP errors, no URL
/// globbing (IPv6 brackets), bounded in time.
const CURL_ARGS: [&str; 9] = [
    "curl",
    "--silent",
    "--show-error",
    "--fail",
    "--globoff",
    "--connect-timeout",
    "5",
    "--max-time",
    "30",
];

/// Fetches `url` with curl in `ns` into `out`.
pub fn curl_to_file(ns: &Netns, url: &str, out: &std::path::Path) {
    let out = out.to_string_lossy();
    let mut args = CURL_ARGS.to_vec();
    args.extend(["--output", &out, url]);
    ns.exec(&args);
}

/// Fetches `url` with curl in `ns` and returns the body.
#[must_use]
pub fn curl(ns: &Netns, url: &str) -> String {
    let mut args = CURL_ARGS.to_vec();
    args.push(url);
    ns.exec(&args)
}

/// The SHA-256 of a file, hex (`sha256sum`).
#[must_use]
pub fn sha256(ns: &Netns, path: &std::path::Path) -> String {
    ns.exec(&["sha256sum", &path.to_string_lossy()])
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_owned()
}

/// How long each step of an [`http_check`] may block: like a health checker's timeout.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// One HTTP health check as a monitoring agent makes it: connects from `ns` to `to` (from
/// source port `from_port` when given, with `SO_REUSEADDR`, else one the kernel picks),
/// sends `GET / HTTP/1.0`, reads to end of file, closes. Every step has
/// [`CHECK_TIMEOUT`]. Returns how long it took.
///
/// # Errors
///
/// What failed, with the local port: the connect (`EADDRNOTAVAIL` while the previous
/// connection from `from_port` is still closing), the request, a timeout, or a reply that
/// is not `200`.
pub fn http_check(ns: &Netns, from_port: Option<u16>, to: SocketAddr) -> Result<Duration, String> {
    let began = std::time::Instant::now();
    let socket = in_netns(ns, || {
        Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))
    })
    .map_err(|e| format!("socket: {}", describe(&e)))?;
    if let Some(port) = from_port {
        let any: IpAddr = if to.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        socket
            .set_reuse_address(true)
            .and_then(|()| socket.bind(&SocketAddr::new(any, port).into()))
            .map_err(|e| format!("bind to port {port}: {}", describe(&e)))?;
    }
    socket
        .connect_timeout(&to.into(), CHECK_TIMEOUT)
        .map_err(|e| format!("connect from port {from_port:?} to {to}: {}", describe(&e)))?;
    let mut stream = TcpStream::from(socket);
    let local = stream.local_addr().map_or(0, |addr| addr.port());
    let step = |what: &str, e: io::Error| format!("{what} (port {local}): {}", describe(&e));
    stream
        .set_read_timeout(Some(CHECK_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CHECK_TIMEOUT)))
        .map_err(|e| step("timeouts", e))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| step("request", e))?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .map_err(|e| step("reply", e))?;
    if !reply.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "reply (port {local}): not 200: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(40)])
        ));
    }
    Ok(began.elapsed())
}

/// What one [`http_check`] under [`under_check_load`] gave, and when it started.
pub type CheckOutcome = (std::time::Instant, Result<Duration, String>);

/// Checks one load worker makes at most: bounds the loop by count as well as by its stop.
const MAX_LOAD_CHECKS: usize = 200_000;

/// Runs `during` while `workers` threads make [`http_check`]s from `ns` to `to`, one after
/// the other each (a failed one followed by 10 ms of pause, not a spin), and returns what
/// `during` returned and every check's outcome. The checks stop when `during` returns or
/// panics.
pub fn under_check_load<T>(
    ns: &Netns,
    to: SocketAddr,
    workers: usize,
    during: impl FnOnce() -> T,
) -> (T, Vec<CheckOutcome>) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

    /// Sets the flag on drop, also when `during` panics.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Relaxed);
        }
    }

    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut outcomes = Vec::new();
                    for _ in 0..MAX_LOAD_CHECKS {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let began = std::time::Instant::now();
                        let result = http_check(ns, None, to);
                        if result.is_err() {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        outcomes.push((began, result));
                    }
                    outcomes
                })
            })
            .collect();
        let value = {
            let _stop = StopOnDrop(&stop);
            during()
        };
        let outcomes = handles
            .into_iter()
            .flat_map(|handle| handle.join().expect("a check worker panicked"))
            .collect();
        (value, outcomes)
    })
}
