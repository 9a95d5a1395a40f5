//! `deploy/systemd/reflector.service`: its exposure rating within the CI threshold, and the
//! unit run by a real systemd (PID 1 of a booted Debian container, `systemd-nspawn`) in
//! namespace R of a test topology: started (`Type=notify`: active only after `READY=1`),
//! reflecting on the kernel path with only its four capabilities, watchdog pinged,
//! reloaded with `systemctl reload` (new maps from the file), stopped with nothing left
//! attached.
//!
//! They need root, `systemd-analyze` (systemd), `systemd-nspawn` (systemd-container),
//! `debootstrap` and `nsenter`; the container's root is debootstrapped once into
//! `target/tmp` from the host's configured Debian mirror.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reflector_tests::command::output_within;
use reflector_tests::container::Container;
use reflector_tests::reflection::{Path as Via, assert_reflected};
use reflector_tests::servers::peer_service;
use reflector_tests::wait::wait_until;
use reflector_tests::{
    Family, Mode, Proto, TempDir, Topology, assert_nothing_attached, require_root, require_tool,
};

/// The unit file under test.
const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/systemd/reflector.service"
);
/// Its tmpfiles.d entry.
const TMPFILES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/systemd/reflector.tmpfile"
);
/// The highest exposure CI accepts, in `--threshold` units (tenths of the rating shown).
const EXPOSURE_THRESHOLD: u32 = 25;
/// `CAP_NET_BIND_SERVICE` (10), `CAP_NET_ADMIN` (12), `CAP_PERFMON` (38), `CAP_BPF` (39).
const CAPABILITIES: u64 = 1 << 10 | 1 << 12 | 1 << 38 | 1 << 39;
/// What the daemon keeps of them once attached (this kernel has TCX, so detaching needs no
/// netlink): `CAP_NET_BIND_SERVICE` and `CAP_BPF`.
const KEPT: u64 = 1 << 10 | 1 << 39;
/// How long a change may take to show.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(20);

/// `systemd-analyze security --offline=true --threshold=N` on `unit`: whether it passed,
/// and the overall rating line.
fn security(unit: &Path) -> (bool, String) {
    let output = output_within(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--threshold={EXPOSURE_THRESHOLD}"))
            .arg(unit)
            // It looks up the binary: the offline check only reads the unit.
            .current_dir(unit.parent().expect("the unit's directory")),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let overall = text
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall rating from systemd-analyze:\n{text}"))
        .to_owned();
    (output.status.success(), overall)
}

/// The unit's exposure is at most 2.5; the same unit without its hardening is refused by
/// the same check.
#[test]
fn unit_exposure_is_within_the_threshold() {
    require_tool("systemd-analyze", "systemd");
    let (passed, overall) = security(Path::new(UNIT));
    eprintln!("{overall}");
    let rating: f64 = overall
        .split_whitespace()
        .find_map(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("no number in {overall:?}"));
    assert!(passed && rating <= 2.5, "exposure above 2.5: {overall}");

    let dir = TempDir::new("unit");
    let bare = dir.join("reflector.service");
    let text = fs::read_to_string(UNIT).expect("the unit");
    let unhardened: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("Protect") && !line.starts_with("SystemCall"))
        .collect();
    let unhardened = unhardened.join("\n");
    fs::write(&bare, unhardened).expect("write the unhardened unit");
    let (passed, overall) = security(&bare);
    assert!(
        !passed,
        "the threshold refuses an unhardened unit: {overall}"
    );
}

/// The unit grants exactly its four capabilities; once attached, the daemon keeps
/// `CAP_NET_BIND_SERVICE`, and `CAP_BPF` in a kernel mode (it cannot lower the bounding set
/// without `CAP_SETPCAP`).
fn assert_capabilities(proc_status: &str, mode: Mode) {
    let kept = if mode == Mode::Splice {
        KEPT & !(1 << 39)
    } else {
        KEPT
    };
    let set = |name: &str| {
        proc_status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}:")))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{proc_status}"))
    };
    assert_eq!(set("CapBnd"), CAPABILITIES, "{proc_status}");
    assert_eq!(
        (set("CapEff"), set("CapPrm")),
        (kept, kept),
        "{proc_status}"
    );
}

