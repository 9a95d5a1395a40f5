//! `cargo xtask deb`: the Debian package, `target/debian/reflector_<version>_amd64.deb`,
//! built with cargo-deb from `[package.metadata.deb]` in reflector-user/Cargo.toml.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    build, process,
    toolchain::{self, Scope},
};

/// The crate that writes the man pages and completions (built beside reflector).
pub(crate) const ASSETS: &str = "reflector-assets";

/// The cargo-deb release this project's package metadata is written for (exactly: it
/// packages the dev build for the tests, which it warns may become an error).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Builds reflector (release, kernel program embedded), generates its man pages and shell
/// completions from the CLI definition, and packages everything; returns the `.deb`.
pub(crate) fn run() -> Result<PathBuf> {
    toolchain::ensure(Scope::Build)?;
    ensure_cargo_deb()?;
    let binary = build::build_reflector(true, &[ASSETS])?;
    let package = package(&binary, None)?;
    process::say(&format!("built {}", package.display()));
    println!("{}", package.display());
    Ok(package)
}

/// The package `cargo xtask test` installs: from the dev build the tests run (no release
/// build in CI), written to `target/debian/test/`. Returns the `.deb`.
pub(crate) fn for_tests(binary: &Path) -> Result<PathBuf> {
    ensure_cargo_deb()?;
    package(binary, Some("test"))
}

/// The package of `binary` (built with [`ASSETS`] beside it, release or dev, which its
/// directory says), in `target/debian/` or the subdirectory `under`.
fn package(binary: &Path, under: Option<&str>) -> Result<PathBuf> {
    let profile_dir = binary
        .parent()
        .context("the binary is in target/<profile>")?;
    // Beside the binary: the package metadata names them under target/release/, which
    // cargo-deb reads as the directory of the profile it packages.
    let assets = profile_dir.join("assets");
    if assets.exists() {
        fs::remove_dir_all(&assets)
            .with_context(|| format!("cannot remove the old {}", assets.display()))?;
    }
    process::run(Command::new(profile_dir.join(ASSETS)).arg(&assets))?;
    gzip_man_pages(&assets.join("man"))?;
    let mut cmd = process::cargo();
    cmd.args(["deb", "--package", "reflector", "--no-build", "--quiet"]);
    if profile_dir.file_name().is_some_and(|name| name == "debug") {
        cmd.args(["--profile", "dev"]);
    }
    if let Some(under) = under {
        let dir = process::target_dir().join("debian").join(under);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        cmd.arg("--output").arg(dir);
    }
    let shown = process::describe(&cmd);
    process::say(&format!("running `{shown}`"));
    let output = cmd
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // cargo-deb prints the package's path.
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .rev()
        .map(|line| PathBuf::from(line.trim()))
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .with_context(|| format!("`{shown}` named no package:\n{stdout}"))
}

/// Man pages go in compressed, reproducibly (`gzip -9n`: no name, no time stamp).
fn gzip_man_pages(dir: &Path) -> Result<()> {
    let pages = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "1"));
    let mut cmd = Command::new("gzip");
    cmd.args(["-9n", "--force"]).args(pages);
    process::run(&mut cmd)
}

/// Installs cargo-deb when `cargo deb` is not there.
fn ensure_cargo_deb() -> Result<()> {
    let installed = process::probe(process::cargo().args(["deb", "--version"]));
    if installed.is_some_and(|version| version.contains(CARGO_DEB_VERSION)) {
        return Ok(());
    }
    process::say("installing cargo-deb (about 2 minutes)...");
    process::run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--force",
        "--version",
        CARGO_DEB_VERSION,
    ]))
}
