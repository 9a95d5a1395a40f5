//! Runtime management over the control socket: `reflector map add|del|list` change the
//! running daemon's maps at once (TC and splice mode) without disturbing flows of other
//! maps, `reflector stats [--json]` prints its counters, malformed requests are refused
//! without changing anything, and the socket is root-only.
//!
//! Each test builds its own namespaces X and R (see `e2e.rs`), and its daemon's control
//! socket lives in a temporary directory of its own. The subcommands run inside R with the
//! same binary as the daemon.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::UnixStream;
use std::path::Path as FsPath;
use std::process::Output;
use std::time::Duration;

use reflector::control::Reply;
use reflector_tests::client::{exchange_line, tcp_connect, try_tcp_line};
use reflector_tests::daemon::{binary, run_to_exit};
use reflector_tests::reflection::{Path, assert_reflected};
use reflector_tests::servers::{Session, peer_service, session_service};
use reflector_tests::{Family, Mode, Proto, Reflector, TempDir, Topology, TopologyOptions};

/// How long one subcommand may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a raw reply on the socket may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

fn topology() -> Topology {
    reflector_tests::require_root();
    Topology::new(TopologyOptions::default())
}

/// The daemon's arguments: map 10022:22 on R's veth in `mode`, control socket `socket`.
fn daemon_args<'a>(topology: &'a Topology, mode: &'a str, socket: &'a str) -> [&'a str; 10] {
    [
        "--map",
        "10022:22",
        // Maps without flow state where they can be: `map list` shows each map's choice.
        "--flow-table",
        "auto",
        "--iface",
        topology.r_iface(),
        "--mode",
        mode,
        "--control-socket",
        socket,
    ]
}

/// A daemon in R mapping 10022:22 in `mode`, with its control socket in `dir`.
fn start(topology: &Topology, mode: Mode, dir: &TempDir) -> (Reflector, String) {
    let socket = dir.join("control.sock").to_string_lossy().into_owned();
    let reflector =
        Reflector::start_with_args(topology.r(), &daemon_args(topology, mode.as_arg(), &socket));
    (reflector, socket)
}

/// Runs `reflector <args...>` inside R and returns its output, whatever its status.
fn cli(topology: &Topology, args: &[&str]) -> Output {
    let bin = binary();
    let mut all = vec![bin.to_str().expect("a UTF-8 binary path")];
    all.extend_from_slice(args);
    topology.r().exec_output(&all, CLI_TIMEOUT)
}

/// Runs `reflector <args...>` inside R, expecting success; returns its stdout.
fn cli_ok(topology: &Topology, args: &[&str]) -> String {
    let output = cli(topology, args);
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "`reflector {}` failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" "),
        output.status
    );
    stdout
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Whether a TCP exchange from X through `R:listen` fails (nothing reflects it).
fn not_reflected(topology: &Topology, listen: u16) -> bool {
    let to = SocketAddr::new(topology.r_addr(Family::V4), listen);
    try_tcp_line(topology.x(), to, "unmapped").is_err()
}

