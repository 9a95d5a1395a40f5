//! Workload `udp`: UDP datagrams per second. Concurrent workers each send a 64-byte
//! datagram and wait for its echo (200 ms, then it counts as lost), one at a time.

use anyhow::Result;

use crate::bed::Bed;
use crate::loadgen::Pattern;
use crate::measurement::{self, Measurement, Params};
use crate::server::Service;

/// Runs the UDP echo service and the workers; echoed datagrams/s and latency percentiles.
pub(crate) fn measure(bed: &Bed, params: &Params) -> Result<Measurement> {
    let mut service = measurement::start_service(bed, params, Service::UdpEcho);
    let report = measurement::run_load(bed, params, Pattern::Datagram, params.workers)?;
    measurement::check_service(&mut service)?;
    measurement::rate_and_latency(&report, "datagrams_per_s", "echoed datagrams/s", 0)
}
