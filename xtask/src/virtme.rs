//! virtme-ng, which boots the kernels of `cargo xtask vmtest`: installed from PyPI into a
//! virtual environment of its own under `target/vmtest`, by `setup` and by `vmtest`.

use std::{path::PathBuf, process::Command};

use anyhow::Result;

use crate::process;

/// virtme-ng, from PyPI, at the release this was tested with.
const VIRTME_NG: &str = "virtme-ng==1.42";

/// The virtual environment virtme-ng is installed in.
fn venv() -> PathBuf {
    process::target_dir().join("vmtest").join("venv")
}

/// Where `vng` is.
pub(crate) fn bin_dir() -> PathBuf {
    venv().join("bin")
}

/// Installs virtme-ng when its `vng` is missing.
pub(crate) fn ensure() -> Result<()> {
    if bin_dir().join("vng").is_file() {
        return Ok(());
    }
    process::say("installing virtme-ng from PyPI...");
    process::run(Command::new("python3").args(["-m", "venv"]).arg(venv()))?;
    process::run(Command::new(bin_dir().join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        VIRTME_NG,
    ]))
}
