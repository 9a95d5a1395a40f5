//! `deploy/prometheus/` and `deploy/grafana/`, run with the programs they are for:
//! - the alert rules: `promtool check rules` and their unit tests (`promtool test rules`);
//! - `blackbox.yml`: a real `blackbox_exporter` on the node (X) probes its own sshd and web
//!   server through the reflector (R), in TC and splice mode: `probe_success` 1 with the
//!   services up, 0 with them stopped;
//! - `scrape.yml`: a real Prometheus on the node, configured with it (example names
//!   replaced), scrapes the exporter's probes and the reflector itself;
//! - `reflector.json`: every query of the dashboard returns data from that Prometheus
//!   while the reflector carries traffic.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::process::Command;
use std::time::Duration;

use reflector_tests::command::output_within;
use reflector_tests::prometheus::Prometheus;
use reflector_tests::servers::Nginx;
use reflector_tests::sshd::Sshd;
use reflector_tests::{
    Family, Mode, Netns, Process, Reflector, TempDir, Topology, require_root, require_tool,
};
use serde_json::Value;

const PROMETHEUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/grafana/reflector.json"
);
/// The exporter's port in X (the port `scrape.yml` adds to each node).
const EXPORTER_PORT: u16 = 9115;
/// The reflector's metrics port, on R's address.
const METRICS_PORT: u16 = 9477;
/// Prometheus' API in X.
const PROMETHEUS_ADDRESS: &str = "127.0.0.1:9090";
const SSH_MODULE: &str = "ssh_banner_through_reflector";
const HTTP_MODULE: &str = "http_2xx_through_reflector";
const TIMEOUT: Duration = Duration::from_secs(30);

