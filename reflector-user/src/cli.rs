//! The command line.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, error::ErrorKind};
use log::error;
use reflector_common::maps::FLOWS_DEFAULT_LEN;

use crate::{daemon, mode::Mode, portmap::PortMap, settings::Settings, shutdown};

/// Kernel-assisted network reflector: a client connecting to this host's port L is
/// connected back to its own port P, across the network both ways.
#[derive(Debug, Parser)]
#[command(name = "reflector", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  reflector --map 10022:22\n  reflector --map 10022:22 --map 10053:53/udp --iface eth0 --mode xdp"
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

    /// How to attach: auto picks per interface (XDP in the driver, generic XDP, then TC;
    /// TC first on virtual devices such as veth).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,

    /// Flows the kernel flow table holds before the least recently used are forgotten.
    #[arg(long, value_name = "N", default_value_t = FLOWS_DEFAULT_LEN,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_table_size: u32,
}

impl Cli {
    /// Runs what the command line asks for.
    #[must_use]
    pub fn run(self) -> ExitCode {
        let settings = Settings {
            maps: self.maps,
            interfaces: self.interfaces,
            mode: self.mode,
            flow_table_size: self.flow_table_size,
        };
        let settings = match settings.validate() {
            Ok(settings) => settings,
            Err(error) => Self::command()
                .error(ErrorKind::ArgumentConflict, error)
                .exit(),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
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
