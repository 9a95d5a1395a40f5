//! Every counter at one moment, as plain data: what `/metrics` renders, and what
//! `reflector stats --json` and the control socket print. The field names and label
//! values describe themselves, so the JSON form needs no schema beside it.

use std::sync::atomic::Ordering::Relaxed;

use reflector_common::{
    Counter, Direction, DropReason, Family, MapStatIndex, PassReason, Protocol,
};
use serde::{Deserialize, Serialize};

use crate::{
    kernel::slots::MapSlots,
    splice::{ConnectFailure, SpliceCounters},
};

/// Every counter the daemon keeps, read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The reflector's version.
    pub version: String,
    /// How each interface is reflected.
    pub interfaces: Vec<InterfaceMode>,
    /// Whether every interface has its mode active.
    pub ready: bool,
    /// The kernel program's counters, summed over CPUs; `None` when no program is loaded.
    pub kernel: Option<KernelSnapshot>,
    /// The userspace path's counters.
    pub splice: SpliceSnapshot,
}

/// How one interface is reflected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceMode {
    /// The interface's name.
    pub interface: String,
    /// `xdp`, `xdp-skb`, `tc` or `splice`.
    pub mode: String,
}

/// The kernel program's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSnapshot {
    /// Packets and bytes reflected, one entry per direction and IP family.
    pub reflected: Vec<ReflectedCount>,
    /// Packets and bytes passed to the stack, one entry per reason.
    pub passed: Vec<ReasonCount>,
    /// Packets and bytes dropped (never reflected, never passed), one entry per reason.
    #[serde(default)]
    pub dropped: Vec<ReasonCount>,
    /// Flow-table entries created.
    pub flows_created: u64,
    /// Forward packets reflected although their flow could not be recorded.
    pub flow_insert_failures: u64,
    /// Entries in the flow table now: flows not yet forgotten (the table forgets the least
    /// recently used when full; nothing else removes them).
    #[serde(default)]
    pub flows_active: u64,
    /// Flows the full table forgot to make room for new ones (least recently used first):
    /// created less active, as nothing else removes a flow. Counted with `flows_active`;
    /// exact when no flow is being created meanwhile.
    #[serde(default)]
    pub flows_evicted: u64,
    /// Packets and bytes reflected per port map, one entry per map, direction and IP
    /// family.
    #[serde(default)]
    pub maps: Vec<MapCount>,
    /// How each port map's replies are found, one entry per map and protocol.
    #[serde(default)]
    pub reply_paths: Vec<MapReplyPath>,
}

/// How one port map's replies are found on the kernel path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapReplyPath {
    /// The listen port `L`.
    pub listen: u16,
    /// The target port `P`.
    pub target: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `stateless` (no flow state: forward and reverse packets may cross different
    /// reflectors) or `flow-table`.
    pub reply_path: String,
}

/// Packets and bytes reflected for one port map, one way, for one IP family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapCount {
    /// The listen port `L`.
    pub listen: u16,
    /// The target port `P`.
    pub target: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `forward` (client to service) or `reverse` (service to client).
    pub direction: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

/// Packets and bytes reflected one way, for one IP family.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReflectedCount {
    /// `forward` (client to service) or `reverse` (service to client).
    pub direction: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

/// Packets and bytes passed to the stack, or dropped, for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The reason's name ([`PassReason::name`], [`reflector_common::DropReason::name`]).
    pub reason: String,
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

/// The userspace path's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpliceSnapshot {
    /// TCP clients accepted.
    pub tcp_accepted: u64,
    /// TCP connections being reflected now.
    pub tcp_active: u64,
    /// TCP clients reset because `--max-conns` were active.
    pub tcp_over_limit: u64,
    /// Connect-back failures, one entry per reason.
    pub connect_failures: Vec<ConnectFailureCount>,
    /// Bytes from clients to their services.
    pub bytes_to_services: u64,
    /// Bytes from services back to their clients.
    pub bytes_to_clients: u64,
    /// UDP flows started.
    pub udp_flows: u64,
    /// UDP flows open now.
    pub udp_active: u64,
    /// UDP datagrams dropped because `--max-udp-flows` were open.
    pub udp_over_limit: u64,
    /// UDP datagrams moved, both ways.
    pub udp_datagrams: u64,
    /// New flows refused by admission (the allow-list, the new-flow limits): TCP clients
    /// reset at accept, UDP clients' datagrams dropped.
    #[serde(default)]
    pub refused: Vec<RefusedCount>,
}

