//! Workload `connect`: the health-check pattern. Concurrent workers each connect, read the
//! service's 16-byte banner to end of file and close, as fast as they can.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::server::Service;
use crate::workload::{self, Figure, Measurement, Params};

/// Runs the banner service and the workers; connections/s and latency percentiles.
pub fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = workload::start_service(bed, params, Service::Banner);
    let report = workload::run_load(bed, params, Pattern::Connect, params.workers)?;
    workload::check_service(&mut service)?;
    Ok(Measurement {
        figures: vec![
            Figure {
                key: "conn_per_s",
                label: "conn/s",
                value: report.per_second,
                decimals: 0,
            },
            Figure {
                key: "p50_us",
                label: "p50 µs",
                value: report.latency.p50_us,
                decimals: 0,
            },
            Figure {
                key: "p99_us",
                label: "p99 µs",
                value: report.latency.p99_us,
                decimals: 0,
            },
        ],
        notes: workload::error_notes(&report),
        raw: serde_json::to_value(&report)?,
    })
}
