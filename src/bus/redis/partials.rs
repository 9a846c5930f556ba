//! The Redis bus's partials (see `crate::bus::partials`): a string key per
//! message being streamed, `fg:{chat_…}:partial:msg_…`, and a hash per chat,
//! `fg:{chat_…}:partials` (message id → sender), both under the chat's hash
//! tag so they share the chat channel's slot (Redis Cluster ready).
//!
//! A delta costs no round trip of its own: it is one pipeline with its
//! `PUBLISH`: `APPEND` then `PUBLISH`; the first chunk of a message `SET`s the
//! key with a TTL and registers it in the chat's hash (`HSET` + `PEXPIRE`)
//! instead. The pipeline is not a `MULTI`: the key is written before the
//! publish on the same connection, which is all a reader that subscribed
//! first needs. An `APPEND` whose resulting length is not the chunk's end
//! (the key expired or was evicted mid-stream) deletes the key, since a
//! partial that is not a prefix of the message must not be served. The TTL
//! (`partial_ttl`, the run's `max_run_secs` and a minute) is the backstop for
//! a node that dies mid-answer; a drive's start and end drop the rest.
//!
//! The same code serves the cluster bus (`super::super::cluster`), which
//! publishes with `SPUBLISH`: every key and the channel share the chat's slot.
//!
//! Touches the Redis server through the connection it is given.

use redis::aio::ConnectionLike;

use crate::bus::BusError;
use crate::bus::partials::{Chunk, MAX_PER_CHAT, Partial};
use crate::model::ChatId;

/// Where a message's streamed text lives.
fn content_key(chat_id: &ChatId, message_id: &str) -> String {
    format!("fg:{{{chat_id}}}:partial:{message_id}")
}

/// The chat's messages being streamed: message id → sender.
fn index_key(chat_id: &ChatId) -> String {
    format!("fg:{{{chat_id}}}:partials")
}

/// Appends `chunk` to its partial and publishes `json` on `channel` with
/// `publish` (`PUBLISH`, or `SPUBLISH` on a cluster), in one pipeline.
pub(crate) async fn publish_delta(
    conn: &mut (impl ConnectionLike + Send),
    publish: &str,
    channel: &str,
    chunk: &Chunk<'_>,
    json: &str,
    ttl_ms: u64,
) -> Result<(), redis::RedisError> {
    let key = content_key(chunk.chat_id, chunk.message_id);
    let mut pipe = redis::pipe();
    if chunk.offset == 0 {
        let index = index_key(chunk.chat_id);
        pipe.cmd("SET").arg(&key).arg(chunk.text).arg("PX").arg(ttl_ms).ignore();
        pipe.cmd("HSET").arg(&index).arg(chunk.message_id).arg(chunk.sender).ignore();
        pipe.cmd("PEXPIRE").arg(&index).arg(ttl_ms).ignore();
        pipe.cmd(publish).arg(channel).arg(json).ignore();
        return pipe.query_async(conn).await;
    }
    pipe.cmd("APPEND").arg(&key).arg(chunk.text);
    pipe.cmd(publish).arg(channel).arg(json).ignore();
    let (length,): (u64,) = pipe.query_async(conn).await?;
    if length != chunk.offset + chunk.text.len() as u64 {
        tracing::warn!(chat_id = %chunk.chat_id, message_id = chunk.message_id, "partial out of step; dropped");
        forget(conn, chunk.chat_id, Some(chunk.message_id)).await?;
    }
    Ok(())
}

/// The chat's partials: the hash, then the keys it names (two round trips,
/// once per feed start; a key gone meanwhile is skipped).
pub(crate) async fn read(
    conn: &mut (impl ConnectionLike + Send),
    chat_id: &ChatId,
) -> Result<Vec<Partial>, BusError> {
    let senders: Vec<(String, String)> =
        redis::cmd("HGETALL").arg(index_key(chat_id)).query_async(conn).await?;
    if senders.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> =
        senders.iter().take(MAX_PER_CHAT).map(|(id, _)| content_key(chat_id, id)).collect();
    let contents: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let mut partials: Vec<Partial> = senders
        .into_iter()
        .zip(contents)
        .filter_map(|((message_id, sender), content)| Some(Partial { message_id, sender, content: content? }))
        .collect();
    partials.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    Ok(partials)
}

/// Drops one message's partial, or (with `None`) all of the chat's.
pub(crate) async fn forget(
    conn: &mut (impl ConnectionLike + Send),
    chat_id: &ChatId,
    message_id: Option<&str>,
) -> Result<(), redis::RedisError> {
    let index = index_key(chat_id);
    let mut pipe = redis::pipe();
    match message_id {
        Some(id) => {
            pipe.cmd("HDEL").arg(&index).arg(id).ignore();
            pipe.cmd("DEL").arg(content_key(chat_id, id)).ignore();
        }
        None => {
            let ids: Vec<String> = redis::cmd("HKEYS").arg(&index).query_async(conn).await?;
            pipe.cmd("DEL").arg(&index).ignore();
            for id in ids {
                pipe.cmd("DEL").arg(content_key(chat_id, &id)).ignore();
            }
        }
    }
    pipe.query_async(conn).await
}
