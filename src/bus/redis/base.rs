//! What the Redis bus ([`super::RedisBus`]) and the cluster bus
//! (`crate::bus::cluster::ClusterBus`) have in common, written once: the
//! state a bus handle shares with its listener task ([`Shared`]: the local
//! registry, `resync`, whether the subscriber side is up), the requests a
//! `subscribe` sends that task and the task's side of them ([`Inbox`]:
//! batches, the backoff pause that refuses subscriptions), and the common
//! half of the bus handle ([`Base`]: `subscribe`, `ping`, the partials' reads
//! and drops, shutdown). The publisher both share is [`super::publisher`];
//! what differs stays with each bus: how a batch is split (one pipeline, or
//! one per master) and how its listener talks to the server.
//!
//! Touches the Redis connection it is given (`PING`, the partials' keys),
//! nothing else.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use redis::aio::ConnectionLike;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{RedisBusOptions, partials};
use crate::bus::fanout::{Change, Fanout};
use crate::bus::partials::Partial;
use crate::bus::{BusError, Channel, Subscription};
use crate::model::ChatId;

/// What the bus handle and its listener task share.
pub(in crate::bus) struct Shared {
    /// The local subscribers, by wire name.
    pub(in crate::bus) channels: Fanout<String>,
    /// Bumped after every reconnect or resubscription.
    pub(in crate::bus) resync: watch::Sender<u64>,
    /// Whether the subscriber connection (on a cluster, every master's) is
    /// believed up.
    pub(in crate::bus) connected: watch::Sender<bool>,
    /// To the listener task.
    requests: mpsc::UnboundedSender<Request>,
}

/// What the listener task is asked.
pub(in crate::bus) enum Request {
    /// Make sure Redis sends us `name`; answer once it does.
    Subscribe { name: String, done: oneshot::Sender<Result<(), String>> },
    /// The last local subscriber of `name` left (unless one came back since).
    Release { name: String },
}

impl Shared {
    /// The state of a bus whose local receivers may fall `capacity` frames
    /// behind, and the listener's side of its requests, closed by `cancel`.
    pub(in crate::bus) fn new(capacity: usize, cancel: CancellationToken) -> (Arc<Shared>, Inbox) {
        let (requests, inbox) = mpsc::unbounded_channel();
        let release = requests.clone();
        let channels = Fanout::with_hook(capacity, move |change| match change {
            // Nothing to do yet: every `subscribe`, first or not, asks the
            // listener itself, as it must wait for Redis to confirm.
            Change::First(_) => {}
            Change::Last(name) => drop(release.send(Request::Release { name })),
        });
        let shared =
            Shared { channels, resync: watch::channel(0).0, connected: watch::channel(true).0, requests };
        (Arc::new(shared), Inbox { requests: inbox, cancel })
    }
}

/// The listener task's side of the requests: what it is asked, and when to stop.
pub(in crate::bus) struct Inbox {
    requests: mpsc::UnboundedReceiver<Request>,
    cancel: CancellationToken,
}

impl Inbox {
    /// The next request; `None` once the bus is cancelled or gone.
    pub(in crate::bus) async fn next(&mut self) -> Option<Request> {
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            request = self.requests.recv() => request,
        }
    }

    /// `first` and the requests already queued behind it, `max` at most (one batch).
    pub(in crate::bus) fn drain(&mut self, first: Request, max: usize) -> Vec<Request> {
        let mut batch = vec![first];
        while batch.len() < max.max(1) {
            match self.requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        batch
    }

    /// Waits `pause`, refusing subscriptions meanwhile with `refusal`;
    /// `false` if cancelled.
    pub(in crate::bus) async fn pause(&mut self, pause: Duration, refusal: &str) -> bool {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = &mut sleep => return true,
                request = self.requests.recv() => match request {
                    Some(Request::Subscribe { done, .. }) => {
                        let _ = done.send(Err(refusal.to_owned()));
                    }
                    // What comes next (a connection, a resubscription)
                    // covers only the live channels.
                    Some(Request::Release { .. }) => {}
                    None => return false,
                },
            }
        }
    }
}

/// How a bus names what failed in its errors.
pub(in crate::bus) struct Wording {
    /// When the subscriber side is down.
    pub(in crate::bus) down: &'static str,
    /// When a read of the partials was not answered in time.
    pub(in crate::bus) silent: &'static str,
}

