//! The Redis bus: every node publishes through ONE publisher task that sends
//! its queued `PUBLISH`es in pipelined batches on one multiplexed connection
//! ([`publisher`]), and listens on ONE shared subscriber connection that
//! carries every channel any local task listens to.
//!
//! Redis is only the transport between nodes: the local subscribers live in
//! the same registry as [`super::memory::MemoryBus`]'s ([`super::fanout`]), to
//! which the listener hands every frame from Redis, routed by its header line
//! alone (see [`Frame::parse`]). A
//! channel is SUBSCRIBEd with its first local subscriber (every `subscribe`
//! waits for Redis to confirm it) and UNSUBSCRIBEd after the registry reports
//! its last one gone. One listener
//! task owns the subscriber connection and is the only one to send it
//! (un)subscribe commands, in batches; when the connection is lost it
//! reconnects with exponential backoff and jitter, subscribes every live
//! channel again, then bumps `resync` so every subscriber catches up from the
//! store (frames published meanwhile are lost to pub/sub, never to the store).
//! The partials of messages being streamed live in Redis too ([`partials`]),
//! written in the publisher's batch right before each delta's `PUBLISH`.
//! What this bus does alike with the cluster bus (`super::cluster`):
//! `subscribe`, `ping`, the partials' reads and drops, the listener's requests
//! and backoff pause, is written once in [`base`].
//!
//! Touches the Redis server it is given, nothing else.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub, PubSubSink, PubSubStream};
use redis::{Client, RedisWrite, ToRedisArgs};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::partials::{Chunk, Partial};
use super::{Bus, BusError, Channel, Frame, Subscription};
use crate::model::ChatId;

pub(super) mod base;
mod listener;
pub(super) mod partials;
mod publisher;
use base::{Base, Shared, Wording, within};
use listener::Listener;
use publisher::{Outgoing, Publisher};

/// How the Redis bus connects and recovers.
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// The longest a connect, publish, (un)subscribe or ping may take (2 s).
    pub timeout: Duration,
    /// How often the subscriber connection is pinged to find a dead peer (5 s).
    pub health_interval: Duration,
    /// The first pause before reconnecting (50 ms); doubles per failure.
    pub backoff_min: Duration,
    /// The longest pause between reconnect attempts (2 s).
    pub backoff_max: Duration,
    /// Channels per SUBSCRIBE when resubscribing after a reconnect (500).
    pub resubscribe_batch: usize,
    /// How many frames a local receiver may fall behind before it lags (1024).
    pub capacity: usize,
    /// The most `PUBLISH`es sent in one pipelined round trip (512).
    pub publish_batch: usize,
    /// How many publishes may wait for the publisher task (16,384); a writer
    /// waits for room beyond that.
    pub publish_queue: usize,
    /// How long a streamed message's partial outlives its last chunk at most,
    /// should its node die mid-answer (31 min: the default `max_run_secs` and
    /// a minute).
    pub partial_ttl: Duration,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            health_interval: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            resubscribe_batch: 500,
            capacity: 1024,
            publish_batch: 512,
            publish_queue: 16_384,
            partial_ttl: Duration::from_secs(31 * 60),
        }
    }
}

/// Pub/sub over Redis, one subscriber connection per node.
pub struct RedisBus {
    /// With the publisher connection, for `PING` and the partials' reads.
    base: Base<ConnectionManager>,
    /// To the publisher task.
    queue: mpsc::Sender<Outgoing>,
}

