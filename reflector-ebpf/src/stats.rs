//! Counting, done once per packet at the program's entry point.

use aya_ebpf::maps::PerCpuArray;
use reflector_common::{Counter, Direction, Family, MapStatIndex, NotReflected, StatIndex};

use crate::maps::{MAP_STATS, STATS};

/// A reflected packet, as the entry point counts it.
pub(crate) struct Reflected {
    /// Forward or reverse.
    pub direction: Direction,
    /// IP version.
    pub family: Family,
    /// The counter slot of the packet's port map.
    pub map_slot: u16,
}

/// Adds one packet of `bytes` bytes to the counter at `index`.
#[inline(always)]
pub(crate) fn count(index: StatIndex, bytes: u64) {
    add(&STATS, index.get(), bytes);
}

/// What the entry point does with a packet.
pub(crate) enum Action {
    /// Sends it back out (`XDP_TX`, `TC_ACT_REDIRECT`).
    Reflect,
    /// Hands it to the stack (`XDP_PASS`, `TC_ACT_OK`).
    Pass,
    /// Drops it (`XDP_DROP`, `TC_ACT_SHOT`).
    Drop,
}

/// Counts a packet's verdict, once: a reflected packet under its direction and family and
/// under its port map, a passed or dropped one under its reason. Returns what to do with it.
#[inline(always)]
pub(crate) fn count_verdict(verdict: Result<Reflected, NotReflected>, bytes: u64) -> Action {
    match verdict {
        Ok(reflected) => {
            count_map(&reflected, bytes);
            count(
                StatIndex::reflected(reflected.direction, reflected.family),
                bytes,
            );
            Action::Reflect
        }
        Err(NotReflected::Pass(reason)) => {
            count(StatIndex::passed(reason), bytes);
            Action::Pass
        }
        Err(NotReflected::Drop(reason)) => {
            count(StatIndex::dropped(reason), bytes);
            Action::Drop
        }
    }
}

/// Adds one reflected packet of `bytes` bytes to its port map's counter.
#[inline(always)]
fn count_map(reflected: &Reflected, bytes: u64) {
    let index = MapStatIndex::new(reflected.map_slot, reflected.direction, reflected.family);
    add(&MAP_STATS, index.get(), bytes);
}

#[inline(always)]
fn add(map: &PerCpuArray<Counter>, index: u32, bytes: u64) {
    if let Some(counter) = map.get_ptr_mut(index) {
        // SAFETY: the pointer is to this CPU's slot of a per-CPU array, which nothing else
        // writes while this program runs on this CPU.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += bytes;
        }
    }
}
