//! Workload `connect`: the health-check pattern. Concurrent workers each connect, read the
//! service's 16-byte banner to end of file and close, as fast as they can. Besides the rate
//! and latency it counts, per contender, the checks that failed (hung past the load
//! generator's 3 s timeout, refused or reset) and those that took 1 s or more (a handshake
//! retried): under this churn every client port is reused while the service's socket of its
//! previous check is in `TIME_WAIT`, and a reflector must not turn that into failed checks.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::measurement::{self, Combine, Figure, Measurement, Params};
use crate::server::Service;

/// Runs the banner service and the workers; connections/s, latency percentiles, checks,
/// failed and slow checks.
#[expect(
    clippy::cast_precision_loss,
    reason = "check counts are far below 2^52"
)]
pub(crate) fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = measurement::start_service(bed, params, Service::Banner);
    let report = measurement::run_load(bed, params, Pattern::Connect, params.workers)?;
    measurement::check_service(&mut service)?;
    let mut measurement = measurement::rate_and_latency(&report, "conn_per_s", "conn/s", 0)?;
    let count = |key, label, value: u64| Figure {
        key,
        label,
        value: value as f64,
        decimals: 0,
        combine: Combine::Sum,
    };
    measurement.figures.extend([
        count("checks", "checks", report.completed + report.failed),
        count("failed", "failed", report.failed),
        count("slow", "≥ 1 s", report.slow),
    ]);
    Ok(measurement)
}
