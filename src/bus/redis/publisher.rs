//! The publisher of the Redis and Redis Cluster buses: a node's one writer
//! of `PUBLISH`es (`SPUBLISH` on a cluster).
//!
//! Every publish goes into one bounded queue ([`Queue`]); one task takes what
//! is queued (up to `publish_batch` at once) and sends it as pipelines, so a
//! node publishing from a thousand runs pays one round trip per batch, not one
//! per event. What differs between one server and a cluster is the
//! [`Transport`]: the command word, and how a batch is split. One Redis takes
//! the whole batch as ONE pipeline; a cluster takes one pipeline per master
//! (see `crate::bus::cluster`), sent together. Either way a pipeline holds its
//! entries in queue order and the next batch waits for this one, so a chat's
//! events reach Redis in the order they were published (a chat's channel and
//! keys share one slot, so they share one pipeline).
//!
//! A writer that must know the outcome (a durable event) waits for its
//! pipeline's answer; an ephemeral one (a delta) only waits for room in the
//! queue; a delta's writes to its partial go in the same pipeline right
//! before its publish, and the task reads an `APPEND`'s reply to drop a
//! partial out of step (`super::partials`). Channel names are written straight
//! into the command buffer, never formatted per publish; the payload is the
//! frame's wire form ([`Frame::write_wire`]).
//!
//! Touches the connection its transport is given, nothing else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Pipeline, RedisResult, RedisWrite, ToRedisArgs, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::base::within;
use super::partials::{Check, Write};
use super::{RedisBusOptions, Wire};
use crate::bus::partials::Chunk;
use crate::bus::{BusError, Channel, Frame};
use crate::model::TenantId;

/// How a batch reaches Redis: what differs between one server and a cluster.
pub(in crate::bus) trait Transport: Send + Sync + 'static {
    /// The publish command: `PUBLISH`, or `SPUBLISH` on a cluster.
    const PUBLISH: &'static str;
    /// Before each batch (a cluster re-reads a stale slot map here).
    fn prepare(&mut self, timeout: Duration) -> impl Future<Output = ()> + Send;
    /// Which pipeline a publish goes in: publishes with the same key share
    /// one, sent with the key's routing hint (a slot it holds).
    fn part_of(&self, target: &Target, frame: &Frame) -> (u32, u16);
    /// Sends one pipeline, routed by `hint`; every reply, raw.
    fn send(
        &self,
        pipeline: Pipeline,
        hint: u16,
    ) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'static;
    /// Drops the partial out of step that `check` names (see [`Check::settle`]).
    fn settle(&self, check: Check, length: u64) -> impl Future<Output = RedisResult<()>> + Send;
    /// A pipeline failed (a cluster marks its slot map stale).
    fn failed(&mut self);
}

/// Where a queued frame goes.
pub(in crate::bus) enum Target {
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
    fn of(channel: &Channel, frame: &Frame) -> Target {
        match channel {
            Channel::Chat(id) if *id == frame.chat_id => Target::Chat,
            Channel::Control(id) if *id == frame.chat_id => Target::Control,
            Channel::TenantStatus(t) => Target::TenantStatus(t.clone()),
            other => Target::Named(other.name()),
        }
    }
}

/// One queued publish.
pub(in crate::bus) struct Outgoing {
    /// Where and what to publish; `None` for a flush, whose waiter hears once
    /// everything queued before it is sent.
    publish: Option<(Target, Arc<Frame>)>,
    /// A command sent just before the publish, in the same pipeline (e.g. a
    /// key written alongside a delta; on one Redis only).
    extra: Option<Cmd>,
    /// A delta's writes to its partial, sent just before the publish; the
    /// task checks an `APPEND`'s reply.
    partial: Option<Write>,
    /// Told the outcome, if the writer waits for it.
    done: Option<oneshot::Sender<Result<(), String>>>,
}

impl Outgoing {
    /// A plain publish of `frame` on `channel`.
    fn to(channel: &Channel, frame: Arc<Frame>) -> Outgoing {
        let publish = Some((Target::of(channel, &frame), frame));
        Outgoing { publish, extra: None, partial: None, done: None }
    }
}

/// The bus handle's side of the publisher: queues publishes for its task.
pub(in crate::bus) struct Queue {
    sender: mpsc::Sender<Outgoing>,
    timeout: Duration,
    partial_ttl_ms: u64,
}

