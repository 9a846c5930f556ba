//! A chat's conversation: `POST/GET /messages` (with `wait`, a long-poll),
//! `/input`, `/cancel` (`/abort`) and the `GET /events` page.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use crate::auth::Caller;
use crate::http::{IdPath, IdempotencyHeader, JsonBody, QueryParams, SeqPage, SeqParams};
use crate::model::{ChatId, ClientError, ToolResult};
use crate::service::Outcome;
use crate::store::MessageView;

/// `POST /messages` and `POST /input` body: `message` (the seed) or `content`
/// (FlowGen's backend). `/messages` also takes `images` (data or https URLs,
/// see [`crate::service::images`]); `/input` takes `request_id` and `auto_reply`.
#[derive(Debug, Deserialize, Serialize)]
pub struct MessageBody {
    message: Option<String>,
    content: Option<String>,
    /// Absent (or `null`) on a text-only message, and then not part of the
    /// idempotency fingerprint either.
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<Vec<String>>,
    request_id: Option<String>,
    /// `null` is `false`, like every optional field given as `null`.
    auto_reply: Option<bool>,
    /// `/input` to a `tool_calls` request: one result per call. Absent, it is
    /// not part of the idempotency fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_results: Option<Vec<ToolResult>>,
}

impl MessageBody {
    fn text(&self) -> Option<&str> {
        self.message.as_deref().or(self.content.as_deref())
    }

    fn images(&self) -> &[String] {
        self.images.as_deref().unwrap_or_default()
    }
}

/// `POST /chats/{chat_id}/messages` → 202 with the stored user message; the
/// run starts.
pub async fn post(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    IdempotencyHeader(key): IdempotencyHeader,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<impl IntoResponse, ClientError> {
    let what = format!("POST /chats/{chat_id}/messages");
    let answer = state.services.idempotent.once(&caller, key.as_ref(), (&what, &body), || async {
        let message =
            state.services.chats.post_message(&caller, &chat_id, body.text(), body.images()).await?;
        state.metrics.messages_posted.inc();
        Ok(Outcome::same(StatusCode::ACCEPTED.as_u16(), json!(message)))
    });
    answer.await
}

/// `GET /chats/{chat_id}/messages` → a page by seq, of every message or, with
/// `view=final`, of user messages, human input and final answers. With
/// `wait=S` (long-poll) and nothing of the view after the cursor, holds up to
/// S seconds (capped) until a newer one is stored.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<impl IntoResponse, ClientError> {
    let query = params.query()?;
    let wait = params.wait.unwrap_or(0.0);
    if !(0.0..=3600.0).contains(&wait) {
        return Err(ClientError::invalid("wait", "seconds, between 0 and 3600 (capped by the server)"));
    }
    let wait = Duration::from_secs_f64(wait.min(state.long_poll_max_secs as f64));
    let chats = &state.services.chats;
    let _waiting = (!wait.is_zero()).then(|| crate::metrics::Open::new(&state.metrics.long_polls));
    let (items, last_seq) = chats.messages_waiting(&caller, &chat_id, &query, wait, &state.shutdown).await?;
    Ok(Json(SeqPage::new(items, &query, last_seq, |m| m.seq)))
}

/// `POST /chats/{chat_id}/input` → 202 with the chat (now `running`).
/// `{"auto_reply": true}` answers with the agent's auto reply (AutoGen's
/// empty reply); `{"tool_results": [...]}` answers a `tool_calls` request.
pub async fn input(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    IdempotencyHeader(key): IdempotencyHeader,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<impl IntoResponse, ClientError> {
    let what = format!("POST /chats/{chat_id}/input");
    let answer = state.services.idempotent.once(&caller, key.as_ref(), (&what, &body), || async {
        if !body.images().is_empty() {
            return Err(ClientError::invalid(
                "images",
                "images go with POST /messages, not with human input",
            ));
        }
        let text = if body.auto_reply == Some(true) { None } else { Some(body.text()) };
        let (request_id, results) = (body.request_id.as_deref(), body.tool_results.as_deref());
        let chat = state.services.chats.answer_input(&caller, &chat_id, request_id, text, results).await?;
        Ok(Outcome::same(StatusCode::ACCEPTED.as_u16(), json!(chat)))
    });
    answer.await
}

/// `POST /chats/{chat_id}/cancel` (and `/abort`) → 200 with the chat (`ready`).
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> Result<impl IntoResponse, ClientError> {
    let what = format!("POST /chats/{chat_id}/cancel");
    let answer = state.services.idempotent.once(&caller, key.as_ref(), (&what, &()), || async {
        let chat = state.services.chats.cancel(&caller, &chat_id).await?;
        Ok(Outcome::same(StatusCode::OK.as_u16(), json!(chat)))
    });
    answer.await
}

/// `GET /chats/{chat_id}/events` → a page of durable events by seq (the
/// wiring sends `Accept: text/event-stream` to the SSE stream instead).
pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<impl IntoResponse, ClientError> {
    if params.view.is_some_and(|v| v != MessageView::All) {
        return Err(ClientError::invalid("view", "`view` applies to messages and WebSocket subscriptions"));
    }
    let query = params.query()?;
    let (items, last_seq) = state.services.chats.events(&caller, &chat_id, &query).await?;
    Ok(Json(SeqPage::new(items, &query, last_seq, |e| e.seq.unwrap_or_default())))
}