/// The unit under systemd 252 (Debian 12's) in a container: the whole life of the service,
/// reflecting in `mode` (splice: the userspace path's system calls pass the unit's filter).
fn unit_runs_under_systemd(mode: Mode) {
    require_root();
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
    ] {
        require_tool(tool, package);
    }
    let topology = Topology::for_mode(mode);
    let via = if mode == Mode::Tc {
        Via::Kernel
    } else {
        Via::Splice
    };
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let dir = TempDir::new("etc");
    let config = dir.join("reflector.toml");
    let write_config = |maps: &str| {
        // Written in place: the container has the file bound, by inode.
        fs::write(
            &config,
            format!(
                "maps = [{maps}]\ninterfaces = [\"{}\"]\nmode = \"{}\"\n\
                 metrics = \"127.0.0.1:9477\"\n",
                topology.r_iface(),
                mode.as_arg()
            ),
        )
        .expect("write the config file");
    };
    write_config("\"10022:22\"");
    let binary = reflector_tests::daemon::binary();
    let container = Container::boot(
        topology.r(),
        &[
            (&binary, "/usr/bin/reflector"),
            (Path::new(UNIT), "/etc/systemd/system/reflector.service"),
            (Path::new(TMPFILES), "/usr/lib/tmpfiles.d/reflector.conf"),
            (&config, "/etc/reflector/reflector.toml"),
        ],
    );
    let unit = "reflector.service";

    // `systemctl start` of a Type=notify unit returns once READY=1 came.
    let start = container.exec_output(&["systemctl", "start", unit]);
    assert!(
        start.status.success(),
        "systemctl start failed: {}\n{}",
        String::from_utf8_lossy(&start.stderr),
        container.journal(unit)
    );
    assert_eq!(container.property(unit, "ActiveState"), "active");
    let status = container.property(unit, "StatusText");
    assert_eq!(
        status,
        format!(
            "reflecting 10022:22/tcp on {} ({})",
            topology.r_iface(),
            mode.as_arg()
        ),
        "{}",
        container.journal(unit)
    );
    assert_reflected(&topology, via, Proto::Tcp, Family::V4, 10_022, "unit");

    assert_capabilities(
        &container.exec(&[
            "cat",
            &format!("/proc/{}/status", container.property(unit, "MainPID")),
        ]),
        mode,
    );
    wait_until("a watchdog ping", SETTLE_TIMEOUT, || {
        container.property(unit, "WatchdogTimestampMonotonic") != "0"
    });

    write_config("\"10022:22\", \"10023:22\"");
    let _ = container.exec(&["systemctl", "reload", unit]);
    wait_until("the reload to map 10023", SETTLE_TIMEOUT, || {
        container
            .journal(unit)
            .contains("port maps now 10022:22/tcp 10023:22/tcp")
    });
    assert_eq!(container.property(unit, "ActiveState"), "active");
    assert_reflected(&topology, via, Proto::Tcp, Family::V4, 10_023, "reloaded");

    let _ = container.exec(&["systemctl", "stop", unit]);
    assert_eq!(container.property(unit, "ActiveState"), "inactive");
    assert_eq!(container.property(unit, "Result"), "success");
    let journal = container.journal(unit);
    let last_words = if mode == Mode::Tc {
        "detached from every interface"
    } else {
        "splice: tcp 2 accepted"
    };
    assert!(journal.contains(last_words), "{journal}");
    assert_nothing_attached(topology.r(), topology.r_iface());
}

#[test]
fn unit_runs_under_systemd_tc() {
    unit_runs_under_systemd(Mode::Tc);
}

#[test]
fn unit_runs_under_systemd_splice() {
    unit_runs_under_systemd(Mode::Splice);
}
