//! How each lower layer's error becomes the one [`ClientError`] the services
//! return: store failures (503 when retryable, else a logged 500), refusals of
//! the status machine (409s), and credential failures (401, 403).
//!
//! Touches nothing but the error types.

use serde_json::json;

use crate::auth::AuthError;
use crate::ledger::Refusal;
use crate::model::{ClientError, ErrorCode};
use crate::store::StoreError;

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            tracing::warn!(error = %e, "store unavailable");
            return ClientError::unavailable("the store is unavailable; retry shortly");
        }
        if matches!(e, StoreError::Conflict | StoreError::Fenced) {
            return ClientError::new(ErrorCode::Conflict, "the record changed concurrently; retry");
        }
        ClientError::internal(e)
    }
}

impl From<AuthError> for ClientError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing
            | AuthError::InvalidKey
            | AuthError::InvalidToken(_)
            | AuthError::NotInUrl
            | AuthError::Revoked
            | AuthError::Expired => ClientError::unauthenticated(e.to_string()),
            AuthError::Forbidden(why) => ClientError::new(ErrorCode::Forbidden, why),
            AuthError::Store(s) => s.into(),
        }
    }
}

impl From<Refusal> for ClientError {
    fn from(r: Refusal) -> Self {
        let message = r.to_string();
        match r {
            Refusal::ChatBusy => ClientError::new(ErrorCode::ChatBusy, message),
            Refusal::InputRequired(pending) => {
                ClientError::new(ErrorCode::InputRequired, message).with("pending_input", json!(pending))
            }
            Refusal::NotWaitingForInput => ClientError::new(ErrorCode::NotWaitingForInput, message),
            Refusal::InputRequestMismatch { pending, .. } => {
                ClientError::new(ErrorCode::InputRequestMismatch, message).with("pending_request_id", pending)
            }
            Refusal::NoActiveRun => ClientError::new(ErrorCode::NoActiveRun, message),
            Refusal::RunSuperseded => ClientError::new(ErrorCode::RunSuperseded, message),
            Refusal::InputKindMismatch(_) => ClientError::new(ErrorCode::InputKindMismatch, message),
            Refusal::UnknownToolCall(id) => {
                ClientError::new(ErrorCode::UnknownToolCall, message).with("call_id", id)
            }
            Refusal::MissingToolResults(ids) => {
                ClientError::new(ErrorCode::MissingToolResults, message).with("missing", json!(ids))
            }
            Refusal::DuplicateToolResult(_) => ClientError::invalid("tool_results", message),
            Refusal::InvalidChoice(choices) => {
                ClientError::invalid("message", message).with("choices", json!(choices))
            }
        }
    }
}
