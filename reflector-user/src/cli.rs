//! The command line.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{CommandFactory as _, Parser, error::ErrorKind};
use log::error;
use rustix::thread::CapabilitySet;

use crate::{
    admission::Prefix,
    commands::Command,
    daemon, error_text,
    flow_table::FlowTable,
    mode::Mode,
    portmap::PortMap,
    privileges,
    settings::{
        Overrides, Sources,
        values::{metrics_address, positive_duration},
    },
    shutdown,
};

/// Kernel-assisted network reflector: a client connecting to this host's port L is
/// connected back to its own port P, across the network both ways.
#[derive(Debug, Parser)]
#[command(name = "reflector", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
#[command(
    after_help = "Examples:\n  reflector --map 10022:22\n  reflector --map 10022:22 --map 10053:53/udp --iface eth0 --mode xdp\n  reflector --map 10022:22 --mode splice --connect-timeout 2s\n  reflector --config /etc/reflector.toml\n  reflector --map 10022:22 --metrics 127.0.0.1:9477\n  reflector stats\n  reflector map add 10080:80\n  reflector --map 10022:22 --mode tc --pin /sys/fs/bpf/reflector\n  reflector detach --pin /sys/fs/bpf/reflector\n\nPrecedence: defaults < config file < REFLECTOR_* environment < flags."
)]
pub struct Cli {
    /// Talk to a running daemon (or detach a pinned one) instead of running one.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Config file (TOML, the same keys as these flags, e.g. `maps = ["10022:22"]`); flags
    /// and `REFLECTOR_*` variables override it; SIGHUP reads it again.
    #[arg(short, long, value_name = "FILE", env = "REFLECTOR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Port map LISTEN:TARGET[/tcp|/udp|/tcp,udp] (TCP when no protocol is given);
    /// repeat for more (in `REFLECTOR_MAP`, separate them with spaces).
    #[arg(
        short,
        long = "map",
        value_name = "L:P[/PROTO]",
        env = "REFLECTOR_MAP",
        value_delimiter = ' '
    )]
    pub maps: Vec<PortMap>,

    /// Interface to reflect on; repeat for more. Default: the interfaces carrying a
    /// default route.
    #[arg(
        short,
        long = "iface",
        value_name = "IF",
        env = "REFLECTOR_IFACE",
        value_delimiter = ' '
    )]
    pub interfaces: Vec<String>,

    /// How to reflect: auto picks per interface (XDP in the driver, generic XDP, TC, then
    /// userspace splice; TC first on virtual devices such as veth) [default: auto].
    #[arg(long, value_enum, env = "REFLECTOR_MODE")]
    pub mode: Option<Mode>,

    /// Flows the kernel flow table holds before the least recently used are forgotten
    /// [default: 131072].
    #[arg(long, value_name = "N", env = "REFLECTOR_FLOW_TABLE_SIZE",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub flow_table_size: Option<u32>,

    /// Userspace path: how long connecting back to a client may take before the client is
    /// reset, e.g. 3s or 500ms [default: 3s].
    #[arg(long, value_name = "DURATION", env = "REFLECTOR_CONNECT_TIMEOUT",
          value_parser = positive_duration)]
    pub connect_timeout: Option<Duration>,

    /// Userspace path: a reflected TCP connection silent both ways this long is closed
    /// [default: 5m].
    #[arg(long, value_name = "DURATION", env = "REFLECTOR_IDLE_TIMEOUT",
          value_parser = positive_duration)]
    pub idle_timeout: Option<Duration>,

    /// Userspace path: a UDP flow silent both ways this long is forgotten [default: 30s].
    #[arg(long, value_name = "DURATION", env = "REFLECTOR_UDP_IDLE_TIMEOUT",
          value_parser = positive_duration)]
    pub udp_idle_timeout: Option<Duration>,

    /// Userspace path: reflected TCP connections at once; further clients are reset at
    /// once, existing ones are left alone [default: 4096].
    #[arg(long, value_name = "N", env = "REFLECTOR_MAX_CONNS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_conns: Option<u32>,

    /// Userspace path: UDP flows at once; datagrams from further clients are dropped
    /// [default: 4096].
    #[arg(long, value_name = "N", env = "REFLECTOR_MAX_UDP_FLOWS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_udp_flows: Option<u32>,

    /// Serve Prometheus metrics on ADDR (`/metrics`), with `/healthz` and `/readyz`, e.g.
    /// 127.0.0.1:9477 or [::]:9477 [default: off].
    #[arg(long, value_name = "ADDR", env = "REFLECTOR_METRICS", value_parser = metrics_address)]
    pub metrics: Option<SocketAddr>,

    /// The control socket (root-only) that `reflector stats` and `reflector map` talk to
    /// [default: /run/reflector/control.sock; the daemon runs without it when that cannot
    /// be created].
    #[arg(long, value_name = "PATH", env = "REFLECTOR_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,

    /// Pin the kernel program, its maps and links in DIR (on a bpffs, e.g.
    /// /sys/fs/bpf/reflector) so reflection keeps running when the daemon stops; the next
    /// start with the same DIR adopts them. `reflector detach --pin DIR` removes them.
    /// Ignored in splice mode [default: off].
    #[arg(long, value_name = "DIR", env = "REFLECTOR_PIN")]
    pub pin: Option<PathBuf>,

    /// Reflect only for sources inside CIDR (an IPv4 or IPv6 prefix, e.g. 10.0.0.0/8);
    /// repeat for more. Others are dropped (kernel) or reset (userspace) and counted as
    /// `source_not_allowed`. Changes at run time with `reflector allow` [default: every
    /// source, with a warning].
    #[arg(
        long = "allow",
        value_name = "CIDR",
        env = "REFLECTOR_ALLOW",
        value_delimiter = ' '
    )]
    pub allow: Vec<Prefix>,

    /// New flows per second a source prefix may open (its packets of known flows are never
    /// limited); over it, new flows are dropped as `rate_limited`. 0 turns it off
    /// [default: 10000].
    #[arg(long, value_name = "N", env = "REFLECTOR_LIMIT_PER_SOURCE")]
    pub limit_per_source: Option<u32>,

    /// New flows a source prefix may open at once, above its rate [default: 20000].
    #[arg(long, value_name = "N", env = "REFLECTOR_LIMIT_PER_SOURCE_BURST")]
    pub limit_per_source_burst: Option<u32>,

    /// New flows per second from all sources together; what holds a flood of spoofed
    /// sources. 0 turns it off [default: 100000].
    #[arg(long, value_name = "N", env = "REFLECTOR_LIMIT_GLOBAL")]
    pub limit_global: Option<u32>,

    /// New flows all sources may open at once, above the global rate [default: 100000].
    #[arg(long, value_name = "N", env = "REFLECTOR_LIMIT_GLOBAL_BURST")]
    pub limit_global_burst: Option<u32>,

    /// The IPv4 prefix length sources are counted by for --limit-per-source [default: 32].
    #[arg(long, value_name = "LEN", env = "REFLECTOR_LIMIT_PREFIX_V4",
          value_parser = clap::value_parser!(u8).range(0..=32))]
    pub limit_prefix_v4: Option<u8>,

    /// The IPv6 prefix length sources are counted by for --limit-per-source [default: 64].
    #[arg(long, value_name = "LEN", env = "REFLECTOR_LIMIT_PREFIX_V6",
          value_parser = clap::value_parser!(u8).range(0..=128))]
    pub limit_prefix_v6: Option<u8>,

    /// Which maps keep the kernel flow table: always, every map [the default]; auto, only
    /// those that need it (a target port two listen ports share, or one that is also a
    /// listen port; every other map reflects replies without flow state, so several
    /// reflectors can share one address: not on hosts that forward or masquerade traffic).
    #[arg(long, value_enum, env = "REFLECTOR_FLOW_TABLE")]
    pub flow_table: Option<FlowTable>,
}

