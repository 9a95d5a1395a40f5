//! Counting, done once per packet at the program's entry point.

use aya_ebpf::maps::PerCpuArray;
use reflector_common::{Counter, Direction, Family, MapStatIndex, PassReason, StatIndex};

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

/// Counts a packet's verdict, once: a reflected packet under its direction and family and
/// under its port map, a passed one under its reason. Returns whether it was reflected.
#[inline(always)]
pub(crate) fn count_verdict(verdict: Result<Reflected, PassReason>, bytes: u64) -> bool {
    match verdict {
        Ok(reflected) => {
            count_map(&reflected, bytes);
            count(
                StatIndex::reflected(reflected.direction, reflected.family),
                bytes,
            );
            true
        }
        Err(reason) => {
            count(StatIndex::passed(reason), bytes);
            false
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
