//! The XDP entry point: reflects with `XDP_TX`, patching checksums in place.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use reflector_common::{DropReason, Protocol};

use crate::{
    csum,
    ip::IpHeader,
    parse::Packet,
    pipeline::{self, Hook},
    rewrite::ChecksumPatch,
    stats::{self, Action},
};

/// Reflects packets to mapped ports back out of the interface they came in on.
///
/// XDP sees frames before the stack, so checksums here must be complete: a partial
/// checksum handed over by a veth peer with TX offload cannot be told apart (README, "XDP
/// on veth").
#[xdp]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the program macro hands the context over by value"
)]
pub(crate) fn reflector_xdp(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let bytes = (data_end - data) as u64;
    match stats::count_verdict(pipeline::reflect(&ctx, data, data_end), bytes) {
        Action::Reflect => xdp_action::XDP_TX,
        Action::Pass => xdp_action::XDP_PASS,
        Action::Drop => xdp_action::XDP_DROP,
    }
}

impl Hook for XdpContext {
    /// Patches both checksums in place (RFC 1624); `XDP_TX` then sends the frame back.
    /// Never fails: the parser checked every byte it writes.
    #[inline(always)]
    fn send_back<H: IpHeader>(
        &self,
        packet: &Packet<H>,
        patch: &ChecksumPatch,
    ) -> Result<(), DropReason> {
        // SAFETY: the parser checked both checksum pointers against the frame's end.
        let (l4_check, l3_check) = unsafe {
            (
                &mut *packet.l4_check,
                H::CHECK_OFFSET
                    .map(|offset| &mut *packet.ip.cast::<u8>().add(offset).cast::<[u8; 2]>()),
            )
        };
        let old = u16::from_be_bytes(*l4_check);
        // A zero UDP checksum over IPv4 means "none" and stays so; a computed zero is sent
        // as all ones (RFC 768).
        if !(packet.protocol == Protocol::Udp && old == 0) {
            let new = csum::replace(old, patch.ports.0, patch.ports.1);
            let new = if packet.protocol == Protocol::Udp && new == 0 {
                0xffff
            } else {
                new
            };
            *l4_check = new.to_be_bytes();
        }
        if let (Some((old_word, new_word)), Some(check)) = (patch.ttl_word, l3_check) {
            *check = csum::replace(u16::from_be_bytes(*check), old_word, new_word).to_be_bytes();
        }
        Ok(())
    }
}
