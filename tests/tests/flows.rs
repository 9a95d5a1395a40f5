//! A full kernel flow table (issue 11): twice `--flow-table-size` distinct flows. Every
//! reply reaches the client that sent the request, the flows the table forgot are counted
//! (`reflector stats`, `reflector_kernel_flows_evicted_total`), and a late reply of a
//! forgotten flow reaches no client: it is passed to R's stack and counted as `no_flow`.
//!
//! The test plays the service itself (a UDP socket on X:P), so it knows which flow each
//! datagram belongs to and can send a reply long after the request.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use reflector_tests::command::output_within;
use reflector_tests::daemon::binary;
use reflector_tests::wait::poll_until;
use reflector_tests::{Family, Mode, Reflector, TempDir, Topology, in_netns};
use serde_json::Value;

/// `L` and `P`.
const MAP: (u16, u16) = (10_053, 5_353);
/// `--flow-table-size`.
const TABLE: usize = 1_024;
/// Distinct flows driven through it.
const FLOWS: usize = 2 * TABLE;
/// Client `i` sends from port `FIRST_PORT + i`: distinct ports make distinct flows.
const FIRST_PORT: u16 = 41_000;
/// How long a datagram may take.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the counters may take to show the late replies.
const COUNT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `reflector stats` may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's counters, from `reflector stats --json`.
fn stats(socket: &str) -> Value {
    let output = output_within(
        Command::new(binary()).args(["stats", "--json", "--control-socket", socket]),
        CLI_TIMEOUT,
    );
    assert!(
        output.status.success(),
        "reflector stats: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("reflector stats --json prints JSON")
}

fn kernel_count(stats: &Value, field: &str) -> u64 {
    stats
        .pointer(&format!("/kernel/{field}"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no kernel.{field} in {stats}"))
}

fn passed(stats: &Value, reason: &str) -> u64 {
    stats
        .pointer("/kernel/passed")
        .and_then(Value::as_array)
        .and_then(|passed| {
            passed
                .iter()
                .find(|count| count["reason"] == reason)
                .and_then(|count| count["packets"].as_u64())
        })
        .unwrap_or(0)
}

fn udp(x: &reflector_tests::Netns, addr: IpAddr, port: u16) -> UdpSocket {
    let socket = in_netns(x, || UdpSocket::bind(SocketAddr::new(addr, port)))
        .unwrap_or_else(|e| panic!("UDP bind to {addr}:{port} in X: {e}"));
    socket
        .set_read_timeout(Some(RECV_TIMEOUT))
        .expect("set a receive timeout");
    socket
}

fn received(socket: &UdpSocket, what: &str) -> (String, SocketAddr) {
    let mut buffer = [0_u8; 256];
    let (len, from) = socket
        .recv_from(&mut buffer)
        .unwrap_or_else(|e| panic!("{what}: nothing received: {e}"));
    (String::from_utf8_lossy(&buffer[..len]).into_owned(), from)
}

/// [`FLOWS`] request/reply exchanges through `to`, each from its own client port, with
/// the test as the service on `service`: every request reaches the service from R at the
/// client's port, every reply its own client. Returns every client.
fn drive_flows(
    x: &reflector_tests::Netns,
    x_addr: IpAddr,
    to: SocketAddr,
    service: &UdpSocket,
) -> Vec<UdpSocket> {
    let r_addr = to.ip();
    let mut kept = Vec::new();
    for i in 0..FLOWS {
        let port = FIRST_PORT + u16::try_from(i).expect("fewer flows than ports");
        let client = udp(x, x_addr, port);
        client
            .send_to(format!("flow {i}").as_bytes(), to)
            .unwrap_or_else(|e| panic!("flow {i}: send: {e}"));
        let (request, from) = received(service, &format!("flow {i}, at the service"));
        assert_eq!(
            (request.as_str(), from),
            (format!("flow {i}").as_str(), SocketAddr::new(r_addr, port)),
            "flow {i}: the service gets the request from R at the client's port"
        );
        service
            .send_to(format!("reply {i}").as_bytes(), from)
            .unwrap_or_else(|e| panic!("flow {i}: reply: {e}"));
        let (reply, source) = received(&client, &format!("flow {i}, at the client"));
        assert_eq!(
            (reply.as_str(), source),
            (format!("reply {i}").as_str(), to),
            "flow {i}: its reply, from R:L, reaches its own client"
        );
        kept.push(client);
    }

    kept
}

fn full_table(mode: Mode) {
    let topology = Topology::for_mode(mode);
    let dir = TempDir::new("flows");
    let socket = dir.join("control.sock").to_string_lossy().into_owned();
    let table = TABLE.to_string();
    let _reflector = Reflector::start_with_args(
        topology.r(),
        &[
            "--map",
            &format!("{}:{}/udp", MAP.0, MAP.1),
            "--iface",
            topology.r_iface(),
            "--mode",
            mode.as_arg(),
            "--flow-table-size",
            &table,
            // A full flow table is what this test fills: every map keeps it.
            "--flow-table",
            "always",
            "--control-socket",
            &socket,
            "--metrics",
            "127.0.0.1:9477",
        ],
    );
    let x = topology.x();
    let x_addr = topology.x_addr(Family::V4);
    let r_addr = topology.r_addr(Family::V4);
    let to = SocketAddr::new(r_addr, MAP.0);
    let service = udp(x, x_addr, MAP.1);
    let kept = drive_flows(x, x_addr, to, &service);

    let before = stats(&socket);
    let created = kernel_count(&before, "flows_created");
    let active = kernel_count(&before, "flows_active");
    let evicted = kernel_count(&before, "flows_evicted");
    assert!(
        created == FLOWS as u64
            && active <= TABLE as u64
            && evicted == created - active
            && evicted >= (FLOWS - TABLE) as u64,
        "{FLOWS} flows through a table of {TABLE}: created {created}, active {active}, \
         evicted {evicted}"
    );

    // A late reply to every flow. The table holds at most TABLE of them, so at least
    // FLOWS - TABLE were forgotten: passed to R, never reflected. Which ones is the kernel
    // LRU's choice, not strictly the oldest (a flow its reply referenced gets a second
    // chance), so the test does not guess.
    for (i, client) in kept.iter().enumerate() {
        let port = client.local_addr().expect("bound").port();
        service
            .send_to(
                format!("late {i}").as_bytes(),
                SocketAddr::new(r_addr, port),
            )
            .unwrap_or_else(|e| panic!("late reply {i}: {e}"));
    }
    // A table that is full forgets approximately the least recently used (the kernel's LRU
    // works per CPU list): each late reply either finds its flow still there and reaches
    // its own client, or is passed to R and counted as no_flow. Never another client.
    let no_flow_before = passed(&before, "no_flow");
    for client in &kept {
        client.set_nonblocking(true).expect("non-blocking");
    }
    let mut delivered = 0;
    let mut after = before.clone();
    let settled = poll_until(COUNT_TIMEOUT, || {
        for (i, client) in kept.iter().enumerate() {
            let mut buffer = [0_u8; 256];
            match client.recv_from(&mut buffer) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok((len, from)) => {
                    assert_eq!(
                        (String::from_utf8_lossy(&buffer[..len]).as_ref(), from),
                        (format!("late {i}").as_str(), to),
                        "client {i} received another flow's reply"
                    );
                    delivered += 1;
                }
                Err(e) => panic!("client {i}: {e}"),
            }
        }
        after = stats(&socket);
        passed(&after, "no_flow") - no_flow_before + delivered >= FLOWS as u64
    });
    let not_reflected = passed(&after, "no_flow") - no_flow_before;
    assert!(
        settled
            && not_reflected + delivered == FLOWS as u64
            && delivered <= active
            && not_reflected >= (FLOWS - TABLE) as u64,
        "{FLOWS} late replies: {delivered} reached their own clients (flow still known; \
         {active} flows active), {not_reflected} counted as no_flow; every one must be one or \
         the other, no more delivered than the table held, and at least {} forgotten",
        FLOWS - TABLE
    );

    let metrics = topology
        .r()
        .exec(&["curl", "-s", "http://127.0.0.1:9477/metrics"]);
    let evicted_after = kernel_count(&after, "flows_evicted");
    assert!(
        metrics.lines().any(|line| {
            line.strip_prefix("reflector_kernel_flows_evicted_total ")
                .and_then(|value| value.trim().parse::<u64>().ok())
                .is_some_and(|value| value >= evicted_after)
        }),
        "the metric shows the evictions ({evicted_after}):\n{metrics}"
    );
}

#[test]
fn full_flow_table_tc() {
    full_table(Mode::Tc);
}

#[test]
fn full_flow_table_xdp() {
    full_table(Mode::Xdp);
}
