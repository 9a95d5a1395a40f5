//! Decides what happens to a parsed packet: reflected forward (to a listen port), reflected
//! back (a reply of a reflected flow), passed to the stack or dropped for a named reason.
//! Records new flows as a side effect of the forward decision.
//!
//! A map whose target port `P` no other listen port shares needs no flow state: a packet
//! from `P` to this host can only be a reply to that map's reflection, so it is reflected
//! from the map's listen port as it comes (unless this host has a socket of its own for it,
//! see `sockets`), and forward packets record nothing. Forward and reverse packets may then
//! cross different reflectors (ECMP in front of several). A target shared by two listen
//! ports keeps the flow table, as does every map when the control plane forces it.
//!
//! Admission (the allow-list and the rate limits) applies to every packet nothing vouches
//! for: the forward packet that would record a new flow, and every packet of a map without
//! flow state (either direction), after the checks that pass a packet to the stack (a
//! packet reflector would not reflect anyway is not its to drop). Packets of a known flow,
//! forward or reverse, skip it: their source was admitted when the flow was recorded (a
//! reverse packet's source is the flow's client itself). They get the loop guard instead,
//! which keeps its memory in the flow; packets without flow state keep theirs in the loop
//! memory, a slot per 5-tuple (`admission::guard_loop_stateless`), after admission.

use aya_ebpf::EbpfContext;
use aya_log_ebpf::debug;
use reflector_common::{
    AdmissionConfig, Direction, Family, FlowKey, FlowValue, NotReflected, PassReason, StatIndex,
    addr_kind, admission::opens_flow, port_index,
};

use crate::{
    addr, admission,
    ip::IpHeader,
    maps::{FLOWS, LOCAL_ADDRS, PORTS},
    parse::Packet,
    sockets, stats,
};

/// How a packet is to be reflected: the ports it leaves with (host byte order).
pub(crate) struct Reflection {
    /// Forward or reverse.
    pub direction: Direction,
    /// The new source port.
    pub src_port: u16,
    /// The new destination port.
    pub dst_port: u16,
    /// The counter slot of the packet's port map.
    pub map_slot: u16,
}

/// Decides whether `packet` is reflected, and how.
///
/// # Errors
/// The reason the packet is passed to the stack or dropped instead.
#[inline(always)]
pub(crate) fn decide<C: EbpfContext, H: IpHeader>(
    ctx: &C,
    packet: &Packet<H>,
) -> Result<Reflection, NotReflected> {
    let listen = PORTS.get(port_index(packet.protocol, packet.dst_port));
    if let Some(entry) = listen
        && entry.is_listen()
    {
        let config = admission::config();
        let route = Route {
            target_port: entry.target_port,
            map_slot: entry.map_slot,
        };
        if entry.stateless_forward() && !config.flow_table_forced() {
            return forward_stateless(packet, &route, &config);
        }
        return forward(ctx, packet, &route, &config);
    }
    match PORTS.get(port_index(packet.protocol, packet.src_port)) {
        Some(entry) if entry.is_target() => {
            let config = admission::config();
            match entry.stateless_reverse() {
                Some(listen_port) if !config.flow_table_forced() => {
                    reverse_stateless(ctx, packet, (listen_port, entry.map_slot), &config)
                }
                _ => reverse(packet, &config),
            }
        }
        _ => Err(PassReason::PortNotMapped.into()),
    }
}

/// Where a listen port's forward packets go: its map's target port and counter slot.
#[derive(Clone, Copy)]
struct Route {
    target_port: u16,
    map_slot: u16,
}

/// A packet to listen port `L` of a map without flow state: checked and admitted as the
/// first packet of a flow would be, every time, and reflected without recording anything.
#[inline(always)]
fn forward_stateless<H: IpHeader>(
    packet: &Packet<H>,
    route: &Route,
    config: &AdmissionConfig,
) -> Result<Reflection, NotReflected> {
    check_unvouched(packet)?;
    admission::admit(
        packet,
        config,
        opens_flow(packet.protocol, packet.tcp_flags),
    )?;
    if config.loop_guard() {
        admission::guard_loop_stateless(packet)?;
    }
    Ok(Reflection {
        direction: Direction::Forward,
        src_port: packet.src_port,
        dst_port: route.target_port,
        map_slot: route.map_slot,
    })
}

/// A packet from target port `P` that exactly one map (`listen_port`, counted in
/// `map_slot`) maps to: a reply to this host's reflection unless this host has a socket of
/// its own for it. Checked and admitted as a new forward flow would be: nothing vouches
/// for it.
#[inline(always)]
fn reverse_stateless<C: EbpfContext, H: IpHeader>(
    ctx: &C,
    packet: &Packet<H>,
    (listen_port, map_slot): (u16, u16),
    config: &AdmissionConfig,
) -> Result<Reflection, NotReflected> {
    check_unvouched(packet)?;
    if sockets::owns(ctx, packet) {
        return Err(PassReason::NoFlow.into());
    }
    admission::admit(
        packet,
        config,
        opens_flow(packet.protocol, packet.tcp_flags),
    )?;
    if config.loop_guard() {
        admission::guard_loop_stateless(packet)?;
    }
    Ok(Reflection {
        direction: Direction::Reverse,
        src_port: listen_port,
        dst_port: packet.dst_port,
        map_slot,
    })
}

