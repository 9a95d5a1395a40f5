//! Developer tasks for reflector: `cargo xtask --help`.

mod apt;
mod bench;
mod build;
mod cli;
mod deb;
mod fuzz;
mod image;
mod lint;
mod modules;
mod process;
mod pytools;
mod run;
mod setup;
mod test;
mod toolchain;
mod virtme;
mod vmtest;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    cli::Cli::parse().run()
}
