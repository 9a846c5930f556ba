//! The publisher task of the Redis bus: the node's one writer of `PUBLISH`es.
//!
//! Every publish goes into one bounded queue; the task takes what is queued
//! (up to `publish_batch` at once) and sends it as ONE pipeline, so a node
//! publishing from a thousand runs pays one round trip per batch, not one per
//! event. One task and one connection keep the order of the queue, so a chat's
//! events reach Redis in the order they were published. A writer that must
//! know the outcome (a durable event) waits for its batch's answer; an
//! ephemeral one (a delta) only waits for room in the queue; a delta's writes
//! to its partial go in the same batch right before its `PUBLISH`, and the
//! task reads an `APPEND`'s reply to drop a partial out of step
//! (`super::partials`). Channel names are
//! written straight into the command buffer, never formatted per publish; the
//! payload is the frame's wire form ([`Frame::write_wire`]).
//!
//! Touches the publisher connection it is given, nothing else.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use redis::{Cmd, Pipeline, RedisWrite, ToRedisArgs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::base::within;
use super::partials::{Check, Write};
use super::{RedisBusOptions, Wire};
use crate::bus::{BusError, Channel, Frame};
use crate::model::TenantId;

/// Where a queued frame goes.
pub(super) enum Target {
    /// Its own chat's channel, `fg:{chat_…}`.
    Chat,
    /// Its own chat's control channel, `fg:{chat_…}:ctl`.
    Control,
    /// A tenant's status feed.
    TenantStatus(TenantId),
    /// Any other channel, by name (a chat channel that is not the frame's own).
    Named(String),
}

impl Target {
    /// The target of publishing `frame` on `channel`.
    pub(super) fn of(channel: &Channel, frame: &Frame) -> Target {
        match channel {
            Channel::Chat(id) if *id == frame.chat_id => Target::Chat,
            Channel::Control(id) if *id == frame.chat_id => Target::Control,
            Channel::TenantStatus(t) => Target::TenantStatus(t.clone()),
            other => Target::Named(other.name()),
        }
    }
}

/// One queued publish.
pub(super) struct Outgoing {
    /// Where and what to publish; `None` for a flush, whose waiter hears once
    /// everything queued before it is sent.
    pub(super) publish: Option<(Target, Arc<Frame>)>,
    /// A command sent just before the `PUBLISH`, in the same batch (e.g. a
    /// key written alongside a delta).
    pub(super) extra: Option<Cmd>,
    /// A delta's writes to its partial, sent just before the `PUBLISH`; the
    /// task checks an `APPEND`'s reply.
    pub(super) partial: Option<Write>,
    /// Told the batch's outcome, if the writer waits for it.
    pub(super) done: Option<oneshot::Sender<Result<(), String>>>,
}

impl Outgoing {
    /// A plain publish of `frame` on `channel`.
    pub(super) fn to(channel: &Channel, frame: Arc<Frame>) -> Outgoing {
        let publish = Some((Target::of(channel, &frame), frame));
        Outgoing { publish, extra: None, partial: None, done: None }
    }

    /// A flush: `done` hears once everything queued before it is sent.
    pub(super) fn flush(done: oneshot::Sender<Result<(), String>>) -> Outgoing {
        Outgoing { publish: None, extra: None, partial: None, done: Some(done) }
    }
}

/// The task's state.
pub(super) struct Publisher {
    pub(super) connection: ConnectionManager,
    pub(super) queue: mpsc::Receiver<Outgoing>,
    pub(super) options: RedisBusOptions,
    pub(super) cancel: CancellationToken,
}

impl Publisher {
    /// Sends what is queued, batch after batch, until cancelled or every
    /// sender is gone.
    pub(super) async fn run(mut self) {
        let batch_size = self.options.publish_batch.max(1);
        let mut batch = Vec::with_capacity(batch_size);
        let mut pipeline = Pipeline::with_capacity(batch_size);
        let mut checks = Vec::new();
        loop {
            let received = tokio::select! {
                _ = self.cancel.cancelled() => return,
                n = self.queue.recv_many(&mut batch, batch_size) => n,
            };
            if received == 0 {
                return;
            }
            fill(&mut pipeline, &mut batch, &mut checks);
            if pipeline.is_empty() {
                report(&mut batch, Ok(())); // Only flushes: nothing to send.
                continue;
            }
            let sent = within(self.options.timeout, pipeline.query_async(&mut self.connection)).await;
            let lengths: Vec<u64> = match sent {
                Ok(lengths) => lengths,
                Err(e) => {
                    checks.clear();
                    report(&mut batch, Err(e));
                    continue;
                }
            };
            report(&mut batch, Ok(()));
            self.settle(&mut checks, lengths).await;
        }
    }

