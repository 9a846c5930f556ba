//! The flow runner: one tokio task per running chat, tied to a cancellation
//! token, that reads the chat's history, decides the next step
//! ([`policy`]), asks a model, and commits each message through the journal. A
//! wait for human input is a durable input request; the task ends and a new one
//! starts when the answer arrives.
//!
//! This module is the registry: at most one runner task per chat on this node.
//! Each chat has an entry holding its task's token and a `kicked` flag; `start`
//! on a chat whose task is finishing sets the flag, and the task, before it
//! removes its entry (atomically, under the map's entry lock), sees it and runs
//! again, so a start is never lost. No map guard is held across an `.await`.
//!
//! Touches the store and bus (through `crate::ledger::Journal`) and the model
//! providers; nothing else.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::flow::ModelSpec;
use crate::ledger::Journal;
use crate::model::ChatId;
use crate::store::StoreResult;
use lease::{Lease, LeaseError, Leases};

/// Lease attempts, 50 ms apart, before leaving a run to the node that holds it.
const ACQUIRE_TRIES: u32 = 10;

pub mod caps;
pub mod lease;
pub mod models;
pub mod outbound;
pub mod policy;
pub mod prompt;
pub mod provider;
mod runner;
pub mod step;

/// What an engine needs.
pub struct EngineDeps {
    /// Where chats are read and committed.
    pub journal: Journal,
    /// The gateway's configured model registry.
    pub models: BTreeMap<String, ModelSpec>,
    /// Where the registry's API keys are read from.
    pub secrets: models::SecretLookup,
    /// Cancelled when the process shuts down; stops every runner.
    pub shutdown: CancellationToken,
    /// Who may drive a run ([`lease::LocalLeases`] on one node).
    pub leases: Arc<dyn Leases>,
    /// How often this node looks for `running` chats nobody drives (an owner
    /// that died, a run whose store calls kept failing).
    pub sweep_every: Duration,
    /// The operator's caps on every run.
    pub runs: crate::config::RunLimits,
    /// Where a flow's own models may call.
    pub outbound: crate::config::OutboundConfig,
}

/// The runner registry of one node.
pub struct Engine {
    shared: Arc<Shared>,
}

/// What every runner task shares.
pub(crate) struct Shared {
    pub(crate) journal: Journal,
    pub(crate) models: models::Models,
    pub(crate) runs: crate::config::RunLimits,
    leases: Arc<dyn Leases>,
    closing: CancellationToken,
    tracker: TaskTracker,
    runners: DashMap<ChatId, Slot>,
    /// Woken whenever a runner leaves the registry.
    left: Notify,
    next_task: AtomicU64,
}

/// One chat's runner task.
struct Slot {
    task: u64,
    cancel: CancellationToken,
    kicked: bool,
}

impl Engine {
    /// A new engine; no run starts until [`Engine::start`] or
    /// [`Engine::resume_all`]. Its sweeper runs every `deps.sweep_every`.
    pub fn new(deps: EngineDeps) -> Arc<Self> {
        let sweep_every = deps.sweep_every;
        let engine = Arc::new(Self {
            shared: Arc::new(Shared {
                journal: deps.journal,
                models: models::Models::new(
                    deps.models,
                    deps.secrets,
                    outbound::Outbound::new(deps.outbound),
                ),
                runs: deps.runs,
                leases: deps.leases,
                closing: deps.shutdown.child_token(),
                tracker: TaskTracker::new(),
                runners: DashMap::new(),
                left: Notify::new(),
                next_task: AtomicU64::new(1),
            }),
        });
        let sweeper = Arc::downgrade(&engine);
        let closing = engine.shared.closing.clone();
        engine.shared.tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = closing.cancelled() => return,
                    _ = tokio::time::sleep(sweep_every) => {}
                }
                let Some(engine) = sweeper.upgrade() else { return };
                if let Err(e) = engine.adopt_orphans().await {
                    tracing::warn!(error = %e, "sweep for unowned runs failed");
                }
            }
        });
        engine
    }

    /// Starts a runner for every `running` chat this node does not drive yet;
    /// each takes the chat's lease first, so chats another node drives are left
    /// alone.
    pub async fn adopt_orphans(&self) -> StoreResult<usize> {
        let running = self.shared.journal.store.running_chats().await?;
        let mut adopted = 0;
        for record in &running {
            if !self.shared.runners.contains_key(&record.chat.id) {
                self.start(&record.chat.id);
                adopted += 1;
            }
        }
        Ok(adopted)
    }

    /// Makes sure exactly one runner task drives the chat (idempotent; a task
    /// about to finish runs once more). A no-op after shutdown.
    pub fn start(&self, chat_id: &ChatId) {
        let shared = &self.shared;
        if shared.closing.is_cancelled() {
            return;
        }
        let spawn = match shared.runners.entry(chat_id.clone()) {
            Entry::Occupied(mut slot) => {
                slot.get_mut().kicked = true;
                None
            }
            Entry::Vacant(vacant) => {
                let task = shared.next_task.fetch_add(1, Ordering::Relaxed);
                let cancel = shared.closing.child_token();
                vacant.insert(Slot { task, cancel: cancel.clone(), kicked: false });
                Some((task, cancel))
            }
        };
        if let Some((task, cancel)) = spawn {
            let shared = Arc::clone(shared);
            let chat_id = chat_id.clone();
            self.shared.tracker.spawn(run_task(shared, chat_id, task, cancel));
        }
    }

    /// Stops the chat's runner task at once, if any (what it stored stays).
    pub fn stop(&self, chat_id: &ChatId) {
        if let Some((_, slot)) = self.shared.runners.remove(chat_id) {
            slot.cancel.cancel();
            self.shared.left.notify_waiters();
        }
    }

    /// Starts every chat the store reports `running` (at process start);
    /// returns how many.
    pub async fn resume_all(&self) -> StoreResult<usize> {
        let running = self.shared.journal.store.running_chats().await?;
        for record in &running {
            self.start(&record.chat.id);
        }
        Ok(running.len())
    }

    /// Stops every runner and waits for their tasks; running chats stay
    /// `running` in the store and resume at the next start.
    pub async fn shutdown(&self) {
        self.shared.closing.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
    }

    /// The configured model names (flow validation).
    pub fn known_models(&self) -> HashSet<String> {
        self.shared.models.known()
    }

    /// The operator's caps on runs and tenants.
    pub fn run_limits(&self) -> &crate::config::RunLimits {
        &self.shared.runs
    }

    /// Lowers what `flow` asks for to the operator's caps; the warnings name
    /// each field lowered (see [`caps::clamp`]).
    pub fn clamp(&self, flow: &mut crate::flow::Flow) -> Vec<crate::flow::FlowIssue> {
        caps::clamp(flow, &self.shared.runs)
    }

    /// Refuses a flow whose own `openai` model URL is not allowed (see
    /// [`outbound`]); `Err` names the field and says why.
    pub async fn check_flow_models(&self, flow: &crate::flow::Flow) -> Result<(), (String, String)> {
        self.shared.models.check_flow_models(flow).await
    }

    /// How many chats have a runner task now (metrics, tests).
    pub fn active_runs(&self) -> usize {
        self.shared.runners.len()
    }

    /// Completes once no chat has a runner task: every run has finished,
    /// paused for input, or been stopped. An event to await instead of
    /// polling [`Engine::active_runs`].
    pub async fn idle(&self) {
        loop {
            let left = self.shared.left.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if self.shared.runners.is_empty() {
                return;
            }
            left.await;
        }
    }
}

