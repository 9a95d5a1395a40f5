//! From what each reflector saw to one verdict: which leg failed per reflector, the quorum,
//! the status (with its exit code) and the one human line.

use std::{fmt::Write as _, net::SocketAddr, process::ExitCode, time::Duration};

use super::{
    args::Plan,
    check::{Attempt, Failure},
};

/// The Nagios plugin states, which are also the exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// The service answered through enough working reflectors.
    Ok = 0,
    /// Not judged: the reflector or network leg failed, or the reflectors disagree.
    Warning = 1,
    /// The service failed through a working reflector.
    Critical = 2,
    /// The probe could not run (bad arguments, no self-test listener).
    Unknown = 3,
}

impl Status {
    /// The word that starts the line: OK, WARNING, CRITICAL, UNKNOWN.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The exit code: 0, 1, 2, 3.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        Self::from(status.code())
    }
}

/// Which leg of one reflector's round trip failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leg {
    /// None: the service answered through this reflector.
    None,
    /// The reflector or the network: its self-test failed (or its name did not resolve).
    Reflector,
    /// This node's service: it failed through this reflector, whose self-test passed (or
    /// was not asked for).
    Service,
}

impl Leg {
    /// `none`, `reflector` or `service`: the JSON value and the metric label.
    #[must_use]
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reflector => "reflector",
            Self::Service => "service",
        }
    }
}

/// What the probe saw through one reflector.
#[derive(Clone, Debug)]
pub(crate) struct ReflectorResult {
    /// R[:L] as given.
    pub via: String,
    /// R:L resolved, or why it could not be.
    pub target: Result<SocketAddr, Failure>,
    /// The self-test, when asked for (and R resolved).
    pub self_test: Option<Attempt>,
    /// The service probes, in order.
    pub attempts: Vec<Attempt>,
}

impl ReflectorResult {
    /// Whether every service probe passed.
    #[must_use]
    pub(crate) fn service_passed(&self) -> bool {
        !self.attempts.is_empty() && self.attempts.iter().all(|a| a.result.is_ok())
    }

    /// Whether the self-test passed (`None` when there was none).
    #[must_use]
    pub(crate) fn self_test_passed(&self) -> Option<bool> {
        self.self_test.as_ref().map(|test| test.result.is_ok())
    }

    /// The leg that failed. A service that answered is proof enough that the path works,
    /// whatever the self-test said.
    #[must_use]
    pub(crate) fn leg(&self) -> Leg {
        if self.service_passed() {
            Leg::None
        } else if self.target.is_err() || self.self_test_passed() == Some(false) {
            Leg::Reflector
        } else {
            Leg::Service
        }
    }

    /// The first service failure, and how many of the probes failed.
    fn service_failure(&self) -> Option<(&Failure, usize)> {
        let mut failures = self.attempts.iter().filter_map(|a| a.result.as_ref().err());
        let first = failures.next()?;
        Some((first, 1 + failures.count()))
    }

    /// Why the reflector leg failed, e.g. `self-test connection refused`.
    fn reflector_failure(&self) -> String {
        match (&self.target, &self.self_test) {
            (Err(failure), _) => failure.to_string(),
            (
                Ok(_),
                Some(Attempt {
                    result: Err(failure),
                    ..
                }),
            ) => format!("self-test {failure}"),
            _ => "no failure".to_owned(),
        }
    }

    /// Why the service failed through it, e.g. `connection refused by this node's port
    /// 22`, with `(2 of 3 probes)` when not all failed.
    fn service_reason(&self, port: u16) -> String {
        let Some((failure, failed)) = self.service_failure() else {
            return "no failure".to_owned();
        };
        let mut reason = match failure {
            Failure::Refused | Failure::Reset => format!("{failure} by this node's port {port}"),
            _ => failure.to_string(),
        };
        if failed < self.attempts.len() {
            let _ = write!(reason, " ({failed} of {} probes)", self.attempts.len());
        }
        reason
    }

    /// The round trips of the probes that passed.
    #[must_use]
    pub(crate) fn round_trips(&self) -> Vec<Duration> {
        self.attempts
            .iter()
            .filter(|a| a.result.is_ok())
            .map(|a| a.elapsed)
            .collect()
    }

    /// The summary of the first answer that passed.
    fn summary(&self) -> Option<&str> {
        self.attempts
            .iter()
            .find_map(|a| a.result.as_ref().ok().map(String::as_str))
    }
}

/// Min, median and max of `samples` (the lower median of an even count), if any.
#[must_use]
pub(crate) fn min_median_max(samples: &[Duration]) -> Option<(Duration, Duration, Duration)> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let min = *sorted.first()?;
    let max = *sorted.last()?;
    Some((min, sorted[(sorted.len() - 1) / 2], max))
}

/// Milliseconds with two decimals.
fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1000.0)
}

/// The status and the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// OK, WARNING or CRITICAL.
    pub status: Status,
    /// The one human line, e.g. `OK ssh via r1,r2: SSH-2.0-OpenSSH_9.2 in 0.41 ms`.
    pub line: String,
}

