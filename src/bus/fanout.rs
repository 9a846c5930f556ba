//! The node's one local channel registry (the "hub" half of the hub/broker
//! split): which local tasks listen to which channel, and handing each frame to
//! all of them. [`super::memory::MemoryBus`] is this registry alone; the Redis
//! bus adds only the transport between nodes.
//!
//! One `broadcast` sender per live channel, made by its first local subscriber.
//! The map holds only a `Weak` to it, so the sender lives exactly as long as a
//! [`Guard`] (or a delivery in progress) holds it, and whoever lets go last
//! removes the entry. The owner hears of a channel's first and last local
//! subscriber through a [`Change`] hook.
//!
//! Touches nothing but its own map; holds no map guard while calling the hook
//! and has no `.await` at all.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use tokio::sync::broadcast;

use super::Frame;

type Sender = broadcast::Sender<Arc<Frame>>;

/// A channel's entry in the registry appeared or went: `First` and `Last`
/// alternate per channel, though a `Last` may be reported after the next
/// `First` when subscribers come and go at once: check [`Fanout::is_live`]
/// before acting on one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<K> {
    /// The channel gained its first local subscriber.
    First(K),
    /// Its last local subscriber left.
    Last(K),
}

type Hook<K> = Box<dyn Fn(Change<K>) + Send + Sync>;

/// The local channel registry, keyed by `K` (a [`super::Channel`], or its wire
/// name for Redis); clones share it.
pub(crate) struct Fanout<K: Hash + Eq> {
    inner: Arc<Inner<K>>,
}

impl<K: Hash + Eq> Clone for Fanout<K> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

/// What the registry and its guards share.
struct Inner<K: Hash + Eq> {
    senders: DashMap<K, Weak<Sender>>,
    /// How many frames a receiver may fall behind before it lags.
    capacity: usize,
    hook: Hook<K>,
}

/// Keeps one local subscriber's channel alive; the last one to drop removes
/// the entry and reports [`Change::Last`].
pub(crate) struct Guard<K: Hash + Eq> {
    sender: Option<Arc<Sender>>,
    key: K,
    registry: Weak<Inner<K>>,
}

impl<K: Hash + Eq + Clone> Fanout<K> {
    /// An empty registry whose receivers lag after `capacity` frames (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_hook(capacity, |_| {})
    }

    /// An empty registry that calls `hook` whenever a channel gains its first
    /// or loses its last local subscriber (never with a map guard held).
    pub(crate) fn with_hook(capacity: usize, hook: impl Fn(Change<K>) + Send + Sync + 'static) -> Self {
        let inner = Inner { senders: DashMap::new(), capacity: capacity.max(1), hook: Box::new(hook) };
        Self { inner: Arc::new(inner) }
    }

    /// Starts listening locally to `key`: frames delivered after this returns
    /// are received until the guard drops.
    pub(crate) fn subscribe(&self, key: &K) -> (broadcast::Receiver<Arc<Frame>>, Guard<K>) {
        // Reported only with a new entry: a dead one revived in place has not
        // been reported gone (its release will find it live and leave it).
        let mut first = false;
        let sender = {
            let mut entry = self.inner.senders.entry(key.clone()).or_insert_with(|| {
                first = true;
                Weak::new()
            });
            match entry.upgrade() {
                Some(sender) => sender,
                None => {
                    let sender = Arc::new(broadcast::channel(self.inner.capacity).0);
                    *entry = Arc::downgrade(&sender);
                    sender
                }
            }
        };
        let receiver = sender.subscribe();
        if first {
            (self.inner.hook)(Change::First(key.clone()));
        }
        let guard = Guard { sender: Some(sender), key: key.clone(), registry: Arc::downgrade(&self.inner) };
        (receiver, guard)
    }

    /// Hands `frame` to every local subscriber of `key`; nobody listening is fine.
    pub(crate) fn deliver<Q>(&self, key: &Q, frame: Arc<Frame>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(sender) = self.inner.senders.get(key).and_then(|w| w.upgrade()) else {
            return;
        };
        // No receivers is fine: the last one is leaving.
        let _ = sender.send(frame);
        // The last guard may have let go meanwhile, seen us as a holder and
        // left the entry to us.
        self.inner.let_go(key, sender);
    }

    /// Whether `key` has a local subscriber.
    pub(crate) fn is_live<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.senders.get(key).is_some_and(|w| w.strong_count() > 0)
    }

    /// How many channels have a local subscriber.
    pub(crate) fn channel_count(&self) -> usize {
        self.inner.senders.iter().filter(|e| e.value().strong_count() > 0).count()
    }

    /// Every channel that has a local subscriber.
    pub(crate) fn live(&self) -> Vec<K> {
        let entries = self.inner.senders.iter();
        entries.filter(|e| e.value().strong_count() > 0).map(|e| e.key().clone()).collect()
    }

    /// Whether the map has no entry at all, not even a dead one.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.senders.is_empty()
    }
}

