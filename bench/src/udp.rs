//! Workload `udp`: UDP datagrams per second. Concurrent workers each send a 64-byte
//! datagram and wait for its echo (200 ms, then it counts as lost), one at a time.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::server::Service;
use crate::workload::{self, Figure, Measurement, Params};

/// Runs the UDP echo service and the workers; echoed datagrams/s and latency percentiles.
pub fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = workload::start_service(bed, params, Service::UdpEcho);
    let report = workload::run_load(bed, params, Pattern::Datagram, params.workers)?;
    workload::check_service(&mut service)?;
    Ok(Measurement {
        figures: vec![
            Figure {
                key: "datagrams_per_s",
                label: "echoed datagrams/s",
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
