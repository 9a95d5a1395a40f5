//! Real servers run inside a namespace: small Python services that tell each client the
//! address they saw, and nginx.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::kind::{Family, Proto};
use crate::netns::Netns;
use crate::process::Process;
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// How long a server may take to start listening. Under emulation (`cargo xtask vmtest`,
/// 5.10) `python3 -c 'import socket'` alone took 6 s cold and 2.5 s warm, and a peer
/// service started beside another test's daemon missed 10 s.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer-address service. TCP: reads one line, answers `<peer ip> <peer port> <line>`
/// and closes. UDP: answers every datagram with `<peer ip> <peer port> <datagram>`.
const PEER_SERVICE: &str = r#"
import socket, sys
proto, family, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if family == "6" else socket.AF_INET
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(fam, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
if proto == "tcp":
    s.listen(64)
print("listening", flush=True)
if proto == "tcp":
    while True:
        c, peer = s.accept()
        with c:
            c.settimeout(5)
            try:
                line = c.makefile("rb").readline(65536)
                c.sendall(f"{peer[0]} {peer[1]} ".encode() + line)
            except OSError as e:
                print(f"{peer}: {e}", file=sys.stderr, flush=True)
else:
    while True:
        data, peer = s.recvfrom(65536)
        s.sendto(f"{peer[0]} {peer[1]} ".encode() + data, peer)
"#;

/// Starts the peer-address service in `ns` on `port`, for `proto` over `family` only, and
/// waits until it listens.
#[must_use]
pub fn peer_service(ns: &Netns, proto: Proto, family: Family, port: u16) -> Process {
    python_service(ns, PEER_SERVICE, proto.as_str(), family, port)
}

/// Starts the Python service `script` in `ns` with its arguments `<first> <4|6> <port>`,
/// and waits until it announces that it listens.
fn python_service(ns: &Netns, script: &str, first: &str, family: Family, port: u16) -> Process {
    let family = match family {
        Family::V4 => "4",
        Family::V6 => "6",
    };
    let process = ns.spawn(&[
        "/usr/bin/python3",
        "-u",
        "-c",
        script,
        first,
        family,
        &port.to_string(),
    ]);
    wait_announced(&process, port);
    process
}

/// Waits until a Python service says `listening` on stdout (its socket is bound, and
/// listening for TCP): `ss` alone cannot tell an IPv4 from an IPv6 listener on one port.
fn wait_announced(process: &Process, port: u16) {
    assert!(
        poll_until(LISTEN_TIMEOUT, || process.stdout().contains("listening")),
        "`{}` did not listen on port {port} within {LISTEN_TIMEOUT:?}{}",
        process.what(),
        process.output_report()
    );
}

/// Splits a peer-service reply `<ip> <port> <message>` (the message may contain spaces).
#[must_use]
pub fn parse_peer_reply(reply: &str) -> (IpAddr, u16, &str) {
    let mut parts = reply.splitn(3, ' ');
    let mut next = || {
        parts
            .next()
            .unwrap_or_else(|| panic!("malformed reply {reply:?}"))
    };
    let ip = next()
        .parse()
        .unwrap_or_else(|e| panic!("reply {reply:?}: bad address: {e}"));
    let port = next()
        .parse()
        .unwrap_or_else(|e| panic!("reply {reply:?}: bad port: {e}"));
    (ip, port, next())
}

/// The session service: TCP, one thread per connection (so connections can be held open
/// side by side), each connection handled per [`Session`].
const SESSION_SERVICE: &str = r#"
import resource, socket, struct, sys, threading
# Thousands of connections held at once: every descriptor the hard limit allows, and
# small thread stacks.
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
threading.stack_size(256 * 1024)
mode, family, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if family == "6" else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", port))
s.listen(1024)
print("listening", flush=True)

def lines(c, peer):
    f = c.makefile("rb")
    while True:
        line = f.readline(65536)
        if not line:
            return
        c.sendall(f"{peer[0]} {peer[1]} ".encode() + line)

def eof(c, peer):
    data = bytearray()
    while True:
        chunk = c.recv(65536)
        if not chunk:
            break
        data += chunk
    c.sendall(f"{peer[0]} {peer[1]} {len(data)}\n".encode() + data)

def reset(c, peer):
    data = b""
    while b"\n" not in data:
        chunk = c.recv(65536)
        if not chunk:
            return
        data += chunk
    # Linger on, timeout 0: close() sends a reset, not a FIN.
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

def garbage(c, peer):
    c.sendall(b"garbage\r\n")
    while c.recv(65536):
        pass

def serve(c, peer):
    with c:
        c.settimeout(60)
        try:
            {"lines": lines, "eof": eof, "reset": reset, "garbage": garbage}[mode](c, peer)
        except OSError as e:
            print(f"{peer}: {e}", file=sys.stderr, flush=True)

while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"#;

/// How the session service handles each TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Session {
    /// Answers every line with `<peer ip> <peer port> <line>` and keeps the connection
    /// open until the client closes it.
    Lines,
    /// Reads to end of file (the client's `shutdown(SHUT_WR)`), then answers
    /// `<peer ip> <peer port> <bytes received>\n` followed by every byte received, and
    /// closes.
    Eof,
    /// Reads one line, then closes the connection with a reset (`SO_LINGER` 0), as a
    /// service that rejects the request or crashes would.
    Reset,
    /// Sends `garbage\r\n` at once, whatever comes, and reads until the client closes: a
    /// wrong service (or a broken one) on the port.
    Garbage,
}

