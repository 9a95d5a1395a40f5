//! Two namespaces joined by a veth pair: X (client and service) and R (reflector); more
//! reflector hosts can be joined to X, and [`Link`] joins any two namespaces (e.g. a router
//! and its neighbours).

use std::net::IpAddr;

use aya::Ebpf;
use aya::programs::{Xdp, XdpMode};

use crate::bench_object::{bench_object, programs};
use crate::daemon::Mode;
use crate::enter::EnteredNetns;
use crate::kind::Family;
use crate::names;
use crate::netns::Netns;

/// How to set up a [`Topology`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TopologyOptions {
    /// Make X's end of the veth behave like a physical NIC towards XDP: TX checksum offload
    /// off (an XDP program cannot see partial checksums) and `xdp_pass` attached (a veth
    /// end only receives its peer's `XDP_TX` frames when it runs an XDP program). Needed
    /// for the `xdp` and `xdp-skb` modes; TC mode must work without it.
    pub xdp_client_nic_like: bool,
}

/// Namespace X (the client, which is also the service) and namespace R (the reflector
/// host), joined by a veth pair with one IPv4 /24 and one IPv6 /64 unique to this
/// topology: X is host 1, R host 2.
///
/// Everything is removed on drop: the `xdp_pass` link first, then both namespaces (which
/// takes the veth pair with them).
#[derive(Debug)]
pub struct Topology {
    // Field order is drop order: the program goes before the namespaces.
    _xdp_pass: Option<Ebpf>,
    id: u32,
    x: Netns,
    r: Netns,
    x_iface: String,
    r_iface: String,
}

impl Topology {
    /// A topology for a daemon in `mode` (as root): X's NIC made physical-like for the XDP
    /// modes, left with its default offloads otherwise (checked: TC mode must cope with
    /// partial checksums and GSO).
    #[must_use]
    pub fn for_mode(mode: Mode) -> Self {
        crate::require_root();
        let topology = Self::new(TopologyOptions {
            xdp_client_nic_like: mode.is_xdp(),
        });
        if !mode.is_xdp() {
            let features = topology.x().exec(&["ethtool", "-k", topology.x_iface()]);
            assert!(
                features.lines().any(|l| l.trim() == "tx-checksumming: on"),
                "in {} mode X's TX checksum offload must stay on:\n{features}",
                mode.as_arg()
            );
        }
        topology
    }

    /// Builds it: namespaces, veth pair, addresses (IPv6 with `nodad`, usable at once),
    /// links up.
    #[must_use]
    pub fn new(options: TopologyOptions) -> Self {
        let id = names::next_id();
        let x = Netns::new(id, "X");
        let r = Netns::new(id, "R");
        let (x_iface, r_iface, xdp_pass) = link(&x, &r, id, options);
        Self {
            _xdp_pass: xdp_pass,
            id,
            x,
            r,
            x_iface,
            r_iface,
        }
    }

    /// One more reflector host, R2, joined to X by a veth pair of its own with subnets of
    /// its own (X is host 1, R2 host 2), set up for a daemon in `mode` as
    /// [`Topology::for_mode`] sets up R. Removed on drop.
    #[must_use]
    pub fn add_reflector_host(&self, mode: Mode) -> ReflectorHost {
        let id = names::next_id();
        let r = Netns::new(id, "R");
        let options = TopologyOptions {
            xdp_client_nic_like: mode.is_xdp(),
        };
        let (x_iface, r_iface, xdp_pass) = link(&self.x, &r, id, options);
        ReflectorHost {
            _xdp_pass: xdp_pass,
            id,
            r,
            x_iface,
            r_iface,
        }
    }

    /// The number that makes its names and subnets unique.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Namespace X: client and service.
    #[must_use]
    pub fn x(&self) -> &Netns {
        &self.x
    }

    /// Namespace R: the reflector host.
    #[must_use]
    pub fn r(&self) -> &Netns {
        &self.r
    }