impl RedisBus {
    /// Connects the publisher and the subscriber connection to `url` and starts
    /// the listener task; fails if Redis does not answer in time.
    pub async fn connect(client: Client, options: RedisBusOptions) -> Result<RedisBus, BusError> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(options.backoff_max);
        let publisher =
            within(options.timeout, ConnectionManager::new_with_config(client.clone(), config)).await?;
        let first = within(options.timeout, client.get_async_pubsub()).await?;
        let cancel = CancellationToken::new();
        let (shared, inbox) = Shared::new(options.capacity, cancel.clone());
        let listener = Listener { client, shared: Arc::clone(&shared), options: options.clone(), inbox };
        let (queue, queued) = mpsc::channel(options.publish_queue.max(1));
        let sender = Publisher {
            connection: publisher.clone(),
            queue: queued,
            options: options.clone(),
            cancel: cancel.clone(),
        };
        let tasks = TaskTracker::new();
        tasks.spawn(listener.run(first));
        tasks.spawn(sender.run());
        tasks.close();
        let wording = Wording {
            down: "the subscriber connection to redis is down",
            silent: "redis did not answer in time",
        };
        let base = Base { shared, conn: publisher, options, cancel, tasks, wording };
        Ok(RedisBus { base, queue })
    }

    /// Publishes an ephemeral frame with `extra` sent just before it in the
    /// same pipelined batch (e.g. a key that must change with the frame);
    /// like [`Bus::publish_ephemeral`], it waits only for room in the queue.
    pub async fn publish_with(
        &self,
        channel: &Channel,
        frame: Arc<Frame>,
        extra: redis::Cmd,
    ) -> Result<(), BusError> {
        self.enqueue(Outgoing { extra: Some(extra), ..Outgoing::to(channel, frame) }).await
    }

    /// Waits until the publisher task has sent everything queued so far (so
    /// a partial is dropped only after its deltas' writes).
    async fn flushed(&self) -> Result<(), BusError> {
        let (done, outcome) = oneshot::channel();
        self.enqueue(Outgoing::flush(done)).await?;
        outcome_of(self.base.options.timeout, outcome).await
    }

    /// Queues a publish for the publisher task.
    async fn enqueue(&self, outgoing: Outgoing) -> Result<(), BusError> {
        let queued = tokio::time::timeout(self.base.options.timeout, self.queue.send(outgoing)).await;
        match queued {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(BusError::Unavailable("the bus is shut down".into())),
            Err(_) => Err(BusError::Unavailable("the publish queue stayed full".into())),
        }
    }

    /// Stops the listener task and waits for it (dropping the bus stops it too).
    pub async fn shutdown(&self) {
        self.base.shutdown().await;
    }

    /// How many channels have live local subscribers (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.base.channel_count()
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        let (done, outcome) = oneshot::channel();
        self.enqueue(Outgoing { done: Some(done), ..Outgoing::to(channel, frame) }).await?;
        outcome_of(self.base.options.timeout, outcome).await
    }

    async fn publish_ephemeral(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        self.enqueue(Outgoing::to(channel, frame)).await
    }

    async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError> {
        self.base.subscribe(channel).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.base.ping().await
    }

    /// Queued like [`Bus::publish_ephemeral`], its partial's writes in the
    /// same batch right before its `PUBLISH`.
    async fn publish_delta(&self, chunk: &Chunk<'_>) -> Result<(), BusError> {
        let partial = partials::Write::of(chunk, self.base.options.partial_ttl_ms());
        let channel = Channel::Chat(chunk.chat_id.clone());
        self.enqueue(Outgoing { partial: Some(partial), ..Outgoing::to(&channel, chunk.frame()) }).await
    }

    async fn partials(&self, chat_id: &ChatId) -> Result<Vec<Partial>, BusError> {
        self.base.partials(chat_id).await
    }

    /// After the deltas already queued: they may still write the partial.
    async fn forget_partials(&self, chat_id: &ChatId, message_id: Option<&str>) -> Result<(), BusError> {
        self.flushed().await?;
        self.base.forget_partials(chat_id, message_id).await
    }
}

impl RedisBusOptions {
    /// `partial_ttl` in milliseconds, at least one.
    pub(crate) fn partial_ttl_ms(&self) -> u64 {
        u64::try_from(self.partial_ttl.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

/// A frame's wire form (header line, then the JSON; see
/// [`Frame::write_wire`]) as a Redis argument, written into the command.
pub(crate) struct Wire<'a>(pub(crate) &'a Frame);

impl ToRedisArgs for Wire<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut w = out.writer_for_next_arg();
        // Writing to the command's own buffer cannot fail.
        let _ = self.0.write_wire(&mut w);
    }
}

/// The outcome of a queued batch, as the publisher task tells it; its own
/// timeout bounds the batch, `2 × timeout` the wait for its turn.
async fn outcome_of(
    timeout: Duration,
    outcome: oneshot::Receiver<Result<(), String>>,
) -> Result<(), BusError> {
    match tokio::time::timeout(timeout * 2, outcome).await {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(why))) => Err(BusError::Unavailable(why)),
        Ok(Err(_)) => Err(BusError::Unavailable("the bus is shut down".into())),
        Err(_) => Err(BusError::Unavailable("redis did not confirm the publish in time".into())),
    }
}

/// One subscriber connection and what Redis sends on it.
struct Link {
    sink: PubSubSink,
    stream: PubSubStream,
    subscribed: HashSet<String>,
}

impl Link {
    fn new(pubsub: PubSub) -> Link {
        let (sink, stream) = pubsub.split();
        Link { sink, stream, subscribed: HashSet::new() }
    }

    async fn subscribe(&mut self, names: &[String], options: &RedisBusOptions) -> Result<(), BusError> {
        for batch in names.chunks(options.resubscribe_batch.max(1)) {
            within(options.timeout, self.sink.subscribe(batch)).await?;
            self.subscribed.extend(batch.iter().cloned());
        }
        Ok(())
    }

    async fn unsubscribe(&mut self, names: &[String], options: &RedisBusOptions) -> Result<(), BusError> {
        for batch in names.chunks(options.resubscribe_batch.max(1)) {
            within(options.timeout, self.sink.unsubscribe(batch)).await?;
            for name in batch {
                self.subscribed.remove(name);
            }
        }
        Ok(())
    }
}
