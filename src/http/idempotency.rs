//! `Idempotency-Key` at the HTTP edge: the header read and checked (a 422
//! naming it when malformed), and an idempotent answer rendered with its
//! status, its JSON body and, for a replay, `Idempotent-Replayed: true`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::model::ClientError;
use crate::service::{Answer, IdempotencyKey};

/// The request's `Idempotency-Key`, if it sent one.
#[derive(Debug)]
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let text = value.to_str().map_err(|_| ClientError::invalid("Idempotency-Key", "must be ASCII"))?;
        IdempotencyKey::parse(text, "Idempotency-Key").map(|k| Self(Some(k)))
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.answer.status).unwrap_or(StatusCode::OK);
        let mut response = (status, axum::Json(self.answer.body)).into_response();
        if self.replayed {
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}