/// The maps `map list` prints.
fn map_list(topology: &Topology, socket: &str) -> Vec<String> {
    cli_ok(topology, &["map", "list", "--control-socket", socket])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `map add` makes a new port reflect, `map del` stops it, `map list` shows both steps,
/// and a long TCP connection through the other map carries on throughout.
fn add_and_del(mode: Mode) {
    let topology = topology();
    let dir = TempDir::new("ctl");
    let _lines = session_service(topology.x(), Session::Lines, Family::V4, 22);
    let _peer = peer_service(topology.x(), Proto::Tcp, Family::V4, 80);
    let (reflector, socket) = start(&topology, mode, &dir);
    let path = Path::of(mode);

    let to = SocketAddr::new(topology.r_addr(Family::V4), 10_022);
    let session = tcp_connect(topology.x(), None, to);
    let reply = exchange_line(&session, "before");
    assert!(reply.ends_with(" before"), "long connection: {reply:?}");
    assert!(not_reflected(&topology, 10_080), "10080 is not mapped yet");

    let stdout = cli_ok(
        &topology,
        &["map", "add", "10080:80", "--control-socket", &socket],
    );
    assert!(stdout.contains("added 10080:80/tcp"), "map add: {stdout}");
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, 10_080, "added");
    // The kernel path says how it finds each map's replies; the userspace path has no
    // such choice.
    let kernel = mode != Mode::Splice;
    let listed = |lines: &[&str], paths: &[&str]| -> Vec<String> {
        lines
            .iter()
            .zip(paths)
            .map(|(map, path)| {
                if kernel {
                    format!("{map:<12}  {path}")
                } else {
                    (*map).to_owned()
                }
            })
            .collect()
    };
    assert_eq!(
        map_list(&topology, &socket),
        listed(
            &["10022:22/tcp", "10080:80/tcp"],
            &["stateless", "stateless"]
        )
    );
    // A second listen port for target 80: neither map can tell its replies apart alone.
    cli_ok(
        &topology,
        &["map", "add", "20080:80", "--control-socket", &socket],
    );
    let shared = "flow-table (target port shared with another map)";
    assert_eq!(
        map_list(&topology, &socket),
        listed(
            &["10022:22/tcp", "10080:80/tcp", "20080:80/tcp"],
            &["stateless", shared, shared]
        )
    );
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, 10_080, "shared");
    cli_ok(
        &topology,
        &["map", "del", "20080", "--control-socket", &socket],
    );
    let reply = exchange_line(&session, "after-add");
    assert!(reply.ends_with(" after-add"), "long connection: {reply:?}");

    let stdout = cli_ok(
        &topology,
        &["map", "del", "10080", "--control-socket", &socket],
    );
    assert!(stdout.contains("removed 10080"), "map del: {stdout}");
    assert!(
        not_reflected(&topology, 10_080),
        "10080 must not be reflected after `map del`"
    );
    assert_eq!(
        map_list(&topology, &socket),
        listed(&["10022:22/tcp"], &["stateless"])
    );
    let reply = exchange_line(&session, "after-del");
    assert!(reply.ends_with(" after-del"), "long connection: {reply:?}");
    assert_reflected(&topology, path, Proto::Tcp, Family::V4, 10_022, "kept");
    drop(session);

    let log = reflector.log();
    for expected in ["control: added 10080:80/tcp", "control: removed 10080"] {
        assert!(log.contains(expected), "the log names `{expected}`:\n{log}");
    }
    reflector.stop_cleanly();
    assert!(
        !FsPath::new(&socket).exists(),
        "the control socket is removed on exit"
    );
}

#[test]
fn add_and_del_in_tc_mode() {
    add_and_del(Mode::Tc);
}

#[test]
fn add_and_del_in_splice_mode() {
    add_and_del(Mode::Splice);
}

/// Sends `line` on `stream` and reads one reply line.
fn raw(stream: &UnixStream, line: &[u8]) -> Reply {
    let mut writer = stream;
    writer.write_all(line).expect("write to the control socket");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("read from the control socket");
    Reply::parse(&reply).unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"))
}

/// Malformed requests get `"ok":false` with a reason, on a connection that stays usable,
/// and change nothing; an oversized one is refused too, and the daemon runs on.
#[test]
fn malformed_requests_change_nothing() {
    let topology = topology();
    let dir = TempDir::new("ctl");
    let _peer = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let (reflector, socket) = start(&topology, Mode::Splice, &dir);

    let stream = UnixStream::connect(&socket).expect("connect to the control socket");
    stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let bad: [(&[u8], &str); 7] = [
        (b"garbage\n", "invalid request"),
        (
            b"{\"command\":\"reboot\"}\n",
            "commands are stats, map-list",
        ),
        (b"{\"command\":\"map-add\"}\n", "missing field `map`"),
        (
            b"{\"command\":\"map-add\",\"map\":\"10080:80/sctp\"}\n",
            "invalid protocol 'sctp'",
        ),
        (
            b"{\"command\":\"map-add\",\"map\":\"10022:23\"}\n",
            "mapped twice",
        ),
        (
            b"{\"command\":\"map-del\",\"map\":\"10099\"}\n",
            "port 10099 is not mapped",
        ),
        (
            b"{\"command\":\"map-del\",\"map\":\"10022\"}\n",
            "last port map",
        ),
    ];
    for (line, expected) in bad {
        let reply = raw(&stream, line);
        let error = reply.error.clone().unwrap_or_default();
        assert!(
            !reply.ok && error.contains(expected),
            "{:?} must be refused with `{expected}`: {reply:?}",
            String::from_utf8_lossy(line)
        );
    }
    let reply = raw(&stream, b"{\"command\":\"map-list\"}\n");
    assert!(reply.ok, "{reply:?}");
    assert_eq!(
        reply.maps.as_deref(),
        Some(&["10022:22/tcp".to_owned()][..])
    );

    // Too long: refused, and the connection closed.
    let oversized = vec![b'x'; 100 * 1024];
    let reply = raw(&stream, &oversized);
    assert!(
        !reply.ok && reply.error.as_deref().unwrap_or("").contains("longer than"),
        "{reply:?}"
    );
    drop(stream);

    // The CLI says the same, exits 1, and nothing changed.
    let output = cli(
        &topology,
        &["map", "add", "10022:23", "--control-socket", &socket],
    );
    let (_, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains("mapped twice"), "stderr:\n{stderr}");
    assert_eq!(map_list(&topology, &socket), ["10022:22/tcp"]);
    assert_reflected(
        &topology,
        Path::Splice,
        Proto::Tcp,
        Family::V4,
        10_022,
        "kept",
    );
    reflector.stop_cleanly();
}

