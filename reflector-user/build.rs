//! Builds the kernel program (`reflector-ebpf`) and leaves it at `$OUT_DIR/reflector`, where
//! `src/ebpf_object.rs` embeds it.
//!
//! The kernel program needs an eBPF toolchain: a nightly Rust with `rust-src` (for
//! `-Z build-std=core`) and `bpf-linker`. Without it, or with `REFLECTOR_SKIP_EBPF=1`, the
//! control plane still builds (so `cargo build`, `cargo clippy` and the editor keep working)
//! and the binary says at run time that its kernel program is missing. With the toolchain, a
//! failing kernel build fails this build: a binary silently missing its data plane is worse
//! than a red build.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};
use aya_build::{Package, Toolchain};

/// Set to `1` to build the control plane alone, even when the eBPF toolchain is present.
const SKIP_ENV: &str = "REFLECTOR_SKIP_EBPF";
/// The cfg that tells `src/ebpf_object.rs` the kernel object is in `$OUT_DIR`.
const BUILT_CFG: &str = "reflector_ebpf";
/// The toolchain probed for; `Toolchain::Nightly` below makes aya-build use the same.
const NIGHTLY: &str = "nightly";
/// The package holding the kernel program, next to this one in the workspace.
const EBPF_PACKAGE: &str = "reflector-ebpf";

fn main() -> Result<()> {
    println!("cargo::rustc-check-cfg=cfg({BUILT_CFG})");
    println!("cargo:rerun-if-env-changed={SKIP_ENV}");

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let workspace = manifest_dir
        .parent()
        .context("reflector-user has no parent directory")?;
    // aya-build watches the kernel crate itself; these are what else goes into its build:
    // the shared types, the workspace manifest (its release profile keeps BTF) and the lock.
    for input in ["reflector-common", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    if env::var_os(SKIP_ENV).is_some_and(|value| value == "1") {
        warn(&format!(
            "{SKIP_ENV}=1, so the kernel (eBPF) program is NOT built in; this binary cannot run the data plane. Unset it and rebuild, or run `cargo xtask build`."
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
            "the kernel (eBPF) program is NOT built in: missing {}. This binary cannot run the data plane: `cargo xtask build` installs the eBPF toolchain and rebuilds (or see `cargo xtask setup`).",
            probe.missing.join(", ")
        ));
        return Ok(());
    }
    if let Some(dir) = probe.linker_dir_for_path {
        add_to_path(&dir)?;
    }

    let ebpf_dir = workspace.join(EBPF_PACKAGE);
    let root_dir = ebpf_dir
        .to_str()
        .context("the workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
    .context(
        "building the kernel program (reflector-ebpf) failed; its compiler output is above, as \
         `warning:` lines. The eBPF toolchain is installed, so this is a real error in the kernel \
         build: fix it (or set REFLECTOR_SKIP_EBPF=1 to build the control plane alone)",
    )?;
    println!("cargo:rustc-cfg={BUILT_CFG}");
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
