//! Active-active reflectors behind one address: a router sends a shared address (the VIP)
//! to two reflector hosts over an ECMP route hashing the 5-tuple, so the forward packets
//! of a check (`C:s -> VIP:10080`) and the service's replies (`C:80 -> VIP:s`), being
//! different 5-tuples, are hashed apart and often cross different reflectors. Each map's
//! target port belongs to one listen port, so neither reflector keeps flow state and
//! either one reflects either direction.
//!
//! ```text
//!   C (client, nginx, sshd) ── RT (router) ══ ECMP ══╦═ RA (reflector, VIP on lo)
//!                                                    ╚═ RB (reflector, VIP on lo)
//! ```
//!
//! One test per daemon mode, both families, in order:
//! - split paths: checks from chosen source ports, one at a time, with both reflectors'
//!   per-map counters read around each, until checks were seen whose forward packets one
//!   reflector reflected and whose replies only the other did, both ways round;
//! - ssh to C's port 22 through the VIP, and RA's own ssh to C's port 22 while 22 is a
//!   target port on RA: the replies reach RA's own socket, untouched by its reflector;
//! - failover: RB's daemon stopped, the route drops RB, checks keep passing through RA.
//!
//! And the control: with `--flow-table always` (how reflectors worked before), the first
//! check whose directions are hashed apart fails, which is what the stateless path fixes.
//!
//! Every name and subnet is unique to the test; everything is removed on drop.
#![expect(
    unused_crate_dependencies,
    reason = "an integration test links every dependency of the harness crate and uses a few"
)]

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reflector_tests::client::http_check;
use reflector_tests::control_socket::ControlSocket;
use reflector_tests::reflection::map_arg;
use reflector_tests::servers::Nginx;
use reflector_tests::sshd::Sshd;
use reflector_tests::wait::poll_until;
use reflector_tests::{
    Family, Link, Mode, Netns, Reflector, TopologyOptions, names, require_root, require_tool,
};

/// `L` and `P` of the HTTP checks.
const HTTP: (u16, u16) = (10_080, 80);
/// `L` and `P` of ssh: 22 is a target port on the reflector hosts, whose own ssh to port
/// 22 elsewhere must keep working.
const SSH: (u16, u16) = (10_022, 22);
/// Checks the split-path search makes at most per family. With layer-4 hashing each
/// split orientation has odds of 1 in 4 per check: missing one in 64 checks has odds of
/// about 1 in 10^8.
const MAX_SPLIT_CHECKS: u16 = 64;
/// The first source port of the split-path search (IPv4; IPv6 uses the next block).
const FIRST_SPLIT_PORT: u16 = 41_000;
/// Checks after failover, per family.
const FAILOVER_CHECKS: usize = 20;
/// The router's ECMP hash fields (`fib_multipath_hash_fields`): source and destination
/// address, protocol, source and destination port.
const HASH_FIELDS: u32 = 0x01 | 0x02 | 0x04 | 0x10 | 0x20;
/// The pass reason of a reply no flow entry vouches for.
const NO_FLOW: &str = "no_flow";
/// How long a reflector's counters may take to settle after a check (the closing
/// segments may still be in flight when the client has its reply).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long counters must stay unchanged to count as settled.
const SETTLE_QUIET: Duration = Duration::from_millis(100);

#[test]
fn ecmp_xdp() {
    active_active(Mode::Xdp);
}

#[test]
fn ecmp_tc() {
    active_active(Mode::Tc);
}

#[test]
fn ecmp_with_flow_table_fails_split_checks_xdp() {
    flow_table_forced(Mode::Xdp);
}

/// Packets one reflector reflected for the HTTP map, per direction, both families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    forward: u64,
    reverse: u64,
}

impl Counts {
    /// What was counted since `before`.
    fn since(self, before: Self) -> Self {
        Self {
            forward: self.forward - before.forward,
            reverse: self.reverse - before.reverse,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "forward {}, reverse {}", self.forward, self.reverse)
    }
}

/// A reflector host's daemon and its control socket.
struct Site {
    // Field order is drop order: the daemon stops before its socket's directory goes.
    daemon: Reflector,
    control: ControlSocket,
    name: &'static str,
}

