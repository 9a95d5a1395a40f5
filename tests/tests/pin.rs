//! Zero-downtime restart (`--pin DIR`): the kernel path outlives the daemon, the next
//! daemon adopts it without detaching, and `reflector detach --pin DIR` removes it.
//!
//! Each test builds its own namespaces X and R (see `e2e.rs`) and pins into a bpffs of its
//! own, mounted on a temporary directory: `ip netns exec`, which runs the daemon in R,
//! mounts a fresh sysfs on /sys and so hides the host's /sys/fs/bpf. A guard runs
//! `reflector detach --pin DIR` and unmounts it, also when the test panics.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reflector_common::{STATS_LEN, maps::PIN_LAYOUT_VERSION};
use reflector_tests::attach::{has_clsact, kernel_has_tcx};
use reflector_tests::client::{tcp_line, under_check_load};
use reflector_tests::command::run;
use reflector_tests::daemon::run_to_exit;
use reflector_tests::pinning::{LongSession, PinDir};
use reflector_tests::servers::{Nginx, Session, session_service};
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

/// Before kernel 6.6 (no TCX), TC attaches with netlink filters, which cannot be pinned:
/// `--mode tc --pin` refuses at start, naming why and what to use, and leaves nothing
/// behind (no filter, no clsact qdisc). Returns whether that was the case.
fn tc_pin_refused_without_tcx(topology: &Topology, mode: Mode, pin: &PinDir) -> bool {
    if mode != Mode::Tc || kernel_has_tcx() {
        return false;
    }
    let (r, iface) = (topology.r(), topology.r_iface());
    let output = run_to_exit(r, &pinned_args(topology, mode, pin));
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && text.contains("cannot be pinned on this kernel")
            && text.contains("use xdp or xdp-skb with --pin"),
        "before kernel 6.6 tc with --pin must refuse, saying why ({}):\n{text}",
        output.status
    );
    assert_nothing_attached(r, iface);
    assert!(
        !has_clsact(r, iface),
        "no clsact qdisc left behind:\n{text}"
    );
    true
}

