//! `cargo xtask vmtest`: the test suite on the kernels fleets run (Debian's 5.10, 6.1 and
//! 6.12), each booted with virtme-ng on the host's own filesystem (read-only), running the
//! test binaries built here.
//!
//! Kernels come from Debian through a private apt configuration under
//! `target/vmtest/apt` (its own sources list naming the mirror, its own state and cache), so
//! `/etc/apt` is never touched; they are unpacked with `dpkg-deb -x` under
//! `target/vmtest/kernels` and reused until Debian publishes a newer build.

use std::{
    ffi::OsString,
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};
use cargo_metadata::{Artifact, Message};

use crate::{apt, build, process, virtme};

/// The Debian mirror the private sources list names (the one the project's CI image uses).
const MIRROR: &str = "http://deb.debian.org/debian";

/// The suites that carry the kernels: 5.10 (bullseye), 6.1 (bookworm), 6.12
/// (bookworm-backports).
const SUITES: &[&str] = &["bullseye", "bookworm", "bookworm-backports"];

/// The kernels tested, oldest first: the series, and the suite it comes from.
pub(crate) const KERNELS: &[(&str, &str)] = &[
    ("5.10", "bullseye"),
    ("6.1", "bookworm"),
    ("6.12", "bookworm-backports"),
];

/// Modules the guest never needs; not loading them saves seconds per boot under emulation.
const BLACKLIST: &str = "modprobe.blacklist=floppy,pcspkr,serio_raw,psmouse,evdev,joydev,\
                         button,intel_rapl_msr,intel_rapl_common,i2c_piix4,bochs,drm,ttm";

/// The test binaries run in the guest, each with its default filters (libtest substring
/// filters; a test runs when its name contains any of them; none: every test).
pub(crate) const SUITE: &[(&str, &[&str])] = &[
    ("kernel", &[]),
    ("e2e", &["_tc", "_xdp_skb", "_auto", "_splice", "clsact"]),
    ("pin", &[]),
];

/// The test binary that loads both programs and prints what each cost the verifier; it
/// runs last on every kernel, whatever the filters.
const VERIFIER: &str = "verifier";

/// The subset `cargo xtask test` (CI) runs on each kernel, about two minutes per kernel
/// under emulation on 2 cores, four on 5.10 (the full [`SUITE`] takes about eight): the kernel
/// table's rewrites and checksums on both hooks (forward and reverse, TCP and UDP, IPv4 and
/// IPv6, VLAN and QinQ, a truncated header), the TC and XDP attach paths end to end
/// with the clsact and SIGKILL behaviour that differs before 6.6, and the pinned paths.
pub(crate) const CI_SUITE: &[(&str, &[&str])] = &[
    (
        "kernel",
        &[
            "checksum_verification",
            "ipv4_tcp_forward",
            "ipv4_tcp_reverse",
            "ipv4_udp_checksum_zero",
            "ipv6_udp_forward",
            "ipv6_udp_reverse",
            "vlan_",
            "qinq_ipv6_tcp",
            "truncated_ipv6_udp_header",
        ],
    ),
    (
        "e2e",
        &[
            "tcp_v4_tc",
            "udp_v6_tc",
            "tcp_v4_xdp_skb",
            "udp_v6_auto",
            "clsact",
            "nothing_left_after_sigkill_tc",
        ],
    ),
    (
        "pin",
        &["pin_auto_picks", "pin_session_survives_restart_tc"],
    ),
];

/// What `cargo xtask vmtest` runs.
pub(crate) struct Options {
    /// Only [`CI_SUITE`], not the whole [`SUITE`].
    pub ci: bool,
    /// Kernel series (`5.10`, `6.1`, `6.12`); empty for all.
    pub kernels: Vec<String>,
    /// Seconds one VM may run before it is stopped and the kernel counted as failed.
    pub timeout: u64,
    /// Arguments for every test binary, after `--` (replacing the default filters).
    pub extra: Vec<OsString>,
    /// The daemon to test, when the caller built it already (`cargo xtask test`).
    pub reflector: Option<PathBuf>,
}