impl Queue {
    /// Starts the publisher task on `tasks`, sending through `transport`
    /// until `cancel`.
    pub(in crate::bus) fn start<T: Transport>(
        transport: T,
        options: &RedisBusOptions,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> Queue {
        let (sender, queue) = mpsc::channel(options.publish_queue.max(1));
        let task =
            Publisher { transport, queue, batch: options.publish_batch.max(1), timeout: options.timeout };
        tasks.spawn(task.run(cancel));
        Queue { sender, timeout: options.timeout, partial_ttl_ms: options.partial_ttl_ms() }
    }

    /// A durable publish: waits for Redis to take it.
    pub(in crate::bus) async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        let (done, outcome) = oneshot::channel();
        self.enqueue(Outgoing { done: Some(done), ..Outgoing::to(channel, frame) }).await?;
        self.outcome(outcome).await
    }

    /// An ephemeral publish: waits only for room in the queue.
    pub(in crate::bus) async fn ephemeral(
        &self,
        channel: &Channel,
        frame: Arc<Frame>,
    ) -> Result<(), BusError> {
        self.enqueue(Outgoing::to(channel, frame)).await
    }

    /// An ephemeral publish with `extra` sent just before it in the same pipeline.
    pub(in crate::bus) async fn with(
        &self,
        channel: &Channel,
        frame: Arc<Frame>,
        extra: Cmd,
    ) -> Result<(), BusError> {
        self.enqueue(Outgoing { extra: Some(extra), ..Outgoing::to(channel, frame) }).await
    }

    /// A delta, ephemeral, its partial's writes right before its publish.
    pub(in crate::bus) async fn delta(&self, chunk: &Chunk<'_>) -> Result<(), BusError> {
        let partial = Write::of(chunk, self.partial_ttl_ms);
        let channel = Channel::Chat(chunk.chat_id.clone());
        self.enqueue(Outgoing { partial: Some(partial), ..Outgoing::to(&channel, chunk.frame()) }).await
    }

    /// Waits until the task has sent everything queued so far (so a partial
    /// is dropped only after its deltas' writes).
    pub(in crate::bus) async fn flushed(&self) -> Result<(), BusError> {
        let (done, outcome) = oneshot::channel();
        self.enqueue(Outgoing { publish: None, extra: None, partial: None, done: Some(done) }).await?;
        self.outcome(outcome).await
    }

    async fn enqueue(&self, outgoing: Outgoing) -> Result<(), BusError> {
        match tokio::time::timeout(self.timeout, self.sender.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(BusError::Unavailable("the bus is shut down".into())),
            Err(_) => Err(BusError::Unavailable("the publish queue stayed full".into())),
        }
    }

    /// The outcome the task tells; the task's own timeout bounds a pipeline,
    /// `2 × timeout` the wait for its turn.
    async fn outcome(&self, outcome: oneshot::Receiver<Result<(), String>>) -> Result<(), BusError> {
        match tokio::time::timeout(self.timeout * 2, outcome).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(why))) => Err(BusError::Unavailable(why)),
            Ok(Err(_)) => Err(BusError::Unavailable("the bus is shut down".into())),
            Err(_) => Err(BusError::Unavailable("redis did not confirm the publish in time".into())),
        }
    }
}

/// The task's state.
struct Publisher<T> {
    transport: T,
    queue: mpsc::Receiver<Outgoing>,
    batch: usize,
    timeout: Duration,
}

/// One pipeline of a batch: its routing hint and key, the commands, and the
/// `APPEND` checks by reply position.
struct Part {
    key: u32,
    hint: u16,
    pipeline: Pipeline,
    checks: Vec<(usize, Check)>,
}

