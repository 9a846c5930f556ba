//! A chat's conversation: `POST/GET /messages`, `/input`, `/cancel` (`/abort`)
//! and the `GET /events` page.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::chats::check_chat;
use super::page::{SeqPage, SeqParams};
use super::{ApiError, JsonBody, QueryParams};
use crate::app::AppState;
use crate::auth::Caller;
use crate::bus::Channel;
use crate::metrics::Metrics;
use crate::store::MessageView;

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
    pub fn text(&self, max_bytes: usize) -> Result<&str, ApiError> {
        required_text(self.message.as_deref().or(self.content.as_deref()), max_bytes)
    }
}

/// A message or input text as every route and socket op requires it:
/// present, not blank, at most `max_bytes`; else a 422 naming `message`.
pub fn required_text(text: Option<&str>, max_bytes: usize) -> Result<&str, ApiError> {
    match text {
        None => Err(ApiError::invalid("message", "message is required")),
        Some(t) if t.trim().is_empty() => Err(ApiError::invalid("message", "message must not be empty")),
        Some(t) if t.len() > max_bytes => {
            Err(ApiError::invalid("message", format!("message is longer than {max_bytes} bytes")))
        }
        Some(t) => Ok(t),
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
        .post_message(&caller.tenant, &chat_id, body.text(state.config.limits.max_message_bytes)?)
        .await?;
    Metrics::inc(&state.metrics.messages_posted);
    Ok((StatusCode::ACCEPTED, Json(message)))
}

/// `GET /chats/{chat_id}/messages` → a page by seq, of every message or, with
/// `view=final`, of user messages, human input and final answers. With
/// `wait=S` (long-poll) and nothing of the view after the cursor, holds up to
/// S seconds (capped) until a newer one is stored.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<impl IntoResponse, ApiError> {
    check_chat(&caller, &chat_id)?;
    let query = params.query()?;
    let wait = params.wait.unwrap_or(0.0);
    if !(0.0..=3600.0).contains(&wait) {
        return Err(ApiError::invalid("wait", "seconds, between 0 and 3600 (capped by the server)"));
    }
    let wait = Duration::from_secs_f64(wait.min(state.config.limits.long_poll_max_secs as f64));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // Subscribe before reading, so a message stored in between wakes us.
        let sub = if left.is_zero() || query.descending || state.shutdown.is_cancelled() {
            None
        } else {
            let channel = Channel::Chat(chat_id.clone());
            Some(state.bus.subscribe(&channel).await.map_err(bus_unavailable)?)
        };
        let (items, last_seq) = state.chats.messages(&caller.tenant, &chat_id, &query).await?;
        match sub {
            // A closed bus would wake us at once, again and again: answer now.
            Some(sub) if items.is_empty() && sub.resync.has_changed().is_ok() => {
                let after = query.after_seq.unwrap_or(0);
                crate::realtime::longpoll::wait_for_message(sub, after, left, &state.shutdown).await;
            }
            _ => return Ok(Json(SeqPage::new(items, &query, last_seq, |m| m.seq))),
        }
    }
}

fn bus_unavailable(e: crate::bus::BusError) -> ApiError {
    let message = format!("the live feed is unavailable: {e}");
    let mut err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
    err.retry_after = Some(1);
    err
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
    let text = if body.auto_reply { None } else { Some(body.text(state.config.limits.max_message_bytes)?) };
    let chat = state.chats.submit_input(&caller.tenant, &chat_id, body.request_id.as_deref(), text).await?;
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

/// `GET /chats/{chat_id}/events` → a page of durable events by seq, or with
/// `Accept: text/event-stream` an SSE stream resuming after `Last-Event-ID` or
/// `?after_seq=`.
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<SeqParams>,
) -> Result<Response, ApiError> {
    check_chat(&caller, &chat_id)?;
    if params.view.is_some_and(|v| v != MessageView::All) {
        return Err(ApiError::invalid("view", "`view` applies to messages and WebSocket subscriptions"));
    }
    let wants_sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        let record = state.chats.get(&caller.tenant, &chat_id).await?;
        let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
        let after_seq = match last_event_id {
            Some(id) => id
                .trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("Last-Event-ID", "must be a seq number"))?,
            None => params.after_seq.unwrap_or(0),
        };
        if after_seq > record.chat.last_seq {
            return Err(ApiError::invalid("after_seq", "beyond the chat's last_seq"));
        }
        return Ok(crate::realtime::sse::stream(&state, chat_id, after_seq));
    }
    let query = params.query()?;
    let (items, last_seq) = state.chats.events(&caller.tenant, &chat_id, &query).await?;
    let page = SeqPage::new(items, &query, last_seq, |e| e.seq.unwrap_or_default());
    Ok(Json(page).into_response())
}