impl Site {
    /// Starts the daemon in `ns` on `iface` in `mode` with both maps and `extra`
    /// arguments.
    fn start(name: &'static str, ns: &Netns, iface: &str, mode: Mode, extra: &[&str]) -> Self {
        let control = ControlSocket::new();
        let mut args = vec![
            "--map".to_owned(),
            map_arg(HTTP, "tcp"),
            "--map".to_owned(),
            map_arg(SSH, "tcp"),
            "--iface".to_owned(),
            iface.to_owned(),
            "--mode".to_owned(),
            mode.as_arg().to_owned(),
        ];
        args.extend(control.daemon_args());
        // Active-active needs maps without flow state, which are opt-in.
        if !extra.contains(&"--flow-table") {
            args.extend(["--flow-table".to_owned(), "auto".to_owned()]);
        }
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let daemon = Reflector::start_with_args(ns, &args);
        Self {
            daemon,
            control,
            name,
        }
    }

    /// Its HTTP map's counters now.
    fn counts(&self) -> Counts {
        self.counts_of(HTTP.0)
    }

    /// The counters of the map with listen port `listen` now.
    fn counts_of(&self, listen: u16) -> Counts {
        let stats = self.control.stats();
        Counts {
            forward: stats.map_packets(listen, "tcp", "forward"),
            reverse: stats.map_packets(listen, "tcp", "reverse"),
        }
    }
}

/// Both reflectors' HTTP counters once they stopped changing for [`SETTLE_QUIET`]
/// (within [`SETTLE_TIMEOUT`]; panics otherwise).
fn settled(sites: [&Site; 2]) -> [Counts; 2] {
    let read = || sites.map(Site::counts);
    let mut last = read();
    let mut since = std::time::Instant::now();
    let quiet = poll_until(SETTLE_TIMEOUT, || {
        let now = read();
        if now != last {
            last = now;
            since = std::time::Instant::now();
        }
        since.elapsed() >= SETTLE_QUIET
    });
    assert!(
        quiet,
        "the reflectors' counters kept changing for {SETTLE_TIMEOUT:?} with no check running: \
         {last:?}"
    );
    last
}

/// The namespaces, links and routes of one test, with nginx and sshd running in C.
struct Network {
    // Field order is drop order: the servers, then the links' programs, then the
    // namespaces (which take the veth pairs with them).
    sshd: Sshd,
    _nginx: Nginx,
    to_c: Link,
    to_a: Link,
    to_b: Link,
    c: Netns,
    rt: Netns,
    ra: Netns,
    rb: Netns,
    vip_id: u32,
}

impl Network {
    /// C, RT, RA and RB joined as the module's picture shows, for reflectors in `mode`:
    /// default routes via RT, the VIP on RA's and RB's loopback, and in RT forwarding and
    /// an ECMP route to the VIP through both, hashed on layer 4.
    fn new(mode: Mode) -> Self {
        require_root();
        for (tool, package) in [
            ("nginx", "nginx"),
            ("sshd", "openssh-server"),
            ("ssh", "openssh-client"),
            ("ssh-keygen", "openssh-client"),
        ] {
            require_tool(tool, package);
        }
        let id = names::next_id();
        let c = Netns::new(id, "C");
        let rt = Netns::new(id, "T");
        let ra = Netns::new(id, "A");
        let rb = Netns::new(id, "B");
        // The router's ends towards the reflectors receive their XDP_TX frames and hand
        // them the client's packets: made physical-like for the XDP modes.
        let towards_reflector = TopologyOptions {
            xdp_client_nic_like: mode.is_xdp(),
        };
        let to_c = Link::new(&rt, &c, TopologyOptions::default());
        let to_a = Link::new(&rt, &ra, towards_reflector);
        let to_b = Link::new(&rt, &rb, towards_reflector);
        // Layer-4 hashing of the headers: policy 3 with the fields source and destination
        // address, protocol, source and destination port. Not policy 1: for a forwarded
        // packet it takes the layer-4 hash the packet already carries, which across veth is
        // the sending socket's random txhash, redrawn by TCP at every retransmission
        // timeout; a router hashing the headers puts each 5-tuple on one path for good.
        let hash = format!("{HASH_FIELDS:#x}");
        rt.exec(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.fib_multipath_hash_policy=3",
            "net.ipv6.fib_multipath_hash_policy=3",
            &format!("net.ipv4.fib_multipath_hash_fields={hash}"),
            &format!("net.ipv6.fib_multipath_hash_fields={hash}"),
        ]);
        let network = Self {
            _nginx: Nginx::start(&c, HTTP.1, &[("index.html", b"hello\n")]),
            sshd: Sshd::start(&c, SSH.1),
            to_c,
            to_a,
            to_b,
            c,
            rt,
            ra,
            rb,
            // The VIP comes from a subnet no link has.
            vip_id: names::next_id(),
        };
        for family in [Family::V4, Family::V6] {
            let n = &network;
            for (ns, link) in [(&n.c, &n.to_c), (&n.ra, &n.to_a), (&n.rb, &n.to_b)] {
                default_route(ns, family, link.a_addr(family));
            }
            for ns in [&n.ra, &n.rb] {
                add_vip(ns, n.vip(family));
            }
            n.route_vip(family, &[&n.to_a, &n.to_b]);
        }
        network
    }

    /// The shared address of `family`.
    fn vip(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => IpAddr::V4(names::addr_v4(self.vip_id, 1)),
            Family::V6 => IpAddr::V6(names::addr_v6(self.vip_id, 1)),
        }
    }

    /// The VIP's HTTP listen port.
    fn http(&self, family: Family) -> SocketAddr {
        SocketAddr::new(self.vip(family), HTTP.0)
    }

    /// Routes the VIP of `family` in RT through every link of `links` (to its reflector
    /// end): an ECMP route with more than one, a plain one with one. Replaces what was
    /// there.
    fn route_vip(&self, family: Family, links: &[&Link]) {
        let (flag, len) = match family {
            Family::V4 => ("-4", 32),
            Family::V6 => ("-6", 128),
        };
        let prefix = format!("{}/{len}", self.vip(family));
        let mut args: Vec<String> = [flag, "route", "replace", &prefix]
            .map(str::to_owned)
            .to_vec();
        for link in links {
            args.extend(
                [
                    "nexthop",
                    "via",
                    &link.b_addr(family).to_string(),
                    "dev",
                    link.a_iface(),
                ]
                .map(str::to_owned),
            );
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.rt.ip(&args);
    }

    /// Starts a reflector in RA and one in RB, in `mode`, with both maps and `extra`
    /// arguments.
    fn start_reflectors(&self, mode: Mode, extra: &[&str]) -> (Site, Site) {
        (
            Site::start("RA", &self.ra, self.to_a.b_iface(), mode, extra),
            Site::start("RB", &self.rb, self.to_b.b_iface(), mode, extra),
        )
    }
}

