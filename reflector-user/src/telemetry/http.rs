//! The metrics endpoint (`--metrics ADDR`): `/metrics` (Prometheus text), `/healthz` (200
//! while the process runs) and `/readyz` (200 once every interface has its mode active,
//! 503 before).

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use thiserror::Error;
use tokio::net::TcpListener;

use super::{Telemetry, metrics};

/// The metrics address could not be listened on.
#[derive(Debug, Error)]
#[error("cannot serve metrics on {address}")]
pub struct BindError {
    /// The address.
    pub address: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Listens on `address` for [`serve`].
///
/// # Errors
/// [`BindError`] naming the address when it cannot be bound.
pub(crate) async fn bind(address: SocketAddr) -> Result<TcpListener, BindError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| BindError { address, source })
}

/// The routes, for [`serve`] and for tests.
pub(crate) fn router(telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(telemetry)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
///
/// # Errors
/// When accepting connections fails for good.
pub(crate) async fn serve(
    listener: TcpListener,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(telemetry))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Prometheus text: `OpenMetrics` when the client asks for it (Prometheus does), the classic
/// 0.0.4 format otherwise.
async fn metrics_page(
    State(telemetry): State<Arc<Telemetry>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let snapshot = telemetry.snapshot();
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(header::CONTENT_TYPE, metrics::OPENMETRICS_CONTENT_TYPE)],
            metrics::render_openmetrics(&snapshot),
        )
    } else {
        (
            [(header::CONTENT_TYPE, metrics::TEXT_CONTENT_TYPE)],
            metrics::render_text(&snapshot),
        )
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(telemetry): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
    if telemetry.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
