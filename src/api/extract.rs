//! Request extractors whose rejections speak the contract's error format:
//! [`JsonBody`] (400 `invalid_json` with line and column, 422 `invalid_request`
//! naming the field, 413 for an oversized body) and [`QueryParams`].

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// A JSON body, parsed whatever the `Content-Type` (curl's `-d` sends a form
/// type); an empty body reads as `{}` so a missing field is named, not a
/// syntax error.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Parses JSON bytes into `T` with the contract's errors.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = parse_value(bytes)?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            "the body must be a JSON object",
        ));
    }
    from_value(value)
}

/// Parses JSON bytes into a `Value` (400 `invalid_json` on a syntax error).
pub fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {e}"))
            .with("line", e.line())
            .with("column", e.column())
    })
}

/// Reads a `Value` into `T`, naming the offending field on failure.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let param = if path == "." { missing_field(&message).unwrap_or_default() } else { path };
        ApiError::invalid(&param, message)
    })
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// The raw body, with the size limit's rejection as a 413 `payload_too_large`.
#[derive(Debug)]
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(BodyBytes).map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
            }
        })
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

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
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(QueryParams(t)),
            Err(e) => {
                let text = e.body_text();
                let detail = text.trim_start_matches("Failed to deserialize query string: ");
                let param = detail.split(':').next().unwrap_or_default().trim().to_owned();
                Err(ApiError::invalid(&param, format!("bad query parameter: {detail}")))
            }
        }
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
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.code, "invalid_json");
        assert!(err.message.contains("trailing comma"), "{}", err.message);
        assert_eq!(err.details["line"], 5);
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Body>(b"{\"name\": \"x\"}").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err.details["param"], "from_flow");
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let err = parse_json::<Body>(b"{\"from_flow\": \"f\", \"name\": 5}").unwrap_err();
        assert_eq!(err.details["param"], "name");
    }
}
