//! The Lua scripts of the Redis store. Each touches the keys of ONE hash tag
//! (one chat, one tenant or one key), so each runs atomically on one Cluster
//! slot. `redis::Script` sends them by SHA and loads them on `NOSCRIPT`.
//!
//! A script that fails half way keeps its earlier writes, so every argument is
//! checked in Rust before a script is called.

use std::sync::LazyLock;

use redis::Script;

/// The compare-and-set of `Store::commit`.
///
/// KEYS: chat hash, events, messages, final-view messages, fence (the run
/// lease, or the chat hash when unfenced). ARGV: expected seq (`""` to
/// insert), new seq, record JSON, tenant, status, flow, number of events, fence
/// token (`""`: unfenced), then the events as (seq, JSON) pairs, then the
/// messages as (seq, JSON, in-final-view `1`/`0`) triples.
/// Returns `OK`, `CONFLICT`, `NOT_FOUND` or `FENCED`.
pub static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if ARGV[8] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[8] then return 'FENCED' end
local current = redis.call('HGET', KEYS[1], 'seq')
if ARGV[1] == '' then
  if current then return 'CONFLICT' end
else
  if not current then return 'NOT_FOUND' end
  if current ~= ARGV[1] then return 'CONFLICT' end
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'record', ARGV[3],
  'tenant', ARGV[4], 'status', ARGV[5], 'flow', ARGV[6])
local i = 9
local events_end = 9 + 2 * tonumber(ARGV[7])
while i < events_end do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '1' then redis.call('ZADD', KEYS[4], ARGV[i], ARGV[i + 1]) end
  i = i + 3
end
return 'OK'
"#,
    )
});

/// Removes a chat's keys. KEYS: chat hash, events, messages, final-view
/// messages. Returns `{tenant, last seq, bytes of message text}` as they were
/// at the delete (no commit can follow it), or nil when there was no chat.
pub static DELETE_CHAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local found = redis.call('HMGET', KEYS[1], 'tenant', 'seq', 'bytes')
if not found[1] then return false end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {found[1], found[2] or '0', found[3] or '0'}
"#,
    )
});

/// Brings a tenant's chat indexes to a chat's state at one seq, unless a later
/// (or the same) seq was indexed already: applying states out of order, or
/// twice, or from any node, leaves the indexes at the newest state.
///
/// KEYS: the idx hash, the all-chats index, the status, flow and status+flow
/// indexes of the new state (the old state's indexes are built from KEYS[2],
/// same hash tag). ARGV: chat id, seq, status, flow. Returns 1 if applied.
pub static INDEX_CHAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = ARGV[1]
local old = redis.call('HGET', KEYS[1], id)
if old then
  local o = cjson.decode(old)
  if tonumber(o[1]) >= tonumber(ARGV[2]) then return 0 end
  if o[2] ~= ARGV[3] or o[3] ~= ARGV[4] then
    local base = KEYS[2]
    redis.call('ZREM', base .. ':status:' .. o[2], id)
    redis.call('ZREM', base .. ':flow:' .. o[3], id)
    redis.call('ZREM', base .. ':status:' .. o[2] .. ':flow:' .. o[3], id)
  end
end
for k = 2, 5 do redis.call('ZADD', KEYS[k], 0, id) end
redis.call('HSET', KEYS[1], id, cjson.encode({ARGV[2], ARGV[3], ARGV[4]}))
return 1
"#,
    )
});

/// Takes a chat out of a tenant's indexes (after a delete, or when a reader
/// found an id whose chat is gone). KEYS: the idx hash, the all-chats index,
/// the index the id was found in. ARGV: chat id.
pub static FORGET_CHAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local id = ARGV[1]
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
local old = redis.call('HGET', KEYS[1], id)
if old then
  local o = cjson.decode(old)
  local base = KEYS[2]
  redis.call('ZREM', base .. ':status:' .. o[2], id)
  redis.call('ZREM', base .. ':flow:' .. o[3], id)
  redis.call('ZREM', base .. ':status:' .. o[2] .. ':flow:' .. o[3], id)
  redis.call('HDEL', KEYS[1], id)
end
return 1
"#,
    )
});

/// One page of a tenant's flows, newest first, after the flow `ARGV[1]` (`""`
/// for the first page; a cursor that is gone gives an empty page).
/// KEYS: the order set, the definitions hash. ARGV: after, count.
/// Returns the flows' JSON (nil for a definition gone meanwhile).
pub static LIST_FLOWS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  if not rank then return {} end
  start = rank + 1
end
local ids = redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)
local defs = {}
for i, id in ipairs(ids) do defs[i] = redis.call('HGET', KEYS[2], id) end
return defs
"#,
    )
});

/// Records a key's last use if the key still exists. KEYS: the key hash.
/// ARGV: the timestamp as JSON.
pub static TOUCH_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'used', ARGV[1])
end
return 1
"#,
    )
});
