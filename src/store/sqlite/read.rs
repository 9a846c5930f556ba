//! Reads: a small pool of read-only connections used on tokio's blocking
//! threads, and the queries behind every read of the [`Store`] trait. At
//! most one blocking thread per connection: a burst of reads (10,000 sockets
//! subscribing at once) waits for a connection without a thread each, rather
//! than start hundreds of threads that would only wait for one.
//!
//! In WAL mode readers never wait for the writer; each query sees the last
//! committed state.
//!
//! Touches only its own read-only connections.
//!
//! [`Store`]: crate::store::Store

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, params};
use serde::de::DeserializeOwned;

use super::{SqliteOptions, schema};
use crate::model::{ApiKey, Chat, ChatRecord, FlowRecord, Page, TenantId};
use crate::store::{ChatOwner, ChatQuery, MessageView, SeqQuery, StoreError, StoreResult};

/// A few read-only connections, each behind its own mutex.
pub struct ReadPool {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// One permit per connection, held by each read on its blocking thread.
    running: Arc<Semaphore>,
}

impl ReadPool {
    /// Opens `options.readers` read-only connections to the (migrated) file.
    pub fn open(path: &Path, options: &SqliteOptions) -> StoreResult<ReadPool> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conns = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let conn = Connection::open_with_flags(path, flags)?;
            schema::configure(&conn, options)?;
            conns.push(Mutex::new(conn));
        }
        let running = Arc::new(Semaphore::new(conns.len()));
        Ok(ReadPool { conns, next: AtomicUsize::new(0), running })
    }

    /// Runs `query` on a free connection, on a blocking thread, once one of
    /// the pool's permits is free (the permit goes with the thread, so a
    /// caller that stops waiting does not let another thread start early).
    pub async fn read<T, F>(self: &Arc<Self>, query: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self.running.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        let run = move || {
            let _permit = permit;
            query(&pool.checkout())
        };
        tokio::task::spawn_blocking(run).await.map_err(|_| StoreError::Closed)?
    }

    /// A free connection if there is one, else waits for the next in turn.
    fn checkout(&self) -> MutexGuard<'_, Connection> {
        for conn in &self.conns {
            if let Ok(guard) = conn.try_lock() {
                return guard;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        // A panic while holding a connection leaves it usable: ignore poison.
        self.conns[turn].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sorts after every id (ids are ASCII).
const ID_MAX: &str = "\u{10FFFF}";

/// Every row's first column, parsed as JSON.
fn json_rows<T: DeserializeOwned>(conn: &Connection, sql: &str, args: impl Params) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        out.push(serde_json::from_str(&text)?);
    }
    Ok(out)
}

/// Like [`json_rows`] for listings of records: a row that cannot be read back
/// is skipped and logged, so one bad record never takes down a list.
/// Also returns how many rows there were, skipped ones included.
fn readable_rows<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    args: impl Params,
) -> StoreResult<(Vec<T>, usize)> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let (mut out, mut seen) = (Vec::new(), 0);
    while let Some(row) = rows.next()? {
        let text: String = row.get(0)?;
        seen += 1;
        if let Some(record) = crate::store::readable(&text) {
            out.push(record);
        }
    }
    Ok((out, seen))
}

fn json_row<T: DeserializeOwned>(conn: &Connection, sql: &str, args: impl Params) -> StoreResult<Option<T>> {
    let text: Option<String> = conn.prepare_cached(sql)?.query_row(args, |row| row.get(0)).optional()?;
    Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
}

fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sql_limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Who owns a chat and its `last_seq`, read even when the whole record no
/// longer parses (so an unreadable chat can still be deleted).
pub fn chat_owner(conn: &Connection, chat_id: &str) -> StoreResult<Option<ChatOwner>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT record FROM chats WHERE id = ?1")?
        .query_row([chat_id], |row| row.get(0))
        .optional()?;
    text.map(|t| crate::store::owner_of(&t)).transpose()
}

/// One chat by id.
pub fn get_chat(conn: &Connection, chat_id: &str) -> StoreResult<Option<ChatRecord>> {
    json_row(conn, "SELECT record FROM chats WHERE id = ?1", [chat_id])
}

/// How many chats a tenant has, in `status` when given.
pub fn count_chats(conn: &Connection, tenant: &str, status: Option<&str>) -> StoreResult<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM chats WHERE tenant = ?1 AND (?2 IS NULL OR status = ?2)")?
        .query_row(params![tenant, status], |row| row.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Every running chat, any tenant.
pub fn running_chats(conn: &Connection) -> StoreResult<Vec<ChatRecord>> {
    Ok(readable_rows(conn, "SELECT record FROM chats WHERE status = 'running' ORDER BY id", [])?.0)
}

/// A page of a tenant's chats, newest first.
///
/// `after` pages toward older chats and `next_cursor` is the oldest id returned;
/// `before` alone pages toward newer chats (the ones just newer than `before`,
/// still listed newest first) and `next_cursor` is then the newest id returned,
/// to pass as `before` again. `has_more` is about the direction of travel.
pub fn list_chats(conn: &Connection, tenant: &TenantId, query: &ChatQuery) -> StoreResult<Page<Chat>> {
    let toward_newer = query.before.is_some() && query.after.is_none();
    let sql = format!(
        "SELECT record FROM chats
         WHERE tenant = ?1 AND id < ?2 AND id > ?3
           AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR from_flow = ?5)
         ORDER BY id {} LIMIT ?6",
        if toward_newer { "ASC" } else { "DESC" }
    );
    let (records, seen): (Vec<ChatRecord>, usize) = readable_rows(
        conn,
        &sql,
        params![
            tenant,
            query.after.as_deref().unwrap_or(ID_MAX),
            query.before.as_deref().unwrap_or(""),
            query.status.map(|s| s.as_str()),
            query.from_flow,
            sql_limit(query.limit).saturating_add(1),
        ],
    )?;
    let mut data: Vec<Chat> = records.into_iter().map(|r| r.chat).collect();
    let has_more = seen > query.limit;
    data.truncate(query.limit);
    if toward_newer {
        data.reverse();
    }
    let edge = if toward_newer { data.first() } else { data.last() };
    let next_cursor = edge.filter(|_| has_more).map(|c| c.id.clone());
    Ok(Page { data, has_more, next_cursor: next_cursor.map(String::from) })
}

