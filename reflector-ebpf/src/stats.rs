//! Counting, done once per packet at the program's entry point.

use reflector_common::StatIndex;

use crate::maps::STATS;

/// Adds one packet of `bytes` bytes to the counter at `index`.
#[inline(always)]
pub fn count(index: StatIndex, bytes: u64) {
    if let Some(counter) = STATS.get_ptr_mut(index.get()) {
        // SAFETY: the pointer is to this CPU's slot of a per-CPU array, which nothing else
        // writes while this program runs on this CPU.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += bytes;
        }
    }
}
