//! The kernel path needs `CAP_BPF`, `CAP_NET_ADMIN` and `CAP_PERFMON` and nothing else: the
//! daemon runs with exactly that set (`setpriv` narrows the bounding set of root, so the
//! daemon's effective set is those three), in every kernel mode, with and without
//! `--pin`, and reflects. This is the set a restricted container or a hardened systemd
//! unit grants; `CAP_SYS_ADMIN` in particular is not in it (the kernel allows
//! `BPF_MAP_GET_FD_BY_ID` only with `CAP_SYS_ADMIN`, so the daemon must never re-open its
//! own maps by id).
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use reflector_tests::daemon::{binary, command};
use reflector_tests::pinning::PinDir;
use reflector_tests::reflection::{Path, assert_reflected, map_arg};
use reflector_tests::servers::peer_service;
use reflector_tests::{
    Family, Mode, Proto, Reflector, TempDir, Topology, require_root, require_tool,
};

/// `L:P`.
const MAP: (u16, u16) = (10_022, 22);

/// The capabilities the kernel path needs, as `setpriv` names them, and their bits.
const NEEDED: [(&str, u32); 3] = [("bpf", 39), ("net_admin", 12), ("perfmon", 38)];

/// The daemon in R, in `mode`, with only [`NEEDED`], optionally pinning into `pin`;
/// reflects TCP and UDP on both families, and shows exactly [`NEEDED`] as its effective,
/// permitted and bounding sets.
fn reflects_with_least_capabilities(mode: Mode, pin: Option<&PinDir>) {
    require_root();
    require_tool("setpriv", "util-linux");
    let topology = Topology::for_mode(mode);
    let _tcp = peer_service(topology.x(), Proto::Tcp, Family::V4, MAP.1);
    let _tcp6 = peer_service(topology.x(), Proto::Tcp, Family::V6, MAP.1);
    let _udp = peer_service(topology.x(), Proto::Udp, Family::V4, MAP.1);

    let bounding = NEEDED.iter().fold(String::from("-all"), |set, (name, _)| {
        format!("{set},+{name}")
    });
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
        cmd.arg(format!("--bounding-set={bounding}"))
            .args(["--inh-caps=-all", "--"])
            .arg(&daemon)
            .args(&args);
        Reflector::start_command(&mut cmd)
    };
    let reflector = start();

    let status = std::fs::read_to_string(format!("/proc/{}/status", reflector.pid()))
        .expect("the daemon's /proc status");
    let want = NEEDED.iter().fold(0_u64, |mask, (_, bit)| mask | 1 << bit);
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let value = status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{set}:")))
            .map(|hex| u64::from_str_radix(hex.trim(), 16).expect("a hex capability set"));
        assert_eq!(
            value,
            Some(want),
            "{set} must be exactly CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON ({want:#x}):\n{status}"
        );
    }
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
    for (proto, family) in [
        (Proto::Tcp, Family::V4),
        (Proto::Tcp, Family::V6),
        (Proto::Udp, Family::V4),
    ] {
        assert_reflected(&topology, Path::Kernel, proto, family, MAP.0, "least-caps");
    }
    // The control plane's reads (stats, flow counts) go through the same held fds.
    let counters = reflector_tests::command::run(&mut topology.r().command(&[
        &daemon.to_string_lossy(),
        "stats",
        "--json",
        "--control-socket",
        &socket,
    ]));
    assert!(
        counters.contains("\"flows_created\""),
        "stats must answer with kernel counters:\n{counters}"
    );
    reflector.stop_cleanly();
    if pin.is_some() {
        // A restart adopts the pins with the same three capabilities.
        let adopter = start();
        assert!(
            adopter.log().contains("adopted the pinned state"),
            "the restarted daemon must adopt its pins:\n{}",
            adopter.log()
        );
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
    reflects_with_least_capabilities(Mode::Tc, None);
}

#[test]
fn least_capabilities_xdp_skb() {
    reflects_with_least_capabilities(Mode::XdpSkb, None);
}

#[test]
fn least_capabilities_xdp() {
    reflects_with_least_capabilities(Mode::Xdp, None);
}

#[test]
fn least_capabilities_tc_pinned() {
    let pin = PinDir::mount();
    reflects_with_least_capabilities(Mode::Tc, Some(&pin));
}

#[test]
fn least_capabilities_xdp_skb_pinned() {
    let pin = PinDir::mount();
    reflects_with_least_capabilities(Mode::XdpSkb, Some(&pin));
}