/// The whole scenario in `mode`.
fn active_active(mode: Mode) {
    let net = Network::new(mode);
    let (a, b) = net.start_reflectors(mode, &[]);

    for (block, family) in [(0, Family::V4), (1, Family::V6)] {
        split_paths(
            &net.c,
            net.http(family),
            [&a, &b],
            FIRST_SPLIT_PORT + block * MAX_SPLIT_CHECKS,
        );
    }
    for family in [Family::V4, Family::V6] {
        ssh_through_vip(&net.c, &net.sshd, net.vip(family), [&a, &b]);
        own_ssh(
            &net.ra,
            &net.sshd,
            &a,
            net.to_a.b_addr(family),
            net.to_c.b_addr(family),
        );
    }

    // Failover: RB goes down, then the route drops it (as a routing daemon would once
    // RB's session or health check fails).
    let Site { daemon, name, .. } = b;
    let (status, log) = daemon.stop();
    assert!(
        status.success(),
        "{name}'s reflector must exit 0 on SIGTERM ({status}); its log:\n{log}"
    );
    for family in [Family::V4, Family::V6] {
        net.route_vip(family, &[&net.to_a]);
    }
    for family in [Family::V4, Family::V6] {
        failover(&net.c, net.http(family), &a);
    }
}

/// The control: with `--flow-table always` the same network fails the checks whose
/// directions are hashed apart, as reflectors did before maps without flow state: the
/// reflector that reflected the forward packets has the flow, the other one passes the
/// replies to its stack (`no_flow`), which resets them. Checks through one reflector pass.
fn flow_table_forced(mode: Mode) {
    let net = Network::new(mode);
    let (a, b) = net.start_reflectors(mode, &["--flow-table", "always"]);
    let sites = [&a, &b];
    let to = net.http(Family::V4);
    let mut passed = 0;
    for port in FIRST_SPLIT_PORT..FIRST_SPLIT_PORT + MAX_SPLIT_CHECKS {
        let before = settled(sites);
        let no_flow_before = sites.map(|site| site.control.stats().passed(NO_FLOW));
        let result = http_check(&net.c, Some(port), to);
        let after = settled(sites);
        let no_flow = [0, 1].map(|i| sites[i].control.stats().passed(NO_FLOW) - no_flow_before[i]);
        let delta = [after[0].since(before[0]), after[1].since(before[1])];
        let report = format!(
            "check to {to} from port {port}: {} {} (passed as {NO_FLOW}: {}); {} {} (passed \
             as {NO_FLOW}: {})",
            sites[0].name, delta[0], no_flow[0], sites[1].name, delta[1], no_flow[1]
        );
        match result {
            Ok(_) => {
                assert!(
                    matches!(classify(delta), Some(Paths::One(_))),
                    "with the flow table, a check passed through both reflectors: {report}"
                );
                passed += 1;
            }
            Err(e) => {
                // Forward packets reflected by one; its replies reflected by none, and
                // passed by the other.
                let split = (0..2).find(|&i| {
                    delta[i].forward > 0
                        && delta[i].reverse == 0
                        && delta[1 - i] == Counts::default()
                        && no_flow[1 - i] > 0
                });
                assert!(
                    split.is_some(),
                    "with the flow table, a check failed ({e}) but not because its \
                     directions were hashed apart: {report}"
                );
                eprintln!(
                    "with --flow-table always, {passed} checks through one reflector passed, \
                     then one split across both failed ({e}): {report}"
                );
                return;
            }
        }
    }
    panic!(
        "with --flow-table always, all {passed} checks to {to} passed: none was hashed \
         across both reflectors, so this network cannot show what maps without flow state fix"
    );
}

