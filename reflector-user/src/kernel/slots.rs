//! Counter slots of the port maps: each (listen port, protocol) gets a small number, written
//! into its port-table entry, under which the kernel program counts its reflected packets
//! (`MAP_STATS`). A slot stays with its map while the map exists, and is freed when the map
//! is deleted; the caller zeroes a slot's counters before it is given out again.

use std::collections::{BTreeMap, BTreeSet};

use reflector_common::{PortEntry, Protocol, maps::MAP_SLOTS};
use thiserror::Error;

use crate::{portmap::PortMap, reply_path::ReplyPath};

/// More port maps than there are counter slots.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "{count} port maps (listen port and protocol pairs) are more than the kernel program's \
     {MAP_SLOTS} counter slots: use at most {MAP_SLOTS}"
)]
pub struct TooManyMaps {
    /// How many (listen port, protocol) pairs were asked for.
    pub count: usize,
}

/// One port map with a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slotted {
    /// The listen port `L`.
    pub listen: u16,
    /// The target port `P`.
    pub target: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The counter slot.
    pub slot: u16,
    /// How its replies are found on the kernel path.
    pub reply_path: ReplyPath,
}

/// Which (listen port, protocol) holds which counter slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapSlots {
    /// (protocol, listen) to (slot, target).
    assigned: BTreeMap<(Protocol, u16), (u16, u16)>,
    /// Whether the flow table is kept for every map (`--flow-table always`), which the
    /// reply paths [`Self::iter`] gives show.
    flow_table_forced: bool,
}

impl MapSlots {
    /// The slots an adopted port table records: every listen entry's slot, as
    /// (`protocol`, `port`, entry) triples. A slot out of range or recorded twice is
    /// dropped (its map gets a fresh, zeroed slot).
    pub fn from_table(entries: impl IntoIterator<Item = (Protocol, u16, PortEntry)>) -> Self {
        let mut assigned = BTreeMap::new();
        let mut used = BTreeSet::new();
        for (protocol, port, entry) in entries {
            if entry.is_listen()
                && u32::from(entry.map_slot) < MAP_SLOTS
                && used.insert(entry.map_slot)
            {
                assigned.insert((protocol, port), (entry.map_slot, entry.target_port));
            }
        }
        Self {
            assigned,
            flow_table_forced: false,
        }
    }

    /// Records whether the flow table is kept for every map.
    pub fn set_flow_table_forced(&mut self, forced: bool) {
        self.flow_table_forced = forced;
    }

    /// Assigns slots for `maps`: maps that stay keep their slot, slots of maps gone are
    /// freed, and new maps get the lowest free slots. Returns the slots newly given out,
    /// whose counters the caller zeroes. On error nothing changes.
    ///
    /// # Errors
    /// [`TooManyMaps`] when `maps` need more than [`MAP_SLOTS`] slots.
    pub fn update(&mut self, maps: &[PortMap]) -> Result<Vec<u16>, TooManyMaps> {
        let mut wanted: BTreeMap<(Protocol, u16), u16> = BTreeMap::new();
        for map in maps {
            for &protocol in &map.protocols {
                wanted.insert((protocol, map.listen), map.target);
            }
        }
        if wanted.len() > MAP_SLOTS as usize {
            return Err(TooManyMaps {
                count: wanted.len(),
            });
        }
        let mut assigned = BTreeMap::new();
        let mut new = Vec::new();
        for (&key, &target) in &wanted {
            if let Some(&(slot, _)) = self.assigned.get(&key) {
                assigned.insert(key, (slot, target));
            } else {
                new.push((key, target));
            }
        }
        let used: BTreeSet<u16> = assigned.values().map(|&(slot, _)| slot).collect();
        let mut free = (0..).filter(|slot| !used.contains(slot));
        let mut fresh = Vec::new();
        for (key, target) in new {
            // The count check leaves a free slot for each; this only guards the arithmetic.
            let Some(slot) = free.next() else {
                return Err(TooManyMaps {
                    count: wanted.len(),
                });
            };
            assigned.insert(key, (slot, target));
            fresh.push(slot);
        }
        self.assigned = assigned;
        Ok(fresh)
    }

    /// The slot of `protocol`'s listen port `listen`, if mapped.
    #[must_use]
    pub fn slot(&self, protocol: Protocol, listen: u16) -> Option<u16> {
        self.assigned
            .get(&(protocol, listen))
            .map(|&(slot, _)| slot)
    }

