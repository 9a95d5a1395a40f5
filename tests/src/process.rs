//! Long-running processes (servers, the daemon) that are stopped by their process id on
//! drop, never by name.

use std::io::Read;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::command::{format_output, kill_group, spawn_grouped};
use crate::wait::poll_until;

/// How long a process gets to exit after SIGTERM before it gets SIGKILL.
pub const TERM_TIMEOUT: Duration = Duration::from_secs(10);

/// A process started by a test, in a process group of its own (so whatever it forks goes
/// with it), its stdout and stderr drained into buffers by background threads.
///
/// On drop it gets SIGTERM, then SIGKILL if it has not exited within [`TERM_TIMEOUT`];
/// signals go to its process group id, which is its pid.
#[derive(Debug)]
pub struct Process {
    what: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd` with stdin closed.
    pub fn spawn(cmd: &mut Command) -> Self {
        let (mut child, what) = spawn_grouped(cmd);
        let mut readers = Vec::new();
        let stdout = drain(child.stdout.take(), &mut readers);
        let stderr = drain(child.stderr.take(), &mut readers);
        Self {
            what,
            child,
            stdout,
            stderr,
            readers,
            status: None,
        }
    }

    /// The command line it was started with.
    #[must_use]
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Its pid (also its process group id).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        read_buffer(&self.stdout)
    }

    /// What it wrote to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        read_buffer(&self.stderr)
    }

    /// Waits up to `timeout` until both outputs reached end of file (the process and
    /// everything it forked closed them), so [`Process::stdout`] and [`Process::stderr`]
    /// are complete. Returns whether they did.
    #[must_use]
    pub fn wait_output_closed(&self, timeout: Duration) -> bool {
        poll_until(timeout, || self.readers.iter().all(JoinHandle::is_finished))
    }

    /// Both outputs, labelled, for a panic message.
    #[must_use]
    pub fn output_report(&self) -> String {
        format_output(self.stdout().as_bytes(), self.stderr().as_bytes())
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot wait for `{}`: {e}", self.what));
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.try_status().is_some());
        self.status
    }

    /// Sends `signal` to its process group, unless it has exited and been reaped.
    pub fn signal(&mut self, signal: Signal) {
        if self.try_status().is_none() {
            kill_group(&self.child, signal);
        }
    }

    /// SIGTERM, then up to `timeout` for it to exit. `None` when it did not.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(Signal::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Stops it (SIGTERM, then SIGKILL after [`TERM_TIMEOUT`]) and returns its exit status.
    /// Returns `None` (after killing it) when SIGTERM was not enough.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.try_status() {
            // It was reaped earlier: by now its group id may belong to someone else.
            return Some(status);
        }
        let status = self.terminate(TERM_TIMEOUT);
        if status.is_none() {
            self.kill();
        }
        // Whatever it forked and left in its group goes too. Safe right after reaping: a
        // group id is not handed out again while the group has members.
        kill_group(&self.child, Signal::SIGKILL);
        status
    }

    fn kill(&mut self) {
        kill_group(&self.child, Signal::SIGKILL);
        if self.wait_exit(TERM_TIMEOUT).is_none() {
            eprintln!(
                "process {} (`{}`) survived SIGKILL for {TERM_TIMEOUT:?}",
                self.pid(),
                self.what
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.status.is_none() && self.stop().is_none() {
            eprintln!(
                "process {} (`{}`) ignored SIGTERM and was killed{}",
                self.pid(),
                self.what,
                self.output_report()
            );
        }
    }
}

fn drain(
    pipe: Option<impl Read + Send + 'static>,
    readers: &mut Vec<JoinHandle<()>>,
) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let sink = Arc::clone(&buffer);
        // Ends at end of file, i.e. when the process group has exited.
        readers.push(thread::spawn(move || {
            let mut chunk = [0_u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&chunk[..n]);
            }
        }));
    }
    buffer
}

fn read_buffer(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

/// What the process `pid` has open: the target of every entry of `/proc/<pid>/fd`
/// (`socket:[...]`, `pipe:[...]`, `anon_inode:[eventpoll]`, a path), sorted.
#[must_use]
pub fn open_fds(pid: u32) -> Vec<String> {
    let dir = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {dir}: {e}"));
    let mut fds: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            // An fd closed between listing and reading reads as gone, not as an error.
            std::fs::read_link(entry.path()).map_or_else(
                |_| "(closed meanwhile)".to_owned(),
                |target| target.to_string_lossy().into_owned(),
            )
        })
        .collect();
    fds.sort();
    fds
}
