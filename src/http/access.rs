//! The access log and the HTTP series: one `info` line per request (method,
//! route template, status, latency) and `flowgate_http_requests_total` /
//! `flowgate_http_request_duration_seconds` by the same labels.
//!
//! Only the matched route template is ever recorded (`/chats/{chat_id}`),
//! never the raw path, the query string, a header or the body: those can
//! carry ids and tokens. Requests no route matched are `unmatched`.
//!
//! Touches the metrics only.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;

/// The route label of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// Route layer: carries the matched route template out on the response, for
/// [`track`] (which runs outside the router, where it is not yet known).
pub async fn mark_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Outer layer: times the request to its response head, counts it and logs
/// it.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let route = response.extensions().get::<MatchedPath>().map_or(UNMATCHED, MatchedPath::as_str);
    let status = response.status();
    metrics.http_requests.with_label_values(&[method, route, status.as_str()]).inc();
    metrics.http_duration.with_label_values(&[method, route]).observe(elapsed.as_secs_f64());
    tracing::info!(
        target: "flowgate::access",
        method,
        route,
        status = status.as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The method as a label: the standard ones by name, anything else `OTHER`
/// (a client must not be able to mint series).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN.iter().find(|m| *m == method).map_or("OTHER", |m| m.as_str())
}
