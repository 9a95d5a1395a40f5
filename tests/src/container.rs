//! A real systemd as PID 1: a Debian root (debootstrapped once from the host's configured
//! Debian mirror and cached) booted with `systemd-nspawn --boot` in a network namespace of a
//! test's topology. The root stays untouched (`--volatile=overlay`: writes go to a tmpfs);
//! the files under test are bound in read-only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::command::{check, output_within};
use crate::names;
use crate::netns::Netns;
use crate::process::Process;
use crate::wait::poll_until;

/// How long debootstrap may take (it downloads about 60 MB).
const DEBOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the container may take to boot, and to power off.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one command in the container may take.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// What the root has beyond the minimal base: systemd as init, and the tools the tests use.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,iproute2,curl,procps";

/// A booted container, powered off (then killed, if need be) on drop.
#[derive(Debug)]
pub struct Container {
    nspawn: Process,
    init: u32,
}

impl Container {
    /// Boots the cached root ([`root`]) in `ns` with `binds` (host path, container path)
    /// bound read-only, the capabilities of reflector's kernel path and its system calls
    /// allowed; returns once systemd reports the system running (or degraded).
    #[must_use]
    pub fn boot(ns: &Netns, binds: &[(&Path, &str)]) -> Self {
        let root = root();
        let machine = names::name(names::next_id(), "ct");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.arg("--boot")
            .arg("--directory")
            .arg(&root)
            .args(["--volatile=overlay", "--register=no", "--keep-unit"])
            .arg(format!("--machine={machine}"))
            .arg(format!("--network-namespace-path={}", ns.path().display()))
            .arg("--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN")
            .arg("--system-call-filter=bpf perf_event_open")
            .arg("--console=read-only");
        for (host, inside) in binds {
            cmd.arg(format!("--bind-ro={}:{inside}", host.display()));
        }
        let mut nspawn = Process::spawn(&mut cmd);
        let mut init = None;
        poll_until(BOOT_TIMEOUT, || {
            init = init_of(nspawn.pid());
            init.is_some() || nspawn.try_status().is_some()
        });
        let Some(init) = init else {
            nspawn.stop();
            panic!(
                "`{}` started no init within {BOOT_TIMEOUT:?}{}",
                nspawn.what(),
                nspawn.output_report()
            );
        };
        let container = Self { nspawn, init };
        // `offline` until systemd listens: ask again until it answers, then wait for boot.
        let mut state = String::new();
        poll_until(BOOT_TIMEOUT, || {
            let output =
                container.exec_within(&["systemctl", "is-system-running", "--wait"], BOOT_TIMEOUT);
            state = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
            !state.starts_with("offline") && !state.contains("Failed to connect to bus")
        });
        assert!(
            state.starts_with("running") || state.starts_with("degraded"),
            "the container's systemd did not come up (`is-system-running`: {state:?}){}",
            container.nspawn.output_report()
        );
        container
    }

    /// Runs `args` inside (every namespace of its PID 1) within [`EXEC_TIMEOUT`].
    #[must_use]
    pub fn exec_output(&self, args: &[&str]) -> Output {
        self.exec_within(args, EXEC_TIMEOUT)
    }

    /// [`Container::exec_output`], panicking unless it exits 0; returns stdout.
    #[must_use]
    pub fn exec(&self, args: &[&str]) -> String {
        let mut cmd = self.command(args);
        let output = output_within(&mut cmd, EXEC_TIMEOUT);
        check(&cmd, &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `systemctl show UNIT -p PROPERTY --value`.
    #[must_use]
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.exec(&["systemctl", "show", unit, "-p", property, "--value"])
            .trim()
            .to_owned()
    }

    /// The journal of `unit` (messages only).
    #[must_use]
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
    }

    fn exec_within(&self, args: &[&str], timeout: Duration) -> Output {
        output_within(&mut self.command(args), timeout)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.init.to_string(), "-a", "--"])
            .args(args);
        cmd
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = output_within(&mut self.command(&["systemctl", "poweroff"]), EXEC_TIMEOUT);
        if self.nspawn.wait_exit(BOOT_TIMEOUT).is_none() {
            eprintln!("the container did not power off within {BOOT_TIMEOUT:?}; stopping it");
        }
        self.nspawn.stop();
    }
}