    /// X's end of the veth pair.
    #[must_use]
    pub fn x_iface(&self) -> &str {
        &self.x_iface
    }

    /// R's end of the veth pair: where the reflector attaches.
    #[must_use]
    pub fn r_iface(&self) -> &str {
        &self.r_iface
    }

    /// X's address.
    #[must_use]
    pub fn x_addr(&self, family: Family) -> IpAddr {
        self.addr(family, 1)
    }

    /// R's address.
    #[must_use]
    pub fn r_addr(&self, family: Family) -> IpAddr {
        self.addr(family, 2)
    }

    /// Adds host `host` (not 1 or 2, which X and R have) of the topology's subnet of
    /// `family` to X's end of the veth, as a second client address, and returns it.
    #[expect(
        clippy::must_use_candidate,
        reason = "called as often for its effect as for the address"
    )]
    pub fn add_x_addr(&self, family: Family, host: u8) -> IpAddr {
        assert!(
            host > 2,
            "host {host} of the topology's subnet is taken (X is 1, R is 2)"
        );
        let addr = self.addr(family, host);
        match family {
            Family::V4 => self
                .x
                .ip(&["addr", "add", &format!("{addr}/24"), "dev", &self.x_iface]),
            Family::V6 => self.x.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                &self.x_iface,
                "nodad",
            ]),
        };
        addr
    }

    fn addr(&self, family: Family, host: u8) -> IpAddr {
        addr(self.id, family, host)
    }
}

/// A second reflector host joined to a [`Topology`]'s X ([`Topology::add_reflector_host`]).
///
/// Removed on drop: the `xdp_pass` link on X's end first, then the namespace (which takes
/// the veth pair with it).
#[derive(Debug)]
pub struct ReflectorHost {
    // Field order is drop order: the program goes before the namespace.
    _xdp_pass: Option<Ebpf>,
    id: u32,
    r: Netns,
    x_iface: String,
    r_iface: String,
}

impl ReflectorHost {
    /// Its namespace.
    #[must_use]
    pub fn r(&self) -> &Netns {
        &self.r
    }

    /// Its end of the veth pair: where its reflector attaches.
    #[must_use]
    pub fn r_iface(&self) -> &str {
        &self.r_iface
    }

    /// X's end of the veth pair to it.
    #[must_use]
    pub fn x_iface(&self) -> &str {
        &self.x_iface
    }

    /// Its address.
    #[must_use]
    pub fn r_addr(&self, family: Family) -> IpAddr {
        addr(self.id, family, 2)
    }

    /// X's address on the link to it.
    #[must_use]
    pub fn x_addr(&self, family: Family) -> IpAddr {
        addr(self.id, family, 1)
    }
}

/// Two namespaces joined by a veth pair with the IPv4 /24 and IPv6 /64 of an id of its own
/// (`a` host 1, `b` host 2): the building block for topologies beyond X and R, such as a
/// router between clients and reflector hosts.
///
/// Removed on drop: the `xdp_pass` link on `a`'s end. The veth pair goes with either
/// namespace, so declare the link after both (it drops first).
#[derive(Debug)]
pub struct Link {
    _xdp_pass: Option<Ebpf>,
    id: u32,
    a_iface: String,
    b_iface: String,
}

impl Link {
    /// Joins `a` and `b`, both ends up; with [`TopologyOptions::xdp_client_nic_like`],
    /// `a`'s end is made physical-like towards an XDP program on `b`'s end.
    #[must_use]
    pub fn new(a: &Netns, b: &Netns, options: TopologyOptions) -> Self {
        let id = names::next_id();
        let (a_iface, b_iface, xdp_pass) = link(a, b, id, options);
        Self {
            _xdp_pass: xdp_pass,
            id,
            a_iface,
            b_iface,
        }
    }

    /// `a`'s end of the veth pair.
    #[must_use]
    pub fn a_iface(&self) -> &str {
        &self.a_iface
    }

