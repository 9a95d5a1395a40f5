//! Zero-downtime restart (`--pin DIR`): the kernel path outlives the daemon, the next
//! daemon adopts it without detaching, and `reflector detach --pin DIR` removes it.
//!
//! Each test builds its own namespaces X and R (see `e2e.rs`) and pins into a bpffs of its
//! own, mounted on a temporary directory: `ip netns exec`, which runs the daemon in R,
//! mounts a fresh sysfs on /sys and so hides the host's /sys/fs/bpf. A guard runs
//! `reflector detach --pin DIR` and unmounts it, also when the test panics.

use std::net::SocketAddr;
use std::time::Duration;

use reflector_tests::client::tcp_line;
use reflector_tests::pinning::{LongSession, PinDir};
use reflector_tests::reflector::run_to_exit;
use reflector_tests::servers::{Session, session_service};
use reflector_tests::wait::wait_until;
use reflector_tests::{
    Attachments, Family, Mode, Reflector, TempDir, Topology, assert_nothing_attached,
};

/// R's listen port and X's service port.
const LISTEN: u16 = 10_022;
const SERVICE: u16 = 22;
/// How long the kernel may take to let go of an unpinned link.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

fn pinned_args<'a>(topology: &'a Topology, mode: Mode, pin: &'a PinDir) -> Vec<&'a str> {
    vec![
        "--map",
        "10022:22",
        "--iface",
        topology.r_iface(),
        "--mode",
        mode.as_arg(),
        "--pin",
        pin.arg(),
    ]
}

/// A long TCP session through the reflector survives a restart with `--pin`: it goes on
/// while no daemon runs, and the next daemon adopts the pinned state.
fn session_survives_restart(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    let _service = session_service(topology.x(), Session::Lines, Family::V4, SERVICE);
    let args = pinned_args(&topology, mode, &pin);

    let first = Reflector::start_with_args(r, &args);
    assert!(
        first.log().contains("pinned the kernel program"),
        "a first start pins:\n{}",
        first.log()
    );
    let mut session = LongSession::open(&topology, LISTEN);
    session.exchange("before", 5);

    let (status, log) = first.stop();
    assert!(status.success(), "SIGTERM exits 0 ({status}):\n{log}");
    assert!(
        log.contains("left the kernel program attached"),
        "a pinned daemon leaves the program attached:\n{log}"
    );
    let attached = Attachments::of(r, iface);
    assert!(
        attached.any(),
        "with no daemon running the program stays attached:\n{attached}"
    );
    session.exchange("no-daemon", 5);
    let to = SocketAddr::new(topology.r_addr(Family::V4), LISTEN);
    let (_, reply) = tcp_line(topology.x(), to, "new connection, no daemon");
    assert!(
        reply.ends_with("new connection, no daemon"),
        "new connections are reflected with no daemon running: {reply:?}"
    );

    let second = Reflector::start_with_args(r, &args);
    let log = second.log();
    assert!(
        log.contains("adopted the pinned state")
            && log.contains(&format!(
                "{iface}: reflecting with {} (adopted",
                mode.as_arg()
            )),
        "the second daemon adopts the pinned state and link:\n{log}"
    );
    assert!(
        !log.contains("pinned the kernel program"),
        "the second daemon must not load anew:\n{log}"
    );
    session.exchange("after", 5);
    second.stop_cleanly();
    session.exchange("stopped-again", 2);
}

#[test]
fn pin_session_survives_restart_tc() {
    session_survives_restart(Mode::Tc);
}

#[test]
fn pin_session_survives_restart_xdp_skb() {
    session_survives_restart(Mode::XdpSkb);
}

/// `reflector detach --pin DIR` detaches everything and removes the pins; run again, it
/// says there is nothing.
#[test]
fn pin_detach_leaves_nothing() {
    let topology = Topology::for_mode(Mode::Tc);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    let reflector = Reflector::start_with_args(r, &pinned_args(&topology, Mode::Tc, &pin));
    reflector.stop_cleanly();
    assert!(Attachments::of(r, iface).any(), "pinned: still attached");

    let (ok, text) = pin.detach();
    assert!(ok, "reflector detach fails: {text}");
    assert!(
        text.contains(&format!("detached tc from {iface}")),
        "detach names what it detached: {text}"
    );
    wait_until(
        "the kernel to drop the unpinned link",
        DETACH_TIMEOUT,
        || !Attachments::of(r, iface).any(),
    );
    assert_nothing_attached(r, iface);
    assert!(!pin.dir().exists(), "{} must be gone", pin.dir().display());

    let (ok, text) = pin.detach();
    assert!(ok && text.contains("nothing pinned at"), "{text}");
}

/// A pin directory off bpffs fails at start, saying how to mount one; splice mode ignores
/// `--pin` with a warning.
#[test]
fn pin_needs_bpffs_and_a_kernel_mode() {
    let topology = Topology::for_mode(Mode::Tc);
    let (r, iface) = (topology.r(), topology.r_iface());
    let tmp = TempDir::new("nopin");
    let dir = tmp.join("reflector");
    let dir = dir.to_str().expect("a UTF-8 temporary path");
    let output = run_to_exit(
        r,
        &[
            "--map", "10022:22", "--iface", iface, "--mode", "tc", "--pin", dir,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("is not on a BPF filesystem")
            && stderr.contains("mount -t bpf bpf /sys/fs/bpf"),
        "{stderr}"
    );
    assert_nothing_attached(r, iface);

    let reflector = Reflector::start_with_args(
        r,
        &[
            "--map", "10022:22", "--iface", iface, "--mode", "splice", "--pin", dir,
        ],
    );
    assert!(
        reflector.log().contains("ignored in splice mode"),
        "{}",
        reflector.log()
    );
    reflector.stop_cleanly();
}
