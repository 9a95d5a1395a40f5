//! iperf3, server and client, in a namespace: bulk TCP (both directions) and paced UDP,
//! with the client's JSON report parsed.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::process::Process;
use crate::servers::LISTEN_TIMEOUT;

/// How long one client run may take, start to report: its 1 s of traffic, the control
/// connection on either side of it (the first IPv6 packet of a fresh topology waits for
/// neighbour discovery), and slack for a loaded machine.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the one-off server may take to exit after its client is done.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// `iperf3 --server --one-off` on one port (IPv4 and IPv6 on one socket): it serves one
/// client, then exits. A server per run, so no run meets the previous one still winding
/// down (iperf3 turns a second client away while busy).
#[derive(Debug)]
pub struct IperfServer {
    process: Process,
}

impl IperfServer {
    /// Starts it in `ns` on TCP `port` (its control connection; UDP tests use the same
    /// port) and waits until it listens.
    #[must_use]
    pub fn start(ns: &Netns, port: u16) -> Self {
        // --forceflush: its log goes to a pipe, where it would otherwise sit in a buffer.
        let process = ns.spawn(&[
            "iperf3",
            "--server",
            "--one-off",
            "--forceflush",
            "--port",
            &port.to_string(),
        ]);
        ns.wait_listening(false, port, LISTEN_TIMEOUT);
        Self { process }
    }

    /// Waits for it to exit after serving its client, and returns its log (which names the
    /// client's address: `Accepted connection from <addr>, port <port>`). Panics when it
    /// does not exit in time or exits with a failure.
    #[must_use]
    pub fn finish(mut self) -> String {
        let status = self.process.wait_exit(EXIT_TIMEOUT);
        let _ = self.process.wait_output_closed(EXIT_TIMEOUT);
        assert!(
            status.is_some_and(|s| s.success()),
            "`{}` did not exit 0 within {EXIT_TIMEOUT:?} of its client's end ({status:?}){}",
            self.process.what(),
            self.process.output_report()
        );
        self.process.stdout()
    }
}

/// What a client run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    /// TCP, client to server.
    Tcp,
    /// TCP, server to client (`--reverse`).
    TcpReverse,
    /// UDP at the given bit rate (`--bandwidth`, e.g. `50M`), client to server.
    Udp(&'static str),
}

/// The numbers of one client run, from its JSON report.
#[derive(Clone, Debug)]
pub struct IperfReport {
    /// Bytes the receiving side got (`end.sum_received.bytes`).
    pub received_bytes: u64,
    /// UDP only: datagrams sent (`end.sum.packets`).
    pub udp_packets: Option<u64>,
    /// UDP only: the share of them that the server did not get (`end.sum.lost_percent`).
    pub udp_lost_percent: Option<f64>,
    /// The whole report, for messages.
    pub json: Value,
}

/// Runs `iperf3 --client` in `ns` against `to` for one second of `traffic` and returns its
/// report. Panics (with the report) unless it exits 0 with a report that has no `error`.
#[must_use]
pub fn client(ns: &Netns, to: SocketAddr, traffic: Traffic) -> IperfReport {
    let host = to.ip().to_string();
    let port = to.port().to_string();
    let mut args = vec![
        "iperf3",
        "--client",
        &host,
        "--port",
        &port,
        "--time",
        "1",
        "--connect-timeout",
        "10000",
        "--json",
    ];
    match traffic {
        Traffic::Tcp => {}
        Traffic::TcpReverse => args.push("--reverse"),
        Traffic::Udp(rate) => args.extend(["--udp", "--bandwidth", rate]),
    }
    let output = ns.exec_output(&args, CLIENT_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let what = format!("`{}` ({traffic:?})", args.join(" "));
    let json: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON report ({e}; {}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success() && json.get("error").is_none(),
        "{what} failed ({}): {}",
        output.status,
        json.get("error").unwrap_or(&json)
    );
    let number = |pointer: &str| json.pointer(pointer).and_then(Value::as_u64);
    let received_bytes = number("/end/sum_received/bytes")
        .unwrap_or_else(|| panic!("{what}: no end.sum_received.bytes in {json}"));
    let (udp_packets, udp_lost_percent) = match traffic {
        Traffic::Udp(_) => (
            Some(
                number("/end/sum/packets")
                    .unwrap_or_else(|| panic!("{what}: no end.sum.packets in {json}")),
            ),
            Some(
                json.pointer("/end/sum/lost_percent")
                    .and_then(Value::as_f64)
                    .unwrap_or_else(|| panic!("{what}: no end.sum.lost_percent in {json}")),
            ),
        ),
        Traffic::Tcp | Traffic::TcpReverse => (None, None),
    };
    IperfReport {
        received_bytes,
        udp_packets,
        udp_lost_percent,
        json,
    }
}
