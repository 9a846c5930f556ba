//! `ApiError`: every non-2xx answer, rendered once as
//! `{"error": {"code", "message", "retryable", ...}}` (contract §6), and the
//! mapping from each domain error to its status and code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::auth::AuthError;
use crate::chats::{ChatsError, Refusal};
use crate::store::StoreError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`chat_not_found`, …).
    pub code: &'static str,
    /// For a human.
    pub message: String,
    /// Extra fields merged into the error object (`param`, `pending_input`, …).
    pub details: Map<String, Value>,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Map::new(), retry_after: None }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// 422 `invalid_request` naming the offending field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message).with("param", param)
    }

    /// 404 `chat_not_found`.
    pub fn chat_not_found(chat_id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "chat_not_found", format!("no chat {chat_id}"))
    }

    /// 404 for an unknown route.
    pub fn route_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json")
    }

    /// Whether retrying the same request may succeed.
    fn retryable(&self) -> bool {
        self.status == StatusCode::TOO_MANY_REQUESTS || self.status.is_server_error()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("code".into(), json!(self.code));
        error.insert("message".into(), json!(self.message));
        error.insert("retryable".into(), json!(self.retryable()));
        error.extend(self.details);
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            tracing::warn!(error = %e, "store unavailable");
            let mut err = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unavailable; retry shortly",
            );
            err.retry_after = Some(1);
            return err;
        }
        if matches!(e, StoreError::Conflict | StoreError::Fenced) {
            return ApiError::new(StatusCode::CONFLICT, "conflict", "the record changed concurrently; retry");
        }
        tracing::error!(error = %e, "store failure");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::InvalidKey | AuthError::InvalidToken(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            AuthError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", why),
            AuthError::Store(s) => s.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, r.to_string());
        match &r {
            Refusal::ChatBusy => conflict("chat_busy"),
            Refusal::InputRequired(pending) => {
                conflict("input_required").with("pending_input", json!(pending))
            }
            Refusal::NotWaitingForInput => conflict("not_waiting_for_input"),
            Refusal::InputRequestMismatch { pending, .. } => {
                conflict("input_request_mismatch").with("pending_request_id", pending.clone())
            }
            Refusal::NoActiveRun => conflict("no_active_run"),
            Refusal::RunSuperseded => conflict("run_superseded"),
            Refusal::InvalidChoice(choices) => {
                ApiError::invalid("message", r.to_string()).with("choices", json!(choices))
            }
        }
    }
}

impl From<ChatsError> for ApiError {
    fn from(e: ChatsError) -> Self {
        match e {
            ChatsError::ChatNotFound(id) => ApiError::chat_not_found(&id),
            ChatsError::FlowNotFound(id) => {
                ApiError::new(StatusCode::NOT_FOUND, "flow_not_found", format!("no flow {id}"))
                    .with("param", "from_flow")
            }
            ChatsError::Refused(r) => r.into(),
            ChatsError::Store(s) => s.into(),
        }
    }
}
