//! One owner per run: before a node drives a chat it takes the chat's run
//! lease, renews it while it drives, and gives it back when the run pauses or
//! ends. A node that dies stops renewing; once the lease expires another node's
//! sweeper adopts the chat and resumes it from its stored history.
//!
//! Writes are fenced: each commit carries the lease ([`Fence`]) and the Redis
//! store refuses it unless the lease is still this holder's; each commit is
//! also a compare-and-set on the chat's `last_seq`; and a drive stops as soon
//! as a renewal finds the lease gone. On one node
//! ([`LocalLeases`]) the engine's own registry is the only owner there is.
//!
//! Touches Redis (`SET NX PX`, and check-and-set scripts) in [`RedisLeases`];
//! nothing else.

use std::time::Duration;

use crate::store::redis::RedisConn;
use async_trait::async_trait;

use crate::model::ChatId;
use crate::store::Fence;

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The chat it covers.
    pub chat_id: ChatId,
    /// This holder's token (node id and a random part).
    pub token: String,
    /// What every write of the run must carry, where the store can check it
    /// (`None` on one node).
    pub fence: Option<Fence>,
}

/// Why a lease operation could not be answered.
#[derive(Debug, thiserror::Error)]
#[error("lease store unavailable: {0}")]
pub struct LeaseError(#[from] redis::RedisError);

/// Run leases.
#[async_trait]
pub trait Leases: Send + Sync + 'static {
    /// Takes the chat's lease for this node; `None` while another holds it.
    async fn acquire(&self, chat_id: &ChatId) -> Result<Option<Lease>, LeaseError>;
    /// Extends a held lease; `false` when it was lost (expired, taken).
    async fn renew(&self, lease: &Lease) -> Result<bool, LeaseError>;
    /// Gives a held lease back (no-op if it was lost).
    async fn release(&self, lease: &Lease);
    /// How often a holder renews.
    fn renew_every(&self) -> Duration;
}

/// One node: every acquire succeeds (the engine's registry already keeps one
/// task per chat).
#[derive(Debug, Default)]
pub struct LocalLeases;

#[async_trait]
impl Leases for LocalLeases {
    async fn acquire(&self, chat_id: &ChatId) -> Result<Option<Lease>, LeaseError> {
        Ok(Some(Lease { chat_id: chat_id.clone(), token: "local".into(), fence: None }))
    }

    async fn renew(&self, _lease: &Lease) -> Result<bool, LeaseError> {
        Ok(true)
    }

    async fn release(&self, _lease: &Lease) {}

    fn renew_every(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

/// Leases in Redis: `{prefix}{chat_id}:lease` (the chat's hash tag, so it
/// lives in the chat's Cluster slot) holding the owner's token, with a TTL.
pub struct RedisLeases {
    conn: RedisConn,
    prefix: String,
    node_id: String,
    ttl: Duration,
}

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

impl RedisLeases {
    /// Leases on `conn` for `node_id`, each lasting `ttl` unless renewed.
    pub fn new(conn: RedisConn, prefix: &str, node_id: &str, ttl: Duration) -> Self {
        Self { conn, prefix: prefix.to_owned(), node_id: node_id.to_owned(), ttl }
    }

    fn key(&self, chat_id: &ChatId) -> String {
        format!("{}{{{chat_id}}}:lease", self.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }
}

#[async_trait]
impl Leases for RedisLeases {
    async fn acquire(&self, chat_id: &ChatId) -> Result<Option<Lease>, LeaseError> {
        let token = format!("{}:{}", self.node_id, ulid::Ulid::new());
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.key(chat_id))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut conn)
            .await?;
        let fence = Fence { key: self.key(chat_id), token: token.clone() };
        Ok(set.map(|_| Lease { chat_id: chat_id.clone(), token, fence: Some(fence) }))
    }

    async fn renew(&self, lease: &Lease) -> Result<bool, LeaseError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::Script::new(RENEW)
            .key(self.key(&lease.chat_id))
            .arg(&lease.token)
            .arg(self.ttl_ms())
            .invoke_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &Lease) {
        let mut conn = self.conn.clone();
        let released: Result<i64, _> = redis::Script::new(RELEASE)
            .key(self.key(&lease.chat_id))
            .arg(&lease.token)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = released {
            tracing::warn!(chat_id = %lease.chat_id, error = %e, "could not release the run lease; it expires by itself");
        }
    }

    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}