/// The checks a packet nothing vouches for passes before it is admitted: to one of this
/// host's addresses, from a source a reflection may be sent to, with a TTL to spare.
#[inline(always)]
fn check_unvouched<H: IpHeader>(packet: &Packet<H>) -> Result<(), PassReason> {
    if is_ipv6_to_ipv4_mapped(packet) {
        return Err(PassReason::DestinationNotLocal);
    }
    // SAFETY: map values are plain integers; the reference is used at once.
    let dst_kind = unsafe { LOCAL_ADDRS.get(packet.dst_addr) }.copied();
    if dst_kind != Some(addr_kind::LOCAL) {
        return Err(PassReason::DestinationNotLocal);
    }
    check_source(&packet.src_addr)?;
    check_ttl(packet)
}

/// A packet to listen port `L`: goes back to the sender's `target_port`.
#[inline(always)]
fn forward<C: EbpfContext, H: IpHeader>(
    ctx: &C,
    packet: &Packet<H>,
    route: &Route,
    config: &AdmissionConfig,
) -> Result<Reflection, NotReflected> {
    let Route {
        target_port,
        map_slot,
    } = *route;
    let key = FlowKey::new(
        packet.src_addr,
        packet.dst_addr,
        target_port,
        packet.src_port,
        packet.protocol as u8,
    );
    if is_ipv6_to_ipv4_mapped(packet) {
        return Err(PassReason::DestinationNotLocal.into());
    }
    let value = FlowValue::new(packet.dst_port, map_slot);
    // The flow first: a known flow passed the address checks and admission when it was
    // recorded, so its packets skip them. The lookup also refreshes the flow without taking
    // a free LRU node, as an insert would on every packet.
    // SAFETY: map values are plain integers; the pointer is used before the program ends.
    let known = FLOWS
        .get_ptr_mut(key)
        .filter(|flow| unsafe { (**flow).same_route(&value) });
    if let Some(flow) = known {
        check_ttl(packet)?;
        if config.loop_guard() {
            // SAFETY: a pointer into the flow's map value.
            unsafe { admission::guard_loop(&raw mut (*flow).forward_ttl, packet.ttl)? };
        }
    } else {
        check_unvouched(packet)?;
        admission::admit(packet, config, true)?;
        if FLOWS
            .insert(key, value.with_forward_ttl(packet.ttl), 0)
            .is_ok()
        {
            stats::count(StatIndex::FLOWS_CREATED, 0);
            debug!(
                ctx,
                "flow: port {} from [{:i}]:{} back to port {}",
                packet.dst_port,
                packet.src_addr,
                packet.src_port,
                target_port
            );
        } else {
            stats::count(StatIndex::FLOW_INSERT_FAILED, 0);
        }
    }
    Ok(Reflection {
        direction: Direction::Forward,
        src_port: packet.src_port,
        dst_port: target_port,
        map_slot,
    })
}

/// A packet from a target port `P`: a reply of a reflected flow, if the flow table knows it.
#[inline(always)]
fn reverse<H: IpHeader>(
    packet: &Packet<H>,
    config: &AdmissionConfig,
) -> Result<Reflection, NotReflected> {
    // Never a reply: IPv6 flows are recorded only to this host's IPv6 addresses.
    if is_ipv6_to_ipv4_mapped(packet) {
        return Err(PassReason::NoFlow.into());
    }
    let key = FlowKey::new(
        packet.src_addr,
        packet.dst_addr,
        packet.src_port,
        packet.dst_port,
        packet.protocol as u8,
    );
    let flow = FLOWS.get_ptr_mut(key).ok_or(PassReason::NoFlow)?;
    check_ttl(packet)?;
    if config.loop_guard() {
        // SAFETY: a pointer into the flow's map value.
        unsafe { admission::guard_loop(&raw mut (*flow).reverse_ttl, packet.ttl)? };
    }
    // SAFETY: map values are plain integers; read at once.
    let flow = unsafe { *flow };
    Ok(Reflection {
        direction: Direction::Reverse,
        src_port: flow.listen_port,
        dst_port: packet.dst_port,
        map_slot: flow.map_slot,
    })
}

/// Refuses a TTL or hop limit that reflecting would take to zero: two reflectors aimed at
/// each other must not bounce a packet forever.
#[inline(always)]
fn check_ttl<H>(packet: &Packet<H>) -> Result<(), PassReason> {
    if packet.ttl <= 1 {
        return Err(PassReason::TtlExpired);
    }
    Ok(())
}

/// Refuses sources a reflected packet must never be sent to.
#[inline(always)]
fn check_source(addr: &[u8; 16]) -> Result<(), PassReason> {
    addr::check_source_scope(addr)?;
    // SAFETY: map values are plain integers; the reference is used at once.
    match unsafe { LOCAL_ADDRS.get(addr) }.copied() {
        Some(addr_kind::LOCAL) => Err(PassReason::SourceLocal),
        Some(addr_kind::BROADCAST) => Err(PassReason::SourceBroadcast),
        _ => Ok(()),
    }
}

/// Whether `packet` is IPv6 to an IPv4-mapped address (`::ffff:A`). IPv4 addresses are
/// keyed IPv4-mapped in `LOCAL_ADDRS` and in flow keys, so such a packet would find IPv4
/// entries: A's address kind, and the flows of IPv4 clients. But `::ffff:A` is never one of
/// this host's IPv6 addresses.
#[inline(always)]
fn is_ipv6_to_ipv4_mapped<H: IpHeader>(packet: &Packet<H>) -> bool {
    H::FAMILY == Family::V6 && addr::is_v4_mapped(&packet.dst_addr)
}
