//! Flows and API keys on Redis.
//!
//! A tenant's flows are one hash of definitions beside one sorted set ordered
//! by creation, both under the tenant's hash tag and changed together in
//! MULTI/EXEC. A key's record, its secret-hash lookup and its tenant's list are
//! three slots: they are written record first and lookup last (a key is usable
//! only once complete) and removed lookup first (a deleted key stops working at
//! once); readers skip list entries whose record is gone.
//!
//! Touches only the flow and key entries of this store's prefix.

use super::{RedisStore, scripts};
use crate::model::{ApiKey, FlowRecord, Page, TenantId, Timestamp};
use crate::store::StoreResult;

/// A flow definition read back: its JSON lacks the tenant (`#[serde(skip)]`).
fn flow_from(tenant: &TenantId, json: &str) -> StoreResult<FlowRecord> {
    let mut flow: FlowRecord = serde_json::from_str(json)?;
    flow.tenant = tenant.clone();
    Ok(flow)
}

/// A key hash's `json` and `used` fields as an [`ApiKey`].
fn key_from(json: &str, used: Option<&str>) -> StoreResult<ApiKey> {
    let mut key: ApiKey = serde_json::from_str(json)?;
    if let Some(used) = used {
        key.last_used_at = Some(serde_json::from_str(used)?);
    }
    Ok(key)
}

