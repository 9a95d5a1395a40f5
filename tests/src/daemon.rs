//! The `reflector` daemon, run inside a namespace as a guard.

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::netns::Netns;
use crate::process::{Process, TERM_TIMEOUT};
use crate::wait::poll_until;

/// How long the daemon may take to print its `ready` line (loading the program takes 10 s
/// and more under emulation, `cargo xtask vmtest`).
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the daemon may take to reject bad input. A refusal that comes after loading the
/// program takes 7 s and more under emulation (`cargo xtask vmtest`).
pub const REJECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long after the daemon exited its output may take to reach us.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Native XDP (`XDP_TX`).
    Xdp,
    /// Generic (skb) XDP.
    XdpSkb,
    /// TC clsact ingress plus `bpf_redirect` to egress.
    Tc,
    /// No kernel program: userspace reflection only (accept, connect back, `splice(2)`).
    Splice,
    /// The daemon's choice per interface: kernel modes first, then splice.
    Auto,
}

impl Mode {
    /// The `--mode` value.
    #[must_use]
    pub const fn as_arg(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::XdpSkb => "xdp-skb",
            Self::Tc => "tc",
            Self::Splice => "splice",
            Self::Auto => "auto",
        }
    }

    /// Whether the client's NIC must look like a physical one (see
    /// [`crate::TopologyOptions::xdp_client_nic_like`]).
    #[must_use]
    pub const fn is_xdp(self) -> bool {
        matches!(self, Self::Xdp | Self::XdpSkb)
    }
}

/// The daemon binary: `$REFLECTOR_BIN`, else `reflector` next to the directory of the
/// running test executable (`target/<profile>/deps/../reflector`). Panics when it does
/// not exist.
#[must_use]
pub fn binary() -> PathBuf {
    let path = std::env::var_os("REFLECTOR_BIN").map_or_else(
        || {
            let exe = std::env::current_exe().expect("the test executable's path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("the test executable is in target/<profile>/deps")
                .join("reflector")
        },
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "the reflector binary {} does not exist: build it (`cargo build -p reflector`) or \
         set REFLECTOR_BIN",
        path.display()
    );
    path
}

/// A running daemon: started with [`Reflector::start`] (which returns once it logged
/// `ready`), sent SIGTERM on drop. Its stderr (the log) is kept for messages.
#[derive(Debug)]
pub struct Reflector {
    process: Process,
    stopped: bool,
}

impl Reflector {
    /// Runs `reflector --map <map>... --iface <iface> --mode <mode>` in `ns` with
    /// `RUST_LOG=info`, and waits up to [`READY_TIMEOUT`] for a log line with the word
    /// `ready`. Panics with the log when it exits or stays silent instead.
    #[must_use]
    pub fn start(ns: &Netns, iface: &str, mode: Mode, maps: &[&str]) -> Self {
        let mut args = Vec::new();
        for map in maps {
            args.extend(["--map", map]);
        }
        args.extend(["--iface", iface, "--mode", mode.as_arg()]);
        Self::start_with_args(ns, &args)
    }

    /// Runs the daemon in `ns` with exactly `args` and waits for `ready` as
    /// [`Reflector::start`] does.
    #[must_use]
    pub fn start_with_args(ns: &Netns, args: &[&str]) -> Self {
        Self::start_command(&mut command(ns, &binary(), args))
    }

    /// Starts `cmd` (a daemon command line, e.g. from [`command`], possibly wrapped or
    /// restricted) and waits for `ready` as [`Reflector::start`] does.
    #[must_use]
    pub fn start_command(cmd: &mut Command) -> Self {
        let mut reflector = Self {
            process: Process::spawn(cmd),
            stopped: false,
        };
        let mut exited = None;
        let ready = poll_until(READY_TIMEOUT, || {
            if has_ready_line(&reflector.process.stderr()) {
                return true;
            }
            exited = reflector.process.try_status();
            exited.is_some()
        }) && exited.is_none();
        if !ready {
            let what = reflector.process.what().to_owned();
            let why = exited.map_or_else(
                || format!("did not log `ready` within {READY_TIMEOUT:?}"),
                |status| format!("exited ({status}) before logging `ready`"),
            );
            reflector.stopped = true;
            reflector.process.stop();
            panic!("`{what}` {why}{}", reflector.process.output_report());
        }
        reflector
    }

    /// The log so far.
    #[must_use]
    pub fn log(&self) -> String {
        self.process.stderr()
    }

    /// Its pid. `ip netns exec` (and `setpriv`) exec the daemon in place, so this is the
    /// daemon's own pid, e.g. for `/proc/<pid>/fd`.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.try_status().is_none()
    }

    /// Sends SIGTERM (or `signal`) and waits up to [`TERM_TIMEOUT`] for it to exit; returns
    /// its exit status and its whole log. Panics (with the log) when it does not exit.
    #[must_use]
    pub fn stop_with(mut self, signal: Signal) -> (ExitStatus, String) {
        self.stopped = true;
        self.process.signal(signal);
        let status = self.process.wait_exit(TERM_TIMEOUT);
        if status.is_some() {
            let _ = self.process.wait_output_closed(OUTPUT_TIMEOUT);
        }
        let log = self.process.stderr();
        let Some(status) = status else {
            self.process.stop();
            panic!(
                "`{}` did not exit within {TERM_TIMEOUT:?} of {signal}{}",
                self.process.what(),
                self.process.output_report()
            );
        };
        (status, log)
    }

    /// [`Reflector::stop_with`] SIGTERM.
    #[must_use]
    pub fn stop(self) -> (ExitStatus, String) {
        self.stop_with(Signal::SIGTERM)
    }

    /// [`Reflector::stop`], asserting a clean exit (status 0).
    pub fn stop_cleanly(self) {
        let (status, log) = self.stop();
        assert!(
            status.success(),
            "the reflector must exit 0 on SIGTERM ({status}); its log:\n{log}"
        );
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let status = self.process.stop();
        if std::thread::panicking() || status.is_none_or(|s| !s.success()) {
            let how = status.map_or_else(
                || format!("ignored SIGTERM for {TERM_TIMEOUT:?} and was killed"),
                |status| format!("exited ({status}) on SIGTERM"),
            );
            eprintln!(
                "reflector (`{}`) {how}; its output:{}",
                self.process.what(),
                self.process.output_report()
            );
        }
    }
}