/// New flows of one protocol the userspace path refused for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedCount {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The reason's name ([`reflector_common::DropReason::name`]).
    pub reason: String,
    /// New flows refused.
    pub count: u64,
}

/// Connect-back failures for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectFailureCount {
    /// The reason's name ([`ConnectFailure::name`]).
    pub reason: String,
    /// Failures.
    pub count: u64,
}

/// The label value of a direction.
#[must_use]
pub(crate) const fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Forward => "forward",
        Direction::Reverse => "reverse",
    }
}

/// The label value of an IP family.
#[must_use]
pub(crate) const fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl KernelSnapshot {
    /// Builds the kernel section from `read`, which gives the summed counter at a
    /// statistics index.
    ///
    /// # Errors
    /// The first error `read` returns.
    pub fn read<E>(
        mut read: impl FnMut(reflector_common::StatIndex) -> Result<Counter, E>,
    ) -> Result<Self, E> {
        let mut reflected = Vec::new();
        for direction in [Direction::Forward, Direction::Reverse] {
            for family in [Family::V4, Family::V6] {
                let counter = read(reflector_common::StatIndex::reflected(direction, family))?;
                reflected.push(ReflectedCount {
                    direction: direction_name(direction).to_owned(),
                    family: family_name(family).to_owned(),
                    packets: counter.packets,
                    bytes: counter.bytes,
                });
            }
        }
        let mut passed = Vec::new();
        for reason in PassReason::ALL {
            let counter = read(reflector_common::StatIndex::passed(reason))?;
            passed.push(ReasonCount {
                reason: reason.name().to_owned(),
                packets: counter.packets,
                bytes: counter.bytes,
            });
        }
        let mut dropped = Vec::new();
        for reason in DropReason::ALL {
            let counter = read(reflector_common::StatIndex::dropped(reason))?;
            dropped.push(ReasonCount {
                reason: reason.name().to_owned(),
                packets: counter.packets,
                bytes: counter.bytes,
            });
        }
        Ok(Self {
            reflected,
            passed,
            dropped,
            flows_created: read(reflector_common::StatIndex::FLOWS_CREATED)?.packets,
            flow_insert_failures: read(reflector_common::StatIndex::FLOW_INSERT_FAILED)?.packets,
            flows_active: 0,
            flows_evicted: 0,
            maps: Vec::new(),
            reply_paths: Vec::new(),
        })
    }

    /// The per-map section: for every map of `slots`, by protocol and listen port, its
    /// counters per direction and family from `read`, which gives the summed counter at a
    /// per-map statistics index.
    ///
    /// # Errors
    /// The first error `read` returns.
    pub fn read_maps<E>(
        slots: &MapSlots,
        mut read: impl FnMut(MapStatIndex) -> Result<Counter, E>,
    ) -> Result<Vec<MapCount>, E> {
        let mut maps = Vec::new();
        for map in slots.iter() {
            for direction in [Direction::Forward, Direction::Reverse] {
                for family in [Family::V4, Family::V6] {
                    let counter = read(MapStatIndex::new(map.slot, direction, family))?;
                    maps.push(MapCount {
                        listen: map.listen,
                        target: map.target,
                        protocol: map.protocol.name().to_owned(),
                        direction: direction_name(direction).to_owned(),
                        family: family_name(family).to_owned(),
                        packets: counter.packets,
                        bytes: counter.bytes,
                    });
                }
            }
        }
        Ok(maps)
    }

    /// The reply path of every map of `slots`, by protocol and listen port.
    #[must_use]
    pub fn reply_paths(slots: &MapSlots) -> Vec<MapReplyPath> {
        slots
            .iter()
            .map(|map| MapReplyPath {
                listen: map.listen,
                target: map.target,
                protocol: map.protocol.name().to_owned(),
                reply_path: map.reply_path.name().to_owned(),
            })
            .collect()
    }
}

