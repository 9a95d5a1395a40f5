//! `reflector probe`'s command line, and the plan it is turned into once every flag has been
//! checked against the others.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use clap::Parser;

use super::check::{Check, Protocol};
use crate::settings::values::positive_duration;

/// How long the whole probe may take by default.
const DEFAULT_TIMEOUT: &str = "5s";

/// Checks this node's service through one or more reflectors, and says which leg failed.
///
/// Connects to R:L on each reflector (which maps L to this node's port P), checks what the
/// service answers, and, with `--self-test L0[:Q]`, checks through the same reflector that
/// a connection to R:L0 comes back to this node (a listener the probe opens on port Q): a
/// failed self-test blames the reflector or the network, a passed one blames this node's
/// service.
#[derive(Debug, Parser)]
#[command(name = "reflector probe", version, long_about = None)]
#[command(after_help = "\
Exit codes (Nagios, Consul and Kubernetes exec probes read them):
  0 OK        the service answered through enough working reflectors
  1 WARNING   not judged: the reflector or network leg failed (or reflectors disagree)
  2 CRITICAL  the service failed through a working reflector (self-test passed)
  3 UNKNOWN   bad arguments, or the probe itself could not run

Checks (one of; none: connect only):
  --expect-banner TEXT         the first bytes the service sends (SSH-, 220 ...)
  --send DATA [--expect TEXT]  TCP request, the answer must contain TEXT
  --http PATH [--host HOST]    HTTP/1.1 GET, status 2xx
  --udp --send-hex HEX [--expect-hex HEX]  one datagram, the reply must contain HEX
Connect only is inexact in splice mode: a reflector in splice mode accepts before it
connects back, so a stopped service passes a connect-only check for a moment. Reading the
service's first bytes is exact everywhere.

Self-test convention: every reflector host carries `--map 19999:19999` and every probe
passes `--self-test 19999` (port 19999 must be free on the node while the probe runs).

Examples:
  reflector probe --via r1:10022 --via r2:10022 --service 22 --name ssh \\
      --self-test 19999 --expect-banner SSH-
  reflector probe --via r1:10080 --service 80 --self-test 19999 --http /healthz --host web
  reflector probe --via r1:10053 --service 53 --name dns --self-test 19999 --udp \\
      --send-hex 12340100000100000000000007726566...0001 --expect-hex 1234
  reflector probe --via [2001:db8::53]:10022 --service 22 --expect-banner SSH- \\
      --count 5 --timeout 3s --json --prometheus /var/lib/node_exporter/ssh.prom")]
pub(crate) struct ProbeArgs {
    /// A reflector, R or R:L (an address or a name; IPv6 as [ADDR]:L): L is the port R
    /// maps to this node's service [default L: the service port]. Repeat for a quorum.
    #[arg(long = "via", value_name = "R[:L]", required = true)]
    pub via: Vec<Via>,

    /// This node's port P that each reflector's L is mapped to.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u16).range(1..))]
    pub service: u16,

    /// The service's name in the output and the metrics [default: tcp/P or udp/P].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Self-test through each reflector: R maps L0 to Q (`--map L0:Q` on R), and the probe
    /// listens on Q [default Q: L0]. Without it a failure cannot be blamed on one leg and
    /// counts as CRITICAL.
    #[arg(long, value_name = "L0[:Q]")]
    pub self_test: Option<SelfTestPorts>,

    /// Read the service's first bytes and require them to start with TEXT (e.g. `SSH-`).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["send", "send_hex", "expect", "expect_hex", "http", "udp"])]
    pub expect_banner: Option<String>,

    /// Send DATA first (escapes: \r \n \t \0 \\ \xHH).
    #[arg(long, value_name = "DATA", conflicts_with = "send_hex")]
    pub send: Option<String>,

    /// Send these bytes first, as hex (e.g. a DNS query).
    #[arg(long, value_name = "HEX")]
    pub send_hex: Option<Hex>,

    /// The answer must contain TEXT (escapes as for --send).
    #[arg(long, value_name = "TEXT", conflicts_with = "expect_hex")]
    pub expect: Option<String>,

    /// The answer must contain these bytes, as hex.
    #[arg(long, value_name = "HEX")]
    pub expect_hex: Option<Hex>,

    /// HTTP/1.1 GET of PATH; any 2xx status passes.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["send", "send_hex", "expect", "expect_hex", "udp"])]
    pub http: Option<String>,

    /// The Host header of --http [default: R from --via, with :L unless L is 80].
    #[arg(long, value_name = "HOST", requires = "http")]
    pub host: Option<String>,

