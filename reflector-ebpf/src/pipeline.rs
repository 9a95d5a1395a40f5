//! The reflection pipeline both entry points run: parse, decide, turn around, then let the
//! hook fix checksums and send the packet back its own way.

use aya_ebpf::EbpfContext;
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};
use reflector_common::{DropReason, NotReflected, PassReason};

use crate::{
    consts::{ETH_P_IPV4, ETH_P_IPV6},
    ip::IpHeader,
    parse::{self, Frame, Packet},
    policy,
    rewrite::{self, ChecksumPatch},
    stats::Reflected,
};

/// What differs between the XDP and the TC program once a packet is turned around.
pub(crate) trait Hook: EbpfContext {
    /// Brings the checksums in line with the rewrite and readies the packet to go back out
    /// of the interface it came in on.
    ///
    /// # Errors
    /// [`DropReason::RewriteFailed`] when a helper refused the packet: it is already
    /// turned around, so it can be neither sent nor passed.
    fn send_back<H: IpHeader>(
        &self,
        packet: &Packet<H>,
        patch: &ChecksumPatch,
    ) -> Result<(), DropReason>;
}

/// Reflects the frame between `data` and `data_end`, if the policy says so.
///
/// # Errors
/// The reason the frame is passed to the stack untouched, or dropped.
#[inline(always)]
pub(crate) fn reflect<C: Hook>(
    ctx: &C,
    data: usize,
    data_end: usize,
) -> Result<Reflected, NotReflected> {
    let frame = parse::parse_frame(data, data_end)?;
    // One monomorphised path per family: the verifier checks each with its own header
    // bounds instead of tracking a family tag the compiler may spill to the stack.
    match frame.ether_type {
        ETH_P_IPV4 => reflect_ip::<C, Ipv4Hdr>(ctx, &frame),
        ETH_P_IPV6 => reflect_ip::<C, Ipv6Hdr>(ctx, &frame),
        _ => Err(PassReason::NotIp.into()),
    }
}

#[inline(always)]
fn reflect_ip<C: Hook, H: IpHeader>(ctx: &C, frame: &Frame) -> Result<Reflected, NotReflected> {
    let packet = parse::parse_packet::<H>(frame)?;
    let reflection = policy::decide(ctx, &packet)?;
    // SAFETY: `packet` was parsed from this very frame, which nothing has moved since.
    let patch = unsafe { rewrite::turn_around(&packet, &reflection) };
    ctx.send_back(&packet, &patch)?;
    Ok(Reflected {
        direction: reflection.direction,
        family: H::FAMILY,
        map_slot: reflection.map_slot,
    })
}
