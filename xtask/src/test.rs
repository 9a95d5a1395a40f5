//! `cargo xtask test`: set up, lint, build, then run every test as root on this kernel, and
//! the VM matrix's CI subset on Debian's 5.10, 6.1 and 6.12.

use std::ffi::OsString;

use anyhow::{Result, bail};

use crate::{build, deb, image, lint, process, pytools, setup, vmtest};

/// Seconds one kernel's VM may take in CI before it counts as failed: the subset takes
/// 2 to 4 minutes per kernel under emulation, so this only stops a hung guest.
const VM_TIMEOUT: u64 = 600;

/// Everything CI runs. `extra` goes to the test harness (e.g. `--test-threads=1`, or a
/// filter); with `extra`, the VM matrix is left out (a filter is for the tests at hand,
/// the matrix takes minutes: `cargo xtask vmtest --ci` runs it alone).
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
    // Both run whatever the other gives, so one failure hides no other.
    let host = process::run(&mut cmd);
    let matrix = if extra.is_empty() {
        vmtest::run(&vmtest::Options {
            ci: true,
            kernels: Vec::new(),
            timeout: VM_TIMEOUT,
            extra: Vec::new(),
            reflector: Some(binary),
        })
    } else {
        process::say(
            "the VM matrix is left out when test arguments are given (run it with \
             `cargo xtask vmtest --ci`)",
        );
        Ok(())
    };
    match (host, matrix) {
        (Ok(()), Ok(())) => {
            process::say("all tests passed");
            Ok(())
        }
        (Err(host), Ok(())) => Err(host),
        (Ok(()), Err(matrix)) => Err(matrix),
        (Err(host), Err(matrix)) => bail!("{host:#}; and {matrix:#}"),
    }
}
