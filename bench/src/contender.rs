//! The contenders: the direct path (the limit), the reference reflector (the least a
//! reflector does), each reflector mode, the seed's Python tool and kernel NAT with
//! nftables.

use std::fmt;

use clap::ValueEnum;
use serde::Serialize;

/// One way for a client in X to reach a service in X through R (or, for `Direct`, a
/// service in R: the path without any reflection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Contender {
    /// No reflection: the client in X connects to the same service running in R.
    Direct,
    /// `reference_reflector` (bench-ebpf) attached natively in R for the bed's map: the
    /// topology's own limit for reflection (X's NIC set up like a physical one).
    Reference,
    /// The seed's Python tool (`PyPI` package `reflector` 0.1) in R.
    Python,
    /// `reflector --mode splice`: userspace, splice(2).
    Splice,
    /// `reflector --mode tc`.
    Tc,
    /// `reflector --mode xdp` (X's NIC set up like a physical one).
    Xdp,
    /// `reflector --mode xdp-skb` (X's NIC set up like a physical one).
    XdpSkb,
    /// `reflector --mode auto` (the default).
    Auto,
    /// Kernel NAT with nftables in R: DNAT back to the source, masquerade.
    Nftables,
}

impl Contender {
    /// Every contender, in table order.
    pub(crate) const ALL: [Self; 9] = [
        Self::Direct,
        Self::Reference,
        Self::Python,
        Self::Splice,
        Self::Tc,
        Self::Xdp,
        Self::XdpSkb,
        Self::Auto,
        Self::Nftables,
    ];

    /// Its name, as on the command line and in the results.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Reference => "reference",
            Self::Python => "python",
            Self::Splice => "splice",
            Self::Tc => "tc",
            Self::Xdp => "xdp",
            Self::XdpSkb => "xdp-skb",
            Self::Auto => "auto",
            Self::Nftables => "nftables",
        }
    }

    /// A short description for the table.
    pub(crate) const fn description(self) -> &'static str {
        match self {
            Self::Direct => "no reflection: the client in X connects to the same service in R",
            Self::Reference => {
                "the least a reflector does: one map (ports set at load time) in XDP; no maps \
                 beyond its read-only ports, no counters or policy (bench-ebpf)"
            }
            Self::Python => {
                "the seed's Python tool, PyPI `reflector` 0.1 (`reflector.py L --return-port P`)"
            }
            Self::Splice => "reflector --mode splice",
            Self::Tc => "reflector --mode tc",
            Self::Xdp => "reflector --mode xdp",
            Self::XdpSkb => "reflector --mode xdp-skb",
            Self::Auto => "reflector --mode auto",
            Self::Nftables => {
                "kernel NAT in R with nftables: DNAT to the source address, port P; masquerade"
            }
        }
    }

    /// The `reflector --mode` value, for the reflector's own modes.
    pub(crate) const fn reflector_mode(self) -> Option<&'static str> {
        match self {
            Self::Splice => Some("splice"),
            Self::Tc => Some("tc"),
            Self::Xdp => Some("xdp"),
            Self::XdpSkb => Some("xdp-skb"),
            Self::Auto => Some("auto"),
            Self::Direct | Self::Reference | Self::Python | Self::Nftables => None,
        }
    }

    /// The NIC setting of X's veth end it runs with.
    pub(crate) const fn nic(self) -> Nic {
        match self {
            Self::Reference | Self::Xdp | Self::XdpSkb => Nic::PhysicalLike,
            _ => Nic::Veth,
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How X's end of the veth pair is set up. Every contender is compared with the direct
/// path measured under the same setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Nic {
    /// A plain veth: TX checksum offload on (partial checksums), no XDP program.
    Veth,
    /// Like a physical NIC towards XDP: TX checksum offload off and an XDP program
    /// (`xdp_pass`) on X's end, as XDP modes need on a veth.
    PhysicalLike,
}

impl Nic {
    /// Its name in the table.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Veth => "veth",
            Self::PhysicalLike => "nic-like",
        }
    }
}
