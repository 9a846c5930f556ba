//! The contract's client errors (§6), once, for every transport: the table of
//! codes ([`ErrorCode`]: HTTP status, retryable, the WebSocket close code where
//! one applies), the one error the domain returns ([`ClientError`]), and the
//! WebSocket close codes as a type ([`Disconnect`]).
//!
//! `http` renders a `ClientError` as the `{"error": {...}}` envelope; `realtime`
//! renders it as an `error` frame, or closes with its [`Disconnect`]. Pure data:
//! touches nothing.

use serde_json::{Map, Value};

/// Declares the table: one row per code, and `ALL` to walk it.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $retryable:literal, $close:expr);)*) => {
        /// A stable, machine-readable error code of the contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire spelling (`chat_not_found`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status it answers with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Whether the same request may succeed if retried unchanged.
            pub fn retryable(self) -> bool {
                match self { $(ErrorCode::$variant => $retryable,)* }
            }

            /// How a socket bound to the failing resource closes, where the
            /// error ends it (`None`: an `error` frame, the socket stays).
            pub fn disconnect(self) -> Option<Disconnect> {
                match self { $(ErrorCode::$variant => $close,)* }
            }
        }
    };
}

error_codes! {
    /// 400: the body is not JSON (`line`, `column` say where).
    InvalidJson = ("invalid_json", 400, false, None);
    /// 400: the body could not be read.
    InvalidBody = ("invalid_body", 400, false, None);
    /// 400: not valid HTTP (request line, a header, `Content-Length`).
    BadRequest = ("bad_request", 400, false, None);
    /// 414: the request target is too long.
    UriTooLong = ("uri_too_long", 414, false, None);
    /// 431: too many or too large request headers.
    HeadersTooLarge = ("headers_too_large", 431, false, None);
    /// 422: a field is missing or wrong (`param` names it).
    InvalidRequest = ("invalid_request", 422, false, None);
    /// 422: a flow that cannot run as written (`issues` lists why).
    InvalidFlow = ("invalid_flow", 422, false, None);
    /// 401: no valid credential, or it was revoked or expired.
    Unauthenticated = ("unauthenticated", 401, false, Some(Disconnect::Unauthenticated));
    /// 403: the credential's scope does not reach this.
    Forbidden = ("forbidden", 403, false, None);
    /// 403: a request authenticated by the dashboard's session cookie came
    /// from an origin not allowed, or changes state without the session's
    /// `X-CSRF-Token`.
    CsrfFailed = ("csrf_failed", 403, false, None);
    /// 404: no such chat for this caller.
    ChatNotFound = ("chat_not_found", 404, false, Some(Disconnect::ChatGone));
    /// 404: no such flow for this tenant.
    FlowNotFound = ("flow_not_found", 404, false, None);
    /// 404: no such API key for this tenant.
    KeyNotFound = ("key_not_found", 404, false, None);
    /// 404: no such route.
    NotFound = ("not_found", 404, false, None);
    /// 405: the route does not take that method.
    MethodNotAllowed = ("method_not_allowed", 405, false, None);
    /// 409: a run is active.
    ChatBusy = ("chat_busy", 409, false, None);
    /// 409: the chat waits for human input (`pending_input` names it).
    InputRequired = ("input_required", 409, false, None);
    /// 409: input sent while nothing is asked.
    NotWaitingForInput = ("not_waiting_for_input", 409, false, None);
    /// 409: input for another request than the pending one.
    InputRequestMismatch = ("input_request_mismatch", 409, false, None);
    /// 409: tool results for calls already answered with other content.
    ToolCallAnswered = ("tool_call_answered", 409, false, None);
    /// 422: text to a `tool_calls` request, or `tool_results` to another.
    InputKindMismatch = ("input_kind_mismatch", 422, false, None);
    /// 422: a tool result naming no call of the pending request.
    UnknownToolCall = ("unknown_tool_call", 422, false, None);
    /// 422: a pending call left without a result (`missing` lists them).
    MissingToolResults = ("missing_tool_results", 422, false, None);
    /// 409: cancel with no active run.
    NoActiveRun = ("no_active_run", 409, false, None);
    /// 409: the run was cancelled or replaced meanwhile.
    RunSuperseded = ("run_superseded", 409, false, None);
    /// 409: the record changed concurrently.
    Conflict = ("conflict", 409, false, None);
    /// 409: chats still use the flow.
    FlowInUse = ("flow_in_use", 409, false, None);
    /// 409: a request with the same idempotency key is still running.
    IdempotencyInProgress = ("idempotency_in_progress", 409, true, None);
    /// 422: the idempotency key was used for another request.
    IdempotencyKeyReused = ("idempotency_key_reused", 422, false, None);
    /// 413: the body is over the limit.
    PayloadTooLarge = ("payload_too_large", 413, false, None);
    /// 426: a WebSocket route called without an upgrade.
    UpgradeRequired = ("upgrade_required", 426, false, None);
    /// 429: too many requests or commands.
    RateLimited = ("rate_limited", 429, true, Some(Disconnect::RateLimited));
    /// 429: a connection holds the most subscriptions it may.
    TooManySubscriptions = ("too_many_subscriptions", 429, false, None);
    /// 429: the tenant is at an operator quota (concurrent runs, chats).
    QuotaExceeded = ("quota_exceeded", 429, false, None);
    /// 400 (socket only): an op the protocol does not have.
    UnknownOp = ("unknown_op", 400, false, None);
    /// 500: a bug; logged.
    Internal = ("internal", 500, true, None);
    /// 503: the store or the bus is unavailable; retry.
    Unavailable = ("unavailable", 503, true, None);
    /// 503: the node is at its connection limit.
    TooManyConnections = ("too_many_connections", 503, true, None);
}

