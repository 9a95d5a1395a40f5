//! The command line: `run` (the benchmark itself), and the service and load generator it
//! starts inside the namespaces (`serve`, `load`), which are this same binary.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::loadgen::{self, LoadArgs};
use crate::run::{self, RunArgs};
use crate::seed;
use crate::server::{self, ServeArgs};

/// Benchmark reflector against the direct path, the seed's Python tool and nftables NAT.
#[derive(Parser)]
#[command(name = "reflector-bench", version)]
pub(crate) struct Cli {
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

impl Cli {
    /// Runs the chosen subcommand.
    pub(crate) fn run(self) -> Result<()> {
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
