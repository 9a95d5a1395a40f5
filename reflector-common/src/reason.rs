//! The one list of reasons a packet is not reflected: passed to the stack untouched
//! ([`PassReason`]) or dropped ([`DropReason`]). The names are also the values of the
//! `reason` label in metrics (`reflector_passed_*` and `reflector_dropped_*`).
//!
//! Each reason's number gives its counter's slot in the pinned statistics array, which a
//! program left running by an older daemon keeps using (`--pin`): the list is append-only.
//! A new reason takes the next number (and a new [`crate::maps::PIN_LAYOUT_VERSION`]); a
//! reason no longer used keeps its number, never given to another.

/// Why a packet was passed to the network stack untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum PassReason {
    /// Ethernet type is neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp = 0,
    /// IP payload is neither TCP nor UDP (ICMP, ...).
    NotTcpUdp = 1,
    /// The frame ends inside a header.
    Truncated = 2,
    /// A header's fields contradict themselves (IPv4 IHL < 5, wrong IP version, ...).
    Malformed = 3,
    /// An IPv4 fragment or an IPv6 packet with a fragment header: no ports to match.
    Fragment = 4,
    /// An IPv6 extension header the program does not walk.
    Ipv6ExtensionHeader = 5,
    /// The destination port is not a listen port and the source port is not a target port.
    PortNotMapped = 6,
    /// The source port is a target port but the packet belongs to no reflected flow: the flow
    /// table has none for it, or (a target without flow state) this host has a socket of
    /// its own for it, so it is a reply to this host's own connection.
    NoFlow = 7,
    /// The destination is not one of this host's addresses.
    DestinationNotLocal = 8,
    /// The source is a multicast address.
    SourceMulticast = 9,
    /// The source is a broadcast address.
    SourceBroadcast = 10,
    /// The source is a loopback address.
    SourceLoopback = 11,
    /// The source is the unspecified address.
    SourceUnspecified = 12,
    /// The source is one of this host's own addresses.
    SourceLocal = 13,
    /// TTL or hop limit is 1 or 0: reflecting would loop or send an expired packet.
    TtlExpired = 14,
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

/// Why a packet was dropped instead of reflected or passed. A dropped packet is one the
/// network stack must not see either: passed, it would reach the hybrid userspace listener,
/// which would reflect it; or the program had already changed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DropReason {
    /// The source of a new flow is outside the allow-list.
    SourceNotAllowed = 0,
    /// A new flow over its source prefix's rate limit or over the global one.
    RateLimited = 1,
    /// A packet of a known flow arrived with a TTL (hop limit) at least
    /// [`crate::admission::LOOP_TTL_DROP`] below the highest seen on that flow and direction:
    /// it went round a loop of reflectors.
    LoopDetected = 2,
    /// The packet was turned around, then a checksum helper refused it (TC): it can be
    /// neither sent nor passed as it now stands.
    RewriteFailed = 3,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 4;

    /// Every reason, in index order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::SourceNotAllowed,
        Self::RateLimited,
        Self::LoopDetected,
        Self::RewriteFailed,
    ];

    /// The reason's name, as a metric label value.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SourceNotAllowed => "source_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::LoopDetected => "loop_detected",
            Self::RewriteFailed => "rewrite_failed",
        }
    }
}

const _: () = {
    let mut i = 0;
    while i < DropReason::COUNT {
        assert!(DropReason::ALL[i] as usize == i);
        i += 1;
    }
};

/// Why a packet was not reflected: passed or dropped, with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotReflected {
    /// Passed to the stack untouched.
    Pass(PassReason),
    /// Dropped.
    Drop(DropReason),
}

impl From<PassReason> for NotReflected {
    fn from(reason: PassReason) -> Self {
        Self::Pass(reason)
    }
}

impl From<DropReason> for NotReflected {
    fn from(reason: DropReason) -> Self {
        Self::Drop(reason)
    }
}
