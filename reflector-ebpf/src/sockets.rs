//! Whether this host has a socket of its own for a packet: its own connection (any state,
//! `TIME_WAIT` and `SYN-SENT` included) or a UDP socket bound to the destination port. A
//! reply from a target port `P` to such a socket is the host's own traffic, not a
//! reflection's, and must reach the stack.
//!
//! The lookups (`bpf_skc_lookup_tcp`, kernel 5.2; `bpf_sk_lookup_udp`, 4.20) run in the
//! network namespace of the interface the packet arrived on (XDP) or of its skb (TC).

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_F_CURRENT_NETNS, bpf_sock_tuple},
    helpers::{bpf_sk_lookup_udp, bpf_sk_release, bpf_skc_lookup_tcp},
};
use reflector_common::{Family, Protocol};

use crate::{ip::IpHeader, parse::Packet};

/// Size of the IPv4 half of `struct bpf_sock_tuple`: two addresses and two ports.
const TUPLE_V4_LEN: u32 = 12;
/// Size of the IPv6 half of `struct bpf_sock_tuple`.
const TUPLE_V6_LEN: u32 = 36;

/// Whether this host has a socket the packet is addressed to: a TCP socket in any state
/// (listeners too: a segment to a listening port may open or complete a connection to
/// it), or a UDP socket, connected or only bound.
#[inline(always)]
pub(crate) fn owns<C: EbpfContext, H: IpHeader>(ctx: &C, packet: &Packet<H>) -> bool {
    // SAFETY: a plain C struct of integers; all zeroes is a valid value.
    let mut tuple: bpf_sock_tuple = unsafe { core::mem::zeroed() };
    let (sport, dport) = (packet.src_port.to_be(), packet.dst_port.to_be());
    let len = match H::FAMILY {
        Family::V4 => {
            let [.., s0, s1, s2, s3] = packet.src_addr;
            let [.., d0, d1, d2, d3] = packet.dst_addr;
            // SAFETY: writing one member of the union; nothing reads another.
            let v4 = unsafe { &mut tuple.__bindgen_anon_1.ipv4 };
            v4.saddr = u32::from_ne_bytes([s0, s1, s2, s3]);
            v4.daddr = u32::from_ne_bytes([d0, d1, d2, d3]);
            v4.sport = sport;
            v4.dport = dport;
            TUPLE_V4_LEN
        }
        Family::V6 => {
            // SAFETY: as above.
            let v6 = unsafe { &mut tuple.__bindgen_anon_1.ipv6 };
            v6.saddr = words(&packet.src_addr);
            v6.daddr = words(&packet.dst_addr);
            v6.sport = sport;
            v6.dport = dport;
            TUPLE_V6_LEN
        }
    };
    let ctx = ctx.as_ptr();
    // The lookup wants the namespace as a 64-bit value whose low 32 bits, signed, are
    // negative for "the caller's own".
    let netns = i64::from(BPF_F_CURRENT_NETNS).cast_unsigned();
    // SAFETY: `tuple` is initialised stack memory of at least `len` bytes; the socket the
    // lookups return holds a reference, released below on the only path that gets one.
    unsafe {
        let sock = match packet.protocol {
            Protocol::Tcp => bpf_skc_lookup_tcp(ctx, &raw mut tuple, len, netns, 0),
            Protocol::Udp => bpf_sk_lookup_udp(ctx, &raw mut tuple, len, netns, 0),
        };
        if sock.is_null() {
            return false;
        }
        bpf_sk_release(sock.cast());
    }
    true
}

/// An address's 16 bytes as the four 32-bit words of `struct bpf_sock_tuple`, in the
/// packet's byte order.
#[inline(always)]
fn words(addr: &[u8; 16]) -> [u32; 4] {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    [word(0), word(4), word(8), word(12)]
}