impl From<&SpliceCounters> for SpliceSnapshot {
    fn from(counters: &SpliceCounters) -> Self {
        Self {
            tcp_accepted: counters.tcp_accepted.load(Relaxed),
            tcp_active: counters.tcp_active.load(Relaxed),
            tcp_over_limit: counters.tcp_over_limit.load(Relaxed),
            connect_failures: ConnectFailure::ALL
                .iter()
                .map(|&reason| ConnectFailureCount {
                    reason: reason.name().to_owned(),
                    count: counters.connect_failures(reason),
                })
                .collect(),
            bytes_to_services: counters.bytes_to_services.load(Relaxed),
            bytes_to_clients: counters.bytes_to_clients.load(Relaxed),
            udp_flows: counters.udp_flows.load(Relaxed),
            udp_active: counters.udp_active.load(Relaxed),
            udp_over_limit: counters.udp_over_limit.load(Relaxed),
            udp_datagrams: counters.udp_datagrams.load(Relaxed),
            refused: [Protocol::Tcp, Protocol::Udp]
                .into_iter()
                .flat_map(|protocol| {
                    [
                        DropReason::SourceNotAllowed,
                        DropReason::RateLimited,
                        DropReason::LoopDetected,
                    ]
                    .map(|reason| RefusedCount {
                        protocol: protocol.name().to_owned(),
                        reason: reason.name().to_owned(),
                        count: counters.refusals(protocol, reason),
                    })
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[test]
    fn kernel_section_names_every_direction_family_and_reason() {
        let kernel = KernelSnapshot::read(|index| {
            Ok::<_, Infallible>(Counter {
                packets: u64::from(index.get()),
                bytes: 100 * u64::from(index.get()),
            })
        })
        .unwrap();
        assert_eq!(kernel.reflected.len(), 4);
        assert_eq!(kernel.passed.len(), PassReason::COUNT);
        let forward_v6 = &kernel.reflected[1];
        assert_eq!(
            (forward_v6.direction.as_str(), forward_v6.family.as_str()),
            ("forward", "ipv6")
        );
        let index = reflector_common::StatIndex::reflected(Direction::Forward, Family::V6).get();
        assert_eq!(forward_v6.packets, u64::from(index));
        assert_eq!(kernel.passed[0].reason, "not_ip");
        assert_eq!(
            kernel.flows_created,
            u64::from(reflector_common::StatIndex::FLOWS_CREATED.get())
        );
    }

    #[test]
    fn map_section_labels_every_map_direction_and_family() {
        let mut slots = MapSlots::default();
        let maps: Vec<crate::portmap::PortMap> = ["10022:22", "10053:53/udp"]
            .iter()
            .map(|text| text.parse().unwrap())
            .collect();
        slots.update(&maps).unwrap();
        let entries = KernelSnapshot::read_maps(&slots, |index| {
            Ok::<_, Infallible>(Counter {
                packets: u64::from(index.get()),
                bytes: 0,
            })
        })
        .unwrap();
        assert_eq!(entries.len(), 8);
        let dns_reverse_v6 = entries
            .iter()
            .find(|entry| {
                entry.listen == 10053 && entry.direction == "reverse" && entry.family == "ipv6"
            })
            .unwrap();
        assert_eq!(
            (dns_reverse_v6.target, dns_reverse_v6.protocol.as_str()),
            (53, "udp")
        );
        let slot = slots.slot(reflector_common::Protocol::Udp, 10053).unwrap();
        let index = MapStatIndex::new(slot, Direction::Reverse, Family::V6).get();
        assert_eq!(dns_reverse_v6.packets, u64::from(index));
    }
}
