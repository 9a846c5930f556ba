//! The rate limits shared by every node on one Redis: one Lua script runs
//! GCRA over the caller's limits (its API key's and its tenant's) on Redis's
//! own clock, admitting only when all admit and then spending all, so no two
//! nodes can both spend the last of a quota.
//!
//! Keys: `<prefix>{rl:<tenant>}:key:<key_id>` and `<prefix>{rl:<tenant>}:tenant`,
//! one hash tag per tenant (the script's keys share a Cluster slot), each
//! holding its theoretical arrival time in microseconds and expiring when
//! its limit is full again. Touches only those keys.

use std::time::Duration;

use redis::{ErrorKind, RedisError, RedisResult, Script};

use super::Subject;
use crate::model::TenantId;
use crate::store::redis::RedisConn;

/// The longest a check waits for Redis before the local limits stand in.
const TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA over `KEYS`; `ARGV[2i-1]` is key i's emission interval (µs) and
/// `ARGV[2i]` its burst. Returns `{0, 0}` when all admit (and spends each),
/// else `{i, wait_µs}` for the first that refuses (and spends nothing).
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = interval * tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local next_tat = tat + interval
  if next_tat - now > tolerance then
    return {i, string.format('%.0f', next_tat - tolerance - now)}
  end
  tats[i] = next_tat
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return {0, '0'}
";

/// The shared limits' connection and key prefix.
#[derive(Clone)]
pub struct SharedRates {
    conn: RedisConn,
    prefix: String,
    script: Script,
}

impl SharedRates {
    /// Limits kept in Redis through `conn`, under `prefix` (e.g. `fg:`).
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self { conn, prefix: prefix.to_owned(), script: Script::new(GCRA) }
    }

    /// Checks and spends every subject's limit at once: `None` when all
    /// admit, else the refusing subject's index and its wait.
    pub(crate) async fn check(
        &self,
        tenant: &TenantId,
        subjects: &[Subject<'_>],
    ) -> RedisResult<Option<(usize, Duration)>> {
        let mut invocation = self.script.prepare_invoke();
        for s in subjects {
            let kind = if s.limit.policy.name == "key" { format!("key:{}", s.id) } else { "tenant".into() };
            invocation.key(format!("{}{{rl:{tenant}}}:{kind}", self.prefix));
            let interval_us = (1_000_000 / u64::from(s.limit.per_sec)).max(1);
            invocation.arg(interval_us).arg(s.limit.policy.quota);
        }
        let mut conn = self.conn.clone();
        let (index, wait_us): (usize, String) =
            tokio::time::timeout(TIMEOUT, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| RedisError::from((ErrorKind::Io, "rate limit check timed out")))??;
        if index == 0 {
            return Ok(None);
        }
        let wait_us: u64 = wait_us.parse().unwrap_or(1_000_000);
        Ok(Some((index - 1, Duration::from_micros(wait_us))))
    }
}
