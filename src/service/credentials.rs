//! Credentials end their streams. Every long-lived stream (a WebSocket, an
//! SSE stream, a long-poll) holds a [`CredentialWatch`] on the credential that
//! opened it, which fires when that credential ends: its token expires, or its
//! API key (or the key that minted its chat token) is revoked on any node.
//!
//! Revocation is found by one checker task per node that asks the store every
//! half second about each distinct key some stream holds (not each stream),
//! so it works the same on one node and across nodes sharing Redis, and
//! survives a bus outage.
//!
//! Touches the authenticator (the one liveness check) and nothing else.

use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthError, Authenticator, Caller};
use crate::model::{KeyId, TenantId};

/// How often held keys are checked against the store.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What a key-backed credential is known by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Held {
    /// An API key, by the hash of its secret.
    Key(String),
    /// The key that minted a chat token.
    Minted(TenantId, KeyId),
}

struct Entry {
    ended: CancellationToken,
    holders: usize,
    /// A caller with this credential, to ask the liveness check about it.
    caller: Caller,
}

type Entries = DashMap<Held, Entry>;

/// The node's registry of credentials held by streams.
pub(crate) struct Credentials {
    entries: Arc<Entries>,
}

impl Credentials {
    /// Starts the node's checker, which ends with `shutdown`.
    pub(crate) fn start(auth: Arc<Authenticator>, shutdown: CancellationToken) -> Self {
        let entries = Arc::new(Entries::new());
        tokio::spawn(check(auth, Arc::downgrade(&entries), shutdown));
        Self { entries }
    }

    /// A watch on the caller's credential.
    pub(crate) fn watch(&self, caller: &Caller) -> CredentialWatch {
        let deadline = caller.expires_at.map(|exp| {
            let left = exp.saturating_sub(crate::auth::jwt::now_secs());
            tokio::time::Instant::now() + Duration::from_secs(left)
        });
        let held = match (&caller.key_hash, &caller.key_id) {
            (Some(hash), _) => Some(Held::Key(hash.clone())),
            (None, Some(key_id)) => Some(Held::Minted(caller.tenant.clone(), key_id.clone())),
            (None, None) => None,
        };
        let Some(held) = held else {
            return CredentialWatch { ended: CancellationToken::new(), deadline, hold: None };
        };
        let mut entry = self.entries.entry(held.clone()).or_insert_with(|| Entry {
            ended: CancellationToken::new(),
            holders: 0,
            caller: caller.clone(),
        });
        entry.holders += 1;
        let ended = entry.ended.clone();
        drop(entry);
        CredentialWatch { ended, deadline, hold: Some(Hold { held, entries: Arc::downgrade(&self.entries) }) }
    }
}

/// A stream's hold on its credential; dropping it lets the registry forget
/// the credential once nobody holds it.
pub struct CredentialWatch {
    ended: CancellationToken,
    deadline: Option<tokio::time::Instant>,
    hold: Option<Hold>,
}

impl CredentialWatch {
    /// Completes when the credential ends: expired, or revoked on any node.
    pub async fn ended(&self) {
        match self.deadline {
            Some(at) => tokio::select! {
                _ = self.ended.cancelled() => {}
                _ = tokio::time::sleep_until(at) => {}
            },
            None => self.ended.cancelled().await,
        }
    }

    /// Whether it holds a key-backed credential (for tests and metrics).
    pub fn holds_a_key(&self) -> bool {
        self.hold.is_some()
    }
}

struct Hold {
    held: Held,
    entries: Weak<Entries>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(entries) = self.entries.upgrade() {
            if let Some(mut entry) = entries.get_mut(&self.held) {
                entry.holders = entry.holders.saturating_sub(1);
            }
            entries.remove_if(&self.held, |_, e| e.holders == 0);
        }
    }
}

/// Every half second, asks about each held key once; a revoked one ends
/// every stream that holds it.
async fn check(auth: Arc<Authenticator>, entries: Weak<Entries>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(live) = entries.upgrade() else { return };
        // Copy out first: no map guard is held across the store calls.
        let held: Vec<(Held, Caller)> = live.iter().map(|e| (e.key().clone(), e.caller.clone())).collect();
        for (key, caller) in held {
            if let Err(AuthError::Revoked) = auth.still_valid(&Caller { expires_at: None, ..caller }).await
                && let Some((_, entry)) = live.remove(&key)
            {
                entry.ended.cancel();
            }
        }
    }
}
