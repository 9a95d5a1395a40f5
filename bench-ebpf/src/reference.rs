//! The reference reflector: what reflecting costs at the least, for one map (its ports set
//! at load time) and nothing else (no maps beyond its read-only ports, no counters, no
//! policy). The benchmark reports every mode of reflector against it.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, ip::Ipv6Hdr};

/// The map's listen port `L`, set at load time (a read-only global). The default maps
/// `L` to itself, as the kernel workload needs: the frame it sends back is again a frame
/// to `L`.
#[unsafe(no_mangle)]
static REFERENCE_LISTEN_PORT: u16 = 10_022;
/// The map's target port `P`, set at load time as [`REFERENCE_LISTEN_PORT`] is.
#[unsafe(no_mangle)]
static REFERENCE_TARGET_PORT: u16 = 10_022;

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

/// Both directions of one map `L:P` (TCP or UDP, IPv4 without options or IPv6 without
/// extension headers, no VLAN tag): a frame to port `L` goes back out to its source's
/// port `P`, and a frame from port `P` (the service's reply) goes back out from port `L`;
/// MACs and addresses swapped, the port rewritten, the transport checksum updated
/// incrementally (RFC 1624). Anything else is passed.
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

/// Rewrites the port of the map, for TCP or UDP: the destination port `L` to `P` (a
/// forward frame), or else the source port `P` to `L` (a reply of the service), patching
/// the checksum; false (nothing written) for another protocol or other ports.
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
    // SAFETY: the globals are plain integers; the loader only sets their values. Read
    // through a volatile load so the compiler keeps the defaults out of the code: the
    // ports are what the loader wrote into `.rodata`.
    let (listen, target) = unsafe {
        (
            core::ptr::read_volatile(&raw const REFERENCE_LISTEN_PORT),
            core::ptr::read_volatile(&raw const REFERENCE_TARGET_PORT),
        )
    };
    // SAFETY: the caller's bounds.
    unsafe {
        let src_port = &mut *(l4 as *mut [u8; 2]);
        let dst_port = &mut *((l4 + 2) as *mut [u8; 2]);
        let (port, old, new) = if u16::from_be_bytes(*dst_port) == listen {
            (dst_port, listen, target)
        } else if u16::from_be_bytes(*src_port) == target {
            (src_port, target, listen)
        } else {
            return false;
        };
        let check = &mut *((l4 + check_offset) as *mut [u8; 2]);
        let old_check = u16::from_be_bytes(*check);
        // A UDP datagram without a checksum (0) keeps none.
        if !(protocol == UDP && old_check == 0) {
            let mut sum = u32::from(!old_check) + u32::from(!old) + u32::from(new);
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            let new_check = !(sum as u16);
            *check = if protocol == UDP && new_check == 0 {
                0xffff
            } else {
                new_check
            }
            .to_be_bytes();
        }
        *port = new.to_be_bytes();
    }
    true
}
