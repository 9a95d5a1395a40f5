//! `deploy/consul/`: the service definitions' checks, run exactly as Consul would run them,
//! against a reflector in TC and in splice mode, with the service up, stopped and filtered.
//! Consul itself is not packaged anywhere this can install from, so:
//! - a script check (`args`) runs as given, in X (the node), the reflector's name replaced
//!   by R's address; its exit code maps as Consul maps it: 0 passing, 1 warning, anything
//!   else critical;
//! - an `http` check is Consul's own HTTP request, done here by curl with the file's URL,
//!   method and timeout; 2xx is passing, 429 warning, anything else (or no answer) critical.
//!
//! Each HCL file must define the same check as its JSON twin. The topology is `e2e.rs`'s.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reflector_tests::client::try_tcp_connect;
use reflector_tests::firewall::drop_incoming_tcp;
use reflector_tests::servers::Nginx;
use reflector_tests::sshd::Sshd;
use reflector_tests::{Family, Mode, Reflector, Topology, require_root, require_tool};
use serde_json::Value;

/// Where the service definitions are.
const CONSUL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/consul");
/// The reflector's name in the files.
const REFLECTOR_NAME: &str = "reflector.service.consul";
/// The reflector's metrics address in `reflector.json` (R's loopback).
const METRICS: &str = "127.0.0.1:9477";
/// Longer than any check's own timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What Consul makes of a check's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Passing,
    Warning,
    Critical,
}

/// The check of `deploy/consul/<name>.json`, after checking that `<name>.hcl` has the same
/// fields with the same values.
fn check(name: &str) -> Value {
    let json_path = format!("{CONSUL_DIR}/{name}.json");
    let json: Value = serde_json::from_str(
        &fs::read_to_string(&json_path).unwrap_or_else(|e| panic!("{json_path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{json_path} is not JSON: {e}"));
    let check = json["service"]["check"].clone();
    let fields = check
        .as_object()
        .unwrap_or_else(|| panic!("{json_path} has no service.check"));

    let hcl_path = format!("{CONSUL_DIR}/{name}.hcl");
    let hcl = fs::read_to_string(&hcl_path).unwrap_or_else(|e| panic!("{hcl_path}: {e}"));
    let block = hcl
        .split_once("check {")
        .and_then(|(_, rest)| rest.split_once('}'))
        .map_or_else(
            || panic!("{hcl_path} has no check block"),
            |(block, _)| block,
        );
    let mut seen = 0;
    for line in block.lines().filter(|line| !line.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{hcl_path}: not `key = value`: {line}"));
        // The strings and lists of strings used here are written alike in HCL and JSON.
        let value: Value = serde_json::from_str(value.trim())
            .unwrap_or_else(|e| panic!("{hcl_path}: {line}: {e}"));
        assert_eq!(
            fields.get(key.trim()),
            Some(&value),
            "{hcl_path} and {json_path} differ on `{}`",
            key.trim()
        );
        seen += 1;
    }
    assert_eq!(
        seen,
        fields.len(),
        "{hcl_path} has every field of {json_path}"
    );
    check
}

/// Runs `check` in `ns` (the node) as Consul does, with the reflector at `reflector`.
fn run(ns: &reflector_tests::Netns, check: &Value, reflector: IpAddr) -> Status {
    let replace = |text: &str| text.replace(REFLECTOR_NAME, &reflector.to_string());
    if let Some(args) = check["args"].as_array() {
        let mut args: Vec<String> = args
            .iter()
            .map(|arg| replace(arg.as_str().expect("args are strings")))
            .collect();
        // `reflector` is the binary under test, as the package installs it on PATH.
        if args.first().is_some_and(|program| program == "reflector") {
            args[0] = reflector_tests::daemon::binary()
                .to_string_lossy()
                .into_owned();
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = ns.exec_output(&args, CHECK_TIMEOUT);
        return match output.status.code() {
            Some(0) => Status::Passing,
            Some(1) => Status::Warning,
            _ => Status::Critical,
        };
    }
    let url = replace(check["http"].as_str().expect("an args or http check"));
    let method = check["method"].as_str().unwrap_or("GET");
    let timeout = check["timeout"]
        .as_str()
        .expect("a timeout")
        .trim_end_matches('s');
    let output = ns.exec_output(
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
            "--max-time",
            timeout,
            &url,
        ],
        CHECK_TIMEOUT,
    );
    let code: u16 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    match code {
        200..=299 => Status::Passing,
        429 => Status::Warning,
        _ => Status::Critical,
    }
}

/// Starts X's sshd (22) and nginx (80, `/healthz`).
fn services(topology: &Topology) -> (Sshd, Nginx) {
    (
        Sshd::start(topology.x(), 22),
        Nginx::start(topology.x(), 80, &[("healthz", b"ok\n")]),
    )
}

fn consul_checks(mode: Mode) {
    require_root();
    require_tool("curl", "curl");
    let (ssh, web, ready) = (check("ssh"), check("web"), check("reflector"));
    let topology = Topology::for_mode(mode);
    let reflector = Reflector::start_with_args(
        topology.r(),
        &[
            "--map",
            "10022:22",
            "--map",
            "10080:80",
            // The self-test map of `reflector probe`.
            "--map",
            "19999:19999",
            "--iface",
            topology.r_iface(),
            "--mode",
            mode.as_arg(),
            "--metrics",
            METRICS,
        ],
    );
    let r = topology.r_addr(Family::V4);
    let localhost = IpAddr::from([127, 0, 0, 1]);
    assert_eq!(
        run(topology.r(), &ready, localhost),
        Status::Passing,
        "reflector ready"
    );

    let statuses = |what: &str| {
        let found = (run(topology.x(), &ssh, r), run(topology.x(), &web, r));
        eprintln!(
            "{}: {what}: ssh {:?}, web {:?}",
            mode.as_arg(),
            found.0,
            found.1
        );
        found
    };
    let up = services(&topology);
    assert_eq!(statuses("up"), (Status::Passing, Status::Passing));

    drop(up);
    assert_eq!(statuses("stopped"), (Status::Critical, Status::Critical));
    if mode == Mode::Splice {
        // Why the files read a response: Consul's `tcp` check, a bare connect, passes here:
        // the handshake completes (the reset that follows may beat this call's return).
        let bare = try_tcp_connect(topology.x(), None, SocketAddr::new(r, 10_022));
        assert!(
            bare.as_ref()
                .map_or_else(|e| e.kind() == io::ErrorKind::ConnectionReset, |_| true),
            "in splice mode the reflector accepts before connecting back: {bare:?}"
        );
    }

    let _up = services(&topology);
    assert_eq!(statuses("up again"), (Status::Passing, Status::Passing));
    let x = topology.x_addr(Family::V4);
    drop_incoming_tcp(topology.x(), SocketAddr::new(x, 22));
    drop_incoming_tcp(topology.x(), SocketAddr::new(x, 80));
    assert_eq!(statuses("filtered"), (Status::Critical, Status::Critical));

    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
    assert_eq!(
        run(topology.r(), &ready, localhost),
        Status::Critical,
        "reflector gone"
    );
    // With the reflector gone the SSH check warns instead of paging sshd's owner: the
    // probe's self-test says the reflector leg failed, not the node's service.
    assert_eq!(
        run(topology.x(), &ssh, r),
        Status::Warning,
        "the reflector is down, not sshd"
    );
}

#[test]
fn consul_checks_through_tc() {
    consul_checks(Mode::Tc);
}

#[test]
fn consul_checks_through_splice() {
    consul_checks(Mode::Splice);
}
