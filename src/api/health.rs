//! Liveness (`/healthz`), readiness (`/readyz`: store and bus answer), the
//! Prometheus text (`/metrics`) and the OpenAPI description. Unauthenticated.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the store and the bus answer, else 503.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.ping().await.map_err(|e| e.to_string());
    let bus = state.bus.ping().await.map_err(|e| e.to_string());
    let ok = store.is_ok() && bus.is_ok();
    let show = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".into());
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body =
        json!({"status": if ok { "ok" } else { "unavailable" }, "store": show(store), "bus": show(bus)});
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI_JSON)
}
