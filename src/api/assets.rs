//! `GET /static/{file}`: the browser files compiled into the binary (the
//! `flowgate.js` client, the `flowgate-chat.js` widget, the dashboard's script
//! and styles), read-only, each with its content type; and `GET /`, the
//! dashboard page. Only the names in [`FILES`] exist: no directory listing, no
//! path walking, and the binary serves the same bytes wherever it runs.
//!
//! Touches nothing: the files are constants.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::model::{ClientError, ErrorCode};

/// The served files: name, content type, bytes.
pub const FILES: &[(&str, &str, &str)] = &[
    ("flowgate.js", JS, include_str!("../../static/flowgate.js")),
    ("flowgate-chat.js", JS, include_str!("../../static/flowgate-chat.js")),
    ("dashboard.js", JS, include_str!("../../static/dashboard.js")),
    ("dashboard.css", "text/css; charset=utf-8", include_str!("../../static/dashboard.css")),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The dashboard page (`GET /`).
const DASHBOARD: &str = include_str!("../../static/dashboard.html");

/// What the dashboard page may load and run: its own files, and sockets and
/// requests to its own origin only; no inline script, no framing. Inline
/// styles are allowed: the chat widget styles its Shadow DOM with `<style>`.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// `GET /`: the live monitoring dashboard (sign in with an API key).
pub async fn dashboard() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (headers, DASHBOARD).into_response()
}

/// `GET /static/{file}`: one of [`FILES`], else `404 not_found`.
pub async fn file(Path(name): Path<String>) -> Result<Response, ClientError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| ClientError::new(ErrorCode::NotFound, format!("no static file `{name}`")))?;
    let headers = [
        (header::CONTENT_TYPE, *content_type),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    Ok((headers, *body).into_response())
}