/// Runs the suite on each kernel asked for; fails if any kernel fails.
pub(crate) fn run(options: &Options) -> Result<()> {
    let kernels = select(&options.kernels)?;
    ensure_tools()?;
    let images = fetch(&kernels)?;
    let reflector = match &options.reflector {
        Some(binary) => binary.clone(),
        None => build::build_reflector(false, &[])?,
    };
    let binaries = test_binaries()?;

    let mut reports = Vec::new();
    for ((series, _), image) in kernels.iter().zip(&images) {
        let report = boot_and_test(series, image, &reflector, &binaries, options)?;
        // Each kernel's verdict as soon as it is known.
        eprintln!("\nxtask: {report}");
        reports.push(report);
    }
    eprintln!("\nxtask: vmtest summary");
    let mut failed = Vec::new();
    for report in &reports {
        eprintln!("{report}");
        if !report.ok() {
            failed.push(report.series.clone());
        }
    }
    if !failed.is_empty() {
        bail!("the suite failed on kernel {}", failed.join(", "));
    }
    Ok(())
}

/// The kernels named by `names` (all when empty or `all`), in [`KERNELS`] order.
fn select(names: &[String]) -> Result<Vec<(&'static str, &'static str)>> {
    if names.is_empty() || names.iter().any(|name| name == "all") {
        return Ok(KERNELS.to_vec());
    }
    for name in names {
        if !KERNELS.iter().any(|(series, _)| series == name) {
            bail!(
                "unknown kernel `{name}`: choose among {} or all",
                KERNELS
                    .iter()
                    .map(|(series, _)| *series)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(KERNELS
        .iter()
        .copied()
        .filter(|(series, _)| names.iter().any(|name| name == series))
        .collect())
}

/// The directory everything of this task lives in.
fn dir() -> PathBuf {
    process::target_dir().join("vmtest")
}

/// Installs the host's part (QEMU, busybox, udev, kmod) and virtme-ng when missing.
fn ensure_tools() -> Result<()> {
    apt::install(&apt::missing(apt::VM)?)?;
    virtme::ensure()
}

/// `apt-get` or `apt-cache` on the private configuration.
fn private_apt(program: &str) -> Result<Command> {
    let root = dir().join("apt");
    let sources = root.join("sources.list");
    let mut list = String::new();
    for suite in SUITES {
        let _ = writeln!(
            list,
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {MIRROR} {suite} main"
        );
    }
    fs::create_dir_all(root.join("lists").join("partial"))?;
    fs::create_dir_all(root.join("cache").join("archives").join("partial"))?;
    fs::write(&sources, list).with_context(|| format!("cannot write {}", sources.display()))?;
    let mut cmd = Command::new(program);
    let setting = |key: &str, value: &Path| format!("{key}={}", value.display());
    cmd.arg("--quiet")
        .arg("-o")
        .arg(setting("Dir::Etc::SourceList", &sources))
        .arg("-o")
        .arg("Dir::Etc::SourceParts=/dev/null")
        .arg("-o")
        .arg(setting("Dir::State::Lists", &root.join("lists")))
        .arg("-o")
        .arg(setting("Dir::Cache", &root.join("cache")))
        .arg("-o")
        .arg("Dir::State::status=/dev/null")
        // Only package lists: no translations, no AppStream metadata.
        .args(["-o", "Acquire::Languages=none"])
        .args([
            "-o",
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
        ])
        .args([
            "-o",
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
        ])
        .args([
            "-o",
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
        ])
        .args([
            "-o",
            "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
        ])
        // The files land in the checkout, which apt's sandbox user cannot write.
        .args(["-o", "APT::Sandbox::User=root"])
        .args(["-o", "Debug::NoLocking=1"]);
    Ok(cmd)
}

/// The kernel images of `kernels`: the newest build Debian has of each series, downloaded
/// and unpacked when not cached yet. Without the network, the cached builds are used.
fn fetch(kernels: &[(&str, &str)]) -> Result<Vec<PathBuf>> {
    let lists = dir().join("apt").join("lists");
    let fresh = fs::metadata(&lists)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|time| SystemTime::now().duration_since(time).ok())
        .is_some_and(|age| age < Duration::from_secs(24 * 3600));
    let updated = fresh || process::run(private_apt("apt-get")?.arg("update")).is_ok();
    let mut images = Vec::new();
    for (series, suite) in kernels {
        let cached = cached_image(series);
        let image = if updated {
            match newest(series)? {
                Some((package, version)) => unpack(series, &package, &version)?,
                None => cached.with_context(|| {
                    format!("Debian's {suite} has no linux-image for kernel {series}")
                })?,
            }
        } else {
            process::say("cannot update the package lists: using the cached kernels");
            cached.with_context(|| {
                format!("no kernel {series} cached and the package lists cannot be updated")
            })?
        };
        images.push(image);
    }
    Ok(images)
}

/// The newest `linux-image-<series>…-amd64` package and version the lists hold, read from
/// what the `linux-image-amd64` metapackages of the suites depend on.
fn newest(series: &str) -> Result<Option<(String, String)>> {
    let output = private_apt("apt-cache")?
        .args(["show", "linux-image-amd64"])
        .output()
        .context("cannot run apt-cache")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // Each stanza: `Depends: linux-image-6.1.0-50-amd64 (= 6.1.176-1)`.
    let prefix = format!("linux-image-{series}.");
    let prefix_plus = format!("linux-image-{series}+");
    for line in text.lines() {
        let Some(depends) = line.strip_prefix("Depends: ") else {
            continue;
        };
        let Some((package, rest)) = depends.split_once(" (= ") else {
            continue;
        };
        if package.starts_with(&prefix) || package.starts_with(&prefix_plus) {
            let version = rest.trim_end_matches(')').to_owned();
            return Ok(Some((package.to_owned(), version)));
        }
    }
    Ok(None)
}

/// The directory a kernel package is unpacked in.
fn kernel_dir(series: &str) -> PathBuf {
    dir().join("kernels").join(series)
}

/// The kernel image unpacked for `series`, if any.
fn cached_image(series: &str) -> Option<PathBuf> {
    let boot = kernel_dir(series).join("boot");
    fs::read_dir(boot)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// Downloads `package` at `version` and unpacks it, unless that build is unpacked already;
/// returns its kernel image.
fn unpack(series: &str, package: &str, version: &str) -> Result<PathBuf> {
    let dest = kernel_dir(series);
    let stamp = dest.join(".package");
    let wanted = format!("{package} {version}");
    if fs::read_to_string(&stamp).is_ok_and(|text| text == wanted)
        && let Some(image) = cached_image(series)
    {
        return Ok(image);
    }
    let debs = dir().join("debs");
    fs::create_dir_all(&debs)?;
    process::run(
        private_apt("apt-get")?
            .current_dir(&debs)
            .arg("download")
            .arg(format!("{package}={version}")),
    )?;
    let deb = fs::read_dir(&debs)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name().is_some_and(|name| {
                let name = name.to_string_lossy();
                name.starts_with(&format!("{package}_")) && name.ends_with(".deb")
            })
        })
        .with_context(|| format!("apt-get download left no {package} in {}", debs.display()))?;
    if dest.exists() {
        fs::remove_dir_all(&dest)?;
    }
    fs::create_dir_all(&dest)?;
    process::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&dest))?;
    fs::write(&stamp, wanted)?;
    fs::remove_file(&deb)?;
    cached_image(series).with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))
}

