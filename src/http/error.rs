//! A [`ClientError`] as an HTTP answer: its table row's status, the
//! `{"error": {"code", "message", "retryable", ...}}` envelope (contract §6)
//! and `Retry-After` where it has one. The one `IntoResponse` for errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, json};

use crate::model::ClientError;

impl IntoResponse for ClientError {
    fn into_response(self) -> Response {
        let e = self;
        let mut error = Map::new();
        error.insert("code".into(), json!(e.code.as_str()));
        error.insert("message".into(), json!(e.message));
        error.insert("retryable".into(), json!(e.code.retryable()));
        error.extend(e.details);
        let status = StatusCode::from_u16(e.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = e.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
