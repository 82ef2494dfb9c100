//! The admin HTTP port (`--http HOST:PORT`): `/health` (the process answers), `/ready` (the
//! Kafka listener accepts clients; 503 while starting or shutting down) and Prometheus
//! `/metrics`. It exists for container health checks and CI dashboards. `/faults` sets,
//! lists and clears fault-injection rules (see `fault`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::Router;
use tokio::sync::watch;

use crate::context::Context;

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
    let body = tokio::task::spawn_blocking(move || {
        crate::metrics::render(
            &ctx.metrics,
            &ctx.metadata,
            &ctx.groups,
            &ctx.fetch_sessions,
        )
    })
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

fn json(status: StatusCode, body: String) -> axum::response::Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_error(status: StatusCode, message: &str) -> axum::response::Response {
    json(
        status,
        serde_json::json!({ "error": message }).to_string() + "\n",
    )
}

/// `POST /faults` with a rule (JSON, see `fault::RuleSpec`): 201 and the rule with its id.
async fn add_fault(State(ctx): State<Arc<Context>>, body: String) -> axum::response::Response {
    let spec = match serde_json::from_str::<crate::fault::RuleSpec>(&body) {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("bad rule: {e}")),
    };
    match ctx.faults.add(spec) {
        Ok(view) => json(
            StatusCode::CREATED,
            serde_json::to_string(&view).unwrap_or_default() + "\n",
        ),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

/// `GET /faults`: the rules in force, with how often each matched.
async fn list_faults(State(ctx): State<Arc<Context>>) -> axum::response::Response {
    json(
        StatusCode::OK,
        serde_json::to_string(&ctx.faults.list()).unwrap_or_default() + "\n",
    )
}

/// `DELETE /faults`: removes every rule.
async fn clear_faults(State(ctx): State<Arc<Context>>) -> axum::response::Response {
    let n = ctx.faults.clear(None);
    json(StatusCode::OK, format!("{{\"removed\":{n}}}\n"))
}

/// `DELETE /faults/{id}`: removes one rule (404 when there is no such rule).
async fn clear_fault(
    State(ctx): State<Arc<Context>>,
    Path(id): Path<u64>,
) -> axum::response::Response {
    match ctx.faults.clear(Some(id)) {
        0 => json_error(StatusCode::NOT_FOUND, &format!("no fault rule {id}")),
        n => json(StatusCode::OK, format!("{{\"removed\":{n}}}\n")),
    }
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
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/faults/{id}", delete(clear_fault))
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
