//! Reference programs that are not part of reflection: the baseline the benchmark compares
//! the reflector's cost with, and the pass-through a veth peer needs to receive `XDP_TX`.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::eth::EthHdr;

/// Swaps MAC addresses and returns `XDP_TX`: the least any XDP reflector must do.
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub fn baseline_mac_swap(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    if data + EthHdr::LEN > data_end {
        return xdp_action::XDP_PASS;
    }
    let eth = data as *mut EthHdr;
    // SAFETY: the frame holds a whole Ethernet header (checked above).
    unsafe { core::mem::swap(&mut (*eth).src_addr, &mut (*eth).dst_addr) };
    xdp_action::XDP_TX
}

/// Passes every frame. A veth end only receives its peer's `XDP_TX` frames while it runs an
/// XDP program itself; tests and labs attach this one there.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
