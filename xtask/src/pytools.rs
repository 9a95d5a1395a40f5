//! Python tools from PyPI that the tests run (the Kubernetes manifest validators), in a
//! virtual environment of the checkout's own (`target/tools/venv`), never the system's.

use std::path::PathBuf;

use anyhow::Result;

use crate::process;

/// The PyPI packages and the releases they are tested with.
const PACKAGES: &[(&str, &str)] = &[
    ("kubernetes-validate", "1.37.0"),
    ("checkov", "3.3.30"),
    ("yamllint", "1.38.0"),
];

/// The virtual environment.
fn venv() -> PathBuf {
    process::target_dir().join("tools").join("venv")
}

/// Its `bin` directory, which the tests get first on `PATH`.
pub(crate) fn bin_dir() -> PathBuf {
    venv().join("bin")
}

/// Creates the environment and installs the packages when a command of theirs is missing
/// (checkov takes about a minute, once).
pub(crate) fn ensure() -> Result<()> {
    let bin = bin_dir();
    if PACKAGES
        .iter()
        .all(|(package, _)| bin.join(package).is_file())
    {
        return Ok(());
    }
    process::say("installing the manifest validators from PyPI (about a minute)...");
    process::run(
        std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv()),
    )?;
    let mut pip = std::process::Command::new(bin.join("pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"]);
    for (package, version) in PACKAGES {
        pip.arg(format!("{package}=={version}"));
    }
    process::run(&mut pip)
}
