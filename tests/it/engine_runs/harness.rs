//! The engine under test: `ChatService` + `Engine` on a real `SqliteStore` in a
//! temp dir and the in-process `MemoryBus`; events are awaited on the chat's
//! bus channel, every wait bounded.

use std::sync::Arc;
use std::time::Duration;

use flowgate::auth::{Authenticator, Caller, Jwt};
use flowgate::bus::memory::MemoryBus;
use flowgate::bus::{Bus, Channel, Subscription};
use flowgate::engine::{Engine, EngineDeps};
use flowgate::ledger::Journal;
use flowgate::model::{ChatId, ChatStatus, Event, EventKind, FlowId, FlowRecord, Message, TenantId, now};
use flowgate::service::{ChatService, NewChat, Services};
use flowgate::store::SeqQuery;
use flowgate::store::sqlite::{SqliteOptions, SqliteStore};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// The tenant every test chat belongs to.
pub const TENANT: &str = "tenant_engine";
/// The bound on any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// A store, a bus, an engine and the chat service over them.
pub struct Harness {
    _dir: tempfile::TempDir,
    pub journal: Journal,
    pub engine: Arc<Engine>,
    pub chats: ChatService,
}

fn engine_on(journal: &Journal) -> Arc<Engine> {
    Engine::new(EngineDeps {
        journal: journal.clone(),
        models: Default::default(),
        secrets: flowgate::engine::models::from_env(),
        shutdown: CancellationToken::new(),
        leases: std::sync::Arc::new(flowgate::engine::lease::LocalLeases),
        sweep_every: std::time::Duration::from_secs(3600),
        runs: Default::default(),
        outbound: flowgate::config::OutboundConfig {
            flow_model_hosts: vec!["127.0.0.1".into()],
            allow_private_hosts: vec!["127.0.0.1".into()],
        },
    })
}

/// The chat service as the app wires it.
fn chat_service(journal: &Journal, engine: &Arc<Engine>) -> ChatService {
    let jwt = Jwt::from_config(&Default::default()).unwrap();
    let auth = Arc::new(Authenticator::new(journal.store.clone(), jwt));
    let rate = flowgate::service::RateLimiter::off();
    Services::new(
        journal.clone(),
        engine.clone(),
        auth,
        256 << 10,
        rate,
        Default::default(),
        CancellationToken::new(),
    )
    .chats
}

/// The tenant's operator: whom every harness call acts as.
pub fn operator() -> Caller {
    Caller::operator(&TenantId::parse(TENANT).unwrap())
}

impl Harness {
    /// A fresh store file and engine.
    pub async fn new() -> Self {
        Self::with_bus(MemoryBus::new()).await
    }

    /// A fresh store file and engine on `bus` (e.g. one whose receivers lag
    /// early, or a Redis bus).
    pub async fn with_bus(bus: impl Bus + 'static) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowgate.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let journal = Journal { store: Arc::new(store), bus: Arc::new(bus), metrics: Default::default() };
        let engine = engine_on(&journal);
        let chats = chat_service(&journal, &engine);
        Harness { _dir: dir, journal, engine, chats }
    }

    /// A process restart: shuts the engine down, builds a new one on the same
    /// store and resumes; returns how many runs it resumed.
    pub async fn restart(&mut self) -> usize {
        tokio::time::timeout(WAIT, self.engine.shutdown()).await.expect("the engine shuts down");
        self.engine = engine_on(&self.journal);
        self.chats = chat_service(&self.journal, &self.engine);
        self.engine.resume_all().await.unwrap()
    }

    /// Registers `flow` (as given, unvalidated) and creates a chat from it.
    pub async fn chat(&self, flow: Value) -> ChatId {
        let at = now();
        let record = FlowRecord {
            id: FlowId::new(),
            tenant: TenantId::parse(TENANT).unwrap(),
            name: flow["name"].as_str().unwrap_or("flow").into(),
            definition: flow,
            source: None,
            created_at: at,
            updated_at: at,
        };
        self.journal.store.put_flow(&record).await.unwrap();
        let new = NewChat { from_flow: record.id, name: None, metadata: None };
        self.chats.create(&operator(), new).await.unwrap().id
    }

    /// Starts listening to the chat's events (before acting on it).
    pub async fn watch(&self, chat_id: &ChatId) -> Watch {
        let channel = Channel::Chat(chat_id.clone());
        Watch { sub: self.journal.bus.subscribe(&channel).await.unwrap() }
    }

    /// Posts a user message.
    pub async fn say(&self, chat_id: &ChatId, text: &str) {
        self.chats.post_message(&operator(), chat_id, Some(text), &[]).await.unwrap();
    }

    /// Answers the pending input request (`None`: the auto reply).
    pub async fn answer(&self, chat_id: &ChatId, text: Option<&str>) {
        self.chats.submit_input(&operator(), chat_id, None, text.map(Some)).await.unwrap();
    }

