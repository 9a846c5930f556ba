//! The realtime hub: WebSocket sessions and SSE streams that follow chats
//! gap-free (see `feed`), with bounded outbound queues and liveness checks.

pub mod feed;
pub mod outbox;
pub mod protocol;
