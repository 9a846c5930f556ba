//! The realtime hub: WebSocket sessions (`/ws`, `/chats/{id}/ws`), SSE streams
//! and long-polls that follow chats gap-free (see [`feed`]), with bounded
//! outbound queues, liveness checks and a connection limit per node.
//!
//! Touches the chat service, the journal (store reads, bus subscriptions) and
//! the node's metrics. Every task it starts is tracked and ends on shutdown.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::task::TaskTracker;

pub mod feed;
pub mod longpoll;
pub mod outbox;
pub mod protocol;
pub mod session;
pub mod sse;
pub mod ws;

/// The node's registry of live connections and their tasks.
#[derive(Debug)]
pub struct Hub {
    connections: AtomicUsize,
    max_connections: usize,
    tracker: TaskTracker,
}

/// A connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    hub: Arc<Hub>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::AcqRel);
        self.metrics.ws_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// A hub admitting at most `max_connections` sockets.
    pub fn new(max_connections: usize) -> Arc<Self> {
        Arc::new(Hub { connections: AtomicUsize::new(0), max_connections, tracker: TaskTracker::new() })
    }

    /// Takes a connection slot, or `None` when the node is full.
    pub fn admit(self: &Arc<Self>, metrics: &Arc<crate::metrics::Metrics>) -> Option<Permit> {
        let taken = self.connections.fetch_add(1, Ordering::AcqRel);
        if taken >= self.max_connections {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        metrics.ws_connections.fetch_add(1, Ordering::Relaxed);
        Some(Permit { hub: self.clone(), metrics: metrics.clone() })
    }

    /// Open connections now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Runs a task tied to the hub; [`Hub::wait`] waits for it.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(task);
    }

    /// Waits for every hub task to end (after the shutdown token fired).
    pub async fn wait(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}
