//! `reflector check-config FILE`: loads a config file as the daemon would, and says whether
//! it would start (or reload) with it, without touching anything.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum as _};

use crate::{
    error_text, portmap,
    settings::{Overrides, Sources},
};

/// `reflector check-config`.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The config file (TOML), e.g. /etc/reflector/reflector.toml.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Exit code for a file that would be refused (the daemon's own exit code for bad settings).
const REFUSED: u8 = 2;

/// Prints what the file sets and exits 0, or prints why it would be refused (file, line and
/// column where the parser has them) and exits 2. Flags and `REFLECTOR_*` variables are not
/// layered on top: this checks the file alone.
#[must_use]
pub(crate) fn run(args: &CheckConfigArgs) -> ExitCode {
    let sources = Sources {
        config: Some(args.file.clone()),
        command_line: Overrides::default(),
    };
    match sources.load() {
        Ok(settings) => {
            let interfaces = if settings.interfaces.is_empty() {
                "those with a default route".to_owned()
            } else {
                settings.interfaces.join(" ")
            };
            println!(
                "{}: ok: maps {}; mode {}; interfaces {interfaces}",
                args.file.display(),
                portmap::list(&settings.maps),
                settings.mode.to_possible_value().map_or_else(
                    || format!("{:?}", settings.mode),
                    |value| value.get_name().to_owned()
                ),
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {}", error_text::render(&error));
            ExitCode::from(REFUSED)
        }
    }
}
