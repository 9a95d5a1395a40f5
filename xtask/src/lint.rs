//! `cargo xtask lint`: formatting, clippy on the control plane and on the eBPF programs, and
//! no import cycles between modules.

use std::{env::consts::ARCH, process::Command};

use anyhow::{Result, bail};

use crate::{
    modules, process,
    toolchain::{self, NIGHTLY, Scope},
};

/// Runs every check, then fails if any did, naming them (so one run shows all problems).
pub(crate) fn run() -> Result<()> {
    toolchain::ensure(Scope::Lint)?;
    let mut fmt = process::cargo();
    fmt.args(["fmt", "--all", "--check"]);
    // The fuzz targets are a workspace of their own (nightly); formatting needs no build.
    let mut fuzz_fmt = process::cargo();
    fuzz_fmt.args(["fmt", "--check", "--manifest-path", "fuzz/Cargo.toml"]);
    let mut clippy = process::cargo();
    // The whole workspace: the eBPF crates' host builds (their pure modules and property
    // tests) too; their BPF builds get the check below.
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    let checks = [
        ("formatting", fmt),
        ("formatting of the fuzz targets", fuzz_fmt),
        ("clippy", clippy),
        ("clippy on the eBPF programs", ebpf_clippy()),
    ];

    let mut failed = Vec::new();
    for (name, mut cmd) in checks {
        if let Err(err) = process::run(&mut cmd) {
            process::say(&format!("{name}: {err}"));
            failed.push(name);
        }
    }
    if let Err(err) = module_cycles() {
        process::say(&format!("import cycles: {err:#}"));
        failed.push("import cycles");
    }
    if !failed.is_empty() {
        bail!("lint failed: {}", failed.join(", "));
    }
    process::say("lint clean");
    Ok(())
}

/// Fails when a crate's modules use each other round a loop ([`modules`]).
fn module_cycles() -> Result<()> {
    let mut found = Vec::new();
    for root in modules::CRATES {
        let cycles = modules::cycles(&process::workspace_root().join(root))?;
        found.extend(cycles.into_iter().map(|cycle| format!("{root}: {cycle}")));
    }
    if !found.is_empty() {
        bail!(
            "{}; move the item one side needs from the other so the uses go one way",
            found.join("; ")
        );
    }
    Ok(())
}

/// Clippy for the eBPF crates (the kernel program, the benchmark's reference programs) on
/// the BPF target, configured as aya-build compiles them.
fn ebpf_clippy() -> Command {
    let mut cmd = process::cargo();
    cmd.arg(format!("+{NIGHTLY}"))
        .args(["clippy", "--release"])
        .args([
            "--package",
            "reflector-ebpf",
            "--package",
            "reflector-bench-ebpf",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        // Its own directory, so it neither waits for nor blocks a build holding the
        // workspace target's lock, and nightly's artifacts stay apart from stable's.
        .arg("--target-dir")
        .arg(process::target_dir().join("bpf-lint"))
        .args(["--", "-D", "warnings"])
        // aya-build passes this cfg (through this variable) so aya-ebpf and the kernel code
        // pick the right architecture's definitions; check the same code.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{ARCH}\""),
        );
    cmd
}
