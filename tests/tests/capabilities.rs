//! The kernel path needs `CAP_BPF`, `CAP_NET_ADMIN` and `CAP_PERFMON` and nothing else: the
//! daemon runs with exactly that set (`setpriv` narrows the bounding set of root), in every
//! kernel mode, with and without `--pin`, and reflects. This is the set a restricted
//! container or a hardened systemd unit grants; `CAP_SYS_ADMIN` in particular is not in it
//! (the kernel allows `BPF_MAP_GET_FD_BY_ID` only with `CAP_SYS_ADMIN`, so the daemon must
//! never re-open its own maps by id).
//!
//! Once attached, the daemon keeps less (least privilege): the thread of its main loop
//! `CAP_BPF` (map updates through held fds) and `CAP_NET_BIND_SERVICE` (a later map may
//! listen below 1024), plus `CAP_NET_ADMIN` where detaching needs netlink (TC through
//! clsact, kernels without TCX); every worker thread `CAP_BPF` at most. Checked per thread
//! in `/proc/PID/task/*/status`, with reflection, `reflector stats` and a runtime `map add`
//! and `map del` still working after the drop.

#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;

use reflector_tests::attach::kernel_has_tcx;
use reflector_tests::daemon::{binary, command};
use reflector_tests::pinning::PinDir;
use reflector_tests::reflection::{Path, assert_reflected, map_arg};
use reflector_tests::servers::peer_service;
use reflector_tests::{
    Family, Mode, Proto, Reflector, TempDir, Topology, require_root, require_tool,
};

/// `L:P`.
const MAP: (u16, u16) = (10_022, 22);
/// A map added at run time, after the capabilities were dropped.
const ADDED: (u16, u16) = (10_023, 22);

/// The capabilities the kernel path needs, as `setpriv` names them, and their bits.
const NEEDED: [(&str, u32); 3] = [("bpf", 39), ("net_admin", 12), ("perfmon", 38)];

const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_NET_ADMIN: u64 = 1 << 12;
const CAP_BPF: u64 = 1 << 39;

/// Every capability this (root) test process may hand on: its own bounding set.
fn all_capabilities() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("this process's status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("a hex set"))
        .expect("a CapBnd line")
}

/// One thread's capability sets.
#[derive(Debug)]
struct ThreadCaps {
    tid: u32,
    effective: u64,
    permitted: u64,
    bounding: u64,
}

/// The capability sets of every thread of `pid`.
fn thread_caps(pid: u32) -> Vec<ThreadCaps> {
    let mut threads = Vec::new();
    for entry in fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads") {
        let entry = entry.unwrap();
        let status = fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        let set = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}:")))
                .map_or(0, |hex| {
                    u64::from_str_radix(hex.trim(), 16).expect("a hex set")
                })
        };
        threads.push(ThreadCaps {
            tid: entry.file_name().to_string_lossy().parse().unwrap(),
            effective: set("CapEff"),
            permitted: set("CapPrm"),
            bounding: set("CapBnd"),
        });
    }
    threads
}

/// Checks every thread of `pid` against what it may keep: the main loop's thread (the
/// process's first) `main`, every other thread `worker`; both within `granted`. The
/// bounding set is lowered too when the daemon could (it had `CAP_SETPCAP`), else it stays
/// `granted`.
fn assert_dropped(pid: u32, granted: u64, main: u64, worker: u64) {
    let threads = thread_caps(pid);
    assert!(
        threads.len() > 1,
        "the daemon runs worker threads: {threads:?}"
    );
    let can_lower_bounding = granted & (1 << 8) != 0;
    for thread in &threads {
        let want = if thread.tid == pid { main } else { worker } & granted;
        assert_eq!(
            (thread.effective, thread.permitted),
            (want, want),
            "thread {} must keep exactly {want:#x} (main thread {pid}): {threads:#x?}",
            thread.tid
        );
        let bounding = if can_lower_bounding { want } else { granted };
        assert_eq!(
            thread.bounding, bounding,
            "thread {}: bounding set {bounding:#x} wanted: {threads:#x?}",
            thread.tid
        );
    }
}