    /// `b`'s end of the veth pair.
    #[must_use]
    pub fn b_iface(&self) -> &str {
        &self.b_iface
    }

    /// `a`'s address on the link.
    #[must_use]
    pub fn a_addr(&self, family: Family) -> IpAddr {
        addr(self.id, family, 1)
    }

    /// `b`'s address on the link.
    #[must_use]
    pub fn b_addr(&self, family: Family) -> IpAddr {
        addr(self.id, family, 2)
    }
}

/// Host `host` of the subnet of `family` of link `id`.
fn addr(id: u32, family: Family, host: u8) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(names::addr_v4(id, host)),
        Family::V6 => IpAddr::V6(names::addr_v6(id, host)),
    }
}

/// Joins `x` and `r` with a veth pair named after `id`, with the IPv4 /24 and IPv6 /64 of
/// `id` (`x` host 1, `r` host 2; IPv6 with `nodad`, usable at once), X's end made
/// physical-like when `options` say so, both ends up. Returns X's end, R's end and the
/// `xdp_pass` program on X's end, if any.
fn link(x: &Netns, r: &Netns, id: u32, options: TopologyOptions) -> (String, String, Option<Ebpf>) {
    let x_iface = names::name(id, "x");
    let r_iface = names::name(id, "r");
    x.ip(&[
        "link",
        "add",
        &x_iface,
        "type",
        "veth",
        "peer",
        "name",
        &r_iface,
        "netns",
        r.name(),
    ]);
    for (ns, iface, host) in [(x, &x_iface, 1), (r, &r_iface, 2)] {
        let v4 = format!("{}/24", names::addr_v4(id, host));
        let v6 = format!("{}/64", names::addr_v6(id, host));
        ns.ip(&["addr", "add", &v4, "dev", iface]);
        ns.ip(&["-6", "addr", "add", &v6, "dev", iface, "nodad"]);
    }
    let xdp_pass = options.xdp_client_nic_like.then(|| {
        x.exec(&["ethtool", "-K", &x_iface, "tx", "off"]);
        attach_xdp_pass(x, &x_iface)
    });
    for (ns, iface) in [(x, &x_iface), (r, &r_iface)] {
        ns.ip(&["link", "set", iface, "up"]);
    }
    (x_iface, r_iface, xdp_pass)
}

/// The kernel object built into the `reflector` crate. Panics when the build did not embed
/// it: a missing object must never look like a passing test.
#[must_use]
pub fn kernel_object() -> &'static [u8] {
    reflector::ebpf_object::kernel_object().unwrap_or_else(|| {
        panic!(
            "reflector's kernel object is not embedded in this build \
             (reflector::ebpf_object::kernel_object() returned None): build reflector-user \
             with the eBPF toolchain (nightly rustc, rust-src, bpf-linker) so its build script \
             compiles reflector-ebpf (and without REFLECTOR_SKIP_EBPF=1)"
        )
    })
}

/// Loads `xdp_pass` (from the reference object) and attaches it to `iface` in `ns` (attaching resolves the interface
/// in the current thread's namespace, hence entering it). The link lives as long as the
/// returned object.
fn attach_xdp_pass(ns: &Netns, iface: &str) -> Ebpf {
    let _in_ns = EnteredNetns::enter(ns);
    let mut ebpf = Ebpf::load(bench_object())
        .unwrap_or_else(|e| panic!("cannot load the reference object: {e}"));
    let program: &mut Xdp = ebpf
        .program_mut(programs::XDP_PASS)
        .unwrap_or_else(|| panic!("the reference object has no program {}", programs::XDP_PASS))
        .try_into()
        .unwrap_or_else(|e| panic!("{} is not an XDP program: {e}", programs::XDP_PASS));
    program
        .load()
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", programs::XDP_PASS));
    program
        .attach(iface, XdpMode::default())
        .unwrap_or_else(|e| {
            panic!(
                "cannot attach {} to {iface} in {}: {e}",
                programs::XDP_PASS,
                ns.name()
            )
        });
    ebpf
}
