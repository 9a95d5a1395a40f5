//! What is attached to an interface: XDP programs, TC (netlink filters and tcx links).

use std::time::Duration;

use aya::programs::tc::{SchedClassifier, TcAttachType};

use crate::enter::in_netns;
use crate::netns::Netns;

/// Whether `iface` in `ns` has a clsact qdisc (`tc qdisc show`).
#[must_use]
pub fn has_clsact(ns: &Netns, iface: &str) -> bool {
    ns.exec(&["tc", "qdisc", "show", "dev", iface])
        .lines()
        .any(|line| line.starts_with("qdisc clsact "))
}

/// Whether the running kernel attaches TC programs as TCX links (6.6 and later), which
/// need no clsact qdisc; before, TC attaches through clsact with netlink filters.
#[must_use]
pub fn kernel_has_tcx() -> bool {
    aya::util::KernelVersion::current()
        .is_ok_and(|version| version >= aya::util::KernelVersion::new(6, 6, 0))
}

/// Programs attached to one interface, as the system tools report them.
#[derive(Debug)]
pub struct Attachments {
    /// `ip -d link show dev <iface>`.
    pub link: String,
    /// `bpftool net show dev <iface>`: XDP, TC (netlink and tcx) and other hooks.
    pub bpftool: String,
    /// `tc filter show dev <iface> ingress` and `egress`.
    pub tc_filters: String,
    /// Programs on the interface's tcx hooks (`<hook>: <name> (id <id>)`), which this
    /// system's bpftool predates.
    pub tcx: Vec<String>,
    /// Why the tcx hooks could not be queried (a kernel without tcx), if they could not.
    pub tcx_error: Option<String>,
}

impl Attachments {
    /// Reads them for `iface` in `ns`.
    #[must_use]
    pub fn of(ns: &Netns, iface: &str) -> Self {
        let link = ns.exec(&["ip", "-d", "link", "show", "dev", iface]);
        let bpftool = ns.exec(&["bpftool", "net", "show", "dev", iface]);
        // Without a clsact qdisc `tc` says so and fails: that is "no filter" too.
        let mut tc_filters = String::new();
        for hook in ["ingress", "egress"] {
            let output = ns.exec_output(
                &["tc", "filter", "show", "dev", iface, hook],
                Duration::from_secs(10),
            );
            if output.status.success() {
                tc_filters.push_str(&String::from_utf8_lossy(&output.stdout));
            }
        }
        let (tcx, tcx_error) = in_netns(ns, || query_tcx(iface));
        Self {
            link,
            bpftool,
            tc_filters,
            tcx,
            tcx_error,
        }
    }

    /// Whether `ip link` shows an XDP program (native, generic or offloaded).
    #[must_use]
    pub fn has_xdp(&self) -> bool {
        self.link.contains("xdp")
    }

    /// The entries `bpftool net show` lists under its section headers (`xdp:`, `tc:`, ...).
    #[must_use]
    pub fn bpftool_entries(&self) -> Vec<&str> {
        self.bpftool
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.ends_with(':'))
            .collect()
    }

    /// Whether a TC program is attached: a netlink filter or a tcx link.
    #[must_use]
    pub fn has_tc(&self) -> bool {
        !self.tc_filters.trim().is_empty() || !self.tcx.is_empty()
    }

    /// Whether any program is attached (per any of the sources).
    #[must_use]
    pub fn any(&self) -> bool {
        self.has_xdp() || self.has_tc() || !self.bpftool_entries().is_empty()
    }
}

impl std::fmt::Display for Attachments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- ip -d link ---\n{}\n--- bpftool net ---\n{}\n--- tc filter ---\n{}\n--- tcx ---\n{}",
            self.link.trim_end(),
            self.bpftool.trim_end(),
            self.tc_filters.trim_end(),
            self.tcx_error
                .as_deref()
                .map_or_else(|| self.tcx.join("\n"), str::to_owned)
        )
    }
}

/// The programs on `iface`'s tcx ingress and egress hooks, from the current namespace.
fn query_tcx(iface: &str) -> (Vec<String>, Option<String>) {
    let mut programs = Vec::new();
    for (hook, attach_type) in [
        ("ingress", TcAttachType::Ingress),
        ("egress", TcAttachType::Egress),
    ] {
        match SchedClassifier::query_tcx(iface, attach_type) {
            Ok((_revision, infos)) => programs.extend(infos.iter().map(|info| {
                format!(
                    "{hook}: {} (id {})",
                    info.name_as_str().unwrap_or("?"),
                    info.id()
                )
            })),
            Err(e) => {
                return (
                    programs,
                    Some(format!("cannot query tcx {hook} of {iface}: {e}")),
                );
            }
        }
    }
    (programs, None)
}

/// Panics unless nothing at all is attached to `iface` in `ns`.
pub fn assert_nothing_attached(ns: &Netns, iface: &str) {
    let attachments = Attachments::of(ns, iface);
    assert!(
        !attachments.any(),
        "something is still attached to {iface} in {}:\n{attachments}",
        ns.name()
    );
}
