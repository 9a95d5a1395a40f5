//! Making sure the tools a task needs are installed, installing only what is missing.
//!
//! Every check is cheap (one `dpkg-query`, a few `rustup` listings, a `PATH` lookup), so
//! tasks call [`ensure`] every time and pay nothing once the machine is set up.

use std::{env, path::PathBuf, process::Command};

use anyhow::Result;

use crate::{apt, process, pytools, virtme};

/// The toolchain that builds the kernel program; reflector-user's build.rs uses the same.
pub(crate) const NIGHTLY: &str = "nightly";
/// The bpf-linker release line this project is built and tested with.
const BPF_LINKER_VERSION: &str = "^0.13";
/// Where Debian's LLVM 22 lives; bpf-linker's build needs to be told.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// What a task needs installed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Building the kernel program: LLVM packages, nightly with rust-src, bpf-linker.
    Build,
    /// Linting: rustfmt and clippy on the default toolchain; nightly with rust-src and clippy.
    Lint,
    /// Everything: build, lint, the tools the integration tests drive, and what the VM
    /// matrix boots its kernels with.
    All,
}

/// Installs whatever `scope` needs that is missing, saying what it installs.
pub(crate) fn ensure(scope: Scope) -> Result<()> {
    let mut packages = Vec::new();
    if scope != Scope::Lint {
        packages.extend_from_slice(apt::BUILD);
    }
    if scope == Scope::All {
        packages.extend_from_slice(apt::TEST_TOOLS);
        packages.extend_from_slice(apt::CONTAINERS);
        packages.extend_from_slice(apt::VM);
    }
    // All packages in one go, so `apt-get update` runs at most once.
    apt::install(&apt::missing(&packages)?)?;

    let mut nightly_components = vec!["rust-src"];
    if scope != Scope::Build {
        nightly_components.push("clippy");
        ensure_components(None, &["rustfmt", "clippy"])?;
    }
    ensure_nightly()?;
    ensure_components(Some(NIGHTLY), &nightly_components)?;

    if scope != Scope::Lint {
        ensure_bpf_linker()?;
    }
    if scope == Scope::All {
        pytools::ensure()?;
        virtme::ensure()?;
    }
    Ok(())
}

/// Installs the nightly toolchain (minimal profile) when it is missing.
pub(crate) fn ensure_nightly() -> Result<()> {
    if process::probe(rustup().args(["run", NIGHTLY, "rustc", "--version"])).is_some() {
        return Ok(());
    }
    process::say(&format!(
        "installing the {NIGHTLY} Rust toolchain (about a minute)..."
    ));
    process::run(rustup().args(["toolchain", "install", NIGHTLY, "--profile", "minimal"]))
}

/// Adds the `wanted` rustup components missing from `toolchain` (the one running `cargo
/// xtask` if `None`).
fn ensure_components(toolchain: Option<&str>, wanted: &[&str]) -> Result<()> {
    let mut list = rustup();
    list.args(["component", "list", "--installed"]);
    if let Some(toolchain) = toolchain {
        list.args(["--toolchain", toolchain]);
    }
    let installed = process::probe(&mut list).unwrap_or_default();
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|component| !has_component(&installed, component))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let name = toolchain.unwrap_or("active");
    process::say(&format!(
        "adding {} to the {name} toolchain...",
        missing.join(" and ")
    ));
    let mut add = rustup();
    add.args(["component", "add"]).args(&missing);
    if let Some(toolchain) = toolchain {
        add.args(["--toolchain", toolchain]);
    }
    process::run(&mut add)
}

/// Adds the standard library for `target` to the toolchain running `cargo xtask` when it
/// is missing (a few seconds, once).
pub(crate) fn ensure_target(target: &str) -> Result<()> {
    let installed =
        process::probe(rustup().args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|line| line.trim() == target) {
        return Ok(());
    }
    process::say(&format!(
        "adding the {target} target to the active toolchain..."
    ));
    process::run(rustup().args(["target", "add", target]))
}

/// Whether `rustup component list --installed` output lists `component`, which appears
/// bare (`rust-src`) or with the host triple (`clippy-x86_64-unknown-linux-gnu`).
fn has_component(installed: &str, component: &str) -> bool {
    installed.lines().any(|line| {
        line.strip_prefix(component)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

/// Installs bpf-linker, built against Debian's LLVM 22, when it cannot be found.
fn ensure_bpf_linker() -> Result<()> {
    if bpf_linker().is_some() {
        return Ok(());
    }
    process::say("installing bpf-linker (about 2 minutes)...");
    process::run(
        Command::new("cargo")
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22"])
            // bpf-linker's own build script reads LLVM_PREFIX ("unable to find library
            // -lLLVM" without it); llvm-sys reads the other.
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX),
    )
}

/// Where bpf-linker is: on `PATH`, or in cargo's bin directory (where `cargo install` puts
/// it, and where reflector-user's build.rs also looks).
fn bpf_linker() -> Option<PathBuf> {
    which::which("bpf-linker").ok().or_else(|| {
        let cargo_home = env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| env::home_dir().map(|home| home.join(".cargo")))?;
        Some(cargo_home.join("bin").join("bpf-linker")).filter(|path| path.is_file())
    })
}

/// `rustup`, never installing a toolchain as a side effect of a query.
fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.current_dir(process::workspace_root())
        .env("RUSTUP_AUTO_INSTALL", "0");
    cmd
}

#[cfg(test)]
mod tests {
    use super::has_component;

    const INSTALLED: &str = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                             rust-src\nrust-std-x86_64-unknown-linux-gnu\n";

    #[test]
    fn finds_components_with_and_without_the_host_triple() {
        assert!(has_component(INSTALLED, "rust-src"));
        assert!(has_component(INSTALLED, "clippy"));
        assert!(!has_component(INSTALLED, "rustfmt"));
        assert!(!has_component(INSTALLED, "rust-analyzer"));
    }
}
