//! Named network namespaces (`ip netns add`), deleted on drop.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::command::{self, COMMAND_TIMEOUT};
use crate::names;
use crate::process::Process;

/// A named network namespace, created with `ip netns add` and deleted on drop (also when
/// the test panics).
///
/// Processes started with [`Netns::spawn`] are [`Process`] guards: drop them before the
/// namespace (declare them after it) so they are stopped first.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named [`names::name`]`(id, role)` with its loopback up.
    #[must_use]
    pub fn new(id: u32, role: &str) -> Self {
        let name = names::name(id, role);
        command::run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file that holds it, for `setns`.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `ip netns exec <name> <args...>`, not started yet.
    #[must_use]
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` inside the namespace and returns its stdout; panics with the command,
    /// exit status and output unless it exits 0 within [`COMMAND_TIMEOUT`].
    #[expect(
        clippy::must_use_candidate,
        reason = "run as often for its effect as for its output"
    )]
    pub fn exec(&self, args: &[&str]) -> String {
        command::run(&mut self.command(args))
    }

    /// Runs `args` inside the namespace within `timeout` and returns its output, whatever
    /// its exit status.
    #[must_use]
    pub fn exec_output(&self, args: &[&str], timeout: Duration) -> Output {
        command::output_within(&mut self.command(args), timeout)
    }

    /// `ip -n <name> <args...>`: configures the namespace from outside.
    #[expect(
        clippy::must_use_candidate,
        reason = "run as often for its effect as for its output"
    )]
    pub fn ip(&self, args: &[&str]) -> String {
        command::run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts a long-running process inside the namespace; it is stopped by its pid when
    /// the returned guard drops.
    #[must_use]
    pub fn spawn(&self, args: &[&str]) -> Process {
        Process::spawn(&mut self.command(args))
    }

    /// Waits until something in the namespace listens on `port` (`ss`), `udp` or TCP.
    pub fn wait_listening(&self, udp: bool, port: u16, timeout: Duration) {
        let flags = if udp { "-Hlun" } else { "-Hltn" };
        let filter = format!("sport = :{port}");
        crate::wait::wait_until(
            &format!(
                "a {} listener on port {port} in {}",
                if udp { "UDP" } else { "TCP" },
                self.name
            ),
            timeout,
            || !self.exec(&["ss", flags, &filter]).trim().is_empty(),
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let output = command::output_within(
            Command::new("ip").args(["netns", "del", &self.name]),
            COMMAND_TIMEOUT,
        );
        if !output.status.success() {
            eprintln!(
                "cannot delete network namespace {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
    }
}
