//! Builds one of the workspace's eBPF packages from a build script, into `$OUT_DIR/<bin>`,
//! and sets a cfg when it did, so the crate can `include_bytes!` the object behind it.
//!
//! An eBPF package needs an eBPF toolchain: a nightly Rust with `rust-src` (for
//! `-Z build-std=core`) and `bpf-linker`. Without it, or with `REFLECTOR_SKIP_EBPF=1`, the
//! object is not built and the cfg not set (so `cargo build`, `cargo clippy` and the editor
//! keep working), and the build says what is missing. With the toolchain, a failing eBPF
//! build fails the build: a crate silently missing its object is worse than a red build.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};
use aya_build::{Package, Toolchain};

/// Set to `1` to build without the eBPF objects, even when the eBPF toolchain is present.
pub const SKIP_ENV: &str = "REFLECTOR_SKIP_EBPF";
/// The toolchain probed for; `Toolchain::Nightly` below makes aya-build use the same.
const NIGHTLY: &str = "nightly";

/// An eBPF package of this workspace, and what its absence costs the crate embedding it.
pub struct EbpfPackage<'a> {
    /// The package's name.
    pub name: &'a str,
    /// Its directory, at the workspace's root.
    pub dir: &'a str,
    /// The cfg set when its object is in `$OUT_DIR`.
    pub built_cfg: &'a str,
    /// What cannot work without the object, for the warning (`this binary cannot run the
    /// data plane`).
    pub without: &'a str,
}

