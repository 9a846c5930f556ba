//! The Redis bus's partials (see `crate::bus::partials`): a string key per
//! message being streamed, `fg:{chat_…}:partial:msg_…`, and a hash per chat,
//! `fg:{chat_…}:partials` (message id → sender), both under the chat's hash
//! tag so they share the chat channel's slot (Redis Cluster ready).
//!
//! A delta costs no round trip of its own: its writes ([`Write`]) go in the
//! pipeline that publishes it, right before its `PUBLISH` (in the publisher
//! task's batch): `APPEND`, or for the first chunk of a
//! message a `SET` with a TTL and its registration in the chat's hash
//! (`HSET`, `PEXPIRE`). The pipeline is not a `MULTI`: the key is written before the
//! publish on the same connection, which is all a reader that subscribed
//! first needs. An `APPEND` whose resulting length is not the chunk's end
//! (the key expired or was evicted mid-stream) deletes the key (the
//! publisher task reads that reply; dropping a partial waits for the writes
//! queued before it), since a
//! partial that is not a prefix of the message must not be served. The TTL
//! (`partial_ttl`, the run's `max_run_secs` and a minute) is the backstop for
//! a node that dies mid-answer; a drive's start and end drop the rest.
//!
//! The same code serves the cluster bus (`super::super::cluster`), whose
//! publisher sends `SPUBLISH`: every key and the channel share the chat's
//! slot, so they go in the same per-master pipeline.
//!
//! Touches the Redis server through the connection it is given.

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline};

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

/// A chunk's writes to its partial, sent in the pipeline right before its
/// delta's publish: the first chunk `SET`s the key and registers it (`HSET`,
/// `PEXPIRE`); a later one `APPEND`s, and its reply is checked ([`Check`]).
pub(crate) struct Write {
    commands: Vec<Cmd>,
    check: Option<Check>,
}

/// What an `APPEND`'s reply must be: the chunk's end in its message.
pub(crate) struct Check {
    length: u64,
    chat_id: ChatId,
    message_id: String,
}

impl Write {
    /// The writes of `chunk`, the key living `ttl_ms` after its first chunk.
    pub(crate) fn of(chunk: &Chunk<'_>, ttl_ms: u64) -> Write {
        let key = content_key(chunk.chat_id, chunk.message_id);
        if chunk.offset > 0 {
            let check = Check {
                length: chunk.offset + chunk.text.len() as u64,
                chat_id: chunk.chat_id.clone(),
                message_id: chunk.message_id.to_owned(),
            };
            // Sized once: an empty `Cmd` grows (and copies) per argument.
            let mut append = Cmd::with_capacity(3, 6 + key.len() + chunk.text.len());
            append.arg("APPEND").arg(key).arg(chunk.text);
            return Write { commands: vec![append], check: Some(check) };
        }
        let index = index_key(chunk.chat_id);
        let mut set = Cmd::with_capacity(5, 3 + key.len() + chunk.text.len() + 2 + 20);
        set.arg("SET").arg(key).arg(chunk.text).arg("PX").arg(ttl_ms);
        let mut hset = Cmd::with_capacity(4, 4 + index.len() + chunk.message_id.len() + chunk.sender.len());
        hset.arg("HSET").arg(&index).arg(chunk.message_id).arg(chunk.sender);
        let mut pexpire = Cmd::with_capacity(3, 7 + index.len() + 20);
        pexpire.arg("PEXPIRE").arg(&index).arg(ttl_ms);
        Write { commands: vec![set, hset, pexpire], check: None }
    }

    /// Adds the writes to `pipe`; returns the check of an `APPEND`, which
    /// is then the last command in `pipe`.
    pub(crate) fn add_to(self, pipe: &mut Pipeline) -> Option<Check> {
        for command in self.commands {
            pipe.add_command(command);
        }
        self.check
    }
}

impl Check {
    /// Drops the partial if the `APPEND` left it `length` bytes long but for
    /// the chunk's end (the key expired or was evicted mid-stream): a partial
    /// that is not a prefix of the message must not be served.
    pub(crate) async fn settle(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        length: u64,
    ) -> Result<(), redis::RedisError> {
        if length == self.length {
            return Ok(());
        }
        tracing::warn!(chat_id = %self.chat_id, message_id = self.message_id, "partial out of step; dropped");
        forget(conn, &self.chat_id, Some(&self.message_id)).await
    }
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
