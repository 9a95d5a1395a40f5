//! `cargo xtask run -- ARGS`: build reflector, then run it as root.

use std::{ffi::OsString, os::unix::process::CommandExt as _};

use anyhow::{Result, anyhow};

use crate::{build, process};

/// Builds, then replaces this process with `reflector ARGS` (through `sudo -E` unless
/// already root), so signals such as Ctrl-C reach the daemon directly.
pub(crate) fn run(release: bool, args: &[OsString]) -> Result<()> {
    let binary = build::run(release)?;
    let mut cmd = process::as_root(&binary, true);
    cmd.args(args);
    let shown = process::describe(&cmd);
    process::say(&format!("running `{shown}`"));
    let err = cmd.exec();
    Err(anyhow!(err).context(format!("cannot start `{shown}`")))
}