/// Builds the test binaries of [`SUITE`]; returns each one's name and executable.
fn test_binaries() -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = process::cargo();
    // The whole workspace, as `cargo xtask test` builds it: features are unified over the
    // packages selected, so `--package reflector-tests` alone would build everything again.
    cmd.args([
        "test",
        "--workspace",
        "--exclude",
        "reflector-ebpf",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for name in SUITE.iter().map(|(name, _)| *name).chain([VERIFIER]) {
        cmd.args(["--test", name]);
    }
    let shown = process::describe(&cmd);
    process::say(&format!("running `{shown}`"));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let stdout = child.stdout.take().context("cargo's stdout is not piped")?;
    let mut binaries = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(Artifact {
            target,
            executable: Some(executable),
            ..
        }) = message.context("cannot read cargo's JSON output")?
            && (SUITE.iter().any(|(name, _)| *name == target.name) || target.name == VERIFIER)
        {
            binaries.push((target.name.clone(), executable.into_std_path_buf()));
        }
    }
    if !child.wait()?.success() {
        bail!("`{shown}` failed");
    }
    // SUITE's order; the verifier's counts last.
    binaries.sort_by_key(|(name, _)| {
        SUITE
            .iter()
            .position(|(wanted, _)| wanted == name)
            .unwrap_or(SUITE.len())
    });
    Ok(binaries)
}

