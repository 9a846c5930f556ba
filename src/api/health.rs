//! Liveness (`/healthz`), readiness (`/readyz`: store and bus answer), the
//! Prometheus text (`/metrics`) and the OpenAPI description. Unauthenticated.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::ApiError;
use crate::app::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the store and the bus answer; else 503 with the
/// error envelope, whose `store` and `bus` fields say which failed.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.ping().await.map_err(|e| e.to_string());
    let bus = state.bus.ping().await.map_err(|e| e.to_string());
    let show = |r: &Result<(), String>| r.as_ref().err().cloned().unwrap_or_else(|| "ok".into());
    let (store_state, bus_state) = (show(&store), show(&bus));
    if store.is_ok() && bus.is_ok() {
        return Json(json!({"status": "ok", "store": store_state, "bus": bus_state})).into_response();
    }
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "not ready: the store or the bus does not answer",
    )
    .with("store", store_state)
    .with("bus", bus_state);
    error.retry_after = Some(1);
    error.into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI_JSON)
}
