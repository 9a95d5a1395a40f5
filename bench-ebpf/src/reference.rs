//! The reference reflector: what reflecting costs at the least, for one hard-coded map and
//! nothing else (no maps, no counters, no policy). The benchmark reports every mode of
//! reflector against it.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, ip::Ipv6Hdr};

/// The map's listen port `L` (the benchmark's forward path maps `L` to itself, so the
/// frame it sends back is again a frame to `L`).
pub(crate) const LISTEN: u16 = 10_022;
/// The map's target port `P`.
pub(crate) const TARGET: u16 = 10_022;

/// EtherType of IPv4.
const ETH_P_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86dd;
/// IP protocol numbers.
const TCP: u8 = 6;
const UDP: u8 = 17;
/// Bytes of a transport header read or written: the ports and the TCP checksum (the
/// longer of the two checksum offsets, 16, plus 2).
const L4_LEN: usize = 18;

/// A frame to port `L` (TCP or UDP, IPv4 without options or IPv6 without extension
/// headers, no VLAN tag) goes back out as from its destination to its source's port `P`:
/// MACs and addresses swapped, the destination port rewritten, the transport checksum
/// updated incrementally (RFC 1624). Anything else is passed.
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub(crate) fn reference_reflector(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if data + EthHdr::LEN > data_end {
        return xdp_action::XDP_PASS;
    }
    let eth = data as *mut EthHdr;
    // SAFETY: the frame holds a whole Ethernet header (checked above).
    let reflected = match u16::from_be(unsafe { (*eth).ether_type }) {
        ETH_P_IPV4 => reflect_ipv4(data, data_end),
        ETH_P_IPV6 => reflect_ipv6(data, data_end),
        _ => false,
    };
    if !reflected {
        return xdp_action::XDP_PASS;
    }
    // SAFETY: as above.
    unsafe { core::mem::swap(&mut (*eth).src_addr, &mut (*eth).dst_addr) };
    xdp_action::XDP_TX
}

#[inline(always)]
fn reflect_ipv4(data: usize, data_end: usize) -> bool {
    let l4 = data + EthHdr::LEN + Ipv4Hdr::LEN;
    if l4 + L4_LEN > data_end {
        return false;
    }
    // SAFETY: the frame holds the IPv4 header and the transport bytes written (checked).
    unsafe {
        let ip = &mut *((data + EthHdr::LEN) as *mut Ipv4Hdr);
        if ip.vihl != 0x45 {
            return false;
        }
        if !reflect_l4(l4, ip.proto) {
            return false;
        }
        // Swapping the addresses leaves both checksums as they were.
        core::mem::swap(&mut ip.src_addr, &mut ip.dst_addr);
    }
    true
}

#[inline(always)]
fn reflect_ipv6(data: usize, data_end: usize) -> bool {
    let l4 = data + EthHdr::LEN + Ipv6Hdr::LEN;
    if l4 + L4_LEN > data_end {
        return false;
    }
    // SAFETY: as in `reflect_ipv4`.
    unsafe {
        let ip = &mut *((data + EthHdr::LEN) as *mut Ipv6Hdr);
        if !reflect_l4(l4, ip.next_hdr) {
            return false;
        }
        core::mem::swap(&mut ip.src_addr, &mut ip.dst_addr);
    }
    true
}

/// Rewrites the destination port `L` to `P` and patches the checksum, for TCP or UDP;
/// false (nothing written) for another protocol or port.
///
/// # Safety
/// `l4` points at [`L4_LEN`] bytes inside the frame.
#[inline(always)]
unsafe fn reflect_l4(l4: usize, protocol: u8) -> bool {
    let check_offset = match protocol {
        TCP => 16,
        UDP => 6,
        _ => return false,
    };
    // SAFETY: the caller's bounds.
    unsafe {
        let dst_port = &mut *((l4 + 2) as *mut [u8; 2]);
        if u16::from_be_bytes(*dst_port) != LISTEN {
            return false;
        }
        // Through the stack, so the compiler cannot fold a map of `L` to itself into no
        // checksum work at all: a reflector reads its target from somewhere.
        // (A local, not the constant's address: that would be read-only data, a map.)
        let target = TARGET;
        let target = core::ptr::read_volatile(&raw const target);
        let check = &mut *((l4 + check_offset) as *mut [u8; 2]);
        let old = u16::from_be_bytes(*check);
        // A UDP datagram without a checksum (0) keeps none.
        if !(protocol == UDP && old == 0) {
            let mut sum = u32::from(!old) + u32::from(!LISTEN) + u32::from(target);
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            let new = !(sum as u16);
            *check = if protocol == UDP && new == 0 {
                0xffff
            } else {
                new
            }
            .to_be_bytes();
        }
        *dst_port = target.to_be_bytes();
    }
    true
}