/// Why the server closes a WebSocket: the close codes of contract §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disconnect {
    /// 1000: a normal close (also the answer to the client's own Close).
    Normal,
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1002: the client broke the WebSocket protocol.
    ProtocolError,
    /// 1007: a text frame that is not UTF-8.
    InvalidData,
    /// 4000: no pong in time.
    PongTimeout,
    /// 4001: the credential is missing, revoked or expired.
    Unauthenticated,
    /// 4003: the credential does not reach this.
    Forbidden,
    /// 4004: the chat is gone.
    ChatGone,
    /// 4008: too slow: the outbound queue went over its bound.
    TooSlow,
    /// 4009: an inbound frame over the size limit.
    TooLarge,
    /// 4010: continuity cannot be proven; subscribe again from your last seq.
    Resubscribe,
    /// 4029: too many commands.
    RateLimited,
}

impl Disconnect {
    /// Every close code, for docs and tests.
    pub const ALL: &'static [Disconnect] = &[
        Disconnect::Normal,
        Disconnect::GoingAway,
        Disconnect::ProtocolError,
        Disconnect::InvalidData,
        Disconnect::PongTimeout,
        Disconnect::Unauthenticated,
        Disconnect::Forbidden,
        Disconnect::ChatGone,
        Disconnect::TooSlow,
        Disconnect::TooLarge,
        Disconnect::Resubscribe,
        Disconnect::RateLimited,
    ];

    /// The close code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Disconnect::Normal => 1000,
            Disconnect::GoingAway => 1001,
            Disconnect::ProtocolError => 1002,
            Disconnect::InvalidData => 1007,
            Disconnect::PongTimeout => 4000,
            Disconnect::Unauthenticated => 4001,
            Disconnect::Forbidden => 4003,
            Disconnect::ChatGone => 4004,
            Disconnect::TooSlow => 4008,
            Disconnect::TooLarge => 4009,
            Disconnect::Resubscribe => 4010,
            Disconnect::RateLimited => 4029,
        }
    }

    /// Whether a client should reconnect: every code below 4500 but a normal
    /// close says so.
    pub fn reconnect(self) -> bool {
        self != Disconnect::Normal && self.code() < 4500
    }
}