    /// Drops the partials whose `APPEND` (one reply each, in order) left them
    /// out of step (see [`Check::settle`]); costs a round trip only then.
    async fn settle(&mut self, checks: &mut Vec<Check>, lengths: Vec<u64>) {
        for (check, length) in checks.drain(..).zip(lengths) {
            let settled = within(self.options.timeout, check.settle(&mut self.connection, length)).await;
            if let Err(e) = settled {
                tracing::warn!(error = %e, "an out-of-step partial not dropped; it expires on its own");
            }
        }
    }
}

/// Writes the batch into `pipeline`, in queue order: each publish's extra
/// command and partial writes, then its `PUBLISH`; `checks` gets the
/// partials' `APPEND` checks, in the order of their replies.
fn fill(pipeline: &mut Pipeline, batch: &mut [Outgoing], checks: &mut Vec<Check>) {
    pipeline.clear();
    for outgoing in batch {
        if let Some(extra) = outgoing.extra.take() {
            pipeline.add_command(extra).ignore();
        }
        if let Some(partial) = outgoing.partial.take() {
            checks.extend(partial.add_to(pipeline));
        }
        if let Some((target, frame)) = &outgoing.publish {
            pipeline.cmd("PUBLISH").arg(Name(target, frame)).arg(Wire(frame)).ignore();
        }
    }
}

/// Tells every waiting writer of the batch its outcome, and empties it.
fn report(batch: &mut Vec<Outgoing>, sent: Result<(), BusError>) {
    let error = sent.err().map(|e| e.to_string());
    let mut unheard = 0usize;
    for outgoing in batch.drain(..) {
        match (outgoing.done, &error) {
            (Some(done), outcome) => drop(done.send(outcome.clone().map_or(Ok(()), Err))),
            (None, Some(_)) => unheard += 1,
            (None, None) => {}
        }
    }
    if let Some(error) = error
        && unheard > 0
    {
        tracing::debug!(%error, frames = unheard, "ephemeral frames not published");
    }
}

/// A queued publish's channel name, written into the command as it is built.
struct Name<'a>(&'a Target, &'a Frame);

impl ToRedisArgs for Name<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        use std::io::Write as _;
        let chat = self.1.chat_id.as_str().as_bytes();
        let mut w = out.writer_for_next_arg();
        // Writing to the command's own buffer cannot fail.
        let _ = match self.0 {
            Target::Chat => w.write_all(b"fg:{").and(w.write_all(chat)).and(w.write_all(b"}")),
            Target::Control => w.write_all(b"fg:{").and(w.write_all(chat)).and(w.write_all(b"}:ctl")),
            Target::TenantStatus(t) => w
                .write_all(b"fg:tenant:")
                .and(w.write_all(t.as_str().as_bytes()))
                .and(w.write_all(b":status")),
            Target::Named(name) => w.write_all(name.as_bytes()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChatId, Event, EventKind, now};

    fn frame() -> Arc<Frame> {
        Frame::from_event(&Event {
            seq: Some(3),
            chat_id: ChatId::new(),
            kind: EventKind::RunCancelled,
            created_at: now(),
            data: serde_json::json!({"run_id": "run_1"}),
        })
    }

    fn args(cmd: &Cmd) -> Vec<Vec<u8>> {
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_queued_publish_names_the_same_channel_as_channel_name() {
        let frame = frame();
        let tenant = TenantId::parse("t1").unwrap();
        let channels = [
            Channel::Chat(frame.chat_id.clone()),
            Channel::Control(frame.chat_id.clone()),
            Channel::TenantStatus(tenant),
            Channel::Chat(ChatId::new()),
        ];
        for channel in channels {
            let target = Target::of(&channel, &frame);
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(Name(&target, &frame)).arg(Wire(&frame));
            let args = args(&cmd);
            assert_eq!(args[1], channel.name().into_bytes());
            assert_eq!(args[2], frame.bytes().to_vec());
        }
    }
}