    /// Every port map with its slot and reply path, by protocol and listen port.
    pub fn iter(&self) -> impl Iterator<Item = Slotted> + '_ {
        let triples = || {
            self.assigned
                .iter()
                .map(|(&(protocol, listen), &(_, target))| (protocol, listen, target))
        };
        self.assigned
            .iter()
            .map(move |(&(protocol, listen), &(slot, target))| Slotted {
                listen,
                target,
                protocol,
                slot,
                reply_path: ReplyPath::of(
                    triples(),
                    protocol,
                    listen,
                    target,
                    self.flow_table_forced,
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(texts: &[&str]) -> Vec<PortMap> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn slots_are_stable_freed_and_reused() {
        let mut slots = MapSlots::default();
        let fresh = slots.update(&maps(&["10022:22", "10053:53/udp"])).unwrap();
        assert_eq!(fresh.len(), 2);
        let ssh = slots.slot(Protocol::Tcp, 10022).unwrap();
        let dns = slots.slot(Protocol::Udp, 10053).unwrap();
        assert_ne!(ssh, dns);

        // Adding a map keeps the others' slots; nothing but the new slot is fresh.
        let fresh = slots
            .update(&maps(&["10022:22", "10053:53/udp", "10080:80/tcp,udp"]))
            .unwrap();
        assert_eq!(fresh.len(), 2);
        assert_eq!(slots.slot(Protocol::Tcp, 10022), Some(ssh));
        assert_eq!(slots.slot(Protocol::Udp, 10053), Some(dns));
        assert!(!fresh.contains(&ssh) && !fresh.contains(&dns));

        // Deleting frees the slot; the next new map reuses it and reports it fresh.
        let fresh = slots
            .update(&maps(&["10053:53/udp", "10080:80/tcp,udp"]))
            .unwrap();
        assert!(fresh.is_empty());
        assert_eq!(slots.slot(Protocol::Tcp, 10022), None);
        let fresh = slots
            .update(&maps(&["10053:53/udp", "10080:80/tcp,udp", "10443:443"]))
            .unwrap();
        assert_eq!(fresh, vec![ssh]);
        assert_eq!(slots.slot(Protocol::Tcp, 10443), Some(ssh));

        // A new target for the same listen port keeps the slot.
        slots
            .update(&maps(&["10053:5353/udp", "10080:80/tcp,udp", "10443:443"]))
            .unwrap();
        assert_eq!(slots.slot(Protocol::Udp, 10053), Some(dns));
        assert!(
            slots
                .iter()
                .any(|map| map.listen == 10053 && map.target == 5353 && map.slot == dns)
        );
    }

    #[test]
    fn refuses_more_maps_than_slots_and_changes_nothing() {
        let mut slots = MapSlots::default();
        slots.update(&maps(&["10022:22"])).unwrap();
        let before = slots.clone();
        let many: Vec<PortMap> = (1..=u16::try_from(MAP_SLOTS).unwrap() + 1)
            .map(|listen| format!("{listen}:22").parse().unwrap())
            .collect();
        let error = slots.update(&many).unwrap_err();
        assert_eq!(error.count, MAP_SLOTS as usize + 1);
        assert!(error.to_string().contains("at most 1024"), "{error}");
        assert_eq!(slots, before);
        slots.update(&many[..MAP_SLOTS as usize]).unwrap();
    }

    #[test]
    fn adoption_keeps_recorded_slots() {
        let entry = PortEntry {
            target_port: 22,
            map_slot: 7,
            ..PortEntry::default()
        };
        let target_only = PortEntry {
            flags: reflector_common::PORT_FLAG_TARGET,
            ..PortEntry::default()
        };
        let mut duplicate = entry;
        duplicate.target_port = 80;
        let mut slots = MapSlots::from_table([
            (Protocol::Tcp, 10022, entry),
            (Protocol::Tcp, 22, target_only),
            (Protocol::Tcp, 10080, duplicate),
        ]);
        assert_eq!(slots.slot(Protocol::Tcp, 10022), Some(7));
        assert_eq!(slots.slot(Protocol::Tcp, 10080), None);
        let fresh = slots.update(&maps(&["10022:22", "10080:80"])).unwrap();
        assert_eq!(slots.slot(Protocol::Tcp, 10022), Some(7));
        assert_eq!(fresh, vec![0]);
    }
}
