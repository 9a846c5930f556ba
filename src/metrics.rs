//! Process counters rendered as Prometheus text at `/metrics`. A handful of
//! atomics; nothing here blocks or allocates on the hot path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The node's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered.
    pub http_requests: AtomicU64,
    /// Chats created.
    pub chats_created: AtomicU64,
    /// User messages accepted.
    pub messages_posted: AtomicU64,
    /// Open WebSocket connections.
    pub ws_connections: AtomicI64,
    /// Frames delivered to WebSocket clients.
    pub ws_frames_sent: AtomicU64,
    /// Clients closed for being too slow (4008).
    pub ws_slow_closes: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |name: &str, kind: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        line("flowgate_http_requests_total", "counter", "HTTP requests answered.", get(&self.http_requests));
        line("flowgate_chats_created_total", "counter", "Chats created.", get(&self.chats_created));
        line(
            "flowgate_messages_posted_total",
            "counter",
            "User messages accepted.",
            get(&self.messages_posted),
        );
        line(
            "flowgate_ws_connections",
            "gauge",
            "Open WebSocket connections.",
            self.ws_connections.load(Ordering::Relaxed),
        );
        line(
            "flowgate_ws_frames_sent_total",
            "counter",
            "Frames sent to WebSocket clients.",
            get(&self.ws_frames_sent),
        );
        line(
            "flowgate_ws_slow_closes_total",
            "counter",
            "Clients closed with 4008.",
            get(&self.ws_slow_closes),
        );
        out
    }
}
