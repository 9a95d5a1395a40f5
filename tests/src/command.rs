//! Running short commands to completion, within a time limit, with a clear panic message
//! when they fail.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::wait::poll_until;

/// How long a helper command (`ip`, `ethtool`, `curl`, ...) may take by default.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The command line of `cmd`, for messages.
#[must_use]
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@[]%+".contains(c))
    {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Starts `cmd` with stdin closed, stdout and stderr piped, in a process group of its own
/// (so it can be stopped by its group id). Returns the child and `cmd` as shown in messages.
pub fn spawn_grouped(cmd: &mut Command) -> (std::process::Child, String) {
    let shown = describe(cmd);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{shown}`: {e}"));
    (child, shown)
}

/// Runs `cmd` to completion with stdin closed, capturing stdout and stderr. It runs in a
/// process group of its own; when it is not done within `timeout` the group is killed (by
/// its id) and this panics. A non-zero exit is returned, not a panic.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let (mut child, shown) = spawn_grouped(cmd);
    let readers = Readers::start(&mut child);
    let mut status = None;
    poll_until(timeout, || {
        status = child
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for `{shown}`: {e}"));
        status.is_some()
    });
    let Some(status) = status else {
        kill_group(&child, Signal::SIGKILL);
        let _ = child.wait();
        let (stdout, stderr) = readers.finish();
        panic!(
            "`{shown}` did not finish within {timeout:?}{}",
            format_output(&stdout, &stderr)
        );
    };
    let (stdout, stderr) = readers.finish();
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Runs `cmd` within [`COMMAND_TIMEOUT`] and returns its stdout; panics with the command
/// line, exit status and output unless it exits 0.
pub fn run(cmd: &mut Command) -> String {
    let output = output_within(cmd, COMMAND_TIMEOUT);
    check(cmd, &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Panics with the command line, exit status and output unless `output` is a success.
pub fn check(cmd: &Command, output: &Output) {
    assert!(
        output.status.success(),
        "`{}` failed ({}){}",
        describe(cmd),
        output.status,
        format_output(&output.stdout, &output.stderr)
    );
}

/// Stdout and stderr, labelled, for a panic message.
#[must_use]
pub fn format_output(stdout: &[u8], stderr: &[u8]) -> String {
    let mut text = String::new();
    for (label, bytes) in [("stdout", stdout), ("stderr", stderr)] {
        let bytes = String::from_utf8_lossy(bytes);
        let bytes = bytes.trim_end();
        if !bytes.is_empty() {
            let _ = write!(text, "\n--- {label} ---\n{bytes}");
        }
    }
    text
}

/// Sends `signal` to the process group led by `child` (every process it started, unless
/// they left the group). Errors (the group is gone already) are ignored.
pub fn kill_group(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id()).expect("pid fits in i32");
    let _ = killpg(Pid::from_raw(pid), signal);
}

/// Threads draining a child's stdout and stderr, so it never blocks on a full pipe.
struct Readers {
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Readers {
    fn start(child: &mut Child) -> Self {
        fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        }
        Self {
            stdout: child.stdout.take().map(drain),
            stderr: child.stderr.take().map(drain),
        }
    }

    fn finish(self) -> (Vec<u8>, Vec<u8>) {
        let join = |h: Option<JoinHandle<Vec<u8>>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        (join(self.stdout), join(self.stderr))
    }
}
