//! `reflector-bench`: compares the direct path, the reference reflector, each reflector
//! mode, the seed's Python tool and nftables NAT on the same workloads, each on namespaces
//! built afresh. Run it through `cargo xtask bench`, which builds everything in release
//! mode and runs this as root.
//!
//! How it is put together (one module per job):
//!
//! - [`run`] plans the measurements: for each NIC setting a chosen contender needs, the
//!   direct path first, then those contenders; every workload on each, every round. Each
//!   measurement gets a fresh [`bed::Bed`] (namespaces X and R from the test harness, the
//!   contender started in R) and a pause after it, so no `TIME_WAIT` or namespace teardown
//!   of one measurement lands in the next.
//! - [`contender`] names the contenders; [`bed`] starts them ([`nft`] for kernel NAT,
//!   [`seed`] fetches the Python tool).
//! - [`workload`] names the workloads and dispatches to one module each ([`connect`],
//!   [`bulk`], [`rr`], [`udp`]). They run a service ([`server`], or iperf3) where the bed
//!   says and a client in X: [`loadgen`], this same binary, whose workers loop bounded in
//!   time and count and record latencies ([`latency`], HDR histograms).
//! - [`kernel`] is workload 5, the kernel program alone through `BPF_PROG_TEST_RUN`, next
//!   to a program that only swaps MACs; it needs no bed and runs once per round.
//! - [`report`] writes the JSON (every raw number) and the markdown tables (each figure
//!   with its ratio to the direct path under the same NIC setting; medians over rounds).
//!
//! A new workload is a [`workload::Workload`] variant, a module returning a
//! [`measurement::Measurement`] (named figures plus raw JSON), and a heading in [`report`];
//! a new contender is a [`contender::Contender`] variant and its start in [`bed`].

mod bed;
mod bulk;
mod cli;
mod connect;
mod contender;
mod interrupt;
mod kernel;
mod latency;
mod loadgen;
mod measurement;
mod nft;
mod report;
mod rr;
mod run;
mod seed;
mod server;
mod sockets;
mod summary;
mod targets;
mod udp;
mod workload;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    cli::Cli::parse().run()
}
