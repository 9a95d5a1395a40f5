//! `reflector probe` end to end, through a daemon in every mode (xdp, xdp-skb, tc, splice).
//!
//! Namespace X runs the services (sshd, nginx, unbound, a service that answers garbage) and
//! the probe; two reflector hosts R and R2, each joined to X by a veth pair of its own, run
//! the daemon with the service maps and the self-test map 19999:19999. Each case checks
//! the exact exit code and line (with `*` where the line carries a round trip or the
//! installed OpenSSH's version): the service up (sshd banner, nginx `--http /`, unbound
//! over UDP with a DNS query, IPv4 and IPv6, connect-only), stopped, answering garbage,
//! filtered by an nftables drop rule; one of two reflectors down (the quorum keeps OK and
//! names the failed one); the reflector stopped; the reflector host unreachable. The
//! `--prometheus` file passes `promtool check metrics`; `--json` carries the legs and one
//! source port per probe.
//!
//! Failure cases use `--timeout 1s`, so a run stays short; every line is also printed,
//! tagged with the mode, for the record.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use reflector_tests::daemon::run_to_exit;
use reflector_tests::firewall::{drop_incoming_tcp, dropped_packets};
use reflector_tests::servers::{Nginx, Session, session_service};
use reflector_tests::sshd::Sshd;
use reflector_tests::unbound::Unbound;
use reflector_tests::{Family, Mode, Reflector, TempDir, Topology, require_tool};

/// `L` and `P` of the SSH service.
const SSH: (u16, u16) = (10_022, 22);
/// `L` and `P` of the HTTP service.
const HTTP: (u16, u16) = (10_080, 80);
/// `L` and `P` of the DNS service (UDP).
const DNS: (u16, u16) = (10_053, 53);
/// The self-test map's port, `L0` and `Q` both (the documented convention).
const SELF_TEST: u16 = 19_999;

/// The name unbound answers for, and its address (a documentation address).
const DNS_NAME: &str = "reflected.test.";
const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);

/// The `--timeout` of the cases that wait for something that never comes.
const SHORT: &str = "1s";
/// Most a 1-second probe may take from start to exit (the process starting included), on
/// a busy shared machine.
const SHORT_BOUND: Duration = Duration::from_millis(2500);

fn maps() -> Vec<String> {
    vec![
        format!("{}:{}/tcp", SSH.0, SSH.1),
        format!("{}:{}/tcp", HTTP.0, HTTP.1),
        format!("{}:{}/udp", DNS.0, DNS.1),
        format!("{SELF_TEST}:{SELF_TEST}/tcp"),
    ]
}

/// `R:L` as `--via` takes it (`[R]:L` for IPv6).
fn via(r: IpAddr, listen: u16) -> String {
    SocketAddr::new(r, listen).to_string()
}

/// A DNS query (id 0x1234, recursion desired) for `DNS_NAME` A IN, as hex.
fn dns_query_hex() -> String {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in DNS_NAME.trim_end_matches('.').split('.') {
        query.push(u8::try_from(label.len()).expect("a short label"));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    hex(&query)
}

/// `bytes` as hex digits.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            let Some(rest) = text.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len())
                .filter(|&i| rest.is_char_boundary(i))
                .any(|i| glob(tail, &rest[i..]))
        }
    }
}

/// Runs `reflector probe ARGS` in X and returns its exit code, stdout and how long it took.
fn probe(topology: &Topology, args: &[&str]) -> (i32, String, Duration) {
    let mut full = vec!["probe"];
    full.extend(args);
    let start = Instant::now();
    let output = run_to_exit(topology.x(), &full);
    let took = start.elapsed();
    let code = output
        .status
        .code()
        .unwrap_or_else(|| panic!("`reflector probe` was killed ({})", output.status));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.stderr.is_empty() || code == 3,
        "`reflector probe {}` wrote to stderr:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    (code, stdout, took)
}

/// Runs the probe and asserts its exit code and its one line (`*` matches anything);
/// prints the line, tagged with `mode`. Returns how long it took.
fn assert_probe(topology: &Topology, mode: Mode, args: &[&str], code: i32, line: &str) -> Duration {
    assert_probe_one_of(topology, mode, args, &[(code, line)])
}

/// [`assert_probe`] for a case with more than one right outcome (exit code and line).
fn assert_probe_one_of(
    topology: &Topology,
    mode: Mode,
    args: &[&str],
    outcomes: &[(i32, &str)],
) -> Duration {
    let (got, stdout, took) = probe(topology, args);
    let line = stdout.trim_end();
    eprintln!("[{}] exit {got} ({took:.1?}): {line}", mode.as_arg());
    let wanted: Vec<String> = outcomes
        .iter()
        .map(|(code, line)| format!("exit {code}: {line}"))
        .collect();
    assert!(
        stdout.ends_with('\n')
            && stdout.lines().count() == 1
            && outcomes
                .iter()
                .any(|(code, pattern)| got == *code && glob(pattern, line)),
        "`reflector probe {}` in {} mode: want one line, one of\n  {}\ngot exit {got} and\n  {line}",
        args.join(" "),
        mode.as_arg(),
        wanted.join("\n  "),
    );
    took
}

