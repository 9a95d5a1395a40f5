//! `reflector-bench run`: plans the measurements (every contender on every workload, the
//! direct path under each NIC setting as the reference), takes each on a fresh bed, and
//! writes the report.

use std::any::Any;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use reflector_tests::command::output_within;

use crate::bed::{Bed, Programs};
use crate::contender::{Contender, Nic};
use crate::measurement::Params;
use crate::report::{Entry, Host, KernelOutcome, Results, Status};
use crate::workload::Workload;
use crate::{interrupt, kernel, seed, targets};

/// Pause after a bed is removed: the kernel tears a namespace down (and its `TIME_WAIT`
/// sockets) in the background, which should not overlap the next measurement.
const SETTLE: Duration = Duration::from_secs(1);

/// What `run` measures, and where it writes.
#[derive(Args, Debug)]
pub(crate) struct RunArgs {
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

/// Runs the benchmark as `args` says, writes `results.json` and `results.md` into
/// `args.out` and prints the markdown. Fails (after writing them) if any measurement did.
pub(crate) fn run(args: &RunArgs) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the benchmark needs root (network namespaces, BPF): run `cargo xtask bench`");
    }
    interrupt::watch()?;
    let host = Host::this();
    let begin = Instant::now();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let setup = Setup::new(args)?;
    let kernel = measure_kernel(args);
    let entries = measure_all(&setup, args);
    let results = Results {
        command: args
            .command
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        reflector: setup.programs.reflector.display().to_string(),
        started_unix,
        total_seconds: begin.elapsed().as_secs_f64(),
        duration_seconds: args.duration,
        warmup_seconds: args.warmup,
        workers: args.workers,
        rounds: args.rounds,
        rr_cpus: setup.params.rr_cpus.clone(),
        host,
        kernel,
        entries,
    };
    let markdown = results.markdown(&targets::markdown(&results));
    let (json_path, md_path) = (setup.out.join("results.json"), setup.out.join("results.md"));
    write(&json_path, &serde_json::to_string_pretty(&results)?)?;
    write(&md_path, &markdown)?;
    println!("{markdown}");
    eprintln!(
        "reflector-bench: wrote {} and {}",
        md_path.display(),
        json_path.display()
    );
    let failed = results
        .entries
        .iter()
        .filter(|entry| entry.status == Status::Failed)
        .count()
        + usize::from(matches!(results.kernel, Some(KernelOutcome::Failed(_))));
    if interrupt::stopping() {
        bail!("interrupted: the results hold the measurements taken before");
    }
    if failed > 0 {
        bail!("{failed} measurement(s) failed: see the table and the log above");
    }
    Ok(())
}

/// What every measurement shares: paths, programs, parameters.
struct Setup {
    /// The output directory.
    out: PathBuf,
    /// The programs beds start.
    programs: Programs,
    /// How measurements run.
    params: Params,
    /// The `--mode` values the reflector binary knows.
    modes: Vec<String>,
    /// Why the seed's Python tool is not available, if it is not.
    python_missing: Option<String>,
}

