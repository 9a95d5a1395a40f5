//! Layout of the per-CPU statistics array: named indices, never magic offsets.

use bytemuck::{Pod, Zeroable};

use crate::{DropReason, PassReason};

/// A packet and byte counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Counter {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted (whole frames, link-layer header included).
    pub bytes: u64,
}

const _: () = assert!(core::mem::size_of::<Counter>() == 16);

/// Which way a reflected packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to service: to a listen port `L`, sent back to the client's port `P`.
    Forward,
    /// Service to client: a reply from `P`, sent back from `L`.
    Reverse,
}

/// IP version of a reflected packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Offset of the counter of `direction` and `family` among the four reflected counters:
/// `direction * 2 + family`.
const fn reflected_offset(direction: Direction, family: Family) -> u32 {
    let direction = match direction {
        Direction::Forward => 0,
        Direction::Reverse => 2,
    };
    let family = match family {
        Family::V4 => 0,
        Family::V6 => 1,
    };
    direction + family
}

/// Counters per port map in the per-map statistics array: one per direction and family.
pub const COUNTERS_PER_MAP: u32 = 4;

/// An index into the per-map statistics array ([`crate::maps::MAP_STATS`]):
/// `slot * 4 + direction * 2 + family`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MapStatIndex(u32);

impl MapStatIndex {
    /// Packets of the port map with counter slot `slot` reflected in `direction` for
    /// `family`.
    #[must_use]
    pub const fn new(slot: u16, direction: Direction, family: Family) -> Self {
        Self(slot as u32 * COUNTERS_PER_MAP + reflected_offset(direction, family))
    }

    /// The array index.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// An index into the statistics array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StatIndex(u32);

/// First index of the reflected counters, after one counter per [`PassReason`].
const REFLECTED_BASE: u32 = PassReason::COUNT as u32;
/// Index of the flows-created counter, after the four reflected counters.
const FLOWS_CREATED: u32 = REFLECTED_BASE + 4;
/// Index of the counter of flow-table inserts that failed.
const FLOW_INSERT_FAILED: u32 = FLOWS_CREATED + 1;

/// First index of the dropped counters, one per [`DropReason`] (appended in layout 2).
const DROPPED_BASE: u32 = FLOW_INSERT_FAILED + 1;

/// Entries in the statistics array.
pub const STATS_LEN: u32 = DROPPED_BASE + DropReason::COUNT as u32;

impl StatIndex {
    /// Packets passed to the stack for `reason`.
    #[must_use]
    pub const fn passed(reason: PassReason) -> Self {
        Self(reason as u32)
    }

    /// Packets dropped for `reason`.
    #[must_use]
    pub const fn dropped(reason: DropReason) -> Self {
        Self(DROPPED_BASE + reason as u32)
    }

    /// Packets reflected in `direction` for `family`.
    #[must_use]
    pub const fn reflected(direction: Direction, family: Family) -> Self {
        Self(REFLECTED_BASE + reflected_offset(direction, family))
    }

    /// Flow-table entries created by forward packets (the packet counter counts flows).
    pub const FLOWS_CREATED: Self = Self(FLOWS_CREATED);

    /// Forward packets reflected although their flow could not be recorded.
    pub const FLOW_INSERT_FAILED: Self = Self(FLOW_INSERT_FAILED);

    /// The array index.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }
}
