//! The shutdown signal: SIGINT or SIGTERM.

use std::future::Future;

use log::{info, warn};
use tokio::signal::unix::{Signal, SignalKind, signal as unix_signal};

/// Completes when the process receives SIGINT or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is first polled:
/// the daemon polls it only once it is ready, and a SIGTERM sent as soon as it says so
/// (a test, or systemd stopping a unit that just started) would otherwise find the default
/// disposition and kill it without any cleanup. Call it inside the runtime.
pub(crate) fn signal() -> impl Future<Output = ()> {
    let watch = |kind: SignalKind, name: &str| match unix_signal(kind) {
        Ok(stream) => Some(stream),
        Err(error) => {
            warn!("cannot watch {name} ({error})");
            None
        }
    };
    let terminate = watch(SignalKind::terminate(), "SIGTERM");
    let interrupt = watch(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = received(interrupt) => info!("SIGINT received; shutting down"),
            () = received(terminate) => info!("SIGTERM received; shutting down"),
        }
    }
}

/// Completes on the first signal `stream` delivers; never when there is no stream.
async fn received(stream: Option<Signal>) {
    match stream {
        Some(mut stream) => {
            stream.recv().await;
        }
        None => std::future::pending().await,
    }
}
