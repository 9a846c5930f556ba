//! The write commands, each run by the writer thread inside its own savepoint
//! (so an `Err` here undoes everything the command did, and only that).
//!
//! Touches only the writer connection it is given.

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{ApiKey, Event, FlowRecord, Timestamp};
use crate::store::{ChatChange, Idempotency, IdempotencyEntry, StoreError, StoreResult};

/// A change's event without a seq: ephemeral, so it cannot be stored.
#[derive(Debug, thiserror::Error)]
#[error("event {kind} of chat {chat_id} has no seq and cannot be stored")]
struct EphemeralEvent {
    kind: &'static str,
    chat_id: String,
}

/// Compare-and-set on the chat's `last_seq`, then the change's events and
/// messages (see [`ChatChange`]).
pub fn commit(conn: &Connection, change: &ChatChange) -> StoreResult<()> {
    let record = &change.record;
    let chat = &record.chat;
    let json = serde_json::to_string(record)?;
    match change.expected_seq {
        None => {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO chats (id, tenant, status, from_flow, last_seq, record)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    chat.id,
                    record.tenant,
                    chat.status.as_str(),
                    chat.from_flow,
                    chat.last_seq,
                    json
                ])?;
            if inserted == 0 {
                return Err(StoreError::Conflict);
            }
        }
        Some(expected) => {
            let updated = conn
                .prepare_cached(
                    "UPDATE chats SET tenant = ?2, status = ?3, from_flow = ?4,
                         last_seq = ?5, record = ?6
                     WHERE id = ?1 AND last_seq = ?7",
                )?
                .execute(params![
                    chat.id,
                    record.tenant,
                    chat.status.as_str(),
                    chat.from_flow,
                    chat.last_seq,
                    json,
                    expected
                ])?;
            if updated == 0 {
                return Err(missing_or_moved(conn, &chat.id)?);
            }
        }
    }
    insert_events(conn, &chat.id, &change.events)?;
    count_bytes(conn, record.tenant.as_str(), &chat.id, crate::store::stored_text_bytes(change))?;
    let mut insert = conn.prepare_cached("INSERT INTO messages (chat_id, seq, json) VALUES (?1, ?2, ?3)")?;
    for message in &change.messages {
        insert.execute(params![chat.id, message.seq, serde_json::to_string(message)?])?;
    }
    Ok(())
}

/// Why a compare-and-set matched no row.
fn missing_or_moved(conn: &Connection, chat_id: &str) -> StoreResult<StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM chats WHERE id = ?1")?
        .query_row([chat_id], |_| Ok(()))
        .optional()?
        .is_some();
    Ok(if exists { StoreError::Conflict } else { StoreError::ChatNotFound })
}

fn insert_events(conn: &Connection, chat_id: &str, events: &[Event]) -> StoreResult<()> {
    let mut insert = conn.prepare_cached("INSERT INTO events (chat_id, seq, json) VALUES (?1, ?2, ?3)")?;
    for event in events {
        let Some(seq) = event.seq else {
            let why = EphemeralEvent { kind: event.kind.as_str(), chat_id: chat_id.to_owned() };
            return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(why)).into());
        };
        insert.execute(params![chat_id, seq, serde_json::to_string(event)?])?;
    }
    Ok(())
}

/// Removes the chat, its messages and its events; `false` if there was no chat.
pub fn delete_chat(conn: &Connection, chat_id: &str) -> StoreResult<Option<u64>> {
    let deleted: Option<(i64, String, i64)> = conn
        .prepare_cached("DELETE FROM chats WHERE id = ?1 RETURNING last_seq, tenant, bytes")?
        .query_row([chat_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((_, tenant, bytes)) = &deleted {
        conn.prepare_cached("UPDATE tenant_usage SET bytes = max(0, bytes - ?2) WHERE tenant = ?1")?
            .execute(params![tenant, bytes])?;
    }
    let last_seq = deleted.map(|(seq, _, _)| seq);
    conn.prepare_cached("DELETE FROM messages WHERE chat_id = ?1")?.execute([chat_id])?;
    conn.prepare_cached("DELETE FROM events WHERE chat_id = ?1")?.execute([chat_id])?;
    Ok(last_seq.map(|s| s as u64))
}

/// Inserts or replaces the flow `(tenant, id)`.
pub fn put_flow(conn: &Connection, flow: &FlowRecord) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO flows (tenant, id, created_at, json) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, id) DO UPDATE
         SET created_at = excluded.created_at, json = excluded.json",
    )?
    .execute(params![flow.tenant, flow.id, flow.created_at.millis(), serde_json::to_string(flow)?])?;
    Ok(())
}