/// `ip route` in `ns`: the default route of `family` via `gateway`.
fn default_route(ns: &Netns, family: Family, gateway: IpAddr) {
    let gateway = gateway.to_string();
    match family {
        Family::V4 => ns.ip(&["route", "add", "default", "via", &gateway]),
        Family::V6 => ns.ip(&["-6", "route", "add", "default", "via", &gateway]),
    };
}

/// Puts `vip` on `ns`'s loopback: one of the host's addresses, as the daemon sees them,
/// that no neighbour resolves (the router routes it to the hosts' link addresses).
fn add_vip(ns: &Netns, vip: IpAddr) {
    let (flag, len) = if vip.is_ipv4() {
        ("-4", 32)
    } else {
        ("-6", 128)
    };
    ns.ip(&[flag, "addr", "add", &format!("{vip}/{len}"), "dev", "lo"]);
}

/// Which reflectors one check's packets crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Paths {
    /// Forward packets through reflector `0` only, replies through reflector `1` only.
    Split(usize, usize),
    /// Both directions through one reflector; nothing through the other.
    One(usize),
}

/// Checks from `c` to `to`, from source ports `first_port` on, one at a time, until both
/// split orientations were seen (RA forward and RB reverse, and the other way round);
/// panics when a check fails, when the packets of one direction crossed both reflectors,
/// or when no split came within [`MAX_SPLIT_CHECKS`]. Prints the counters of the splits.
fn split_paths(c: &Netns, to: SocketAddr, sites: [&Site; 2], first_port: u16) {
    let mut splits: [Option<String>; 2] = [None, None];
    let mut through_one = 0;
    let mut checks = 0;
    for port in first_port..first_port + MAX_SPLIT_CHECKS {
        let before = settled(sites);
        if let Err(e) = http_check(c, Some(port), to) {
            panic!(
                "check {} to {to} from port {port} failed: {e}\n{}",
                checks + 1,
                logs(&sites)
            );
        }
        checks += 1;
        let after = settled(sites);
        let delta = [after[0].since(before[0]), after[1].since(before[1])];
        let report = format!(
            "check to {to} from port {port}: {} {} (before {}, after {}); {} {} (before {}, \
             after {})",
            sites[0].name,
            delta[0],
            before[0],
            after[0],
            sites[1].name,
            delta[1],
            before[1],
            after[1]
        );
        match classify(delta) {
            Some(Paths::Split(forward, _)) => {
                splits[forward].get_or_insert(report);
            }
            Some(Paths::One(_)) => through_one += 1,
            None => panic!(
                "the packets of one direction of a check crossed both reflectors, or some \
                 were not reflected: {report}"
            ),
        }
        if splits.iter().all(Option::is_some) {
            break;
        }
    }
    eprintln!(
        "{to}: {checks} checks passed, {} split across the reflectors' paths, {through_one} \
         through one reflector",
        checks - through_one
    );
    for (forward, split) in splits.iter().enumerate() {
        let (f, r) = (sites[forward].name, sites[1 - forward].name);
        let Some(report) = split else {
            panic!(
                "in {checks} checks to {to}, none had its forward packets reflected by {f} \
                 and its replies by {r}: is the router's ECMP hash layer 4?"
            )
        };
        eprintln!("split, forward by {f}, reverse by {r}: {report}");
    }
}

