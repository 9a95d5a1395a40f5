//! Real applications through the reflector, in every mode (xdp, xdp-skb, tc, splice,
//! auto): OpenSSH, unbound with dig, iperf3.
//!
//! As in `e2e.rs`, namespace R runs the daemon and namespace X runs both the client and
//! the server, joined by a veth pair: the client in X connects to `R:L` and lands on its
//! own server on `P`, which sees R as its peer. Where `e2e.rs` checks addresses and ports
//! with small probes, these tests check that whole protocols survive the trip: an SSH key
//! exchange, public key login and remote command; DNS over UDP and TCP with exact
//! answers; a second of bulk TCP each way and of paced UDP, with iperf3's own TCP control
//! connection beside the data. Every test checks both families where the application
//! makes that cheap, and that the server logged R's address as its client.
//!
//! A missing tool fails the test with the Debian package to install; nothing is skipped.
//! Every test builds its own topology, so ports only need to be unique per test.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reflector_tests::iperf::{self, IperfServer, Traffic};
use reflector_tests::reflection::map_arg;
use reflector_tests::sshd::Sshd;
use reflector_tests::unbound::{Unbound, dig};
use reflector_tests::{Family, Mode, Proto, Reflector, Topology, require_tool};

/// `L` and `P` of the SSH tests (TCP).
const SSH_MAP: (u16, u16) = (10_022, 22);
/// `L` and `P` of the DNS tests (UDP and TCP).
const DNS_MAP: (u16, u16) = (10_053, 53);
/// `L` and `P` of the iperf3 tests (TCP control and data, UDP data).
const IPERF_MAP: (u16, u16) = (15_201, 5201);

/// The static zone unbound serves, and the name it answers for (documentation addresses).
const DNS_ZONE: &str = "test.";
const DNS_NAME: &str = "reflected.test.";
const DNS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);
const DNS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x77);

/// Least a one-second TCP run must move: far below any working path, far above what a
/// broken one (a handshake, a few retransmissions) gets through.
const MIN_TCP_BYTES: u64 = 4 << 20;
/// UDP rate: enough datagrams to notice a path that drops them, little enough for a
/// loaded 2-CPU machine running the other tests beside this one.
const UDP_RATE: &str = "50M";
/// Most UDP loss tolerated: generous, as datagrams at 50 Mbit/s on a busy machine may
/// overflow a socket buffer; a broken path loses them all.
const MAX_UDP_LOSS_PERCENT: f64 = 50.0;

/// How long a server may take to log a client after the client is done.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// `ssh` in X logs in with a key to sshd in X through `R:L`, over IPv4 and IPv6, and runs
/// a command whose output names the test and the connection as sshd saw it
/// (`$SSH_CONNECTION`: R's address as the client, X's address and `P` as the server);
/// sshd logs the public key login from R's address.
fn ssh_through_reflector(mode: Mode) {
    require_tool("sshd", "openssh-server");
    require_tool("ssh", "openssh-client");
    require_tool("ssh-keygen", "openssh-client");
    let topology = Topology::for_mode(mode);
    let (listen, target) = SSH_MAP;
    let sshd = Sshd::start(topology.x(), target);
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg(SSH_MAP, "tcp")],
    );
    for family in [Family::V4, Family::V6] {
        let r = topology.r_addr(family);
        let to = SocketAddr::new(r, listen);
        let marker = format!(
            "reflected-{}-{}-{}",
            mode.as_arg(),
            family_name(family),
            topology.id()
        );
        let output = sshd.login(topology.x(), to, &format!("echo {marker} $SSH_CONNECTION"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "ssh via {to} failed ({}):\n{stdout}{}\n--- sshd ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            sshd.log()
        );
        let line = stdout.trim_end_matches('\n');
        let fields: Vec<&str> = line.split(' ').collect();
        let [echoed, client_ip, _client_port, server_ip, server_port] = fields[..] else {
            panic!("ssh via {to}: unexpected output {stdout:?}");
        };
        assert_eq!(
            (echoed, client_ip, server_ip, server_port),
            (
                marker.as_str(),
                r.to_string().as_str(),
                topology.x_addr(family).to_string().as_str(),
                target.to_string().as_str()
            ),
            "ssh via {to}: the command must run and sshd must see R as the client and its \
             own address and port as the server (output {stdout:?})"
        );
        let accepted = format!("Accepted publickey for root from {r} port ");
        assert!(
            sshd.wait_log(&accepted, LOG_TIMEOUT),
            "sshd did not log {accepted:?}; its log:\n{}",
            sshd.log()
        );
    }
}

#[test]
fn ssh_xdp() {
    ssh_through_reflector(Mode::Xdp);
}

#[test]
fn ssh_xdp_skb() {
    ssh_through_reflector(Mode::XdpSkb);
}

#[test]
fn ssh_tc() {
    ssh_through_reflector(Mode::Tc);
}

#[test]
fn ssh_splice() {
    ssh_through_reflector(Mode::Splice);
}

