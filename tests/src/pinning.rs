//! Pinning helpers shared by the restart tests: a bpffs of a test's own to pin into, and a
//! long TCP session through the reflector that must lose no byte across a restart.
//!
//! `ip netns exec`, which runs the daemon in R, mounts a fresh sysfs on /sys and so hides
//! the host's /sys/fs/bpf: each test mounts a bpffs on a temporary directory instead.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::client::tcp_connect;
use crate::command::{output_within, run};
use crate::daemon;
use crate::{Family, TempDir, Topology};

/// How long `reflector detach` may take.
const DETACH_COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// A bpffs mounted on a temporary directory, and the pin directory in it. On drop:
/// `reflector detach --pin DIR`, then unmount; the temporary directory goes last.
pub struct PinDir {
    mount: PathBuf,
    dir: PathBuf,
    _tmp: TempDir,
}

impl PinDir {
    /// Mounts a bpffs on a new temporary directory; the pin directory is `reflector` in it.
    #[must_use]
    pub fn mount() -> Self {
        let tmp = TempDir::new("pin");
        let mount = tmp.join("bpf");
        std::fs::create_dir(&mount)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", mount.display()));
        run(Command::new("mount").args(["-t", "bpf", "bpf"]).arg(&mount));
        let dir = mount.join("reflector");
        Self {
            mount,
            dir,
            _tmp: tmp,
        }
    }

    /// The pin directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pin directory, as the daemon's `--pin` argument.
    #[must_use]
    pub fn arg(&self) -> &str {
        self.dir.to_str().expect("a UTF-8 temporary path")
    }

    /// Runs `reflector detach --pin DIR`; returns its exit status success and stdout.
    #[must_use]
    pub fn detach(&self) -> (bool, String) {
        let output = output_within(
            Command::new(daemon::binary()).args(["detach", "--pin", self.arg()]),
            DETACH_COMMAND_TIMEOUT,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let (ok, text) = self.detach();
        if !ok {
            eprintln!("reflector detach --pin {}: {text}", self.dir.display());
        }
        let unmounted = Command::new("umount").arg("-l").arg(&self.mount).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            eprintln!("cannot unmount {}", self.mount.display());
        }
    }
}

/// One TCP connection held open, line by line; everything received is kept.
pub struct LongSession {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    sent: usize,
    expected: Vec<u8>,
    received: Vec<u8>,
    /// `<peer ip> <peer port>` as the service sees this connection.
    prefix: Option<String>,
}

impl LongSession {
    /// Connects from X to R's `listen` port (IPv4).
    #[must_use]
    pub fn open(topology: &Topology, listen: u16) -> Self {
        let to = SocketAddr::new(topology.r_addr(Family::V4), listen);
        let stream = tcp_connect(topology.x(), None, to);
        let reader = BufReader::new(stream.try_clone().expect("clone the TCP stream"));
        Self {
            stream,
            reader,
            sent: 0,
            expected: Vec::new(),
            received: Vec::new(),
            prefix: None,
        }
    }

    /// Exchanges `count` lines, tagged `phase`.
    pub fn exchange(&mut self, phase: &str, count: usize) {
        for _ in 0..count {
            self.sent += 1;
            let line = format!("{phase} line {} {}", self.sent, "x".repeat(self.sent * 7));
            (&self.stream)
                .write_all(format!("{line}\n").as_bytes())
                .unwrap_or_else(|e| panic!("{phase}: sending line {}: {e}", self.sent));
            let mut reply = String::new();
            self.reader
                .read_line(&mut reply)
                .unwrap_or_else(|e| panic!("{phase}: receiving line {}: {e}", self.sent));
            assert!(
                reply.ends_with('\n'),
                "{phase}: the connection closed before reply {} (got {reply:?})",
                self.sent
            );
            self.received.extend_from_slice(reply.as_bytes());
            let prefix = self.prefix.get_or_insert_with(|| {
                let mut words = reply.splitn(3, ' ');
                format!(
                    "{} {}",
                    words.next().unwrap_or_default(),
                    words.next().unwrap_or_default()
                )
            });
            self.expected
                .extend_from_slice(format!("{prefix} {line}\n").as_bytes());
        }
        assert_eq!(
            String::from_utf8_lossy(&self.received),
            String::from_utf8_lossy(&self.expected),
            "{phase}: every byte must arrive, in order, on the one connection"
        );
    }
}