impl Setup {
    fn new(args: &RunArgs) -> Result<Self> {
        fs::create_dir_all(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let out = args
            .out
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", args.out.display()))?;
        let reflector = args
            .reflector
            .canonicalize()
            .with_context(|| format!("no reflector binary at {}", args.reflector.display()))?;
        if !reflector.to_string_lossy().contains("/release/") {
            eprintln!(
                "reflector-bench: warning: {} does not look like a release build",
                reflector.display()
            );
        }
        let modes = reflector_modes(&reflector)?;
        let (python_tool, python_missing) =
            if chosen(&args.contenders, &Contender::ALL).contains(&Contender::Python) {
                match seed::fetch(&out) {
                    Ok(tool) => (Some(tool), None),
                    Err(e) => (None, Some(e.to_string())),
                }
            } else {
                (None, None)
            };
        Ok(Self {
            out,
            params: Params {
                bench: std::env::current_exe().context("cannot find this binary")?,
                duration: args.duration,
                warmup: args.warmup,
                workers: args.workers,
                rr_cpus: Some(args.rr_cpus.clone()).filter(|cpus| cpus != "all"),
            },
            programs: Programs {
                reflector,
                python_tool,
            },
            modes,
            python_missing,
        })
    }

    /// Why `contender` cannot be measured, if it cannot.
    fn unavailable(&self, contender: Contender) -> Option<String> {
        match contender.reflector_mode() {
            Some(mode) if !self.modes.iter().any(|m| m == mode) => Some(format!(
                "{} has no --mode {mode} (its modes: {})",
                self.programs.reflector.display(),
                self.modes.join(", ")
            )),
            _ if contender == Contender::Python => self.python_missing.clone(),
            _ => None,
        }
    }
}

/// The kernel workload, when chosen: every round of it at once, before the network
/// workloads (it takes seconds and needs no bed).
fn measure_kernel(args: &RunArgs) -> Option<KernelOutcome> {
    if !chosen(&args.workloads, &Workload::ALL).contains(&Workload::Kernel) {
        return None;
    }
    eprintln!(
        "reflector-bench: kernel: ns/packet through BPF_PROG_TEST_RUN, {} round(s)",
        args.rounds
    );
    let outcome = match panic::catch_unwind(|| kernel::measure(args.rounds)) {
        Ok(Ok(report)) => KernelOutcome::Measured(report),
        Ok(Err(e)) => KernelOutcome::Failed(format!("{e:#}")),
        Err(payload) => KernelOutcome::Failed(panic_message(&*payload)),
    };
    eprintln!("reflector-bench:     {}", outcome.summary());
    Some(outcome)
}

/// Every chosen workload on every planned contender, in order, with progress on stderr.
fn measure_all(setup: &Setup, args: &RunArgs) -> Vec<Entry> {
    let workloads: Vec<Workload> = chosen(&args.workloads, &Workload::ALL)
        .into_iter()
        .filter(|workload| workload.per_contender())
        .collect();
    if workloads.is_empty() {
        return Vec::new();
    }
    let plan = plan(&chosen(&args.contenders, &Contender::ALL));
    let total = plan.len() * workloads.len() * args.rounds as usize;
    let mut entries = Vec::new();
    for round in 1..=args.rounds {
        for &(contender, nic) in &plan {
            let unavailable = setup.unavailable(contender);
            for &workload in &workloads {
                if interrupt::stopping() {
                    return entries;
                }
                eprintln!(
                    "reflector-bench: [{}/{total}] {contender} ({}) / {workload}",
                    entries.len() + 1,
                    nic.name()
                );
                let unavailable = unavailable
                    .clone()
                    .or_else(|| workload.refused_by(contender).map(str::to_owned));
                let entry = match unavailable {
                    Some(reason) => Entry::skipped(contender, nic, workload, reason),
                    None => measure(contender, nic, workload, &setup.programs, &setup.params),
                };
                eprintln!("reflector-bench:     {}", entry.summary());
                entries.push(Entry { round, ..entry });
            }
        }
    }
    entries
}

/// What the user chose, in canonical order, or everything; the direct path always.
fn chosen<T: Copy + Ord>(wanted: &[T], all: &[T]) -> Vec<T> {
    let mut chosen: Vec<T> = if wanted.is_empty() {
        all.to_vec()
    } else {
        wanted.to_vec()
    };
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

/// The measurement order: for each NIC setting some chosen contender needs, the direct
/// path under it first, then those contenders.
fn plan(contenders: &[Contender]) -> Vec<(Contender, Nic)> {
    let mut plan = Vec::new();
    for nic in [Nic::Veth, Nic::PhysicalLike] {
        let group: Vec<Contender> = contenders
            .iter()
            .copied()
            .filter(|&c| c != Contender::Direct && c.nic() == nic)
            .collect();
        let direct_only = nic == Nic::Veth && contenders == [Contender::Direct];
        if group.is_empty() && !direct_only {
            continue;
        }
        plan.push((Contender::Direct, nic));
        plan.extend(group.into_iter().map(|c| (c, nic)));
    }
    plan
}

/// One measurement on a fresh bed; a failure (an error, or a panic of the harness) is an
/// entry too, so the rest still runs.
fn measure(
    contender: Contender,
    nic: Nic,
    workload: Workload,
    programs: &Programs,
    params: &Params,
) -> Entry {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| -> Result<_> {
        let mut bed = Bed::start(contender, nic, programs, workload.cpus(params))?;
        let mut measurement = workload.measure(&bed, params)?;
        // The figures stand (the load generator counted what got through), but say so.
        if let Some(note) = bed.exit_note() {
            measurement.notes.push(note);
        }
        let summary = bed.stop_reflector();
        Ok((measurement, bed.mode_line().map(str::to_owned), summary))
    }));
    thread::sleep(SETTLE);
    match outcome {
        Ok(Ok((measurement, mode_line, summary))) => Entry {
            daemon_summary: summary,
            ..Entry::ok(contender, nic, workload, measurement, mode_line)
        },
        Ok(Err(e)) => Entry::failed(contender, nic, workload, format!("{e:#}")),
        Err(payload) => Entry::failed(contender, nic, workload, panic_message(&*payload)),
    }
}