/// The tables read by seq.
#[derive(Debug, Clone, Copy)]
pub enum SeqTable {
    /// `messages`
    Messages,
    /// `events`
    Events,
}

/// The `messages` rows of [`MessageView::Final`]: the same rule as
/// [`MessageView::keeps`], evaluated on the stored JSON.
const FINAL_VIEW: &str = "AND (json_extract(json, '$.role') IN ('user', 'human_input')
          OR json_type(json, '$.metadata.final') = 'true')";

/// A chat's messages or events by seq range (messages filtered by the
/// query's view).
pub fn by_seq<T: DeserializeOwned>(
    conn: &Connection,
    table: SeqTable,
    chat_id: &str,
    query: &SeqQuery,
) -> StoreResult<Vec<T>> {
    let (table, view) = match (table, query.view) {
        (SeqTable::Messages, MessageView::Final) => ("messages", FINAL_VIEW),
        (SeqTable::Messages, MessageView::All) => ("messages", ""),
        (SeqTable::Events, _) => ("events", ""),
    };
    let order = if query.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT json FROM {table} WHERE chat_id = ?1 AND seq > ?2 AND seq < ?3 {view}
         ORDER BY seq {order} LIMIT ?4"
    );
    json_rows(
        conn,
        &sql,
        params![
            chat_id,
            query.after_seq.map_or(-1, sql_int),
            query.before_seq.map_or(i64::MAX, sql_int),
            sql_limit(query.limit),
        ],
    )
}

/// A flow row: its JSON lacks the tenant (`#[serde(skip)]`), restored here.
fn flow_from(tenant: &TenantId, json: &str) -> StoreResult<FlowRecord> {
    let mut flow: FlowRecord = serde_json::from_str(json)?;
    flow.tenant = tenant.clone();
    Ok(flow)
}

/// One flow of one tenant.
pub fn get_flow(conn: &Connection, tenant: &TenantId, flow_id: &str) -> StoreResult<Option<FlowRecord>> {
    let json: Option<String> = conn
        .prepare_cached("SELECT json FROM flows WHERE tenant = ?1 AND id = ?2")?
        .query_row([tenant, flow_id], |row| row.get(0))
        .optional()?;
    json.map(|j| flow_from(tenant, &j)).transpose()
}

/// A page of a tenant's flows, newest first (by `created_at`, then id), after
/// the flow `after`; an `after` that no longer exists gives an empty page.
pub fn list_flows(
    conn: &Connection,
    tenant: &TenantId,
    after: Option<&str>,
    limit: usize,
) -> StoreResult<Page<FlowRecord>> {
    let start = match after {
        None => (i64::MAX, ID_MAX.to_owned()),
        Some(id) => {
            let created: Option<i64> = conn
                .prepare_cached("SELECT created_at FROM flows WHERE tenant = ?1 AND id = ?2")?
                .query_row([tenant, id], |row| row.get(0))
                .optional()?;
            match created {
                Some(created) => (created, id.to_owned()),
                None => return Ok(empty_page()),
            }
        }
    };
    let mut stmt = conn.prepare_cached(
        "SELECT json FROM flows WHERE tenant = ?1 AND (created_at, id) < (?2, ?3)
         ORDER BY created_at DESC, id DESC LIMIT ?4",
    )?;
    let rows: Vec<String> = stmt
        .query_map(params![tenant, start.0, start.1, sql_limit(limit).saturating_add(1)], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut data: Vec<FlowRecord> = rows
        .iter()
        .filter_map(|json| crate::store::readable(json))
        .map(|mut flow: FlowRecord| {
            flow.tenant = tenant.to_owned();
            flow
        })
        .collect();
    let has_more = rows.len() > limit;
    data.truncate(limit);
    let next_cursor = data.last().filter(|_| has_more).map(|f| f.id.clone());
    Ok(Page { data, has_more, next_cursor: next_cursor.map(String::from) })
}

fn empty_page<T>() -> Page<T> {
    Page { data: Vec::new(), has_more: false, next_cursor: None }
}

/// The key stored with this secret hash.
pub fn key_by_hash(conn: &Connection, secret_hash: &str) -> StoreResult<Option<ApiKey>> {
    json_row(conn, "SELECT json FROM api_keys WHERE hash = ?1", [secret_hash])
}

/// A tenant's keys, oldest first (key ids sort by creation).
pub fn list_keys(conn: &Connection, tenant: &TenantId) -> StoreResult<Vec<ApiKey>> {
    Ok(readable_rows(conn, "SELECT json FROM api_keys WHERE tenant = ?1 ORDER BY id", [tenant])?.0)
}

/// Bytes of message text a tenant keeps.
pub fn stored_bytes(conn: &Connection, tenant: &str) -> StoreResult<u64> {
    let bytes: Option<i64> = conn
        .prepare_cached("SELECT bytes FROM tenant_usage WHERE tenant = ?1")?
        .query_row([tenant], |row| row.get(0))
        .optional()?;
    Ok(bytes.unwrap_or(0).max(0) as u64)
}
