//! The pass-through program a veth peer runs.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

/// Passes every frame. A veth end only receives its peer's `XDP_TX` frames while it runs an
/// XDP program itself; tests and labs attach this one there.
#[xdp]
pub(crate) fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}