/// Builds `package` into `$OUT_DIR` and sets its cfg, or warns and returns when the
/// toolchain is missing or `REFLECTOR_SKIP_EBPF=1`. To be called from a build script of a
/// crate at the workspace's root.
///
/// # Errors
/// The toolchain is present but the eBPF build failed (its compiler output is above it).
pub fn build(package: &EbpfPackage<'_>) -> Result<()> {
    let EbpfPackage {
        name,
        dir,
        built_cfg,
        without,
    } = package;
    println!("cargo::rustc-check-cfg=cfg({built_cfg})");
    println!("cargo:rerun-if-env-changed={SKIP_ENV}");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let workspace = manifest_dir
        .parent()
        .context("the crate building an eBPF package has no parent directory")?;
    // aya-build watches the eBPF crate itself; these are what else goes into its build:
    // the shared types, the workspace manifest (its release profile keeps BTF) and the lock.
    for input in ["reflector-common", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    if env::var_os(SKIP_ENV).is_some_and(|value| value == "1") {
        warn(&format!(
            "{SKIP_ENV}=1, so the eBPF object {name} is NOT built in; {without}. Unset it and rebuild, or run `cargo xtask build`."
        ));
        return Ok(());
    }

    let probe = probe_toolchain();
    // Re-run once the toolchain shows up or changes (`cargo xtask build` installs it, then
    // builds): without this, cargo would keep the object-less build from before.
    for path in &probe.watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    if !probe.missing.is_empty() {
        warn(&format!(
            "the eBPF object {name} is NOT built in: missing {}. {without}: `cargo xtask build` installs the eBPF toolchain and rebuilds (or see `cargo xtask setup`).",
            probe.missing.join(", ")
        ));
        return Ok(());
    }
    if let Some(dir) = probe.linker_dir_for_path {
        add_to_path(&dir)?;
    }

    let ebpf_dir = workspace.join(dir);
    let root_dir = ebpf_dir
        .to_str()
        .context("the workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name,
            root_dir,
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
    .with_context(|| {
        format!(
            "building the eBPF package {name} failed; its compiler output is above, as \
             `warning:` lines. The eBPF toolchain is installed, so this is a real error in the \
             eBPF build: fix it (or set {SKIP_ENV}=1 to build without eBPF objects)"
        )
    })?;
    println!("cargo:rustc-cfg={built_cfg}");
    Ok(())
}

/// What the eBPF toolchain check found.
#[derive(Default)]
struct Probe {
    /// Human-readable names of the missing pieces; empty when the toolchain is complete.
    missing: Vec<String>,
    /// Files or directories whose change means the answer may have changed.
    watch: Vec<PathBuf>,
    /// Where bpf-linker was found when `PATH` does not reach it (rustc looks it up on `PATH`).
    linker_dir_for_path: Option<PathBuf>,
}

/// Looks for `bpf-linker` and for a nightly toolchain with `rust-src`, without installing anything.
fn probe_toolchain() -> Probe {
    let mut probe = Probe::default();
    let cargo_bin = cargo_home().map(|home| home.join("bin"));
    probe_linker(&mut probe, cargo_bin.as_deref());
    probe_nightly(&mut probe, cargo_bin.as_deref());
    probe
}

/// Finds bpf-linker on `PATH`, or in `cargo_bin` where `cargo install` puts it.
fn probe_linker(probe: &mut Probe, cargo_bin: Option<&Path>) {
    if let Ok(linker) = which::which("bpf-linker") {
        probe.watch.push(linker);
        return;
    }
    let Some(cargo_bin) = cargo_bin else {
        probe.missing.push("bpf-linker (not on PATH)".to_owned());
        return;
    };
    let linker = cargo_bin.join("bpf-linker");
    if linker.is_file() {
        probe.linker_dir_for_path = Some(cargo_bin.to_owned());
        probe.watch.push(linker);
    } else {
        probe
            .missing
            .push("bpf-linker (not on PATH nor in ~/.cargo/bin)".to_owned());
        // `cargo install bpf-linker` will add it to this directory.
        probe.watch.push(cargo_bin.to_owned());
    }
}

/// Checks that rustup can run the nightly toolchain and that it has `rust-src`.
fn probe_nightly(probe: &mut Probe, cargo_bin: Option<&Path>) {
    let Some(sysroot) = nightly_sysroot(cargo_bin) else {
        probe
            .missing
            .push(format!("the {NIGHTLY} Rust toolchain (through rustup)"));
        // rustup records every installed channel here.
        probe
            .watch
            .extend(rustup_home().map(|home| home.join("update-hashes")));
        return;
    };
    let rustlib = sysroot.join("lib").join("rustlib");
    // rustup rewrites this list whenever a component is added or the toolchain updated.
    probe.watch.push(rustlib.join("components"));
    if !rustlib.join("src/rust/library/core/Cargo.toml").is_file() {
        probe
            .missing
            .push(format!("the {NIGHTLY} toolchain's rust-src component"));
    }
}

/// The nightly toolchain's sysroot, or `None` when rustup or the toolchain is missing.
fn nightly_sysroot(cargo_bin: Option<&Path>) -> Option<PathBuf> {
    let rustup = which::which("rustup").ok().or_else(|| {
        cargo_bin
            .map(|bin| bin.join("rustup"))
            .filter(|path| path.is_file())
    })?;
    let output = Command::new(rustup)
        .args(["run", NIGHTLY, "rustc", "--print", "sysroot"])
        // A probe must not download a toolchain behind the user's back.
        .env("RUSTUP_AUTO_INSTALL", "0")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let sysroot = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(sysroot.trim_end()))
}

/// `$CARGO_HOME`, or `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::home_dir().map(|home| home.join(".cargo")))
}

/// `$RUSTUP_HOME`, or `~/.rustup`.
fn rustup_home() -> Option<PathBuf> {
    env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::home_dir().map(|home| home.join(".rustup")))
}

/// Puts `dir` at the end of `PATH`, which aya-build's nested cargo (and its rustc) inherit.
fn add_to_path(dir: &Path) -> Result<()> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    dirs.push(dir.to_owned());
    let path: OsString = env::join_paths(dirs).context("cannot add ~/.cargo/bin to PATH")?;
    // SAFETY: a build script is single-threaded here; aya-build starts its threads later.
    unsafe { env::set_var("PATH", path) };
    Ok(())
}

/// Shows `message` in cargo's output as a warning for this package.
fn warn(message: &str) {
    println!("cargo:warning={message}");
}
