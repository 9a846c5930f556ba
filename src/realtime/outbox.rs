//! One connection's outbound side: a queue bounded in bytes (overflow closes
//! the client with 4008 instead of slowing the room), the [`Closer`] that
//! records the first close reason, and the writer loop that batches frames
//! (wait for one, drain what else is queued, flush once) and pings. The
//! writer is a future the session joins to its reader (one task per socket).
//!
//! Touches only its socket half and the node's metrics.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::SinkExt;
use futures::stream::SplitSink;
use futures::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::Disconnect;

/// Frames written before one flush, at most.
const BATCH: usize = 64;
/// A batch that cannot be written in this long marks the client too slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close frame may wait for room in a full socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Ends a connection once, with the first reason given.
#[derive(Clone, Default)]
pub struct Closer {
    token: CancellationToken,
    reason: Arc<OnceLock<(Disconnect, String)>>,
}

impl Closer {
    /// Asks for the connection to close with `code` (first call wins).
    pub fn close(&self, code: Disconnect, reason: impl Into<String>) {
        let _ = self.reason.set((code, reason.into()));
        self.token.cancel();
    }

    /// Closes with 4008 and counts it, unless another reason came first.
    pub fn close_slow(&self, metrics: &Metrics, reason: impl Into<String>) {
        if self.reason.set((Disconnect::TooSlow, reason.into())).is_ok() {
            metrics.ws_slow_closes.inc();
        }
        self.token.cancel();
    }

    /// The close code asked for, if any.
    pub fn code(&self) -> Option<Disconnect> {
        self.reason.get().map(|(c, _)| *c)
    }

    /// Whether a close was asked for: one atomic load (the reason is set
    /// before the token fires), where the token's `is_cancelled` takes a
    /// lock; producers check it per frame.
    pub fn is_closing(&self) -> bool {
        self.reason.get().is_some()
    }

    /// Fires once a close was asked for.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    fn frame(&self) -> CloseFrame {
        let (code, reason) = self.reason.get().cloned().unwrap_or((Disconnect::Normal, String::new()));
        let reason: String = reason.chars().take(120).collect();
        CloseFrame { code: code.code(), reason: Utf8Bytes::from(reason) }
    }
}

/// The queue between a connection's producers and its writer. A `VecDeque`
/// allocates nothing until the first frame (an idle socket costs no queue
/// memory), and the critical sections are a push or a pop, never an await.
#[derive(Default)]
struct Queue {
    frames: Mutex<VecDeque<Utf8Bytes>>,
    /// Bytes queued and not yet flushed.
    queued: AtomicUsize,
    /// The writer, waiting for a frame (one waiter only: lock-free, where a
    /// `Notify` locks its waiter list on every wait and wake).
    ready: AtomicWaker,
    /// A batch was flushed (patient producers wait on it).
    drained: Notify,
}

impl Queue {
    fn pop(&self) -> Option<Utf8Bytes> {
        let mut frames = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        let frame = frames.pop_front();
        if frames.is_empty() && frames.capacity() > 64 {
            // After a burst, give the memory back.
            frames.shrink_to(8);
        }
        frame
    }
}

/// The sending half every producer of a connection shares.
#[derive(Clone)]
pub struct Outbox {
    queue: Arc<Queue>,
    limit: usize,
    closer: Closer,
    metrics: Arc<Metrics>,
}

/// The writer's end of an [`Outbox`].
pub struct Inbox {
    queue: Arc<Queue>,
}

impl Inbox {
    /// The next frame, waiting for one.
    async fn recv(&self) -> Utf8Bytes {
        std::future::poll_fn(|cx| {
            if let Some(frame) = self.queue.pop() {
                return Poll::Ready(frame);
            }
            // Registered before the second look: a frame pushed after the
            // first one wakes this waker, or is found by the second.
            self.queue.ready.register(cx.waker());
            match self.queue.pop() {
                Some(frame) => Poll::Ready(frame),
                None => Poll::Pending,
            }
        })
        .await
    }

    fn try_recv(&self) -> Option<Utf8Bytes> {
        self.queue.pop()
    }
}

/// A new outbox bounded to `limit` queued bytes.
pub fn outbox(limit: usize, closer: Closer, metrics: Arc<Metrics>) -> (Outbox, Inbox) {
    let queue = Arc::new(Queue::default());
    (Outbox { queue: queue.clone(), limit, closer, metrics }, Inbox { queue })
}

impl Outbox {
    /// Queues a frame; `false` (and a 4008 close) when the client is too far
    /// behind, or the connection is closing.
    pub fn push(&self, text: Utf8Bytes) -> bool {
        if self.closer.is_closing() {
            self.metrics.ws_frames_dropped.inc();
            return false;
        }
        let len = text.len();
        let before = self.queue.queued.fetch_add(len, Ordering::AcqRel);
        // One frame always fits an empty queue, however large: a big event must
        // not cut off every subscriber of its chat (and again on every replay).
        if before > 0 && before + len > self.limit {
            self.metrics.ws_frames_dropped.inc();
            self.closer.close_slow(&self.metrics, format!("too slow: over {} bytes queued", self.limit));
            return false;
        }
        self.queue.frames.lock().unwrap_or_else(|e| e.into_inner()).push_back(text);
        self.queue.ready.wake();
        true
    }

