//! The probe's result as JSON (`--json`): the verdict, and per reflector its leg, its
//! self-test and every service probe.

use std::time::Duration;

use serde::Serialize;

use super::{
    args::Plan,
    check::{Attempt, Protocol},
    verdict::{ReflectorResult, Verdict, min_median_max},
};

/// The whole result.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    /// OK, WARNING, CRITICAL.
    pub status: &'static str,
    /// The exit code: 0, 1, 2 (0 for WARNING with `--pass-on-warning`).
    pub exit_code: u8,
    /// The human line.
    pub line: &'a str,
    /// What was checked.
    pub service: Service<'a>,
    /// Working reflectors needed.
    pub quorum: u32,
    /// How long the probe took.
    pub elapsed_seconds: f64,
    /// Per reflector, in `--via` order.
    pub reflectors: Vec<Reflector<'a>>,
}

/// What was checked.
#[derive(Debug, Serialize)]
pub(crate) struct Service<'a> {
    /// `--name`.
    pub name: &'a str,
    /// P.
    pub port: u16,
    /// tcp or udp.
    pub protocol: &'static str,
    /// connect, banner, exchange, http or udp.
    pub check: &'static str,
}

/// One reflector.
#[derive(Debug, Serialize)]
pub(crate) struct Reflector<'a> {
    /// R[:L] as given.
    pub via: &'a str,
    /// R:L resolved (absent when it did not resolve).
    pub address: Option<String>,
    /// none, reflector or service: the leg that failed.
    pub failed_leg: &'static str,
    /// The self-test (absent without `--self-test`).
    pub self_test: Option<Probe>,
    /// Whether every service probe passed.
    pub service_passed: bool,
    /// min, median, max of the passed probes' round trips.
    pub round_trip_seconds: Option<RoundTrips>,
    /// Every service probe.
    pub probes: Vec<Probe>,
    /// Why R did not resolve.
    pub error: Option<String>,
}

/// One connection (a self-test or a service probe).
#[derive(Debug, Serialize)]
pub(crate) struct Probe {
    /// Whether it passed.
    pub passed: bool,
    /// Its source port.
    pub source_port: u16,
    /// How long it took.
    pub seconds: f64,
    /// The answer's summary, when it passed.
    pub answer: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Round-trip statistics.
#[derive(Debug, Serialize)]
pub(crate) struct RoundTrips {
    /// Fastest.
    pub min: f64,
    /// Median (the lower one of an even count).
    pub median: f64,
    /// Slowest.
    pub max: f64,
}

impl From<&Attempt> for Probe {
    fn from(attempt: &Attempt) -> Self {
        Self {
            passed: attempt.result.is_ok(),
            source_port: attempt.source_port,
            seconds: attempt.elapsed.as_secs_f64(),
            answer: attempt.result.as_ref().ok().cloned(),
            error: attempt.result.as_ref().err().map(ToString::to_string),
        }
    }
}

/// Round-trip statistics of `samples`, if any.
#[must_use]
pub(crate) fn round_trips(samples: &[Duration]) -> Option<RoundTrips> {
    min_median_max(samples).map(|(min, median, max)| RoundTrips {
        min: min.as_secs_f64(),
        median: median.as_secs_f64(),
        max: max.as_secs_f64(),
    })
}

impl<'a> Report<'a> {
    /// The report of one probe run.
    #[must_use]
    pub(crate) fn new(
        plan: &'a Plan,
        verdict: &'a Verdict,
        results: &'a [ReflectorResult],
        elapsed: Duration,
        exit_code: u8,
    ) -> Self {
        Self {
            status: verdict.status.word(),
            exit_code,
            line: &verdict.line,
            service: Service {
                name: &plan.name,
                port: plan.service_port,
                protocol: match plan.check.protocol() {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                },
                check: plan.check.kind(),
            },
            quorum: plan.quorum,
            elapsed_seconds: elapsed.as_secs_f64(),
            reflectors: results
                .iter()
                .map(|result| Reflector {
                    via: &result.via,
                    address: result.target.as_ref().ok().map(ToString::to_string),
                    failed_leg: result.leg().as_str(),
                    self_test: result.self_test.as_ref().map(Probe::from),
                    service_passed: result.service_passed(),
                    round_trip_seconds: round_trips(&result.round_trips()),
                    probes: result.attempts.iter().map(Probe::from).collect(),
                    error: result.target.as_ref().err().map(ToString::to_string),
                })
                .collect(),
        }
    }
}
