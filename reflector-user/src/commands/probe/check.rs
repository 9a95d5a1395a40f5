//! The check kinds: what one probe sends to the service through a reflector, what it must
//! answer, and how each way of failing is named.

use std::{fmt::Write as _, io, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream, UdpSocket},
    time::{Instant, timeout_at},
};

/// The most of an answer a check reads before judging it.
const MAX_ANSWER: usize = 64 * 1024;

/// How often a UDP datagram is sent again while no reply has come (a datagram may be lost).
const UDP_RESEND: Duration = Duration::from_millis(250);

/// Longest piece of an answer quoted in the output.
const QUOTE_MAX: usize = 60;

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What the service must do for a check to pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Accept a TCP connection. Inexact through a reflector in splice mode, which accepts
    /// before it connects back.
    Connect,
    /// Send first, bytes that start with these (`--expect-banner`).
    Banner(Vec<u8>),
    /// After `send` (if any), answer bytes that contain `expect` (anything, without it).
    Exchange {
        /// Sent after connecting.
        send: Option<Vec<u8>>,
        /// What the answer must contain.
        expect: Option<Vec<u8>>,
    },
    /// Answer `GET path` with a 2xx status.
    Http {
        /// The request path.
        path: String,
        /// The Host header; `R:L` as given when `None`.
        host: Option<String>,
    },
    /// Answer the datagram `send` with one that contains `expect` (anything, without it).
    Udp {
        /// The datagram.
        send: Vec<u8>,
        /// What the reply must contain.
        expect: Option<Vec<u8>>,
    },
}

impl Check {
    /// The transport.
    #[must_use]
    pub(crate) const fn protocol(&self) -> Protocol {
        match self {
            Self::Udp { .. } => Protocol::Udp,
            _ => Protocol::Tcp,
        }
    }

    /// A short name for the JSON output: connect, banner, exchange, http or udp.
    #[must_use]
    pub(crate) const fn kind(&self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Banner(_) => "banner",
            Self::Exchange { .. } => "exchange",
            Self::Http { .. } => "http",
            Self::Udp { .. } => "udp",
        }
    }
}

/// Why a connection or a check failed, in the words the output uses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// A reset in answer to the SYN (or an ICMP port unreachable, for UDP).
    #[error("connection refused")]
    Refused,
    /// A reset after the connection was up.
    #[error("connection reset")]
    Reset,
    /// No answer to the SYN before the deadline.
    #[error("connect timed out (--timeout {})", humantime::format_duration(*timeout))]
    ConnectTimeout {
        /// The probe's `--timeout`.
        timeout: Duration,
    },
    /// Connected (or sent a datagram), but no answer came before the deadline.
    #[error("no answer (--timeout {})", humantime::format_duration(*timeout))]
    NoAnswer {
        /// The probe's `--timeout`.
        timeout: Duration,
    },
    /// The host or network is unreachable (ICMP, or no route).
    #[error("{what}")]
    Unreachable {
        /// The kernel's words for it.
        what: String,
    },
    /// Closed by the peer before it sent anything.
    #[error("closed without answering")]
    Closed,
    /// Answered, but not what was expected.
    #[error("answered {got} instead of {wanted}")]
    Wrong {
        /// The start of the answer, quoted.
        got: String,
        /// What was expected, quoted.
        wanted: String,
    },
    /// Answered something that is not an HTTP response.
    #[error("answered {got}, not HTTP")]
    NotHttp {
        /// The start of the answer, quoted.
        got: String,
    },
    /// An HTTP status other than 2xx.
    #[error("answered HTTP {status}")]
    HttpStatus {
        /// The status line after the version, e.g. `404 Not Found`.
        status: String,
    },
    /// The reflector's name did not resolve.
    #[error("cannot resolve {host}: {why}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's words.
        why: String,
    },
    /// Any other socket error.
    #[error("{0}")]
    Io(String),
}

impl Failure {
    pub(super) fn from_io(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Self::Reset,
            io::ErrorKind::HostUnreachable => Self::Unreachable {
                what: "host unreachable".to_owned(),
            },
            io::ErrorKind::NetworkUnreachable => Self::Unreachable {
                what: "network unreachable".to_owned(),
            },
            _ => Self::Io(error.to_string()),
        }
    }
}

/// One probe of a service: the source port it came from, how long it took, and the
/// answer's summary or why it failed.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    /// The probe's source port (0 when the socket could not be made).
    pub source_port: u16,
    /// From the first packet to the answer (or the failure).
    pub elapsed: Duration,
    /// A short summary of the answer (`SSH-2.0-...`, `HTTP 200 OK`), or the failure.
    pub result: Result<String, Failure>,
}

