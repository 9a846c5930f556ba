//! The bus on a Redis Cluster (`redis.cluster = true`): sharded pub/sub
//! (`SPUBLISH`/`SSUBSCRIBE`, Redis 7), so a channel lives on the shard that
//! owns its slot and one chat's traffic touches one shard only (a chat's
//! channel `fg:{chat_…}` shares its keys' hash tag; a tenant's status channel
//! has a slot of its own).
//!
//! Like [`super::redis::RedisBus`], Redis is only the transport: the local
//! subscribers live in the node's registry ([`super::fanout`]). The node keeps
//! ONE subscriber connection to the cluster (the cluster client's RESP3
//! connection, one socket per master); its pushes are routed straight into the
//! registry as they arrive, by the header line of the Redis bus's wire form
//! alone ([`Frame::parse`]; the body is handed on unparsed). One listener task owns the
//! (un)subscribe commands. When a master's connection drops (a failover, a
//! restart) or a channel's slot moves away, the listener resubscribes every
//! live channel with backoff and then bumps `resync`, so every subscriber
//! catches up from the store by seq. The partials of streamed messages are
//! the Redis bus's (`super::redis::partials`), published with `SPUBLISH` in
//! the same pipeline: a chat's keys and channel share one slot.
//!
//! Touches the Redis Cluster it is given, nothing else.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fanout::{Change, Fanout};
use super::partials::{Chunk, Partial};
use super::redis::{RedisBusOptions, Wire, partials};
use super::{Bus, BusError, Channel, Frame, Subscription};
use crate::model::ChatId;

/// What the bus handle, the push handler and the listener task share.
struct Shared {
    /// The local subscribers, by wire name.
    channels: Fanout<String>,
    /// Bumped after every resubscription.
    resync: watch::Sender<u64>,
    /// Whether every master's subscriber connection is believed up.
    connected: watch::Sender<bool>,
    /// Signalled when a subscription may have been lost.
    lost: Notify,
    /// To the listener task.
    requests: mpsc::UnboundedSender<Request>,
}

/// What the listener task is asked.
enum Request {
    /// Make sure the cluster sends us `name`; answer once it does.
    Subscribe { name: String, done: oneshot::Sender<Result<(), String>> },
    /// The last local subscriber of `name` left (unless one came back since).
    Release { name: String },
}

/// Sharded pub/sub over a Redis Cluster, one subscriber connection per node.
pub struct ClusterBus {
    shared: Arc<Shared>,
    publisher: ClusterConnection,
    options: RedisBusOptions,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl ClusterBus {
    /// Connects the publisher and the subscriber connection through any of
    /// `seeds` (`redis://host:port` each) and starts the listener task.
    pub async fn connect(seeds: &[String], options: RedisBusOptions) -> Result<ClusterBus, BusError> {
        let (requests, inbox) = mpsc::unbounded_channel();
        let release = requests.clone();
        let channels = Fanout::with_hook(options.capacity, move |change| {
            if let Change::Last(name) = change {
                drop(release.send(Request::Release { name }));
            }
        });
        let shared = Arc::new(Shared {
            channels,
            resync: watch::channel(0).0,
            connected: watch::channel(true).0,
            lost: Notify::new(),
            requests,
        });
        let builder = || {
            ClusterClientBuilder::new(seeds.to_vec())
                .connection_timeout(options.timeout)
                .response_timeout(options.timeout)
                .retries(2)
                .max_retry_wait(u64::try_from(options.backoff_max.as_millis()).unwrap_or(u64::MAX))
        };
        let publisher = within(options.timeout, builder().build()?.get_async_connection()).await?;
        let weak = Arc::downgrade(&shared);
        let pushes = move |push: PushInfo| -> Result<(), ()> {
            if let Some(shared) = weak.upgrade() {
                on_push(&shared, push);
            }
            Ok(())
        };
        let client = builder().use_protocol(redis::ProtocolVersion::RESP3).push_sender(pushes).build()?;
        let subscriber = within(options.timeout, client.get_async_connection()).await?;
        let cancel = CancellationToken::new();
        let listener = Listener {
            subscriber,
            shared: Arc::clone(&shared),
            options: options.clone(),
            inbox,
            cancel: cancel.clone(),
            subscribed: HashSet::new(),
        };
        let tasks = TaskTracker::new();
        tasks.spawn(listener.run());
        tasks.close();
        Ok(ClusterBus { shared, publisher, options, cancel, tasks })
    }

    /// Stops the listener task and waits for it (dropping the bus stops it too).
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }

    /// How many channels have live local subscribers (for metrics and tests).
    pub fn channel_count(&self) -> usize {
        self.shared.channels.channel_count()
    }
}

