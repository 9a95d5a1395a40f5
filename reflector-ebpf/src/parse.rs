//! Bounds-checked parsing of a frame into a [`Packet`]: the few fields the policy needs and
//! checked pointers to every field the rewrite changes. Nothing here writes to the packet.

use core::mem::size_of;

use network_types::{eth::EthHdr, tcp::TcpHdr, udp::UdpHdr, vlan::VlanHdr};
use reflector_common::{PassReason, Protocol};

use crate::{
    consts::{
        ETH_GROUP_BIT, ETH_P_8021AD, ETH_P_8021Q, TCP_CHECK_OFFSET, TCP_FLAGS_OFFSET,
        UDP_CHECK_OFFSET,
    },
    ip::IpHeader,
};

/// The link layer of a frame: where its network header starts and what it is.
pub(crate) struct Frame {
    /// Start of the frame.
    pub data: usize,
    /// End of the frame's linear data.
    pub data_end: usize,
    /// The Ethernet header.
    pub eth: *mut EthHdr,
    /// EtherType after any VLAN tags.
    pub ether_type: u16,
    /// Offset of the network header from the start of the frame.
    pub l3_offset: usize,
}

/// A TCP or UDP packet the program may reflect.
pub(crate) struct Packet<H> {
    /// The Ethernet header.
    pub eth: *mut EthHdr,
    /// The IP header (fixed part checked).
    pub ip: *mut H,
    /// Source and destination port, as they stand in the packet.
    pub ports: *mut [u8; 4],
    /// The transport checksum.
    pub l4_check: *mut [u8; 2],
    /// Offset of the IP header from the start of the frame.
    pub l3_offset: usize,
    /// Offset of the transport checksum from the start of the frame.
    pub l4_check_offset: usize,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Source address (IPv4-mapped for IPv4).
    pub src_addr: [u8; 16],
    /// Destination address (IPv4-mapped for IPv4).
    pub dst_addr: [u8; 16],
    /// Source port, host byte order.
    pub src_port: u16,
    /// Destination port, host byte order.
    pub dst_port: u16,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The TCP header's flags byte (CWR..FIN); 0 for UDP.
    pub tcp_flags: u8,
}

/// A pointer to a `T` at `offset` into the frame, once the frame is known to hold it.
#[inline(always)]
fn header<T>(data: usize, data_end: usize, offset: usize) -> Result<*mut T, PassReason> {
    let start = data + offset;
    if start + size_of::<T>() > data_end {
        return Err(PassReason::Truncated);
    }
    Ok(start as *mut T)
}

/// Parses the Ethernet header and up to two VLAN tags.
///
/// # Errors
/// [`PassReason::Truncated`] when the frame ends inside them; [`PassReason::Malformed`]
/// when the source is a group (multicast or broadcast) address, which 802.3 forbids and
/// which a reflection would send to.
#[inline(always)]
pub(crate) fn parse_frame(data: usize, data_end: usize) -> Result<Frame, PassReason> {
    let eth: *mut EthHdr = header(data, data_end, 0)?;
    // SAFETY: `header` checked that the frame holds the whole header.
    if unsafe { (*eth).src_addr[0] } & ETH_GROUP_BIT != 0 {
        return Err(PassReason::Malformed);
    }
    // SAFETY: `header` checked that the frame holds the whole header.
    let mut ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let mut l3_offset = EthHdr::LEN;
    // 802.1ad then 802.1Q, or two 802.1Q; unrolled for the verifier. The tags stay in
    // place: the rewrite touches neither them nor anything before the IP header but MACs.
    for _ in 0..2 {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        let vlan: *mut VlanHdr = header(data, data_end, l3_offset)?;
        // SAFETY: bounds checked by `header`.
        ether_type = u16::from_be(unsafe { (*vlan).ether_type });
        l3_offset += size_of::<VlanHdr>();
    }
    Ok(Frame {
        data,
        data_end,
        eth,
        ether_type,
        l3_offset,
    })
}

/// Parses the IP header `H` and the transport header after it.
///
/// # Errors
/// The reason the packet cannot be reflected, whatever its ports.
#[inline(always)]
pub(crate) fn parse_packet<H: IpHeader>(frame: &Frame) -> Result<Packet<H>, PassReason> {
    let Frame {
        data,
        data_end,
        eth,
        l3_offset,
        ..
    } = *frame;
    let ip: *mut H = header(data, data_end, l3_offset)?;
    // SAFETY: bounds checked by `header`; headers are byte arrays, never misaligned.
    let fields = unsafe { &*ip }.fields()?;
    let l4_offset = l3_offset + fields.header_len;
    let (ports, check_field, tcp_flags) = match fields.protocol {
        Protocol::Tcp => {
            let tcp = header::<TcpHdr>(data, data_end, l4_offset)?.cast::<u8>();
            // Read here, next to its bounds check: the verifier may not carry the TCP
            // header's length past the join with the shorter UDP header.
            // SAFETY: `header` checked the whole fixed TCP header, which holds the byte.
            let flags = unsafe { *tcp.add(TCP_FLAGS_OFFSET) };
            (tcp.cast::<[u8; 4]>(), TCP_CHECK_OFFSET, flags)
        }
        Protocol::Udp => (
            header::<UdpHdr>(data, data_end, l4_offset)?.cast::<[u8; 4]>(),
            UDP_CHECK_OFFSET,
            0,
        ),
    };
    // SAFETY: the whole fixed transport header was checked, and it holds both fields.
    let (l4_check, [s0, s1, d0, d1]) = unsafe {
        (
            ports.cast::<u8>().add(check_field).cast::<[u8; 2]>(),
            *ports,
        )
    };
    Ok(Packet {
        eth,
        ip,
        ports,
        l4_check,
        l3_offset,
        l4_check_offset: l4_offset + check_field,
        protocol: fields.protocol,
        src_addr: fields.src_addr,
        dst_addr: fields.dst_addr,
        src_port: u16::from_be_bytes([s0, s1]),
        dst_port: u16::from_be_bytes([d0, d1]),
        ttl: fields.ttl,
        tcp_flags,
    })
}