#[test]
fn ssh_auto() {
    ssh_through_reflector(Mode::Auto);
}

/// `dig` in X asks unbound in X through `R:L` for the A and the AAAA record of a local
/// name, over UDP and TCP, IPv4 and IPv6, and gets exactly those addresses; unbound logs
/// each query as coming from R.
fn dns_through_reflector(mode: Mode) {
    require_tool("unbound", "unbound");
    require_tool("unbound-checkconf", "unbound");
    require_tool("dig", "dnsutils");
    let topology = Topology::for_mode(mode);
    let (listen, target) = DNS_MAP;
    let unbound = Unbound::start(
        topology.x(),
        target,
        DNS_ZONE,
        &[
            (DNS_NAME, IpAddr::V4(DNS_V4)),
            (DNS_NAME, IpAddr::V6(DNS_V6)),
        ],
    );
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg(DNS_MAP, "tcp,udp")],
    );
    for family in [Family::V4, Family::V6] {
        let r = topology.r_addr(family);
        let to = SocketAddr::new(r, listen);
        for transport in [Proto::Udp, Proto::Tcp] {
            for (kind, answer) in [("A", IpAddr::V4(DNS_V4)), ("AAAA", IpAddr::V6(DNS_V6))] {
                assert_eq!(
                    dig(topology.x(), to, DNS_NAME, kind, transport),
                    format!("{answer}\n"),
                    "dig {kind} {DNS_NAME} over {transport} via {to}"
                );
                assert!(
                    unbound.wait_query(r, DNS_NAME, kind, LOG_TIMEOUT),
                    "unbound did not log a query for {DNS_NAME} {kind} from {r}; its log:\n{}",
                    unbound.log()
                );
            }
        }
    }
}

#[test]
fn dns_xdp() {
    dns_through_reflector(Mode::Xdp);
}

#[test]
fn dns_xdp_skb() {
    dns_through_reflector(Mode::XdpSkb);
}

#[test]
fn dns_tc() {
    dns_through_reflector(Mode::Tc);
}

#[test]
fn dns_splice() {
    dns_through_reflector(Mode::Splice);
}

#[test]
fn dns_auto() {
    dns_through_reflector(Mode::Auto);
}

/// iperf3 in X against iperf3 in X through `R:L`: a second of TCP upload over IPv4, of
/// TCP download (`--reverse`) over IPv6, and of UDP at [`UDP_RATE`] over each family.
/// Bytes must arrive in bulk, UDP loss stay below [`MAX_UDP_LOSS_PERCENT`], and the
/// server must log R's address as its client.
fn iperf3_through_reflector(mode: Mode) {
    require_tool("iperf3", "iperf3");
    let topology = Topology::for_mode(mode);
    let (listen, target) = IPERF_MAP;
    let _reflector = Reflector::start(
        topology.r(),
        topology.r_iface(),
        mode,
        &[&map_arg(IPERF_MAP, "tcp,udp")],
    );
    let runs = [
        (Family::V4, Traffic::Tcp),
        (Family::V6, Traffic::TcpReverse),
        (Family::V4, Traffic::Udp(UDP_RATE)),
        (Family::V6, Traffic::Udp(UDP_RATE)),
    ];
    for (family, traffic) in runs {
        let r = topology.r_addr(family);
        let to = SocketAddr::new(r, listen);
        let server = IperfServer::start(topology.x(), target);
        let report = iperf::client(topology.x(), to, traffic);
        let server_log = server.finish();
        let what = format!("iperf3 {traffic:?} via {to}");
        match (report.udp_packets, report.udp_lost_percent) {
            (Some(packets), Some(lost_percent)) => {
                assert!(
                    packets > 0 && report.received_bytes > 0,
                    "{what}: no datagram arrived: {}",
                    report.json
                );
                assert!(
                    lost_percent < MAX_UDP_LOSS_PERCENT,
                    "{what}: {lost_percent}% of {packets} datagrams lost: {}",
                    report.json
                );
            }
            _ => assert!(
                report.received_bytes > MIN_TCP_BYTES,
                "{what}: only {} bytes arrived (want more than {MIN_TCP_BYTES}): {}",
                report.received_bytes,
                report.json
            ),
        }
        let accepted = format!("Accepted connection from {r}, port ");
        assert!(
            server_log.contains(&accepted),
            "{what}: the server did not log {accepted:?}; its log:\n{server_log}"
        );
    }
}

#[test]
fn iperf3_xdp() {
    iperf3_through_reflector(Mode::Xdp);
}

#[test]
fn iperf3_xdp_skb() {
    iperf3_through_reflector(Mode::XdpSkb);
}

#[test]
fn iperf3_tc() {
    iperf3_through_reflector(Mode::Tc);
}

#[test]
fn iperf3_splice() {
    iperf3_through_reflector(Mode::Splice);
}

#[test]
fn iperf3_auto() {
    iperf3_through_reflector(Mode::Auto);
}