/// Runs `check` once against `target` (a reflector's R:L), within `deadline`; `host` is
/// the Host header when the check does not name one, `timeout` the probe's `--timeout`
/// (for messages).
pub(crate) async fn attempt(
    check: &Check,
    target: SocketAddr,
    host: &str,
    deadline: Instant,
    timeout: Duration,
) -> Attempt {
    let start = Instant::now();
    let (source_port, result) = match check {
        Check::Udp { send, expect } => {
            udp(target, send, expect.as_deref(), deadline, timeout).await
        }
        _ => tcp(check, target, host, deadline, timeout).await,
    };
    Attempt {
        source_port,
        elapsed: start.elapsed(),
        result,
    }
}

/// Connects from a port of the kernel's choosing (bound first, so the port is known even
/// when the connect fails).
pub(super) async fn connect(
    target: SocketAddr,
    deadline: Instant,
    timeout: Duration,
) -> (u16, Result<TcpStream, Failure>) {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let bound = socket.and_then(|socket| {
        socket.bind(any_port(target))?;
        let port = socket.local_addr()?.port();
        Ok((socket, port))
    });
    let (socket, port) = match bound {
        Ok(bound) => bound,
        Err(error) => return (0, Err(Failure::from_io(&error))),
    };
    let result = match timeout_at(deadline, socket.connect(target)).await {
        Err(_) => Err(Failure::ConnectTimeout { timeout }),
        Ok(Err(error)) => Err(Failure::from_io(&error)),
        Ok(Ok(stream)) => Ok(stream),
    };
    (port, result)
}

/// A TCP check: connect, send what the check sends, read until the answer can be judged.
async fn tcp(
    check: &Check,
    target: SocketAddr,
    default_host: &str,
    deadline: Instant,
    timeout: Duration,
) -> (u16, Result<String, Failure>) {
    let (port, stream) = connect(target, deadline, timeout).await;
    let result = match stream {
        Err(failure) => Err(failure),
        Ok(mut stream) => converse(check, &mut stream, default_host, deadline, timeout).await,
    };
    (port, result)
}

