//! The config file: settings layered as defaults < file < environment < flags, SIGHUP
//! applying only what changed, and a bad file (at start or on reload) named by line without
//! touching the running state.
//!
//! Each test builds its own namespaces X and R (see `e2e.rs`) and writes its config file
//! into a temporary directory of its own.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fs;
use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;
use reflector_tests::client::try_tcp_line;
use reflector_tests::daemon::{self, run_to_exit};
use reflector_tests::reflection::{Path, assert_reflected};
use reflector_tests::servers::peer_service;
use reflector_tests::wait::wait_until;
use reflector_tests::{Family, Proto, Reflector, TempDir, Topology, TopologyOptions};

/// How long a reload may take to show in the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

fn topology() -> Topology {
    reflector_tests::require_root();
    Topology::new(TopologyOptions::default())
}

/// Writes `text` as `reflector.toml` in `dir` and returns its path as a string.
fn write_config(dir: &TempDir, text: &str) -> String {
    let path = dir.join("reflector.toml");
    fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// The daemon in R on R's veth with `--config config` and nothing else.
fn start_with_config(topology: &Topology, config: &str) -> Reflector {
    Reflector::start_with_args(
        topology.r(),
        &["--config", config, "--iface", topology.r_iface()],
    )
}

/// Sends SIGHUP and waits until the log has one more line containing `expected` than before.
fn reload(reflector: &Reflector, expected: &str) {
    let before = reflector.log().matches(expected).count();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(reflector.pid()).expect("a pid fits i32")),
        Signal::SIGHUP,
    )
    .expect("send SIGHUP to the reflector");
    wait_until(
        &format!("the reflector to log `{expected}` after SIGHUP"),
        RELOAD_TIMEOUT,
        || reflector.log().matches(expected).count() > before,
    );
}

/// Whether a TCP exchange with X's service through `R:listen` fails (nothing reflects it).
fn not_reflected(topology: &Topology, listen: u16) -> bool {
    let to = SocketAddr::new(topology.r_addr(Family::V4), listen);
    try_tcp_line(topology.x(), to, "unmapped").is_err()
}

/// Maps from the file are reflected; SIGHUP adds and removes maps at once, in the kernel
/// (TC) and in userspace, without a restart.
#[test]
fn sighup_applies_map_changes() {
    let topology = topology();
    let dir = TempDir::new("cfg");
    let config = write_config(&dir, "maps = [\"10022:22\"]\nmode = \"tc\"\n");
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let reflector = start_with_config(&topology, &config);
    assert!(
        reflector.log().contains("reflecting with tc"),
        "the mode comes from the file:\n{}",
        reflector.log()
    );
    assert_reflected(
        &topology,
        Path::Kernel,
        Proto::Tcp,
        Family::V4,
        10_022,
        "file",
    );
    assert!(not_reflected(&topology, 10_023), "10023 is not mapped yet");

    write_config(&dir, "maps = [\"10023:22\"]\nmode = \"tc\"\n");
    reload(&reflector, "SIGHUP: port maps now 10023:22/tcp");
    assert!(
        reflector
            .log()
            .contains("added: 10023:22/tcp; removed: 10022:22/tcp"),
        "the reload names what changed:\n{}",
        reflector.log()
    );
    // The kernel path (the service sees the client's own port) and the userspace listener
    // both moved: the old port is no longer reflected.
    assert_reflected(
        &topology,
        Path::Kernel,
        Proto::Tcp,
        Family::V4,
        10_023,
        "reloaded",
    );
    assert!(
        not_reflected(&topology, 10_022),
        "10022 must not be reflected after it was removed"
    );
    reflector.stop_cleanly();
}