/// One rate limit, as the IETF draft `draft-ietf-httpapi-ratelimit-headers`
/// names it: a policy (`"key"` or `"tenant"`) of `quota` requests per
/// `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RatePolicy {
    /// The policy's name on the wire (`key`, `tenant`).
    pub name: &'static str,
    /// Requests (or socket commands) a quiet caller may send at once.
    pub quota: u64,
    /// Seconds in which a spent quota refills.
    pub window_secs: u64,
}

/// Why a `rate_limited` refusal happened: the policies that apply to the
/// caller, the one that refused, and when it admits again. `http` renders it
/// as the `RateLimit-Policy` and `RateLimit` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitNote {
    /// Every policy that applies to the caller.
    pub policies: Vec<RatePolicy>,
    /// The policy that refused (one of `policies`).
    pub refused: RatePolicy,
    /// Seconds until it admits a request again (at least 1).
    pub reset_secs: u64,
}

/// An error a client gets: a code of the table, a message for a human, extra
/// fields (`param`, `pending_input`, …) and, for 429 and 503, `Retry-After`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ClientError {
    /// The row of the table.
    pub code: ErrorCode,
    /// For a human.
    pub message: String,
    /// Extra fields merged into the error object.
    pub details: Map<String, Value>,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
    /// For `rate_limited`: the policies, for the draft's headers.
    pub rate_limit: Option<Box<RateLimitNote>>,
}

impl ClientError {
    /// A new error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = code.retryable().then_some(1).filter(|_| code != ErrorCode::Internal);
        Self { code, message: message.into(), details: Map::new(), retry_after, rate_limit: None }
    }

    /// 429 `rate_limited` by `note`'s refusing policy: `Retry-After` is its
    /// reset, and the error object names the policy (`limit`) and the wait
    /// (`retry_after`), so a socket's `error` frame says it too.
    pub fn rate_limited(note: RateLimitNote) -> Self {
        let reset = note.reset_secs.max(1);
        let mut e = Self::new(
            ErrorCode::RateLimited,
            format!("over the {} rate limit; retry in {reset} s", note.refused.name),
        )
        .with("limit", note.refused.name)
        .with("retry_after", reset);
        e.retry_after = Some(reset);
        e.rate_limit = Some(Box::new(RateLimitNote { reset_secs: reset, ..note }));
        e
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// 422 `invalid_request` naming the offending field.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).with("param", param)
    }

    /// 404 `chat_not_found` (also what another tenant's chat answers).
    pub fn chat_not_found(chat_id: &str) -> Self {
        Self::new(ErrorCode::ChatNotFound, format!("no chat {chat_id}"))
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 503 `unavailable`, retryable after a second.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// 500 `internal`; the cause is logged, never shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

/// Reads a JSON value into `T`; a field that is missing or of the wrong type
/// is a 422 `invalid_request` naming it in `param`.
pub fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ClientError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let param = if path == "." { missing_field(&message).unwrap_or_default() } else { path };
        ClientError::invalid(&param, message)
    })
}

/// The field name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_spelled_once_in_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert!(seen.insert(s), "{s} twice");
        }
    }

    #[test]
    fn only_throttling_and_server_failures_are_retryable() {
        for code in ErrorCode::ALL {
            let status = code.http_status();
            let expected = status == 503
                || status == 500
                || *code == ErrorCode::RateLimited
                || *code == ErrorCode::IdempotencyInProgress;
            assert_eq!(code.retryable(), expected, "{}", code.as_str());
        }
    }

    #[test]
    fn close_codes_are_the_contracts() {
        let codes: Vec<u16> = Disconnect::ALL.iter().map(|d| d.code()).collect();
        assert_eq!(codes, [1000, 1001, 1002, 1007, 4000, 4001, 4003, 4004, 4008, 4009, 4010, 4029]);
        assert!(Disconnect::ALL.iter().all(|d| d.reconnect() == (*d != Disconnect::Normal)));
    }
}
