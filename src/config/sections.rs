//! The settings' sections, each with its defaults: store and SQLite,
//! tokens, cluster, CORS, limits, runs, outbound calls, rates, metrics.
//! Pure data: the layering and validation live in the parent module.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which store (and with it, which bus) a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded default: one SQLite file in `data_dir`, in-process bus.
    Sqlite,
    /// Shared Redis store and Redis pub/sub, for several nodes.
    Redis,
}

/// SQLite's `synchronous` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    /// fsync on every commit batch: a 2xx survives power loss (default).
    Full,
    /// fsync at checkpoints: survives a process crash, not a power loss.
    Normal,
}

/// Settings of the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Durability of commits.
    pub synchronous: SqliteSync,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self { synchronous: SqliteSync::Full }
    }
}

/// Bearer-token settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// HS256 shared secret. Unset: a random per-process secret signs the
    /// chat tokens this node mints (they then verify only on this node).
    pub secret: Option<String>,
    /// Path to an RS256 public key (PEM) to verify tokens from an issuer.
    pub rs256_public_key: Option<PathBuf>,
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Lifetime of minted chat tokens, seconds (default 600).
    pub chat_token_ttl_secs: Option<u64>,
}

/// How the nodes reach Redis (with `store = "redis"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis_url` names nodes of a Redis Cluster (7 or later), comma
    /// separated: the store, the leases and the rate limits use the cluster
    /// client, and the bus sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`).
    pub cluster: bool,
}

/// Several nodes on one Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// A run lease lasts this long unless renewed (renewed every third of it);
    /// a dead node's runs move after at most this long.
    pub lease_ttl_secs: u64,
    /// How often a node looks for `running` chats nobody drives.
    pub sweep_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self { lease_ttl_secs: 10, sweep_secs: 5 }
    }
}

/// Cross-origin access for browsers (CORS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API;
    /// empty (the default) grants no cross-origin access.
    pub allowed_origins: Vec<String>,
}

/// Dashboard sign-in sessions (`[session]`): `POST /session` exchanges an
/// API key for a signed, short-lived cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// How long a session lasts, seconds (60 to 86400; default 3600).
    pub ttl_secs: u64,
    /// Always mark the cookie `Secure`. Unset, it is `Secure` only when the
    /// request says it came over TLS (`X-Forwarded-Proto: https`).
    pub secure_cookie: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { ttl_secs: 3600, secure_cookie: false }
    }
}

