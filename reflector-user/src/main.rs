//! The `reflector` binary: parses the command line, sets up logging and runs.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = reflector::cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    cli.run()
}
