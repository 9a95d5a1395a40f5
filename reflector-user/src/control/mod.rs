//! The control socket: a Unix socket the daemon serves (root-only) and `reflector stats` and
//! `reflector map ...` talk to. One JSON request per line, one JSON reply per line:
//!
//! ```text
//! {"command":"stats"}                        -> {"ok":true,"stats":{...}}
//! {"command":"map-list"}                     -> {"ok":true,"maps":["10022:22/tcp"]}
//! {"command":"map-add","map":"10080:80/tcp"} -> {"ok":true,"maps":[...]}
//! {"command":"map-del","map":"10080"}        -> {"ok":true,"maps":[...]}
//! {"command":"allow-list"}                   -> {"ok":true,"allow":["10.0.0.0/8"]}
//! {"command":"allow-add","prefix":"fd00::/8"} -> {"ok":true,"allow":[...]}
//! {"command":"allow-del","prefix":"fd00::/8"} -> {"ok":true,"allow":[...]}
//! anything wrong                             -> {"ok":false,"error":"..."}
//! ```
//!
//! Map changes ([`MapChange`], checked by [`changed`]) are applied by the daemon's main
//! loop through the same all-or-nothing path as a SIGHUP reload
//! ([`crate::dataplane::Dataplane::set_maps`]), and last until the next reload or restart.

pub mod client;
pub mod server;

use std::{fmt, str::FromStr};

use reflector_common::Protocol;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    admission::{AdmissionSettings, Prefix},
    portmap::{self, PortMap, PortMapError},
    reply_path,
    telemetry::Snapshot,
};

/// The longest request line the daemon reads, newline included.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What a client asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Every counter now.
    Stats,
    /// The port maps now.
    MapList,
    /// Add a port map, `L:P[/proto]`.
    MapAdd {
        /// The map as written on the command line.
        map: String,
    },
    /// Remove the maps of a listen port, `L[/proto]`.
    MapDel {
        /// The listen port, optionally with the protocols to remove.
        map: String,
    },
    /// The allowed source prefixes now (empty: every source).
    AllowList,
    /// Allow a source prefix, `10.0.0.0/8` (the first one turns the allow-list on).
    AllowAdd {
        /// The prefix as written on the command line.
        prefix: String,
    },
    /// Stop allowing a source prefix.
    AllowDel {
        /// The prefix, as it was added.
        prefix: String,
    },
}

/// The daemon's answer. `ok` says whether the request was carried out; `error` says why
/// not; the other fields are there when the request asks for them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The port maps after the request (`map-list`, `map-add`, `map-del`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maps: Option<Vec<String>>,
    /// How the kernel path finds each map's replies, in the order of `maps` (`stateless`,
    /// or `flow-table (why)`); absent when no kernel program is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_paths: Option<Vec<String>>,
    /// The allowed source prefixes after the request (`allow-*`); empty: every source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Every counter (`stats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Box<Snapshot>>,
}

impl Reply {
    /// A refusal saying `why`.
    #[must_use]
    pub fn error(why: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(why.into()),
            ..Self::default()
        }
    }

    /// Success, listing `maps`.
    #[must_use]
    pub fn maps(maps: &[PortMap]) -> Self {
        Self {
            ok: true,
            maps: Some(maps.iter().map(ToString::to_string).collect()),
            ..Self::default()
        }
    }

    /// Success, listing `maps` with how the kernel path finds their replies (`forced`: the
    /// flow table for every map).
    #[must_use]
    pub fn maps_with_paths(maps: &[PortMap], forced: bool) -> Self {
        Self {
            reply_paths: Some(
                maps.iter()
                    .map(|map| reply_path::describe(maps, map, forced))
                    .collect(),
            ),
            ..Self::maps(maps)
        }
    }

    /// Success, listing the allowed `prefixes`.
    #[must_use]
    pub fn allow(prefixes: &[Prefix]) -> Self {
        Self {
            ok: true,
            allow: Some(prefixes.iter().map(ToString::to_string).collect()),
            ..Self::default()
        }
    }

    /// Success, with `stats`.
    #[must_use]
    pub fn stats(stats: Snapshot) -> Self {
        Self {
            ok: true,
            stats: Some(Box::new(stats)),
            ..Self::default()
        }
    }

    /// Parses a reply line.
    ///
    /// # Errors
    /// When `line` is not a reply in JSON.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The reply as one JSON line, newline included.
    #[must_use]
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self)
            .unwrap_or_else(|_| r#"{"ok":false,"error":"cannot encode the reply"}"#.to_owned());
        line.push('\n');
        line
    }
}