    /// Queues a frame once the queue has room for it (at most half full, so
    /// live frames keep their headroom); `false` when the connection closes.
    /// For replays, where only this subscriber waits.
    pub async fn push_when_room(&self, text: Utf8Bytes) -> bool {
        let room = |q: &AtomicUsize| q.load(Ordering::Acquire) + text.len() <= self.limit / 2;
        loop {
            let drained = self.queue.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let queued = &self.queue.queued;
            if room(queued) || queued.load(Ordering::Acquire) == 0 {
                return self.push(text);
            }
            tokio::select! {
                _ = drained => {}
                _ = self.closer.token().cancelled() => return false,
            }
        }
    }

    /// The connection's closer.
    pub fn closer(&self) -> &Closer {
        &self.closer
    }
}

impl super::feed::FrameSink for Outbox {
    fn push(&mut self, frame: Arc<crate::bus::Frame>) -> bool {
        Outbox::push(self, frame.json.clone())
    }

    async fn replay(&mut self, frame: Arc<crate::bus::Frame>) -> bool {
        self.push_when_room(frame.json.clone()).await
    }
}

/// Liveness settings and shared pong clock of a connection.
pub struct Liveness {
    /// Between server pings.
    pub ping_every: Duration,
    /// Without a pong this long, the connection is closed.
    pub pong_timeout: Duration,
    /// Milliseconds since `epoch` of the last pong (the reader updates it).
    pub last_pong_ms: Arc<AtomicU64>,
    /// The clock's origin.
    pub epoch: Instant,
}

/// Writes queued frames until the connection closes, then sends the close
/// frame. Returns when the socket half is done. Not an `async fn`, which
/// would keep a moved-from copy of its arguments for the socket's life.
#[allow(clippy::manual_async_fn, reason = "an async fn keeps its moved-from arguments")]
pub fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut inbox: Inbox,
    closer: Closer,
    live: Liveness,
    metrics: Arc<Metrics>,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let mut tick = tokio::time::interval(live.ping_every);
        tick.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = closer.token().cancelled() => break,
                first = inbox.recv() => {
                    let batch = tokio::time::timeout(WRITE_TIMEOUT, write_batch(&mut sink, &mut inbox, first, &metrics));
                    // A close (say, 4008 from a producer) must not wait for a stalled write.
                    let written = tokio::select! {
                        biased;
                        _ = closer.token().cancelled() => break,
                        written = batch => written,
                    };
                    match written {
                        Ok(true) => {}
                        Ok(false) => { closer.close(Disconnect::Normal, "socket closed"); break }
                        Err(_) => { closer.close_slow(&metrics, "too slow: writes stalled"); break }
                    }
                }
                _ = tick.tick() => {
                    let now = live.epoch.elapsed().as_millis() as u64;
                    let since = now.saturating_sub(live.last_pong_ms.load(Ordering::Relaxed));
                    if since > live.pong_timeout.as_millis() as u64 {
                        closer.close(Disconnect::PongTimeout, "no pong in time");
                        break;
                    }
                    // Like a batch: bounded, and never in the way of a close.
                    let ping = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default())));
                    let sent = tokio::select! {
                        biased;
                        _ = closer.token().cancelled() => break,
                        sent = ping => sent,
                    };
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => { closer.close(Disconnect::Normal, "socket closed"); break }
                        Err(_) => { closer.close_slow(&metrics, "too slow: ping stalled"); break }
                    }
                }
            }
        }
        let finish = async {
            // What was queued before a deliberate close (a `chat.deleted` before
            // 4004) still goes out; a slow or dead client gets only the close.
            if closer.code().is_some_and(|c| c != Disconnect::TooSlow && c != Disconnect::PongTimeout) {
                while let Some(text) = inbox.try_recv() {
                    if sink.feed(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
            }
            if sink.send(Message::Close(Some(closer.frame()))).await.is_err() {
                // The client closed first: tungstenite refuses any frame of ours
                // but holds its echo of the client's Close; flushing sends it, so
                // the client sees a clean close with its own code (1000).
                let _ = sink.flush().await;
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, finish).await;
    }
}

/// Feeds `first` and whatever else is queued (up to [`BATCH`]), flushes once.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, Message>,
    inbox: &mut Inbox,
    first: Utf8Bytes,
    metrics: &Metrics,
) -> bool {
    let mut bytes = first.len();
    let mut frames = 1;
    if sink.feed(Message::Text(first)).await.is_err() {
        return false;
    }
    while frames < BATCH {
        let Some(next) = inbox.try_recv() else { break };
        bytes += next.len();
        frames += 1;
        if sink.feed(Message::Text(next)).await.is_err() {
            return false;
        }
    }
    let ok = sink.flush().await.is_ok();
    inbox.queue.queued.fetch_sub(bytes, Ordering::AcqRel);
    inbox.queue.drained.notify_waiters();
    metrics.ws_frames_sent.inc_by(frames as u64);
    ok
}
