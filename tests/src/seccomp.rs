//! Seccomp: starting a process where bpf(2) fails, as under a container runtime's default
//! profile.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use nix::libc;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Makes bpf(2) fail with `EPERM` in the process `cmd` starts (and in everything it execs
/// or forks); every other system call is allowed.
///
/// The filter is compiled here, before the fork; the child only installs it, right before
/// exec (with `no_new_privs`, which the kernel requires). When `cmd` goes through
/// `ip netns exec`, `ip` runs under the filter too, which it does not mind: it does not
/// use bpf(2).
pub fn deny_bpf(cmd: &mut Command) {
    let arch = TargetArch::try_from(std::env::consts::ARCH).unwrap_or_else(|e| {
        panic!(
            "seccompiler has no filter for this architecture ({}): {e}",
            std::env::consts::ARCH
        )
    });
    let eperm = u32::try_from(libc::EPERM).expect("EPERM is positive");
    let filter = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_bpf, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(eperm),
        arch,
    )
    .unwrap_or_else(|e| panic!("cannot build the seccomp filter that denies bpf(2): {e}"));
    let program: BpfProgram = filter
        .try_into()
        .unwrap_or_else(|e| panic!("cannot compile the seccomp filter that denies bpf(2): {e}"));
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed: it makes two system calls (prctl, seccomp) on a
    // program compiled before the fork, and on failure builds an `io::Error` from errno
    // without allocating.
    #[expect(
        clippy::map_err_ignore,
        reason = "formatting seccompiler's error would allocate; errno says what failed"
    )]
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&program).map_err(|_| io::Error::last_os_error())
        });
    }
}
