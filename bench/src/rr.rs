//! Workload `rr`: request/response latency on one long TCP connection (a 64-byte request,
//! echoed), one exchange at a time.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::server::Service;
use crate::workload::{self, Measurement, Params};

/// Runs the echo service and one client; round trips/s and latency percentiles.
pub fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = workload::start_service(bed, params, Service::Echo);
    let report = workload::run_load(bed, params, Pattern::RequestResponse, 1)?;
    workload::check_service(&mut service)?;
    workload::rate_and_latency(&report, "round_trips_per_s", "round trips/s", 1)
}