impl RedisStore {
    /// Inserts or replaces the flow `(tenant, id)`.
    pub(super) async fn put_flow_record(&self, flow: &FlowRecord) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZADD")
            .arg(self.keys.flow_order(&flow.tenant))
            .arg(flow.created_at.millis())
            .arg(&flow.id)
            .ignore()
            .cmd("HSET")
            .arg(self.keys.flow_defs(&flow.tenant))
            .arg(&flow.id)
            .arg(serde_json::to_string(flow)?)
            .ignore();
        self.query_pipe::<()>(&pipe).await
    }

    /// One flow of one tenant.
    pub(super) async fn get_flow_record(
        &self,
        tenant: &TenantId,
        flow_id: &str,
    ) -> StoreResult<Option<FlowRecord>> {
        let json: Option<String> =
            self.read(redis::cmd("HGET").arg(self.keys.flow_defs(tenant)).arg(flow_id)).await?;
        json.map(|j| flow_from(tenant, &j)).transpose()
    }

    /// A page of a tenant's flows, newest first (by `created_at`, then id).
    pub(super) async fn list_flow_page(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Page<FlowRecord>> {
        // Lua counts in doubles: keep the count exact.
        let limit = limit.min(1 << 30);
        let mut invocation = scripts::LIST_FLOWS.prepare_invoke();
        invocation
            .key(self.keys.flow_order(tenant))
            .key(self.keys.flow_defs(tenant))
            .arg(after.unwrap_or(""))
            .arg(limit.saturating_add(1));
        let rows: Vec<Option<String>> = self.invoke(&invocation).await?;
        let has_more = rows.len() > limit;
        let mut data: Vec<FlowRecord> = rows
            .iter()
            .flatten()
            .filter_map(|json| crate::store::readable(json))
            .map(|mut flow: FlowRecord| {
                flow.tenant = tenant.to_owned();
                flow
            })
            .collect();
        data.truncate(limit);
        let next_cursor = data.last().filter(|_| has_more).map(|f| f.id.clone());
        Ok(Page { data, has_more, next_cursor: next_cursor.map(String::from) })
    }

    /// Removes one flow of one tenant.
    pub(super) async fn delete_flow_record(&self, tenant: &TenantId, flow_id: &str) -> StoreResult<bool> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZREM")
            .arg(self.keys.flow_order(tenant))
            .arg(flow_id)
            .ignore()
            .cmd("HDEL")
            .arg(self.keys.flow_defs(tenant))
            .arg(flow_id);
        let (removed,): (i64,) = self.query_pipe(&pipe).await?;
        Ok(removed > 0)
    }

    /// Stores a new key: its record, its tenant's list, then its lookup.
    pub(super) async fn insert_key_record(&self, key: &ApiKey, secret_hash: &str) -> StoreResult<()> {
        let record = redis::cmd("HSET")
            .arg(self.keys.key(&key.id))
            .arg("json")
            .arg(serde_json::to_string(key)?)
            .arg("tenant")
            .arg(&key.tenant)
            .arg("hash")
            .arg(secret_hash)
            .to_owned();
        let list = redis::cmd("ZADD").arg(self.keys.tenant_keys(&key.tenant)).arg(0).arg(&key.id).to_owned();
        let lookup = redis::cmd("SET").arg(self.keys.key_hash(secret_hash)).arg(&key.id).to_owned();
        self.write_each(vec![record, list, lookup]).await.map(drop)
    }

    /// The key whose secret hashes to `secret_hash`.
    pub(super) async fn find_key(&self, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
        let id: Option<String> = self.read(redis::cmd("GET").arg(self.keys.key_hash(secret_hash))).await?;
        let Some(id) = id else { return Ok(None) };
        let (json, hash, used): (Option<String>, Option<String>, Option<String>) = self
            .read(redis::cmd("HMGET").arg(self.keys.key(&id)).arg("json").arg("hash").arg("used"))
            .await?;
        match json {
            Some(json) if hash.as_deref() == Some(secret_hash) => Ok(Some(key_from(&json, used.as_deref())?)),
            _ => Ok(None),
        }
    }

    /// A tenant's keys, oldest first (key ids sort by creation).
    pub(super) async fn tenant_keys(&self, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
        let ids: Vec<String> =
            self.read(redis::cmd("ZRANGEBYLEX").arg(self.keys.tenant_keys(tenant)).arg("-").arg("+")).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let reads = ids.iter().map(|id| {
            redis::cmd("HMGET").arg(self.keys.key(id)).arg("json").arg("tenant").arg("used").to_owned()
        });
        let rows: Vec<(Option<String>, Option<String>, Option<String>)> =
            self.read_each(reads.collect()).await?;
        rows.iter()
            .filter_map(|(json, owner, used)| match (json, owner) {
                (Some(json), Some(owner)) if tenant == owner.as_str() => Some((json, used)),
                _ => None,
            })
            .map(|(json, used)| key_from(json, used.as_deref()))
            .collect()
    }

    /// Removes one key of one tenant: lookup first, then record and list entry.
    pub(super) async fn delete_key_record(&self, tenant: &TenantId, key_id: &str) -> StoreResult<bool> {
        let record = self.keys.key(key_id);
        let (owner, hash): (Option<String>, Option<String>) =
            self.query(redis::cmd("HMGET").arg(&record).arg("tenant").arg("hash")).await?;
        if owner.as_deref() != Some(tenant) {
            return Ok(false);
        }
        let mut writes: Vec<redis::Cmd> =
            hash.iter().map(|h| redis::cmd("DEL").arg(self.keys.key_hash(h)).to_owned()).collect();
        let at = writes.len();
        writes.push(redis::cmd("DEL").arg(&record).to_owned());
        writes.push(redis::cmd("ZREM").arg(self.keys.tenant_keys(tenant)).arg(key_id).to_owned());
        let replies = self.write_each(writes).await?;
        let removed: i64 = redis::from_redis_value(replies[at].clone()).map_err(redis::RedisError::from)?;
        Ok(removed > 0)
    }

    /// Records a use of a key; a missing key is not an error.
    pub(super) async fn touch_key_record(&self, key_id: &str, at: Timestamp) -> StoreResult<()> {
        let mut invocation = scripts::TOUCH_KEY.prepare_invoke();
        invocation.key(self.keys.key(key_id)).arg(serde_json::to_string(&at)?);
        let _: i64 = self.invoke(&invocation).await?;
        Ok(())
    }
}
