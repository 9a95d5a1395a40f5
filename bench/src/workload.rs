//! The workloads: what each is, which contenders can take it, and which module measures it.

use std::fmt;

use anyhow::{Result, bail};
use clap::ValueEnum;
use serde::Serialize;

use crate::bed::Bed;
use crate::contender::Contender;
use crate::measurement::{Measurement, Params};
use crate::{bulk, connect, rr, udp};

/// A kind of traffic, measured the same way for every contender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Workload {
    /// Health-check pattern: new TCP connections per second (connect, read a 16-byte
    /// banner, close) from concurrent workers, with p50 and p99 latency.
    Connect,
    /// Bulk throughput of one TCP stream from client to service (iperf3).
    Bulk,
    /// Bulk throughput of one TCP stream from service to client (iperf3 `--reverse`).
    BulkReverse,
    /// Request/response latency on one long TCP connection (64-byte echo).
    Rr,
    /// UDP datagrams per second: concurrent workers, each a 64-byte datagram and its echo
    /// at a time.
    Udp,
    /// The kernel program alone: ns/packet of each path through `BPF_PROG_TEST_RUN`, next
    /// to a program that only swaps MACs. Measured once per round, not per contender.
    Kernel,
}

impl Workload {
    /// Every workload, in report order.
    pub(crate) const ALL: [Self; 6] = [
        Self::Connect,
        Self::Bulk,
        Self::BulkReverse,
        Self::Rr,
        Self::Udp,
        Self::Kernel,
    ];

    /// Whether every contender is measured on it (all but [`Self::Kernel`], which
    /// measures the kernel program without a network).
    pub(crate) const fn per_contender(self) -> bool {
        !matches!(self, Self::Kernel)
    }

    /// Its name, as on the command line and in the results.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Bulk => "bulk",
            Self::BulkReverse => "bulk-reverse",
            Self::Rr => "rr",
            Self::Udp => "udp",
            Self::Kernel => "kernel",
        }
    }

    /// The CPUs this workload's processes (contender, service, client) are pinned to, if
    /// any: request/response latency, one exchange at a time, is otherwise dominated by
    /// where the scheduler happens to wake each party (on a VM whose idle vCPUs halt, a
    /// wake-up on another CPU costs tens of microseconds), which makes it bimodal.
    pub(crate) fn cpus(self, params: &Params) -> Option<String> {
        match self {
            Self::Rr => params.rr_cpus.clone(),
            Self::Connect | Self::Bulk | Self::BulkReverse | Self::Udp | Self::Kernel => None,
        }
    }

    /// Why `contender` cannot take this workload, if it cannot.
    pub(crate) const fn refused_by(self, contender: Contender) -> Option<&'static str> {
        match (contender, self) {
            (Contender::Python, Self::Udp) => Some("the seed's Python tool reflects TCP only"),
            _ => None,
        }
    }

    /// Measures this workload on `bed`.
    pub(crate) fn measure(self, bed: &Bed, params: &Params) -> Result<Measurement> {
        match self {
            Self::Connect => connect::measure(bed, params),
            Self::Bulk => bulk::measure(bed, params, false),
            Self::BulkReverse => bulk::measure(bed, params, true),
            Self::Rr => rr::measure(bed, params),
            Self::Udp => udp::measure(bed, params),
            Self::Kernel => bail!("the kernel workload is measured once, not on a bed"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
