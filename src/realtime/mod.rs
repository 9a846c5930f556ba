//! The realtime transports: WebSocket sessions (`/ws`, `/chats/{id}/ws`) and
//! SSE streams that follow chats gap-free (see [`feed`]), with bounded
//! outbound queues, liveness checks and a connection limit per node.
//!
//! Touches the domain services (every command and subscribe goes through
//! them, access included), the journal they expose (store reads, bus
//! subscriptions), the HTTP plumbing and the node's metrics. Every task it
//! starts is tracked by [`Connections`] and ends on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::service::Services;

pub mod feed;
pub mod outbox;
pub mod protocol;
pub mod session;
pub mod sse;
pub mod ws;

/// What the realtime handlers use.
#[derive(Clone)]
pub struct RealtimeState {
    /// The domain.
    pub services: Services,
    /// The node's live connections.
    pub connections: Arc<Connections>,
    /// Frame, queue and ping limits.
    pub limits: Arc<Limits>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Fires on shutdown; every stream ends with it.
    pub shutdown: CancellationToken,
}

/// The WebSocket routes (`GET /chats/{chat_id}/events` as SSE is picked by
/// the wiring, by `Accept`).
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    RealtimeState: FromRef<S>,
{
    Router::new().route("/chats/{chat_id}/ws", get(ws::chat_bound)).route("/ws", get(ws::multiplexed))
}

/// The node's registry of live connections (WebSocket and SSE) and their
/// tasks.
#[derive(Debug)]
pub struct Connections {
    connections: AtomicUsize,
    max_connections: usize,
    tracker: TaskTracker,
}

/// A connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    registry: Arc<Connections>,
    metrics: Arc<Metrics>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.registry.connections.fetch_sub(1, Ordering::AcqRel);
        self.metrics.ws_connections.dec();
    }
}

impl Connections {
    /// A registry admitting at most `max_connections` sockets.
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Connections {
            connections: AtomicUsize::new(0),
            max_connections,
            tracker: TaskTracker::new(),
        })
    }

    /// Takes a connection slot, or `None` when the node is full.
    pub fn admit(self: &Arc<Self>, metrics: &Arc<Metrics>) -> Option<Permit> {
        let taken = self.connections.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics.ws_connections.inc();
        Some(Permit { registry: self.clone(), metrics: metrics.clone() })
    }

    /// Open connections now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Runs a task tied to the node's connections; [`Connections::wait`] waits
    /// for it. The handle stops it early (it holds no allocation of its own).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) -> tokio::task::AbortHandle {
        self.tracker.spawn(task).abort_handle()
    }

    /// Waits for every connection task to end (after the shutdown token fired).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
