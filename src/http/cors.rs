//! CORS for browsers on other origins: only the origins the config names
//! (`cors.allowed_origins`) get a grant; with none configured there is no
//! CORS layer at all, so no cross-origin page can read an answer.
//!
//! Touches the config and nothing else. Credentials (cookies) are never
//! allowed: a cross-origin caller presents `X-API-KEY`, a bearer token, or a
//! chat token, explicitly.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for the configured origins; `None` when none are.
pub fn layer(config: &CorsConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> =
        config.allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