/// Judges the service from what each reflector saw.
///
/// Reflectors whose leg is [`Leg::Reflector`] are left out; the rest are judged. Fewer
/// judged than `--quorum` is WARNING; otherwise a majority that saw the service answer is
/// OK, a majority that saw it fail is CRITICAL, and a tie is WARNING.
#[must_use]
pub(crate) fn judge(plan: &Plan, results: &[ReflectorResult]) -> Verdict {
    let legs = Legs::sort(results);
    let judged = legs.passed.len() + legs.failed.len();
    let too_few = judged < plan.quorum as usize;
    let (status, mut line) = if too_few {
        (Status::Warning, not_judged(plan, &legs, results.len()))
    } else if legs.passed.len() > legs.failed.len() {
        (Status::Ok, passed(plan, &legs))
    } else if legs.failed.len() > legs.passed.len() {
        (Status::Critical, failed(plan, &legs))
    } else {
        (Status::Warning, disagree(plan, &legs))
    };
    let broken: Vec<String> = legs
        .broken
        .iter()
        .map(|r| format!("{} failed: {}", r.via, r.reflector_failure()))
        .collect();
    if !broken.is_empty() {
        // After "not judged ...:" the broken reflectors are the reason; elsewhere a note.
        line.push_str(if too_few { " " } else { "; " });
        line.push_str(&broken.join("; "));
    }
    Verdict { status, line }
}

/// The reflectors by the leg that failed.
struct Legs<'a> {
    passed: Vec<&'a ReflectorResult>,
    failed: Vec<&'a ReflectorResult>,
    broken: Vec<&'a ReflectorResult>,
}

impl<'a> Legs<'a> {
    fn sort(results: &'a [ReflectorResult]) -> Self {
        let with = |leg| results.iter().filter(|r| r.leg() == leg).collect();
        Self {
            passed: with(Leg::None),
            failed: with(Leg::Service),
            broken: with(Leg::Reflector),
        }
    }
}

/// WARNING: too few reflectors work; the broken ones follow.
fn not_judged(plan: &Plan, legs: &Legs, total: usize) -> String {
    let judged = legs.passed.len() + legs.failed.len();
    if judged == 0 {
        format!(
            "WARNING {}: not judged, the reflector leg failed:",
            plan.name
        )
    } else {
        format!(
            "WARNING {}: not judged, {judged} of {total} reflectors work (--quorum {}):",
            plan.name, plan.quorum
        )
    }
}

/// OK: the service's answer and round trips, and any reflector that saw it fail.
fn passed(plan: &Plan, legs: &Legs) -> String {
    let vias: Vec<&str> = legs.passed.iter().map(|r| r.via.as_str()).collect();
    let summary = legs.passed[0].summary().unwrap_or("answered");
    let samples: Vec<Duration> = legs.passed.iter().flat_map(|r| r.round_trips()).collect();
    let mut line = format!("OK {} via {}: {summary}", plan.name, vias.join(","));
    match min_median_max(&samples) {
        Some((only, _, _)) if samples.len() == 1 => {
            let _ = write!(line, " in {} ms", ms(only));
        }
        Some((min, median, max)) => {
            let _ = write!(
                line,
                " in {}/{}/{} ms (min/median/max of {})",
                ms(min),
                ms(median),
                ms(max),
                samples.len()
            );
        }
        None => {}
    }
    for r in &legs.failed {
        let reason = r.service_reason(plan.service_port);
        let _ = write!(line, "; failed via {}: {reason}", r.via);
    }
    line
}

/// CRITICAL: why the service failed (per reflector when the reasons differ), and which
/// self-tests vouch for the reflectors.
fn failed(plan: &Plan, legs: &Legs) -> String {
    let port = plan.service_port;
    let reasons: Vec<String> = legs.failed.iter().map(|r| r.service_reason(port)).collect();
    let mut line = format!("CRITICAL {}: ", plan.name);
    if reasons.iter().all(|reason| *reason == reasons[0]) {
        line.push_str(&reasons[0]);
    } else {
        let each: Vec<String> = legs
            .failed
            .iter()
            .zip(&reasons)
            .map(|(r, reason)| format!("{reason} via {}", r.via))
            .collect();
        line.push_str(&each.join("; "));
    }
    let tested: Vec<&str> = legs
        .failed
        .iter()
        .filter(|r| r.self_test_passed() == Some(true))
        .map(|r| r.via.as_str())
        .collect();
    if tested.is_empty() {
        line.push_str(" (no --self-test: the reflector leg was not checked)");
    } else {
        let _ = write!(line, " (self-test via {} passed)", tested.join(","));
    }
    for r in &legs.passed {
        let _ = write!(line, "; OK via {}", r.via);
    }
    line
}

