//! `reflector allow add|del|list`: change or list the running daemon's source allow-list.

use clap::Subcommand;

use super::ControlArgs;
use crate::{admission::Prefix, control::Request};

/// `reflector allow ...`.
#[derive(Debug, Subcommand)]
pub enum AllowCommand {
    /// Reflect for sources in CIDR too, e.g. `reflector allow add 10.0.0.0/8`. The first
    /// prefix turns the allow-list on: from then on, only listed sources are reflected.
    Add {
        /// An IPv4 or IPv6 prefix (an address alone is one host).
        #[arg(value_name = "CIDR")]
        prefix: Prefix,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Stop reflecting for sources in CIDR, e.g. `reflector allow del 10.0.0.0/8`. The last
    /// prefix stays (an empty list allows every source).
    Del {
        /// The prefix, as it was added.
        #[arg(value_name = "CIDR")]
        prefix: Prefix,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Print the allowed prefixes, one per line (none: every source is reflected).
    List {
        #[command(flatten)]
        control: ControlArgs,
    },
}

/// Runs `command` against the daemon and prints the outcome.
///
/// # Errors
/// When the daemon cannot be reached or refuses the change.
pub(crate) fn run(command: AllowCommand) -> anyhow::Result<()> {
    let (control, request, done) = match command {
        AllowCommand::Add { prefix, control } => (
            control,
            Request::AllowAdd {
                prefix: prefix.to_string(),
            },
            Some(format!("allowed {prefix}")),
        ),
        AllowCommand::Del { prefix, control } => (
            control,
            Request::AllowDel {
                prefix: prefix.to_string(),
            },
            Some(format!("no longer allowed {prefix}")),
        ),
        AllowCommand::List { control } => (control, Request::AllowList, None),
    };
    let allowed = control.ask(&request)?.allow.unwrap_or_default();
    match done {
        Some(done) => println!("{done}; allowed now: {}", allowed.join(" ")),
        None if allowed.is_empty() => println!("every source (no allow-list)"),
        None => {
            for prefix in allowed {
                println!("{prefix}");
            }
        }
    }
    Ok(())
}
