//! `cargo xtask bench`: build reflector and the benchmark in release mode, then run the
//! benchmark as root; it writes `target/bench/results.{json,md}` and prints the table.

use std::ffi::OsString;

use anyhow::{Result, bail};

use crate::{apt, build, process};

/// What the benchmark drives: namespaces and links, iperf3, the seed's Python tool (and
/// curl to fetch it), nftables (and `sysctl` from procps), and `taskset` (util-linux).
const TOOLS: &[&str] = &[
    "iproute2",
    "ethtool",
    "iperf3",
    "nftables",
    "python3",
    "curl",
    "util-linux",
    "procps",
];

/// How the benchmark runs: what `cargo xtask bench` passes on to `reflector-bench run`.
pub(crate) struct Options {
    /// Seconds per measurement.
    pub duration: Option<String>,
    /// Contenders, comma-separated.
    pub contenders: Option<String>,
    /// Workloads, comma-separated.
    pub workloads: Option<String>,
    /// Anything else, after `--`.
    pub extra: Vec<OsString>,
}

/// Installs what is missing, builds both binaries (release), runs the benchmark as root.
pub(crate) fn run(options: &Options) -> Result<()> {
    apt::install(&apt::missing(TOOLS)?)?;
    // The release build of reflector, checked to carry its kernel program, and of the
    // benchmark in the same cargo call (which compiles reflector's library once for both).
    let reflector = build::run_with(true, &["reflector-bench"])?;
    let bench = process::target_dir()
        .join("release")
        .join("reflector-bench");
    if !bench.is_file() {
        bail!("cargo built no {}", bench.display());
    }

    let out = process::target_dir().join("bench");
    let args = bench_args(options);
    let mut cmd = process::as_root(&bench, true);
    cmd.arg("run")
        .arg("--reflector")
        .arg(&reflector)
        .arg("--out")
        .arg(&out)
        .arg("--command")
        .arg(command_line(&args, &options.extra))
        .args(&args)
        .args(&options.extra);
    process::run(&mut cmd)
}

/// The options for `reflector-bench run` that `cargo xtask bench` takes itself.
fn bench_args(options: &Options) -> Vec<OsString> {
    let mut args = Vec::new();
    for (flag, value) in [
        ("--duration", &options.duration),
        ("--contenders", &options.contenders),
        ("--workloads", &options.workloads),
    ] {
        if let Some(value) = value {
            args.extend([OsString::from(flag), OsString::from(value)]);
        }
    }
    args
}

/// `cargo xtask bench ARGS [-- EXTRA]`, for the record in the results.
fn command_line(args: &[OsString], extra: &[OsString]) -> String {
    let mut words = vec!["cargo xtask bench".to_owned()];
    words.extend(args.iter().map(|arg| arg.to_string_lossy().into_owned()));
    if !extra.is_empty() {
        words.push("--".to_owned());
        words.extend(extra.iter().map(|arg| arg.to_string_lossy().into_owned()));
    }
    words.join(" ")
}