/// Parses one request line (without its newline).
///
/// # Errors
/// A message for the client: not JSON, not an object, an unknown command or field.
pub fn parse_request(line: &str) -> Result<Request, String> {
    serde_json::from_str(line).map_err(|error| {
        let text = error.to_string();
        if text.contains("unknown variant") || text.contains("missing field `command`") {
            format!(
                "invalid request: {text}; commands are stats, map-list, map-add, map-del, \
                 allow-list, allow-add and allow-del, e.g. \
                 {{\"command\":\"map-add\",\"map\":\"10080:80\"}}"
            )
        } else {
            format!("invalid request: {text}; send one JSON object per line, e.g. {{\"command\":\"stats\"}}")
        }
    })
}

/// The listen port (and protocols) a `map del` removes: `10080`, `10080/udp`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapKey {
    /// The listen port.
    pub listen: u16,
    /// The protocols to remove; `None` removes every protocol of the port.
    pub protocols: Option<Vec<Protocol>>,
}

/// A `map del` argument that is not `L[/tcp|/udp|/tcp,udp]`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid listen port '{input}': expected LISTEN[/tcp|/udp|/tcp,udp], e.g. 10080 or 10080/udp"
)]
pub struct MapKeyError {
    /// What the user wrote.
    pub input: String,
}

impl FromStr for MapKey {
    type Err = MapKeyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || MapKeyError {
            input: input.to_owned(),
        };
        let (port, protocols) = match input.split_once('/') {
            Some((port, protocols)) => (port, Some(protocols)),
            None => (input, None),
        };
        let listen = port
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&port| port != 0)
            .ok_or_else(error)?;
        let protocols = protocols
            .map(|list| {
                let mut protocols = Vec::new();
                for name in list.split(',') {
                    let protocol = match name.trim().to_ascii_lowercase().as_str() {
                        "tcp" => Protocol::Tcp,
                        "udp" => Protocol::Udp,
                        _ => return Err(error()),
                    };
                    if !protocols.contains(&protocol) {
                        protocols.push(protocol);
                    }
                }
                Ok(protocols)
            })
            .transpose()?;
        Ok(Self { listen, protocols })
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listen)?;
        if let Some(protocols) = &self.protocols {
            let names: Vec<&str> = protocols.iter().map(|protocol| protocol.name()).collect();
            write!(f, "/{}", names.join(","))?;
        }
        Ok(())
    }
}

/// A change the control socket asks the daemon's main loop for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Of the port maps.
    Maps(MapChange),
    /// Of the allow-list.
    Allow(AllowChange),
}

/// A change of the allow-list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowChange {
    /// Report the prefixes, change nothing.
    List,
    /// Allow this prefix too.
    Add(Prefix),
    /// Stop allowing this prefix.
    Del(Prefix),
}

/// An allow-list change the daemon refuses before touching anything.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AllowChangeError {
    /// The prefix is allowed already.
    #[error("{prefix} is allowed already; the allow-list is {list}")]
    Present {
        /// What was asked to be added.
        prefix: Prefix,
        /// The list now.
        list: String,
    },
    /// The prefix is not in the list.
    #[error("{prefix} is not in the allow-list; it is {list}")]
    Absent {
        /// What was asked to be removed.
        prefix: Prefix,
        /// The list now.
        list: String,
    },
    /// Removing it would leave the list empty, which allows every source.
    #[error(
        "{prefix} is the last allowed prefix, and an empty allow-list allows every source: add \
         another first (0.0.0.0/0 and ::/0 allow everyone), or remove `allow` from the config \
         and reload"
    )]
    Last {
        /// What was asked to be removed.
        prefix: Prefix,
    },
}

