//! `reflector probe`: the check a node runs on its own service through one or more
//! reflectors, which says which leg failed.
//!
//! One module per concern: [`args`] (the command line and the plan), [`check`] (what is
//! sent and what must come back), [`self_test`] (the listener and the round trip through a
//! reflector's self-test map), [`verdict`] (legs, quorum, status, the line), [`report`]
//! (JSON) and [`textfile`] (Prometheus metrics for `node_exporter`).
//!
//! Every reflector is probed at once, its self-test beside its service probes, all within
//! one deadline (`--timeout`), so the probe's wall time is bounded whatever fails.

pub(crate) mod args;
pub(crate) mod check;
pub(crate) mod report;
pub(crate) mod self_test;
pub(crate) mod textfile;
pub(crate) mod verdict;

use std::{
    ffi::OsString,
    io,
    net::{IpAddr, SocketAddr},
    process::ExitCode,
    time::{Duration, SystemTime},
};

use clap::{Args, Parser as _, error::ErrorKind};
use futures::future::join_all;
use tokio::time::{Instant, timeout_at};

use self::{
    args::{Plan, ProbeArgs, Via},
    check::{Attempt, Failure},
    self_test::{Listener, Ticket},
    verdict::{ReflectorResult, Status, Verdict},
};

/// `reflector probe ARGS...`. The arguments are parsed here rather than by the top-level
/// command line, because a bad argument must exit 3 (UNKNOWN) for Nagios-style callers,
/// where clap exits 2, which they read as CRITICAL.
#[derive(Debug, Args)]
pub struct ProbeCommand {
    /// See `reflector probe --help`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// Why the probe could not run at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// The self-test listener could not be opened.
    #[error(transparent)]
    Listen(#[from] self_test::ListenError),
    /// No random bytes for the self-test tickets.
    #[error("cannot make a self-test ticket")]
    Random(#[source] io::Error),
    /// No async runtime.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
}

impl ProbeCommand {
    /// Parses the arguments, probes, prints the line (or JSON), writes the metrics file and
    /// returns the status as the exit code.
    #[must_use]
    pub fn run(self) -> ExitCode {
        let argv = std::iter::once(OsString::from("reflector probe")).chain(self.args);
        let parsed = match ProbeArgs::try_parse_from(argv) {
            Ok(parsed) => parsed,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                ) =>
            {
                let _ = error.print();
                return ExitCode::SUCCESS;
            }
            Err(error) => {
                // The message is the error's first paragraph (missing flags are listed on
                // lines of their own), on one line.
                let rendered = error.render().to_string();
                let message: Vec<&str> = rendered
                    .lines()
                    .take_while(|line| !line.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let message = message.join(" ");
                println!(
                    "UNKNOWN reflector probe: {}",
                    message.trim_start_matches("error: ")
                );
                let _ = error.print();
                return Status::Unknown.into();
            }
        };
        let plan = match parsed.plan() {
            Ok(plan) => plan,
            Err(error) => {
                println!("UNKNOWN reflector probe: {error}");
                eprintln!("error: {error}");
                return Status::Unknown.into();
            }
        };
        ExitCode::from(exit_code(&plan, run(&plan)))
    }
}

/// The exit code of `status`: its own, but 0 for WARNING with `--pass-on-warning`.
fn exit_code(plan: &Plan, status: Status) -> u8 {
    if status == Status::Warning && plan.pass_on_warning {
        Status::Ok.code()
    } else {
        status.code()
    }
}

/// Probes per `plan`, prints the result and writes the metrics; returns the status.
fn run(plan: &Plan) -> Status {
    let started = Instant::now();
    let (status, results) = match block_on(plan) {
        Ok(results) => {
            let verdict = verdict::judge(plan, &results);
            print(plan, &verdict, &results, started.elapsed());
            (verdict.status, results)
        }
        Err(error) => {
            let line = format!(
                "UNKNOWN {}: {}",
                plan.name,
                crate::error_text::render(&error)
            );
            if plan.json {
                let json = serde_json::json!({
                    "status": Status::Unknown.word(),
                    "exit_code": Status::Unknown.code(),
                    "line": line,
                });
                println!("{json}");
            } else {
                println!("{line}");
            }
            (Status::Unknown, Vec::new())
        }
    };
    if let Some(path) = &plan.prometheus {
        let elapsed = started.elapsed();
        let metrics = textfile::render(plan, status, &results, elapsed, SystemTime::now());
        if let Err(error) = textfile::write_atomically(path, &metrics) {
            eprintln!("error: {}", crate::error_text::render(&error));
        }
    }
    status
}

/// Prints the verdict's line, or the whole report as JSON.
fn print(plan: &Plan, verdict: &Verdict, results: &[ReflectorResult], elapsed: Duration) {
    if plan.json {
        let exit_code = exit_code(plan, verdict.status);
        let report = report::Report::new(plan, verdict, results, elapsed, exit_code);
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => println!("{} (JSON failed: {error})", verdict.line),
        }
    } else {
        println!("{}", verdict.line);
    }
}

fn block_on(plan: &Plan) -> Result<Vec<ReflectorResult>, ProbeError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ProbeError::Runtime)?;
    let results = runtime.block_on(probe(plan));
    // A name lookup still running past the deadline must not hold the exit up.
    runtime.shutdown_background();
    results
}

