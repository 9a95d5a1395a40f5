//! The rewrite both programs share: turns a packet around in place. Checksums are left to
//! the caller, which knows whether it may patch them directly (XDP) or must ask the kernel
//! (TC, where the skb may carry a partial checksum).

use crate::{ip::IpHeader, parse::Packet, policy::Reflection};

/// The words the rewrite changed under a checksum, as the bytes stand in the packet.
pub(crate) struct ChecksumPatch {
    /// The source and destination ports, old and new. Covered by the transport checksum
    /// only; the swapped addresses change no checksum, as one's-complement sums do not
    /// depend on order.
    pub ports: ([u8; 4], [u8; 4]),
    /// The IPv4 TTL/protocol word, old and new. Covered by the IPv4 header checksum only.
    pub ttl_word: Option<([u8; 2], [u8; 2])>,
}

/// Swaps MAC and IP addresses, writes the new ports and decrements the TTL.
///
/// # Safety
/// `packet` must come from [`crate::parse::parse_packet`] on the frame still in place, so
/// that every pointer it holds was bounds-checked and still points into the frame.
#[inline(always)]
pub(crate) unsafe fn turn_around<H: IpHeader>(
    packet: &Packet<H>,
    reflection: &Reflection,
) -> ChecksumPatch {
    // SAFETY: the caller guarantees the pointers are checked and current; network-types
    // headers are byte arrays, so no access is misaligned.
    unsafe {
        let eth = &mut *packet.eth;
        core::mem::swap(&mut eth.src_addr, &mut eth.dst_addr);
        let ttl_word = (*packet.ip).turn_around();
        let old = *packet.ports;
        let [s0, s1] = reflection.src_port.to_be_bytes();
        let [d0, d1] = reflection.dst_port.to_be_bytes();
        *packet.ports = [s0, s1, d0, d1];
        ChecksumPatch {
            ports: (old, *packet.ports),
            ttl_word,
        }
    }
}
