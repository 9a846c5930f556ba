//! `GET /static/{file}`: the browser files compiled into the binary (the
//! `flowgate.js` client and the `flowgate-chat.js` widget), read-only, each
//! with its content type. Only the names in [`FILES`] exist: no directory
//! listing, no path walking, and the binary serves the same bytes wherever it
//! runs.
//!
//! Touches nothing: the files are constants.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::model::{ClientError, ErrorCode};

/// The served files: name, content type, bytes.
pub const FILES: &[(&str, &str, &str)] = &[
    ("flowgate.js", JAVASCRIPT, include_str!("../../static/flowgate.js")),
    ("flowgate-chat.js", JAVASCRIPT, include_str!("../../static/flowgate-chat.js")),
];

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

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