impl<T: Transport> Publisher<T> {
    /// Sends what is queued, batch after batch, until cancelled or every
    /// sender is gone.
    async fn run(mut self, cancel: CancellationToken) {
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            let received = tokio::select! {
                _ = cancel.cancelled() => return,
                n = self.queue.recv_many(&mut batch, self.batch) => n,
            };
            if received == 0 {
                return;
            }
            self.transport.prepare(self.timeout).await;
            self.send(&mut batch).await;
        }
    }

    /// Sends one batch as its pipelines, together; tells every waiting writer
    /// its pipeline's outcome (a flush: the worst), and empties the batch.
    async fn send(&mut self, batch: &mut Vec<Outgoing>) {
        let (mut parts, owner) = self.split(batch);
        let pipelines = parts.iter_mut().map(|p| (std::mem::take(&mut p.pipeline), p.hint));
        let calls =
            pipelines.map(|(pipeline, hint)| within(self.timeout, self.transport.send(pipeline, hint)));
        let replies: Vec<Result<Vec<Value>, String>> =
            futures::future::join_all(calls).await.into_iter().map(server_errors).collect();
        if replies.iter().any(Result::is_err) {
            self.transport.failed();
        }
        let worst = replies.iter().find_map(|r| r.as_ref().err()).map_or(Ok(()), |e| Err(e.clone()));
        let mut unheard = 0usize;
        for (outgoing, part) in batch.drain(..).zip(owner) {
            let outcome = match part {
                Some(i) => replies[i].as_ref().map(|_| ()).map_err(Clone::clone),
                None => worst.clone(),
            };
            match outgoing.done {
                Some(done) => drop(done.send(outcome)),
                None => unheard += usize::from(outcome.is_err()),
            }
        }
        if let (Err(error), true) = (&worst, unheard > 0) {
            tracing::debug!(%error, frames = unheard, "ephemeral frames not published");
        }
        for (part, replies) in parts.into_iter().zip(replies) {
            if let Ok(replies) = replies {
                self.settle(part.checks, &replies).await;
            }
        }
    }

    /// Writes the batch into its pipelines, in queue order: each publish's
    /// extra command and partial writes, then the publish. Returns the
    /// pipelines and, per entry, its pipeline's index (`None`: a flush).
    fn split(&self, batch: &mut [Outgoing]) -> (Vec<Part>, Vec<Option<usize>>) {
        let mut parts: Vec<Part> = Vec::new();
        let entries = batch.len();
        let mut owner = Vec::with_capacity(entries);
        for outgoing in batch {
            let Some((target, frame)) = &outgoing.publish else {
                owner.push(None);
                continue;
            };
            let (key, hint) = self.transport.part_of(target, frame);
            let index = match parts.iter().position(|p| p.key == key) {
                Some(i) => i,
                None => {
                    // A delta is two commands (its partial's write, the publish).
                    let pipeline = Pipeline::with_capacity(2 * entries);
                    parts.push(Part { key, hint, pipeline, checks: Vec::new() });
                    parts.len() - 1
                }
            };
            let part = &mut parts[index];
            if let Some(extra) = outgoing.extra.take() {
                part.pipeline.add_command(extra);
            }
            if let Some(check) = outgoing.partial.take().and_then(|w| w.add_to(&mut part.pipeline)) {
                part.checks.push((part.pipeline.len() - 1, check));
            }
            part.pipeline.add_command(publish_command(T::PUBLISH, target, frame));
            owner.push(Some(index));
        }
        (parts, owner)
    }

    /// Drops the partials whose `APPEND` left them out of step; costs a
    /// round trip only then.
    async fn settle(&self, checks: Vec<(usize, Check)>, replies: &[Value]) {
        for (position, check) in checks {
            let Some(&Value::Int(length)) = replies.get(position) else { continue };
            let length = u64::try_from(length).unwrap_or(0);
            if let Err(e) = within(self.timeout, self.transport.settle(check, length)).await {
                tracing::warn!(error = %e, "an out-of-step partial not dropped; it expires on its own");
            }
        }
    }
}

/// A pipeline's replies, or why it failed: its own error or the first
/// command the server refused (e.g. `MOVED` once the client's retries ran out).
fn server_errors(sent: Result<Vec<Value>, BusError>) -> Result<Vec<Value>, String> {
    let replies = sent.map_err(|e| e.to_string())?;
    match replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
        Some(Value::ServerError(e)) => Err(format!("redis refused a publish: {e:?}")),
        _ => Ok(replies),
    }
}

/// The `PUBLISH` (or `SPUBLISH`) of `frame` to `target`, its buffer sized
/// once for the channel name and the wire form (an empty `Cmd` grows, and
/// copies, per argument).
fn publish_command(publish: &str, target: &Target, frame: &Frame) -> Cmd {
    let name = match target {
        Target::Chat | Target::Control => frame.chat_id.as_str().len() + 9,
        Target::TenantStatus(t) => t.as_str().len() + 17,
        Target::Named(name) => name.len(),
    };
    let mut cmd = Cmd::with_capacity(3, publish.len() + name + frame.wire_len());
    cmd.arg(publish).arg(Name(target, frame)).arg(Wire(frame));
    cmd
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

    #[test]
    fn a_refused_command_fails_its_pipeline() {
        let refused = redis::parse_redis_value(b"-MOVED 3999 127.0.0.1:6381\r\n").unwrap();
        assert!(server_errors(Ok(vec![Value::Int(1), refused])).is_err());
        assert_eq!(server_errors(Ok(vec![Value::Int(1)])), Ok(vec![Value::Int(1)]));
    }
}
