//! `GET /chats/{id}/events` as Server-Sent Events: the same envelopes and the
//! same gap-free feed as the WebSocket; `id:` is the seq, and `Last-Event-ID`
//! or `?after_seq=` resumes. A comment ping every 15 s keeps proxies open.
//!
//! Touches the journal (through the feed) and the hub's task tracker.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::feed::{Follow, FrameSink};
use crate::app::AppState;
use crate::bus::Frame;

/// Frames buffered per SSE stream; a client further behind is cut off and
/// resumes with `Last-Event-ID`.
const QUEUE: usize = 1024;

/// Streams a chat's events after `after_seq` (tenant already checked).
pub fn stream(state: &AppState, chat_id: String, after_seq: u64) -> Response {
    let (tx, rx) = mpsc::channel::<Arc<Frame>>(QUEUE);
    let token = state.shutdown.child_token();
    let guard = token.clone().drop_guard();
    let journal = state.chats.journal().clone();
    state.hub.spawn(async move {
        let follow =
            Follow { journal: &journal, chat_id: &chat_id, after_seq, sink: ChannelSink(tx), cancel: &token };
        follow.run().await;
    });
    let events = ReceiverStream::new(rx).map(move |frame| {
        let _alive = &guard;
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
