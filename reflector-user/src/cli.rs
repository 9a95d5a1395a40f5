//! The command line.

use std::{process::ExitCode, time::Duration};

use clap::{CommandFactory as _, Parser, error::ErrorKind};
use log::error;
use reflector_common::maps::FLOWS_DEFAULT_LEN;

use crate::{
    daemon, mode::Mode, portmap::PortMap, settings::Settings, shutdown, splice::SpliceOptions,
};

/// Kernel-assisted network reflector: a client connecting to this host's port L is
/// connected back to its own port P, across the network both ways.
#[derive(Debug, Parser)]
#[command(name = "reflector", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  reflector --map 10022:22\n  reflector --map 10022:22 --map 10053:53/udp --iface eth0 --mode xdp\n  reflector --map 10022:22 --mode splice --connect-timeout 2s"
)]
pub struct Cli {
    /// Port map LISTEN:TARGET[/tcp|/udp|/tcp,udp] (TCP when no protocol is given);
    /// repeat for more.
    #[arg(short, long = "map", value_name = "L:P[/PROTO]", required = true)]
    pub maps: Vec<PortMap>,

    /// Interface to reflect on; repeat for more. Default: the interfaces carrying a
    /// default route.
    #[arg(short, long = "iface", value_name = "IF")]
    pub interfaces: Vec<String>,

    /// How to reflect: auto picks per interface (XDP in the driver, generic XDP, TC, then
    /// userspace splice; TC first on virtual devices such as veth).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,

    /// Flows the kernel flow table holds before the least recently used are forgotten.
    #[arg(long, value_name = "N", default_value_t = FLOWS_DEFAULT_LEN,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_table_size: u32,

    /// Userspace path: how long connecting back to a client may take before the client is
    /// reset (e.g. 3s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = positive_duration)]
    pub connect_timeout: Duration,

    /// Userspace path: a reflected TCP connection silent both ways this long is closed.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = positive_duration)]
    pub idle_timeout: Duration,

    /// Userspace path: a UDP flow silent both ways this long is forgotten.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = positive_duration)]
    pub udp_idle_timeout: Duration,

    /// Userspace path: reflected TCP connections at once; further clients are reset at
    /// once, existing ones are left alone.
    #[arg(long, value_name = "N", default_value_t = SpliceOptions::default().max_conns,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: u32,

    /// Userspace path: UDP flows at once; datagrams from further clients are dropped.
    #[arg(long, value_name = "N", default_value_t = SpliceOptions::default().max_udp_flows,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_udp_flows: u32,
}

/// A duration such as `3s`, `500ms` or `5m`, more than zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(duration) if duration.is_zero() => Err("must be more than zero, e.g. 3s".to_owned()),
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error}; write e.g. 3s, 500ms or 5m")),
    }
}

impl Cli {
    /// The settings this command line asks for.
    fn settings(self) -> Settings {
        Settings {
            maps: self.maps,
            interfaces: self.interfaces,
            mode: self.mode,
            flow_table_size: self.flow_table_size,
            splice: SpliceOptions {
                connect_timeout: self.connect_timeout,
                idle_timeout: self.idle_timeout,
                udp_idle_timeout: self.udp_idle_timeout,
                max_conns: self.max_conns,
                max_udp_flows: self.max_udp_flows,
            },
        }
    }

    /// Runs what the command line asks for.
    #[must_use]
    pub fn run(self) -> ExitCode {
        let settings = match self.settings().validate() {
            Ok(settings) => settings,
            Err(error) => Self::command()
                .error(ErrorKind::ArgumentConflict, error)
                .exit(),
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                error!("cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(daemon::run(&settings, shutdown::signal())) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                error!("{:#}", anyhow::Error::from(error));
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::positive_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(positive_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(positive_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(
            positive_duration("0s")
                .unwrap_err()
                .contains("more than zero")
        );
        assert!(positive_duration("banana").unwrap_err().contains("e.g. 3s"));
    }
}
