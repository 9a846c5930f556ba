//! The Redis bus: every node publishes through ONE publisher task that sends
//! its queued `PUBLISH`es in pipelined batches on one multiplexed connection
//! ([`publisher`], shared with the cluster bus; one Redis takes a whole batch
//! as one pipeline), and listens on ONE shared subscriber connection that
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
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub, PubSubSink, PubSubStream,
};
use redis::{Client, Pipeline, RedisResult, RedisWrite, ToRedisArgs, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{BusError, Channel, Frame};

pub(super) mod base;
mod listener;
pub(super) mod partials;
pub(super) mod publisher;
use base::{Base, Shared, Wording, within};
use listener::Listener;
use publisher::{Queue, Target, Transport};

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
    queue: Queue,
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
        let tasks = TaskTracker::new();
        tasks.spawn(listener.run(first));
        let queue = Queue::start(Single(publisher.clone()), &options, cancel.clone(), &tasks);
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
        self.queue.with(channel, frame, extra).await
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

// Its `base` and its `queue` (to the publisher task) serve the whole trait.
super::redis::base::bus_over_base_and_queue!(RedisBus);

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

/// The publisher's transport on one Redis: the whole batch as ONE pipeline
/// on the multiplexed publisher connection.
struct Single(ConnectionManager);

impl Transport for Single {
    const PUBLISH: &'static str = "PUBLISH";

    async fn prepare(&mut self, _timeout: Duration) {}

    fn part_of(&self, _target: &Target, _frame: &Frame) -> (u32, u16) {
        (0, 0)
    }

    fn send(
        &self,
        pipeline: Pipeline,
        _hint: u16,
    ) -> impl Future<Output = RedisResult<Vec<Value>>> + Send + 'static {
        let mut conn = self.0.clone();
        async move { conn.req_packed_commands(&pipeline, 0, pipeline.len()).await }
    }

    async fn settle(&self, check: partials::Check, length: u64) -> RedisResult<()> {
        check.settle(&mut self.0.clone(), length).await
    }

    fn failed(&mut self) {}
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
