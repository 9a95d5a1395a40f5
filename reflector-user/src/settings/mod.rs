//! What the daemon runs with, and how it is put together from layers: defaults, then the
//! config file, then the environment (`REFLECTOR_*`), then flags; each layer overrides only
//! what it sets.

use std::{
    mem,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use reflector_common::maps::FLOWS_DEFAULT_LEN;
use thiserror::Error;

pub mod file;
pub mod values;

use self::file::ConfigError;
use crate::{
    admission::{AdmissionSettings, Prefix},
    flow_table::FlowTable,
    mode::Mode,
    portmap::{self, PortMap, PortMapError},
    splice::SpliceOptions,
};

/// Where the control socket is when no `--control-socket` is given.
pub const DEFAULT_SOCKET: &str = "/run/reflector/control.sock";

/// Everything the daemon needs to know to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Port maps; never empty, no listen port twice per protocol.
    pub maps: Vec<PortMap>,
    /// Interfaces to attach to; empty means those carrying a default route.
    pub interfaces: Vec<String>,
    /// How to attach.
    pub mode: Mode,
    /// Room in the kernel flow table.
    pub flow_table_size: u32,
    /// Limits and timeouts of the userspace path.
    pub splice: SpliceOptions,
    /// Where to serve metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// The control socket, when one was given; `None` means [`DEFAULT_SOCKET`], which
    /// the daemon does without when it cannot be created.
    pub control_socket: Option<PathBuf>,
    /// The bpffs directory the kernel path is pinned in, so it outlives the process.
    pub pin: Option<PathBuf>,
    /// Who may open a new flow, and how often.
    pub admission: AdmissionSettings,
}

/// One layer's settings: `None` leaves the value of the layers below.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--map`, `REFLECTOR_MAP`, `maps`.
    pub maps: Option<Vec<PortMap>>,
    /// `--iface`, `REFLECTOR_IFACE`, `interfaces`.
    pub interfaces: Option<Vec<String>>,
    /// `--mode`, `REFLECTOR_MODE`, `mode`.
    pub mode: Option<Mode>,
    /// `--flow-table-size`, `REFLECTOR_FLOW_TABLE_SIZE`, `flow-table-size`.
    pub flow_table_size: Option<u32>,
    /// `--connect-timeout`, `REFLECTOR_CONNECT_TIMEOUT`, `connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// `--idle-timeout`, `REFLECTOR_IDLE_TIMEOUT`, `idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--udp-idle-timeout`, `REFLECTOR_UDP_IDLE_TIMEOUT`, `udp-idle-timeout`.
    pub udp_idle_timeout: Option<Duration>,
    /// `--max-conns`, `REFLECTOR_MAX_CONNS`, `max-conns`.
    pub max_conns: Option<u32>,
    /// `--max-udp-flows`, `REFLECTOR_MAX_UDP_FLOWS`, `max-udp-flows`.
    pub max_udp_flows: Option<u32>,
    /// `--metrics`, `REFLECTOR_METRICS`, `metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--control-socket`, `REFLECTOR_CONTROL_SOCKET`, `control-socket`.
    pub control_socket: Option<PathBuf>,
    /// `--pin`, `REFLECTOR_PIN`, `pin`.
    pub pin: Option<PathBuf>,
    /// `--allow`, `REFLECTOR_ALLOW`, `allow`.
    pub allow: Option<Vec<Prefix>>,
    /// `--limit-per-source`, `REFLECTOR_LIMIT_PER_SOURCE`, `limit-per-source`.
    pub limit_per_source: Option<u32>,
    /// `--limit-per-source-burst`, `REFLECTOR_LIMIT_PER_SOURCE_BURST`,
    /// `limit-per-source-burst`.
    pub limit_per_source_burst: Option<u32>,
    /// `--limit-global`, `REFLECTOR_LIMIT_GLOBAL`, `limit-global`.
    pub limit_global: Option<u32>,
    /// `--limit-global-burst`, `REFLECTOR_LIMIT_GLOBAL_BURST`, `limit-global-burst`.
    pub limit_global_burst: Option<u32>,
    /// `--limit-prefix-v4`, `REFLECTOR_LIMIT_PREFIX_V4`, `limit-prefix-v4`.
    pub limit_prefix_v4: Option<u8>,
    /// `--limit-prefix-v6`, `REFLECTOR_LIMIT_PREFIX_V6`, `limit-prefix-v6`.
    pub limit_prefix_v6: Option<u8>,
    /// `--flow-table`, `REFLECTOR_FLOW_TABLE`, `flow-table`.
    pub flow_table: Option<FlowTable>,
}

/// Settings that cannot be used.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// The config file is unreadable or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No layer gave a port map.
    #[error(
        "no port map: give at least one, e.g. --map 10022:22, REFLECTOR_MAP=10022:22, or maps = [\"10022:22\"] in the config file"
    )]
    NoMaps,
    /// The maps do not fit together.
    #[error(transparent)]
    PortMap(#[from] PortMapError),
}

/// Where the settings come from: the config file (read again on reload) and the command
/// line with the environment (fixed for the life of the process).
#[derive(Clone, Debug)]
pub struct Sources {
    /// `--config`, if any.
    pub config: Option<PathBuf>,
    /// Flags, and the environment where a flag is absent (clap merges the two).
    pub command_line: Overrides,
}

impl Sources {
    /// Reads the config file, if any, and layers everything into settings.
    ///
    /// # Errors
    /// [`SettingsError`] when the file is unreadable or wrong, or the result is incomplete
    /// or inconsistent.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let file = self.config.as_deref().map(file::load).transpose()?;
        Settings::layered(file.into_iter().chain([self.command_line.clone()]))
    }
}

