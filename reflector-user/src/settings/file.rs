//! The config file (`--config reflector.toml`): the same settings as the flags, with the
//! same names (`connect-timeout = "3s"`), checked as strictly, and errors that point at the
//! file, line and column.
//!
//! ```toml
//! maps = ["10022:22", "10053:53/udp"]
//! interfaces = ["eth0"]
//! mode = "auto"
//! flow-table-size = 131072
//! connect-timeout = "3s"
//! idle-timeout = "5m"
//! udp-idle-timeout = "30s"
//! max-conns = 4096
//! max-udp-flows = 4096
//! metrics = "127.0.0.1:9477"
//! control-socket = "/run/reflector/control.sock"
//! pin = "/sys/fs/bpf/reflector"
//! allow = ["10.0.0.0/8", "fd00::/8"]
//! limit-per-source = 10000
//! limit-per-source-burst = 20000
//! limit-global = 100000
//! limit-global-burst = 100000
//! limit-prefix-v4 = 32
//! limit-prefix-v6 = 64
//! flow-table = "auto"
//! ```

use std::{
    fmt, fs,
    ops::Range,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use clap::ValueEnum as _;
use serde::Deserialize;
use thiserror::Error;
use toml::Spanned;

use super::{
    Overrides,
    values::{metrics_address, positive_duration},
};
use crate::flow_table::FlowTable;
use crate::mode::Mode;

/// A config file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Others than its owner may write the file, and it decides what this host sends.
    #[error(
        "config file {} is writable by group or others (mode {mode:04o}); it decides where \
         this host sends packets, so only its owner may write it: chmod go-w {}",
        path.display(),
        path.display()
    )]
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type or out of
    /// range.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What is wrong, and how to fix it.
        message: String,
    },
}

