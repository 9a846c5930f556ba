//! The WebSocket upgrade routes. Authentication, the tenant check of a bound
//! chat and the connection limit all happen before the upgrade: an
//! unauthenticated or refused request gets an HTTP error and never reaches the
//! hub. Buffers are tuned small (2 KiB read, 8 KiB write).

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::session::{self, SessionInit};
use crate::api::{ApiError, QueryParams};
use crate::app::AppState;
use crate::config::Limits;

/// Read buffer per socket: 2 KiB instead of tungstenite's 128 KiB. Inbound frames are
/// small commands; a larger one (up to `ws_frame_bytes`) is read in several chunks.
const READ_BUFFER: usize = 2 << 10;
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

fn upgrade(ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            format!("a WebSocket upgrade is required: {e}"),
        )
    })
}

/// `GET /ws`: a multiplexed socket (subscribe to many chats, watch statuses).
pub async fn multiplexed(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authenticate(&headers, params.token.as_deref()).await?;
    let ws = upgrade(ws)?;
    let permit = admit(&state)?;
    let limits = state.config.limits.clone();
    Ok(configure(ws, &limits)
        .on_upgrade(move |socket| session::run(socket, SessionInit { state, caller, bound: None, permit })))
}

/// `GET /chats/{chat_id}/ws`: a socket bound to one chat, auto-subscribed
/// after `?after_seq=`.
pub async fn chat_bound(
    State(state): State<AppState>,
    Path(chat_id): Path<String>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<WsParams>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let caller = state.auth.authenticate(&headers, params.token.as_deref()).await?;
    if !caller.may_access_chat(&chat_id) {
        return Err(ApiError::chat_not_found(&chat_id));
    }
    let last_seq = state.chats.get(&caller.tenant, &chat_id).await?.chat.last_seq;
    let after_seq = params.after_seq.unwrap_or(0);
    if after_seq > last_seq {
        return Err(ApiError::invalid(
            "after_seq",
            format!("after_seq {after_seq} is beyond the chat's last_seq {last_seq}"),
        ));
    }
    let ws = upgrade(ws)?;
    let permit = admit(&state)?;
    let limits = state.config.limits.clone();
    let bound = Some((chat_id, after_seq));
    Ok(configure(ws, &limits)
        .on_upgrade(move |socket| session::run(socket, SessionInit { state, caller, bound, permit })))
}

fn admit(state: &AppState) -> Result<super::Permit, ApiError> {
    state.hub.admit(&state.metrics).ok_or_else(|| {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "this node is at its connection limit; try another or retry",
        );
        e.retry_after = Some(1);
        e
    })
}