impl Settings {
    /// The control socket's path: the one given, else [`DEFAULT_SOCKET`].
    #[must_use]
    pub fn control_socket_path(&self) -> &Path {
        self.control_socket
            .as_deref()
            .unwrap_or_else(|| Path::new(DEFAULT_SOCKET))
    }

    /// The defaults with `layers` applied in order, then checked as a whole.
    ///
    /// # Errors
    /// [`SettingsError::NoMaps`] when no layer gave a map, [`SettingsError::PortMap`] when a
    /// listen port is mapped twice for one protocol.
    pub fn layered(layers: impl IntoIterator<Item = Overrides>) -> Result<Self, SettingsError> {
        let mut maps = None;
        let mut settings = Self {
            maps: Vec::new(),
            interfaces: Vec::new(),
            mode: Mode::default(),
            flow_table_size: FLOWS_DEFAULT_LEN,
            splice: SpliceOptions::default(),
            metrics: None,
            control_socket: None,
            pin: None,
            admission: AdmissionSettings::default(),
        };
        for layer in layers {
            maps = layer.maps.or(maps);
            let splice = &mut settings.splice;
            settings.interfaces = layer.interfaces.unwrap_or(settings.interfaces);
            settings.mode = layer.mode.unwrap_or(settings.mode);
            settings.flow_table_size = layer.flow_table_size.unwrap_or(settings.flow_table_size);
            splice.connect_timeout = layer.connect_timeout.unwrap_or(splice.connect_timeout);
            splice.idle_timeout = layer.idle_timeout.unwrap_or(splice.idle_timeout);
            splice.udp_idle_timeout = layer.udp_idle_timeout.unwrap_or(splice.udp_idle_timeout);
            splice.max_conns = layer.max_conns.unwrap_or(splice.max_conns);
            splice.max_udp_flows = layer.max_udp_flows.unwrap_or(splice.max_udp_flows);
            settings.metrics = layer.metrics.or(settings.metrics);
            settings.control_socket = layer.control_socket.or(settings.control_socket);
            settings.pin = layer.pin.or(settings.pin);
            let admission = &mut settings.admission;
            admission.allow = layer.allow.unwrap_or(mem::take(&mut admission.allow));
            admission.limit_per_source =
                layer.limit_per_source.unwrap_or(admission.limit_per_source);
            admission.limit_per_source_burst = layer
                .limit_per_source_burst
                .unwrap_or(admission.limit_per_source_burst);
            admission.limit_global = layer.limit_global.unwrap_or(admission.limit_global);
            admission.limit_global_burst = layer
                .limit_global_burst
                .unwrap_or(admission.limit_global_burst);
            admission.limit_prefix_v4 = layer.limit_prefix_v4.unwrap_or(admission.limit_prefix_v4);
            admission.limit_prefix_v6 = layer.limit_prefix_v6.unwrap_or(admission.limit_prefix_v6);
            admission.flow_table = layer.flow_table.unwrap_or(admission.flow_table);
        }
        settings.maps = maps
            .filter(|maps| !maps.is_empty())
            .ok_or(SettingsError::NoMaps)?;
        portmap::check_unique(&settings.maps)?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(list: &[&str]) -> Vec<PortMap> {
        list.iter().map(|m| m.parse().unwrap()).collect()
    }

    #[test]
    fn later_layers_win_and_unset_values_fall_through() {
        let file = Overrides {
            maps: Some(maps(&["10022:22"])),
            mode: Some(Mode::Tc),
            max_conns: Some(10),
            ..Overrides::default()
        };
        let command_line = Overrides {
            mode: Some(Mode::Splice),
            connect_timeout: Some(Duration::from_secs(1)),
            ..Overrides::default()
        };
        let settings = Settings::layered([file, command_line]).unwrap();
        assert_eq!(settings.maps, maps(&["10022:22"]));
        assert_eq!(settings.mode, Mode::Splice);
        assert_eq!(settings.splice.max_conns, 10);
        assert_eq!(settings.splice.connect_timeout, Duration::from_secs(1));
        assert_eq!(
            settings.splice.idle_timeout,
            SpliceOptions::default().idle_timeout
        );
        assert_eq!(settings.flow_table_size, FLOWS_DEFAULT_LEN);
        assert_eq!(settings.metrics, None);
    }

    #[test]
    fn metrics_address_is_layered() {
        let address = |text: &str| Some(text.parse::<SocketAddr>().unwrap());
        let file = Overrides {
            maps: Some(maps(&["10022:22"])),
            metrics: address("127.0.0.1:9477"),
            ..Overrides::default()
        };
        let settings = Settings::layered([file.clone(), Overrides::default()]).unwrap();
        assert_eq!(settings.metrics, address("127.0.0.1:9477"));
        let command_line = Overrides {
            metrics: address("[::]:9478"),
            ..Overrides::default()
        };
        let settings = Settings::layered([file, command_line]).unwrap();
        assert_eq!(settings.metrics, address("[::]:9478"));
    }

    #[test]
    fn maps_are_required_and_unique() {
        assert!(matches!(
            Settings::layered([Overrides::default()]),
            Err(SettingsError::NoMaps)
        ));
        let twice = Overrides {
            maps: Some(maps(&["10022:22", "10022:23"])),
            ..Overrides::default()
        };
        assert!(matches!(
            Settings::layered([twice]),
            Err(SettingsError::PortMap(PortMapError::Duplicate { .. }))
        ));
    }
}
