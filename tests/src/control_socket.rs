//! A daemon's control socket, driven through the CLI as an operator would (`reflector
//! stats --json`, `reflector map ...`, `reflector allow ...`), and the counters it reports.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::command::{check, output_within};
use crate::daemon::binary;
use crate::tempdir::TempDir;

/// How long one CLI call may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// A control socket path in a temporary directory of its own (removed on drop): give
/// [`ControlSocket::daemon_args`] to the daemon, then talk to it.
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    _dir: TempDir,
}

impl ControlSocket {
    /// A fresh path, not yet listened on.
    #[must_use]
    pub fn new() -> Self {
        let dir = TempDir::new("ctl");
        Self {
            path: dir.join("control.sock"),
            _dir: dir,
        }
    }

    /// Its path.
    #[must_use]
    pub fn path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// `--control-socket <path>`, for the daemon's command line.
    #[must_use]
    pub fn daemon_args(&self) -> [String; 2] {
        ["--control-socket".to_owned(), self.path()]
    }

    /// `reflector <args...> --control-socket <path>`, run to completion within
    /// [`CLI_TIMEOUT`], whatever its exit status.
    #[must_use]
    pub fn run(&self, args: &[&str]) -> Output {
        output_within(&mut self.command(args), CLI_TIMEOUT)
    }

    /// [`ControlSocket::run`], panicking (with the output) unless it exits 0; returns its
    /// stdout.
    #[expect(
        clippy::must_use_candidate,
        reason = "run as often for its effect as for its output"
    )]
    pub fn ok(&self, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        let output = output_within(&mut cmd, CLI_TIMEOUT);
        check(&cmd, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The daemon's counters now (`reflector stats --json`).
    #[must_use]
    pub fn stats(&self) -> Stats {
        let json = self.ok(&["stats", "--json"]);
        Stats(
            serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("reflector stats --json is not JSON ({e}):\n{json}")),
        )
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.args(args).arg("--control-socket").arg(&self.path);
        cmd
    }
}

impl Default for ControlSocket {
    fn default() -> Self {
        Self::new()
    }
}

/// One `reflector stats --json` snapshot, with accessors for the counters tests look at.
/// A reason or map with no entry counts 0.
#[derive(Clone, Debug)]
pub struct Stats(pub Value);

impl Stats {
    /// Packets the kernel program reflected in `direction` (`forward` or `reverse`), both
    /// families.
    #[must_use]
    pub fn reflected(&self, direction: &str) -> u64 {
        self.kernel_entries("reflected")
            .filter(|entry| entry["direction"] == direction)
            .map(|entry| entry["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Packets the kernel program passed to the stack for `reason`.
    #[must_use]
    pub fn passed(&self, reason: &str) -> u64 {
        self.reason_packets("passed", reason)
    }

    /// Packets the kernel program dropped for `reason` (`source_not_allowed`,
    /// `rate_limited`, `loop_detected`, `rewrite_failed`).
    #[must_use]
    pub fn dropped(&self, reason: &str) -> u64 {
        self.reason_packets("dropped", reason)
    }

    /// Packets the kernel program reflected for the map with listen port `listen` and
    /// `protocol`, in `direction`, both families.
    #[must_use]
    pub fn map_packets(&self, listen: u16, protocol: &str, direction: &str) -> u64 {
        self.kernel_entries("maps")
            .filter(|entry| {
                entry["listen"] == listen
                    && entry["protocol"] == protocol
                    && entry["direction"] == direction
            })
            .map(|entry| entry["packets"].as_u64().unwrap_or(0))
            .sum()
    }

    /// New flows of `protocol` (`tcp`: clients reset at accept; `udp`: clients'
    /// datagrams dropped) the userspace path refused for `reason`.
    #[must_use]
    pub fn splice_refused(&self, protocol: &str, reason: &str) -> u64 {
        self.0["splice"]["refused"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["protocol"] == protocol && entry["reason"] == reason)
            .map(|entry| entry["count"].as_u64().unwrap_or(0))
            .sum()
    }

    fn kernel_entries(&self, field: &str) -> impl Iterator<Item = &Value> {
        self.0["kernel"][field].as_array().into_iter().flatten()
    }

    fn reason_packets(&self, field: &str, reason: &str) -> u64 {
        self.kernel_entries(field)
            .filter(|entry| entry["reason"] == reason)
            .map(|entry| entry["packets"].as_u64().unwrap_or(0))
            .sum()
    }
}
