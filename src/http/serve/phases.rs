//! One connection's phases, for its two timeouts: *idle* from the moment it
//! opens or its last response ends until the first byte of the next request
//! (`limits.http_idle_secs`), then *head* from that byte until the request's
//! head is parsed (`limits.http_header_read_secs`); no bound while a request
//! or its response body is in flight (long-polls, SSE streams). hyper has one
//! timer for both (its header-read timer starts when it waits for the next
//! head, idle or not), so the server keeps the phases itself: the stream's
//! reads, the service's calls and the response bodies' ends move them.
//!
//! Touches only its own state and the clock.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

/// Where a connection is.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's first byte, since then.
    Idle(Instant),
    /// Reading a request head, since its first byte.
    Head(Instant),
    /// This many requests or response bodies in flight.
    Busy(usize),
}

/// A connection's phase and its bounds.
pub(super) struct Phases {
    phase: Mutex<Phase>,
    changed: Notify,
    idle: Duration,
    head: Duration,
}

impl Phases {
    /// A connection opened now: idle.
    pub(super) fn new(idle: Duration, head: Duration) -> Arc<Self> {
        let phase = Mutex::new(Phase::Idle(Instant::now()));
        Arc::new(Self { phase, changed: Notify::new(), idle, head })
    }

    fn set(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        *phase = change(*phase);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts reading a head.
    pub(super) fn read_some(&self) {
        let idle = matches!(*self.phase.lock().unwrap_or_else(|p| p.into_inner()), Phase::Idle(_));
        if idle {
            self.set(|_| Phase::Head(Instant::now()));
        }
    }

    /// A request's head was parsed; in flight until the returned guard (its
    /// response body) is dropped.
    pub(super) fn request_started(this: &Arc<Self>) -> InFlight {
        this.set(|p| match p {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        });
        InFlight(this.clone())
    }

    /// When the current phase times out (`None`: busy), and which timeout.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match *self.phase.lock().unwrap_or_else(|p| p.into_inner()) {
            Phase::Idle(since) => Some((since + self.idle, "limits.http_idle_secs")),
            Phase::Head(since) => Some((since + self.head, "limits.http_header_read_secs")),
            Phase::Busy(_) => None,
        }
    }

    /// Completes when the connection has been idle, or reading one head, for
    /// too long; names the setting.
    pub(super) async fn expired(&self) -> &'static str {
        loop {
            let changed = self.changed.notified();
            match self.deadline() {
                Some((at, setting)) if Instant::now() >= at => return setting,
                Some((at, _)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// One request in flight; its end makes an otherwise quiet connection idle.
pub(super) struct InFlight(Arc<Phases>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(|p| match p {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A response body holding its request in flight until it ends or is dropped.
pub(super) struct Tracked {
    pub(super) body: Body,
    pub(super) _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