/// A file that fails to parse or to check on SIGHUP is refused with its line, and the
/// running maps stay.
#[test]
fn bad_file_on_reload_keeps_running_state() {
    let topology = topology();
    let dir = TempDir::new("cfg");
    let config = write_config(&dir, "maps = [\"10022:22\"]\nmode = \"splice\"\n");
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let reflector = start_with_config(&topology, &config);
    assert_reflected(
        &topology,
        Path::Splice,
        Proto::Tcp,
        Family::V4,
        10_022,
        "before",
    );

    let bad = [
        (
            "maps = [\"10022:22\", \"70000:22\"]\n",
            format!("{config}:1:21: maps: invalid port '70000'"),
        ),
        (
            "maps = [\"10022:22\"\nmode = \"tc\"\n",
            format!("{config}:2:"),
        ),
        (
            "maps = [\"10022:22\"]\nmax-conn = 3\n",
            format!("{config}:2:1: unknown field `max-conn`"),
        ),
        ("maps = []\n", "no port map".to_owned()),
    ];
    for (text, expected) in &bad {
        write_config(&dir, text);
        reload(&reflector, "kept the running settings");
        let log = reflector.log();
        let last = log
            .lines()
            .rev()
            .find(|line| line.contains("kept the running settings"))
            .unwrap_or_default();
        assert!(
            last.contains(expected.as_str()),
            "SIGHUP with {text:?} must be refused naming `{expected}`; got:\n{last}"
        );
        assert_reflected(
            &topology,
            Path::Splice,
            Proto::Tcp,
            Family::V4,
            10_022,
            "kept",
        );
    }
    let (status, log) = reflector.stop();
    assert!(
        status.success(),
        "exit after refused reloads: {status}\n{log}"
    );
}

/// A bad file at start: exit 2, naming the file, line and problem.
#[test]
fn bad_file_at_start_is_refused_with_its_line() {
    let topology = topology();
    let dir = TempDir::new("cfg");
    let config = write_config(&dir, "mode = \"tc\"\nmaps = [\"10022:22\", \"10022:x\"]\n");
    let output = run_to_exit(topology.r(), &["--config", &config]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("{config}:2:21: maps: invalid port 'x'")),
        "stderr must name file, line, column and problem:\n{stderr}"
    );
    assert!(!stderr.contains("ready"), "it must not start:\n{stderr}");

    let missing = dir.join("missing.toml");
    let output = run_to_exit(topology.r(), &["--config", &missing.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("cannot read config file") && stderr.contains("missing.toml"),
        "stderr must name the missing file:\n{stderr}"
    );
}

/// One case of the precedence test: environment variables, flags, and the mode that wins.
type Layers<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

/// defaults < file < environment (`REFLECTOR_*`) < flags, seen through the mode each layer
/// picks.
#[test]
fn flags_beat_environment_beats_file() {
    let topology = topology();
    let dir = TempDir::new("cfg");
    let config = write_config(&dir, "maps = [\"10022:22\"]\nmode = \"splice\"\n");
    let iface = topology.r_iface();
    let cases: [Layers; 4] = [
        (&[], &[], "splice"),
        (&[("REFLECTOR_MODE", "tc")], &[], "tc"),
        (&[("REFLECTOR_MODE", "tc")], &["--mode", "splice"], "splice"),
        (
            &[("REFLECTOR_MODE", "tc"), ("REFLECTOR_MAP", "10023:22")],
            &[],
            "tc",
        ),
    ];
    for (env, flags, mode) in cases {
        let mut args = vec!["--config", config.as_str(), "--iface", iface];
        args.extend_from_slice(flags);
        let mut cmd = daemon::command(topology.r(), &daemon::binary(), &args);
        cmd.envs(env.iter().copied());
        let reflector = Reflector::start_command(&mut cmd);
        let log = reflector.log();
        assert!(
            log.contains(&format!("{iface}: reflecting with {mode}")),
            "env {env:?}, flags {flags:?}: expected mode {mode}:\n{log}"
        );
        let expected_maps = if env.iter().any(|(k, _)| *k == "REFLECTOR_MAP") {
            "ready: reflecting 10023:22/tcp"
        } else {
            "ready: reflecting 10022:22/tcp"
        };
        assert!(
            log.contains(expected_maps),
            "env {env:?}, flags {flags:?}: expected `{expected_maps}`:\n{log}"
        );
        reflector.stop_cleanly();
    }
    // Without any map anywhere: a clear error.
    let output = run_to_exit(topology.r(), &["--iface", iface]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("no port map") && stderr.contains("--map 10022:22"),
        "stderr must say how to give a map:\n{stderr}"
    );
}

/// Waits until the log has a line containing `expected` (without any signal sent).
fn wait_log(reflector: &Reflector, expected: &str, before: usize) {
    wait_until(
        &format!("the reflector to log `{expected}`"),
        RELOAD_TIMEOUT,
        || reflector.log().matches(expected).count() > before,
    );
}