impl Drop for ClusterBus {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[async_trait]
impl Bus for ClusterBus {
    async fn publish(&self, channel: &Channel, frame: Arc<Frame>) -> Result<(), BusError> {
        let mut conn = self.publisher.clone();
        let cmd = redis::cmd("SPUBLISH").arg(channel.name()).arg(Wire(&frame)).to_owned();
        let _receivers: i64 = within(self.options.timeout, cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError> {
        let name = channel.name();
        // Before the SSUBSCRIBE: a resubscription from here on is seen as a change.
        let resync = self.shared.resync.subscribe();
        let (receiver, guard) = self.shared.channels.subscribe(&name);
        let (done, confirmed) = oneshot::channel();
        let shut = || BusError::Unavailable("the bus is shut down".into());
        self.shared.requests.send(Request::Subscribe { name, done }).map_err(|_| shut())?;
        match tokio::time::timeout(self.options.timeout * 2, confirmed).await {
            Ok(Ok(Ok(()))) => Ok(Subscription { receiver, resync, guard: Box::new(guard) }),
            Ok(Ok(Err(why))) => Err(BusError::Unavailable(why)),
            Ok(Err(_)) => Err(shut()),
            Err(_) => Err(BusError::Unavailable("redis did not confirm the subscription in time".into())),
        }
    }

    async fn ping(&self) -> Result<(), BusError> {
        if !*self.shared.connected.borrow() {
            return Err(BusError::Unavailable("a subscriber connection to the redis cluster is down".into()));
        }
        let mut conn = self.publisher.clone();
        let _pong: String = within(self.options.timeout, redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    async fn publish_delta(&self, chunk: &Chunk<'_>) -> Result<(), BusError> {
        let frame = chunk.frame();
        let channel = Channel::Chat(chunk.chat_id.clone()).name();
        let ttl_ms = self.options.partial_ttl_ms();
        let mut conn = self.publisher.clone();
        let call = partials::publish_delta(&mut conn, "SPUBLISH", &channel, chunk, Wire(&frame), ttl_ms);
        within(self.options.timeout, call).await
    }

    async fn partials(&self, chat_id: &ChatId) -> Result<Vec<Partial>, BusError> {
        let mut conn = self.publisher.clone();
        match tokio::time::timeout(self.options.timeout, partials::read(&mut conn, chat_id)).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Unavailable("the redis cluster did not answer in time".into())),
        }
    }

    async fn forget_partials(&self, chat_id: &ChatId, message_id: Option<&str>) -> Result<(), BusError> {
        let mut conn = self.publisher.clone();
        within(self.options.timeout, partials::forget(&mut conn, chat_id, message_id)).await
    }
}

/// Handles one push from the subscriber connection, on the connection's own
/// task: never blocks (the registry's delivery does not await).
fn on_push(shared: &Shared, push: PushInfo) {
    let channel = match push.data.first() {
        Some(Value::BulkString(name)) => std::str::from_utf8(name).ok(),
        _ => None,
    };
    match push.kind {
        PushKind::SMessage => {
            let (Some(name), Some(Value::BulkString(payload))) = (channel, push.data.get(1)) else { return };
            if !shared.channels.is_live(name) {
                return; // Unsubscribing: nobody here to parse it for.
            }
            match Frame::parse(Bytes::copy_from_slice(payload)) {
                Ok(frame) => shared.channels.deliver(name, frame),
                Err(e) => tracing::warn!(channel = name, error = %e, "dropped a frame that is not an event"),
            }
        }
        PushKind::Disconnection => {
            shared.connected.send_replace(false);
            shared.lost.notify_one();
        }
        // The server drops a shard channel whose slot moved (or whose master
        // became a replica): subscribe it again where it lives now.
        PushKind::SUnsubscribe if channel.is_some_and(|name| shared.channels.is_live(name)) => {
            shared.lost.notify_one();
        }
        _ => {}
    }
}

/// The task that owns the subscriber connection's (un)subscribe commands.
struct Listener {
    subscriber: ClusterConnection,
    shared: Arc<Shared>,
    options: RedisBusOptions,
    inbox: mpsc::UnboundedReceiver<Request>,
    cancel: CancellationToken,
    /// The channels SSUBSCRIBEd and not released since.
    subscribed: HashSet<String>,
}

impl Listener {
    /// Serves requests and heals lost subscriptions until cancelled.
    async fn run(mut self) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                request = self.inbox.recv() => {
                    let Some(first) = request else { return };
                    let batch = self.drain(first);
                    self.apply(batch).await;
                }
                _ = self.shared.lost.notified() => {
                    if !self.heal().await {
                        return;
                    }
                }
            }
        }
    }

    /// `first` and the requests already queued behind it (one batch).
    fn drain(&mut self, first: Request) -> Vec<Request> {
        let mut batch = vec![first];
        while batch.len() < self.options.resubscribe_batch.max(1) {
            match self.inbox.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        batch
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
            if !self.pause(jitter(delay)).await {
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

    /// Waits `pause`, refusing subscriptions meanwhile; `false` if cancelled.
    async fn pause(&mut self, pause: Duration) -> bool {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = &mut sleep => return true,
                request = self.inbox.recv() => match request {
                    Some(Request::Subscribe { done, .. }) => {
                        let _ = done.send(Err("the bus is resubscribing to the redis cluster".into()));
                    }
                    // The resubscription covers only the live channels.
                    Some(Request::Release { .. }) => {}
                    None => return false,
                },
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

/// Awaits a Redis call for at most `limit`.
async fn within<T>(limit: Duration, call: impl Future<Output = RedisResult<T>>) -> Result<T, BusError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BusError::Unavailable(format!("redis did not answer within {limit:?}"))),
    }
}

/// A pause between half and all of `delay`, so nodes do not resubscribe in step.
fn jitter(delay: Duration) -> Duration {
    let full = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(full / 2..=full))
}
