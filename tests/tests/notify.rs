//! The service manager's notifications (`sd_notify(3)`), with the test as the manager: it owns
//! `NOTIFY_SOCKET` and checks `READY=1` (only once every interface has its mode, with the
//! modes in `STATUS=`), `WATCHDOG=1` at half of `WATCHDOG_USEC` (and none when
//! `WATCHDOG_PID` names another process), `RELOADING=1` with `MONOTONIC_USEC` then `READY=1`
//! around a SIGHUP reload, and `STOPPING=1` at exit, in TC and splice mode.
//!
//! Each test builds its own namespaces X and R (see `e2e.rs`); the daemon runs in R.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use reflector_tests::daemon::{self, REJECT_TIMEOUT};
use reflector_tests::notify::NotifySocket;
use reflector_tests::reflection::{Path, assert_reflected};
use reflector_tests::servers::peer_service;
use reflector_tests::{
    Attachments, Family, Mode, Process, Proto, Reflector, TempDir, Topology, require_root,
};

/// The watchdog timeout the tests give; pings are due every half of it.
const WATCHDOG_USEC: u64 = 1_000_000;
/// How long the pings are counted.
const WATCHDOG_WINDOW: Duration = Duration::from_secs(3);
/// How long a notification may take after its cause.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes a config file mapping `maps` into `dir`; returns its path.
fn write_config(dir: &TempDir, maps: &[&str]) -> String {
    let path = dir.join("reflector.toml");
    let list: Vec<String> = maps.iter().map(|map| format!("\"{map}\"")).collect();
    fs::write(&path, format!("maps = [{}]\n", list.join(", ")))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

fn send(reflector: &Reflector, signal: Signal) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(reflector.pid()).expect("a pid fits i32")),
        signal,
    )
    .unwrap_or_else(|e| panic!("cannot send {signal} to the reflector: {e}"));
}

/// `CLOCK_MONOTONIC` in microseconds, the clock of `MONOTONIC_USEC`.
fn monotonic_usec() -> u64 {
    let now =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    u64::try_from(now.tv_sec()).expect("a positive time") * 1_000_000
        + u64::try_from(now.tv_nsec()).expect("a positive time") / 1_000
}

/// Waits [`WATCHDOG_WINDOW`] and checks the `WATCHDOG=1` pings since `since`: about one per
/// half of [`WATCHDOG_USEC`], that far apart on average.
fn assert_watchdog_rate(socket: &NotifySocket, since: Instant) {
    std::thread::sleep(WATCHDOG_WINDOW);
    let pings: Vec<Instant> = socket
        .received()
        .iter()
        .filter(|n| n.has("WATCHDOG=1") && n.at >= since)
        .map(|n| n.at)
        .collect();
    let period = Duration::from_micros(WATCHDOG_USEC / 2);
    let expected = WATCHDOG_WINDOW.as_millis() / period.as_millis();
    // Loose bounds: the machine is shared and the count depends on when the window began.
    assert!(
        (expected.saturating_sub(2)..=expected + 2).contains(&(pings.len() as u128)),
        "about {expected} watchdog pings in {WATCHDOG_WINDOW:?} at one per {period:?}, got \
         {}: {:#?}",
        pings.len(),
        socket.received()
    );
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len().max(1)).unwrap_or(1);
    assert!(
        mean >= period * 8 / 10 && mean <= period * 13 / 10,
        "pings {period:?} apart on average, found {mean:?}: {gaps:?}"
    );
}

