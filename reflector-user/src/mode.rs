//! How reflector reflects on an interface, and which ways `auto` tries, in order.

use std::fmt;

use clap::ValueEnum;

use crate::interfaces::Interface;

/// A way to run the kernel program on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attach {
    /// XDP in the driver.
    XdpNative,
    /// XDP on the skb path (any driver, slower).
    XdpGeneric,
    /// TC clsact ingress, redirecting to the same interface's egress.
    Tc,
}

impl fmt::Display for Attach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::XdpNative => "xdp",
            Self::XdpGeneric => "xdp-skb",
            Self::Tc => "tc",
        })
    }
}

/// The `--mode` the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Per interface, the best way that works: XDP, generic XDP, TC (TC first on virtual
    /// devices), then userspace splice.
    #[default]
    Auto,
    /// XDP in the driver only.
    Xdp,
    /// Generic (skb) XDP only.
    #[value(name = "xdp-skb")]
    XdpSkb,
    /// TC clsact only.
    Tc,
    /// Userspace only: accept, connect back, splice(2). No BPF needed.
    Splice,
}

impl Mode {
    /// The ways to try the kernel program on `interface`, best first; none for `splice`.
    /// When all fail, `auto` falls back to splice and the other modes give up.
    ///
    /// `auto` prefers XDP in the driver, then generic XDP, then TC; but on virtual devices
    /// (veth, bridges, ...) TC comes first: their senders may hand over partial checksums,
    /// which only TC's checksum helpers handle, and a veth peer drops `XDP_TX` frames unless
    /// it runs an XDP program itself.
    #[must_use]
    pub fn candidates(self, interface: &Interface) -> &'static [Attach] {
        match self {
            Self::Xdp => &[Attach::XdpNative],
            Self::XdpSkb => &[Attach::XdpGeneric],
            Self::Tc => &[Attach::Tc],
            Self::Splice => &[],
            Self::Auto if interface.is_virtual() => {
                &[Attach::Tc, Attach::XdpNative, Attach::XdpGeneric]
            }
            Self::Auto => &[Attach::XdpNative, Attach::XdpGeneric, Attach::Tc],
        }
    }
}
