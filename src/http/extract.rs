//! Request extractors whose rejections speak the contract's error format:
//! [`JsonBody`] (400 `invalid_json` with line and column, 422 `invalid_request`
//! naming the field, 413 for an oversized body), [`QueryParams`], and the
//! [`Caller`] (credentials from the headers or the session cookie, resolved
//! by the domain's access rules).

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::session::COOKIE as SESSION_COOKIE;
use crate::auth::{Caller, Presented, SessionPresented};
use crate::model::{ClientError, ErrorCode, check_json_depth, from_json};
use crate::service::Services;

/// A JSON body, parsed whatever the `Content-Type` (curl's `-d` sends a form
/// type); an empty body reads as `{}` so a missing field is named, not a
/// syntax error.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Parses JSON bytes into `T` with the contract's errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    let value = parse_value(bytes)?;
    if !value.is_object() {
        return Err(ClientError::new(ErrorCode::InvalidRequest, "the body must be a JSON object"));
    }
    from_json(value)
}

/// Parses JSON bytes into a `Value` (400 `invalid_json` on a syntax error,
/// 422 `invalid_request` naming the field nested deeper than
/// [`MAX_JSON_DEPTH`](crate::model::MAX_JSON_DEPTH)).
pub fn parse_value(bytes: &[u8]) -> Result<Value, ClientError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    check_json_depth(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| {
        ClientError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"))
            .with("line", e.line())
            .with("column", e.column())
    })
}

/// The raw body, with the size limit's rejection as a 413 `payload_too_large`.
#[derive(Debug)]
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ClientError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(BodyBytes).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ClientError::new(ErrorCode::PayloadTooLarge, "the body is too large")
            } else {
                ClientError::new(ErrorCode::InvalidBody, e.body_text())
            }
        })
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ClientError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let BodyBytes(bytes) = BodyBytes::from_request(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Query parameters; a bad value is a 422 naming it.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(QueryParams(t)),
            Err(e) => {
                let text = e.body_text();
                let detail = text.trim_start_matches("Failed to deserialize query string: ");
                let param = detail.split(':').next().unwrap_or_default().trim().to_owned();
                Err(ClientError::invalid(&param, format!("bad query parameter: {detail}")))
            }
        }
    }
}

/// The credentials a request's headers present (`X-API-KEY`, `Authorization`,
/// the dashboard's session cookie with `X-CSRF-Token`, `Origin` and `Host`),
/// for a request that changes nothing (a GET, an upgrade, a stream).
pub fn presented(headers: &axum::http::HeaderMap) -> Presented<'_> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let session = session_cookie(headers).map(|cookie| SessionPresented {
        cookie,
        csrf: header("x-csrf-token"),
        origin: header("origin"),
        host: header("host"),
        changes_state: false,
    });
    Presented {
        api_key: header("x-api-key"),
        authorization: header("authorization"),
        query_token: None,
        session,
    }
}

/// The value of the `flowgate_session` cookie, if the request carries one.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Every handler that takes a `Caller` is authenticated before its body runs.
impl<S> FromRequestParts<S> for Caller
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let mut presented = presented(&parts.headers);
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if let Some(session) = presented.session.as_mut() {
            session.changes_state = !safe;
        }
        Services::from_ref(state).access.authenticate(presented).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        from_flow: String,
        name: Option<String>,
    }

    #[test]
    fn the_seeds_trailing_comma_is_an_invalid_json_error_with_its_position() {
        let body = b"{\n\"name\": \"My Chatbot\",\n\"from_type\": \"flow\",\n\"from_flow\": \"flow_id\",\n}";
        let err = parse_json::<Body>(body).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidJson);
        assert!(err.message.contains("trailing comma"), "{}", err.message);
        assert_eq!(err.details["line"], 5);
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Body>(b"{\"name\": \"x\"}").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(err.details["param"], "from_flow");
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let err = parse_json::<Body>(b"{\"from_flow\": \"f\", \"name\": 5}").unwrap_err();
        assert_eq!(err.details["param"], "name");
    }
}