/// Probes every reflector at once, within `--timeout`: the self-tests beside the service
/// probes.
async fn probe(plan: &Plan) -> Result<Vec<ReflectorResult>, ProbeError> {
    let deadline = Instant::now() + plan.timeout;
    let targets = join_all(
        plan.vias
            .iter()
            .map(|(via, port)| resolve(via, *port, deadline)),
    )
    .await;
    let services = async {
        let probes = targets.iter().zip(&plan.vias).map(|(target, (via, _))| {
            service_probes(plan, via, target.as_ref().ok().copied(), deadline)
        });
        Ok(join_all(probes).await)
    };
    let (self_tests, attempts) = tokio::try_join!(self_tests(plan, &targets, deadline), services)?;
    Ok(plan
        .vias
        .iter()
        .zip(targets)
        .zip(self_tests.into_iter().zip(attempts))
        .map(
            |(((via, _), target), (self_test, attempts))| ReflectorResult {
                via: via.text.clone(),
                target,
                self_test,
                attempts,
            },
        )
        .collect())
}

/// The self-test through each reflector that resolved (`None` for the others, and for
/// all without `--self-test`). The listener on Q is open only while they run, so other
/// probes on this node wait for the port no longer than that.
async fn self_tests(
    plan: &Plan,
    targets: &[Result<SocketAddr, Failure>],
    deadline: Instant,
) -> Result<Vec<Option<Attempt>>, ProbeError> {
    let Some(ports) = plan.self_test else {
        return Ok(vec![None; targets.len()]);
    };
    let tickets = targets
        .iter()
        .map(|_| Ticket::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(ProbeError::Random)?;
    let family = |v4: bool| {
        targets
            .iter()
            .any(|target| target.as_ref().is_ok_and(|t| t.is_ipv4() == v4))
    };
    let listener = Listener::open(
        ports.target,
        family(true),
        family(false),
        &tickets,
        deadline,
    )
    .await?;
    let tests = targets
        .iter()
        .zip(&tickets)
        .map(|(target, ticket)| async move {
            let to = SocketAddr::new(target.as_ref().ok()?.ip(), ports.listen);
            Some(self_test::run(to, ticket, deadline, plan.timeout).await)
        });
    let results = join_all(tests).await;
    drop(listener);
    Ok(results)
}

/// `--count` probes of the service through one reflector (none when it did not resolve),
/// one after the other, each from a source port of its own; a probe that ran into the
/// deadline ends them.
async fn service_probes(
    plan: &Plan,
    via: &Via,
    target: Option<SocketAddr>,
    deadline: Instant,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let Some(target) = target else {
        return attempts;
    };
    let host = default_host(via, target.port());
    for _ in 0..plan.count {
        let attempt = check::attempt(&plan.check, target, &host, deadline, plan.timeout).await;
        let out_of_time = matches!(
            attempt.result,
            Err(Failure::ConnectTimeout { .. } | Failure::NoAnswer { .. })
        );
        attempts.push(attempt);
        if out_of_time || Instant::now() >= deadline {
            break;
        }
    }
    attempts
}

/// R:L from `--via`: an address as is, a name through the system's resolver (its first
/// address), within `deadline`.
async fn resolve(via: &Via, port: u16, deadline: Instant) -> Result<SocketAddr, Failure> {
    if let Ok(ip) = via.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let failed = |why: String| Failure::Resolve {
        host: via.host.clone(),
        why,
    };
    match timeout_at(deadline, tokio::net::lookup_host((via.host.as_str(), port))).await {
        Err(_) => Err(failed("timed out".to_owned())),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Ok(Ok(mut addresses)) => addresses
            .next()
            .ok_or_else(|| failed("no address".to_owned())),
    }
}

/// The Host header `--http` sends unless `--host` says otherwise: R, with `:L` unless L is
/// 80.
fn default_host(via: &Via, port: u16) -> String {
    let host = if via.host.contains(':') {
        format!("[{}]", via.host)
    } else {
        via.host.clone()
    };
    if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_addresses_and_names() {
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let via = |text: &str| text.parse::<Via>().unwrap();
        assert_eq!(
            resolve(&via("[2001:db8::1]:10022"), 10022, deadline).await,
            Ok("[2001:db8::1]:10022".parse().unwrap())
        );
        // From /etc/hosts: no query leaves the machine.
        let local = resolve(&via("localhost"), 22, deadline).await.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 22, "{local}");
    }

    #[test]
    fn host_headers() {
        let via = |text: &str| text.parse::<Via>().unwrap();
        assert_eq!(default_host(&via("web.example"), 80), "web.example");
        assert_eq!(
            default_host(&via("web.example:10080"), 10080),
            "web.example:10080"
        );
        assert_eq!(
            default_host(&via("[2001:db8::1]:10080"), 10080),
            "[2001:db8::1]:10080"
        );
    }
}