/// Limits on requests and sockets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest REST request body, bytes.
    pub max_body_bytes: usize,
    /// Longest user message or human input, bytes (422 above it). The
    /// outbound queue holds at least four, so one never trips the 4008 bound.
    pub max_message_bytes: usize,
    /// Largest inbound WebSocket frame, bytes (close 4009 above it).
    pub ws_frame_bytes: usize,
    /// Subscriptions per WebSocket connection.
    pub ws_max_subscriptions: usize,
    /// Outbound bytes queued per connection before it is closed with 4008.
    pub ws_outbound_queue_bytes: usize,
    /// Seconds between server pings.
    pub ws_ping_secs: u64,
    /// Seconds without a pong before the socket is closed.
    pub ws_pong_timeout_secs: u64,
    /// Concurrent WebSocket connections per node.
    pub ws_max_connections: usize,
    /// Longest `wait` a long-poll may hold, seconds.
    pub long_poll_max_secs: u64,
    /// How long an idempotency key's answer is kept for retries, seconds.
    pub idempotency_keep_secs: u64,
    /// Seconds a client has to send a request's head, from its first byte.
    pub http_header_read_secs: u64,
    /// Seconds a connection may wait for a request's first byte, after it
    /// opens or after its last response (idle keep-alive).
    pub http_idle_secs: u64,
    /// Seconds a request body may go without sending more bytes (then 400
    /// `invalid_body` and the connection closes).
    pub http_body_timeout_secs: u64,
    /// Open HTTP connections per node, upgraded sockets included; over it a
    /// new connection is closed at once. 0: the file-descriptor limit less 256.
    pub http_max_connections: usize,
    /// Open HTTP connections per client address (the socket's peer); 0: no cap.
    pub http_max_connections_per_client: usize,
    /// Reverse proxies: their connections count under the client their first
    /// request's `X-Forwarded-For` names (not counted when it names none).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_message_bytes: 256 << 10,
            ws_frame_bytes: 64 << 10,
            ws_max_subscriptions: 128,
            ws_outbound_queue_bytes: 1 << 20,
            ws_ping_secs: 20,
            ws_pong_timeout_secs: 40,
            ws_max_connections: 50_000,
            long_poll_max_secs: 60,
            idempotency_keep_secs: 86_400,
            http_header_read_secs: 15,
            http_idle_secs: 30,
            http_body_timeout_secs: 30,
            http_max_connections: 0,
            http_max_connections_per_client: 0,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The operator's caps on runs, and per-tenant quotas (`[runs]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunLimits {
    /// Most messages in one group run; a flow asking more is lowered to it.
    pub max_round: u32,
    /// Most consecutive auto replies of one agent in a run; a flow asking
    /// more (or an assistant asking none, i.e. unlimited) is lowered to it.
    pub max_consecutive_auto_reply: u32,
    /// Runs one tenant may have at once (429 `quota_exceeded`); 0: no quota.
    pub max_concurrent_runs_per_tenant: u64,
    /// Chats one tenant may keep (429 `quota_exceeded`); 0: no quota.
    pub max_chats_per_tenant: u64,
    /// Bytes of message text one tenant may keep stored (429
    /// `quota_exceeded` on the next message or answer); 0: no quota.
    pub max_stored_bytes_per_tenant: u64,
    /// Longest a run may run in one stretch (from its start or a human's
    /// answer until it ends or asks the human), seconds; then it fails with
    /// `max_run_secs`.
    pub max_run_secs: u64,
    /// Longest agent reply, bytes: a longer one is cut there (and marked
    /// `metadata.truncated`), and the model call stops.
    pub max_reply_bytes: usize,
    /// Most durable events one run may write; then it fails with
    /// `max_events_per_run`.
    pub max_events_per_run: u64,
    /// Most tool calls one run may make; a reply going over fails the run
    /// with `max_tool_calls_per_run`.
    pub max_tool_calls_per_run: u32,
    /// Most tool calls one reply may make; the calls past it are refused
    /// (the model gets an error for each).
    pub max_tool_calls_per_message: u32,
    /// Longest arguments of one tool call, bytes; longer ones are refused.
    pub max_tool_argument_bytes: usize,
    /// Longest content of one tool result a client sends, bytes (422
    /// `invalid_request` beyond).
    pub max_tool_result_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            max_round: 100,
            max_consecutive_auto_reply: 100,
            max_concurrent_runs_per_tenant: 64,
            max_chats_per_tenant: 100_000,
            max_stored_bytes_per_tenant: 1 << 30,
            max_run_secs: 1800,
            max_reply_bytes: 128 << 10,
            max_events_per_run: 2000,
            max_tool_calls_per_run: 32,
            max_tool_calls_per_message: 8,
            max_tool_argument_bytes: 16 << 10,
            max_tool_result_bytes: 64 << 10,
        }
    }
}

/// Where a flow's own models may call (`[outbound]`); the registry's models
/// are the operator's and unaffected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Hosts a flow's `openai` model may name (`api.example.com`, or
    /// `*.example.com`); empty (the default): a flow cannot name its own
    /// `openai` model URL at all.
    pub flow_model_hosts: Vec<String>,
    /// Hosts on that list that may resolve to loopback, link-local, private
    /// or unspecified addresses (otherwise refused).
    pub allow_private_hosts: Vec<String>,
}

/// Request and command rates (`[rate_limits]`): each REST request and each
/// WebSocket command of a caller counts against its API key's limit and its
/// tenant's. 0 turns a limit off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second one API key may make (its callers together).
    pub per_key_per_sec: u32,
    /// Requests per second one tenant may make (all its credentials).
    pub per_tenant_per_sec: u32,
    /// Seconds of quota a quiet caller may spend at once: a limit admits a
    /// burst of `per_sec × burst_secs`, then `per_sec` a second.
    pub burst_secs: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self { per_key_per_sec: 1_000, per_tenant_per_sec: 5_000, burst_secs: 1 }
    }
}

/// Who may read `/metrics` (`[metrics]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only `Authorization: Bearer <token>`
    /// (401 `unauthenticated` otherwise); unset, it is open.
    pub token: Option<String>,
}