/// An IPv4 TCP check through R's `listen` reaches X's service by the kernel path.
fn reflects_tcp_v4(topology: &Topology, listen: u16, tag: &str) {
    assert_reflected(topology, Path::Kernel, Proto::Tcp, Family::V4, listen, tag);
}

/// A Kubernetes ConfigMap volume: `reflector.toml` is a symlink through `..data` to a
/// directory of the current version; an update writes a new directory and renames a new
/// `..data` symlink over the old one (what the kubelet does). Returns the file's path.
struct ConfigMapVolume {
    dir: TempDir,
    version: usize,
}

impl ConfigMapVolume {
    fn new(text: &str) -> Self {
        let mut volume = Self {
            dir: TempDir::new("cm"),
            version: 0,
        };
        volume.swap_in(text);
        std::os::unix::fs::symlink("..data/reflector.toml", volume.path())
            .expect("link reflector.toml through ..data");
        volume
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.join("reflector.toml")
    }

    /// Writes `text` as a new version and swaps it in atomically.
    fn swap_in(&mut self, text: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        fs::create_dir(self.dir.join(&version)).expect("create the version directory");
        fs::write(self.dir.join(&version).join("reflector.toml"), text).expect("write it");
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).expect("link ..data_tmp");
        fs::rename(&tmp, self.dir.join("..data")).expect("rename over ..data");
    }
}

/// A ConfigMap update reaches the daemon as a file swap, no signal: it reloads through the
/// same all-or-nothing path as SIGHUP. A bad version is refused and the running maps stay;
/// a good one after it applies.
#[test]
fn config_map_swap_reloads_without_a_signal() {
    let topology = topology();
    let mut volume = ConfigMapVolume::new("maps = [\"10022:22\"]\nmode = \"tc\"\n");
    let config = volume.path().to_string_lossy().into_owned();
    let _service = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let reflector = start_with_config(&topology, &config);
    assert!(
        reflector.log().contains(&format!("watching {config}")),
        "the daemon says it watches the file:\n{}",
        reflector.log()
    );
    reflects_tcp_v4(&topology, 10_022, "v1");

    volume.swap_in("maps = [\"10023:22\"]\nmode = \"tc\"\n");
    wait_log(
        &reflector,
        "config file changed: port maps now 10023:22/tcp",
        0,
    );
    reflects_tcp_v4(&topology, 10_023, "v2");
    assert!(not_reflected(&topology, 10_022), "10022 was removed by v2");

    volume.swap_in("maps = [\"10024:22\", \"10024:23\"]\nmode = \"tc\"\n");
    wait_log(&reflector, "config file changed: ", 1);
    wait_log(&reflector, "kept the running settings", 0);
    reflects_tcp_v4(&topology, 10_023, "kept");
    assert!(
        not_reflected(&topology, 10_024),
        "the bad version applied nothing"
    );

    volume.swap_in("maps = [\"10024:22\"]\nmode = \"tc\"\n");
    wait_log(
        &reflector,
        "config file changed: port maps now 10024:22/tcp",
        0,
    );
    reflects_tcp_v4(&topology, 10_024, "v4");
    reflector.stop_cleanly();
}

/// `reflector check-config FILE`: exit 0 with what the file sets, or exit 2 with the file,
/// line and column of the problem; it touches nothing.
#[test]
fn check_config_validates_a_file() {
    let dir = TempDir::new("cfg");
    let good = write_config(
        &dir,
        "maps = [\"10022:22\", \"10053:53/udp\"]\nmode = \"tc\"\n",
    );
    let output = reflector_tests::command::output_within(
        std::process::Command::new(daemon::binary()).args(["check-config", &good]),
        RELOAD_TIMEOUT,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "a good file: {output:?}");
    assert_eq!(
        stdout.trim(),
        format!(
            "{good}: ok: maps 10022:22/tcp 10053:53/udp; mode tc; interfaces those with a \
             default route"
        )
    );

    let bad = write_config(&dir, "maps = [\"10022:22\"]\nmode = \"tc\"\nmax-conn = 3\n");
    let output = reflector_tests::command::output_within(
        std::process::Command::new(daemon::binary()).args(["check-config", &bad]),
        RELOAD_TIMEOUT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "a bad file: {stderr}");
    assert!(
        stderr.contains(&format!("{bad}:3:1: unknown field `max-conn`")),
        "the error names file, line and column:\n{stderr}"
    );
}
