//! Real servers run inside a namespace: a small Python service that tells each client the
//! address it saw, and nginx.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use crate::kind::{Family, Proto};
use crate::netns::Netns;
use crate::process::Process;
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// How long a server may take to start listening.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

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
    let family = match family {
        Family::V4 => "4",
        Family::V6 => "6",
    };
    let process = ns.spawn(&[
        "/usr/bin/python3",
        "-u",
        "-c",
        PEER_SERVICE,
        proto.as_str(),
        family,
        &port.to_string(),
    ]);
    ns.wait_listening(proto == Proto::Udp, port, LISTEN_TIMEOUT);
    process
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