/// The pid of `nspawn`'s child, the container's init.
fn init_of(nspawn: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).ok()?;
    let child = children.split_whitespace().next()?.parse().ok()?;
    // The child execs systemd after setting up the container.
    let comm = fs::read_to_string(format!("/proc/{child}/comm")).ok()?;
    (comm.trim() == "systemd").then_some(child)
}

/// The cached root: `$CARGO_TARGET_TMPDIR`-like `target/tmp/nspawn-<codename>`, made with
/// debootstrap on first use (about a minute), from the host's configured Debian mirror.
#[must_use]
pub fn root() -> PathBuf {
    // The tests of one binary run in threads: one builds the root, the others wait for it
    // (two debootstraps into one directory corrupt each other's downloads).
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _building = BUILDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let codename = host_codename();
    let cache = cache_dir().join(format!("nspawn-{codename}"));
    if cache.join("usr/lib/systemd/systemd").exists() {
        return cache;
    }
    let partial = cache.with_extension(format!("partial-{}", std::process::id()));
    let mirror = debian_mirror(&codename);
    let mut cmd = Command::new("debootstrap");
    cmd.args([
        "--variant=minbase",
        &format!("--include={PACKAGES}"),
        &codename,
    ])
    .arg(&partial)
    .arg(&mirror);
    let output = output_within(&mut cmd, DEBOOTSTRAP_TIMEOUT);
    if !output.status.success() {
        let _ = fs::remove_dir_all(&partial);
    }
    check(&cmd, &output);
    fs::rename(&partial, &cache).unwrap_or_else(|e| {
        panic!(
            "cannot move {} to {}: {e}",
            partial.display(),
            cache.display()
        )
    });
    cache
}

/// `target/tmp`: beside the build, kept between runs, removed by `cargo clean`.
fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `VERSION_CODENAME` from `/etc/os-release` (e.g. `bookworm`).
fn host_codename() -> String {
    let text = fs::read_to_string("/etc/os-release").expect("/etc/os-release");
    text.lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .expect("VERSION_CODENAME in /etc/os-release: the container test needs Debian")
}

/// The Debian mirror the host's APT sources use for `codename` (read, never changed).
fn debian_mirror(codename: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(entries.filter_map(Result::ok).map(|entry| entry.path()));
    }
    files
        .iter()
        .filter_map(|file| fs::read_to_string(file).ok())
        .find_map(|text| mirror_in(&text, codename))
        .unwrap_or_else(|| {
            panic!("no Debian mirror for {codename} in /etc/apt/sources.list or sources.list.d")
        })
}

/// The first URI serving `codename` itself (not -security, -updates) in a sources file, in
/// the one-line (`deb URI SUITE ...`) or the deb822 (`URIs:` / `Suites:`) format.
fn mirror_in(text: &str, codename: &str) -> Option<String> {
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["deb", rest @ ..] = words.as_slice() {
            let rest: Vec<&str> = rest
                .iter()
                .copied()
                .filter(|w| !w.starts_with('['))
                .collect();
            if rest.get(1) == Some(&codename) {
                return rest.first().map(|uri| (*uri).to_owned());
            }
        }
    }
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        let serves =
            field("Suites:").is_some_and(|suites| suites.split(' ').any(|s| s == codename));
        if serves && field("Types:").is_some_and(|types| types.split(' ').any(|t| t == "deb")) {
            return field("URIs:")?.split(' ').next().map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::mirror_in;

    #[test]
    fn finds_the_mirror_in_both_formats() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm \
                      bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: \
                      http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        let one_line = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n\
                        deb [arch=amd64] http://ftp.de.debian.org/debian bookworm main\n";
        assert_eq!(
            mirror_in(one_line, "bookworm").as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
        assert_eq!(mirror_in(one_line, "trixie"), None);
    }
}
