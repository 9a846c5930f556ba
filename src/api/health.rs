//! Liveness (`/healthz`), readiness (`/readyz`: store and bus answer), the
//! Prometheus text (`/metrics`) and the OpenAPI description. Unauthenticated,
//! but for `/metrics` when `metrics.token` is set (then a bearer token).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha2::{Digest, Sha256};

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

/// `GET /metrics`: Prometheus text; with `metrics.token` set, only for
/// `Authorization: Bearer <token>` (else 401 `unauthenticated`).
pub async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared as digests, so the time taken says nothing of the token.
        if Sha256::digest(presented.trim()) != Sha256::digest(token.as_bytes()) {
            return ClientError::unauthenticated("/metrics takes the metrics.token bearer token")
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], state.metrics.render()).into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI_JSON)
}
