//! `cargo xtask test`: set up, lint, build, then run every test as root.

use std::ffi::OsString;

use anyhow::Result;

use crate::{build, deb, image, lint, process, pytools, setup};

/// Everything CI runs. `extra` goes to the test harness (e.g. `--test-threads=1`).
pub(crate) fn run(extra: &[OsString]) -> Result<()> {
    setup::run()?;
    lint::run()?;
    let binary = build::build_reflector(false, &[deb::ASSETS])?;
    // tests/tests/deb.rs installs this package.
    let package = deb::for_tests(&binary)?;
    // The deployment tests run the image; it is built from this checkout every time.
    image::run()?;

    let path = std::env::join_paths(std::iter::once(pytools::bin_dir()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let mut cmd = process::cargo();
    // Every test binary runs even when one fails, so one failure hides no other. The eBPF
    // crates build for the host as their pure modules: reflector-ebpf's property tests run.
    cmd.args(["test", "--no-fail-fast", "--workspace"])
        // The end-to-end tests start this daemon, the deployment tests this image and
        // this package.
        .env("REFLECTOR_BIN", &binary)
        .env("REFLECTOR_IMAGE", image::TAG)
        .env("REFLECTOR_DEB", &package)
        // The manifest validators (PyPI) come first.
        .env("PATH", path);
    if !extra.is_empty() {
        cmd.arg("--").args(extra);
    }
    // Tests create namespaces and load programs.
    process::tests_as_root(&mut cmd);
    process::run(&mut cmd)?;
    process::say("all tests passed");
    Ok(())
}
