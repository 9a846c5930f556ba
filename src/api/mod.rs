//! The REST surface: thin axum handlers that parse the request, call the
//! domain services (`crate::service`) with the [`Caller`](crate::auth::Caller),
//! and answer. Every route is served both at `/` and under `/v1`.
//!
//! Touches the services, the HTTP plumbing (`crate::http`) and the metrics;
//! all rules, access included, live in the services.

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::service::Services;

mod assets;
mod chats;
mod flows;
mod health;
mod keys;
mod messages;
mod node;
mod session;
mod tokens;

pub use assets::dashboard as dashboard_page;
pub use messages::events as events_page;

/// What the REST handlers use.
#[derive(Clone)]
pub struct ApiState {
    /// The domain.
    pub services: Services,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Cap on a long-poll's `wait`, seconds.
    pub long_poll_max_secs: u64,
    /// Fires on shutdown; long-polls answer at once.
    pub shutdown: CancellationToken,
    /// `metrics.token`: when set, `/metrics` answers only this bearer token.
    pub metrics_token: Option<Arc<str>>,
    /// `session.secure_cookie`: the session cookie is always `Secure`.
    pub secure_cookie: bool,
}

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
    ("GET", "/static/{file}"),
    ("GET", "/"),
    ("POST", "/session"),
    ("GET", "/session"),
    ("DELETE", "/session"),
    ("GET", "/node"),
];

/// The checked-in OpenAPI description, served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../../static/openapi.json");

/// The REST routes, for a router whose state provides an [`ApiState`] and the
/// [`Services`] (to authenticate). `GET /chats/{chat_id}/events` is left to
/// the wiring, which picks this page or the SSE stream by `Accept`.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    ApiState: FromRef<S>,
    Services: FromRef<S>,
{
    Router::new()
        .route("/chats", get(chats::list).post(chats::create))
        .route("/chats/{chat_id}", get(chats::show).delete(chats::delete))
        .route("/chats/{chat_id}/messages", get(messages::list).post(messages::post))
        .route("/chats/{chat_id}/input", post(messages::input))
        .route("/chats/{chat_id}/cancel", post(messages::cancel))
        .route("/chats/{chat_id}/abort", post(messages::cancel))
        .route("/chats/{chat_id}/tokens", post(tokens::mint))
        .route("/flows", get(flows::list).post(flows::create))
        .route("/flows/{flow_id}", get(flows::show).put(flows::replace).delete(flows::delete))
        .route("/api-keys", get(keys::list).post(keys::create))
        .route("/api-keys/{key_id}", axum::routing::delete(keys::delete))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/static/{file}", get(assets::file))
        .route("/", get(assets::dashboard))
        .route("/session", get(session::show).post(session::create).delete(session::delete))
        .route("/node", get(node::show))
}