/// `stats` prints a table with the reflected counters after traffic; `stats --json`
/// parses and has them too.
#[test]
fn stats_table_and_json() {
    let topology = topology();
    let dir = TempDir::new("ctl");
    let _peer = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let (reflector, socket) = start(&topology, Mode::Tc, &dir);
    for round in 0..3 {
        assert_reflected(
            &topology,
            Path::Kernel,
            Proto::Tcp,
            Family::V4,
            10_022,
            &format!("stats{round}"),
        );
    }

    let table = cli_ok(&topology, &["stats", "--control-socket", &socket]);
    println!("{table}");
    assert!(
        table.contains(&format!("{}  tc", topology.r_iface())),
        "the interface and its mode:\n{table}"
    );
    let forward = table
        .lines()
        .find(|line| line.starts_with("forward") && line.contains("ipv4"))
        .unwrap_or_else(|| panic!("a forward ipv4 row:\n{table}"));
    let packets: u64 = forward
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a packet count in {forward:?}"));
    assert!(
        packets > 0,
        "forward ipv4 packets must have moved:\n{table}"
    );
    assert!(table.contains("SPLICE"), "the splice counters:\n{table}");

    let all = cli_ok(&topology, &["stats", "--all", "--control-socket", &socket]);
    assert!(all.lines().count() > table.lines().count(), "--all:\n{all}");

    let json = cli_ok(&topology, &["stats", "--json", "--control-socket", &socket]);
    // The JSON is the `stats` field of a reply: parse it as one.
    let reply = Reply::parse(&format!("{{\"ok\":true,\"stats\":{json}}}"))
        .unwrap_or_else(|e| panic!("stats --json is not the snapshot: {e}\n{json}"));
    let snapshot = reply.stats.expect("the snapshot");
    let kernel = snapshot.kernel.expect("the kernel section in TC mode");
    let forward = kernel
        .reflected
        .iter()
        .find(|count| count.direction == "forward" && count.family == "ipv4")
        .expect("a forward ipv4 entry");
    assert!(forward.packets > 0 && forward.bytes > 0, "{json}");
    assert!(snapshot.ready, "{json}");
    reflector.stop_cleanly();
}

/// The socket is mode 0600: an unprivileged client is refused and told it needs root.
#[test]
fn socket_is_root_only() {
    let topology = topology();
    reflector_tests::require_tool("setpriv", "util-linux");
    let dir = TempDir::new("ctl");
    let _peer = peer_service(topology.x(), Proto::Tcp, Family::V4, 22);
    let (reflector, socket) = start(&topology, Mode::Splice, &dir);

    let metadata = std::fs::symlink_metadata(&socket).expect("the control socket exists");
    assert!(metadata.file_type().is_socket(), "{socket} is a socket");
    assert_eq!(
        metadata.permissions().mode() & 0o777,
        0o600,
        "{socket} is root-only"
    );

    let bin = binary();
    let output = topology.r().exec_output(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin.to_str().expect("a UTF-8 binary path"),
            "stats",
            "--control-socket",
            &socket,
        ],
        CLI_TIMEOUT,
    );
    let (stdout, stderr) = texts(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("permission denied") && stderr.contains("root") && stderr.contains(&socket),
        "the refusal says it needs root:\n{stderr}"
    );
    reflector.stop_cleanly();
}

/// Without a daemon, the subcommands say so, naming the socket; a control socket path the
/// daemon cannot use stops it at start, naming the path.
#[test]
fn no_daemon_is_a_clear_error() {
    let topology = topology();
    let dir = TempDir::new("ctl");
    let socket = dir.join("none.sock").to_string_lossy().into_owned();
    for args in [
        &["stats", "--control-socket", &socket][..],
        &["map", "list", "--control-socket", &socket][..],
    ] {
        let output = cli(&topology, args);
        let (_, stderr) = texts(&output);
        assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
        assert!(
            stderr.contains("no reflector daemon is running") && stderr.contains(&socket),
            "{args:?}: the error names the socket:\n{stderr}"
        );
    }

    let file = dir.join("not-a-socket");
    std::fs::write(&file, "x").expect("write a plain file");
    let file = file.to_string_lossy().into_owned();
    let output = run_to_exit(topology.r(), &daemon_args(&topology, "splice", &file));
    let (_, stderr) = texts(&output);
    assert!(!output.status.success(), "it must not start:\n{stderr}");
    assert!(
        stderr.contains(&format!("control socket {file}")) && stderr.contains("not a socket"),
        "the error names the path:\n{stderr}"
    );
    assert!(!stderr.contains("ready"), "it must not start:\n{stderr}");
}
