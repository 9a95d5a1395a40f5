//! Ctrl-C and SIGTERM: the run stops after the measurement in progress, removing what it
//! built (processes in the namespaces have process groups of their own and never see the
//! terminal's signal, so dying at once would leave them and their namespaces behind).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set once a stop was asked for.
static STOP: AtomicBool = AtomicBool::new(false);

/// Handles SIGINT, SIGTERM and SIGHUP from a thread of their own: the first asks for a
/// stop, a second one exits at once (status 130). Signal handlers, unlike a blocked signal
/// mask, do not pass on to the processes this one starts.
pub(crate) fn watch() -> Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot handle SIGINT and SIGTERM")?;
    thread::spawn(move || {
        for signal in &mut signals {
            if STOP.swap(true, Ordering::SeqCst) {
                eprintln!("reflector-bench: signal {signal} again: exiting now");
                std::process::exit(130);
            }
            eprintln!(
                "reflector-bench: signal {signal}: stopping after the measurement in progress \
                 (again to exit at once, leaving its namespaces behind)"
            );
        }
    });
    Ok(())
}

/// Whether a stop was asked for.
pub(crate) fn stopping() -> bool {
    STOP.load(Ordering::SeqCst)
}
