//! The shutdown signal: SIGINT or SIGTERM.

use log::{info, warn};
use tokio::signal::unix::{SignalKind, signal as unix_signal};

/// Completes when the process receives SIGINT or SIGTERM.
pub async fn signal() {
    let mut terminate = match unix_signal(SignalKind::terminate()) {
        Ok(stream) => Some(stream),
        Err(error) => {
            warn!("cannot watch SIGTERM ({error}); stop with SIGINT");
            None
        }
    };
    let term = async {
        match terminate.as_mut() {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
        () = term => info!("SIGTERM received; shutting down"),
    }
}
