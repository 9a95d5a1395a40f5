//! End-to-end tests of `--metrics ADDR`: `/metrics` (checked by `promtool check metrics`),
//! `/healthz` and `/readyz`, counters that move when traffic is reflected in TC and splice
//! mode, and a real Prometheus server scraping the daemon.
//!
//! The topology is `e2e.rs`'s: X (client and service) and R (the reflector host) joined by
//! a veth pair. The metrics endpoint listens on R's loopback and is fetched from inside R
//! with curl. Every test builds its own topology, so they run in parallel. They need root,
//! the daemon binary (`$REFLECTOR_BIN`, else `target/<profile>/reflector`), curl, and
//! promtool and prometheus (Debian package `prometheus`), and say so when one is missing.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::process::Output;
use std::time::Duration;

use reflector_tests::daemon::run_to_exit;
use reflector_tests::prometheus::Prometheus;
use reflector_tests::reflection::{Path, assert_reflected};
use reflector_tests::servers::peer_service;
use reflector_tests::{
    Family, Mode, Proto, Reflector, TempDir, Topology, TopologyOptions, require_root, require_tool,
};

/// `L` and `P` of the reflected TCP exchanges.
const TCP_MAP: (u16, u16) = (10_022, 22);
/// Exchanges reflected before the counters are read.
const ROUNDS: u32 = 3;
/// How long one HTTP request inside R may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// The forward IPv4 reflected-packets series.
const FORWARD_V4_PACKETS: &str =
    "reflector_reflected_packets_total{direction=\"forward\",family=\"ipv4\"}";

fn topology() -> Topology {
    require_root();
    require_tool("curl", "curl");
    Topology::new(TopologyOptions::default())
}

/// The metrics port of `topology`'s daemon: unique per topology (only loopback in R).
fn metrics_port(topology: &Topology) -> u16 {
    19_000 + (topology.id() % 1000) as u16
}

fn metrics_addr(topology: &Topology) -> String {
    format!("127.0.0.1:{}", metrics_port(topology))
}

/// A second map no traffic uses: its per-map counters stay at zero.
const UNUSED_MAP: &str = "10024:24";

/// Starts the daemon in R on R's veth in `mode`, mapping [`TCP_MAP`] and [`UNUSED_MAP`] and
/// serving metrics.
fn start(topology: &Topology, mode: Mode) -> Reflector {
    let map = format!("{}:{}", TCP_MAP.0, TCP_MAP.1);
    let metrics = metrics_addr(topology);
    let reflector = Reflector::start_with_args(
        topology.r(),
        &[
            "--map",
            &map,
            "--map",
            UNUSED_MAP,
            // The flow counters are what this test reads: every map keeps the flow table.
            "--flow-table",
            "always",
            "--iface",
            topology.r_iface(),
            "--mode",
            mode.as_arg(),
            "--metrics",
            &metrics,
        ],
    );
    let serving = format!("metrics: serving http://{metrics}/metrics");
    assert!(
        reflector.log().contains(&serving),
        "the daemon logs `{serving}`:\n{}",
        reflector.log()
    );
    reflector
}

