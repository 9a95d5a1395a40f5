//! The XDP entry point: reflects with `XDP_TX`, patching checksums in place.

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};
use reflector_common::{Direction, Family, PassReason, Protocol, StatIndex};

use crate::{
    consts::{ETH_P_IPV4, ETH_P_IPV6},
    csum,
    ip::IpHeader,
    parse::{self, Frame},
    policy, rewrite, stats,
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
pub fn reflector_xdp(ctx: XdpContext) -> u32 {
    let (data, data_end) = (ctx.data(), ctx.data_end());
    let (index, action) = match reflect(&ctx, data, data_end) {
        Ok((direction, family)) => (StatIndex::reflected(direction, family), xdp_action::XDP_TX),
        Err(reason) => (StatIndex::passed(reason), xdp_action::XDP_PASS),
    };
    stats::count(index, (data_end - data) as u64);
    action
}

#[inline(always)]
fn reflect(
    ctx: &XdpContext,
    data: usize,
    data_end: usize,
) -> Result<(Direction, Family), PassReason> {
    let frame = parse::parse_frame(data, data_end)?;
    match frame.ether_type {
        ETH_P_IPV4 => reflect_ip::<Ipv4Hdr>(ctx, &frame),
        ETH_P_IPV6 => reflect_ip::<Ipv6Hdr>(ctx, &frame),
        _ => Err(PassReason::NotIp),
    }
}

#[inline(always)]
fn reflect_ip<H: IpHeader>(
    ctx: &XdpContext,
    frame: &Frame,
) -> Result<(Direction, Family), PassReason> {
    let packet = parse::parse_packet::<H>(frame)?;
    let reflection = policy::decide(ctx, &packet)?;
    // SAFETY: `packet` was parsed from this very frame, which nothing has moved since.
    let patch = unsafe { rewrite::turn_around(&packet, &reflection) };

    // SAFETY: the parser checked both checksum pointers against the frame's end.
    let (l4_check, l3_check) = unsafe {
        (
            &mut *packet.l4_check,
            H::CHECK_OFFSET
                .map(|offset| &mut *packet.ip.cast::<u8>().add(offset).cast::<[u8; 2]>()),
        )
    };
    let old = u16::from_be_bytes(*l4_check);
    // A zero UDP checksum over IPv4 means "none" and stays so; a computed zero is sent as
    // all ones (RFC 768).
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
    Ok((reflection.direction, H::FAMILY))
}
