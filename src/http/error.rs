//! A [`ClientError`] as an HTTP answer: its table row's status, the
//! `{"error": {"code", "message", "retryable", ...}}` envelope (contract §6),
//! `Retry-After` where it has one, and for `rate_limited` the
//! `RateLimit-Policy` and `RateLimit` fields of
//! `draft-ietf-httpapi-ratelimit-headers-10`. The one `IntoResponse` for errors.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, json};

use crate::model::{ClientError, RateLimitNote};

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
        if let Some(note) = e.rate_limit {
            rate_limit_headers(&note, response.headers_mut());
        }
        response
    }
}

/// `RateLimit-Policy: "key";q=100;w=1, "tenant";q=1000;w=1` (every policy
/// that applies) and `RateLimit: "key";r=0;t=1` (the one that refused).
fn rate_limit_headers(note: &RateLimitNote, headers: &mut HeaderMap) {
    let policies: Vec<String> =
        note.policies.iter().map(|p| format!("\"{}\";q={};w={}", p.name, p.quota, p.window_secs)).collect();
    let state = format!("\"{}\";r=0;t={}", note.refused.name, note.reset_secs);
    for (name, value) in [("ratelimit-policy", policies.join(", ")), ("ratelimit", state)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}