/// The text of a panic.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

/// The `--mode` values `reflector --help` lists.
fn reflector_modes(reflector: &Path) -> Result<Vec<String>> {
    let output = output_within(
        Command::new(reflector).arg("--help"),
        Duration::from_secs(10),
    );
    if !output.status.success() {
        bail!(
            "`{} --help` failed ({})",
            reflector.display(),
            output.status
        );
    }
    let help = String::from_utf8_lossy(&output.stdout);
    Ok(["auto", "xdp", "xdp-skb", "tc", "splice"]
        .into_iter()
        .filter(|mode| help_lists(&help, mode))
        .map(str::to_owned)
        .collect())
}

/// Whether clap's help lists `value` as a possible value (`- splice:` in the long form,
/// `splice` between commas or brackets in the short one).
fn help_lists(help: &str, value: &str) -> bool {
    help.lines().any(|line| {
        let line = line.trim();
        line.strip_prefix("- ")
            .is_some_and(|rest| rest.split(':').next() == Some(value))
            || line.contains("possible values:")
                && line
                    .split(|c: char| c == ',' || c == ']' || c == ':' || c.is_whitespace())
                    .any(|word| word == value)
    })
}

/// Writes `text` to `path`.
fn write(path: &PathBuf, text: &str) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_path_leads_each_nic_group() {
        let plan = plan(&[Contender::Xdp, Contender::Splice, Contender::Python]);
        assert_eq!(
            plan,
            [
                (Contender::Direct, Nic::Veth),
                (Contender::Splice, Nic::Veth),
                (Contender::Python, Nic::Veth),
                (Contender::Direct, Nic::PhysicalLike),
                (Contender::Xdp, Nic::PhysicalLike),
            ]
        );
        assert_eq!(
            super::plan(&[Contender::Direct]),
            [(Contender::Direct, Nic::Veth)]
        );
    }

    /// The reference reflector runs where the XDP modes do, after the direct path and
    /// before them, so a table reads from the limit down.
    #[test]
    fn the_reference_reflector_runs_with_the_xdp_modes() {
        let chosen = chosen(
            &[Contender::Xdp, Contender::Tc, Contender::Reference],
            &Contender::ALL,
        );
        let plan = plan(&chosen);
        assert_eq!(
            plan,
            [
                (Contender::Direct, Nic::Veth),
                (Contender::Tc, Nic::Veth),
                (Contender::Direct, Nic::PhysicalLike),
                (Contender::Reference, Nic::PhysicalLike),
                (Contender::Xdp, Nic::PhysicalLike),
            ]
        );
    }

    #[test]
    fn finds_modes_in_both_help_forms() {
        let long = "  --mode <MODE>\n      Possible values:\n      - auto:    best\n      - xdp-skb: generic\n";
        assert!(help_lists(long, "xdp-skb"));
        assert!(!help_lists(long, "xdp"));
        let short = "  --mode <MODE>  [default: auto] [possible values: auto, xdp, tc]\n";
        assert!(help_lists(short, "tc"));
        assert!(!help_lists(short, "splice"));
    }
}
