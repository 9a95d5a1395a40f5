//! `reflector-assets OUTDIR`: writes reflector's man pages (`OUTDIR/man/reflector.1` and one
//! per subcommand, `reflector-stats.1`, ...) and shell completions
//! (`OUTDIR/completions/reflector.bash`, `_reflector` for zsh, `reflector.fish`), all
//! generated from the command-line definition ([`reflector::cli::Cli`]), so they never
//! drift from `reflector --help`. `cargo xtask deb` runs it.

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::CommandFactory as _;
use clap_complete::Shell;

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: reflector-assets OUTDIR");
    };
    let out = PathBuf::from(out);
    let man = out.join("man");
    let completions = out.join("completions");
    for dir in [&man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut command = without_help_subcommand(reflector::cli::Cli::command());
    command.build();
    clap_mangen::generate_to(command.clone(), &man)
        .with_context(|| format!("cannot write the man pages to {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "reflector", &completions)
            .with_context(|| format!("cannot write the {shell} completions"))?;
    }
    println!("wrote {} and {}", man.display(), completions.display());
    Ok(())
}

/// `command` without clap's `help` subcommands, which would each get a man page of their
/// own (`reflector-help-map-add.1`, ...) saying what `--help` says.
fn without_help_subcommand(command: clap::Command) -> clap::Command {
    command
        .disable_help_subcommand(true)
        .mut_subcommands(without_help_subcommand)
}