    /// The service is UDP: send one datagram (--send or --send-hex, resent until a reply
    /// comes) and check the reply.
    #[arg(long)]
    pub udp: bool,

    /// Probes per reflector, each from a new source port (so ECMP paths differ); the
    /// output gives the round trip's min/median/max.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub count: u32,

    /// The longest the whole probe may take, every reflector and probe included.
    #[arg(long, value_name = "DURATION", default_value = DEFAULT_TIMEOUT,
          value_parser = positive_duration)]
    pub timeout: Duration,

    /// How many working reflectors must see the service to judge it; fewer is WARNING.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub quorum: u32,

    /// Exit 0 on WARNING (the line still says WARNING), for callers that know only pass
    /// and fail, such as Kubernetes exec probes: a reflector outage then fails no probe.
    #[arg(long)]
    pub pass_on_warning: bool,

    /// Print the result as JSON instead of the line.
    #[arg(long)]
    pub json: bool,

    /// Also write the result as Prometheus metrics to FILE (`node_exporter`'s textfile
    /// collector: name it *.prom), replaced atomically.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// A reflector as given to `--via`: host and optional listen port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Via {
    /// The address or name, without brackets.
    pub host: String,
    /// L, when given.
    pub port: Option<u16>,
    /// The text as given, for the output.
    pub text: String,
}

/// A `--via`, `--self-test` or hex value the probe cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// Not `R`, `R:L` or `[ADDR]:L`.
    #[error(
        "invalid reflector '{text}': write R or R:L, e.g. r1.example:10022, 192.0.2.1:10022 or [2001:db8::1]:10022"
    )]
    Via {
        /// The value given.
        text: String,
    },
    /// Not `L0` or `L0:Q`.
    #[error("invalid self-test '{text}': write L0 or L0:Q (ports 1-65535), e.g. 19999")]
    SelfTest {
        /// The value given.
        text: String,
    },
    /// Not an even number of hex digits.
    #[error("invalid hex '{text}': write pairs of hex digits, e.g. 0a1b2c")]
    Hex {
        /// The value given.
        text: String,
    },
    /// A backslash escape that is not one of the known ones.
    #[error("invalid escape in '{text}': use \\r \\n \\t \\0 \\\\ or \\xHH")]
    Escape {
        /// The value given.
        text: String,
    },
    /// `--udp` with nothing to send.
    #[error("--udp needs a datagram to send: add --send DATA or --send-hex HEX")]
    UdpWithoutSend,
    /// An HTTP path that does not start with `/`.
    #[error("invalid --http path '{path}': it must start with /, e.g. /healthz")]
    HttpPath {
        /// The value given.
        path: String,
    },
    /// A quorum larger than the reflectors given.
    #[error("--quorum {quorum} needs at least {quorum} --via reflectors, got {given}")]
    Quorum {
        /// The quorum asked for.
        quorum: u32,
        /// How many `--via` were given.
        given: usize,
    },
    /// The directory of `--prometheus` does not exist.
    #[error("--prometheus {path}: its directory does not exist")]
    PrometheusDir {
        /// The file given.
        path: String,
    },
}

impl FromStr for Via {
    type Err = ArgError;

