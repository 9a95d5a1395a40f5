//! The command line: `run` (the benchmark itself), and the service and load generator it
//! starts inside the namespaces (`serve`, `load`), which are this same binary.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::contender::Contender;
use crate::loadgen::{self, LoadArgs};
use crate::server::{self, ServeArgs};
use crate::workload::Workload;
use crate::{run, seed};

/// Benchmark reflector against the direct path, the seed's Python tool and nftables NAT.
#[derive(Parser)]
#[command(name = "reflector-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark (as root: it builds network namespaces and loads BPF programs).
    Run(RunArgs),
    /// Serve a workload's service on a port until killed (started by `run` in a namespace).
    #[command(hide = true)]
    Serve(ServeArgs),
    /// Generate a workload's load and print a JSON report (started by `run` in a namespace).
    #[command(hide = true)]
    Load(LoadArgs),
    /// Download the seed's Python tool (`PyPI` package `reflector` 0.1) into DIR, checked by SHA-256,
    /// and print the path of `reflector.py`.
    FetchSeed {
        /// Where to keep the download.
        #[arg(long, default_value = "target/bench")]
        dir: PathBuf,
    },
}

/// What `run` measures, and where it writes.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The `reflector` binary to measure (a release build: `cargo xtask bench` passes it).
    #[arg(long)]
    pub reflector: PathBuf,
    /// Where `results.json`, `results.md` and the seed's Python tool go.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
    /// Seconds each measurement lasts (after its warm-up).
    #[arg(long, default_value_t = 5.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Seconds of load before each connection-rate and latency measurement starts counting.
    #[arg(long, default_value_t = 1.0, value_parser = parse_seconds)]
    pub warmup: f64,
    /// The contenders, comma-separated (default: all). The direct path is always measured,
    /// under each NIC setting the chosen contenders need, as the reference.
    #[arg(long, value_delimiter = ',', value_enum)]
    pub contenders: Vec<Contender>,
    /// The workloads, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub workloads: Vec<Workload>,
    /// Concurrent clients of the connection-rate workload.
    #[arg(long, default_value_t = 16)]
    pub workers: usize,
    /// Take every measurement this many times, round after round (so a slow spell of the
    /// machine hits every contender alike); the tables show medians, the JSON every round.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// CPUs the request/response workload's processes run on (a `taskset --cpu-list`
    /// list), or `all` for no pinning.
    #[arg(long, default_value = "0")]
    pub rr_cpus: String,
    /// The command line to record with the results (`cargo xtask bench` passes its own).
    #[arg(long)]
    pub command: Option<String>,
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Run(args) => run::run(&args),
            Command::Serve(args) => server::serve(&args),
            Command::Load(args) => loadgen::load(&args),
            Command::FetchSeed { dir } => {
                println!("{}", seed::fetch(&dir)?.display());
                Ok(())
            }
        }
    }
}

/// A positive, finite number of seconds, at most an hour.
fn parse_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|e| format!("{text:?} is not a number of seconds: {e}"))?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0 {
        Ok(seconds)
    } else {
        Err(format!(
            "{text:?}: give a number of seconds above 0 and at most 3600, e.g. 5 or 0.5"
        ))
    }
}
