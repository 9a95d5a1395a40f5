//! Shared harness for reflector integration tests.
//!
//! The end-to-end tests build two network namespaces per test, X (client and service) and
//! R (the reflector host), joined by a veth pair ([`Topology`]), run the daemon in R
//! ([`Reflector`]) and real servers and clients in X. Everything they create carries a
//! unique name (`rfl<pid>-<n>...`, [`names`]) and is removed by a guard on drop, also when
//! the test panics; processes are stopped by their pid, never by name. Every wait is
//! bounded in time and count.
//!
//! These tests need root (namespaces, BPF).
#![expect(
    clippy::missing_panics_doc,
    reason = "a test harness: every helper panics with a message instead of returning errors"
)]

pub mod attach;
pub mod bench_object;
pub mod client;
pub mod command;
pub mod container;
pub mod control_socket;
pub mod daemon;
pub mod differential;
pub mod enter;
pub mod firewall;
pub mod framegen;
pub mod hexdump;
pub mod invariants;
pub mod iperf;
pub mod kernel_fixture;
pub mod kind;
pub mod manifests;
pub mod model;
pub mod names;
pub mod netns;
pub mod notify;
pub mod packets;
pub mod pinning;
pub mod podman;
pub mod process;
pub mod prometheus;
pub mod raw;
pub mod reflection;
pub mod seccomp;
pub mod servers;
pub mod sshd;
pub mod tempdir;
pub mod test_run;
pub mod topology;
pub mod unbound;
pub mod verifier_log;
pub mod wait;

pub use attach::{Attachments, assert_nothing_attached};
pub use daemon::{Mode, Reflector};
pub use enter::{EnteredNetns, in_netns};
pub use kind::{Family, Proto};
pub use netns::Netns;
pub use process::Process;
pub use tempdir::TempDir;
pub use topology::{Link, ReflectorHost, Topology, TopologyOptions};

/// Panics unless running as root: everything here needs it.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the end-to-end tests need root (network namespaces, BPF): run them with \
         `cargo xtask test` or as root"
    );
}

/// Panics unless `program` is on `PATH`, naming the Debian `package` that provides it (the
/// tests use a few tools beyond `cargo xtask setup`'s basics).
pub fn require_tool(program: &str, package: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    assert!(
        found,
        "`{program}` is not on PATH: install the Debian package `{package}` \
         (`cargo xtask setup` does)"
    );
}
