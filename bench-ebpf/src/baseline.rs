//! The baselines the benchmark compares reflector's cost per packet with: the least an XDP
//! reflector does, and the least one with a flow table does.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, tcp::TcpHdr};
use reflector_common::{FlowKey, v4_mapped};

use crate::maps::FLOWS;

/// Swaps MAC addresses and returns `XDP_TX`: the least any XDP reflector must do.
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub(crate) fn baseline_mac_swap(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if data + EthHdr::LEN > data_end {
        return xdp_action::XDP_PASS;
    }
    let eth = data as *mut EthHdr;
    // SAFETY: the frame holds a whole Ethernet header (checked above).
    unsafe { core::mem::swap(&mut (*eth).src_addr, &mut (*eth).dst_addr) };
    xdp_action::XDP_TX
}

/// Looks the frame's flow up in `FLOWS`, swaps MAC addresses and returns `XDP_TX`,
/// whether the flow is known or not (the benchmark makes it known): what a reflector with a
/// flow table cannot do less of. Reads IPv4 and TCP at fixed offsets and checks nothing but the frame's length.
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub(crate) fn baseline_flow_lookup(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if data + EthHdr::LEN + Ipv4Hdr::LEN + TcpHdr::LEN > data_end {
        return xdp_action::XDP_PASS;
    }
    let eth = data as *mut EthHdr;
    // SAFETY: the frame holds all three headers (checked above); they are only read.
    let (ip, tcp) = unsafe {
        (
            &*((data + EthHdr::LEN) as *const Ipv4Hdr),
            &*((data + EthHdr::LEN + Ipv4Hdr::LEN) as *const TcpHdr),
        )
    };
    let key = FlowKey::new(
        v4_mapped(ip.src_addr),
        v4_mapped(ip.dst_addr),
        u16::from_be_bytes(tcp.source),
        u16::from_be_bytes(tcp.dest),
        ip.proto,
    );
    // The lookup is the work measured, not its answer: both outcomes transmit. (A helper
    // call, so the compiler cannot drop it.)
    // SAFETY: the value is not read.
    let _ = unsafe { FLOWS.get(key) };
    // SAFETY: the frame holds a whole Ethernet header (checked above).
    unsafe { core::mem::swap(&mut (*eth).src_addr, &mut (*eth).dst_addr) };
    xdp_action::XDP_TX
}