    fn from_str(text: &str) -> Result<Self, ArgError> {
        let bad = || ArgError::Via {
            text: text.to_owned(),
        };
        let port = |digits: &str| match digits.parse::<u16>() {
            Ok(0) | Err(_) => Err(bad()),
            Ok(port) => Ok(Some(port)),
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
            match tail {
                "" => (host, None),
                _ => (host, port(tail.strip_prefix(':').ok_or_else(bad)?)?),
            }
        } else if text.matches(':').count() > 1 {
            // A bare IPv6 address: no port can follow it unambiguously.
            (text, None)
        } else if let Some((host, digits)) = text.split_once(':') {
            (host, port(digits)?)
        } else {
            (text, None)
        };
        let valid_name = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if host.is_empty() || !valid_name {
            return Err(bad());
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `--self-test L0[:Q]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SelfTestPorts {
    /// The port the reflectors listen on for self-tests.
    pub listen: u16,
    /// The port on this node they map it to, where the probe listens.
    pub target: u16,
}

impl FromStr for SelfTestPorts {
    type Err = ArgError;

    fn from_str(text: &str) -> Result<Self, ArgError> {
        let port = |digits: &str| match digits.parse::<u16>() {
            Ok(0) | Err(_) => Err(ArgError::SelfTest {
                text: text.to_owned(),
            }),
            Ok(port) => Ok(port),
        };
        let (listen, target) = match text.split_once(':') {
            Some((listen, target)) => (port(listen)?, port(target)?),
            None => (port(text)?, port(text)?),
        };
        Ok(Self { listen, target })
    }
}

/// Bytes given as hex digits (spaces and colons between pairs are allowed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hex(pub Vec<u8>);

impl FromStr for Hex {
    type Err = ArgError;

    fn from_str(text: &str) -> Result<Self, ArgError> {
        parse_hex(text).map(Self)
    }
}

/// Hex digits to bytes; spaces and colons between pairs are allowed.
fn parse_hex(text: &str) -> Result<Vec<u8>, ArgError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !matches!(b, b' ' | b':')).collect();
    let bad = || ArgError::Hex {
        text: text.to_owned(),
    };
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Text with backslash escapes (`\r \n \t \0 \\ \xHH`) to bytes.
fn unescape(text: &str) -> Result<Vec<u8>, ArgError> {
    let bad = || ArgError::Escape {
        text: text.to_owned(),
    };
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        let (&kind, tail) = rest.split_first().ok_or_else(bad)?;
        rest = tail;
        bytes.push(match kind {
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'\\' => b'\\',
            b'x' => {
                let (pair, tail) = rest.split_at_checked(2).ok_or_else(bad)?;
                rest = tail;
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(bad)?
            }
            _ => return Err(bad()),
        });
    }
    Ok(bytes)
}

/// What one run of the probe does: the arguments, checked against each other.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The reflectors, each with its listen port L resolved (L defaults to P).
    pub vias: Vec<(Via, u16)>,
    /// This node's port P.
    pub service_port: u16,
    /// The service's name in the output.
    pub name: String,
    /// The self-test ports, if any.
    pub self_test: Option<SelfTestPorts>,
    /// What the service must answer.
    pub check: Check,
    /// Probes per reflector.
    pub count: u32,
    /// The bound on the whole probe.
    pub timeout: Duration,
    /// Working reflectors needed to judge the service.
    pub quorum: u32,
    /// Exit 0 on WARNING.
    pub pass_on_warning: bool,
    /// JSON instead of the line.
    pub json: bool,
    /// The `node_exporter` textfile to write, if any.
    pub prometheus: Option<PathBuf>,
}

impl ProbeArgs {
    /// Checks the flags against each other and returns the plan.
    ///
    /// # Errors
    /// [`ArgError`] naming the flag and the fix.
    pub(crate) fn plan(self) -> Result<Plan, ArgError> {
        let send = match (&self.send, self.send_hex) {
            (Some(text), _) => Some(unescape(text)?),
            (None, bytes) => bytes.map(|Hex(bytes)| bytes),
        };
        let expect = match (&self.expect, self.expect_hex) {
            (Some(text), _) => Some(unescape(text)?),
            (None, bytes) => bytes.map(|Hex(bytes)| bytes),
        };
        let check = if self.udp {
            Check::Udp {
                send: send.ok_or(ArgError::UdpWithoutSend)?,
                expect,
            }
        } else if let Some(banner) = &self.expect_banner {
            Check::Banner(unescape(banner)?)
        } else if let Some(path) = self.http {
            if !path.starts_with('/') {
                return Err(ArgError::HttpPath { path });
            }
            Check::Http {
                path,
                host: self.host,
            }
        } else if send.is_some() || expect.is_some() {
            Check::Exchange { send, expect }
        } else {
            Check::Connect
        };
        if self.quorum as usize > self.via.len() {
            return Err(ArgError::Quorum {
                quorum: self.quorum,
                given: self.via.len(),
            });
        }
        if let Some(path) = &self.prometheus {
            let dir = path
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .unwrap_or_else(|| std::path::Path::new("."));
            if !dir.is_dir() {
                return Err(ArgError::PrometheusDir {
                    path: path.display().to_string(),
                });
            }
        }
        let protocol = check.protocol();
        Ok(Plan {
            vias: self
                .via
                .into_iter()
                .map(|via| {
                    let port = via.port.unwrap_or(self.service);
                    (via, port)
                })
                .collect(),
            service_port: self.service,
            name: self.name.unwrap_or_else(|| match protocol {
                Protocol::Tcp => format!("tcp/{}", self.service),
                Protocol::Udp => format!("udp/{}", self.service),
            }),
            self_test: self.self_test,
            check,
            count: self.count,
            timeout: self.timeout,
            quorum: self.quorum,
            pass_on_warning: self.pass_on_warning,
            json: self.json,
            prometheus: self.prometheus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vias() {
        let via = |text: &str| text.parse::<Via>();
        assert_eq!(via("r1").unwrap().port, None);
        assert_eq!(via("r1.example:10022").unwrap().host, "r1.example");
        assert_eq!(via("192.0.2.1:10022").unwrap().port, Some(10022));
        let v6 = via("[2001:db8::1]:10022").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("2001:db8::1", Some(10022)));
        assert_eq!(via("2001:db8::1").unwrap().port, None);
        assert_eq!(via("[2001:db8::1]").unwrap().host, "2001:db8::1");
        for bad in ["", "r1:0", "r1:70000", "r1:", "[::1]x", "a b", ":22"] {
            assert!(via(bad).is_err(), "{bad:?}");
        }
        assert!(
            via("r1:x")
                .unwrap_err()
                .to_string()
                .contains("e.g. r1.example:10022")
        );
    }

    #[test]
    fn self_test_ports() {
        let ports = |text: &str| text.parse::<SelfTestPorts>();
        assert_eq!(
            ports("19999"),
            Ok(SelfTestPorts {
                listen: 19999,
                target: 19999
            })
        );
        assert_eq!(
            ports("19999:29999"),
            Ok(SelfTestPorts {
                listen: 19999,
                target: 29999
            })
        );
        assert!(ports("0").is_err());
        assert!(ports("1:x").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_hex("0a1B ff"), Ok(vec![0x0a, 0x1b, 0xff]));
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert_eq!(unescape(r"GET\r\n\x00\\"), Ok(b"GET\r\n\0\\".to_vec()));
        assert!(unescape(r"\q").is_err());
        assert!(unescape(r"\x4").is_err());
    }

    fn plan(args: &[&str]) -> Result<Plan, ArgError> {
        let mut command_line = vec!["reflector probe"];
        command_line.extend(args);
        ProbeArgs::try_parse_from(command_line).unwrap().plan()
    }

    #[test]
    fn plans() {
        let p = plan(&["--via", "r1", "--service", "22", "--expect-banner", "SSH-"]).unwrap();
        assert_eq!(p.vias[0].1, 22);
        assert_eq!(p.name, "tcp/22");
        assert_eq!(p.check, Check::Banner(b"SSH-".to_vec()));
        let p = plan(&[
            "--via",
            "r1",
            "--service",
            "53",
            "--udp",
            "--send-hex",
            "00",
        ])
        .unwrap();
        assert_eq!(p.name, "udp/53");
        assert_eq!(
            plan(&["--via", "r1", "--service", "53", "--udp"]).unwrap_err(),
            ArgError::UdpWithoutSend
        );
        assert!(matches!(
            plan(&["--via", "r1", "--service", "80", "--http", "x"]),
            Err(ArgError::HttpPath { .. })
        ));
        assert!(matches!(
            plan(&["--via", "r1", "--service", "80", "--quorum", "2"]),
            Err(ArgError::Quorum { .. })
        ));
        assert!(matches!(
            plan(&[
                "--via",
                "r1",
                "--service",
                "80",
                "--prometheus",
                "/nonexistent/x.prom"
            ]),
            Err(ArgError::PrometheusDir { .. })
        ));
        assert!(
            ProbeArgs::try_parse_from([
                "p",
                "--via",
                "r1",
                "--service",
                "22",
                "--http",
                "/",
                "--udp"
            ])
            .is_err()
        );
    }
}

/// The README's Consul and Kubernetes examples must stay valid command lines.
#[cfg(test)]
mod readme_examples {
    use super::ProbeArgs;
    use clap::Parser as _;

    const README: &str = include_str!("../../../../README.md");

    /// Every `["reflector", "probe", ...]` array in the README (HCL and YAML flow
    /// sequences of strings are JSON).
    fn examples() -> Vec<Vec<String>> {
        let mut found = Vec::new();
        let mut rest = README;
        while let Some(start) = rest.find(r#"["reflector", "probe""#) {
            let tail = &rest[start..];
            let end = tail.find(']').expect("a closing bracket") + 1;
            let array: Vec<String> = serde_json::from_str(&tail[..end])
                .unwrap_or_else(|e| panic!("not a list of strings ({e}): {}", &tail[..end]));
            found.push(array);
            rest = &tail[end..];
        }
        found
    }

    #[test]
    fn parse() {
        let examples = examples();
        assert!(examples.len() >= 3, "{examples:?}");
        for example in examples {
            let command_line =
                std::iter::once("reflector probe".to_owned()).chain(example[2..].to_vec());
            let args = ProbeArgs::try_parse_from(command_line)
                .unwrap_or_else(|e| panic!("README example {example:?}: {e}"));
            args.plan()
                .unwrap_or_else(|e| panic!("README example {example:?}: {e}"));
        }
    }
}
