//! `cargo xtask fuzz`: differential packet fuzzing of the kernel programs against the
//! reference model (`tests/tests/fuzz.rs`, release build, as root), or with `--parsers`
//! the libFuzzer targets of the control plane's parsers (`fuzz/`, cargo-fuzz on nightly),
//! each for a bounded time.

use std::{fs, path::Path};

use anyhow::{Context as _, Result, bail};

use crate::{
    process,
    toolchain::{self, Scope},
};

/// The libFuzzer targets in `fuzz/fuzz_targets`: every parser of outside input.
pub(crate) const PARSER_TARGETS: &[&str] = &["portmap", "config", "control_request"];

/// The cargo-fuzz release line installed when it is missing.
const CARGO_FUZZ_VERSION: &str = "^0.13";

/// A differential run: how many frames, from which seed and scenario.
pub(crate) struct Packets {
    /// Frames, each through the XDP and the TC program.
    pub count: u64,
    /// The run's seed; a new one (printed) when `None`.
    pub seed: Option<u64>,
    /// The first scenario (to replay one from a failure report).
    pub scenario: u64,
}

/// Builds the test binary in release mode and runs `packets.count` frames through both
/// kernel programs and the model.
pub(crate) fn packets(packets: &Packets) -> Result<()> {
    toolchain::ensure(Scope::Build)?;
    let mut cmd = process::cargo();
    cmd.args([
        "test",
        "--release",
        "--package",
        "reflector-tests",
        "--test",
        "fuzz",
        "--",
        "--exact",
        "kernel_programs_agree_with_the_model",
        "--nocapture",
    ])
    .env("REFLECTOR_FUZZ_COUNT", packets.count.to_string())
    .env("REFLECTOR_FUZZ_SCENARIO", packets.scenario.to_string());
    if let Some(seed) = packets.seed {
        cmd.env("REFLECTOR_FUZZ_SEED", seed.to_string());
    }
    process::tests_as_root(&mut cmd);
    process::run(&mut cmd)
}

/// Runs each parser target in `targets` (all when empty) for `seconds`, with cargo-fuzz
/// (installed when missing) on nightly. A crash stops the run and names its input.
pub(crate) fn parsers(targets: &[String], seconds: u64) -> Result<()> {
    let targets: Vec<&str> = if targets.is_empty() {
        PARSER_TARGETS.to_vec()
    } else {
        for target in targets {
            if !PARSER_TARGETS.contains(&target.as_str()) {
                bail!(
                    "no parser fuzz target '{target}': the targets are {}",
                    PARSER_TARGETS.join(", ")
                );
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    toolchain::ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let root = process::workspace_root();
    let work = process::target_dir().join("fuzz");
    for target in targets {
        // The corpus grows under target/, from the seeds kept in fuzz/seeds/.
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        for dir in [&corpus, &artifacts] {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let seeds = root.join("fuzz").join("seeds").join(target);
        let mut cmd = process::cargo();
        cmd.args([&format!("+{}", toolchain::NIGHTLY), "fuzz", "run"])
            .arg("--fuzz-dir")
            .arg(root.join("fuzz"))
            .arg("--target-dir")
            .arg(work.join("build"))
            .arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            // The parsers are small: a slow or huge input is a finding too.
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            // The targets need the library only: no kernel program (whose build would get
            // the sanitizer flags) is built into it.
            .env("REFLECTOR_SKIP_EBPF", "1");
        if let Err(error) = process::run(&mut cmd) {
            bail!(
                "{error}\nthe fuzz target {target} found an input that fails it; it is in {} \
                 (replay: cargo +{} fuzz run --fuzz-dir fuzz {target} {}/<file>); fix it with a \
                 regression test",
                artifacts.display(),
                toolchain::NIGHTLY,
                artifacts.display()
            );
        }
        process::say(&format!(
            "fuzz target {target}: nothing found in {seconds} s (corpus in {})",
            corpus.display()
        ));
    }
    Ok(())
}

/// Installs cargo-fuzz from crates.io when `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    let mut probe = process::cargo();
    probe.args([&format!("+{}", toolchain::NIGHTLY), "fuzz", "--version"]);
    if process::probe(&mut probe).is_some() {
        return Ok(());
    }
    process::say("installing cargo-fuzz from crates.io (a few minutes, once)...");
    let mut install = process::cargo();
    install.args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]);
    process::run(&mut install)?;
    if !Path::new(&which::which("cargo-fuzz").unwrap_or_default()).is_file() {
        bail!("cargo install cargo-fuzz succeeded, but cargo-fuzz is not on PATH");
    }
    Ok(())
}
