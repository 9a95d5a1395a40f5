//! `cargo xtask test`: set up, lint, build, then run every test as root.

use std::ffi::OsString;

use anyhow::Result;

use crate::{build, lint, process, setup};

/// Everything CI runs. `extra` goes to the test harness (e.g. `--test-threads=1`).
pub fn run(extra: &[OsString]) -> Result<()> {
    setup::run()?;
    lint::run()?;
    let binary = build::build_reflector(false, &[])?;

    let mut cmd = process::cargo();
    cmd.args(["test", "--workspace", "--exclude", "reflector-ebpf"])
        // The end-to-end tests start this daemon.
        .env("REFLECTOR_BIN", &binary);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    // Tests create namespaces and load programs.
    process::tests_as_root(&mut cmd);
    process::run(&mut cmd)?;
    process::say("all tests passed");
    Ok(())
}
