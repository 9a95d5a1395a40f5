//! What every measurement returns (named figures, compared with the direct path in the
//! report, and the raw numbers behind them), and the steps every workload takes: start the
//! service, run the load generator, check the service survived.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use reflector_tests::Process;
use reflector_tests::command::{describe, format_output, output_within};
use serde::Serialize;

use crate::bed::{Bed, SERVICE_PORT, START_TIMEOUT};
use crate::loadgen::{IO_TIMEOUT, LoadReport, Pattern};
use crate::server::Service;

/// How long and how hard each measurement runs.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    /// This binary: the service and the load generator.
    pub bench: PathBuf,
    /// Seconds measured.
    pub duration: f64,
    /// Seconds of load before the measurement counts.
    pub warmup: f64,
    /// Concurrent clients of the connection-rate workload.
    pub workers: usize,
    /// The CPUs of the request/response workload (`taskset --cpu-list`), if pinned.
    pub rr_cpus: Option<String>,
}

/// One figure of a measurement.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Figure {
    /// Stable key in the JSON (`conn_per_s`).
    pub key: &'static str,
    /// Column heading in the table (`conn/s`).
    pub label: &'static str,
    /// The value.
    pub value: f64,
    /// Decimals shown in the table.
    #[serde(skip)]
    pub decimals: usize,
    /// How the rounds of a row are combined into its cell.
    #[serde(skip)]
    pub combine: Combine,
}

/// How a figure measured in several rounds becomes one table cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Combine {
    /// The median over rounds, with its ratio to the direct path: rates and latencies.
    Median,
    /// The sum over rounds, without a ratio: counts of events (failed checks), where every
    /// one matters and 0 is the only good value.
    Sum,
}

/// What measuring one workload on one contender gave.
#[derive(Debug, Serialize)]
pub(crate) struct Measurement {
    /// The figures, in column order.
    pub figures: Vec<Figure>,
    /// Things to show next to the figures (errors seen, say).
    pub notes: Vec<String>,
    /// Everything the tools reported.
    pub raw: serde_json::Value,
}

/// Starts `service` on [`SERVICE_PORT`] in the bed's service namespace and waits until it
/// listens.
pub(crate) fn start_service(bed: &Bed, params: &Params, service: Service) -> Process {
    let ns = bed.service_ns();
    let service = service
        .to_possible_value()
        .expect("no service is skipped")
        .get_name()
        .to_owned();
    let process = Process::spawn(&mut bed.command(
        ns,
        &[
            &params.bench.to_string_lossy(),
            "serve",
            "--service",
            &service,
            "--port",
            &SERVICE_PORT.to_string(),
        ],
    ));
    ns.wait_listening(service == "udp-echo", SERVICE_PORT, START_TIMEOUT);
    process
}

/// Runs the load generator in X against the bed's target and returns its report.
pub(crate) fn run_load(
    bed: &Bed,
    params: &Params,
    pattern: Pattern,
    workers: usize,
) -> Result<LoadReport> {
    let pattern = pattern
        .to_possible_value()
        .expect("no pattern is skipped")
        .get_name()
        .to_owned();
    let mut cmd = bed.command(
        bed.client_ns(),
        &[
            &params.bench.to_string_lossy(),
            "load",
            "--pattern",
            &pattern,
            "--to",
            &bed.target().to_string(),
            "--workers",
            &workers.to_string(),
            "--duration",
            &params.duration.to_string(),
            "--warmup",
            &params.warmup.to_string(),
        ],
    );
    // The run, then one more I/O timeout for the operations in flight at its end.
    let timeout = Duration::from_secs_f64(params.warmup + params.duration)
        + 2 * IO_TIMEOUT
        + Duration::from_secs(10);
    let output = output_within(&mut cmd, timeout);
    if !output.status.success() {
        bail!(
            "`{}` failed ({}){}",
            describe(&cmd),
            output.status,
            format_output(&output.stdout, &output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "cannot read the load generator's report{}",
            format_output(&output.stdout, &output.stderr)
        )
    })
}

/// Fails when `service` has exited: what was measured meanwhile was not the service.
pub(crate) fn check_service(service: &mut Process) -> Result<()> {
    if let Some(status) = service.try_status() {
        bail!(
            "the service `{}` exited ({status}){}",
            service.what(),
            service.output_report()
        );
    }
    Ok(())
}

/// The measurement of a load run: its rate (`rate_key`, column `rate_label`) and its p50
/// and p99 latency with `latency_decimals` decimals, the errors it saw, and the raw report.
///
/// # Errors
/// When the report cannot be turned into JSON.
pub(crate) fn rate_and_latency(
    report: &LoadReport,
    rate_key: &'static str,
    rate_label: &'static str,
    latency_decimals: usize,
) -> Result<Measurement> {
    Ok(Measurement {
        figures: vec![
            Figure {
                key: rate_key,
                label: rate_label,
                value: report.per_second,
                decimals: 0,
                combine: Combine::Median,
            },
            Figure {
                key: "p50_us",
                label: "p50 µs",
                value: report.latency.p50_us,
                decimals: latency_decimals,
                combine: Combine::Median,
            },
            Figure {
                key: "p99_us",
                label: "p99 µs",
                value: report.latency.p99_us,
                decimals: latency_decimals,
                combine: Combine::Median,
            },
        ],
        notes: error_notes(report),
        raw: serde_json::to_value(report)?,
    })
}

/// The errors a load run saw, as notes.
pub(crate) fn error_notes(report: &LoadReport) -> Vec<String> {
    report
        .errors
        .iter()
        .map(|(what, count)| format!("{what} x{count}"))
        .collect()
}