/// The daemon in R, in `mode`, with only [`NEEDED`] (or, `restricted` false, as root with
/// every capability), optionally pinning into `pin`: reflects TCP and UDP on both
/// families; once ready, every thread keeps only what it may still need; `stats`, a
/// runtime `map add` and `map del` work after the drop.
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: start, check every thread, reflect, change maps, restart"
)]
fn reflects_with_least_capabilities(mode: Mode, pin: Option<&PinDir>, restricted: bool) {
    require_root();
    require_tool("setpriv", "util-linux");
    let topology = Topology::for_mode(mode);
    let _tcp = peer_service(topology.x(), Proto::Tcp, Family::V4, MAP.1);
    let _tcp6 = peer_service(topology.x(), Proto::Tcp, Family::V6, MAP.1);
    let _udp = peer_service(topology.x(), Proto::Udp, Family::V4, MAP.1);

    let bounding = NEEDED.iter().fold(String::from("-all"), |set, (name, _)| {
        format!("{set},+{name}")
    });
    let granted = if restricted {
        NEEDED.iter().fold(0_u64, |mask, (_, bit)| mask | 1 << bit)
    } else {
        all_capabilities()
    };
    let map = map_arg(MAP, "tcp,udp");
    let dir = TempDir::new("caps");
    let socket = dir.join("control.sock").to_string_lossy().into_owned();
    let mut args = vec![
        "--control-socket",
        &socket,
        "--map",
        &map,
        "--iface",
        topology.r_iface(),
        "--mode",
        mode.as_arg(),
    ];
    if let Some(pin) = pin {
        args.extend(["--pin", pin.arg()]);
    }
    let daemon = binary();
    let start = || {
        let mut cmd = command(topology.r(), "setpriv".as_ref(), &[]);
        if restricted {
            cmd.arg(format!("--bounding-set={bounding}"));
        }
        cmd.args(["--inh-caps=-all", "--"]).arg(&daemon).args(&args);
        Reflector::start_command(&mut cmd)
    };
    let reflector = start();

    let kernel = mode != Mode::Splice;
    let netlink_detach = mode == Mode::Tc && !kernel_has_tcx();
    let mut main = CAP_NET_BIND_SERVICE;
    if kernel {
        main |= CAP_BPF;
    }
    if netlink_detach {
        main |= CAP_NET_ADMIN;
    }
    let worker = if kernel { CAP_BPF } else { 0 };
    assert_dropped(reflector.pid(), granted, main, worker);
    assert!(
        reflector.log().contains("capabilities: kept"),
        "the daemon must say what it kept:\n{}",
        reflector.log()
    );
    let path = if kernel {
        assert!(
            reflector.log().contains(&format!(
                "{}: reflecting with {}",
                topology.r_iface(),
                mode.as_arg()
            )),
            "the daemon must reflect in {} mode, not fall back:\n{}",
            mode.as_arg(),
            reflector.log()
        );
        Path::Kernel
    } else {
        Path::Splice
    };
    for (proto, family) in [
        (Proto::Tcp, Family::V4),
        (Proto::Tcp, Family::V6),
        (Proto::Udp, Family::V4),
    ] {
        assert_reflected(&topology, path, proto, family, MAP.0, "least-caps");
    }
    let control = |subcommand: &[&str]| {
        let mut words = vec![daemon.to_str().unwrap()];
        words.extend(subcommand);
        words.extend(["--control-socket", &socket]);
        reflector_tests::command::run(&mut topology.r().command(&words))
    };
    // The control plane's reads (stats, flow counts) go through the same held fds, from a
    // worker thread.
    let counters = control(&["stats", "--json"]);
    if kernel {
        assert!(
            counters.contains("\"flows_created\""),
            "stats must answer with kernel counters:\n{counters}"
        );
    }
    // Map changes after the drop: a listener and the kernel's port table, both ways.
    let added = format!("{}:{}", ADDED.0, ADDED.1);
    control(&["map", "add", &added]);
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, ADDED.0, "added");
    control(&["map", "del", &ADDED.0.to_string()]);
    let maps = control(&["map", "list"]);
    assert!(!maps.contains(&added), "{added} must be gone: {maps}");
    reflector.stop_cleanly();
    if pin.is_some() {
        // A restart adopts the pins with the same capabilities.
        let adopter = start();
        assert!(
            adopter.log().contains("adopted the pinned state"),
            "the restarted daemon must adopt its pins:\n{}",
            adopter.log()
        );
        assert_dropped(adopter.pid(), granted, main, worker);
        assert_reflected(
            &topology,
            Path::Kernel,
            Proto::Tcp,
            Family::V4,
            MAP.0,
            "adopted",
        );
        adopter.stop_cleanly();
    }
}

#[test]
fn least_capabilities_tc() {
    reflects_with_least_capabilities(Mode::Tc, None, true);
}

#[test]
fn least_capabilities_xdp_skb() {
    reflects_with_least_capabilities(Mode::XdpSkb, None, true);
}

#[test]
fn least_capabilities_xdp() {
    reflects_with_least_capabilities(Mode::Xdp, None, true);
}

#[test]
fn least_capabilities_tc_pinned() {
    let pin = PinDir::mount();
    reflects_with_least_capabilities(Mode::Tc, Some(&pin), true);
}

#[test]
fn least_capabilities_xdp_skb_pinned() {
    let pin = PinDir::mount();
    reflects_with_least_capabilities(Mode::XdpSkb, Some(&pin), true);
}

#[test]
fn root_keeps_least_capabilities_tc() {
    reflects_with_least_capabilities(Mode::Tc, None, false);
}

#[test]
fn root_keeps_least_capabilities_xdp() {
    reflects_with_least_capabilities(Mode::Xdp, None, false);
}

#[test]
fn root_keeps_least_capabilities_xdp_skb() {
    reflects_with_least_capabilities(Mode::XdpSkb, None, false);
}

#[test]
fn root_keeps_least_capabilities_splice() {
    reflects_with_least_capabilities(Mode::Splice, None, false);
}
