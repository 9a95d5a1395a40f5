//! Debian packages: which are missing (`dpkg-query`), and installing them (`apt-get`).

use std::{collections::HashSet, io::ErrorKind, process::Command};

use anyhow::{Result, bail};

use crate::process;

/// What `cargo install bpf-linker --features llvm-22` compiles and links against.
pub(crate) const BUILD: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];

/// What the integration tests drive: namespaces and links, traffic generators and servers,
/// packet capture, `bpftool` to inspect the loaded program, and what the deployment files
/// run with: a systemd container (debootstrap, systemd-nspawn), dpkg and lintian for the
/// package, Prometheus' `blackbox_exporter`.
pub(crate) const TEST_TOOLS: &[&str] = &[
    "iproute2",
    "ethtool",
    "nginx-light",
    "curl",
    "socat",
    "iperf3",
    "openssh-server",
    "openssh-client",
    "dnsutils",
    "unbound",
    "tcpdump",
    "bpftool",
    "nftables",
    "python3",
    // `python3 -m venv`: the manifest validators' and virtme-ng's environments.
    "python3-venv",
    "prometheus",
    "systemd",
    "systemd-container",
    "debootstrap",
    "lintian",
    "man-db",
    "prometheus-blackbox-exporter",
];

/// What `cargo xtask image` and the container tests run: podman with runc (crun refuses
/// the hybrid cgroup layout of the VMs this is tested on) and catatonit for its pods.
pub(crate) const CONTAINERS: &[&str] = &["podman", "runc", "catatonit", "uidmap"];

/// What `cargo xtask vmtest` boots its kernels with: QEMU, and what virtme-ng's guest init
/// needs from the host (busybox, udev: without it the guest's output is lost, kmod).
pub(crate) const VM: &[&str] = &["qemu-system-x86", "busybox-static", "udev", "kmod"];

/// The packages in `wanted` that are not installed, in the order given.
pub(crate) fn missing<'a>(wanted: &[&'a str]) -> Result<Vec<&'a str>> {
    // One call for all: dpkg-query prints a line per known package and complains (exit 1)
    // about unknown ones, which are then missing too.
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Package} ${db:Status-Status}\\n"])
        .args(wanted)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => bail!(
            "dpkg-query not found: `cargo xtask setup` knows Debian and Ubuntu only; install these yourself: {}",
            wanted.join(" ")
        ),
        Err(err) => bail!("cannot run dpkg-query: {err}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let installed: HashSet<&str> = stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| *status == "installed")
        .map(|(package, _)| package)
        .collect();
    Ok(wanted
        .iter()
        .copied()
        .filter(|package| !installed.contains(package))
        .collect())
}

/// Installs `packages` (`apt-get update` first, once), as root.
pub(crate) fn install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    process::say(&format!(
        "installing Debian packages: {}",
        packages.join(" ")
    ));
    process::run(apt_get().arg("update"))?;
    process::run(
        apt_get()
            .args(["install", "--yes", "--no-install-recommends"])
            .args(packages),
    )
}

/// `apt-get`, as root, never stopping to ask a question.
fn apt_get() -> Command {
    let mut cmd = process::as_root("env", false);
    // Through `env` so that the setting survives sudo's environment reset.
    cmd.args(["DEBIAN_FRONTEND=noninteractive", "apt-get", "--quiet"]);
    cmd
}