/// A place in a config file, shown as `path:line:column` (or `path` alone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// Line and column, from 1, when known.
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    fn new(path: &Path, text: &str, span: Option<Range<usize>>) -> Self {
        let line_column = span.map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column)
        });
        Self {
            path: path.to_owned(),
            line_column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some((line, column)) = self.line_column {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    maps: Option<Vec<Spanned<String>>>,
    interfaces: Option<Vec<String>>,
    mode: Option<Spanned<String>>,
    flow_table_size: Option<Spanned<u32>>,
    connect_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    udp_idle_timeout: Option<Spanned<String>>,
    max_conns: Option<Spanned<u32>>,
    max_udp_flows: Option<Spanned<u32>>,
    metrics: Option<Spanned<String>>,
    control_socket: Option<PathBuf>,
    pin: Option<PathBuf>,
    allow: Option<Vec<Spanned<String>>>,
    limit_per_source: Option<u32>,
    limit_per_source_burst: Option<u32>,
    limit_global: Option<u32>,
    limit_global_burst: Option<u32>,
    limit_prefix_v4: Option<Spanned<u32>>,
    limit_prefix_v6: Option<Spanned<u32>>,
    flow_table: Option<Spanned<String>>,
}

/// Reads and checks the config file at `path`.
///
/// # Errors
/// [`ConfigError`] when it cannot be read, parsed or checked.
pub fn load(path: &Path) -> Result<Overrides, ConfigError> {
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = fs::File::open(path).map_err(read_error)?;
    // Checked on the file read (a symlink's target, as a ConfigMap mounts it).
    let mode = file.metadata().map_err(read_error)?.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(ConfigError::Writable {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    let text = std::io::read_to_string(file).map_err(read_error)?;
    parse(path, &text)
}

/// Parses and checks `text`, the contents of the config file at `path`.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the line and column of the first problem.
pub fn parse(path: &Path, text: &str) -> Result<Overrides, ConfigError> {
    let invalid = |span: Option<Range<usize>>, message: String| ConfigError::Invalid {
        location: Location::new(path, text, span),
        message,
    };
    let file: ConfigFile =
        toml::from_str(text).map_err(|error| invalid(error.span(), error.message().to_owned()))?;

    let mut overrides = Overrides::default();
    if let Some(maps) = file.maps {
        let mut parsed = Vec::new();
        for map in maps {
            let span = map.span();
            let value = map
                .into_inner()
                .parse()
                .map_err(|error| invalid(Some(span), format!("maps: {error}")))?;
            parsed.push(value);
        }
        overrides.maps = Some(parsed);
    }
    overrides.interfaces = file.interfaces;
    if let Some(mode) = file.mode {
        let span = mode.span();
        // clap's own words ("invalid variant") say less than the list of modes below.
        let value = Mode::from_str(mode.get_ref(), true).map_err(|_clap_words| {
            invalid(
                Some(span),
                format!(
                    "mode: unknown mode '{}': use auto, xdp, xdp-skb, tc or splice",
                    mode.get_ref()
                ),
            )
        })?;
        overrides.mode = Some(value);
    }
    overrides.flow_table_size = positive(file.flow_table_size, "flow-table-size", &invalid)?;
    overrides.max_conns = positive(file.max_conns, "max-conns", &invalid)?;
    overrides.max_udp_flows = positive(file.max_udp_flows, "max-udp-flows", &invalid)?;
    overrides.connect_timeout = duration(file.connect_timeout, "connect-timeout", &invalid)?;
    overrides.idle_timeout = duration(file.idle_timeout, "idle-timeout", &invalid)?;
    overrides.udp_idle_timeout = duration(file.udp_idle_timeout, "udp-idle-timeout", &invalid)?;
    overrides.metrics = file
        .metrics
        .map(|value| {
            metrics_address(value.get_ref())
                .map_err(|error| invalid(Some(value.span()), format!("metrics: {error}")))
        })
        .transpose()?;
    overrides.control_socket = file.control_socket;
    overrides.pin = file.pin;
    if let Some(allow) = file.allow {
        let mut parsed = Vec::new();
        for prefix in allow {
            let span = prefix.span();
            let value = prefix
                .get_ref()
                .parse()
                .map_err(|error| invalid(Some(span), format!("allow: {error}")))?;
            parsed.push(value);
        }
        overrides.allow = Some(parsed);
    }
    overrides.limit_per_source = file.limit_per_source;
    overrides.limit_per_source_burst = file.limit_per_source_burst;
    overrides.limit_global = file.limit_global;
    overrides.limit_global_burst = file.limit_global_burst;
    overrides.limit_prefix_v4 = prefix_len(file.limit_prefix_v4, "limit-prefix-v4", 32, &invalid)?;
    overrides.limit_prefix_v6 = prefix_len(file.limit_prefix_v6, "limit-prefix-v6", 128, &invalid)?;
    if let Some(flow_table) = file.flow_table {
        let value = FlowTable::from_str(flow_table.get_ref(), true).map_err(|_clap_words| {
            invalid(
                Some(flow_table.span()),
                format!(
                    "flow-table: unknown value '{}': use auto or always",
                    flow_table.get_ref()
                ),
            )
        })?;
        overrides.flow_table = Some(value);
    }
    Ok(overrides)
}

fn prefix_len(
    value: Option<Spanned<u32>>,
    key: &str,
    max: u8,
    invalid: &impl Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<Option<u8>, ConfigError> {
    value
        .map(|value| {
            u8::try_from(*value.get_ref())
                .ok()
                .filter(|&len| len <= max)
                .ok_or_else(|| {
                    invalid(
                        Some(value.span()),
                        format!("{key}: a prefix length from 0 to {max}"),
                    )
                })
        })
        .transpose()
}

fn positive(
    value: Option<Spanned<u32>>,
    key: &str,
    invalid: &impl Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<Option<u32>, ConfigError> {
    value
        .map(|value| match *value.get_ref() {
            0 => Err(invalid(
                Some(value.span()),
                format!("{key}: must be at least 1"),
            )),
            n => Ok(n),
        })
        .transpose()
}

fn duration(
    value: Option<Spanned<String>>,
    key: &str,
    invalid: &impl Fn(Option<Range<usize>>, String) -> ConfigError,
) -> Result<Option<std::time::Duration>, ConfigError> {
    value
        .map(|value| {
            positive_duration(value.get_ref())
                .map_err(|error| invalid(Some(value.span()), format!("{key}: {error}")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse_str(text: &str) -> Result<Overrides, String> {
        parse(Path::new("reflector.toml"), text).map_err(|error| error.to_string())
    }

    #[test]
    fn reads_every_key() {
        let overrides = parse_str(
            "maps = [\"10022:22\", \"10053:53/udp\"]\ninterfaces = [\"eth0\"]\nmode = \"tc\"\n\
             flow-table-size = 1024\nconnect-timeout = \"2s\"\nidle-timeout = \"1m\"\n\
             udp-idle-timeout = \"10s\"\nmax-conns = 10\nmax-udp-flows = 20\n\
             metrics = \"[::1]:9477\"\ncontrol-socket = \"/run/r/c.sock\"\n",
        )
        .unwrap();
        let maps: Vec<String> = overrides
            .maps
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(maps, ["10022:22/tcp", "10053:53/udp"]);
        assert_eq!(overrides.interfaces.unwrap(), ["eth0"]);
        assert_eq!(overrides.mode, Some(Mode::Tc));
        assert_eq!(overrides.flow_table_size, Some(1024));
        assert_eq!(overrides.connect_timeout, Some(Duration::from_secs(2)));
        assert_eq!(overrides.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(overrides.udp_idle_timeout, Some(Duration::from_secs(10)));
        assert_eq!(overrides.max_conns, Some(10));
        assert_eq!(overrides.max_udp_flows, Some(20));
        assert_eq!(overrides.metrics, Some("[::1]:9477".parse().unwrap()));
        assert_eq!(
            overrides.control_socket.as_deref(),
            Some(Path::new("/run/r/c.sock"))
        );
    }

    #[test]
    fn flow_table_is_auto_or_always() {
        let overrides = parse_str("flow-table = \"always\"\n").unwrap();
        assert_eq!(overrides.flow_table, Some(FlowTable::Always));
        let error = parse_str("flow-table = \"never\"\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:1:") && error.contains("use auto or always"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_file_sets_nothing() {
        let overrides = parse_str("# nothing\n").unwrap();
        assert!(overrides.maps.is_none() && overrides.mode.is_none());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let error = parse_str("mode = \"tc\"\nmaps = [\"10022:22\", \"70000:22\"]\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:2:21: maps: invalid port '70000'"),
            "{error}"
        );
        let error = parse_str("mode = \"fast\"\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:1:8: mode: unknown mode 'fast'"),
            "{error}"
        );
        let error = parse_str("maps = [\"10022:22\"]\nmax-conn = 3\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:2:1: unknown field `max-conn`"),
            "{error}"
        );
        let error = parse_str("maps = [\"10022:22\"\n").unwrap_err();
        assert!(error.starts_with("reflector.toml:"), "{error}");
        let error = parse_str("connect-timeout = \"soon\"\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:1:19: connect-timeout:"),
            "{error}"
        );
        let error = parse_str("max-conns = 0\n").unwrap_err();
        assert!(
            error.starts_with("reflector.toml:1:13: max-conns: must be at least 1"),
            "{error}"
        );
        let error = parse_str("metrics = \"localhost:9477\"\n").unwrap_err();
        assert!(
            error.starts_with(
                "reflector.toml:1:11: metrics: invalid metrics address 'localhost:9477': write \
                 IP:PORT, e.g. 127.0.0.1:9477"
            ),
            "{error}"
        );
    }
}
