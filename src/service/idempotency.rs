//! Idempotent retries (contract §6): a creating request that carries an
//! idempotency key (`Idempotency-Key`, or a socket command's `client_id`)
//! runs once per tenant and key. A retry with the same key and the same
//! request gets the first answer and creates nothing; the same key with
//! another request is `422 idempotency_key_reused`; a retry while the first
//! still runs is `409 idempotency_in_progress`.
//!
//! Keys are kept `keep` (24 h by default) after their answer. The store holds
//! a hash of each key, and a fingerprint (a hash) of its request. A failed
//! request lets its key go, so a retry runs again. A node that dies between
//! the operation and recording its answer leaves the key reserved for
//! [`HOLD`]; a retry after that runs the operation again.
//!
//! Touches the store's idempotency entries.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::model::{ClientError, ErrorCode};
use crate::store::{Idempotency, Store, StoredAnswer};

/// How long an answer is kept for retries unless configured otherwise.
pub const KEEP: Duration = Duration::from_secs(86_400);

/// How long a key is reserved while its first request runs.
pub const HOLD: Duration = Duration::from_secs(30);

/// A client's idempotency key, checked at the edge: 1 to 255 visible ASCII
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key, or a 422 naming `param` (`Idempotency-Key`, `client_id`).
    pub fn parse(raw: &str, param: &str) -> Result<Self, ClientError> {
        if (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ClientError::invalid(param, "1 to 255 visible ASCII characters"))
        }
    }
}

/// An answer as sent, and as kept for retries (an API key's secret is shown
/// once, so its kept answer leaves it out).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What this request answers.
    pub sent: StoredAnswer,
    /// What a retry answers.
    pub kept: StoredAnswer,
}

impl Outcome {
    /// An answer kept as sent.
    pub fn same(status: u16, body: serde_json::Value) -> Self {
        let answer = StoredAnswer { status, body };
        Self { sent: answer.clone(), kept: answer }
    }
}

/// An answer, and whether it replays an earlier one.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status and body.
    pub answer: StoredAnswer,
    /// Whether a retry got the first request's answer.
    pub replayed: bool,
}

/// The idempotency rules over a store.
#[derive(Clone)]
pub struct Idempotent {
    store: Arc<dyn Store>,
    keep: Duration,
}

fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Idempotent {
    /// Keys kept `keep` after their answer.
    pub fn new(store: Arc<dyn Store>, keep: Duration) -> Self {
        Self { store, keep }
    }

    /// The store it keeps keys in.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Runs `op` at most once for the caller's tenant and `key` (always,
    /// without a key). `what` names the operation and `request` is what it
    /// was asked: together they are the fingerprint a retry must match.
    pub async fn once<F, Fut>(
        &self,
        caller: &Caller,
        key: Option<&IdempotencyKey>,
        (what, request): (&str, &impl Serialize),
        op: F,
    ) -> Result<Answer, ClientError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Outcome, ClientError>>,
    {
        let Some(key) = key else {
            return op().await.map(|outcome| Answer { answer: outcome.sent, replayed: false });
        };
        let request = serde_json::to_vec(request).map_err(ClientError::internal)?;
        let fingerprint = hex_sha256(&[what.as_bytes(), &request]);
        let hashed = hex_sha256(&[key.0.as_bytes()]);
        let tenant = &caller.tenant;
        match self.store.idempotency_begin(tenant, &hashed, &fingerprint, HOLD).await? {
            Idempotency::Fresh => {}
            Idempotency::InProgress { fingerprint: first } if first == fingerprint => {
                return Err(ClientError::new(
                    ErrorCode::IdempotencyInProgress,
                    "a request with this idempotency key is still running; retry shortly",
                ));
            }
            Idempotency::Answered { fingerprint: first, answer } if first == fingerprint => {
                return Ok(Answer { answer, replayed: true });
            }
            Idempotency::InProgress { .. } | Idempotency::Answered { .. } => {
                return Err(ClientError::new(
                    ErrorCode::IdempotencyKeyReused,
                    "this idempotency key was used for another request",
                ));
            }
        }
        match op().await {
            Ok(outcome) => {
                let kept =
                    self.store.idempotency_finish(tenant, &hashed, &fingerprint, &outcome.kept, self.keep);
                if let Err(e) = kept.await {
                    // The operation is stored; only a retry's replay is lost.
                    tracing::warn!(error = %e, "could not record an idempotent answer");
                }
                Ok(Answer { answer: outcome.sent, replayed: false })
            }
            Err(e) => {
                if let Err(release) = self.store.idempotency_release(tenant, &hashed).await {
                    tracing::warn!(error = %release, "could not release an idempotency key");
                }
                Err(e)
            }
        }
    }
}
