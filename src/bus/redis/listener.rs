//! The listener task of the Redis bus: the sole owner of the node's subscriber
//! connection. It hands every message to the local registry, turns
//! subscribe/release requests into batched SUBSCRIBE/UNSUBSCRIBE, pings the
//! connection, and on loss reconnects (exponential backoff with jitter),
//! resubscribes every live channel and bumps `resync`.
//!
//! Touches the subscriber connection and the bus's shared state; reads the
//! registry only through its methods, which never await.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use redis::Client;
use redis::aio::PubSub;
use tokio::time::MissedTickBehavior;

use super::base::{Inbox, Request, Shared, jitter, within};
use super::{Link, RedisBusOptions};
use crate::bus::{BusError, Frame};

/// The task's state.
pub(super) struct Listener {
    pub(super) client: Client,
    pub(super) shared: Arc<Shared>,
    pub(super) options: RedisBusOptions,
    pub(super) inbox: Inbox,
}

impl Listener {
    /// Serves `first`, then every connection after it, until cancelled.
    pub(super) async fn run(mut self, first: PubSub) {
        let mut link = Link::new(first);
        loop {
            let lost = self.serve(&mut link).await;
            self.shared.connected.send_replace(false);
            if !lost {
                return;
            }
            match self.reconnect().await {
                Some(next) => link = next,
                None => return,
            }
            self.shared.connected.send_replace(true);
            self.shared.resync.send_modify(|n| *n = n.wrapping_add(1));
            tracing::info!(
                channels = link.subscribed.len(),
                "redis subscriber connection restored; subscribers resync"
            );
        }
    }

    /// Serves one connection; `true` when it was lost, `false` when cancelled.
    async fn serve(&mut self, link: &mut Link) -> bool {
        let mut health = tokio::time::interval(self.options.health_interval);
        health.set_missed_tick_behavior(MissedTickBehavior::Delay);
        health.reset();
        loop {
            tokio::select! {
                message = link.stream.next() => match message {
                    Some(message) => self.route(&message),
                    None => {
                        tracing::warn!("redis subscriber connection lost");
                        return true;
                    }
                },
                request = self.inbox.next() => {
                    let Some(first) = request else { return false };
                    let batch = self.inbox.drain(first, self.options.resubscribe_batch);
                    if let Err(e) = self.apply(link, batch).await {
                        tracing::warn!(error = %e, "redis (un)subscribe failed");
                        return true;
                    }
                }
                _ = health.tick() => {
                    // Subscribed, Redis answers `["pong", ""]`, not `+PONG`: any reply will do.
                    let pong = within(self.options.timeout, link.sink.ping::<redis::Value>()).await;
                    if let Err(e) = pong {
                        tracing::warn!(error = %e, "redis subscriber connection unhealthy");
                        return true;
                    }
                }
            }
        }
    }

    /// Hands a message to its channel's local subscribers, parsed once. (If
    /// the last of them leaves meanwhile, the registry reports the release.)
    fn route(&self, message: &redis::Msg) {
        let name = message.get_channel_name();
        if !self.shared.channels.is_live(name) {
            return; // Unsubscribing: nobody here to parse it for.
        }
        match Frame::parse(Bytes::copy_from_slice(message.get_payload_bytes())) {
            Ok(frame) => self.shared.channels.deliver(name, frame),
            Err(e) => {
                tracing::warn!(channel = name, error = %e, "dropped a frame that is not an event")
            }
        }
    }

    /// Subscribes what is wanted and not yet subscribed, answers the waiters,
    /// then unsubscribes released channels nobody took up again.
    async fn apply(&self, link: &mut Link, batch: Vec<Request>) -> Result<(), BusError> {
        let (mut wanted, mut waiting, mut released) = (Vec::new(), Vec::new(), HashSet::new());
        let mut seen = HashSet::new();
        for request in batch {
            match request {
                Request::Subscribe { name, done } => {
                    if !link.subscribed.contains(&name) && seen.insert(name.clone()) {
                        wanted.push(name);
                    }
                    waiting.push(done);
                }
                Request::Release { name } => {
                    released.insert(name);
                }
            }
        }
        if let Err(e) = link.subscribe(&wanted, &self.options).await {
            for done in waiting {
                let _ = done.send(Err(e.to_string()));
            }
            return Err(e);
        }
        for done in waiting {
            let _ = done.send(Ok(()));
        }
        let idle: Vec<String> = released
            .into_iter()
            .filter(|name| link.subscribed.contains(name) && !self.shared.channels.is_live(name))
            .collect();
        link.unsubscribe(&idle, &self.options).await
    }

    /// A new connection with every live channel subscribed; `None` if
    /// cancelled first.
    async fn reconnect(&mut self) -> Option<Link> {
        let mut delay = self.options.backoff_min;
        loop {
            if !self.inbox.pause(jitter(delay), "the bus is reconnecting to redis").await {
                return None;
            }
            match self.resubscribed().await {
                Ok(link) => return Some(link),
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?delay, "redis reconnect failed");
                    delay = (delay * 2).min(self.options.backoff_max);
                }
            }
        }
    }

    /// Connects and subscribes every channel that has a local subscriber.
    async fn resubscribed(&self) -> Result<Link, BusError> {
        let pubsub = within(self.options.timeout, self.client.get_async_pubsub()).await?;
        let mut link = Link::new(pubsub);
        link.subscribe(&self.shared.channels.live(), &self.options).await?;
        Ok(link)
    }
}
