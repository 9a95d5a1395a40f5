//! `cargo xtask setup`: install everything building and testing reflector needs.

use anyhow::Result;

use crate::{
    process,
    toolchain::{self, Scope},
    vmtest,
};

/// Installs what is missing (Debian packages, nightly with rust-src, bpf-linker); a no-op,
/// and quick, when everything is there.
pub fn run() -> Result<()> {
    toolchain::ensure(Scope::All)?;
    vmtest::ensure_tools()?;
    process::say("setup complete: the eBPF toolchain and the test tools are installed");
    Ok(())
}
