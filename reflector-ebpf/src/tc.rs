//! The TC (clsact ingress) entry point: reflects by redirecting to the same interface's
//! egress, fixing checksums through the kernel's helpers.

use aya_ebpf::{
    bindings::{BPF_F_MARK_MANGLED_0, TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::bpf_redirect,
    macros::classifier,
    programs::TcContext,
};
use reflector_common::{DropReason, Protocol};

use crate::{
    consts::TC_LINEAR_HEADROOM,
    ip::IpHeader,
    parse::Packet,
    pipeline::{self, Hook},
    rewrite::ChecksumPatch,
    stats::{self, Action},
};

/// Size flag of `bpf_l4_csum_replace`/`bpf_l3_csum_replace`: the bytes that changed.
const CSUM_WORD_LEN: u64 = 2;
const CSUM_PORTS_LEN: u64 = 4;

/// Reflects packets to mapped ports back out of the interface they came in on.
///
/// The checksum helpers know the skb's checksum state: with `CHECKSUM_PARTIAL` (a veth peer
/// with TX offload) the field holds only the pseudo-header sum, which port changes must not
/// touch, and the helpers leave it alone; otherwise they patch it.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub(crate) fn reflector_tc(ctx: TcContext) -> i32 {
    let bytes = u64::from(ctx.len());
    // Headers can straddle the linear part of an skb; pull them in before parsing.
    let wanted = ctx.len().min(TC_LINEAR_HEADROOM);
    if ((ctx.data_end() - ctx.data()) as u32) < wanted {
        // A failed pull leaves the skb as it was; the parser then says how far it got.
        let _ = ctx.pull_data(wanted);
    }
    match stats::count_verdict(pipeline::reflect(&ctx, ctx.data(), ctx.data_end()), bytes) {
        Action::Reflect => TC_ACT_REDIRECT,
        Action::Pass => TC_ACT_OK,
        Action::Drop => TC_ACT_SHOT,
    }
}

impl Hook for TcContext {
    /// Fixes checksums through the kernel's helpers and redirects to the same interface's
    /// egress.
    #[expect(
        clippy::map_err_ignore,
        reason = "the helpers' errno has no place in the counters; a pass reason names the \
                  failure"
    )]
    #[inline(always)]
    fn send_back<H: IpHeader>(
        &self,
        packet: &Packet<H>,
        patch: &ChecksumPatch,
    ) -> Result<(), DropReason> {
        // The helpers may move the skb's data, so they come after every direct write and take
        // offsets rather than pointers.
        let udp_flag = match packet.protocol {
            Protocol::Udp => u64::from(BPF_F_MARK_MANGLED_0),
            Protocol::Tcp => 0,
        };
        self.l4_csum_replace(
            packet.l4_check_offset,
            u64::from(u32::from_ne_bytes(patch.ports.0)),
            u64::from(u32::from_ne_bytes(patch.ports.1)),
            udp_flag | CSUM_PORTS_LEN,
        )
        .map_err(|_| DropReason::RewriteFailed)?;
        if let (Some((old_word, new_word)), Some(offset)) = (patch.ttl_word, H::CHECK_OFFSET) {
            self.l3_csum_replace(
                packet.l3_offset + offset,
                u64::from(u16::from_ne_bytes(old_word)),
                u64::from(u16::from_ne_bytes(new_word)),
                CSUM_WORD_LEN,
            )
            .map_err(|_| DropReason::RewriteFailed)?;
        }
        // SAFETY: `skb` is the context the kernel handed this program.
        let ifindex = unsafe { (*self.skb.skb).ifindex };
        // SAFETY: a plain helper call; flags 0 sends the skb out of `ifindex`.
        unsafe { bpf_redirect(ifindex, 0) };
        Ok(())
    }
}
