//! `GET /chats/{id}/events` as Server-Sent Events: the same envelopes and the
//! same gap-free feed as the WebSocket; `id:` is the seq, and `Last-Event-ID`
//! or `?after_seq=` resumes. A comment ping every 15 s keeps proxies open.
//! `EventSource` cannot set headers, so a chat token may come as `?token=`
//! (as on the WebSocket; never an API key).
//!
//! Touches the chat service (access, the journal for the feed) and the node's
//! connection registry.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::RealtimeState;
use super::feed::{Follow, FrameSink};
use crate::auth::Presented;
use crate::bus::Frame;
use crate::http::{IdPath, QueryParams, presented};
use crate::model::{ChatId, ClientError};
use crate::service::CredentialWatch;

/// Frames buffered per SSE stream; a client further behind is cut off and
/// resumes with `Last-Event-ID`.
const QUEUE: usize = 1024;

/// The SSE query: where to resume when no `Last-Event-ID` is sent, and a
/// chat token for browsers.
#[derive(Debug, Deserialize)]
pub struct SseParams {
    after_seq: Option<u64>,
    token: Option<String>,
}

/// `GET /chats/{chat_id}/events` with `Accept: text/event-stream`: the chat's
/// events after `Last-Event-ID` (or `?after_seq=`), then live. The caller
/// presents headers or a `?token=` chat token; the services decide.
pub async fn events(
    State(state): State<RealtimeState>,
    IdPath(chat_id): IdPath<ChatId>,
    headers: HeaderMap,
    QueryParams(params): QueryParams<SseParams>,
) -> Result<Response, ClientError> {
    let presented = Presented { query_token: params.token.as_deref(), ..presented(&headers) };
    let caller = state.services.access.authenticate(presented).await?;
    let (after_seq, param) = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(id) => {
            let seq = id.trim().parse::<u64>();
            (seq.map_err(|_| ClientError::invalid("Last-Event-ID", "must be a seq number"))?, "Last-Event-ID")
        }
        None => (params.after_seq.unwrap_or(0), "after_seq"),
    };
    state.services.chats.feed_start(&caller, &chat_id, after_seq, param).await?;
    let credential = state.services.access.watch(&caller);
    Ok(stream(&state, chat_id, after_seq, credential))
}

/// Streams a chat's events after `after_seq` (access already checked) until
/// the client goes, the node shuts down, or the credential ends.
fn stream(state: &RealtimeState, chat_id: ChatId, after_seq: u64, credential: CredentialWatch) -> Response {
    let (tx, rx) = mpsc::channel::<Arc<Frame>>(QUEUE);
    let token = state.shutdown.child_token();
    let guard = token.clone().drop_guard();
    let open = crate::metrics::Open::new(&state.metrics.sse_streams);
    let journal = state.services.chats.journal().clone();
    state.connections.spawn(async move {
        let follow =
            Follow { journal: &journal, chat_id: &chat_id, after_seq, sink: ChannelSink(tx), cancel: &token };
        tokio::select! {
            _ = follow.run() => {}
            _ = credential.ended() => {}
        }
    });
    let events = ReceiverStream::new(rx).map(move |frame| {
        let _alive = (&guard, &open);
        Ok::<_, Infallible>(to_sse(&frame))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("ping"))
        .into_response()
}

/// An SSE stream's queue: live frames never wait (a full queue ends the
/// stream), replayed ones wait for room.
struct ChannelSink(mpsc::Sender<Arc<Frame>>);

impl FrameSink for ChannelSink {
    fn push(&mut self, frame: Arc<Frame>) -> bool {
        self.0.try_send(frame).is_ok()
    }

    async fn replay(&mut self, frame: Arc<Frame>) -> bool {
        self.0.send(frame).await.is_ok()
    }
}

fn to_sse(frame: &Frame) -> SseEvent {
    let event = SseEvent::default().event(frame.kind.as_str()).data(frame.json.as_str());
    match frame.seq {
        Some(seq) => event.id(seq.to_string()),
        None => event,
    }
}
