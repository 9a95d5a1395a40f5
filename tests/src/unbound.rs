//! A real DNS server (unbound) in a namespace answering from local data only, and the `dig`
//! client that queries it.

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use crate::command;
use crate::kind::Proto;
use crate::netns::Netns;
use crate::process::Process;
use crate::servers::LISTEN_TIMEOUT;
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// unbound in the foreground on one port, IPv4 and IPv6, UDP and TCP, answering for one
/// static zone from its configuration and refusing to recurse anywhere else. Logs every
/// query with the client's address on stderr.
#[derive(Debug)]
pub struct Unbound {
    // Field order is drop order: stop unbound before removing its directory.
    process: Process,
    dir: TempDir,
}

impl Unbound {
    /// Writes a configuration serving `records` (name, address: an A or AAAA record) in
    /// the static `zone`, checks it with `unbound-checkconf`, starts unbound in `ns` and
    /// waits until it serves on `port`.
    #[must_use]
    pub fn start(ns: &Netns, port: u16, zone: &str, records: &[(&str, IpAddr)]) -> Self {
        let dir = TempDir::new("dns");
        let d = dir.path().display();
        // Everything unbound would do as a system service is off: no daemon, no user
        // switch, no chroot, no syslog, no remote control, no trust anchor to fetch. The
        // zone is static, so names in it never cause a query upstream; with
        // `do-not-query-localhost` and no validator module nothing else goes out either.
        let mut config = format!(
            "server:
    interface: 0.0.0.0@{port}
    interface: ::@{port}
    port: {port}
    do-ip4: yes
    do-ip6: yes
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    do-daemonize: no
    username: \"\"
    chroot: \"\"
    directory: \"{d}\"
    pidfile: \"{d}/unbound.pid\"
    logfile: \"\"
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    log-queries: yes
    access-control: 0.0.0.0/0 allow
    access-control: ::/0 allow
    do-not-query-localhost: yes
    module-config: \"iterator\"
    auto-trust-anchor-file: \"\"
    local-zone: \"{zone}\" static
"
        );
        for (name, addr) in records {
            let kind = match addr {
                IpAddr::V4(_) => "A",
                IpAddr::V6(_) => "AAAA",
            };
            let _ = writeln!(config, "    local-data: \"{name} 60 IN {kind} {addr}\"");
        }
        config.push_str("remote-control:\n    control-enable: no\n");
        let conf = dir.join("unbound.conf");
        fs::write(&conf, config).expect("write unbound.conf");
        let conf = conf.to_string_lossy();
        command::run(Command::new("unbound-checkconf").arg(&*conf));
        let process = ns.spawn(&["unbound", "-d", "-c", &conf]);
        let unbound = Self { process, dir };
        // Logged once every socket is open.
        let started = "start of service";
        assert!(
            poll_until(LISTEN_TIMEOUT, || unbound.log().contains(started)),
            "`{}` did not log {started:?} within {LISTEN_TIMEOUT:?}{}",
            unbound.process.what(),
            unbound.process.output_report()
        );
        for udp in [true, false] {
            ns.wait_listening(udp, port, LISTEN_TIMEOUT);
        }
        unbound
    }

    /// Its log so far (stderr): with `log-queries`, a line `info: <client> <name> <type>
    /// IN` per query.
    #[must_use]
    pub fn log(&self) -> String {
        self.process.stderr()
    }

    /// Waits up to `timeout` for a logged query for `name` of `kind` (`A`, `AAAA`) from
    /// `client`; returns whether one came.
    #[must_use]
    pub fn wait_query(&self, client: IpAddr, name: &str, kind: &str, timeout: Duration) -> bool {
        let logged = format!("info: {client} {name} {kind} IN");
        poll_until(timeout, || {
            self.log().lines().any(|line| line.ends_with(&logged))
        })
    }

    /// Its directory (configuration, pid file).
    #[must_use]
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }
}

/// `dig @<server ip> -p <port> <name> <kind> +short` in `ns`, over UDP or (`+tcp`) TCP,
/// each try waited for 5 seconds, 3 tries (UDP may lose a datagram, and dig resends as any
/// resolver would); returns the answer lines, panics unless dig exits 0.
#[must_use]
pub fn dig(ns: &Netns, server: SocketAddr, name: &str, kind: &str, transport: Proto) -> String {
    let at = format!("@{}", server.ip());
    let port = server.port().to_string();
    let mut args = vec![
        "dig", &at, "-p", &port, name, kind, "+short", "+time=5", "+tries=3",
    ];
    if transport == Proto::Tcp {
        args.push("+tcp");
    }
    ns.exec(&args)
}