async fn converse(
    check: &Check,
    stream: &mut TcpStream,
    default_host: &str,
    deadline: Instant,
    timeout: Duration,
) -> Result<String, Failure> {
    let request = match check {
        Check::Connect => return Ok("connected".to_owned()),
        Check::Exchange {
            send: Some(send), ..
        } => Some(send.clone()),
        Check::Http { path, host } => Some(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: reflector-probe/{}\r\n\
                 Accept: */*\r\nConnection: close\r\n\r\n",
                host.as_deref().unwrap_or(default_host),
                env!("CARGO_PKG_VERSION")
            )
            .into_bytes(),
        ),
        _ => None,
    };
    if let Some(request) = request {
        match timeout_at(deadline, stream.write_all(&request)).await {
            Err(_) => return Err(Failure::NoAnswer { timeout }),
            Ok(Err(error)) => return Err(Failure::from_io(&error)),
            Ok(Ok(())) => {}
        }
    }
    let enough = |answer: &[u8]| match check {
        Check::Banner(prefix) => answer.len() >= prefix.len() || answer.contains(&b'\n'),
        Check::Exchange {
            expect: Some(expect),
            ..
        } => contains(answer, expect),
        Check::Http { .. } => answer.windows(2).any(|pair| pair == b"\r\n"),
        _ => !answer.is_empty(),
    };
    let answer = read_until(stream, enough, deadline, timeout).await?;
    judge(check, &answer)
}

/// Reads until `enough` says the answer can be judged, the peer closes, or
/// [`MAX_ANSWER`] bytes came.
async fn read_until(
    stream: &mut TcpStream,
    enough: impl Fn(&[u8]) -> bool,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    while !enough(&answer) && answer.len() < MAX_ANSWER {
        match timeout_at(deadline, stream.read(&mut chunk)).await {
            Err(_) => return Err(Failure::NoAnswer { timeout }),
            // A reset after part of an answer still tells what the service said.
            Ok(Err(error)) if answer.is_empty() => return Err(Failure::from_io(&error)),
            Ok(Err(_) | Ok(0)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    if answer.is_empty() {
        return Err(Failure::Closed);
    }
    Ok(answer)
}

/// Whether a complete answer passes the check; its summary when it does.
fn judge(check: &Check, answer: &[u8]) -> Result<String, Failure> {
    match check {
        Check::Banner(prefix) if !answer.starts_with(prefix) => Err(Failure::Wrong {
            got: quote(answer),
            wanted: quote(prefix),
        }),
        Check::Exchange {
            expect: Some(expect),
            ..
        } if !contains(answer, expect) => Err(Failure::Wrong {
            got: quote(answer),
            wanted: quote(expect),
        }),
        Check::Http { .. } => http_status(answer),
        _ => Ok(first_line(answer)),
    }
}

/// The status of an HTTP response: its summary (`HTTP 200 OK`) when 2xx.
fn http_status(answer: &[u8]) -> Result<String, Failure> {
    let line = first_line(answer);
    let mut words = line.splitn(2, ' ');
    let version = words.next().unwrap_or_default();
    let status = words.next().unwrap_or_default();
    let bytes = status.as_bytes();
    let has_code = bytes.len() >= 3
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && bytes.get(3).is_none_or(|&b| b == b' ');
    match (has_code, version.starts_with("HTTP/")) {
        (true, true) => {
            if bytes[0] == b'2' {
                Ok(format!("HTTP {status}"))
            } else {
                Err(Failure::HttpStatus {
                    status: status.to_owned(),
                })
            }
        }
        _ => Err(Failure::NotHttp { got: quote(answer) }),
    }
}

/// A UDP check: one socket (one source port), the datagram sent every [`UDP_RESEND`]
/// until a reply comes or the deadline passes.
async fn udp(
    target: SocketAddr,
    send: &[u8],
    expect: Option<&[u8]>,
    deadline: Instant,
    timeout: Duration,
) -> (u16, Result<String, Failure>) {
    let socket = match UdpSocket::bind(any_port(target)).await {
        Ok(socket) => socket,
        Err(error) => return (0, Err(Failure::from_io(&error))),
    };
    let port = socket.local_addr().map_or(0, |local| local.port());
    if let Err(error) = socket.connect(target).await {
        return (port, Err(Failure::from_io(&error)));
    }
    let mut reply = vec![0_u8; MAX_ANSWER];
    // Bounded by the deadline, and by count as well.
    let most = timeout.as_millis() / UDP_RESEND.as_millis() + 2;
    for _ in 0..most {
        if let Err(error) = socket.send(send).await {
            return (port, Err(Failure::from_io(&error)));
        }
        let wait = (Instant::now() + UDP_RESEND).min(deadline);
        match timeout_at(wait, socket.recv(&mut reply)).await {
            Ok(Ok(n)) => {
                let reply = &reply[..n];
                let result = match expect {
                    Some(expect) if !contains(reply, expect) => Err(Failure::Wrong {
                        got: hex(reply),
                        wanted: hex(expect),
                    }),
                    _ => Ok(format!("{n}-byte reply")),
                };
                return (port, result);
            }
            Ok(Err(error)) => return (port, Err(Failure::from_io(&error))),
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => {}
        }
    }
    (port, Err(Failure::NoAnswer { timeout }))
}

/// Any local address of `target`'s family, and a port of the kernel's choosing.
fn any_port(target: SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The first line of `bytes` (without its line end), printable, shortened.
fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    printable(line)
}

/// `bytes` with anything unprintable escaped, cut at [`QUOTE_MAX`] characters.
fn printable(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes {
        if text.len() >= QUOTE_MAX {
            text.push_str("...");
            break;
        }
        match byte {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            b'\t' => text.push_str("\\t"),
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(char::from(byte)),
            _ => {
                let _ = write!(text, "\\x{byte:02x}");
            }
        }
    }
    text
}

/// The first line of `bytes`, printable, in double quotes.
fn quote(bytes: &[u8]) -> String {
    format!("\"{}\"", first_line(bytes))
}

/// `bytes` as hex, the first 16 of them.
fn hex(bytes: &[u8]) -> String {
    let mut text = String::from("0x");
    for byte in bytes.iter().take(16) {
        let _ = write!(text, "{byte:02x}");
    }
    if bytes.len() > 16 {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners() {
        let ssh = Check::Banner(b"SSH-".to_vec());
        assert_eq!(
            judge(&ssh, b"SSH-2.0-OpenSSH_9.2\r\n"),
            Ok("SSH-2.0-OpenSSH_9.2".to_owned())
        );
        assert_eq!(
            judge(&ssh, b"garbage\r\n").unwrap_err().to_string(),
            "answered \"garbage\" instead of \"SSH-\""
        );
    }

    #[test]
    fn http() {
        assert_eq!(
            http_status(b"HTTP/1.1 200 OK\r\n"),
            Ok("HTTP 200 OK".to_owned())
        );
        assert_eq!(
            http_status(b"HTTP/1.1 404 Not Found\r\n")
                .unwrap_err()
                .to_string(),
            "answered HTTP 404 Not Found"
        );
        assert_eq!(
            http_status(b"garbage\r\n").unwrap_err().to_string(),
            "answered \"garbage\", not HTTP"
        );
        assert!(http_status(b"HTTP/1.1 20x\r\n").is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(printable(b"a\x01\xff"), "a\\x01\\xff");
        assert_eq!(first_line(b"one\r\ntwo"), "one");
        assert!(printable(&[b'x'; 100]).ends_with("..."));
        assert_eq!(hex(&[0x12, 0x34]), "0x1234");
    }

    #[test]
    fn exchanges() {
        let check = Check::Exchange {
            send: Some(b"PING\r\n".to_vec()),
            expect: Some(b"PONG".to_vec()),
        };
        assert_eq!(judge(&check, b"+PONG\r\n"), Ok("+PONG".to_owned()));
        assert!(judge(&check, b"-ERR\r\n").is_err());
    }
}
