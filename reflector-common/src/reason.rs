//! The one list of reasons a packet is passed to the stack instead of reflected. The names
//! are also the values of the `reason` label in metrics.

/// Why a packet was passed to the network stack untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PassReason {
    /// Ethernet type is neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp = 0,
    /// IP payload is neither TCP nor UDP (ICMP, ...).
    NotTcpUdp,
    /// The frame ends inside a header.
    Truncated,
    /// A header's fields contradict themselves (IPv4 IHL < 5, wrong IP version, ...).
    Malformed,
    /// An IPv4 fragment or an IPv6 packet with a fragment header: no ports to match.
    Fragment,
    /// An IPv6 extension header the program does not walk.
    Ipv6ExtensionHeader,
    /// The destination port is not a listen port and the source port is not a target port.
    PortNotMapped,
    /// The source port is a target port but the packet belongs to no reflected flow.
    NoFlow,
    /// The destination is not one of this host's addresses.
    DestinationNotLocal,
    /// The source is a multicast address.
    SourceMulticast,
    /// The source is a broadcast address.
    SourceBroadcast,
    /// The source is a loopback address.
    SourceLoopback,
    /// The source is the unspecified address.
    SourceUnspecified,
    /// The source is one of this host's own addresses.
    SourceLocal,
    /// TTL or hop limit is 1 or 0: reflecting would loop or send an expired packet.
    TtlExpired,
}

impl PassReason {
    /// Number of reasons.
    pub const COUNT: usize = 15;

    /// Every reason, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::NotIp,
        Self::NotTcpUdp,
        Self::Truncated,
        Self::Malformed,
        Self::Fragment,
        Self::Ipv6ExtensionHeader,
        Self::PortNotMapped,
        Self::NoFlow,
        Self::DestinationNotLocal,
        Self::SourceMulticast,
        Self::SourceBroadcast,
        Self::SourceLoopback,
        Self::SourceUnspecified,
        Self::SourceLocal,
        Self::TtlExpired,
    ];

    /// The reason's name, as a metric label value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::NotIp => "not_ip",
            Self::NotTcpUdp => "not_tcp_udp",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::Fragment => "fragment",
            Self::Ipv6ExtensionHeader => "ipv6_extension_header",
            Self::PortNotMapped => "port_not_mapped",
            Self::NoFlow => "no_flow",
            Self::DestinationNotLocal => "destination_not_local",
            Self::SourceMulticast => "source_multicast",
            Self::SourceBroadcast => "source_broadcast",
            Self::SourceLoopback => "source_loopback",
            Self::SourceUnspecified => "source_unspecified",
            Self::SourceLocal => "source_local",
            Self::TtlExpired => "ttl_expired",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < PassReason::COUNT {
        assert!(PassReason::ALL[i] as usize == i);
        i += 1;
    }
};