/// Quotes `word` for a POSIX shell.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// The script the guest runs: every test binary in turn (the verifier's counts last).
fn guest_script(
    reflector: &Path,
    binaries: &[(String, PathBuf)],
    options: &Options,
) -> Result<String> {
    let (extra, suite) = (&options.extra, if options.ci { CI_SUITE } else { SUITE });
    let mut script = String::from(
        "#!/bin/sh\n\
         # Written by `cargo xtask vmtest`; runs as root inside the VM.\n\
         mount -t bpf bpf /sys/fs/bpf 2>/dev/null\n\
         echo \"vmtest: uname $(uname -r)\"\n",
    );
    let _ = writeln!(
        script,
        "export REFLECTOR_BIN={}",
        sh_quote(&reflector.to_string_lossy())
    );
    for (name, binary) in binaries {
        let mut args: Vec<String> = Vec::new();
        if name == VERIFIER {
            // Its lines are the report's; they show only with --nocapture.
            args.push("--nocapture".to_owned());
        } else if extra.is_empty() {
            let filters = suite
                .iter()
                .find(|(wanted, _)| wanted == name)
                .map_or(&[][..], |(_, filters)| filters);
            args.extend(filters.iter().map(|filter| sh_quote(filter)));
        } else {
            for arg in extra {
                args.push(sh_quote(
                    arg.to_str().context("a test argument is not UTF-8")?,
                ));
            }
        }
        let _ = writeln!(
            script,
            "start=$(date +%s); echo 'vmtest: running {name}'; {} {}; \
             echo \"vmtest: end {name} $? $(( $(date +%s) - start ))\"",
            sh_quote(&binary.to_string_lossy()),
            args.join(" ")
        );
    }
    script.push_str("echo 'vmtest: done'\n");
    Ok(script)
}

/// What one kernel's run gave.
struct Report {
    series: String,
    release: String,
    /// Per test binary: its summary line and exit status.
    binaries: Vec<(String, String, Option<i32>)>,
    failures: Vec<String>,
    programs: Vec<String>,
    elapsed: Duration,
    finished: bool,
}

impl Report {
    fn ok(&self) -> bool {
        self.finished
            && !self.binaries.is_empty()
            && self.binaries.iter().all(|(_, _, code)| *code == Some(0))
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.ok() { "ok" } else { "FAILED" };
        writeln!(
            f,
            "kernel {} ({}): {verdict} in {}s",
            self.series,
            self.release,
            self.elapsed.as_secs()
        )?;
        if !self.finished {
            writeln!(f, "  the VM did not finish (timeout or crash): see its log")?;
        }
        for (name, summary, code) in &self.binaries {
            let code = code.map_or_else(|| "?".to_owned(), |code| code.to_string());
            writeln!(f, "  {name}: {summary} (exit {code})")?;
        }
        for failure in &self.failures {
            writeln!(f, "  failed: {failure}")?;
        }
        for program in &self.programs {
            writeln!(f, "  {program}")?;
        }
        Ok(())
    }
}

/// Reads the guest's output line by line into a [`Report`].
#[derive(Default)]
struct Parser {
    /// The test binary running.
    current: String,
    /// Each binary's `test result:` line.
    summaries: Vec<(String, String)>,
}

