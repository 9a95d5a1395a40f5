//! `cargo xtask build`: build reflector with its kernel program built in.

use std::{
    collections::HashMap,
    io::BufReader,
    path::PathBuf,
    process::{Child, Stdio},
};

use anyhow::{Context as _, Result, bail};
use cargo_metadata::{Artifact, BuildScript, Message, PackageId};

use crate::{
    process,
    toolchain::{self, Scope},
};

/// The cfg reflector-user's build.rs sets when it embedded the kernel object.
const BUILT_CFG: &str = "reflector_ebpf";

/// Installs the build toolchain if missing, then builds; returns the `reflector` binary.
pub(crate) fn run(release: bool) -> Result<PathBuf> {
    run_with(release, &[])
}

/// [`run`], building the packages `also` in the same cargo call: one feature resolution,
/// so a package they share with reflector is compiled once, not once per call.
pub(crate) fn run_with(release: bool, also: &[&str]) -> Result<PathBuf> {
    toolchain::ensure(Scope::Build)?;
    let binary = build_reflector(release, also)?;
    process::say(&format!("built {}", binary.display()));
    Ok(binary)
}

/// `cargo build -p reflector` (its build.rs builds and embeds the kernel program), and
/// the packages `also`; returns reflector's binary, and fails if the kernel program did
/// not get built in.
pub(crate) fn build_reflector(release: bool, also: &[&str]) -> Result<PathBuf> {
    build_reflector_for(None, release, also)
}

/// The target triple of the static build (`cargo xtask image`): musl links everything in.
pub(crate) const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// A static release `reflector` (the [`STATIC_TARGET`], added to the stable toolchain
/// when missing) with its kernel program built in.
pub(crate) fn build_static() -> Result<PathBuf> {
    toolchain::ensure(Scope::Build)?;
    toolchain::ensure_target(STATIC_TARGET)?;
    build_reflector_for(Some(STATIC_TARGET), true, &[])
}

/// [`build_reflector`] for `target` (the host's when `None`).
fn build_reflector_for(target: Option<&str>, release: bool, also: &[&str]) -> Result<PathBuf> {
    let mut cmd = process::cargo();
    // JSON on stdout says where the binary is and what the build script decided; the
    // diagnostics still reach the terminal as usual.
    cmd.args([
        "build",
        "--package",
        "reflector",
        "--message-format=json-render-diagnostics",
    ]);
    for package in also {
        cmd.args(["--package", package]);
    }
    if release {
        cmd.arg("--release");
    }
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    let shown = process::describe(&cmd);
    process::say(&format!("running `{shown}`"));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let outcome = read_messages(&mut child);
    let status = child
        .wait()
        .with_context(|| format!("`{shown}` did not finish"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    let Outcome { binary, embedded } = outcome?;
    if !embedded {
        bail!(
            "reflector was built WITHOUT its kernel program: its build script skipped it (see \
             its warning above: REFLECTOR_SKIP_EBPF=1 set, or the eBPF toolchain not found)"
        );
    }
    Ok(binary)
}

/// What the build produced.
struct Outcome {
    /// The `reflector` executable.
    binary: PathBuf,
    /// Whether the kernel object is inside it.
    embedded: bool,
}

/// Reads cargo's JSON messages from `child`'s stdout until it closes.
fn read_messages(child: &mut Child) -> Result<Outcome> {
    let stdout = child.stdout.take().context("cargo's stdout is not piped")?;
    let mut cfgs_by_package: HashMap<PackageId, Vec<String>> = HashMap::new();
    let mut binary = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("cannot read cargo's JSON output")? {
            Message::BuildScriptExecuted(BuildScript {
                package_id, cfgs, ..
            }) => {
                cfgs_by_package.insert(package_id, cfgs);
            }
            Message::CompilerArtifact(Artifact {
                package_id,
                target,
                executable: Some(executable),
                ..
            }) if target.is_bin() && target.name == "reflector" => {
                binary = Some((package_id, executable.into_std_path_buf()));
            }
            _ => {}
        }
    }
    let (package_id, binary) = binary.context("cargo built no `reflector` binary")?;
    let embedded = cfgs_by_package
        .get(&package_id)
        .is_some_and(|cfgs| cfgs.iter().any(|cfg| cfg == BUILT_CFG));
    Ok(Outcome { binary, embedded })
}
