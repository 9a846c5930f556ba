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
    /// Runs this node drives now.
    pub runs_running: IntGauge,
    /// Model calls, by provider and outcome (`ok`, `error`, `cancelled`).
    pub model_calls: IntCounterVec,
    /// Model call latency in seconds, by provider (answered calls and errors).
    pub model_duration: HistogramVec,
    /// Failed model calls, by provider and kind (`http`, `connect`,
    /// `timeout`, `malformed`).
    pub model_errors: IntCounterVec,
    /// Tokens the providers reported (`usage`), by provider and kind
    /// (`prompt`, `completion`).
    pub model_tokens: IntCounterVec,
}

/// Upper bounds of the model latency buckets, seconds: models answer in
/// tenths of a second to minutes.
const MODEL_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0];

/// The node's own figures at one moment, read from the same series as
/// `/metrics` (`GET /node`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct NodeFigures {
    /// Milliseconds since the epoch when read (to turn counters into rates).
    pub at_ms: u64,
    /// Open WebSocket connections.
    pub ws_connections: i64,
    /// Open SSE streams.
    pub sse_streams: i64,
    /// Long-polls waiting.
    pub long_polls: i64,
    /// Runs this node drives now.
    pub runs_running: i64,
    /// Frames sent to WebSocket clients, since start.
    pub frames_sent: u64,
    /// Frames dropped for slow or closing clients, since start.
    pub frames_dropped: u64,
    /// HTTP requests answered, since start.
    pub http_requests: u64,
    /// Of those, answered 5xx.
    pub http_server_errors: u64,
    /// Runs that ended `failed`, since start.
    pub runs_failed: u64,
    /// Failed model calls, since start.
    pub model_errors: u64,
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
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            register(&registry, HistogramVec::new(opts, labels))
        };
        Metrics {
            runs_running: gauge("flowgate_runs_running", "Runs this node drives now."),
            model_calls: by(
                "flowgate_model_calls_total",
                "Model calls, by provider and outcome.",
                &["provider", "outcome"],
            ),
            model_duration: histogram(
                "flowgate_model_call_duration_seconds",
                "Model call latency, to the whole reply or the error.",
                &["provider"],
                MODEL_BUCKETS,
            ),
            model_errors: by(
                "flowgate_model_call_errors_total",
                "Failed model calls, by provider and kind.",
                &["provider", "kind"],
            ),
            model_tokens: by(
                "flowgate_model_tokens_total",
                "Tokens reported by the providers, by kind.",
                &["provider", "kind"],
            ),
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

    /// Counts one model call that took `secs`: `error` is the failure's kind
    /// (`None` when it answered), `cancelled` a call stopped by its run.
    pub fn model_call(&self, provider: &str, secs: f64, outcome: ModelOutcome<'_>) {
        let label = match outcome {
            ModelOutcome::Answered { prompt_tokens, completion_tokens } => {
                for (kind, n) in [("prompt", prompt_tokens), ("completion", completion_tokens)] {
                    if let Some(n) = n {
                        self.model_tokens.with_label_values(&[provider, kind]).inc_by(n);
                    }
                }
                "ok"
            }
            ModelOutcome::Failed(kind) => {
                self.model_errors.with_label_values(&[provider, kind]).inc();
                "error"
            }
            ModelOutcome::Cancelled => "cancelled",
        };
        self.model_calls.with_label_values(&[provider, label]).inc();
        if label != "cancelled" {
            self.model_duration.with_label_values(&[provider]).observe(secs);
        }
    }

    /// The node's figures now (`GET /node`), from the series above.
    pub fn figures(&self) -> NodeFigures {
        let mut http_requests = 0;
        let mut http_server_errors = 0;
        let mut runs_failed = 0;
        let mut model_errors = 0;
        for family in self.registry.gather() {
            for m in family.get_metric() {
                let value = m.get_counter().get_value() as u64;
                let label = |name: &str| m.get_label().iter().find(|l| l.name() == name).map(|l| l.value());
                match family.name() {
                    "flowgate_http_requests_total" => {
                        http_requests += value;
                        if label("status").is_some_and(|s| s.starts_with('5')) {
                            http_server_errors += value;
                        }
                    }
                    "flowgate_runs_total" if label("outcome") == Some("failed") => runs_failed += value,
                    "flowgate_model_call_errors_total" => model_errors += value,
                    _ => {}
                }
            }
        }
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        NodeFigures {
            at_ms,
            ws_connections: self.ws_connections.get(),
            sse_streams: self.sse_streams.get(),
            long_polls: self.long_polls.get(),
            runs_running: self.runs_running.get(),
            frames_sent: self.ws_frames_sent.get(),
            frames_dropped: self.ws_frames_dropped.get(),
            http_requests,
            http_server_errors,
            runs_failed,
            model_errors,
        }
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

/// How a model call ended, for [`Metrics::model_call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelOutcome<'a> {
    /// It answered; the usage the provider reported, if any.
    Answered {
        /// Prompt tokens.
        prompt_tokens: Option<u64>,
        /// Completion tokens.
        completion_tokens: Option<u64>,
    },
    /// It failed: the kind (`http`, `connect`, `timeout`, `malformed`).
    Failed(&'a str),
    /// Its run stopped it.
    Cancelled,
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