/// The half of a bus handle both buses share: the state, a connection `C`
/// for `PING` and the partials, the tasks and what stops them.
pub(in crate::bus) struct Base<C> {
    pub(in crate::bus) shared: Arc<Shared>,
    /// The publisher connection.
    pub(in crate::bus) conn: C,
    pub(in crate::bus) options: RedisBusOptions,
    pub(in crate::bus) cancel: CancellationToken,
    pub(in crate::bus) tasks: TaskTracker,
    pub(in crate::bus) wording: Wording,
}

impl<C: ConnectionLike + Clone + Send + Sync> Base<C> {
    /// Subscribes locally, then waits for the listener to have Redis confirm.
    pub(in crate::bus) async fn subscribe(&self, channel: &Channel) -> Result<Subscription, BusError> {
        let name = channel.name();
        // Before the (S)SUBSCRIBE: a reconnect from here on is seen as a change.
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

    /// Whether the subscriber side is up and the publisher answers `PING`.
    pub(in crate::bus) async fn ping(&self) -> Result<(), BusError> {
        if !*self.shared.connected.borrow() {
            return Err(BusError::Unavailable(self.wording.down.into()));
        }
        let mut conn = self.conn.clone();
        let _pong: String = within(self.options.timeout, redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    /// The chat's partials ([`partials::read`]), bounded by the timeout.
    pub(in crate::bus) async fn partials(&self, chat_id: &ChatId) -> Result<Vec<Partial>, BusError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.options.timeout, partials::read(&mut conn, chat_id)).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Unavailable(self.wording.silent.into())),
        }
    }

    /// Drops one message's partial, or (with `None`) all of the chat's.
    pub(in crate::bus) async fn forget_partials(
        &self,
        chat_id: &ChatId,
        message_id: Option<&str>,
    ) -> Result<(), BusError> {
        let mut conn = self.conn.clone();
        within(self.options.timeout, partials::forget(&mut conn, chat_id, message_id)).await
    }
}

impl<C> Base<C> {
    /// Stops the bus's tasks and waits for them (dropping the bus stops them too).
    pub(in crate::bus) async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }

    /// How many channels have live local subscribers.
    pub(in crate::bus) fn channel_count(&self) -> usize {
        self.shared.channels.channel_count()
    }
}

impl<C> Drop for Base<C> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Awaits a Redis call for at most `limit`.
pub(in crate::bus) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = RedisResult<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BusError::Unavailable(format!("redis did not answer within {limit:?}"))),
    }
}

/// A pause between half and all of `delay`, so nodes do not reconnect or
/// resubscribe in step.
pub(in crate::bus) fn jitter(delay: Duration) -> Duration {
    let full = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(rand::random_range(full / 2..=full))
}

/// Implements [`crate::bus::Bus`] for a bus made of a `base: Base<_>` and a
/// `queue` to its publisher task: the Redis bus and the cluster bus alike.
/// A delta is queued like an ephemeral frame, its partial's writes in the
/// same pipeline right before its publish; forgetting partials waits for
/// the deltas already queued (they may still write them).
macro_rules! bus_over_base_and_queue {
    ($bus:ty) => {
        #[async_trait::async_trait]
        impl crate::bus::Bus for $bus {
            async fn publish(
                &self,
                channel: &crate::bus::Channel,
                frame: std::sync::Arc<crate::bus::Frame>,
            ) -> Result<(), crate::bus::BusError> {
                self.queue.publish(channel, frame).await
            }

            async fn publish_ephemeral(
                &self,
                channel: &crate::bus::Channel,
                frame: std::sync::Arc<crate::bus::Frame>,
            ) -> Result<(), crate::bus::BusError> {
                self.queue.ephemeral(channel, frame).await
            }

            async fn subscribe(
                &self,
                channel: &crate::bus::Channel,
            ) -> Result<crate::bus::Subscription, crate::bus::BusError> {
                self.base.subscribe(channel).await
            }

            async fn ping(&self) -> Result<(), crate::bus::BusError> {
                self.base.ping().await
            }

            async fn publish_delta(
                &self,
                chunk: &crate::bus::partials::Chunk<'_>,
            ) -> Result<(), crate::bus::BusError> {
                self.queue.delta(chunk).await
            }

            async fn partials(
                &self,
                chat_id: &crate::model::ChatId,
            ) -> Result<Vec<crate::bus::partials::Partial>, crate::bus::BusError> {
                self.base.partials(chat_id).await
            }

            async fn forget_partials(
                &self,
                chat_id: &crate::model::ChatId,
                message_id: Option<&str>,
            ) -> Result<(), crate::bus::BusError> {
                self.queue.flushed().await?;
                self.base.forget_partials(chat_id, message_id).await
            }
        }
    };
}
pub(crate) use bus_over_base_and_queue;
