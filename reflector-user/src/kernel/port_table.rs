//! The port table the program reads: one entry per listen and target port, written from
//! the port maps, with the counter slot of each map.

use std::{
    collections::BTreeMap,
    sync::{Arc, PoisonError},
};

use aya::maps::{Array, MapData, MapError, PerCpuArray, PerCpuValues};
use reflector_common::{
    Counter, Direction, Family, MapStatIndex, PORT_FLAG_LISTEN_STATELESS, PORT_FLAG_STATELESS,
    PORT_FLAG_TARGET, PortEntry, Protocol,
    maps::{MAP_STATS, PORTS, PORTS_LEN},
    port_index,
    stats::COUNTERS_PER_MAP,
};

use super::{KernelError, KernelPath, slots::MapSlots};
use crate::{portmap::PortMap, reply_path::ReplyPath};

impl KernelPath {
    /// Writes the port table for `new` (replacing `old`), clearing entries no map needs any
    /// more. Maps that stay keep their counter slot; a new map gets a free slot, whose
    /// counters are zeroed first.
    ///
    /// # Errors
    /// [`KernelError::TooManyMaps`] (nothing changed), or [`KernelError::Map`] when an
    /// update fails.
    pub(crate) fn set_port_maps(
        &mut self,
        old: &[PortMap],
        new: &[PortMap],
    ) -> Result<(), KernelError> {
        let shared = Arc::clone(&self.slots);
        let mut slots = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = slots.clone();
        let fresh = next.update(new)?;
        self.zero_slots(&fresh)?;
        let stale = port_table(old, &next).into_keys();
        self.write_port_table(stale, &port_table(new, &next))?;
        *slots = next;
        Ok(())
    }

    /// Clears the entries at `stale` indices that `table` does not set, then writes `table`.
    fn write_port_table(
        &mut self,
        stale: impl IntoIterator<Item = u32>,
        table: &BTreeMap<u32, PortEntry>,
    ) -> Result<(), KernelError> {
        let map_error = |source| KernelError::Map {
            name: PORTS,
            source,
        };
        let mut ports: Array<&mut MapData, PortEntry> =
            Array::try_from(&mut self.ports).map_err(map_error)?;
        for index in stale {
            if !table.contains_key(&index) {
                ports
                    .set(index, PortEntry::default(), 0)
                    .map_err(map_error)?;
            }
        }
        for (index, entry) in table {
            ports.set(*index, entry, 0).map_err(map_error)?;
        }
        Ok(())
    }

    /// Writes the port table for `maps` into an adopted table whose maps are not known:
    /// every entry is read, the counter slots it records are kept for the maps that stay,
    /// and the entries `maps` do not need are cleared.
    ///
    /// # Errors
    /// [`KernelError::TooManyMaps`], or [`KernelError::Map`] when a read or update fails.
    pub(crate) fn set_port_maps_adopted(&mut self, maps: &[PortMap]) -> Result<(), KernelError> {
        let map_error = |source| KernelError::Map {
            name: PORTS,
            source,
        };
        let pinned = {
            let ports: Array<&MapData, PortEntry> =
                Array::try_from(&self.ports).map_err(map_error)?;
            let mut pinned = Vec::new();
            for index in 0..PORTS_LEN {
                let entry = ports.get(&index, 0).map_err(map_error)?;
                if entry != PortEntry::default() {
                    pinned.push((index, entry));
                }
            }
            pinned
        };
        let mut slots = MapSlots::from_table(pinned.iter().map(|&(index, entry)| {
            let (protocol, port) = port_of_index(index);
            (protocol, port, entry)
        }));
        let fresh = slots.update(maps)?;
        self.zero_slots(&fresh)?;
        let stale = pinned.iter().map(|&(index, _)| index);
        self.write_port_table(stale, &port_table(maps, &slots))?;
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = slots;
        Ok(())
    }

    /// Zeroes every CPU's per-map counters of `slots`, before they are given to new maps.
    fn zero_slots(&mut self, slots: &[u16]) -> Result<(), KernelError> {
        if slots.is_empty() {
            return Ok(());
        }
        let map_error = |source| KernelError::Map {
            name: MAP_STATS,
            source,
        };
        let mut counters: PerCpuArray<&mut MapData, Counter> =
            PerCpuArray::try_from(&mut self.map_stats).map_err(map_error)?;
        let cpus =
            aya::util::nr_cpus().map_err(|(_, error)| map_error(MapError::IoError(error)))?;
        for &slot in slots {
            let first = MapStatIndex::new(slot, Direction::Forward, Family::V4).get();
            for index in first..first + COUNTERS_PER_MAP {
                let zero = PerCpuValues::try_from(vec![Counter::default(); cpus])
                    .map_err(|error| map_error(MapError::IoError(error)))?;
                counters.set(index, zero, 0).map_err(map_error)?;
            }
        }
        Ok(())
    }
}

