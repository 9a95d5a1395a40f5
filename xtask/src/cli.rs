//! The command line: one subcommand per task, each in its own module.

use std::ffi::OsString;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{build, lint, run, setup, test};

/// Build, run, lint and test reflector.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// The tasks.
#[derive(Subcommand)]
enum Task {
    /// Install what building and testing needs (Debian packages, nightly Rust with rust-src,
    /// bpf-linker); installs only what is missing.
    Setup,
    /// Build reflector with its kernel program built in (installs the build toolchain first).
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build reflector, then run it as root: `cargo xtask run -- --map 10022:22`.
    Run {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
        /// Arguments for reflector, after `--`.
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Check formatting, and run clippy on the control plane and on the kernel program.
    Lint,
    /// Set up, lint, build, then run all tests as root (what CI runs).
    Test {
        /// Arguments for the test harness, after `--` (e.g. `--test-threads=1`).
        #[arg(last = true, value_name = "EXTRA")]
        extra: Vec<OsString>,
    },
}

impl Cli {
    /// Runs the chosen task.
    pub fn run(self) -> Result<()> {
        match self.task {
            Task::Setup => setup::run(),
            Task::Build { release } => build::run(release).map(drop),
            Task::Run { release, args } => run::run(release, &args),
            Task::Lint => lint::run(),
            Task::Test { extra } => test::run(&extra),
        }
    }
}
