//! The dashboard's sign-in: `POST /session` exchanges an API key (in the JSON
//! body, never a URL) for a short-lived session in an HttpOnly,
//! `SameSite=Strict`, `Path=/` cookie (`Secure` behind TLS) and answers the
//! session's CSRF token, which state-changing requests authenticated by the
//! cookie echo in `X-CSRF-Token`. `GET /session` answers the same for the
//! cookie (a reloaded page learns its CSRF token again); `DELETE /session`
//! signs out by expiring the cookie.
//!
//! Touches the access rules (`crate::service::Access`), which decide.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::auth::SessionClaims;
use crate::auth::session::COOKIE;
use crate::http::{JsonBody, presented};
use crate::model::ClientError;

/// `POST /session` body.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    /// An API key (`fgk_…`) of the tenant to sign in to.
    api_key: String,
}

/// `POST /session` → 201 with the session (and its cookie).
pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ClientError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let session =
        state.services.access.sign_in(body.api_key.trim(), header("origin"), header("host")).await?;
    let max_age = session.claims.exp.saturating_sub(session.claims.iat);
    let cookie = cookie(&session.token, max_age, secure(&state, &headers));
    Ok(answer(StatusCode::CREATED, &session.claims, Some(cookie)))
}

/// `GET /session` → 200 with the cookie's session (401 without a valid one).
pub async fn show(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ClientError> {
    let presented = presented(&headers)
        .session
        .ok_or_else(|| ClientError::unauthenticated("no session: sign in with POST /session"))?;
    let (_, claims) = state.services.access.session(presented).await?;
    Ok(answer(StatusCode::OK, &claims, None))
}

/// `DELETE /session` → 204, the cookie expired (with or without one).
pub async fn delete(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let cookie = cookie("", 0, secure(&state, &headers));
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// Whether the cookie gets `Secure`: always with `session.secure_cookie`, else
/// when the request came over TLS as a proxy says (`X-Forwarded-Proto`).
fn secure(state: &ApiState, headers: &HeaderMap) -> bool {
    let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
    state.secure_cookie || forwarded.is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value.
fn cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// `{"tenant", "key_id", "csrf_token", "expires_at", "expires_in"}`, never cached.
fn answer(status: StatusCode, claims: &SessionClaims, cookie: Option<String>) -> Response {
    let expires_at = chrono::DateTime::from_timestamp(claims.exp as i64, 0).map(crate::model::Timestamp);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let body = json!({
        "tenant": claims.sub,
        "key_id": claims.key_id,
        "csrf_token": claims.csrf,
        "expires_at": expires_at,
        "expires_in": claims.exp.saturating_sub(now),
    });
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}
