//! The domain services every transport calls: chats, flows and keys, and the
//! access rules they apply. Each operation takes the [`Caller`](crate::auth::Caller)
//! and decides, inside the operation, whether its credential still holds and
//! whether it reaches the record; no handler, socket, SSE stream or long-poll
//! repeats a check. Errors are the contract's [`ClientError`](crate::model::ClientError).
//!
//! Touches the ledger, the engine, the store and the authenticator; knows
//! nothing of HTTP or sockets.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

mod access;
mod chats;
mod credentials;
mod error;
mod flows;
mod idempotency;
pub mod images;
mod keys;
mod longpoll;
pub mod ratelimit;

pub use access::{Access, BrowserRules};
pub use chats::{ChatService, NewChat, required_text};
pub use credentials::CredentialWatch;
pub use flows::{FlowService, Registered};
pub use idempotency::{Answer, HOLD, IdempotencyKey, Idempotent, Outcome};
pub use keys::KeyService;
pub use ratelimit::{RateLimiter, SharedRates};

use crate::auth::Authenticator;
use crate::engine::Engine;
use crate::ledger::Journal;

/// Every service, built once over the same backends.
#[derive(Clone)]
pub struct Services {
    /// Who is calling, and whether their credential holds.
    pub access: Access,
    /// Chat operations.
    pub chats: ChatService,
    /// Flow operations.
    pub flows: FlowService,
    /// API key operations.
    pub keys: KeyService,
    /// Idempotent retries of creating requests.
    pub idempotent: Idempotent,
}

impl Services {
    /// Keeps idempotent answers `keep` (instead of [`idempotency::KEEP`]).
    pub fn keeping_idempotent_answers_for(mut self, keep: std::time::Duration) -> Self {
        self.idempotent = Idempotent::new(self.idempotent.store(), keep);
        self
    }

    /// Builds the services; texts longer than `max_message_bytes` are refused,
    /// callers are held to `rate`, browsers to `browser`, and the node's credential checker ends with
    /// `shutdown`.
    pub fn new(
        journal: Journal,
        engine: Arc<Engine>,
        auth: Arc<Authenticator>,
        max_message_bytes: usize,
        rate: RateLimiter,
        browser: BrowserRules,
        shutdown: CancellationToken,
    ) -> Self {
        let access = Access::new(auth, rate, browser, shutdown);
        let store = journal.store.clone();
        Services {
            idempotent: Idempotent::new(store.clone(), idempotency::KEEP),
            chats: ChatService::new(journal, engine.clone(), access.clone(), max_message_bytes),
            flows: FlowService::new(store.clone(), engine, access.clone()),
            keys: KeyService::new(store, access.clone()),
            access,
        }
    }
}
