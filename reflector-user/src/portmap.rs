//! Port maps as users write them (`10022:22`, `10053:53/udp`, `10080:80/tcp,udp`) and the
//! port table the kernel program reads.

use std::{collections::BTreeMap, fmt, str::FromStr};

use reflector_common::Protocol;
use thiserror::Error;

/// One port map: connections to this host's `listen` port go back to the client's own
/// `target` port, for each protocol listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMap {
    /// The port `L` clients connect to on this host.
    pub listen: u16,
    /// The port `P` on the client that reflected connections land on.
    pub target: u16,
    /// The protocols reflected; never empty.
    pub protocols: Vec<Protocol>,
}

/// A port map that could not be parsed or does not fit with the others.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortMapError {
    /// Not of the form `L:P[/proto]`.
    #[error(
        "invalid port map '{input}': expected LISTEN:TARGET[/tcp|/udp|/tcp,udp], e.g. --map 10022:22 or --map 10053:53/udp"
    )]
    Syntax {
        /// What the user wrote.
        input: String,
    },
    /// A port that is not a number from 1 to 65535.
    #[error(
        "invalid port '{port}' in port map '{input}': ports are 1 to 65535, e.g. --map 10022:22"
    )]
    Port {
        /// The offending port text.
        port: String,
        /// What the user wrote.
        input: String,
    },
    /// A protocol other than tcp or udp.
    #[error(
        "invalid protocol '{protocol}' in port map '{input}': use tcp, udp or tcp,udp, e.g. --map 10053:53/udp"
    )]
    Protocol {
        /// The offending protocol text.
        protocol: String,
        /// What the user wrote.
        input: String,
    },
    /// The same listen port mapped twice for one protocol.
    #[error(
        "listen port {listen}/{protocol} is mapped twice ({first} and {second}): each listen port can go to one target port per protocol, e.g. --map {listen}:{first_target}"
    )]
    Duplicate {
        /// The listen port.
        listen: u16,
        /// The protocol name.
        protocol: &'static str,
        /// The first map, as written.
        first: String,
        /// The second map, as written.
        second: String,
        /// The first map's target port.
        first_target: u16,
    },
}

impl FromStr for PortMap {
    type Err = PortMapError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let syntax = || PortMapError::Syntax {
            input: input.to_owned(),
        };
        let (ports, protocols) = match input.split_once('/') {
            Some((ports, protocols)) => (ports, Some(protocols)),
            None => (input, None),
        };
        let (listen, target) = ports.split_once(':').ok_or_else(syntax)?;
        let port = |text: &str| {
            text.trim()
                .parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| PortMapError::Port {
                    port: text.to_owned(),
                    input: input.to_owned(),
                })
        };
        let (listen, target) = (port(listen)?, port(target)?);
        let mut list = Vec::new();
        for name in protocols.unwrap_or("tcp").split(',') {
            let protocol = match name.trim().to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                _ => {
                    return Err(PortMapError::Protocol {
                        protocol: name.to_owned(),
                        input: input.to_owned(),
                    });
                }
            };
            if !list.contains(&protocol) {
                list.push(protocol);
            }
        }
        Ok(Self {
            listen,
            target,
            protocols: list,
        })
    }
}

impl fmt::Display for PortMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/", self.listen, self.target)?;
        for (i, protocol) in self.protocols.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(protocol.name())?;
        }
        Ok(())
    }
}

/// Checks that no listen port is mapped twice for one protocol.
///
/// # Errors
/// [`PortMapError::Duplicate`] naming both maps.
pub fn check_unique(maps: &[PortMap]) -> Result<(), PortMapError> {
    let mut seen: BTreeMap<(Protocol, u16), &PortMap> = BTreeMap::new();
    for map in maps {
        for &protocol in &map.protocols {
            if let Some(first) = seen.insert((protocol, map.listen), map) {
                return Err(PortMapError::Duplicate {
                    listen: map.listen,
                    protocol: protocol.name(),
                    first: first.to_string(),
                    second: map.to_string(),
                    first_target: first.target,
                });
            }
        }
    }
    Ok(())
}

/// The maps as the logs and replies show them: `10022:22/tcp 10053:53/udp`, or `none`.
#[must_use]
pub fn list(maps: &[PortMap]) -> String {
    if maps.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<String> = maps.iter().map(ToString::to_string).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> PortMap {
        text.parse().unwrap()
    }

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(
            map("10022:22"),
            PortMap {
                listen: 10022,
                target: 22,
                protocols: vec![Protocol::Tcp]
            }
        );
        assert_eq!(map("10053:53/udp").protocols, vec![Protocol::Udp]);
        assert_eq!(
            map("10080:80/tcp,udp").protocols,
            vec![Protocol::Tcp, Protocol::Udp]
        );
        assert_eq!(map("1:65535/TCP").target, 65535);
        assert_eq!(map("10080:80/tcp,udp").to_string(), "10080:80/tcp,udp");
    }

    #[test]
    fn names_the_bad_value() {
        let cases = [
            ("0:22", "invalid port '0'"),
            ("10022:0", "invalid port '0'"),
            ("70000:22", "invalid port '70000'"),
            ("10022:x", "invalid port 'x'"),
            ("10022", "invalid port map '10022'"),
            ("10022:22/sctp", "invalid protocol 'sctp'"),
        ];
        for (input, expected) in cases {
            let message = input.parse::<PortMap>().unwrap_err().to_string();
            assert!(message.contains(expected), "{input}: {message}");
            assert!(message.contains("e.g. --map"), "{input}: {message}");
        }
    }

    #[test]
    fn refuses_a_listen_port_mapped_twice_per_protocol() {
        let message = check_unique(&[map("10022:22"), map("10022:2222")])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("listen port 10022/tcp is mapped twice"),
            "{message}"
        );
        check_unique(&[map("10022:22/tcp"), map("10022:2222/udp")]).unwrap();
        check_unique(&[map("10022:22"), map("20022:22")]).unwrap();
    }
}