/// Every case in one daemon `mode`, in order (each builds on the state the last left).
fn probe_through(mode: Mode) {
    for (tool, package) in [
        ("sshd", "openssh-server"),
        ("ssh-keygen", "openssh-client"),
        ("nginx", "nginx"),
        ("unbound", "unbound"),
        ("promtool", "prometheus"),
    ] {
        require_tool(tool, package);
    }
    let topology = Topology::for_mode(mode);
    let second = topology.add_reflector_host(mode);
    let sshd = Sshd::start(topology.x(), SSH.1);
    let _nginx = Nginx::start(topology.x(), HTTP.1, &[("index.html", b"hello\n")]);
    let unbound = Unbound::start(
        topology.x(),
        DNS.1,
        "test.",
        &[(DNS_NAME, IpAddr::V4(DNS_ADDR))],
    );
    let maps = maps();
    let maps: Vec<&str> = maps.iter().map(String::as_str).collect();
    let reflector = Reflector::start(topology.r(), topology.r_iface(), mode, &maps);
    let reflector2 = Reflector::start(second.r(), second.r_iface(), mode, &maps);

    let r = via(topology.r_addr(Family::V4), SSH.0);
    let r6 = via(topology.r_addr(Family::V6), SSH.0);
    let r2 = via(second.r_addr(Family::V4), SSH.0);
    let self_test = SELF_TEST.to_string();
    let ssh = |vias: &[&str], extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = Vec::new();
        for v in vias {
            args.extend(["--via".to_owned(), (*v).to_owned()]);
        }
        for arg in [
            "--service",
            "22",
            "--name",
            "ssh",
            "--self-test",
            &self_test,
            "--expect-banner",
            "SSH-",
        ]
        .iter()
        .chain(extra)
        {
            args.push((*arg).to_owned());
        }
        args
    };
    let run = |args: &[String], code: i32, line: &str| -> Duration {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_probe(&topology, mode, &args, code, line)
    };

    // Up: sshd through both reflectors, three probes each; over IPv6; nginx; unbound.
    run(
        &ssh(&[&r, &r2], &["--count", "3"]),
        0,
        &format!("OK ssh via {r},{r2}: SSH-2.0-OpenSSH_* in */*/* ms (min/median/max of 6)"),
    );
    run(
        &ssh(&[&r6], &[]),
        0,
        &format!("OK ssh via {r6}: SSH-2.0-OpenSSH_* in * ms"),
    );
    let web = via(topology.r_addr(Family::V4), HTTP.0);
    let http = |path: &str| -> Vec<String> {
        [
            "--via",
            &web,
            "--service",
            "80",
            "--name",
            "web",
            "--self-test",
            &self_test,
        ]
        .iter()
        .chain(&["--http", path, "--host", "node.example"])
        .map(|s| (*s).to_owned())
        .collect()
    };
    run(
        &http("/"),
        0,
        &format!("OK web via {web}: HTTP 200 OK in * ms"),
    );
    run(
        &http("/missing"),
        2,
        &format!("CRITICAL web: answered HTTP 404 Not Found (self-test via {web} passed)"),
    );
    let dns_via = via(topology.r_addr(Family::V4), DNS.0);
    let query = dns_query_hex();
    let answer = hex(&DNS_ADDR.octets());
    let dns: Vec<String> = [
        "--via",
        &dns_via,
        "--service",
        "53",
        "--name",
        "dns",
        "--self-test",
        &self_test,
        "--udp",
        "--send-hex",
        &query,
        "--expect-hex",
        &answer,
        "--timeout",
        SHORT,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    run(
        &dns,
        0,
        &format!("OK dns via {dns_via}: *-byte reply in * ms"),
    );
    let v6_dns_via = via(topology.r_addr(Family::V6), DNS.0);
    let v6_dns: Vec<String> = dns
        .iter()
        .map(|arg| {
            if *arg == dns_via {
                v6_dns_via.clone()
            } else {
                arg.clone()
            }
        })
        .collect();
    run(
        &v6_dns,
        0,
        &format!("OK dns via {v6_dns_via}: *-byte reply in * ms"),
    );
    let connect_only: Vec<String> = ["--via", &r, "--service", "22", "--self-test", &self_test]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    run(
        &connect_only,
        0,
        &format!("OK tcp/22 via {r}: connected in * ms"),
    );

    // Probes side by side on one node take turns at the self-test port; all pass.
    let side_by_side = ssh(&[&r, &r2], &[]);
    let side_by_side: Vec<&str> = side_by_side.iter().map(String::as_str).collect();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| probe(&topology, &side_by_side)))
            .collect();
        for run in runs {
            let (code, stdout, _) = run.join().expect("a probe thread");
            assert!(
                code == 0 && stdout.starts_with(&format!("OK ssh via {r},{r2}: SSH-2.0-")),
                "probes side by side: exit {code}: {stdout}"
            );
        }
    });

    // --json: both legs fine, every probe from a source port of its own.
    let json_args = ssh(&[&r, &r2], &["--count", "3", "--json"]);
    let json_args: Vec<&str> = json_args.iter().map(String::as_str).collect();
    let (code, json, _) = probe(&topology, &json_args);
    let report: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{json}"));
    assert_eq!((code, report["status"].as_str()), (0, Some("OK")), "{json}");
    for reflector in report["reflectors"].as_array().expect("reflectors") {
        assert_eq!(reflector["failed_leg"], "none", "{json}");
        assert_eq!(reflector["self_test"]["passed"], true, "{json}");
        let mut ports: Vec<u64> = reflector["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .map(|p| p["source_port"].as_u64().expect("a source port"))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 3, "three probes, three source ports: {json}");
    }

    // One of two reflectors down: the quorum keeps OK and names it; its metrics say so.
    reflector2.stop_cleanly();
    let dir = TempDir::new("prom");
    let prom = dir.join("ssh.prom");
    let prom_arg = prom.to_string_lossy().into_owned();
    run(
        &ssh(&[&r, &r2], &["--prometheus", &prom_arg, "--timeout", SHORT]),
        0,
        &format!(
            "OK ssh via {r}: SSH-2.0-OpenSSH_* in * ms; {r2} failed: self-test connection refused"
        ),
    );
    let metrics = fs::read_to_string(&prom).expect("the --prometheus file");
    let promtool = topology.x().exec_output(
        &[
            "sh",
            "-c",
            &format!("promtool check metrics < '{prom_arg}'"),
        ],
        Duration::from_secs(30),
    );
    assert!(
        promtool.status.success(),
        "promtool check metrics refused:\n{}{}\n--- {prom_arg} ---\n{metrics}",
        String::from_utf8_lossy(&promtool.stdout),
        String::from_utf8_lossy(&promtool.stderr)
    );
    for series in [
        "reflector_probe_success{service=\"ssh\",port=\"22\"} 1".to_owned(),
        format!(
            "reflector_probe_failed_leg{{service=\"ssh\",port=\"22\",reflector=\"{r2}\",leg=\"reflector\"}} 1"
        ),
        format!(
            "reflector_probe_failed_leg{{service=\"ssh\",port=\"22\",reflector=\"{r}\",leg=\"none\"}} 1"
        ),
        format!("reflector_probe_reflector_up{{service=\"ssh\",port=\"22\",reflector=\"{r2}\"}} 0"),
        format!(
            "reflector_probe_round_trip_seconds{{service=\"ssh\",port=\"22\",reflector=\"{r}\",stat=\"median\"}} "
        ),
    ] {
        assert!(metrics.contains(&series), "no {series:?} in\n{metrics}");
    }
    run(
        &ssh(&[&r, &r2], &["--quorum", "2", "--timeout", SHORT]),
        1,
        &format!(
            "WARNING ssh: not judged, 1 of 2 reflectors work (--quorum 2): {r2} failed: self-test connection refused"
        ),
    );

    // The service stopped. On the kernel path X's own reset comes back; in splice mode the
    // reflector accepts first, then resets the client when it cannot connect back: a
    // connect-only check passes if it is done before the reset arrives, and sees the reset
    // otherwise (it is inexact there, as the help says).
    drop(sshd);
    let refused = format!(
        "CRITICAL tcp/22: connection refused by this node's port 22 (self-test via {r} passed)"
    );
    let reset = format!(
        "CRITICAL tcp/22: connection reset by this node's port 22 (self-test via {r} passed)"
    );
    let connected = format!("OK tcp/22 via {r}: connected in * ms");
    let (stopped, connect_only_outcomes) = if mode == Mode::Splice {
        (
            "connection reset",
            vec![(0, connected.as_str()), (2, reset.as_str())],
        )
    } else {
        ("connection refused", vec![(2, refused.as_str())])
    };
    run(
        &ssh(&[&r], &["--timeout", SHORT]),
        2,
        &format!("CRITICAL ssh: {stopped} by this node's port 22 (self-test via {r} passed)"),
    );
    let args: Vec<&str> = connect_only.iter().map(String::as_str).collect();
    assert_probe_one_of(&topology, mode, &args, &connect_only_outcomes);
    drop(unbound);
    run(
        &dns,
        2,
        &format!("CRITICAL dns: no answer (--timeout 1s) (self-test via {dns_via} passed)"),
    );

    // Something else on the port, answering garbage.
    let _garbage = session_service(topology.x(), Session::Garbage, Family::V4, SSH.1);
    run(
        &ssh(&[&r], &["--timeout", SHORT]),
        2,
        &format!(
            "CRITICAL ssh: answered \"garbage\" instead of \"SSH-\" (self-test via {r} passed)"
        ),
    );

    let exchange: Vec<String> = [
        "--via",
        &r,
        "--service",
        "22",
        "--self-test",
        &self_test,
        "--send",
        r"ping\n",
        "--expect",
        "garbage",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    run(&exchange, 0, &format!("OK tcp/22 via {r}: garbage in * ms"));

    // Filtered: X drops what arrives for its port 22. The kernel path never completes the
    // handshake; in splice mode the reflector's connect back hangs, and with it the answer.
    drop_incoming_tcp(
        topology.x(),
        SocketAddr::new(topology.x_addr(Family::V4), SSH.1),
    );
    let silence = if mode == Mode::Splice {
        "no answer"
    } else {
        "connect timed out"
    };
    run(
        &ssh(&[&r], &["--timeout", SHORT]),
        2,
        &format!("CRITICAL ssh: {silence} (--timeout 1s) (self-test via {r} passed)"),
    );
    assert!(
        dropped_packets(topology.x()) > 0,
        "the drop rule dropped nothing"
    );

    // The reflector stopped: its self-test is refused, so the service is not judged.
    reflector.stop_cleanly();
    run(
        &ssh(&[&r], &["--timeout", SHORT]),
        1,
        &format!(
            "WARNING ssh: not judged, the reflector leg failed: {r} failed: self-test connection refused"
        ),
    );

    // For pass/fail callers (Kubernetes), a reflector outage need not fail the check.
    run(
        &ssh(&[&r], &["--timeout", SHORT, "--pass-on-warning"]),
        0,
        &format!(
            "WARNING ssh: not judged, the reflector leg failed: {r} failed: self-test connection refused"
        ),
    );

    // The reflector host unreachable (its link down): nothing answers, and the probe still
    // ends within its --timeout.
    topology
        .r()
        .ip(&["link", "set", topology.r_iface(), "down"]);
    let took = run(
        &ssh(&[&r], &["--timeout", SHORT]),
        1,
        &format!(
            "WARNING ssh: not judged, the reflector leg failed: {r} failed: self-test connect timed out (--timeout 1s)"
        ),
    );
    assert!(took < SHORT_BOUND, "a 1s probe took {took:?}");
}

#[test]
fn probe_xdp() {
    probe_through(Mode::Xdp);
}

#[test]
fn probe_xdp_skb() {
    probe_through(Mode::XdpSkb);
}

#[test]
fn probe_tc() {
    probe_through(Mode::Tc);
}

#[test]
fn probe_splice() {
    probe_through(Mode::Splice);
}

/// Bad arguments exit 3 (UNKNOWN) with one line naming the problem, before probing.
#[test]
fn bad_arguments_are_unknown() {
    let topology = Topology::new(reflector_tests::TopologyOptions::default());
    for (args, line) in [
        (
            &["--service", "22"][..],
            "UNKNOWN reflector probe: the following required arguments were not provided: --via <R[:L]>",
        ),
        (
            &["--via", "r1:0", "--service", "22"][..],
            "UNKNOWN reflector probe: invalid value 'r1:0' for '--via <R[:L]>': invalid reflector 'r1:0': write R or R:L, e.g. r1.example:10022, 192.0.2.1:10022 or [2001:db8::1]:10022",
        ),
        (
            &["--via", "r1", "--service", "53", "--udp"][..],
            "UNKNOWN reflector probe: --udp needs a datagram to send: add --send DATA or --send-hex HEX",
        ),
    ] {
        assert_probe(&topology, Mode::Tc, args, 3, line);
    }
    // The self-test port held by something else for the whole --timeout: the probe
    // cannot run, which is no verdict on anything.
    let _squatter = session_service(topology.x(), Session::Lines, Family::V4, SELF_TEST);
    assert_probe(
        &topology,
        Mode::Tc,
        &[
            "--via",
            "127.0.0.1:10022",
            "--service",
            "22",
            "--name",
            "ssh",
            "--self-test",
            "19999",
            "--timeout",
            "300ms",
        ],
        3,
        "UNKNOWN ssh: cannot listen on port 19999 for the self-test (IPv4): Address already in use (os error 98) [EADDRINUSE]",
    );
    let (code, help, _) = probe(&topology, &["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("inexact in splice mode"), "{help}");
}
