//! The subcommands, one module each: most talk to a running daemon over its control
//! socket; `detach` removes what a daemon run with `--pin` left behind; `check-config` and
//! `mount-bpffs` prepare a deployment; `probe` checks this node's service through
//! reflectors elsewhere.

pub(crate) mod allow;
pub(crate) mod check_config;
pub(crate) mod detach;
pub(crate) mod map;
pub(crate) mod mount_bpffs;
pub(crate) mod probe;
pub(crate) mod stats;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};

use crate::control::{self, Reply, Request};

/// What the command line asks of a running daemon (or, `detach`, of a pinned one).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the running daemon's counters as a table (or JSON).
    Stats(stats::StatsArgs),
    /// List or change the running daemon's port maps (until its next reload or restart).
    #[command(subcommand)]
    Map(map::MapCommand),
    /// List or change the running daemon's source allow-list (until its next reload or
    /// restart).
    #[command(subcommand)]
    Allow(allow::AllowCommand),
    /// Detach what a daemon run with `--pin DIR` left running, and remove its pins.
    Detach(detach::DetachArgs),
    /// Check a config file as the daemon would load it: exit 0 when good, 2 when not.
    CheckConfig(check_config::CheckConfigArgs),
    /// Mount a BPF filesystem on DIR (default /sys/fs/bpf) unless one is there.
    MountBpffs(mount_bpffs::MountBpffsArgs),
    /// Check this node's service through one or more reflectors and say which leg failed
    /// (exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN); see `reflector probe --help`.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Probe(probe::ProbeCommand),
}

impl Command {
    /// Runs the subcommand: 0 on success, 1 when the daemon cannot be reached or refuses;
    /// `check-config` exits 2 for a file the daemon would refuse, `probe` with its status.
    #[must_use]
    pub fn run(self) -> ExitCode {
        let result = match self {
            Self::Probe(command) => return command.run(),
            Self::Stats(args) => stats::run(&args),
            Self::Map(command) => map::run(command),
            Self::Allow(command) => allow::run(command),
            Self::Detach(args) => detach::run(&args),
            Self::CheckConfig(args) => return check_config::run(&args),
            Self::MountBpffs(args) => mount_bpffs::run(&args),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {}", crate::error_text::render(error.as_ref()));
                ExitCode::FAILURE
            }
        }
    }
}

/// Where the daemon's control socket is.
#[derive(Clone, Debug, Args)]
pub struct ControlArgs {
    /// The daemon's control socket.
    #[arg(
        long,
        value_name = "PATH",
        env = "REFLECTOR_CONTROL_SOCKET",
        default_value = crate::settings::DEFAULT_SOCKET
    )]
    pub control_socket: PathBuf,
}

/// A reply the daemon refused with, as an error.
#[derive(Debug, thiserror::Error)]
#[error("the daemon refused: {0}")]
pub(crate) struct Refused(pub String);

impl ControlArgs {
    /// Sends `request` and returns the reply when the daemon carried it out.
    ///
    /// # Errors
    /// [`control::client::ClientError`] when the daemon cannot be asked, [`Refused`] when it says no.
    pub fn ask(&self, request: &Request) -> anyhow::Result<Reply> {
        let reply =
            control::client::ask(&self.control_socket, request).map_err(anyhow::Error::from)?;
        if reply.ok {
            Ok(reply)
        } else {
            Err(Refused(reply.error.unwrap_or_else(|| "no reason given".to_owned())).into())
        }
    }
}
