//! The HTTP surface: thin axum handlers that parse, authorize, call the domain
//! (`crate::chats`, the store for flows and keys) and map errors. Every route is
//! served both at `/` and under `/v1`.
//!
//! Touches only `AppState`; all rules live in the domain modules.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::AppState;

mod chats;
mod error;
mod extract;
mod flows;
mod health;
mod keys;
mod messages;
mod page;
mod tokens;

pub use error::ApiError;
pub use extract::{BodyBytes, JsonBody, QueryParams, parse_json};
pub use messages::required_text;

/// Every route (method, path) this router serves, as listed in `/openapi.json`;
/// a test keeps the two in step.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/chats"),
    ("POST", "/chats"),
    ("GET", "/chats/{chat_id}"),
    ("DELETE", "/chats/{chat_id}"),
    ("GET", "/chats/{chat_id}/messages"),
    ("POST", "/chats/{chat_id}/messages"),
    ("POST", "/chats/{chat_id}/input"),
    ("POST", "/chats/{chat_id}/cancel"),
    ("POST", "/chats/{chat_id}/abort"),
    ("GET", "/chats/{chat_id}/events"),
    ("GET", "/chats/{chat_id}/ws"),
    ("POST", "/chats/{chat_id}/tokens"),
    ("GET", "/ws"),
    ("GET", "/flows"),
    ("POST", "/flows"),
    ("GET", "/flows/{flow_id}"),
    ("PUT", "/flows/{flow_id}"),
    ("DELETE", "/flows/{flow_id}"),
    ("GET", "/api-keys"),
    ("POST", "/api-keys"),
    ("DELETE", "/api-keys/{key_id}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
];

/// The checked-in OpenAPI description, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../static/openapi.json");

fn routes() -> Router<AppState> {
    Router::new()
        .route("/chats", get(chats::list).post(chats::create))
        .route("/chats/{chat_id}", get(chats::show).delete(chats::delete))
        .route("/chats/{chat_id}/messages", get(messages::list).post(messages::post))
        .route("/chats/{chat_id}/input", post(messages::input))
        .route("/chats/{chat_id}/cancel", post(messages::cancel))
        .route("/chats/{chat_id}/abort", post(messages::cancel))
        .route("/chats/{chat_id}/events", get(messages::events))
        .route("/chats/{chat_id}/ws", get(crate::realtime::ws::chat_bound))
        .route("/chats/{chat_id}/tokens", post(tokens::mint))
        .route("/ws", get(crate::realtime::ws::multiplexed))
        .route("/flows", get(flows::list).post(flows::create))
        .route("/flows/{flow_id}", get(flows::show).put(flows::replace).delete(flows::delete))
        .route("/api-keys", get(keys::list).post(keys::create))
        .route("/api-keys/{key_id}", axum::routing::delete(keys::delete))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
}

/// The whole router over one state.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    Router::new()
        .merge(routes())
        .nest("/v1", routes())
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ))
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