/// GETs `url` with curl inside R: the HTTP status and the body.
fn get(topology: &Topology, url: &str, extra: &[&str]) -> (u16, String) {
    let mut args = vec!["curl", "-s", "-w", "\n%{http_code}"];
    args.extend(extra);
    args.push(url);
    let output = topology.r().exec_output(&args, HTTP_TIMEOUT);
    assert!(
        output.status.success(),
        "`curl {url}` in R failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("no status from `curl {url}`: {text:?}"));
    let status = status
        .parse()
        .unwrap_or_else(|_| panic!("bad status from `curl {url}`: {text:?}"));
    (status, body.to_owned())
}

/// `/path` of the daemon's metrics endpoint.
fn endpoint(topology: &Topology, path: &str) -> (u16, String) {
    get(
        topology,
        &format!("http://{}{path}", metrics_addr(topology)),
        &[],
    )
}

/// `/metrics` in the classic text format; asserts it was served with status 200.
fn metrics(topology: &Topology) -> String {
    let (status, body) = endpoint(topology, "/metrics");
    assert_eq!(status, 200, "GET /metrics:\n{body}");
    body
}

/// The value of the sample `series` (name and labels exactly as rendered) in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

fn assert_value_above(text: &str, series: &str, floor: f64) {
    let found = value(text, series);
    assert!(
        found.is_some_and(|v| v > floor),
        "`{series}` should be above {floor}, is {found:?}:\n{text}"
    );
}

/// Runs `promtool check metrics` on `text` (in R, so it runs where the daemon does) and
/// asserts it passes.
fn assert_promtool_passes(topology: &Topology, text: &str) {
    require_tool("promtool", "prometheus");
    let dir = TempDir::new("prom");
    let file = dir.join("metrics.txt");
    fs::write(&file, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
    let script = format!("promtool check metrics < '{}'", file.display());
    let output: Output = topology
        .r()
        .exec_output(&["sh", "-c", &script], HTTP_TIMEOUT);
    assert!(
        output.status.success(),
        "`promtool check metrics` refused the output ({}):\n{}{}\n--- metrics ---\n{text}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn reflect_tcp(topology: &Topology, path: Path) {
    for round in 0..ROUNDS {
        assert_reflected(
            topology,
            path,
            Proto::Tcp,
            Family::V4,
            TCP_MAP.0,
            &format!("metrics{round}"),
        );
    }
}

fn assert_health_and_ready(topology: &Topology) {
    let (status, body) = endpoint(topology, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"), "GET /healthz");
    let (status, body) = endpoint(topology, "/readyz");
    assert_eq!(status, 200, "GET /readyz once `ready` was logged: {body}");
}

/// TC mode: the kernel's reflected packets and bytes, flows created and the interface's
/// mode show in `/metrics`, which `promtool` accepts.
#[test]
fn tc_mode_exports_kernel_counters() {
    let topology = topology();
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, TCP_MAP.1);
    let reflector = start(&topology, Mode::Tc);
    assert_health_and_ready(&topology);
    let before = metrics(&topology);
    assert_eq!(
        value(&before, FORWARD_V4_PACKETS),
        Some(0.0),
        "nothing reflected yet:\n{before}"
    );

    reflect_tcp(&topology, Path::Kernel);
    let text = metrics(&topology);
    assert_value_above(&text, FORWARD_V4_PACKETS, 0.0);
    assert_value_above(
        &text,
        "reflector_reflected_packets_total{direction=\"reverse\",family=\"ipv4\"}",
        0.0,
    );
    assert_value_above(
        &text,
        "reflector_reflected_bytes_total{direction=\"forward\",family=\"ipv4\"}",
        0.0,
    );
    assert_value_above(&text, "reflector_kernel_flows_created_total", 0.0);
    assert_value_above(&text, "reflector_kernel_flows_active", 0.0);
    let per_map = |listen: u16, target: u16| {
        format!(
            "reflector_map_reflected_packets_total{{listen=\"{listen}\",target=\"{target}\",\
             protocol=\"tcp\",direction=\"forward\",family=\"ipv4\"}}"
        )
    };
    assert_value_above(&text, &per_map(TCP_MAP.0, TCP_MAP.1), 0.0);
    assert_eq!(value(&text, &per_map(10_024, 24)), Some(0.0), "{text}");
    // `--flow-table always`: every map says so.
    let reply_path = |listen: u16, target: u16, path: &str| {
        format!(
            "reflector_map_reply_path{{listen=\"{listen}\",target=\"{target}\",\
             protocol=\"tcp\",reply_path=\"{path}\"}}"
        )
    };
    assert_eq!(
        value(&text, &reply_path(TCP_MAP.0, TCP_MAP.1, "flow-table")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &reply_path(TCP_MAP.0, TCP_MAP.1, "stateless")),
        None,
        "{text}"
    );
    let mode = format!(
        "reflector_interface_mode{{interface=\"{}\",mode=\"tc\"}}",
        topology.r_iface()
    );
    assert_eq!(value(&text, &mode), Some(1.0), "{text}");
    assert_eq!(value(&text, "reflector_ready"), Some(1.0), "{text}");
    assert!(
        text.contains("reflector_passed_packets_total{reason=\"port_not_mapped\"}"),
        "every pass reason is a label value:\n{text}"
    );
    assert!(text.contains("reflector_build_info{version=\""), "{text}");
    assert_promtool_passes(&topology, &text);

    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
}

/// Splice mode: accepted connections and bytes of the userspace path move; there are no
/// kernel metrics; `promtool` accepts the output.
#[test]
fn splice_mode_exports_userspace_counters() {
    let topology = topology();
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, TCP_MAP.1);
    let reflector = start(&topology, Mode::Splice);
    assert_health_and_ready(&topology);

    reflect_tcp(&topology, Path::Splice);
    let text = metrics(&topology);
    let accepted = value(
        &text,
        "reflector_splice_connections_total{protocol=\"tcp\"}",
    );
    assert!(
        accepted.is_some_and(|n| n >= f64::from(ROUNDS)),
        "{ROUNDS} TCP connections accepted, found {accepted:?}:\n{text}"
    );
    assert_value_above(
        &text,
        "reflector_splice_bytes_total{direction=\"forward\"}",
        0.0,
    );
    assert_value_above(
        &text,
        "reflector_splice_bytes_total{direction=\"reverse\"}",
        0.0,
    );
    assert_eq!(
        value(
            &text,
            "reflector_splice_connect_back_failures_total{reason=\"refused\"}"
        ),
        Some(0.0),
        "{text}"
    );
    let mode = format!(
        "reflector_interface_mode{{interface=\"{}\",mode=\"splice\"}}",
        topology.r_iface()
    );
    assert_eq!(value(&text, &mode), Some(1.0), "{text}");
    assert!(
        !text.contains("reflector_reflected_packets"),
        "no kernel metrics without a kernel program:\n{text}"
    );
    assert_promtool_passes(&topology, &text);

    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
}

/// A metrics address that is taken, or not an address, stops the daemon at start with a
/// message naming it.
#[test]
fn bad_metrics_address_fails_at_start() {
    let topology = topology();
    let first = start(&topology, Mode::Splice);
    let metrics = metrics_addr(&topology);
    let output = run_to_exit(
        topology.r(),
        &[
            "--map",
            "10023:23",
            "--mode",
            "splice",
            "--iface",
            topology.r_iface(),
            "--metrics",
            &metrics,
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a taken address fails: {stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on {metrics}")),
        "the error names the address:\n{stderr}"
    );

    let output = run_to_exit(
        topology.r(),
        &["--map", "10023:23", "--metrics", "localhost:9477"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a name is not an address: {stderr}"
    );
    assert!(
        stderr.contains("invalid metrics address 'localhost:9477'")
            && stderr.contains("e.g. 127.0.0.1:9477"),
        "the error names the value and gives an example:\n{stderr}"
    );
    let (status, log) = first.stop();
    assert!(status.success(), "exit: {status}\n{log}");
}

/// A real Prometheus server scrapes the daemon every second and sees the reflected-packets
/// counter go up after traffic.
#[test]
fn prometheus_scrapes_and_sees_counters_move() {
    let topology = topology();
    require_tool("prometheus", "prometheus");
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, TCP_MAP.1);
    let reflector = start(&topology, Mode::Tc);

    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  \
         - job_name: reflector\n    static_configs:\n      - targets: ['{}']\n",
        metrics_addr(&topology)
    );
    let address = format!("127.0.0.1:{}", metrics_port(&topology) + 1000);
    let prometheus = Prometheus::start(topology.r(), &config, &address);

    let before = prometheus.wait_for_value(
        FORWARD_V4_PACKETS,
        "a first scrape of the reflected-packets counter",
        |_| true,
    );
    reflect_tcp(&topology, Path::Kernel);
    let after = prometheus.wait_for_value(
        FORWARD_V4_PACKETS,
        "the reflected-packets counter go up",
        |v| v > before,
    );
    assert!(after > before, "{after} > {before}");
    let up = prometheus.wait_for_value("up{job=\"reflector\"}", "the target up", |v| v >= 1.0);
    assert!((up - 1.0).abs() < f64::EPSILON);
    drop(prometheus);

    let (status, log) = reflector.stop();
    assert!(status.success(), "exit: {status}\n{log}");
}