/// `None` for a list no flag or variable gave, so a lower layer's list stays.
fn non_empty<T>(list: Vec<T>) -> Option<Vec<T>> {
    (!list.is_empty()).then_some(list)
}

/// The program: parses the command line, sets up logging (`RUST_LOG`, `info` by default)
/// and runs what it asks for.
#[must_use]
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli.run()
}

impl Cli {
    /// Where the settings come from: the config file and this command line (with the
    /// environment).
    fn sources(self) -> Sources {
        Sources {
            config: self.config,
            command_line: Overrides {
                maps: non_empty(self.maps),
                interfaces: non_empty(self.interfaces),
                mode: self.mode,
                flow_table_size: self.flow_table_size,
                connect_timeout: self.connect_timeout,
                idle_timeout: self.idle_timeout,
                udp_idle_timeout: self.udp_idle_timeout,
                max_conns: self.max_conns,
                max_udp_flows: self.max_udp_flows,
                metrics: self.metrics,
                control_socket: self.control_socket,
                pin: self.pin,
                allow: non_empty(self.allow),
                limit_per_source: self.limit_per_source,
                limit_per_source_burst: self.limit_per_source_burst,
                limit_global: self.limit_global,
                limit_global_burst: self.limit_global_burst,
                limit_prefix_v4: self.limit_prefix_v4,
                limit_prefix_v6: self.limit_prefix_v6,
                flow_table: self.flow_table,
            },
        }
    }

    /// Runs what the command line asks for.
    #[must_use]
    pub fn run(mut self) -> ExitCode {
        if let Some(command) = self.command.take() {
            return command.run();
        }
        let sources = self.sources();
        let settings = match sources.load() {
            Ok(settings) => settings,
            Err(error) => Self::command()
                .error(ErrorKind::ArgumentConflict, error_text::render(&error))
                .exit(),
        };
        // The workers never need more than reading the kernel maps ([`privileges`]).
        let worker_keeps = if settings.mode == Mode::Splice {
            CapabilitySet::empty()
        } else {
            privileges::WORKER
        };
        let runtime = match privileges::runtime(worker_keeps) {
            Ok(runtime) => runtime,
            Err(error) => {
                error!("cannot start the async runtime: {error}");
                return ExitCode::FAILURE;
            }
        };
        // The signal handlers go in now, before the daemon says it is ready.
        let shutdown = {
            let _runtime = runtime.enter();
            shutdown::signal()
        };
        match runtime.block_on(daemon::run(settings, &sources, shutdown)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                error!("{}", error_text::render(&error));
                ExitCode::FAILURE
            }
        }
    }
}
