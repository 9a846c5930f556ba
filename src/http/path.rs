//! Typed ids named by a client (in a path, or a socket command), parsed at
//! the edge: an id that does not parse names nothing, so it is the 404 of its
//! kind (`chat_not_found`, …), the same answer as an id that parses but is not
//! there.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use crate::model::{ChatId, ClientError, ErrorCode, FlowId, KeyId};

/// An id type a client names.
pub trait NamedId: Sized {
    /// The id, or the 404 of its kind for text that is no such id.
    fn named(raw: &str) -> Result<Self, ClientError>;
}

impl NamedId for ChatId {
    fn named(raw: &str) -> Result<Self, ClientError> {
        ChatId::parse(raw).map_err(|_| ClientError::chat_not_found(raw))
    }
}

impl NamedId for FlowId {
    fn named(raw: &str) -> Result<Self, ClientError> {
        FlowId::parse(raw).map_err(|_| ClientError::new(ErrorCode::FlowNotFound, format!("no flow {raw}")))
    }
}

impl NamedId for KeyId {
    fn named(raw: &str) -> Result<Self, ClientError> {
        KeyId::parse(raw).map_err(|_| ClientError::new(ErrorCode::KeyNotFound, format!("no key {raw}")))
    }
}

/// The one path parameter of a route, as a typed id.
#[derive(Debug)]
pub struct IdPath<T>(pub T);

impl<S: Send + Sync, T: NamedId> FromRequestParts<S> for IdPath<T> {
    type Rejection = ClientError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ClientError::new(ErrorCode::NotFound, e.body_text()))?;
        T::named(&raw).map(IdPath)
    }
}