/// A long TCP session through the reflector survives a restart with `--pin`: it goes on
/// while no daemon runs, and the next daemon adopts the pinned state.
fn session_survives_restart(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    if tc_pin_refused_without_tcx(&topology, mode, &pin) {
        return;
    }
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
    // TC links can be pinned from kernel 6.6 (TCX) only.
    let mode = if kernel_has_tcx() {
        Mode::Tc
    } else {
        Mode::XdpSkb
    };
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    let reflector = Reflector::start_with_args(r, &pinned_args(&topology, mode, &pin));
    reflector.stop_cleanly();
    assert!(Attachments::of(r, iface).any(), "pinned: still attached");

    let (ok, text) = pin.detach();
    assert!(ok, "reflector detach fails: {text}");
    assert!(
        text.contains(&format!("detached {} from {iface}", mode.as_arg())),
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

/// `auto` with `--pin` on a veth picks a mode whose link can be pinned: TC (a TCX link) from
/// kernel 6.6; before, TC's netlink filter cannot be pinned, so XDP.
#[test]
fn pin_auto_picks_a_pinnable_mode() {
    let topology = Topology::for_mode(Mode::Auto);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    let reflector = Reflector::start_with_args(r, &pinned_args(&topology, Mode::Auto, &pin));
    let log = reflector.log();
    let expected = if kernel_has_tcx() { "tc" } else { "xdp" };
    let chosen = log.lines().find_map(|line| {
        let (_, rest) = line.split_once(&format!("{iface}: reflecting with "))?;
        rest.split_whitespace().next()
    });
    assert_eq!(
        chosen,
        Some(expected),
        "auto with --pin must reflect with {expected} on this kernel:\n{log}"
    );
    assert!(
        !kernel_has_tcx() || !has_clsact(r, iface),
        "TCX needs no clsact"
    );
    reflector.stop_cleanly();
    let (ok, text) = pin.detach();
    assert!(ok, "reflector detach fails: {text}");
    assert!(!has_clsact(r, iface), "no clsact qdisc left behind:\n{log}");
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

/// How a test makes a pin directory of another layout than this reflector's.
#[derive(Clone, Copy, Debug)]
enum OtherLayout {
    /// As a reflector older than layout versions left it: no stamp.
    Unstamped,
    /// Stamped with a version this reflector does not know.
    OtherVersion,
    /// The statistics array replaced by one with other max entries (as a reflector with
    /// another number of pass reasons would have pinned it).
    OtherStatsSize,
}

/// A pin directory of another layout is refused at start, naming what differs and telling
/// to `reflector detach` and restart; nothing is changed: the pinned program goes on
/// reflecting, and after `reflector detach` a start pins afresh.
fn refuses_other_layout(other: OtherLayout, mode: Mode) {
    // TC links can be pinned from kernel 6.6 (TCX) only.
    let first_mode = if kernel_has_tcx() {
        Mode::Tc
    } else {
        Mode::XdpSkb
    };
    let topology = Topology::for_mode(first_mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    if tc_pin_refused_without_tcx(&topology, mode, &pin) {
        return;
    }
    let _service = session_service(topology.x(), Session::Lines, Family::V4, SERVICE);
    let first = Reflector::start_with_args(r, &pinned_args(&topology, first_mode, &pin));
    first.stop_cleanly();
    let stamp = pin.dir().join(format!("layout-v{PIN_LAYOUT_VERSION}"));
    assert!(
        stamp.is_dir(),
        "a pin directory carries its layout stamp {}",
        stamp.display()
    );
    let expected = match other {
        OtherLayout::Unstamped => {
            std::fs::remove_dir(&stamp).expect("remove the layout stamp");
            "it has no layout stamp".to_owned()
        }
        OtherLayout::OtherVersion => {
            std::fs::rename(&stamp, pin.dir().join("layout-v999")).expect("restamp");
            format!("it is stamped layout-v999, this reflector uses layout {PIN_LAYOUT_VERSION}")
        }
        OtherLayout::OtherStatsSize => {
            let stats = pin.dir().join("STATS");
            std::fs::remove_file(&stats).expect("unpin STATS");
            run(Command::new("bpftool")
                .args(["map", "create"])
                .arg(&stats)
                .args([
                    "type",
                    "percpu_array",
                    "key",
                    "4",
                    "value",
                    "16",
                    "entries",
                    "7",
                    "name",
                    "STATS",
                ]));
            format!(
                "map STATS: PerCpuArray with key size 4, value size 16, max entries 7; this \
                 reflector needs PerCpuArray with key size 4, value size 16, max entries \
                 {STATS_LEN}"
            )
        }
    };
    let mut args = pinned_args(&topology, first_mode, &pin);
    let mode_arg = args.iter().position(|&a| a == "--mode").expect("--mode") + 1;
    args[mode_arg] = mode.as_arg();
    let output = run_to_exit(r, &args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && stderr.contains("holds a pinned reflector of another layout")
            && stderr.contains(&expected)
            && stderr.contains(&format!("reflector detach --pin {}", pin.arg())),
        "{other:?} in {} mode: the start must be refused, naming what differs ({expected}) \
         and the way out:\n{stderr}",
        mode.as_arg()
    );
    assert!(
        !stderr.contains("reflecting with"),
        "a refused start attaches nothing:\n{stderr}"
    );
    let to = SocketAddr::new(topology.r_addr(Family::V4), LISTEN);
    let (_, reply) = tcp_line(topology.x(), to, "still reflected");
    assert!(
        reply.ends_with("still reflected"),
        "the pinned program goes on reflecting after a refused start: {reply:?}"
    );
    assert!(Attachments::of(r, iface).any(), "still attached");

    let (ok, text) = pin.detach();
    assert!(
        ok,
        "reflector detach fails on a directory of another layout: {text}"
    );
    let fresh = Reflector::start_with_args(r, &pinned_args(&topology, first_mode, &pin));
    assert!(
        fresh.log().contains("pinned the kernel program"),
        "after detach a start pins afresh:\n{}",
        fresh.log()
    );
    fresh.stop_cleanly();
}

#[test]
fn pin_refuses_unstamped_layout() {
    refuses_other_layout(OtherLayout::Unstamped, Mode::Tc);
}

#[test]
fn pin_refuses_other_layout_version() {
    refuses_other_layout(OtherLayout::OtherVersion, Mode::Tc);
}

/// Also in `auto` mode, which must not fall back to splice beside the pinned program.
#[test]
fn pin_refuses_other_map_size_auto() {
    refuses_other_layout(OtherLayout::OtherStatsSize, Mode::Auto);
}

/// Health-check workers of the kill-under-load test.
const LOAD_WORKERS: usize = 8;
/// How long each phase of the kill-under-load test lasts.
const LOAD_PHASE: Duration = Duration::from_secs(1);

/// A pinned daemon killed with SIGKILL under heavy traffic (health checks against nginx
/// from 8 workers, back to back): not one check fails, before the kill, while no daemon
/// runs, or after the next start, which adopts the pinned state.
fn pin_sigkill_under_load(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let (r, iface) = (topology.r(), topology.r_iface());
    let pin = PinDir::mount();
    if tc_pin_refused_without_tcx(&topology, mode, &pin) {
        return;
    }
    let _nginx = Nginx::start(topology.x(), 80, &[("index.html", b"ok\n")]);
    let args = [
        "--map",
        "10080:80",
        "--iface",
        iface,
        "--mode",
        mode.as_arg(),
        "--pin",
        pin.arg(),
    ];
    let first = Reflector::start_with_args(r, &args);
    let to = SocketAddr::new(topology.r_addr(Family::V4), 10_080);
    let ((killed, restarted, second), outcomes) =
        under_check_load(topology.x(), to, LOAD_WORKERS, || {
            std::thread::sleep(LOAD_PHASE);
            let killed = Instant::now();
            let (status, log) = first.stop_with(Signal::SIGKILL);
            assert_eq!(
                status.signal(),
                Some(Signal::SIGKILL as i32),
                "killed by SIGKILL ({status}):\n{log}"
            );
            std::thread::sleep(LOAD_PHASE);
            let restarted = Instant::now();
            let second = Reflector::start_with_args(r, &args);
            std::thread::sleep(LOAD_PHASE);
            (killed, restarted, second)
        });
    assert!(
        second.log().contains("adopted the pinned state")
            && second.log().contains(&format!(
                "{iface}: reflecting with {} (adopted",
                mode.as_arg()
            )),
        "the next start adopts:\n{}",
        second.log()
    );
    let failed: Vec<&String> = outcomes
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    let phase = |from: Instant, to: Option<Instant>| {
        outcomes
            .iter()
            .filter(|(began, _)| *began >= from && to.is_none_or(|to| *began < to))
            .count()
    };
    let start = outcomes
        .iter()
        .map(|(began, _)| *began)
        .min()
        .expect("checks were made");
    let counts = (
        phase(start, Some(killed)),
        phase(killed, Some(restarted)),
        phase(restarted, None),
    );
    assert!(
        failed.is_empty() && counts.0 > 0 && counts.1 > 0 && counts.2 > 0,
        "checks before the kill, with no daemon, after the restart: {counts:?}; {} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    second.stop_cleanly();
}

#[test]
fn pin_sigkill_under_load_tc() {
    pin_sigkill_under_load(Mode::Tc);
}

#[test]
fn pin_sigkill_under_load_xdp_skb() {
    pin_sigkill_under_load(Mode::XdpSkb);
}