impl<K: Hash + Eq> Inner<K> {
    /// Drops a hold on `key`'s sender; if it was the last, removes the entry.
    fn let_go<Q>(&self, key: &Q, sender: Arc<Sender>)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Let go before looking, so that of two last holders letting go at
        // once each can see the count reach zero (the map holds only a Weak).
        let held = Arc::downgrade(&sender);
        drop(sender);
        if held.strong_count() == 0 {
            self.release(key);
        }
    }

    /// Removes `key` if nobody holds its sender any more, and reports it.
    fn release<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Of two last holders that both saw zero, `remove_if` lets one win.
        let gone = self.senders.remove_if(key, |_, weak| weak.strong_count() == 0);
        if let Some((key, _)) = gone {
            (self.hook)(Change::Last(key));
        }
    }
}

impl<K: Hash + Eq> Drop for Guard<K> {
    fn drop(&mut self) {
        if let (Some(sender), Some(registry)) = (self.sender.take(), self.registry.upgrade()) {
            registry.let_go(&self.key, sender);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{ChatId, Event, EventKind, now};
    use std::sync::Mutex;

    /// A `run.started` frame of `chat_x` with this seq.
    pub(in crate::bus) fn frame(seq: u64) -> Arc<Frame> {
        Frame::from_event(&Event {
            seq: Some(seq),
            chat_id: ChatId::new(),
            kind: EventKind::RunStarted,
            created_at: now(),
            data: serde_json::json!({}),
        })
    }

    type Log = Arc<Mutex<Vec<Change<String>>>>;

    /// A registry that records every change it reports.
    fn recorded() -> (Fanout<String>, Log) {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&changes);
        let fanout = Fanout::with_hook(16, move |change| log.lock().unwrap().push(change));
        (fanout, changes)
    }

    fn key(name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn the_owner_hears_of_the_first_and_the_last_local_subscriber_only() {
        let (fanout, changes) = recorded();
        let a = fanout.subscribe(&key("x"));
        let b = fanout.subscribe(&key("x"));
        drop(a);
        assert_eq!(*changes.lock().unwrap(), [Change::First(key("x"))]);
        drop(b);
        let again = fanout.subscribe(&key("x"));
        let want = [Change::First(key("x")), Change::Last(key("x")), Change::First(key("x"))];
        assert_eq!(*changes.lock().unwrap(), want);
        drop(again);
    }

    #[test]
    fn every_local_subscriber_gets_the_same_frame() {
        let fanout = Fanout::new(16);
        let (mut a, _ga) = fanout.subscribe(&key("x"));
        let (mut b, _gb) = fanout.subscribe(&key("x"));
        let (mut other, _go) = fanout.subscribe(&key("y"));
        let sent = frame(1);
        fanout.deliver("x", Arc::clone(&sent));
        assert!(Arc::ptr_eq(&a.try_recv().unwrap(), &sent));
        assert!(Arc::ptr_eq(&b.try_recv().unwrap(), &sent));
        assert!(other.try_recv().is_err(), "another channel's frame never shows up");
    }

    #[test]
    fn a_frame_nobody_listens_to_goes_nowhere() {
        let (fanout, changes) = recorded();
        fanout.deliver("x", frame(1));
        assert!(fanout.is_empty());
        assert!(changes.lock().unwrap().is_empty());
    }

    #[test]
    fn the_entry_goes_with_the_last_guard() {
        let fanout = Fanout::new(16);
        let (_, a) = fanout.subscribe(&key("x"));
        let (_, b) = fanout.subscribe(&key("x"));
        drop(a);
        assert!(fanout.is_live("x"));
        assert_eq!(fanout.live(), [key("x")]);
        drop(b);
        assert!(!fanout.is_live("x"));
        assert_eq!(fanout.channel_count(), 0);
        assert!(fanout.is_empty());
    }

    #[test]
    fn a_receiver_lags_after_capacity_frames() {
        let fanout = Fanout::new(2);
        let (mut rx, _guard) = fanout.subscribe(&key("x"));
        for seq in 1..=3 {
            fanout.deliver("x", frame(seq));
        }
        assert!(matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Lagged(1))));
    }