/// Whether `log` has a line with the word `ready` (any case; `already` does not count).
#[must_use]
pub fn has_ready_line(log: &str) -> bool {
    log.lines().any(|line| {
        line.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word.eq_ignore_ascii_case("ready"))
    })
}

/// The message of the daemon's (last) exit summary line (`splice: tcp ... accepted, ...`), if its
/// log has one: the text after the `env_logger` header (`[<time> INFO  <target>] `).
#[must_use]
pub fn splice_summary(log: &str) -> Option<&str> {
    log.lines().rev().find_map(|line| {
        let message = line.split_once("] ").map_or(line, |(_, message)| message);
        message.starts_with("splice: ").then_some(message)
    })
}

/// Whether `text` contains `phrase` with no digit right before or after it, so
/// `refused 1` matches `(refused 1, timeout 0)` but not `refused 10` or `refused 1` in
/// `refused 12`.
#[must_use]
pub fn has_count(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(start, _)| {
        let before = text[..start].chars().next_back();
        let after = text[start + phrase.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// `<bin> <args...>` inside `ns` (through `ip netns exec`, which execs it in place), with
/// `RUST_LOG=info`; not started yet.
#[must_use]
pub fn command(ns: &Netns, bin: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = ns.command(&[&bin.to_string_lossy()]);
    cmd.args(args).env("RUST_LOG", "info");
    cmd
}

/// Runs the daemon in `ns` with `args`, expecting it to give up by itself: returns its
/// output once it exited, within [`REJECT_TIMEOUT`]. Panics (after stopping it) when it is
/// still running then.
#[must_use]
pub fn run_to_exit(ns: &Netns, args: &[&str]) -> Output {
    let mut process = Process::spawn(&mut command(ns, &binary(), args));
    let Some(status) = process.wait_exit(REJECT_TIMEOUT) else {
        process.stop();
        panic!(
            "`{}` was still running after {REJECT_TIMEOUT:?}{}",
            process.what(),
            process.output_report()
        );
    };
    let _ = process.wait_output_closed(OUTPUT_TIMEOUT);
    Output {
        status,
        stdout: process.stdout().into_bytes(),
        stderr: process.stderr().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::{has_count, has_ready_line, splice_summary};

    #[test]
    fn ready_is_a_word() {
        assert!(has_ready_line("[INFO reflector] ready: 1 interface(s)\n"));
        assert!(has_ready_line("x\nREADY\n"));
        assert!(!has_ready_line("already attached\n"));
        assert!(!has_ready_line("readying\n"));
    }

    #[test]
    fn counts_are_whole_numbers() {
        let summary = "splice: tcp 12 accepted, 0 active, 3 connect-back failures (refused 2, \
                       timeout 1, unreachable 0, other 0), 1 refused at max-conns";
        assert!(has_count(summary, "refused 2"));
        assert!(has_count(summary, "timeout 1"));
        assert!(has_count(summary, "1 refused at max-conns"));
        assert!(!has_count(summary, "refused 1"));
        assert!(!has_count(summary, "2 accepted"));
    }

    #[test]
    fn finds_the_summary_line() {
        let log = "[2025-01-01T00:00:00Z INFO  reflector::daemon] ready: x\n\
                   [2025-01-01T00:00:01Z INFO  reflector::splice] splice: tcp 1 accepted\n";
        assert_eq!(splice_summary(log), Some("splice: tcp 1 accepted"));
        assert_eq!(splice_summary("ready\n"), None);
    }
}