/// Starts the session service in `ns` on TCP `port` over `family` only, handling each
/// connection per `session` in a thread of its own, and waits until it listens.
#[must_use]
pub fn session_service(ns: &Netns, session: Session, family: Family, port: u16) -> Process {
    let mode = match session {
        Session::Lines => "lines",
        Session::Eof => "eof",
        Session::Reset => "reset",
        Session::Garbage => "garbage",
    };
    python_service(ns, SESSION_SERVICE, mode, family, port)
}

/// nginx serving files from a temporary directory on one port, IPv4 and IPv6, with an
/// access log of `$remote_addr $remote_port $status $request`.
#[derive(Debug)]
pub struct Nginx {
    // Field order is drop order: stop nginx before removing its directory.
    process: Process,
    dir: TempDir,
}

impl Nginx {
    /// Writes `files` (name, contents) into a fresh document root, writes a configuration
    /// (pid file, logs and temporary paths in the same temporary directory), starts nginx
    /// in the foreground in `ns` and waits until it listens on `port`.
    #[must_use]
    pub fn start(ns: &Netns, port: u16, files: &[(&str, &[u8])]) -> Self {
        let dir = TempDir::new("ngx");
        let root = dir.join("www");
        fs::create_dir(&root).expect("create the document root");
        for (name, contents) in files {
            fs::write(root.join(name), contents)
                .unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        }
        let d = dir.path().display();
        let config = format!(
            "daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 128; }}
http {{
    log_format peer '$remote_addr $remote_port $status $request';
    access_log {d}/access.log peer;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    sendfile on;
    server {{
        listen {port};
        listen [::]:{port} ipv6only=on;
        root {d}/www;
    }}
}}
"
        );
        let conf = dir.join("nginx.conf");
        fs::write(&conf, config).expect("write nginx.conf");
        let prefix = format!("{d}/");
        let error_log = format!("{d}/error.log");
        let process = ns.spawn(&[
            "nginx",
            "-p",
            &prefix,
            "-e",
            &error_log,
            "-c",
            &conf.to_string_lossy(),
        ]);
        ns.wait_listening(false, port, LISTEN_TIMEOUT);
        Self { process, dir }
    }

    /// The access log so far.
    #[must_use]
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// The error log so far.
    #[must_use]
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Waits up to `timeout` for an access log line that ends with `suffix` (nginx writes
    /// it when the request is done, which may be just after the client got the last byte)
    /// and returns it.
    #[must_use]
    pub fn wait_access(&self, suffix: &str, timeout: Duration) -> Option<String> {
        let mut found = None;
        poll_until(timeout, || {
            found = self
                .access_log()
                .lines()
                .find(|line| line.ends_with(suffix))
                .map(str::to_owned);
            found.is_some()
        });
        found
    }

    /// A file in nginx's temporary directory (e.g. to download into).
    #[must_use]
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Its process (e.g. for its output).
    #[must_use]
    pub fn process(&self) -> &Process {
        &self.process
    }
}
