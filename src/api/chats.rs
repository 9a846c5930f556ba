//! `/chats` and `/chats/{chat_id}`: create, list, show, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ApiState;
use crate::auth::Caller;
use crate::http::{IdPath, IdempotencyHeader, JsonBody, QueryParams};
use crate::model::{ChatId, ChatStatus, ClientError, ErrorCode, FlowId};
use crate::service::{NewChat, Outcome};
use crate::store::ChatQuery;

/// `POST /chats` body (the seed's shape).
#[derive(Debug, Deserialize, Serialize)]
pub struct CreateChat {
    name: Option<String>,
    from_type: Option<String>,
    from_flow: Option<String>,
    metadata: Option<Value>,
}

/// `GET /chats` query.
#[derive(Debug, Deserialize)]
pub struct ListChats {
    status: Option<String>,
    from_flow: Option<FlowId>,
    after: Option<ChatId>,
    before: Option<ChatId>,
    limit: Option<usize>,
}

/// `POST /chats` → 201 with the chat.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    IdempotencyHeader(key): IdempotencyHeader,
    JsonBody(body): JsonBody<CreateChat>,
) -> Result<impl IntoResponse, ClientError> {
    let services = &state.services;
    let request = ("POST /chats", &body);
    let answer =
        services.idempotent.once(&caller, key.as_ref(), request, || create_once(&state, &caller, &body));
    answer.await
}

/// Creates the chat `POST /chats` asks for.
async fn create_once(state: &ApiState, caller: &Caller, body: &CreateChat) -> Result<Outcome, ClientError> {
    if let Some(t) = body.from_type.as_deref().filter(|t| *t != "flow") {
        return Err(ClientError::invalid("from_type", format!("`{t}` is not supported; use \"flow\"")));
    }
    let from_flow = body.from_flow.clone().filter(|f| !f.trim().is_empty());
    let from_flow = from_flow
        .ok_or_else(|| ClientError::invalid("from_flow", "from_flow is required: the id of a flow"))?;
    let from_flow = FlowId::parse(&from_flow).map_err(|_| {
        ClientError::new(ErrorCode::FlowNotFound, format!("no flow {from_flow}")).with("param", "from_flow")
    })?;
    if body.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ClientError::invalid("metadata", "must be a JSON object"));
    }
    if body.name.as_ref().is_some_and(|n| n.len() > 256) {
        return Err(ClientError::invalid("name", "at most 256 characters"));
    }
    let new = NewChat { name: body.name.clone(), from_flow, metadata: body.metadata.clone() };
    let chat = state.services.chats.create(caller, new).await?;
    state.metrics.chats_created.inc();
    Ok(Outcome::same(StatusCode::CREATED.as_u16(), json!(chat)))
}

/// `GET /chats` → a page, newest first.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListChats>,
) -> Result<impl IntoResponse, ClientError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(ChatStatus::parse(s).ok_or_else(|| {
            ClientError::invalid(
                "status",
                format!("`{s}` is not one of ready, running, wait_for_human_input, completed, error"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ClientError::invalid("limit", "must be between 1 and 100"));
    }
    let query = ChatQuery { status, from_flow: q.from_flow, after: q.after, before: q.before, limit };
    Ok(Json(state.services.chats.list(&caller, &query).await?))
}

/// `GET /chats/{chat_id}` → the chat with its status.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
) -> Result<impl IntoResponse, ClientError> {
    Ok(Json(state.services.chats.get(&caller, &chat_id).await?.chat))
}

/// `DELETE /chats/{chat_id}` → 204; cancels the run and closes its sockets.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
) -> Result<StatusCode, ClientError> {
    state.services.chats.delete(&caller, &chat_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