/// The protocol and port of port-table index `index` ([`reflector_common::port_index`]).
fn port_of_index(index: u32) -> (Protocol, u16) {
    let protocol = if index >> 16 == 0 {
        Protocol::Tcp
    } else {
        Protocol::Udp
    };
    (protocol, (index & 0xffff) as u16)
}

/// The port table the kernel program reads, as (index, entry) pairs: an entry for every
/// listen port and every target port of `maps`, listen entries with their counter slot in
/// `slots` (0 when it has none). Indices not listed are all-zero entries.
///
/// A map whose replies need no flow state ([`ReplyPath::Stateless`]) has its target port
/// marked stateless, with its listen port, and its listen port too. The forced flow table
/// is the admission entry's flag, not the table's: the table stays as it is when it
/// changes.
#[must_use]
pub(super) fn port_table(maps: &[PortMap], slots: &MapSlots) -> BTreeMap<u32, PortEntry> {
    let mut table: BTreeMap<u32, PortEntry> = BTreeMap::new();
    for map in maps {
        for &protocol in &map.protocols {
            let stateless = ReplyPath::of_map(maps, map, protocol, false).is_stateless();
            let listen_slot = slots.slot(protocol, map.listen).unwrap_or_default();
            let listen = table.entry(port_index(protocol, map.listen)).or_default();
            listen.target_port = map.target;
            listen.map_slot = listen_slot;
            if stateless {
                listen.flags |= PORT_FLAG_LISTEN_STATELESS;
            }
            let target = table.entry(port_index(protocol, map.target)).or_default();
            target.flags |= PORT_FLAG_TARGET;
            if stateless {
                target.flags |= PORT_FLAG_STATELESS;
                target.stateless_listen = map.listen;
                target.map_slot = listen_slot;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> PortMap {
        text.parse().unwrap()
    }

    #[test]
    fn table_marks_listen_and_target_ports() {
        let maps = [map("10022:22"), map("10053:53/udp"), map("22:10022")];
        let mut slots = MapSlots::default();
        slots.update(&maps).unwrap();
        let table = port_table(&maps, &slots);
        let tcp_10022 = table[&port_index(Protocol::Tcp, 10022)];
        assert_eq!(tcp_10022.target_port, 22);
        assert_eq!(Some(tcp_10022.map_slot), slots.slot(Protocol::Tcp, 10022));
        assert!(tcp_10022.is_target());
        let tcp_22 = table[&port_index(Protocol::Tcp, 22)];
        assert_eq!(tcp_22.target_port, 10022);
        assert!(tcp_22.is_target());
        let udp_53 = table[&port_index(Protocol::Udp, 53)];
        assert!(!udp_53.is_listen() && udp_53.is_target());
        assert!(!table.contains_key(&port_index(Protocol::Udp, 10022)));
        assert_eq!(table.len(), 4);
    }

    #[test]
    fn unique_targets_are_stateless_and_shared_ones_keep_the_flow_table() {
        let maps = [
            map("10022:22/tcp,udp"),
            map("20022:22/tcp"),
            map("10053:53/tcp,udp"),
        ];
        let mut slots = MapSlots::default();
        slots.update(&maps).unwrap();
        let table = port_table(&maps, &slots);
        // 53 is mapped from 10053 alone, in each protocol.
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            let target = table[&port_index(protocol, 53)];
            assert_eq!(target.stateless_reverse(), Some(10053), "{protocol:?}");
            assert_eq!(
                Some(target.map_slot),
                slots.slot(protocol, 10053),
                "a stateless target counts in its map's slot"
            );
            assert!(table[&port_index(protocol, 10053)].stateless_forward());
        }
        // TCP 22 is shared by 10022 and 20022; UDP 22 belongs to 10022 alone.
        let tcp_22 = table[&port_index(Protocol::Tcp, 22)];
        assert!(tcp_22.is_target());
        assert_eq!(tcp_22.stateless_reverse(), None);
        assert!(!table[&port_index(Protocol::Tcp, 10022)].stateless_forward());
        assert!(!table[&port_index(Protocol::Tcp, 20022)].stateless_forward());
        assert_eq!(
            table[&port_index(Protocol::Udp, 22)].stateless_reverse(),
            Some(10022)
        );
        assert!(table[&port_index(Protocol::Udp, 10022)].stateless_forward());
    }

    #[test]
    fn a_target_that_is_also_a_listen_port_keeps_the_flow_table() {
        let maps = [map("80:80"), map("10022:22"), map("22:10023")];
        let mut slots = MapSlots::default();
        slots.update(&maps).unwrap();
        let table = port_table(&maps, &slots);
        let port = |port| table[&port_index(Protocol::Tcp, port)];
        assert_eq!(port(80).stateless_reverse(), None);
        assert!(!port(80).stateless_forward());
        // 22 is 10022's target and a listen port itself: a reflection to 22 is reflected.
        assert_eq!(port(22).stateless_reverse(), None);
        assert!(!port(10022).stateless_forward());
        // 10023 is nobody's listen port.
        assert_eq!(port(10023).stateless_reverse(), Some(22));
        assert!(port(22).stateless_forward());
    }
}