/// The allow-list `current` would become with `change`.
///
/// # Errors
/// [`AllowChangeError`]: a prefix added twice, one removed that is not there, or the last.
pub fn allow_changed(
    current: &AdmissionSettings,
    change: &AllowChange,
) -> Result<AdmissionSettings, AllowChangeError> {
    let mut new = current.clone();
    match change {
        AllowChange::List => {}
        AllowChange::Add(prefix) => {
            if current.allow.contains(prefix) {
                return Err(AllowChangeError::Present {
                    prefix: *prefix,
                    list: current.allow_list(),
                });
            }
            new.allow.push(*prefix);
        }
        AllowChange::Del(prefix) => {
            if !current.allow.contains(prefix) {
                return Err(AllowChangeError::Absent {
                    prefix: *prefix,
                    list: current.allow_list(),
                });
            }
            new.allow.retain(|allowed| allowed != prefix);
            if new.allow.is_empty() {
                return Err(AllowChangeError::Last { prefix: *prefix });
            }
        }
    }
    Ok(new)
}

/// A change of the port maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapChange {
    /// Report the maps, change nothing.
    List,
    /// Add this map.
    Add(PortMap),
    /// Remove these listen ports.
    Del(MapKey),
}

/// A map change the daemon refuses before touching anything.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ChangeError {
    /// The added map's listen port is mapped already for one of its protocols.
    #[error(transparent)]
    Duplicate(#[from] PortMapError),
    /// The listen port (and protocols) to remove are not mapped.
    #[error("port {key} is not mapped; the maps are {maps}")]
    NotMapped {
        /// What was asked to be removed.
        key: MapKey,
        /// The maps now.
        maps: String,
    },
    /// Removing would leave no map.
    #[error(
        "{key} is the last port map; the daemon keeps at least one (add another first, or \
         stop the daemon)"
    )]
    LastMap {
        /// What was asked to be removed.
        key: MapKey,
    },
}

