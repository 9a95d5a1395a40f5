//! How the kernel path finds a port map's replies: without flow state, or in the flow
//! table, and why. The one rule the port table, `map list`, the statistics and the metrics
//! all follow.

use std::fmt;

use reflector_common::Protocol;

use crate::portmap::PortMap;

/// How the replies of one port map (for one protocol) are told apart on the kernel path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyPath {
    /// Without flow state: the map's target port belongs to it alone, so a packet from it
    /// to this host is a reply of this map, whichever reflector saw the forward packet.
    /// Several reflectors can share one address.
    Stateless,
    /// The flow table: another listen port maps to the same target port, and only the
    /// flow says which one a reply belongs to.
    SharedTarget,
    /// The flow table: the target port is also a listen port of this reflector, whose
    /// reflections could come back to it as forward packets.
    TargetIsListenPort,
    /// The flow table, for every map (`--flow-table always`).
    Forced,
}

impl ReplyPath {
    /// The path of the map `listen` to `target` for `protocol`, among `maps` (every map
    /// of this reflector, as (protocol, listen, target) triples); `forced` when the flow
    /// table is kept for every map.
    #[must_use]
    pub fn of<I>(maps: I, protocol: Protocol, listen: u16, target: u16, forced: bool) -> Self
    where
        I: IntoIterator<Item = (Protocol, u16, u16)>,
    {
        if forced {
            return Self::Forced;
        }
        let mut path = Self::Stateless;
        for (other_protocol, other_listen, other_target) in maps {
            if other_protocol != protocol {
                continue;
            }
            if other_listen == target {
                return Self::TargetIsListenPort;
            }
            if other_target == target && other_listen != listen {
                path = Self::SharedTarget;
            }
        }
        path
    }

    /// The path of `map` for `protocol` among `maps`.
    #[must_use]
    pub fn of_map(maps: &[PortMap], map: &PortMap, protocol: Protocol, forced: bool) -> Self {
        Self::of(triples(maps), protocol, map.listen, map.target, forced)
    }

    /// Whether the map needs no flow state.
    #[must_use]
    pub const fn is_stateless(self) -> bool {
        matches!(self, Self::Stateless)
    }

    /// Its name in statistics and metrics: `stateless` or `flow-table`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stateless => "stateless",
            Self::SharedTarget | Self::TargetIsListenPort | Self::Forced => "flow-table",
        }
    }
}

impl fmt::Display for ReplyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stateless => f.write_str("stateless"),
            Self::SharedTarget => f.write_str("flow-table (target port shared with another map)"),
            Self::TargetIsListenPort => f.write_str("flow-table (target port is a listen port)"),
            Self::Forced => f.write_str("flow-table (--flow-table always)"),
        }
    }
}

/// Every (protocol, listen, target) of `maps`.
fn triples(maps: &[PortMap]) -> impl Iterator<Item = (Protocol, u16, u16)> + '_ {
    maps.iter().flat_map(|map| {
        map.protocols
            .iter()
            .map(|&protocol| (protocol, map.listen, map.target))
    })
}

/// What `map list` says of `map`'s reply path on the kernel path: one path when its
/// protocols share it, else each protocol's (`tcp stateless, udp flow-table (...)`).
#[must_use]
pub fn describe(maps: &[PortMap], map: &PortMap, forced: bool) -> String {
    let paths: Vec<(Protocol, ReplyPath)> = map
        .protocols
        .iter()
        .map(|&protocol| (protocol, ReplyPath::of_map(maps, map, protocol, forced)))
        .collect();
    match paths.as_slice() {
        [(_, first), rest @ ..] if rest.iter().all(|(_, path)| path == first) => first.to_string(),
        _ => paths
            .iter()
            .map(|(protocol, path)| format!("{} {path}", protocol.name()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(texts: &[&str]) -> Vec<PortMap> {
        texts.iter().map(|text| text.parse().unwrap()).collect()
    }

    #[test]
    fn a_target_of_one_listen_port_is_stateless() {
        let all = maps(&["10022:22", "10053:53/udp", "10080:80/tcp,udp"]);
        for map in &all {
            for &protocol in &map.protocols {
                assert_eq!(
                    ReplyPath::of_map(&all, map, protocol, false),
                    ReplyPath::Stateless,
                    "{map}"
                );
            }
            assert_eq!(describe(&all, map, false), "stateless");
            assert_eq!(
                describe(&all, map, true),
                "flow-table (--flow-table always)"
            );
        }
    }

    #[test]
    fn shared_targets_and_targets_that_listen_keep_the_flow_table() {
        let all = maps(&[
            "10022:22/tcp,udp",
            "20022:22/tcp",
            "80:80",
            "10023:23",
            "23:2323",
        ]);
        assert_eq!(
            describe(&all, &all[0], false),
            "tcp flow-table (target port shared with another map), udp stateless"
        );
        assert_eq!(
            ReplyPath::of_map(&all, &all[1], Protocol::Tcp, false),
            ReplyPath::SharedTarget
        );
        assert_eq!(
            ReplyPath::of_map(&all, &all[2], Protocol::Tcp, false),
            ReplyPath::TargetIsListenPort
        );
        // 10023's target 23 is a listen port; 23's target 2323 is nobody's listen port.
        assert_eq!(
            ReplyPath::of_map(&all, &all[3], Protocol::Tcp, false),
            ReplyPath::TargetIsListenPort
        );
        assert_eq!(
            ReplyPath::of_map(&all, &all[4], Protocol::Tcp, false),
            ReplyPath::Stateless
        );
        assert_eq!(ReplyPath::TargetIsListenPort.name(), "flow-table");
    }
}