    #[test]
    fn a_delivery_that_held_the_last_sender_releases_the_channel() {
        let (fanout, changes) = recorded();
        let (_, guard) = fanout.subscribe(&key("x"));
        // A delivery in progress: it holds the sender as the guard drops.
        let delivering = fanout.inner.senders.get("x").and_then(|w| w.upgrade()).unwrap();
        drop(guard);
        assert!(!fanout.is_empty(), "the guard saw a holder and left the entry");
        fanout.inner.let_go("x", delivering);
        assert!(fanout.is_empty());
        assert_eq!(*changes.lock().unwrap(), [Change::First(key("x")), Change::Last(key("x"))]);
    }

    #[test]
    fn of_two_holders_that_both_saw_zero_one_releases() {
        let (fanout, changes) = recorded();
        let (_, mut guard) = fanout.subscribe(&key("x"));
        // Without its sender the guard's drop does not look; the two below do.
        drop(guard.sender.take());
        drop(guard);
        fanout.inner.release("x");
        fanout.inner.release("x");
        assert!(fanout.is_empty());
        assert_eq!(*changes.lock().unwrap(), [Change::First(key("x")), Change::Last(key("x"))]);
    }

    #[test]
    fn two_last_guards_dropping_at_once_leave_no_entry_and_one_release() {
        let (fanout, changes) = recorded();
        let (give, take) = std::sync::mpsc::channel::<Guard<String>>();
        let (start, done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|s| {
            s.spawn(|| {
                for guard in take {
                    start.wait();
                    drop(guard);
                    done.wait();
                }
            });
            for _ in 0..5_000 {
                let (_, a) = fanout.subscribe(&key("x"));
                let (_, b) = fanout.subscribe(&key("x"));
                give.send(a).unwrap();
                start.wait();
                drop(b);
                done.wait();
                assert!(fanout.is_empty(), "no stale entry");
            }
            drop(give);
        });
        let changes = changes.lock().unwrap();
        let lasts = changes.iter().filter(|c| matches!(c, Change::Last(_))).count();
        assert_eq!((changes.len(), lasts), (10_000, 5_000), "one First and one Last per round");
    }

    #[test]
    fn last_guards_dropping_during_deliveries_leave_no_entry() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (fanout, changes) = recorded();
        // A key per round, so a dead entry left behind is never revived.
        let keys: Vec<String> = (0..20_000).map(|n| format!("x{n}")).collect();
        let (current, sent) = (AtomicUsize::new(0), frame(1));
        std::thread::scope(|s| {
            s.spawn(|| {
                while let Some(key) = keys.get(current.load(Ordering::Relaxed)) {
                    fanout.deliver(key.as_str(), Arc::clone(&sent));
                }
            });
            for (n, key) in keys.iter().enumerate() {
                let (mut receiver, guard) = fanout.subscribe(key);
                current.store(n, Ordering::Relaxed);
                // Drop once deliveries to this key are under way.
                while receiver.try_recv().is_err() {
                    std::hint::spin_loop();
                }
                drop((receiver, guard));
            }
            current.store(usize::MAX, Ordering::Relaxed);
        });
        assert!(fanout.is_empty(), "no stale entry");
        let changes = changes.lock().unwrap();
        let lasts = changes.iter().filter(|c| matches!(c, Change::Last(_))).count();
        assert_eq!((changes.len(), lasts), (40_000, 20_000), "one First and one Last per key");
    }
}
