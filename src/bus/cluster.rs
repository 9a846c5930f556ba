//! The bus on a Redis Cluster (`redis.cluster = true`): sharded pub/sub
//! (`SPUBLISH`/`SSUBSCRIBE`, Redis 7), so a channel lives on the shard that
//! owns its slot and one chat's traffic touches one shard only (a chat's
//! channel `fg:{chat_…}` shares its keys' hash tag; a tenant's status channel
//! has a slot of its own).
//!
//! Like [`super::redis::RedisBus`], Redis is only the transport: the local
//! subscribers live in the node's registry ([`super::fanout`]). What both
//! buses do alike (`subscribe`, `ping`, the partials' reads and drops, the
//! listener's requests and backoff pause) is written once in
//! `super::redis::base`, and so is the publisher (`super::redis::publisher`):
//! ONE task per node sends the queued `SPUBLISH`es in pipelined batches, a
//! batch split into one pipeline per master by the slot map of [`shards`],
//! the pipelines sent together. The cluster's own part is here: that split
//! and the push listener.
//!
//! The node keeps ONE subscriber connection to the cluster (the cluster
//! client's RESP3 connection, one socket per master); its pushes are routed
//! straight into the registry as they arrive, by the header line of the Redis
//! bus's wire form alone ([`Frame::parse`]; the body is handed on unparsed).
//! One listener task owns the (un)subscribe commands. When a master's connection drops (a failover, a
//! restart) or a channel's slot moves away, the listener resubscribes every
//! live channel with backoff and then bumps `resync`, so every subscriber
//! catches up from the store by seq. The partials of streamed messages are
//! the Redis bus's (`super::redis::partials`), written in the publisher's
//! batch right before each delta's `SPUBLISH`: a chat's keys and channel
//! share one slot, hence one pipeline.
//!
//! Touches the Redis Cluster it is given, nothing else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::redis::RedisBusOptions;
use super::redis::base::{Base, Inbox, Request, Shared, Wording, jitter, within};
use super::redis::publisher::Queue;
use super::{BusError, Frame};

mod shards;

/// Sharded pub/sub over a Redis Cluster, one subscriber connection per node.
pub struct ClusterBus {
    /// With the publisher connection (`PING`, the partials' reads and drops).
    base: Base<ClusterConnection>,
    /// To the publisher task (`SPUBLISH`es and the partials' writes).
    queue: Queue,
}

