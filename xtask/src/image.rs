//! `cargo xtask image`: the container image (`deploy/container/Containerfile`), built
//! offline with podman from a static `reflector`.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result};

use crate::{apt, build, process};

/// The image's name: local, as nothing is pushed anywhere.
pub(crate) const TAG: &str = concat!("localhost/reflector:", env!("CARGO_PKG_VERSION"));

/// Where the build context is staged: the binary alone.
fn context_dir() -> PathBuf {
    process::target_dir().join("image").join("context")
}

/// `podman` with this repository's `containers.conf` (runtime, cgroups, ulimits for the
/// machines it is tested on), never the host's `/etc/containers` changed.
pub(crate) fn podman() -> Command {
    let mut cmd = process::as_root("podman", true);
    cmd.env(
        "CONTAINERS_CONF",
        process::workspace_root().join("deploy/container/containers.conf"),
    );
    cmd
}

/// Builds the static binary, then the image from it with no network, and prints its size.
pub(crate) fn run() -> Result<()> {
    let binary = build::build_static()?;
    apt::install(&apt::missing(apt::CONTAINERS)?)?;

    let context = context_dir();
    if context.exists() {
        fs::remove_dir_all(&context)
            .with_context(|| format!("cannot empty {}", context.display()))?;
    }
    fs::create_dir_all(&context).with_context(|| format!("cannot create {}", context.display()))?;
    fs::copy(&binary, context.join("reflector"))
        .with_context(|| format!("cannot copy {} into the build context", binary.display()))?;

    let root = process::workspace_root();
    let mut cmd = podman();
    cmd.args(["build", "--network", "none", "--pull=never", "--file"])
        .arg(root.join("deploy/container/Containerfile"))
        .args(["--tag", TAG])
        .arg(format!("--build-arg=VERSION={}", env!("CARGO_PKG_VERSION")));
    for (arg, value) in build_args() {
        cmd.arg(format!("--build-arg={arg}={value}"));
    }
    process::run(cmd.arg(&context))?;

    let size = process::probe(podman().args(["image", "inspect", "--format", "{{.Size}}", TAG]))
        .and_then(|size| size.trim().parse::<u64>().ok())
        .context("podman did not report the image's size")?;
    let binary_size = fs::metadata(&binary)?.len();
    #[expect(clippy::cast_precision_loss, reason = "a size shown in MB")]
    let megabytes = |bytes: u64| bytes as f64 / 1e6;
    process::say(&format!(
        "built image {TAG}: {:.1} MB (the static binary {} is {:.1} MB)",
        megabytes(size),
        binary.display(),
        megabytes(binary_size)
    ));
    Ok(())
}

/// The labels' values that come from git: the commit, its time (so the same commit gives
/// the same image), and the source's address when the checkout has a public one.
fn build_args() -> Vec<(&'static str, String)> {
    let git = |args: &[&str]| {
        process::probe(
            Command::new("git")
                .current_dir(process::workspace_root())
                .args(args),
        )
        .map(|out| out.trim().to_owned())
        .filter(|out| !out.is_empty())
    };
    let mut args = Vec::new();
    if let Some(revision) = git(&["rev-parse", "HEAD"]) {
        args.push(("REVISION", revision));
    }
    if let Some(created) = git(&["log", "-1", "--format=%cI"]) {
        args.push(("CREATED", created));
    }
    if let Some(source) =
        git(&["remote", "get-url", "origin"]).filter(|url| url.starts_with("https://"))
    {
        args.push(("SOURCE", source));
    }
    args
}