/// One chat's task: drives the chat until it stops running, then leaves the
/// registry unless it was kicked meanwhile.
async fn run_task(shared: Arc<Shared>, chat_id: ChatId, task: u64, cancel: CancellationToken) {
    loop {
        match acquire(&shared, &chat_id, &cancel).await {
            Ok(Some(lease)) => {
                // Each drive has its own token, fired by a cancel or delete
                // committed anywhere (this node or another, through the bus) or
                // by losing the lease, so an in-flight model call stops at once;
                // a kick that came meanwhile still runs.
                let drive = cancel.child_token();
                // Holding the lease, nobody else streams this chat: partials
                // left by a node that died mid-answer go (the drive drops its
                // own when it ends).
                shared.journal.forget_partials(&chat_id, None).await;
                let _running = crate::metrics::Open::new(&shared.journal.metrics.runs_running);
                tokio::select! {
                    () = runner::drive(&shared, &chat_id, &drive, lease.fence.clone()) => {}
                    () = stop_on_cancel(&shared, &chat_id, &drive) => {}
                    () = keep_lease(&shared, &lease, &drive) => {}
                }
                shared.leases.release(&lease).await;
            }
            Ok(None) => tracing::debug!(%chat_id, "another node drives this run"),
            Err(e) => tracing::warn!(%chat_id, error = %e, "cannot take the run lease; the sweeper retries"),
        }
        let again = match shared.runners.entry(chat_id.clone()) {
            Entry::Occupied(mut slot) if slot.get().task == task => {
                if slot.get().kicked && !cancel.is_cancelled() {
                    slot.get_mut().kicked = false;
                    true
                } else {
                    slot.remove();
                    false
                }
            }
            _ => false,
        };
        if !again {
            shared.left.notify_waiters();
            return;
        }
    }
}

/// Takes the chat's lease. A `None` is retried for a moment: right after a
/// local cancel the stopped task may still be giving the lease back.
async fn acquire(
    shared: &Shared,
    chat_id: &ChatId,
    cancel: &CancellationToken,
) -> Result<Option<Lease>, LeaseError> {
    for _ in 0..ACQUIRE_TRIES {
        if let Some(lease) = shared.leases.acquire(chat_id).await? {
            return Ok(Some(lease));
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    Ok(None)
}

/// Renews the lease while the drive runs; fires `drive` once it is lost or
/// cannot be renewed (stopping is always safe: the sweeper resumes the run).
/// Never completes on its own.
async fn keep_lease(shared: &Shared, lease: &Lease, drive: &CancellationToken) {
    loop {
        tokio::select! {
            _ = drive.cancelled() => break,
            _ = tokio::time::sleep(shared.leases.renew_every()) => {}
        }
        match shared.leases.renew(lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(chat_id = %lease.chat_id, "run lease lost; stopping this drive");
                drive.cancel();
                break;
            }
            Err(e) => {
                tracing::warn!(chat_id = %lease.chat_id, error = %e, "run lease not renewed; stopping this drive");
                drive.cancel();
                break;
            }
        }
    }
    std::future::pending::<()>().await
}

/// Fires `drive` when the chat's run is cancelled or the chat deleted on
/// another node (on this one, the service stops the runner directly), then
/// waits for the drive to notice; never completes on its own. It listens to
/// the chat's control channel, which carries nothing else: the run's own
/// deltas never wake it.
async fn stop_on_cancel(shared: &Shared, chat_id: &ChatId, drive: &CancellationToken) {
    let channel = crate::bus::Channel::Control(chat_id.clone());
    if let Ok(mut sub) = shared.journal.bus.subscribe(&channel).await {
        loop {
            let frame = tokio::select! {
                _ = drive.cancelled() => break,
                frame = sub.receiver.recv() => frame,
            };
            match frame {
                Ok(f) if crate::bus::Channel::carries_control(f.kind) => {
                    drive.cancel();
                    break;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    std::future::pending::<()>().await
}