/// Which reflectors a check's packets crossed, from both reflectors' counter deltas; `None`
/// when neither [`Paths`] fits.
fn classify(delta: [Counts; 2]) -> Option<Paths> {
    let forward_only = |c: Counts| c.forward > 0 && c.reverse == 0;
    let reverse_only = |c: Counts| c.forward == 0 && c.reverse > 0;
    let both = |c: Counts| c.forward > 0 && c.reverse > 0;
    let idle = Counts::default();
    match delta {
        [a, b] if forward_only(a) && reverse_only(b) => Some(Paths::Split(0, 1)),
        [a, b] if reverse_only(a) && forward_only(b) => Some(Paths::Split(1, 0)),
        [a, b] if both(a) && b == idle => Some(Paths::One(0)),
        [a, b] if a == idle && both(b) => Some(Paths::One(1)),
        _ => None,
    }
}

/// `ssh` from `c` to the VIP's listen port logs into C's own sshd, whichever reflectors
/// its two directions cross.
fn ssh_through_vip(c: &Netns, sshd: &Sshd, vip: IpAddr, sites: [&Site; 2]) {
    let before = sites.map(|site| site.counts_of(SSH.0));
    let output = sshd.login(c, SocketAddr::new(vip, SSH.0), "echo through-vip");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "through-vip",
        "ssh from C to {vip} port {} (reflected to C's sshd) failed: {output:?}\nsshd:\n{}\n{}",
        SSH.0,
        sshd.log(),
        logs(&sites)
    );
    let line = format!("Accepted publickey for root from {vip} port");
    assert!(
        sshd.wait_log(&line, Duration::from_secs(5)),
        "C's sshd did not log {line:?}:\n{}",
        sshd.log()
    );
    let reflected = sites.map(|site| site.counts_of(SSH.0));
    let (forward, reverse) = (0..2).fold((0, 0), |(f, r), i| {
        let d = reflected[i].since(before[i]);
        (f + d.forward, r + d.reverse)
    });
    assert!(
        forward > 0 && reverse > 0,
        "ssh through {vip} must be reflected both ways by the kernel: forward {forward}, \
         reverse {reverse}"
    );
}

/// RA's own ssh from `own` to C's sshd at `remote` (port 22, a target port on RA): the
/// replies from C:22 are for RA's own socket, which RA's reflector must see and leave to
/// the stack. Its SSH map counters do not move.
fn own_ssh(ra: &Netns, sshd: &Sshd, site: &Site, own: IpAddr, remote: IpAddr) {
    let before = site.counts_of(SSH.0);
    let output = sshd.login(ra, SocketAddr::new(remote, SSH.1), "echo own-connection");
    assert!(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).trim() == "own-connection",
        "{}'s own ssh to {remote} port {} failed while {} maps {}:{}: {output:?}\nsshd:\n{}\n\
         reflector:\n{}",
        site.name,
        SSH.1,
        site.name,
        SSH.0,
        SSH.1,
        sshd.log(),
        site.daemon.log()
    );
    let line = format!("Accepted publickey for root from {own} port");
    assert!(
        sshd.wait_log(&line, Duration::from_secs(5)),
        "C's sshd did not log {line:?}:\n{}",
        sshd.log()
    );
    let after = site.counts_of(SSH.0);
    assert_eq!(
        after.since(before),
        Counts::default(),
        "{}'s reflector reflected packets of its host's own ssh (before: {before}, after: \
         {after})",
        site.name
    );
}

/// [`FAILOVER_CHECKS`] checks from `c` to `to` (source ports the kernel picks) all pass,
/// through `site` alone, both ways.
fn failover(c: &Netns, to: SocketAddr, site: &Site) {
    let before = site.counts();
    for check in 1..=FAILOVER_CHECKS {
        if let Err(e) = http_check(c, None, to) {
            panic!(
                "check {check} of {FAILOVER_CHECKS} to {to} after failover to {} failed: {e}\n\
                 reflector:\n{}",
                site.name,
                site.daemon.log()
            );
        }
    }
    let after = settled_one(site);
    let delta = after.since(before);
    // Each check has at least two packets each way: SYN and request, SYN-ACK and reply.
    let least = 2 * FAILOVER_CHECKS as u64;
    assert!(
        delta.forward >= least && delta.reverse >= least,
        "{FAILOVER_CHECKS} checks to {to} after failover must all cross {} both ways: \
         {delta} (at least {least} each)",
        site.name
    );
    eprintln!(
        "{to}: after failover, {FAILOVER_CHECKS} checks passed through {} alone: {delta} \
         (before {before}, after {after})",
        site.name
    );
}

/// One reflector's HTTP counters once settled (see [`settled`]).
fn settled_one(site: &Site) -> Counts {
    settled([site, site])[0]
}

/// Both reflectors' logs, for failure messages.
fn logs(sites: &[&Site; 2]) -> String {
    sites
        .iter()
        .map(|site| format!("{}'s reflector:\n{}", site.name, site.daemon.log()))
        .collect::<Vec<_>>()
        .join("\n")
}
