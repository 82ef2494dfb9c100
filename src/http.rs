//! The admin HTTP port (`--http HOST:PORT`): `/health` (the process answers), `/ready` (the
//! Kafka listener accepts clients; 503 while starting or shutting down) and Prometheus
//! `/metrics`. It exists for container health checks and CI dashboards.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::broker::Context;

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    if ctx.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    // Offsets and group lag are read from the store: keep that off the async workers.
    let body = tokio::task::spawn_blocking(move || crate::metrics::render(&ctx))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
}

/// Serves on `listener` (bound with the broker's port, so a taken port fails start-up)
/// until `shutdown` turns true.
pub fn spawn(
    ctx: Arc<Context>,
    listener: tokio::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    tracing::info!("admin HTTP on http://{local}");
    tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|v| *v).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "admin HTTP server stopped");
        }
    });
    Ok(local)
}
