//! Clients run from inside a namespace: plain sockets (created in the namespace, with
//! timeouts on every step) and curl.

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::enter::in_netns;
use crate::netns::Netns;

/// Timeout of each connect, send and receive.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// One TCP exchange from `ns` to `to`: connects, sends `line` (plus a newline), reads one
/// line back. Returns the connection's local address and the line, without its newline.
#[must_use]
pub fn tcp_line(ns: &Netns, to: SocketAddr, line: &str) -> (SocketAddr, String) {
    let stream = in_netns(ns, || TcpStream::connect_timeout(&to, IO_TIMEOUT))
        .unwrap_or_else(|e| panic!("TCP connect from {} to {to}: {}", ns.name(), describe(&e)));
    let local = stream
        .local_addr()
        .expect("local address of a connected socket");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("set write timeout");
    (&stream)
        .write_all(format!("{line}\n").as_bytes())
        .unwrap_or_else(|e| panic!("TCP send {local} -> {to}: {e}"));
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .unwrap_or_else(|e| panic!("TCP receive {local} <- {to}: {}", describe(&e)));
    assert!(
        reply.ends_with('\n'),
        "TCP {local} <- {to}: connection closed before a whole line (got {reply:?})"
    );
    reply.pop();
    (local, reply)
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
    let socket = in_netns(ns, || UdpSocket::bind(SocketAddr::new(from, 0)))
        .unwrap_or_else(|e| panic!("UDP bind to {from} in {}: {e}", ns.name()));
    socket
        .set_read_timeout(Some(UDP_WAIT))
        .expect("set read timeout");
    let local = socket
        .local_addr()
        .expect("local address of a bound socket");
    let mut buffer = vec![0_u8; 65_536];
    for attempt in 1..=UDP_ATTEMPTS {
        socket
            .send_to(message.as_bytes(), to)
            .unwrap_or_else(|e| panic!("UDP send to {to}: {e}"));
        match socket.recv_from(&mut buffer) {
            Ok((len, source)) => {
                return (
                    local,
                    source,
                    String::from_utf8_lossy(&buffer[..len]).into_owned(),
                );
            }
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

/// An I/O error, with socket timeouts (which read as `EAGAIN`) spelled out.
fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("nothing in time ({e})")
        }
        _ => e.to_string(),
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
