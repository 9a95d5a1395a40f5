//! A real OpenSSH server in a namespace, with a key pair of its own so a real `ssh` client
//! logs in without a password or a prompt.

use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::command;
use crate::netns::Netns;
use crate::process::Process;
use crate::servers::LISTEN_TIMEOUT;
use crate::tempdir::TempDir;
use crate::wait::poll_until;

/// How long one `ssh` login (connect, key exchange, authentication, the command) may take:
/// generous, as the first IPv6 packet of a fresh topology waits for neighbour discovery.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// sshd's privilege separation directory: it refuses to start without it, and a machine
/// that never ran the system's sshd may not have it.
const PRIVSEP_DIR: &str = "/run/sshd";

/// `sshd -D -e` on one port, IPv4 and IPv6, with a host key, a client key and its
/// configuration in a temporary directory. Only the client key logs in (as root); its log
/// (stderr) says who did, from which address.
#[derive(Debug)]
pub struct Sshd {
    // Field order is drop order: stop sshd before removing its directory.
    process: Process,
    dir: TempDir,
}

impl Sshd {
    /// Generates the keys, writes the configuration, starts sshd in the foreground in `ns`
    /// and waits until it listens on `port` over both families.
    #[must_use]
    pub fn start(ns: &Netns, port: u16) -> Self {
        let dir = TempDir::new("ssh");
        for key in ["host_key", "client_key"] {
            command::run(Command::new("ssh-keygen").args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                key,
                "-f",
                &dir.join(key).to_string_lossy(),
            ]));
        }
        fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys"))
            .expect("copy the client key to authorized_keys");
        fs::create_dir_all(PRIVSEP_DIR)
            .unwrap_or_else(|e| panic!("cannot create sshd's directory {PRIVSEP_DIR}: {e}"));
        let d = dir.path().display();
        // UseDNS off: the namespaces have no resolver, and a reverse lookup of the client
        // would only cost time. No PAM: root logs in with the key alone, whatever the
        // machine's PAM stack says.
        let config = format!(
            "Port {port}
ListenAddress 0.0.0.0
ListenAddress ::
PidFile {d}/sshd.pid
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
UseDNS no
PrintMotd no
LogLevel INFO
"
        );
        let conf = dir.join("sshd_config");
        fs::write(&conf, config).expect("write sshd_config");
        // sshd re-executes itself for every connection, so it must be started by its full
        // path.
        let process = ns.spawn(&["/usr/sbin/sshd", "-D", "-e", "-f", &conf.to_string_lossy()]);
        let sshd = Self { process, dir };
        for address in ["0.0.0.0", "::"] {
            let line = format!("Server listening on {address} port {port}.");
            assert!(
                sshd.wait_log(&line, LISTEN_TIMEOUT),
                "`{}` did not log {line:?} within {LISTEN_TIMEOUT:?}{}",
                sshd.process.what(),
                sshd.process.output_report()
            );
        }
        sshd
    }

    /// Runs `ssh` in `ns` to `to` as root with the client key, non-interactively (no
    /// password, no host key prompt, nothing from the machine's own ssh configuration),
    /// running `remote_command`; returns its output, whatever its exit status.
    #[must_use]
    pub fn login(&self, ns: &Netns, to: SocketAddr, remote_command: &str) -> Output {
        let key = self.client_key();
        let port = to.port().to_string();
        // No brackets: with the port in `-p`, an IPv6 address stands alone.
        let destination = format!("root@{}", to.ip());
        ns.exec_output(
            &[
                "ssh",
                "-F",
                "/dev/null",
                "-p",
                &port,
                "-i",
                &key.to_string_lossy(),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                &destination,
                remote_command,
            ],
            LOGIN_TIMEOUT,
        )
    }

    /// The private key that logs in.
    #[must_use]
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client_key")
    }

    /// Its log so far (stderr, with `-e`).
    #[must_use]
    pub fn log(&self) -> String {
        self.process.stderr()
    }

    /// Waits up to `timeout` for a log line containing `text`; returns whether one came.
    #[must_use]
    pub fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        poll_until(timeout, || {
            self.log().lines().any(|line| line.contains(text))
        })
    }

    /// Its process (e.g. for its output).
    #[must_use]
    pub fn process(&self) -> &Process {
        &self.process
    }
}
