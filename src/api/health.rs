//! Liveness (`/healthz`), readiness (`/readyz`: store and bus answer), the
//! Prometheus text (`/metrics`) and the OpenAPI description. Unauthenticated.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ApiState;
use crate::model::ClientError;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the store and the bus answer; else 503 with the
/// error envelope, whose `store` and `bus` fields say which failed.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let (store, bus) = state.services.chats.ping().await;
    let show = |r: &Result<(), String>| r.as_ref().err().cloned().unwrap_or_else(|| "ok".into());
    let (store_state, bus_state) = (show(&store), show(&bus));
    if store.is_ok() && bus.is_ok() {
        return Json(json!({"status": "ok", "store": store_state, "bus": bus_state})).into_response();
    }
    ClientError::unavailable("not ready: the store or the bus does not answer")
        .with("store", store_state)
        .with("bus", bus_state)
        .into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI_JSON)
}
