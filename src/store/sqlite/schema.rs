//! The SQLite schema, versioned in code, and the per-connection settings.
//!
//! [`MIGRATIONS`] is an append-only list: entry `n` (0-based) takes a file from
//! `PRAGMA user_version = n` to `n + 1`. [`migrate`] applies the missing ones at
//! open, each in its own transaction together with the bump of `user_version`,
//! and refuses a file whose version is newer than this build knows.
//!
//! Touches only the connection it is given.

use std::time::Duration;

use rusqlite::Connection;

use super::{SqliteOptions, Synchronous};
use crate::store::{StoreError, StoreResult};

/// The schema steps, oldest first. Never edit a released entry: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE chats (
        id        TEXT PRIMARY KEY NOT NULL,
        tenant    TEXT NOT NULL,
        status    TEXT NOT NULL,
        from_flow TEXT NOT NULL,
        last_seq  INTEGER NOT NULL,
        record    TEXT NOT NULL
    );
    CREATE INDEX chats_by_tenant ON chats (tenant, id);
    CREATE INDEX chats_running ON chats (id) WHERE status = 'running';

    CREATE TABLE messages (
        chat_id TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        json    TEXT NOT NULL,
        PRIMARY KEY (chat_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE events (
        chat_id TEXT NOT NULL,
        seq     INTEGER NOT NULL,
        json    TEXT NOT NULL,
        PRIMARY KEY (chat_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE flows (
        tenant     TEXT NOT NULL,
        id         TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        json       TEXT NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX flows_by_age ON flows (tenant, created_at, id);

    CREATE TABLE api_keys (
        id     TEXT PRIMARY KEY NOT NULL,
        tenant TEXT NOT NULL,
        hash   TEXT NOT NULL UNIQUE,
        json   TEXT NOT NULL
    );
    CREATE INDEX api_keys_by_tenant ON api_keys (tenant, id);
    ",
    // 2: idempotency keys (contract §6): one entry per tenant and hashed key.
    "
    CREATE TABLE idempotency (
        tenant     TEXT NOT NULL,
        key        TEXT NOT NULL,
        entry      TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, key)
    );
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
    ",
    // 3: bytes of message text per chat and per tenant (the stored-bytes quota).
    "
    ALTER TABLE chats ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE tenant_usage (
        tenant TEXT PRIMARY KEY NOT NULL,
        bytes  INTEGER NOT NULL
    );
    INSERT INTO tenant_usage (tenant, bytes) SELECT tenant, 0 FROM chats GROUP BY tenant;
    ",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub fn current_version() -> u32 {
    // The list is tiny and compiled in; it cannot exceed u32.
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Settings shared by the writer and the readers.
pub fn configure(conn: &Connection, options: &SqliteOptions) -> StoreResult<()> {
    conn.busy_timeout(options.busy_timeout)?;
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    Ok(())
}

/// Puts the file in WAL mode; run once, on the writer connection.
pub fn enable_wal(conn: &Connection) -> StoreResult<()> {
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!("sqlite refused WAL journal mode (got {mode:?})")));
    }
    Ok(())
}

/// Brings the file up to [`current_version`], or refuses a newer one.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let found: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let known = current_version();
    if found > known {
        return Err(StoreError::Unavailable(format!(
            "the database file has schema version {found}, but this build of flowgate \
             only knows versions up to {known}; run a newer flowgate or use another file"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index + 1;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        // PRAGMA takes no bound parameters; `version` is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {version}"))?;
        tx.commit()?;
        tracing::info!(version, "sqlite schema migrated");
    }
    Ok(())
}

/// The default wait for a lock held by another process.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
