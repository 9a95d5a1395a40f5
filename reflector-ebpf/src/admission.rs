//! Whether a new flow may be recorded (the allow-list, then the rate limits), and the loop
//! guard on packets of known flows and of maps without flow state. The arithmetic is
//! `reflector_common::admission`'s, which the userspace path shares; this module only
//! reads and writes the maps.
//!
//! The buckets are shared by every CPU and updated with a plain read-modify-write, not an
//! atomic one (the BPF atomics that return a value need kernel 5.12; reflector runs on
//! 5.10): two CPUs admitting a flow from the same prefix at the same instant may both read
//! the bucket before either writes, and one write is lost. A lost write only ever books
//! less time, so the race admits more, never fewer: at worst each CPU acts as if it had
//! the bucket to itself (n CPUs, n times the rate), and exactly the rate when updates do
//! not overlap. A per-CPU bucket would be exact per CPU but split every limit n ways, so a
//! source whose flows all hash to one CPU would get a fraction of its rate.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::lpm_trie::Key};
use reflector_common::{AdmissionConfig, DropReason, Family, admission};

use crate::{
    ip::IpHeader,
    maps::{ADMISSION, ALLOW_V4, ALLOW_V6, GLOBAL_BUCKET, LOOP_MEMORY, SOURCE_BUCKETS},
    parse::Packet,
};

/// The admission configuration in force.
#[inline(always)]
pub(crate) fn config() -> AdmissionConfig {
    AdmissionConfig::in_force(ADMISSION.get(0))
}

/// Admits a packet nothing vouches for from `packet`'s source, or says why not: one that
/// would record a new flow, or one of a map without flow state. `charge` says whether it is
/// charged against the rate limits (always for a new flow; see
/// [`reflector_common::admission::opens_flow`] without flow state).
///
/// # Errors
/// [`DropReason::SourceNotAllowed`] for a source outside an enforced allow-list;
/// [`DropReason::RateLimited`] when its prefix's bucket or the global one is empty (then
/// neither is charged).
#[inline(always)]
pub(crate) fn admit<H: IpHeader>(
    packet: &Packet<H>,
    config: &AdmissionConfig,
    charge: bool,
) -> Result<(), DropReason> {
    if config.allow_list_enforced() && !allowed::<H>(&packet.src_addr) {
        return Err(DropReason::SourceNotAllowed);
    }
    if !charge || (config.source_rate == 0 && config.global_rate == 0) {
        return Ok(());
    }
    // SAFETY: a plain helper call without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut source = None;
    if config.source_rate != 0 {
        let key = admission::source_bucket_key(packet.src_addr, H::FAMILY == Family::V4, config);
        let slot = SOURCE_BUCKETS.get_ptr_mut(key);
        // SAFETY: the pointer is to a map value of plain integers, read at once.
        let tat = slot.map_or(0, |slot| unsafe { *slot });
        let next = admission::admit(tat, now, config.source_rate, config.source_burst)
            .ok_or(DropReason::RateLimited)?;
        source = Some((key, slot, next));
    }
    if config.global_rate != 0 {
        let slot = GLOBAL_BUCKET.get_ptr_mut(0);
        // SAFETY: as above.
        let tat = slot.map_or(0, |slot| unsafe { *slot });
        let next = admission::admit(tat, now, config.global_rate, config.global_burst)
            .ok_or(DropReason::RateLimited)?;
        if let Some(slot) = slot {
            // SAFETY: a map value of plain integers; see the module's note on races.
            unsafe { *slot = next };
        }
    }
    match source {
        // SAFETY: as above.
        Some((_, Some(slot), next)) => unsafe { *slot = next },
        Some((key, None, next)) => {
            // A failed insert (the map out of memory) leaves the prefix without a bucket,
            // as an eviction would: its next flow finds it full. Admitting is what a
            // bucket the map cannot hold means.
            let _ = SOURCE_BUCKETS.insert(key, next, 0);
        }
        None => {}
    }
    Ok(())
}

/// Whether `addr` (IPv4-mapped for IPv4) is inside the allow-list of its family.
#[inline(always)]
fn allowed<H: IpHeader>(addr: &[u8; 16]) -> bool {
    match H::FAMILY {
        Family::V4 => ALLOW_V4
            .get(Key::new(32, [addr[12], addr[13], addr[14], addr[15]]))
            .is_some(),
        Family::V6 => ALLOW_V6.get(Key::new(128, *addr)).is_some(),
    }
}

/// The loop guard on a packet of a known flow arriving with `ttl`: `highest` is the
/// flow's highest TTL seen in the packet's direction, raised when `ttl` is higher.
///
/// # Errors
/// [`DropReason::LoopDetected`] when `ttl` is `LOOP_TTL_DROP` or more below it.
///
/// # Safety
/// `highest` must point into a value of the flow table.
#[inline(always)]
pub(crate) unsafe fn guard_loop(highest: *mut u8, ttl: u8) -> Result<(), DropReason> {
    // SAFETY: the caller passes a pointer into a map value.
    let seen = unsafe { *highest };
    let raised = admission::loop_detected(seen, ttl)?;
    // Written only when it rises: a legitimate flow's packets arrive with one TTL, so they
    // never write, and the value's cache line stays shared between CPUs.
    if raised != seen {
        // SAFETY: as above; racing writers store TTLs of the same flow, any of them fine.
        unsafe { *highest = raised };
    }
    Ok(())
}

/// The loop guard on a packet without flow state: its 5-tuple's slot in the loop memory
/// keeps the highest TTL the tuple arrived with, and a loop brings the same tuple back
/// lower.
///
/// # Errors
/// [`DropReason::LoopDetected`] when the tuple arrived `LOOP_TTL_DROP` or more higher
/// before.
#[inline(always)]
pub(crate) fn guard_loop_stateless<H: IpHeader>(packet: &Packet<H>) -> Result<(), DropReason> {
    let hash = admission::loop_hash(
        &packet.src_addr,
        &packet.dst_addr,
        packet.src_port,
        packet.dst_port,
        packet.protocol as u8,
    );
    let Some(slot) = LOOP_MEMORY.get_ptr_mut(admission::loop_slot_index(hash)) else {
        return Ok(());
    };
    // SAFETY: a pointer into an array value, used before the program ends.
    let seen = unsafe { *slot };
    if let Some(next) = admission::remember_ttl(seen, admission::loop_tag(hash), packet.ttl)? {
        // SAFETY: as above. Racing writers (another CPU, another tuple) only make the guard
        // forget one tuple; the TTL still ends its loop.
        unsafe { *slot = next };
    }
    Ok(())
}
