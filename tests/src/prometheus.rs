//! A real Prometheus server in a namespace, asked through its HTTP API (with curl, in the
//! same namespace).

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::process::Process;
use crate::tempdir::TempDir;

/// How long Prometheus may take to start and to show what a test waits for.
pub const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(30);
/// How often its API is asked.
const PROMETHEUS_POLL: Duration = Duration::from_millis(500);
/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running Prometheus, stopped on drop, with its configuration and storage in a
/// directory of its own.
#[derive(Debug)]
pub struct Prometheus<'a> {
    // Field order is drop order: stop it before removing its directory.
    process: Process,
    _dir: TempDir,
    ns: &'a Netns,
    address: String,
}

impl<'a> Prometheus<'a> {
    /// Starts `prometheus` in `ns` with the configuration `config` (YAML), serving its API
    /// on `address` (in `ns`).
    #[must_use]
    pub fn start(ns: &'a Netns, config: &str, address: &str) -> Self {
        crate::require_tool("prometheus", "prometheus");
        let dir = TempDir::new("prom");
        let file = dir.join("prometheus.yml");
        fs::write(&file, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        let process = ns.spawn(&[
            "prometheus",
            &format!("--config.file={}", file.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address={address}"),
        ]);
        Self {
            process,
            _dir: dir,
            ns,
            address: address.to_owned(),
        }
    }

    /// The answer (JSON) to the instant query `query`.
    #[must_use]
    pub fn query(&self, query: &str) -> String {
        let url = format!("http://{}/api/v1/query", self.address);
        let query = format!("query={query}");
        let output = self.ns.exec_output(
            &["curl", "-s", "-G", "--data-urlencode", &query, &url],
            HTTP_TIMEOUT,
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Asks for `query` until `done` accepts the value of its first sample, within
    /// [`PROMETHEUS_TIMEOUT`]; returns the value. Panics with the last answer and
    /// Prometheus' log otherwise.
    pub fn wait_for_value(&self, query: &str, what: &str, done: impl Fn(f64) -> bool) -> f64 {
        self.wait_for(query, what, |answer| {
            first_value(answer).filter(|&v| done(v))
        })
    }

    /// Asks for `query` until its answer has at least one sample, within
    /// [`PROMETHEUS_TIMEOUT`]; returns the answer. Panics with the last answer otherwise.
    #[must_use]
    pub fn wait_for_data(&self, query: &str) -> String {
        self.wait_for(query, &format!("data for `{query}`"), |answer| {
            first_value(answer).map(|_| answer.to_owned())
        })
    }

    /// Asks for `query` every [`PROMETHEUS_POLL`] until `accept` takes its answer.
    fn wait_for<T>(&self, query: &str, what: &str, accept: impl Fn(&str) -> Option<T>) -> T {
        let start = Instant::now();
        let rounds = PROMETHEUS_TIMEOUT.as_millis() / PROMETHEUS_POLL.as_millis() + 1;
        let mut last = String::new();
        for _ in 0..rounds {
            last = self.query(query);
            if let Some(found) = accept(&last) {
                return found;
            }
            if start.elapsed() >= PROMETHEUS_TIMEOUT {
                break;
            }
            thread::sleep(PROMETHEUS_POLL);
        }
        self.fail(what, &last)
    }

    fn fail(&self, what: &str, last: &str) -> ! {
        panic!(
            "Prometheus did not show {what} within {PROMETHEUS_TIMEOUT:?}; last answer: \
             {last}{}",
            self.process.output_report()
        )
    }
}

/// The value of the first sample of an instant query's JSON answer (`"value":[t,"v"]`).
#[must_use]
pub fn first_value(json: &str) -> Option<f64> {
    let rest = &json[json.find("\"value\":[")? + "\"value\":[".len()..];
    let rest = &rest[rest.find(",\"")? + 2..];
    rest[..rest.find('"')?].parse().ok()
}
