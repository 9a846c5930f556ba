//! The WebSocket upgrade routes. Authentication, the access check of a bound
//! chat (both by the domain services) and the connection limit all happen
//! before the upgrade: an unauthenticated or refused request gets an HTTP
//! error and never becomes a socket. Buffers are tuned small (256 bytes
//! read, 8 KiB write).

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::RealtimeState;
use super::session::{self, SessionInit};
use crate::auth::{Caller, Presented};
use crate::config::Limits;
use crate::http::{IdPath, QueryParams, presented};
use crate::model::{ChatId, ClientError, ErrorCode};

/// Read buffer per socket: 256 bytes instead of tungstenite's 128 KiB, held
/// for the socket's life (10,000 idle sockets: 0.7 KiB each less than with
/// 1 KiB). Inbound frames are mostly small commands (a subscribe is about 100
/// bytes); a larger one (up to `ws_frame_bytes`) is read in 256-byte reads,
/// so a 64 KiB frame takes 256 read calls (64 with 1 KiB).
const READ_BUFFER: usize = 256;
/// Write buffer per socket (frames are batched, then flushed).
const WRITE_BUFFER: usize = 8 << 10;

/// Upgrade query parameters.
#[derive(Debug, Deserialize)]
pub struct WsParams {
    /// A short-lived chat token (browsers cannot set headers on a WebSocket).
    token: Option<String>,
    /// For `/chats/{id}/ws`: replay after this seq.
    after_seq: Option<u64>,
}

fn configure(ws: WebSocketUpgrade, limits: &Limits) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + limits.ws_outbound_queue_bytes.max(limits.ws_frame_bytes))
        .max_message_size(limits.ws_frame_bytes)
        .max_frame_size(limits.ws_frame_bytes)
}

fn upgrade(ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Result<WebSocketUpgrade, ClientError> {
    ws.map_err(|e| {
        ClientError::new(ErrorCode::UpgradeRequired, format!("a WebSocket upgrade is required: {e}"))
    })
}

/// The caller, from the headers or a chat token in `?token=`.
async fn caller(
    state: &RealtimeState,
    headers: &HeaderMap,
    token: Option<&str>,
) -> Result<Caller, ClientError> {
    let presented = Presented { query_token: token, ..presented(headers) };
    state.services.access.authenticate(presented).await
}

/// `GET /ws`: a multiplexed socket (subscribe to many chats, watch statuses).
pub async fn multiplexed(
    State(state): State<RealtimeState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ClientError> {
    let caller = caller(&state, &headers, params.token.as_deref()).await?;
    let ws = upgrade(ws)?;
    let permit = admit(&state)?;
    let limits = state.limits.clone();
    // Boxed: the upgrade task keeps its callback's room for the socket's life.
    let init = Box::new(SessionInit { state, caller, bound: None, permit });
    Ok(configure(ws, &limits).on_upgrade(move |socket| session::run(socket, init)))
}

/// `GET /chats/{chat_id}/ws`: a socket bound to one chat, auto-subscribed
/// after `?after_seq=`.
pub async fn chat_bound(
    State(state): State<RealtimeState>,
    IdPath(chat_id): IdPath<ChatId>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ClientError> {
    let caller = caller(&state, &headers, params.token.as_deref()).await?;
    let after_seq = params.after_seq.unwrap_or(0);
    state.services.chats.feed_start(&caller, &chat_id, after_seq, "after_seq").await?;
    let ws = upgrade(ws)?;
    let permit = admit(&state)?;
    let limits = state.limits.clone();
    let init = Box::new(SessionInit { state, caller, bound: Some((chat_id, after_seq)), permit });
    Ok(configure(ws, &limits).on_upgrade(move |socket| session::run(socket, init)))
}

fn admit(state: &RealtimeState) -> Result<super::Permit, ClientError> {
    state.connections.admit(&state.metrics).ok_or_else(|| {
        ClientError::new(
            ErrorCode::TooManyConnections,
            "this node is at its connection limit; try another or retry",
        )
    })
}