    /// Every durable event of the chat, by seq.
    pub async fn events(&self, chat_id: &ChatId) -> Vec<Event> {
        let query = SeqQuery { limit: 1000, ..Default::default() };
        self.journal.store.events(chat_id, &query).await.unwrap()
    }

    /// Every message of the chat, by seq.
    pub async fn messages(&self, chat_id: &ChatId) -> Vec<Message> {
        let query = SeqQuery { limit: 1000, ..Default::default() };
        self.journal.store.messages(chat_id, &query).await.unwrap()
    }

    /// `(sender, content)` of every message.
    pub async fn transcript(&self, chat_id: &ChatId) -> Vec<(String, String)> {
        let messages = self.messages(chat_id).await;
        messages.into_iter().map(|m| (m.sender, m.content)).collect()
    }

    /// The `status` of every `chat.status` event, in order.
    pub async fn statuses(&self, chat_id: &ChatId) -> Vec<String> {
        self.events(chat_id)
            .await
            .iter()
            .filter(|e| e.kind == EventKind::ChatStatus)
            .map(|e| e.data["status"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The `stop_reason` of the last `run.completed`.
    pub async fn stop_reason(&self, chat_id: &ChatId) -> Option<String> {
        let events = self.events(chat_id).await;
        let done = events.iter().rev().find(|e| e.kind == EventKind::RunCompleted)?;
        done.data["stop_reason"].as_str().map(str::to_owned)
    }

    /// The chat's status in the store.
    pub async fn status(&self, chat_id: &ChatId) -> ChatStatus {
        let record = self.journal.store.get_chat(chat_id).await.unwrap();
        record.expect("the chat exists").chat.status
    }

    /// Waits (bounded) until no runner task is left on this engine.
    pub async fn idle(&self) {
        tokio::time::timeout(WAIT, self.engine.idle()).await.expect("every runner task ended");
    }
}

/// A live feed of one chat's events.
pub struct Watch {
    sub: Subscription,
}

impl Watch {
    /// The next event matching `pred`, within [`WAIT`].
    pub async fn next_where(&mut self, pred: impl Fn(&Event) -> bool) -> Event {
        let receiver = &mut self.sub.receiver;
        tokio::time::timeout(WAIT, async {
            loop {
                match receiver.recv().await {
                    Ok(frame) => {
                        let event: Event = serde_json::from_str(frame.json.as_str()).unwrap();
                        if pred(&event) {
                            return event;
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => panic!("the bus channel closed"),
                }
            }
        })
        .await
        .expect("the awaited event arrived in time")
    }

    /// Waits until the chat leaves `running`; returns the status it settled in.
    pub async fn settled(&mut self) -> String {
        let event =
            self.next_where(|e| e.kind == EventKind::ChatStatus && e.data["status"] != "running").await;
        event.data["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Waits for the next `message.created` from `sender`; returns the message.
    pub async fn message_from(&mut self, sender: &str) -> Value {
        let event =
            self.next_where(|e| e.kind == EventKind::MessageCreated && e.data["sender"] == sender).await;
        event.data
    }
}

/// A scripted model spec.
pub fn script(replies: &[&str], delay_ms: u64) -> Value {
    json!({"provider": "scripted", "replies": replies, "delay_ms": delay_ms})
}

/// A two-agent flow: proxy `user` (mode, extra fields) and assistant `writer`.
pub fn two_agent(mode: &str, replies: &[&str], proxy_extra: Value) -> Value {
    let mut proxy = json!({"name": "user", "kind": "user_proxy", "human_input_mode": mode});
    for (k, v) in proxy_extra.as_object().into_iter().flatten() {
        proxy[k] = v.clone();
    }
    json!({
        "name": format!("pair {mode}"),
        "models": {"writer_model": script(replies, 0)},
        "agents": [proxy, {"name": "writer", "kind": "assistant", "model": "writer_model"}],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    })
}

/// A group of proxy `user` (mode), `writer` and `critic`, with `chat` fields
/// merged over round robin, max_round 20, TERMINATE.
pub fn group(mode: &str, writer: Value, critic: Value, chat: Value) -> Value {
    let mut spec = json!({"kind": "group", "speaker_selection": "round_robin", "max_round": 20,
                          "termination": {"contains": "TERMINATE"}});
    for (k, v) in chat.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({
        "name": format!("group {mode}"),
        "models": {"w": writer, "c": critic, "selector": script(&["writer"], 0)},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": mode},
            {"name": "writer", "kind": "assistant", "model": "w", "description": "Writes drafts."},
            {"name": "critic", "kind": "assistant", "model": "c", "description": "Reviews drafts."}
        ],
        "chat": spec
    })
}
