//! The port map: which (protocol, port) pairs are reflected, and to which port.

use bytemuck::{Pod, Zeroable};

/// A transport protocol reflector handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp = 6,
    /// UDP (IP protocol 17).
    Udp = 17,
}

impl Protocol {
    /// The protocol with IP protocol number `number`, if reflector handles it.
    #[must_use]
    pub const fn from_ip_number(number: u8) -> Option<Self> {
        match number {
            6 => Some(Self::Tcp),
            17 => Some(Self::Udp),
            _ => None,
        }
    }

    /// Lower-case name, as written in a port map (`10053:53/udp`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// Which half of the port array holds this protocol.
    const fn slot(self) -> u32 {
        match self {
            Self::Tcp => 0,
            Self::Udp => 1,
        }
    }
}

/// Index of (`protocol`, `port`) in the port array.
#[must_use]
pub const fn port_index(protocol: Protocol, port: u16) -> u32 {
    (protocol.slot() << 16) | port as u32
}

/// Set in [`PortEntry::flags`] when the port is the target port `P` of some map: replies
/// from a client's service come from it, so packets from it are looked up in the flow table.
pub const PORT_FLAG_TARGET: u16 = 1;

/// Set in [`PortEntry::flags`] of a target port `P` that exactly one listen port maps to (for
/// this protocol): a packet from `P` to this host is a reply of that map's flow whatever
/// flow table says, and is reflected without one as coming from
/// [`PortEntry::stateless_listen`] (unless this host has a socket of its own for it). A
/// target shared by two listen ports cannot say which one a reply belongs to and keeps the
/// flow table.
pub const PORT_FLAG_STATELESS: u16 = 1 << 1;
/// Set in [`PortEntry::flags`] of a listen port `L` whose target port has
/// [`PORT_FLAG_STATELESS`]: its forward packets record no flow.
pub const PORT_FLAG_LISTEN_STATELESS: u16 = 1 << 2;

/// What the port array says about one (protocol, port).
///
/// The stateless flags and [`Self::stateless_listen`] took the place of padding that was
/// always zero: a program that does not know them (pinned by an older daemon) keeps the
/// flow table for every map, and a table written by an older daemon has them clear.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PortEntry {
    /// When this is a listen port `L`: the target port `P` (host byte order). 0 otherwise.
    pub target_port: u16,
    /// [`PORT_FLAG_TARGET`], [`PORT_FLAG_STATELESS`], [`PORT_FLAG_LISTEN_STATELESS`].
    pub flags: u16,
    /// When this is a listen port `L`: the counter slot of its map in
    /// [`crate::maps::MAP_STATS`], chosen by the control plane ([`crate::MapStatIndex`]).
    /// When this is a target port with [`PORT_FLAG_STATELESS`] (never a listen port too):
    /// the slot of its one map, so a reply without flow state is counted without looking
    /// up the listen port's entry.
    pub map_slot: u16,
    /// When this is a target port with [`PORT_FLAG_STATELESS`]: the one listen port `L`
    /// mapped to it, which its replies leave from. 0 otherwise.
    pub stateless_listen: u16,
}

const _: () = assert!(core::mem::size_of::<PortEntry>() == 8);

impl PortEntry {
    /// True when packets to this port are reflected.
    #[must_use]
    pub const fn is_listen(&self) -> bool {
        self.target_port != 0
    }

    /// True when packets from this port may be replies of a reflected flow.
    #[must_use]
    pub const fn is_target(&self) -> bool {
        self.flags & PORT_FLAG_TARGET != 0
    }

    /// The listen port replies from this target port leave from without a flow entry, when
    /// exactly one listen port maps to it.
    #[must_use]
    pub const fn stateless_reverse(&self) -> Option<u16> {
        if self.flags & PORT_FLAG_STATELESS != 0 && self.stateless_listen != 0 {
            Some(self.stateless_listen)
        } else {
            None
        }
    }

    /// True when forward packets to this listen port record no flow (its target port is
    /// [`Self::stateless_reverse`]).
    #[must_use]
    pub const fn stateless_forward(&self) -> bool {
        self.flags & PORT_FLAG_LISTEN_STATELESS != 0
    }
}