/// Removes one flow of one tenant.
pub fn delete_flow(conn: &Connection, tenant: &str, flow_id: &str) -> StoreResult<bool> {
    let removed =
        conn.prepare_cached("DELETE FROM flows WHERE tenant = ?1 AND id = ?2")?.execute([tenant, flow_id])?;
    Ok(removed > 0)
}

/// Stores a new key beside the hash of its secret.
pub fn insert_key(conn: &Connection, key: &ApiKey, secret_hash: &str) -> StoreResult<()> {
    conn.prepare_cached("INSERT INTO api_keys (id, tenant, hash, json) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![key.id, key.tenant, secret_hash, serde_json::to_string(key)?])?;
    Ok(())
}

/// Removes one key of one tenant.
pub fn delete_key(conn: &Connection, tenant: &str, key_id: &str) -> StoreResult<bool> {
    let removed = conn
        .prepare_cached("DELETE FROM api_keys WHERE id = ?1 AND tenant = ?2")?
        .execute([key_id, tenant])?;
    Ok(removed > 0)
}

/// Sets a key's `last_used_at`; a missing key is not an error.
pub fn touch_key(conn: &Connection, key_id: &str, at: Timestamp) -> StoreResult<()> {
    conn.prepare_cached("UPDATE api_keys SET json = json_set(json, '$.last_used_at', ?2) WHERE id = ?1")?
        .execute(params![key_id, at.to_rfc3339()])?;
    Ok(())
}

/// Reserves `(tenant, key)` until `hold_until` (ms) unless an entry that has
/// not expired holds it; drops expired entries on the way.
pub fn idempotency_begin(
    conn: &Connection,
    tenant: &str,
    key: &str,
    fingerprint: &str,
    (now, hold_until): (i64, i64),
) -> StoreResult<Idempotency> {
    conn.prepare_cached("DELETE FROM idempotency WHERE expires_at <= ?1")?.execute([now])?;
    let entry =
        serde_json::to_string(&IdempotencyEntry { fingerprint: fingerprint.to_owned(), answer: None })?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO idempotency (tenant, key, entry, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant, key) DO NOTHING",
        )?
        .execute(params![tenant, key, entry, hold_until])?;
    if inserted == 1 {
        return Ok(Idempotency::Fresh);
    }
    let found: String = conn
        .prepare_cached("SELECT entry FROM idempotency WHERE tenant = ?1 AND key = ?2")?
        .query_row([tenant, key], |row| row.get(0))?;
    Ok(serde_json::from_str::<IdempotencyEntry>(&found)?.state())
}

/// Records the answer of a reserved key, kept until `keep_until` (ms).
pub fn idempotency_finish(
    conn: &Connection,
    tenant: &str,
    key: &str,
    entry: &IdempotencyEntry,
    keep_until: i64,
) -> StoreResult<()> {
    conn.prepare_cached("UPDATE idempotency SET entry = ?3, expires_at = ?4 WHERE tenant = ?1 AND key = ?2")?
        .execute(params![tenant, key, serde_json::to_string(entry)?, keep_until])?;
    Ok(())
}

/// Drops a reserved key.
pub fn idempotency_release(conn: &Connection, tenant: &str, key: &str) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM idempotency WHERE tenant = ?1 AND key = ?2")?.execute([tenant, key])?;
    Ok(())
}

/// Adds a change's bytes of message text to its chat and its tenant.
fn count_bytes(conn: &Connection, tenant: &str, chat_id: &str, bytes: u64) -> StoreResult<()> {
    if bytes == 0 {
        return Ok(());
    }
    let bytes = bytes as i64;
    conn.prepare_cached("UPDATE chats SET bytes = bytes + ?2 WHERE id = ?1")?
        .execute(params![chat_id, bytes])?;
    conn.prepare_cached(
        "INSERT INTO tenant_usage (tenant, bytes) VALUES (?1, ?2)
         ON CONFLICT (tenant) DO UPDATE SET bytes = bytes + excluded.bytes",
    )?
    .execute(params![tenant, bytes])?;
    Ok(())
}
