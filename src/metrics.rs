//! The node's Prometheus series, served at `/metrics` in the text format
//! (`text/plain; version=0.0.4`). Bottom layer: it touches nothing of the
//! crate, and anything may count into it.
//!
//! Built on the `prometheus` crate (tikv/rust-prometheus): it encodes the
//! 0.0.4 text format the endpoint has always served (`prometheus-client`
//! speaks OpenMetrics, with `# EOF` and its own content type), and it keeps
//! series in a [`Registry`] value rather than a process-global recorder
//! (`metrics-exporter-prometheus`), so every node, and every test app in one
//! process, counts on its own. Counters are atomics behind an `Arc`; hot paths
//! hold handles with their labels already resolved, so a frame costs an
//! increment and never a label lookup.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The node's counters, gauges and histograms (see `docs/metrics.md`).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered, by method, route template and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency in seconds, by method and route template.
    pub http_duration: HistogramVec,
    /// Chats created.
    pub chats_created: IntCounter,
    /// User messages accepted.
    pub messages_posted: IntCounter,
    /// Open WebSocket connections.
    pub ws_connections: IntGauge,
    /// Open SSE streams.
    pub sse_streams: IntGauge,
    /// Long-polls waiting now.
    pub long_polls: IntGauge,
    /// Frames delivered to WebSocket clients.
    pub ws_frames_sent: IntCounter,
    /// Frames not queued for a WebSocket client (too slow, or closing).
    pub ws_frames_dropped: IntCounter,
    /// Clients closed for being too slow (4008).
    pub ws_slow_closes: IntCounter,
    /// Runs ended, by outcome (`completed`, `failed`, `cancelled`) and, when
    /// failed, the error code.
    pub runs: IntCounterVec,
    /// Requests and commands refused `rate_limited`, by refusing policy.
    pub rate_limited: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every series registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| register(&registry, IntGauge::new(name, help));
        let by = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let http_duration = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "flowgate_http_request_duration_seconds",
                    "HTTP latency, to the response head.",
                ),
                &["method", "route"],
            ),
        );
        Metrics {
            http_requests: by(
                "flowgate_http_requests_total",
                "HTTP requests answered.",
                &["method", "route", "status"],
            ),
            http_duration,
            chats_created: counter("flowgate_chats_created_total", "Chats created."),
            messages_posted: counter("flowgate_messages_posted_total", "User messages accepted."),
            ws_connections: gauge("flowgate_ws_connections", "Open WebSocket connections."),
            sse_streams: gauge("flowgate_sse_streams", "Open SSE streams."),
            long_polls: gauge("flowgate_long_polls", "Long-polls waiting."),
            ws_frames_sent: counter("flowgate_ws_frames_sent_total", "Frames sent to WebSocket clients."),
            ws_frames_dropped: counter(
                "flowgate_ws_frames_dropped_total",
                "Frames not queued for a WebSocket client (too slow or closing).",
            ),
            ws_slow_closes: counter("flowgate_ws_slow_closes_total", "Clients closed with 4008."),
            runs: by("flowgate_runs_total", "Runs ended, by outcome and error code.", &["outcome", "code"]),
            rate_limited: by(
                "flowgate_rate_limited_total",
                "Refusals with rate_limited, by policy.",
                &["policy"],
            ),
            registry,
        }
    }

    /// Counts a run's end: `outcome` is `completed`, `failed` or `cancelled`;
    /// `code` the error code when failed, else empty.
    pub fn run_ended(&self, outcome: &str, code: &str) {
        self.runs.with_label_values(&[outcome, code]).inc();
    }

    /// The Prometheus text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics not encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Holds a gauge one higher while alive (an open stream, a waiting poll).
#[derive(Debug)]
pub struct Open(IntGauge);

impl Open {
    /// Adds one to `gauge` until the guard is dropped.
    pub fn new(gauge: &IntGauge) -> Self {
        gauge.inc();
        Open(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Registers a freshly built collector; names and labels are constants, so a
/// failure is a bug here.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    built: prometheus::Result<C>,
) -> C {
    let collector = built.expect("metric options are valid");
    registry.register(Box::new(collector.clone())).expect("metric names are unique");
    collector
}
