//! `cargo xtask setup`: install everything building and testing reflector needs.

use anyhow::Result;

use crate::{
    process,
    toolchain::{self, Scope},
};

/// Installs what is missing (Debian packages, nightly with rust-src, bpf-linker); a no-op,
/// and quick, when everything is there.
pub(crate) fn run() -> Result<()> {
    toolchain::ensure(Scope::All)?;
    process::say("setup complete: the eBPF toolchain and the test tools are installed");
    Ok(())
}