/// The maps `current` would become with `change`.
///
/// # Errors
/// [`ChangeError`]: a listen port mapped twice, a port that is not mapped, or removing the
/// last map.
pub fn changed(current: &[PortMap], change: &MapChange) -> Result<Vec<PortMap>, ChangeError> {
    match change {
        MapChange::List => Ok(current.to_vec()),
        MapChange::Add(map) => {
            let mut new = current.to_vec();
            new.push(map.clone());
            portmap::check_unique(&new)?;
            Ok(new)
        }
        MapChange::Del(key) => {
            let mut removed = false;
            let new: Vec<PortMap> = current
                .iter()
                .filter_map(|map| {
                    if map.listen != key.listen {
                        return Some(map.clone());
                    }
                    let mut map = map.clone();
                    map.protocols.retain(|protocol| {
                        let remove = key
                            .protocols
                            .as_ref()
                            .is_none_or(|protocols| protocols.contains(protocol));
                        removed |= remove;
                        !remove
                    });
                    (!map.protocols.is_empty()).then_some(map)
                })
                .collect();
            if !removed {
                return Err(ChangeError::NotMapped {
                    key: key.clone(),
                    maps: portmap::list(current),
                });
            }
            if new.is_empty() {
                return Err(ChangeError::LastMap { key: key.clone() });
            }
            Ok(new)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(list: &[&str]) -> Vec<PortMap> {
        list.iter().map(|m| m.parse().unwrap()).collect()
    }

    fn names(maps: &[PortMap]) -> Vec<String> {
        maps.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn parses_every_request() {
        assert_eq!(parse_request(r#"{"command":"stats"}"#), Ok(Request::Stats));
        assert_eq!(
            parse_request(r#" {"command":"map-list"} "#),
            Ok(Request::MapList)
        );
        assert_eq!(
            parse_request(r#"{"command":"map-add","map":"10080:80/tcp"}"#),
            Ok(Request::MapAdd {
                map: "10080:80/tcp".to_owned()
            })
        );
        assert_eq!(
            parse_request(r#"{"map":"10080","command":"map-del"}"#),
            Ok(Request::MapDel {
                map: "10080".to_owned()
            })
        );
    }

    #[test]
    fn refuses_malformed_requests() {
        for (line, expected) in [
            ("garbage", "invalid request"),
            ("", "invalid request"),
            ("[]", "invalid request"),
            (r#"{"command":"reboot"}"#, "commands are stats, map-list"),
            (r#"{"map":"1:2"}"#, "commands are stats"),
            (r#"{"command":"map-add"}"#, "missing field `map`"),
            (r#"{"command":"map-add","map":7}"#, "invalid request"),
        ] {
            let error = parse_request(line).unwrap_err();
            assert!(error.contains(expected), "{line:?}: {error}");
        }
    }

    #[test]
    fn replies_are_one_json_line() {
        assert_eq!(
            Reply::error("no").to_line(),
            "{\"ok\":false,\"error\":\"no\"}\n"
        );
        let line = Reply::maps(&maps(&["10022:22"])).to_line();
        assert_eq!(line, "{\"ok\":true,\"maps\":[\"10022:22/tcp\"]}\n");
        let reply: Reply = serde_json::from_str(&line).unwrap();
        assert_eq!(reply, Reply::maps(&maps(&["10022:22"])));
        let stats = Reply::stats(Snapshot::default()).to_line();
        let reply: Reply = serde_json::from_str(&stats).unwrap();
        assert_eq!(reply.stats.as_deref(), Some(&Snapshot::default()));
    }

    #[test]
    fn map_keys() {
        assert_eq!(
            "10080".parse(),
            Ok(MapKey {
                listen: 10_080,
                protocols: None
            })
        );
        assert_eq!(
            "10080/udp".parse(),
            Ok(MapKey {
                listen: 10_080,
                protocols: Some(vec![Protocol::Udp])
            })
        );
        assert_eq!(
            "10080/udp".parse::<MapKey>().unwrap().to_string(),
            "10080/udp"
        );
        for bad in ["", "0", "70000", "x", "10080/sctp", "10080:80"] {
            let error = bad.parse::<MapKey>().unwrap_err().to_string();
            assert!(error.contains("e.g. 10080"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn add_refuses_a_listen_port_mapped_twice() {
        let current = maps(&["10022:22", "10053:53/udp"]);
        let add = |map: &str| changed(&current, &MapChange::Add(map.parse().unwrap()));
        assert_eq!(
            names(&add("10080:80").unwrap()),
            ["10022:22/tcp", "10053:53/udp", "10080:80/tcp"]
        );
        assert_eq!(names(&add("10053:53/tcp").unwrap()).len(), 3);
        let error = add("10022:23").unwrap_err().to_string();
        assert!(error.contains("mapped twice"), "{error}");
    }

    #[test]
    fn del_removes_a_port_or_one_protocol() {
        let current = maps(&["10022:22", "10080:80/tcp,udp"]);
        let del = |key: &str| changed(&current, &MapChange::Del(key.parse().unwrap()));
        assert_eq!(names(&del("10080").unwrap()), ["10022:22/tcp"]);
        assert_eq!(
            names(&del("10080/udp").unwrap()),
            ["10022:22/tcp", "10080:80/tcp"]
        );
        let error = del("10081").unwrap_err().to_string();
        assert!(error.contains("port 10081 is not mapped"), "{error}");
        let error = del("10022/udp").unwrap_err().to_string();
        assert!(error.contains("10022/udp is not mapped"), "{error}");
        let only = maps(&["10022:22"]);
        let error = changed(&only, &MapChange::Del("10022".parse().unwrap()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("last port map"), "{error}");
    }
}