/// The whole life of a daemon under a manager, in `mode`.
fn lifecycle(mode: Mode, socket: &NotifySocket) {
    require_root();
    let topology = Topology::for_mode(mode);
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let dir = TempDir::new("conf");
    let config = write_config(&dir, &["10022:22"]);
    let mut cmd = daemon::command(
        topology.r(),
        &daemon::binary(),
        &[
            "--config",
            &config,
            "--iface",
            topology.r_iface(),
            "--mode",
            mode.as_arg(),
        ],
    );
    cmd.env("NOTIFY_SOCKET", socket.value())
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .env_remove("WATCHDOG_PID");
    let reflector = Reflector::start_command(&mut cmd);

    // READY=1 first, once the interface has its mode, which STATUS= names.
    let (index, ready) = socket.wait_for("READY=1", 0, NOTIFY_TIMEOUT);
    assert_eq!(
        index,
        0,
        "READY=1 is the first notification: {:#?}",
        socket.received()
    );
    let status = format!(
        "reflecting 10022:22/tcp on {} ({})",
        topology.r_iface(),
        mode.as_arg()
    );
    assert_eq!(ready.get("STATUS"), Some(status.as_str()), "{ready:?}");
    let attached = Attachments::of(topology.r(), topology.r_iface());
    assert_eq!(
        attached.has_tc(),
        mode == Mode::Tc,
        "at READY=1 the program is attached in TC mode, not in splice mode:\n{attached}"
    );
    let path = if mode == Mode::Tc {
        Path::Kernel
    } else {
        Path::Splice
    };
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, 10_022, "ready");

    assert_watchdog_rate(socket, ready.at);

    // SIGHUP: RELOADING=1 with the time it began, then READY=1 with the new maps.
    write_config(&dir, &["10022:22", "10023:22"]);
    let seen = socket.received().len();
    let before = monotonic_usec();
    send(&reflector, Signal::SIGHUP);
    let (reloading_index, reloading) = socket.wait_for("RELOADING=1", seen, NOTIFY_TIMEOUT);
    let after = monotonic_usec();
    let stamp: u64 = reloading
        .get("MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("RELOADING=1 carries MONOTONIC_USEC: {reloading:?}"));
    assert!(
        (before..=after).contains(&stamp),
        "MONOTONIC_USEC {stamp} is when the reload began, between {before} and {after}"
    );
    let (_, reloaded) = socket.wait_for("READY=1", reloading_index + 1, NOTIFY_TIMEOUT);
    let status = format!(
        "reflecting 10022:22/tcp 10023:22/tcp on {} ({})",
        topology.r_iface(),
        mode.as_arg()
    );
    assert_eq!(
        reloaded.get("STATUS"),
        Some(status.as_str()),
        "{reloaded:?}"
    );
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, 10_023, "reloaded");

    // SIGTERM: STOPPING=1, the last word, and a clean exit.
    let seen = socket.received().len();
    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
    let (stopping_index, _) = socket.wait_for("STOPPING=1", seen, NOTIFY_TIMEOUT);
    let received = socket.received();
    assert_eq!(
        stopping_index,
        received.len() - 1,
        "nothing after STOPPING=1: {received:#?}"
    );
}

#[test]
fn tc_mode_notifies_ready_watchdog_reload_and_stop() {
    lifecycle(Mode::Tc, &NotifySocket::at_path());
}

#[test]
fn splice_mode_notifies_ready_watchdog_reload_and_stop() {
    lifecycle(Mode::Splice, &NotifySocket::at_path());
}

/// An abstract `NOTIFY_SOCKET` works, and a watchdog meant for another process
/// (`WATCHDOG_PID`) is not pinged.
#[test]
fn abstract_socket_and_a_watchdog_for_another_pid() {
    require_root();
    let topology = Topology::for_mode(Mode::Splice);
    let socket = NotifySocket::abstract_in(topology.r());
    let mut cmd = daemon::command(
        topology.r(),
        &daemon::binary(),
        &[
            "--map",
            "10022:22",
            "--iface",
            topology.r_iface(),
            "--mode",
            "splice",
        ],
    );
    cmd.env("NOTIFY_SOCKET", socket.value())
        .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
        .env("WATCHDOG_PID", "1");
    let reflector = Reflector::start_command(&mut cmd);
    let (_, ready) = socket.wait_for("READY=1", 0, NOTIFY_TIMEOUT);
    std::thread::sleep(Duration::from_micros(WATCHDOG_USEC * 2));
    let pings = socket
        .received()
        .iter()
        .filter(|n| n.has("WATCHDOG=1"))
        .count();
    assert_eq!(
        pings,
        0,
        "no pings for pid 1's watchdog: {:#?}",
        socket.received()
    );
    assert!(
        ready.get("STATUS").is_some_and(|s| s.contains("(splice)")),
        "{ready:?}"
    );
    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
    let _ = socket.wait_for("STOPPING=1", 0, NOTIFY_TIMEOUT);
}

/// A daemon that cannot give every interface a mode never says READY=1.
#[test]
fn no_ready_when_start_fails() {
    require_root();
    let topology = Topology::for_mode(Mode::Tc);
    let socket = NotifySocket::at_path();
    // Another daemon holds the listen port: the second fails before attaching anything.
    let _first = Reflector::start(
        topology.r(),
        topology.r_iface(),
        Mode::Splice,
        &["10022:22"],
    );
    let mut cmd = daemon::command(
        topology.r(),
        &daemon::binary(),
        &[
            "--map",
            "10022:22",
            "--iface",
            topology.r_iface(),
            "--mode",
            "tc",
        ],
    );
    cmd.env("NOTIFY_SOCKET", socket.value());
    let mut second = Process::spawn(&mut cmd);
    let status = second
        .wait_exit(REJECT_TIMEOUT)
        .unwrap_or_else(|| panic!("the second daemon gives up{}", second.output_report()));
    assert!(!status.success(), "{}", second.output_report());
    let received = socket.received();
    assert!(
        !received.iter().any(|n| n.has("READY=1")),
        "no READY=1 from a daemon that failed: {received:#?}{}",
        second.output_report()
    );
}
