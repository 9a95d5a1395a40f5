//! Wire constants the parser and rewriter agree on.

/// The individual/group bit of an Ethernet address, in its first byte: set for multicast
/// and broadcast addresses.
pub(crate) const ETH_GROUP_BIT: u8 = 0x01;
/// EtherType of IPv4.
pub(crate) const ETH_P_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q VLAN tag.
pub(crate) const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) service tag.
pub(crate) const ETH_P_8021AD: u16 = 0x88a8;

/// IPv4 flags/fragment-offset bits that mark a fragment: More Fragments and the offset.
pub(crate) const IPV4_FRAGMENT_MASK: u16 = 0x3fff;

/// IPv6 next-header value of the fragment header.
pub(crate) const IPV6_NEXT_FRAGMENT: u8 = 44;

/// IPv6 next-header values of the extension headers the program does not walk.
pub(crate) const IPV6_EXTENSION_HEADERS: [u8; 10] = [
    0,   // Hop-by-Hop Options
    43,  // Routing
    50,  // Encapsulating Security Payload
    51,  // Authentication Header
    60,  // Destination Options
    135, // Mobility
    139, // Host Identity Protocol
    140, // Shim6
    253, // Experimentation and testing (RFC 3692)
    254, // Experimentation and testing (RFC 3692)
];

/// Offset of the checksum within a TCP header.
pub(crate) const TCP_CHECK_OFFSET: usize = 16;
/// Offset of the flags byte (CWR..FIN) within a TCP header.
pub(crate) const TCP_FLAGS_OFFSET: usize = 13;
/// Offset of the checksum within a UDP header.
pub(crate) const UDP_CHECK_OFFSET: usize = 6;
/// Offset of the checksum within an IPv4 header.
pub(crate) const IPV4_CHECK_OFFSET: usize = 10;

/// Bytes the TC program wants in the linear part of an skb before parsing: Ethernet, two
/// VLAN tags, the longest IPv4 header and a TCP header.
pub(crate) const TC_LINEAR_HEADROOM: u32 = 14 + 8 + 60 + 20;
