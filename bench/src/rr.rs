//! Workload `rr`: request/response latency on one long TCP connection (a 64-byte request,
//! echoed), one exchange at a time.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::measurement::{self, Measurement, Params};
use crate::server::Service;

/// Runs the echo service and one client; round trips/s and latency percentiles.
pub(crate) fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = measurement::start_service(bed, params, Service::Echo);
    let report = measurement::run_load(bed, params, Pattern::RequestResponse, 1)?;
    measurement::check_service(&mut service)?;
    measurement::rate_and_latency(&report, "round_trips_per_s", "round trips/s", 1)
}