impl Parser {
    fn read(&mut self, line: &str, report: &mut Report) {
        if let Some(release) = line.strip_prefix("vmtest: uname ") {
            release.clone_into(&mut report.release);
        } else if let Some(name) = line.strip_prefix("vmtest: running ") {
            name.clone_into(&mut self.current);
        } else if line.starts_with("test result: ") {
            self.summaries.push((
                self.current.clone(),
                line.trim_start_matches("test result: ").to_owned(),
            ));
        } else if let Some(test) = line.strip_prefix("test ")
            && let Some(test) = test.strip_suffix(" ... FAILED")
        {
            report.failures.push(format!("{}::{test}", self.current));
        } else if let Some(program) = line.strip_prefix("vmtest: prog ") {
            report.programs.push(program.to_owned());
        } else if let Some(rest) = line.strip_prefix("vmtest: end ") {
            // `NAME CODE SECONDS`
            let mut words = rest.split_whitespace();
            let (Some(name), code, seconds) = (words.next(), words.next(), words.next()) else {
                return;
            };
            let code = code.and_then(|code| code.parse().ok());
            let summary = self
                .summaries
                .iter()
                .rev()
                .find(|(binary, _)| binary == name)
                .map_or_else(|| "no summary".to_owned(), |(_, summary)| summary.clone());
            report.binaries.push((
                name.to_owned(),
                format!("{summary} ({}s in the VM)", seconds.unwrap_or("?")),
                code,
            ));
        } else if line == "vmtest: done" {
            report.finished = true;
        }
    }
}

/// Boots `image` and runs the suite in it, bounded by the timeout; the guest's output is
/// shown as it comes and kept in `target/vmtest/<series>.log`.
fn boot_and_test(
    series: &str,
    image: &Path,
    reflector: &Path,
    binaries: &[(String, PathBuf)],
    options: &Options,
) -> Result<Report> {
    let script_path = dir().join(format!("guest-{series}.sh"));
    fs::write(&script_path, guest_script(reflector, binaries, options)?)?;
    let log_path = dir().join(format!("{series}.log"));
    let kvm = fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
        info.split_whitespace()
            .any(|flag| flag == "vmx" || flag == "svm")
    }) && Path::new("/dev/kvm").exists();
    let mut cmd = Command::new("timeout");
    // SIGTERM first, then SIGKILL: QEMU never outlives the timeout.
    cmd.args(["--kill-after=10", &options.timeout.to_string()])
        .arg(virtme::bin_dir().join("vng"))
        .arg("--run")
        .arg(image)
        .args([
            "--force-9p",
            "--cpus",
            "2",
            "--memory",
            "2G",
            "--append",
            BLACKLIST,
        ])
        .arg("--rwdir")
        .arg(dir())
        .arg("--cwd")
        .arg(process::workspace_root())
        .arg("--exec")
        .arg(format!("sh {}", script_path.display()))
        // vng runs virtme-run, which lives beside it.
        .env("PATH", {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::join_paths(
                std::iter::once(virtme::bin_dir()).chain(std::env::split_paths(&path)),
            )?
        })
        .stdin(Stdio::null())
        // A pipe, not a file: QEMU reopens its stdout, and would truncate a file.
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if !kvm {
        cmd.arg("--disable-kvm");
    }
    process::say(&format!(
        "kernel {series}: booting {} ({}; at most {}s)",
        image.display(),
        if kvm { "KVM" } else { "software emulation" },
        options.timeout
    ));
    let started = Instant::now();
    let shown = process::describe(&cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let stdout = child.stdout.take().context("vng's stdout is not piped")?;
    let mut log = String::new();
    let mut report = Report {
        series: series.to_owned(),
        release: String::new(),
        binaries: Vec::new(),
        failures: Vec::new(),
        programs: Vec::new(),
        elapsed: Duration::ZERO,
        finished: false,
    };
    let mut parser = Parser::default();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        eprintln!("[{series}] {line}");
        log.push_str(&line);
        log.push('\n');
        parser.read(&line, &mut report);
    }
    let status = child.wait()?;
    report.elapsed = started.elapsed();
    fs::write(&log_path, log)?;
    if !status.success() {
        process::say(&format!(
            "kernel {series}: vng ended with {status}; its output is in {}",
            log_path.display()
        ));
        report.finished = false;
    }
    Ok(report)
}