/// WARNING: as many working reflectors saw the service answer as saw it fail.
fn disagree(plan: &Plan, legs: &Legs) -> String {
    let mut each: Vec<String> = legs
        .passed
        .iter()
        .map(|r| format!("OK via {}", r.via))
        .collect();
    each.extend(
        legs.failed
            .iter()
            .map(|r| format!("{} via {}", r.service_reason(plan.service_port), r.via)),
    );
    format!(
        "WARNING {}: reflectors disagree: {}",
        plan.name,
        each.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::probe::{
        args::{ProbeArgs, SelfTestPorts},
        check::Check,
    };
    use clap::Parser as _;

    fn plan(vias: usize, quorum: u32) -> Plan {
        let mut argv = vec!["p".to_owned(), "--service".to_owned(), "22".to_owned()];
        for i in 0..vias {
            argv.extend(["--via".to_owned(), format!("r{}:10022", i + 1)]);
        }
        argv.extend(["--quorum".to_owned(), quorum.to_string()]);
        argv.extend(["--name".to_owned(), "ssh".to_owned()]);
        let mut plan = ProbeArgs::try_parse_from(argv).unwrap().plan().unwrap();
        plan.check = Check::Banner(b"SSH-".to_vec());
        plan.self_test = Some(SelfTestPorts {
            listen: 19999,
            target: 19999,
        });
        plan
    }

    fn attempt(result: Result<&str, Failure>, ms: u64) -> Attempt {
        Attempt {
            source_port: 40000,
            elapsed: Duration::from_millis(ms),
            result: result.map(str::to_owned),
        }
    }

    fn result(
        via: &str,
        self_test: Option<Result<&str, Failure>>,
        service: Vec<Result<&str, Failure>>,
    ) -> ReflectorResult {
        ReflectorResult {
            via: via.to_owned(),
            target: Ok("192.0.2.1:10022".parse().unwrap()),
            self_test: self_test.map(|r| attempt(r, 1)),
            attempts: service.into_iter().map(|r| attempt(r, 2)).collect(),
        }
    }

    const BANNER: &str = "SSH-2.0-OpenSSH_9.2";
    const TIMEOUT: Failure = Failure::ConnectTimeout {
        timeout: Duration::from_secs(1),
    };

    #[test]
    fn ok_through_all() {
        let results = [
            result("r1", Some(Ok("came back")), vec![Ok(BANNER)]),
            result("r2", Some(Ok("came back")), vec![Ok(BANNER)]),
        ];
        let verdict = judge(&plan(2, 1), &results);
        assert_eq!(verdict.status, Status::Ok);
        assert_eq!(
            verdict.line,
            "OK ssh via r1,r2: SSH-2.0-OpenSSH_9.2 in 2.00/2.00/2.00 ms (min/median/max of 2)"
        );
    }

    #[test]
    fn quorum_survives_a_broken_reflector_and_names_it() {
        let results = [
            result("r1", Some(Ok("came back")), vec![Ok(BANNER)]),
            result(
                "r2",
                Some(Err(Failure::Refused)),
                vec![Err(Failure::Refused)],
            ),
        ];
        let verdict = judge(&plan(2, 1), &results);
        assert_eq!(
            verdict.line,
            "OK ssh via r1: SSH-2.0-OpenSSH_9.2 in 2.00 ms; r2 failed: self-test connection refused"
        );
        assert_eq!(judge(&plan(2, 2), &results).status, Status::Warning);
    }

    #[test]
    fn critical_only_through_a_working_reflector() {
        let results = [result(
            "r1",
            Some(Ok("came back")),
            vec![Err(Failure::Refused)],
        )];
        let verdict = judge(&plan(1, 1), &results);
        assert_eq!(verdict.status, Status::Critical);
        assert_eq!(
            verdict.line,
            "CRITICAL ssh: connection refused by this node's port 22 (self-test via r1 passed)"
        );
        let results = [result("r1", Some(Err(TIMEOUT)), vec![Err(TIMEOUT)])];
        let verdict = judge(&plan(1, 1), &results);
        assert_eq!(verdict.status, Status::Warning);
        assert_eq!(
            verdict.line,
            "WARNING ssh: not judged, the reflector leg failed: r1 failed: self-test connect \
             timed out (--timeout 1s)"
        );
    }

    #[test]
    fn without_self_test_a_failure_is_critical() {
        let results = [result("r1", None, vec![Ok(BANNER), Err(Failure::Reset)])];
        let verdict = judge(&plan(1, 1), &results);
        assert_eq!(
            verdict.line,
            "CRITICAL ssh: connection reset by this node's port 22 (1 of 2 probes) (no \
             --self-test: the reflector leg was not checked)"
        );
    }

    #[test]
    fn a_tie_is_a_warning() {
        let results = [
            result("r1", Some(Ok("came back")), vec![Ok(BANNER)]),
            result("r2", Some(Ok("came back")), vec![Err(Failure::Closed)]),
        ];
        let verdict = judge(&plan(2, 1), &results);
        assert_eq!(verdict.status, Status::Warning);
        assert_eq!(
            verdict.line,
            "WARNING ssh: reflectors disagree: OK via r1; closed without answering via r2"
        );
    }

    #[test]
    fn medians() {
        let ms = Duration::from_millis;
        assert_eq!(
            min_median_max(&[ms(3), ms(1), ms(2)]),
            Some((ms(1), ms(2), ms(3)))
        );
        assert_eq!(min_median_max(&[]), None);
    }
}
