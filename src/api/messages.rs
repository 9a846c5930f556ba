//! A chat's conversation: `POST/GET /messages`, `/input`, `/cancel` (`/abort`)
//! and the `GET /events` page.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::chats::check_chat;
use super::page::{SeqPage, SeqParams};
use super::{ApiError, JsonBody, QueryParams};
use crate::app::AppState;
use crate::auth::Caller;
use crate::metrics::Metrics;

/// `POST /messages` and `POST /input` body: `message` (the seed) or `content`
/// (FlowGen's backend). `/input` also takes `request_id` and `auto_reply`.
#[derive(Debug, Deserialize)]
pub struct MessageBody {
    message: Option<String>,
    content: Option<String>,
    request_id: Option<String>,
    #[serde(default)]
    auto_reply: bool,
}

impl MessageBody {
    /// The text; a missing or blank one is a 422 naming `message`.
    pub fn text(&self) -> Result<&str, ApiError> {
        match self.message.as_deref().or(self.content.as_deref()) {
            None => Err(ApiError::invalid("message", "message is required")),
            Some(t) if t.trim().is_empty() => {
                Err(ApiError::invalid("message", "message must not be empty"))
            }
            Some(t) => Ok(t),
        }
    }
}

/// `POST /chats/{chat_id}/messages` → 202 with the stored user message; the
/// run starts.
pub async fn post(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    let message = state
        .chats
        .post_message(&caller.tenant, &chat_id, body.text()?)
        .await?;
    Metrics::inc(&state.metrics.messages_posted);
    Ok((StatusCode::ACCEPTED, Json(message)))
}

/// `GET /chats/{chat_id}/messages` → a page by seq.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    let query = params.query()?;
    let (items, last_seq) = state
        .chats
        .messages(&caller.tenant, &chat_id, &query)
        .await?;
    Ok(Json(SeqPage::new(items, &query, last_seq, |m| m.seq)))
}

/// `POST /chats/{chat_id}/input` → 202 with the chat (now `running`).
/// `{"auto_reply": true}` answers with the agent's auto reply (AutoGen's
/// empty reply).
pub async fn input(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    let text = if body.auto_reply {
        None
    } else {
        Some(body.text()?)
    };
    let chat = state
        .chats
        .submit_input(&caller.tenant, &chat_id, body.request_id.as_deref(), text)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(chat)))
}

/// `POST /chats/{chat_id}/cancel` (and `/abort`) → 200 with the chat (`ready`).
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    Ok(Json(state.chats.cancel(&caller.tenant, &chat_id).await?))
}

/// `GET /chats/{chat_id}/events` → a page of durable events by seq.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    let query = params.query()?;
    let (items, last_seq) = state.chats.events(&caller.tenant, &chat_id, &query).await?;
    Ok(Json(SeqPage::new(items, &query, last_seq, |e| {
        e.seq.unwrap_or_default()
    })))
}
