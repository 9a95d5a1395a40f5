//! Workload `rr`: request/response latency on one long TCP connection (a 64-byte request,
//! echoed), one exchange at a time.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::server::Service;
use crate::workload::{self, Figure, Measurement, Params};

/// Runs the echo service and one client; round trips/s and latency percentiles.
pub fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = workload::start_service(bed, params, Service::Echo);
    let report = workload::run_load(bed, params, Pattern::RequestResponse, 1)?;
    workload::check_service(&mut service)?;
    Ok(Measurement {
        figures: vec![
            Figure {
                key: "round_trips_per_s",
                label: "round trips/s",
                value: report.per_second,
                decimals: 0,
            },
            Figure {
                key: "p50_us",
                label: "p50 µs",
                value: report.latency.p50_us,
                decimals: 1,
            },
            Figure {
                key: "p99_us",
                label: "p99 µs",
                value: report.latency.p99_us,
                decimals: 1,
            },
        ],
        notes: workload::error_notes(&report),
        raw: serde_json::to_value(&report)?,
    })
}
