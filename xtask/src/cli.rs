//! The command line: one subcommand per task, each in its own module.

use std::ffi::OsString;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::{bench, build, deb, fuzz, image, lint, run, setup, test, vmtest};

/// Build, run, lint, test and benchmark reflector.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
pub(crate) struct Cli {
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
    /// Build the Debian package target/debian/reflector_<version>_amd64.deb (installs
    /// cargo-deb when missing): the binary with its kernel program, the systemd unit, the
    /// config file, man pages and shell completions generated from the CLI, the README.
    Deb,
    /// Build the container image (deploy/container/Containerfile) offline with podman, from
    /// a static reflector; installs podman when missing and prints the image's size.
    Image,
    /// Check formatting, and run clippy on the control plane and on the kernel program.
    Lint,
    /// Set up, lint, build, then run all tests as root, then the VM matrix's CI subset on
    /// 5.10, 6.1 and 6.12 (what CI runs; with test arguments the matrix is left out).
    Test {
        /// Arguments for the test harness, after `--` (e.g. `--test-threads=1`).
        #[arg(last = true, value_name = "EXTRA")]
        extra: Vec<OsString>,
    },
    /// The kernel tests and the end-to-end tests of each mode on Debian's kernels 5.10,
    /// 6.1 and 6.12, each in a VM (virtme-ng; kernels fetched with apt-get download through
    /// a private configuration and cached under target/vmtest); prints per kernel what
    /// passed and failed, and fails if any kernel fails.
    Vmtest {
        /// The kernel: 5.10, 6.1, 6.12 or all (repeatable).
        #[arg(long = "kernel", value_name = "SERIES", default_value = "all")]
        kernels: Vec<String>,
        /// Seconds one VM may run before it is stopped (and its kernel counted failed).
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Only the subset `cargo xtask test` runs (2 to 4 minutes per kernel emulated).
        #[arg(long)]
        ci: bool,
        /// Arguments for every test binary, after `--` (instead of the default filters).
        #[arg(last = true, value_name = "TEST-ARGS")]
        extra: Vec<OsString>,
    },
    /// Differential packet fuzzing: generated and mutated frames through both kernel
    /// programs (the kernel test-runs them, as root) against the reference model of the README's
    /// rules. With --parsers: the libFuzzer targets of the control plane's parsers instead
    /// (cargo-fuzz on nightly, installed when missing).
    Fuzz {
        /// Frames, each through the XDP and the TC program.
        #[arg(long, default_value_t = 1_000_000, conflicts_with = "parsers")]
        count: u64,
        /// The seed (default: a new one, printed); a failure report names it.
        #[arg(long, conflicts_with = "parsers")]
        seed: Option<u64>,
        /// Start at this scenario (to replay one from a failure report).
        #[arg(long, default_value_t = 0, conflicts_with = "parsers")]
        scenario: u64,
        /// Fuzz the parsers of outside input (port maps, config file, control requests).
        #[arg(long)]
        parsers: bool,
        /// Seconds each parser target runs.
        #[arg(long, default_value_t = 60, requires = "parsers")]
        seconds: u64,
        /// Only these parser targets, comma-separated: `portmap`, `config`, `control_request`.
        #[arg(long, value_delimiter = ',', requires = "parsers")]
        targets: Vec<String>,
    },
    /// Build in release mode, then benchmark as root: the direct path, the reference
    /// reflector, each reflector mode, the seed's Python tool and nftables NAT, on the same
    /// workloads, each on namespaces built afresh. Writes target/bench/results.json and
    /// results.md, prints the table.
    Bench {
        /// Seconds each measurement lasts (default 5; the whole run then takes about 5
        /// minutes).
        #[arg(long, value_name = "SECS")]
        duration: Option<String>,
        /// Only these contenders, comma-separated: direct, reference, python, splice, tc,
        /// xdp, xdp-skb, auto, nftables (the direct path is always measured).
        #[arg(long, value_name = "LIST")]
        contenders: Option<String>,
        /// Only these workloads, comma-separated: connect, bulk, bulk-reverse, rr, udp, kernel.
        #[arg(long, value_name = "LIST")]
        workloads: Option<String>,
        /// More arguments for `reflector-bench run`, after `--` (e.g. `--workers 32`).
        #[arg(last = true, value_name = "EXTRA")]
        extra: Vec<OsString>,
    },
}

impl Cli {
    /// Runs the chosen task.
    pub(crate) fn run(self) -> Result<()> {
        match self.task {
            Task::Setup => setup::run(),
            Task::Build { release } => build::run(release).map(drop),
            Task::Run { release, args } => run::run(release, &args),
            Task::Deb => deb::run().map(drop),
            Task::Image => image::run(),
            Task::Lint => lint::run(),
            Task::Test { extra } => test::run(&extra),
            Task::Vmtest {
                kernels,
                timeout,
                ci,
                extra,
            } => vmtest::run(&vmtest::Options {
                ci,
                kernels,
                timeout,
                extra,
                reflector: None,
            }),
            Task::Fuzz {
                parsers: true,
                seconds,
                targets,
                ..
            } => fuzz::parsers(&targets, seconds),
            Task::Fuzz {
                count,
                seed,
                scenario,
                ..
            } => fuzz::packets(&fuzz::Packets {
                count,
                seed,
                scenario,
            }),
            Task::Bench {
                duration,
                contenders,
                workloads,
                extra,
            } => bench::run(&bench::Options {
                duration,
                contenders,
                workloads,
                extra,
            }),
        }
    }
}
