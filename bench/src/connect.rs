//! Workload `connect`: the health-check pattern. Concurrent workers each connect, read the
//! service's 16-byte banner to end of file and close, as fast as they can.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::server::Service;
use crate::workload::{self, Measurement, Params};

/// Runs the banner service and the workers; connections/s and latency percentiles.
pub fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = workload::start_service(bed, params, Service::Banner);
    let report = workload::run_load(bed, params, Pattern::Connect, params.workers)?;
    workload::check_service(&mut service)?;
    workload::rate_and_latency(&report, "conn_per_s", "conn/s", 0)
}
