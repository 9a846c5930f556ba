//! The cluster bus's publisher transport: the Redis bus's publisher
//! (`crate::bus::redis::publisher`) sending `SPUBLISH`, a batch split into
//! one pipeline per master, sent together.
//!
//! The cluster client routes a pipeline by its first keyed command and
//! refuses one whose commands name different slots, so the split is ours: a
//! slot map read with `CLUSTER SLOTS` (slot → master) groups the batch, and
//! each group goes out with `route_pipeline` to the master of its first
//! slot. A chat's channel and keys share its hash tag, hence one slot, one
//! group, and the group keeps queue order, so a chat's order holds. The map
//! is re-read before the next batch whenever a pipeline failed (a slot that
//! moved answers `MOVED`, which fails its group once the client's own retries
//! are spent); until a map is read each slot is its own group. Those retries
//! resend the whole pipeline, so while a slot moves a frame of another chat
//! in the same group may be published twice, as a retried single `SPUBLISH`
//! could be before: a feed drops a durable event it has by seq, and a delta
//! its client has by its span (`bus::partials::SnapshotFilter`).
//!
//! Touches the Redis Cluster through the publisher connection it is given.

use std::future::Future;
use std::time::Duration;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Pipeline, RedisResult, Value};

use crate::bus::Frame;
use crate::bus::redis::base::within;
use crate::bus::redis::partials::Check;
use crate::bus::redis::publisher::{Target, Transport};

/// How many hash slots a Redis Cluster has.
const SLOTS: usize = 16_384;
/// A slot no master is known to own.
const UNKNOWN: u16 = u16::MAX;

/// The cluster's publisher transport.
pub(super) struct Shards {
    conn: ClusterConnection,
    /// The index of the master owning each slot; empty until read.
    owners: Vec<u16>,
    /// Whether to read the map again before the next batch.
    stale: bool,
}

impl Shards {
    /// A transport on `conn` that reads its slot map before its first batch.
    pub(super) fn new(conn: ClusterConnection) -> Shards {
        Shards { conn, owners: Vec::new(), stale: true }
    }
}

impl Transport for Shards {
    const PUBLISH: &'static str = "SPUBLISH";

    async fn prepare(&mut self, timeout: Duration) {
        if !self.stale {
            return;
        }
        let mut conn = self.conn.clone();
        let read = within(timeout, redis::cmd("CLUSTER").arg("SLOTS").query_async::<Value>(&mut conn)).await;
        match read.map(|slots| owners(&slots)) {
            Ok(Some(owners)) => {
                self.owners = owners;
                self.stale = false;
            }
            Ok(None) => tracing::warn!("an unreadable CLUSTER SLOTS reply; publishing per slot"),
            Err(e) => tracing::warn!(error = %e, "CLUSTER SLOTS failed; the slot map is kept"),
        }
    }

    fn part_of(&self, target: &Target, frame: &Frame) -> (u32, u16) {
        let slot = match target {
            Target::Chat | Target::Control => crc16(frame.chat_id.as_str().as_bytes()),
            Target::TenantStatus(t) => key_slot(format!("fg:tenant:{t}:status").as_bytes()),
            Target::Named(name) => key_slot(name.as_bytes()),
        };
        match self.owners.get(usize::from(slot)) {
            Some(&owner) if owner != UNKNOWN => (u32::from(owner), slot),
            _ => (0x1_0000 + u32::from(slot), slot),
        }
    }

    fn send(
        &self,
        pipeline: Pipeline,
        hint: u16,
    ) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'static {
        let mut conn = self.conn.clone();
        let route = SingleNodeRoutingInfo::SpecificNode(Route::new(hint, SlotAddr::Master));
        async move {
            let count = pipeline.len();
            conn.route_pipeline(pipeline, 0, count, route).await
        }
    }

    async fn settle(&self, check: Check, length: u64) -> RedisResult<()> {
        check.settle(&mut self.conn.clone(), length).await
    }

    fn failed(&mut self) {
        self.stale = true;
    }
}

/// Slot → master index from a `CLUSTER SLOTS` reply (`[start, end, [host,
/// port, …], replicas…]` per range); `None` if it is not one.
fn owners(reply: &Value) -> Option<Vec<u16>> {
    let Value::Array(ranges) = reply else { return None };
    let mut masters: Vec<(Vec<u8>, i64)> = Vec::new();
    let mut owners = vec![UNKNOWN; SLOTS];
    for range in ranges {
        let Value::Array(fields) = range else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let host = match master.first() {
            Some(Value::BulkString(host)) => host.clone(),
            Some(Value::SimpleString(host)) => host.clone().into_bytes(),
            _ => return None,
        };
        let Some(Value::Int(port)) = master.get(1) else { return None };
        let node = (host, *port);
        let index = masters.iter().position(|m| *m == node).unwrap_or_else(|| {
            masters.push(node);
            masters.len() - 1
        });
        let (start, end) = (usize::try_from(*start).ok()?, usize::try_from(*end).ok()?);
        let index = u16::try_from(index).ok()?;
        owners.get_mut(start..=end)?.fill(index);
    }
    Some(owners)
}

/// A key's hash slot: CRC16 of its hash tag (the part between the first `{`
/// and the next `}`, if not empty), else of the whole key.
fn key_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
    });
    crc16(tag.unwrap_or(key))
}

/// The slot of a hash tag: CRC16/XMODEM modulo the slot count, as Redis
/// computes it.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % SLOTS as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_ones_redis_computes() {
        // `CLUSTER KEYSLOT foo` and the CRC16/XMODEM check value.
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"fg:{123456789}:ctl"), 0x31c3);
        assert_ne!(key_slot(b"{}foo"), key_slot(b"foo"));
    }

    #[test]
    fn a_slot_map_names_each_master_once() {
        let node = |port| Value::Array(vec![Value::BulkString(b"127.0.0.1".to_vec()), Value::Int(port)]);
        let range = |start, end, port| Value::Array(vec![Value::Int(start), Value::Int(end), node(port)]);
        let reply = Value::Array(vec![range(0, 5460, 1), range(5461, 10922, 2), range(10923, 16383, 1)]);
        let map = owners(&reply).expect("a map");
        assert_eq!((map[0], map[5461], map[16_383]), (0, 1, 0));
        assert_eq!(owners(&Value::Nil), None);
    }
}