fn promtool(args: &[&str]) {
    require_tool("promtool", "prometheus");
    let mut cmd = Command::new("promtool");
    cmd.args(args).current_dir(PROMETHEUS_DIR);
    let output = output_within(&mut cmd, TIMEOUT);
    assert!(
        output.status.success(),
        "`promtool {}` failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alert_rules_check_and_pass_their_unit_tests() {
    promtool(&["check", "rules", "reflector-rules.yml"]);
    promtool(&["test", "rules", "reflector-rules.test.yml"]);
}

/// The exporter (in X) with `blackbox.yml`, listening on [`EXPORTER_PORT`].
fn exporter(x: &Netns) -> Process {
    require_tool(
        "prometheus-blackbox-exporter",
        "prometheus-blackbox-exporter",
    );
    let process = x.spawn(&[
        "prometheus-blackbox-exporter",
        &format!("--config.file={PROMETHEUS_DIR}/blackbox.yml"),
        &format!("--web.listen-address=127.0.0.1:{EXPORTER_PORT}"),
    ]);
    x.wait_listening(false, EXPORTER_PORT, TIMEOUT);
    process
}

/// Whether one probe of `module` at `target`, asked of X's exporter, succeeded
/// (`probe_success 1`; `0` is a failure).
fn probe(x: &Netns, module: &str, target: &str) -> bool {
    let url = format!("http://127.0.0.1:{EXPORTER_PORT}/probe?module={module}&target={target}");
    let output = x.exec_output(&["curl", "-s", &url], TIMEOUT);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("probe_success "))
        .and_then(|value| match value.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no probe_success from {url}:\n{text}"))
}

/// X's sshd (22) and web server (80, `/healthz`).
fn services(topology: &Topology) -> (Sshd, Nginx) {
    (
        Sshd::start(topology.x(), 22),
        Nginx::start(topology.x(), 80, &[("healthz", b"ok\n")]),
    )
}

fn start_reflector(topology: &Topology, mode: Mode) -> Reflector {
    let metrics = format!("{}:{METRICS_PORT}", topology.r_addr(Family::V4));
    Reflector::start_with_args(
        topology.r(),
        &[
            "--map",
            "10022:22",
            "--map",
            "10080:80",
            // The dashboard's flow panels need flows: every map keeps the flow table.
            "--flow-table",
            "always",
            "--iface",
            topology.r_iface(),
            "--mode",
            mode.as_arg(),
            "--metrics",
            &metrics,
        ],
    )
}

fn blackbox_probes(mode: Mode) {
    require_root();
    require_tool("curl", "curl");
    let topology = Topology::for_mode(mode);
    let reflector = start_reflector(&topology, mode);
    let _exporter = exporter(topology.x());
    let r = topology.r_addr(Family::V4);
    let ssh_target = format!("{r}:10022");
    let http_target = format!("http://{r}:10080/healthz");

    let up = services(&topology);
    assert!(probe(topology.x(), SSH_MODULE, &ssh_target), "sshd up");
    assert!(probe(topology.x(), HTTP_MODULE, &http_target), "nginx up");
    drop(up);
    assert!(
        !probe(topology.x(), SSH_MODULE, &ssh_target),
        "sshd stopped"
    );
    assert!(
        !probe(topology.x(), HTTP_MODULE, &http_target),
        "nginx stopped"
    );
    reflector.stop_cleanly();
}

#[test]
fn blackbox_probes_through_tc() {
    blackbox_probes(Mode::Tc);
}

#[test]
fn blackbox_probes_through_splice() {
    blackbox_probes(Mode::Splice);
}

/// `scrape.yml` with its example names replaced by this topology's: the nodes' exporter is
/// X's, the reflector is R. Scrapes every second.
fn scrape_config(topology: &Topology) -> String {
    let text = fs::read_to_string(format!("{PROMETHEUS_DIR}/scrape.yml")).expect("scrape.yml");
    let r = topology.r_addr(Family::V4).to_string();
    let text = text
        .replace(
            "[\"node1.example.internal\", \"node2.example.internal\"]",
            "[\"127.0.0.1\"]",
        )
        .replace("reflector.example.internal", &r);
    assert!(
        !text.contains("example.internal"),
        "every example name replaced:\n{text}"
    );
    format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n{text}")
}

/// Every `PromQL` expression of the dashboard, with its variables set to match everything.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&fs::read_to_string(DASHBOARD).expect("the dashboard"))
            .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<String> = panels
        .iter()
        .filter_map(|panel| panel["targets"].as_array())
        .flatten()
        .map(|target| {
            target["expr"]
                .as_str()
                .expect("every target has an expr")
                .replace("$job", ".*")
                .replace("$instance", ".*")
                .replace("$__rate_interval", "30s")
        })
        .collect();
    assert!(
        queries.len() >= 10,
        "the dashboard has its queries: {queries:?}"
    );
    queries
}

/// Prometheus, configured with `scrape.yml`, sees the probes succeed and the reflector, and
/// every dashboard query returns data.
#[test]
fn prometheus_scrapes_probes_and_the_dashboard_has_data() {
    require_root();
    require_tool("curl", "curl");
    let topology = Topology::for_mode(Mode::Tc);
    let reflector = start_reflector(&topology, Mode::Tc);
    let _exporter = exporter(topology.x());
    let _services = services(&topology);
    let config = scrape_config(&topology);
    let dir = TempDir::new("cfg");
    let file = dir.join("prometheus.yml");
    fs::write(&file, &config).expect("write the scrape config");
    promtool(&["check", "config", &file.to_string_lossy()]);

    let prometheus = Prometheus::start(topology.x(), &config, PROMETHEUS_ADDRESS);
    for job in ["ssh_through_reflector", "http_through_reflector"] {
        let query = format!("probe_success{{job=\"{job}\",instance=\"127.0.0.1\"}}");
        prometheus.wait_for_value(&query, &format!("{job} passing"), |v| v >= 1.0);
    }
    // The probes are the traffic: each one is reflected on the kernel path.
    prometheus.wait_for_value(
        "sum(reflector_kernel_flows_created_total)",
        "flows created by the probes",
        |v| v >= 2.0,
    );
    // Each must return at least one series (rates once two scrapes are in their window).
    for query in dashboard_queries() {
        let _ = prometheus.wait_for_data(&query);
    }
    drop(prometheus);
    reflector.stop_cleanly();
}