impl ClusterBus {
    /// Connects the publisher and the subscriber connection through any of
    /// `seeds` (`redis://host:port` each) and starts the listener task.
    pub async fn connect(seeds: &[String], options: RedisBusOptions) -> Result<ClusterBus, BusError> {
        let cancel = CancellationToken::new();
        let (shared, inbox) = Shared::new(options.capacity, cancel.clone());
        // Signalled when a subscription may have been lost.
        let lost = Arc::new(Notify::new());
        let builder = || {
            ClusterClientBuilder::new(seeds.to_vec())
                .connection_timeout(options.timeout)
                .response_timeout(options.timeout)
                .retries(2)
                .max_retry_wait(u64::try_from(options.backoff_max.as_millis()).unwrap_or(u64::MAX))
        };
        let publisher = within(options.timeout, builder().build()?.get_async_connection()).await?;
        let (weak, signal) = (Arc::downgrade(&shared), Arc::clone(&lost));
        let pushes = move |push: PushInfo| -> Result<(), ()> {
            if let Some(shared) = weak.upgrade() {
                on_push(&shared, &signal, push);
            }
            Ok(())
        };
        let client = builder().use_protocol(redis::ProtocolVersion::RESP3).push_sender(pushes).build()?;
        let subscriber = within(options.timeout, client.get_async_connection()).await?;
        let listener = Listener {
            subscriber,
            shared: Arc::clone(&shared),
            lost,
            options: options.clone(),
            inbox,
            subscribed: HashSet::new(),
        };
        let tasks = TaskTracker::new();
        tasks.spawn(listener.run());
        let queue = Queue::start(shards::Shards::new(publisher.clone()), &options, cancel.clone(), &tasks);
        tasks.close();
        let wording = Wording {
            down: "a subscriber connection to the redis cluster is down",
            silent: "the redis cluster did not answer in time",
        };
        Ok(ClusterBus { base: Base { shared, conn: publisher, options, cancel, tasks, wording }, queue })
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
super::redis::base::bus_over_base_and_queue!(ClusterBus);

/// Handles one push from the subscriber connection, on the connection's own
/// task: never blocks (the registry's delivery does not await).
fn on_push(shared: &Shared, lost: &Notify, mut push: PushInfo) {
    // The payload's bytes are taken, not copied: a frame keeps them as they came.
    let payload = match (&push.kind, push.data.get_mut(1)) {
        (PushKind::SMessage, Some(Value::BulkString(payload))) => Some(std::mem::take(payload)),
        _ => None,
    };
    let channel = match push.data.first() {
        Some(Value::BulkString(name)) => std::str::from_utf8(name).ok(),
        _ => None,
    };
    match push.kind {
        PushKind::SMessage => {
            let (Some(name), Some(payload)) = (channel, payload) else { return };
            if !shared.channels.is_live(name) {
                return; // Unsubscribing: nobody here to parse it for.
            }
            match Frame::parse(Bytes::from(payload)) {
                Ok(frame) => shared.channels.deliver(name, frame),
                Err(e) => tracing::warn!(channel = name, error = %e, "dropped a frame that is not an event"),
            }
        }
        PushKind::Disconnection => {
            shared.connected.send_replace(false);
            lost.notify_one();
        }
        // The server drops a shard channel whose slot moved (or whose master
        // became a replica): subscribe it again where it lives now.
        PushKind::SUnsubscribe if channel.is_some_and(|name| shared.channels.is_live(name)) => {
            lost.notify_one();
        }
        _ => {}
    }
}

/// The task that owns the subscriber connection's (un)subscribe commands.
struct Listener {
    subscriber: ClusterConnection,
    shared: Arc<Shared>,
    /// Signalled by the push handler when a subscription may have been lost.
    lost: Arc<Notify>,
    options: RedisBusOptions,
    inbox: Inbox,
    /// The channels SSUBSCRIBEd and not released since.
    subscribed: HashSet<String>,
}

impl Listener {
    /// Serves requests and heals lost subscriptions until cancelled.
    async fn run(mut self) {
        loop {
            tokio::select! {
                request = self.inbox.next() => {
                    let Some(first) = request else { return };
                    let batch = self.inbox.drain(first, self.options.resubscribe_batch);
                    self.apply(batch).await;
                }
                _ = self.lost.notified() => {
                    if !self.heal().await {
                        return;
                    }
                }
            }
        }
    }

    /// Subscribes what is wanted and not yet subscribed (one SSUBSCRIBE per
    /// channel: a sharded subscription names channels of one slot), answers
    /// the waiters, then unsubscribes released channels nobody took up again.
    async fn apply(&mut self, batch: Vec<Request>) {
        let mut waiting: HashMap<String, Vec<oneshot::Sender<Result<(), String>>>> = HashMap::new();
        let mut released = HashSet::new();
        for request in batch {
            match request {
                Request::Subscribe { name, done } => waiting.entry(name).or_default().push(done),
                Request::Release { name } => drop(released.insert(name)),
            }
        }
        let wanted: Vec<String> = waiting.keys().filter(|n| !self.subscribed.contains(*n)).cloned().collect();
        let outcomes = self.each(&wanted, Sharded::Subscribe).await;
        for (name, outcome) in wanted.into_iter().zip(outcomes) {
            if let Err(e) = outcome {
                for done in waiting.remove(&name).unwrap_or_default() {
                    let _ = done.send(Err(e.to_string()));
                }
                continue;
            }
            self.subscribed.insert(name);
        }
        for done in waiting.into_values().flatten() {
            let _ = done.send(Ok(()));
        }
        let idle: Vec<String> = released
            .into_iter()
            .filter(|name| self.subscribed.contains(name) && !self.shared.channels.is_live(name))
            .collect();
        for name in &idle {
            self.subscribed.remove(name);
        }
        // A failed SUNSUBSCRIBE only leaves frames nobody here parses.
        let _ = self.each(&idle, Sharded::Unsubscribe).await;
    }

    /// One (un)subscribe per channel, sent together, each bounded.
    async fn each(&self, names: &[String], what: Sharded) -> Vec<Result<(), BusError>> {
        let calls = names.iter().map(|name| {
            let mut conn = self.subscriber.clone();
            let limit = self.options.timeout;
            async move {
                match what {
                    Sharded::Subscribe => within(limit, conn.ssubscribe(name)).await,
                    Sharded::Unsubscribe => within(limit, conn.sunsubscribe(name)).await,
                }
            }
        });
        futures::future::join_all(calls).await
    }

    /// Subscribes every live channel again, retrying with backoff until all
    /// are confirmed, then bumps `resync`; `false` if cancelled first.
    async fn heal(&mut self) -> bool {
        tracing::warn!("a redis cluster subscriber connection was lost; resubscribing");
        let mut delay = self.options.backoff_min;
        loop {
            if !self.inbox.pause(jitter(delay), "the bus is resubscribing to the redis cluster").await {
                return false;
            }
            let live = self.shared.channels.live();
            let failed = self.each(&live, Sharded::Subscribe).await.into_iter().find_map(Result::err);
            match failed {
                None => {
                    self.subscribed = live.into_iter().collect();
                    self.shared.connected.send_replace(true);
                    self.shared.resync.send_modify(|n| *n = n.wrapping_add(1));
                    tracing::info!(
                        channels = self.subscribed.len(),
                        "redis cluster subscriptions restored; subscribers resync"
                    );
                    return true;
                }
                Some(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "redis cluster resubscribe failed");
                    delay = (delay * 2).min(self.options.backoff_max);
                }
            }
        }
    }
}

/// Which sharded command [`Listener::each`] sends.
#[derive(Clone, Copy)]
enum Sharded {
    Subscribe,
    Unsubscribe,
}
