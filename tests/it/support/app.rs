//! `spawn_app()`: the real gateway on 127.0.0.1:0, a real HTTP client, and
//! helpers that read like the API.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flowgate::app::{App, AppState};
use flowgate::backends::Backends;
use flowgate::bus::Channel;
use flowgate::config::Config;
use flowgate::engine::models::SecretLookup;
use flowgate::model::{ChatId, ChatStatus, Event, EventKind};
use flowgate::store::SeqQuery;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The key seeded for tenant `default` in every test app.
pub const KEY: &str = "fgk_test_key_for_tenant_default_000000000000";
/// The HS256 secret test apps verify tokens with.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running gateway.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The socket address.
    pub addr: std::net::SocketAddr,
    /// In-process state, to await bus events.
    pub state: AppState,
    /// The data dir (kept alive by `_dir` unless `keep_dir` was used).
    pub data_dir: PathBuf,
    /// A client that sends `KEY`.
    pub client: reqwest::Client,
    stop: CancellationToken,
    server: Option<JoinHandle<()>>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// The config every test app starts from.
pub fn test_config(data_dir: PathBuf) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        api_key: Some(KEY.into()),
        log: "warn".into(),
        ..Default::default()
    };
    config.jwt.secret = Some(JWT_SECRET.into());
    config
}

/// Starts a gateway on a fresh temporary data dir.
pub async fn spawn_app() -> TestApp {
    spawn_configured(|_| {}).await
}

/// Starts a gateway on a fresh data dir after `tweak` adjusts the test config.
pub async fn spawn_configured(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_configured_with_secrets(tweak, flowgate::engine::models::from_env()).await
}

/// Like [`spawn_configured`], with API keys looked up by `secrets` instead of
/// the process environment.
pub async fn spawn_configured_with_secrets(
    tweak: impl FnOnce(&mut Config),
    secrets: SecretLookup,
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = test_config(dir.path().to_path_buf());
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut app = launch(build(config, secrets).await, listener).await;
    app._dir = Some(dir);
    app
}

/// Starts a gateway with a given config.
pub async fn spawn_with(config: Config) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    spawn_on(config, listener).await
}

/// Starts a gateway with a given config on a given listener (tests that need
/// small socket buffers bind their own).
pub async fn spawn_on(config: Config, listener: tokio::net::TcpListener) -> TestApp {
    launch(build(config, flowgate::engine::models::from_env()).await, listener).await
}

/// The app as `flowgate serve` builds it: the backends the config names.
async fn build(config: Config, secrets: SecretLookup) -> App {
    let backends = Backends::open(&config).await.expect("the backends open");
    App::build_with(config, secrets, backends).await.expect("the app builds")
}

/// Sends the servers' logs to the test harness's captured output, so a
/// failing test prints what its server said (`FLOWGATE_TEST_LOG` sets the
/// filter; `flowgate=info` by default).
fn capture_server_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("FLOWGATE_TEST_LOG").unwrap_or_else(|_| "flowgate=info".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// Serves a built app on a listener.
async fn launch(app: App, listener: tokio::net::TcpListener) -> TestApp {
    capture_server_logs();
    let data_dir = app.state.config.data_dir.clone();
    let state = app.state.clone();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone();
    let server = tokio::spawn(async move {
        app.serve(listener, async move { signal.cancelled().await }).await.unwrap();
    });
    TestApp {
        base: format!("http://{addr}"),
        addr,
        state,
        data_dir,
        client: client_with_key(KEY),
        stop,
        server: Some(server),
        _dir: None,
    }
}

/// Seconds since the epoch, for token claims.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An HS256 token with `claims`, signed with `secret`.
pub fn signed_token(secret: &str, claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

/// A token with `claims` that test apps accept (signed with `JWT_SECRET`).
pub fn jwt(claims: Value) -> String {
    signed_token(JWT_SECRET, &claims)
}

/// A chat id as the API returned it.
pub fn chat_id(id: &str) -> ChatId {
    ChatId::parse(id).expect("the API returns chat ids")
}

/// A client sending `X-API-KEY: key` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

impl TestApp {
    /// Stops the server gracefully (runs are cancelled, nothing is committed
    /// for them) and returns the data dir guard so a new app can reopen it.
    pub async fn stop(mut self) -> (PathBuf, Option<Arc<tempfile::TempDir>>) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(WAIT, server).await.expect("the server stops").unwrap();
        }
        (self.data_dir.clone(), self._dir.take())
    }

    /// Starts a new app on this app's data dir after stopping this one.
    pub async fn restart(self) -> TestApp {
        let (data_dir, guard) = self.stop().await;
        let mut app = spawn_with(test_config(data_dir)).await;
        app._dir = guard;
        app
    }

    /// Stops this app and starts a new one on the same address and data dir,
    /// from the test config `tweak` adjusts: a restart as a reconnecting
    /// client sees it.
    pub async fn restart_in_place(self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let addr = self.addr;
        let (data_dir, guard) = self.stop().await;
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind(addr).await.expect("the address is free again");
        let mut app = spawn_on(config, listener).await;
        app._dir = guard;
        app
    }

    /// The URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the test key; returns status and JSON (or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.client.get(self.url(path))).await
    }

    /// POST JSON with the test key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.client.post(self.url(path)).json(&body)).await
    }

    /// DELETE with the test key.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.client.delete(self.url(path))).await
    }

    /// Registers a flow under an id (PUT /flows/{id}).
    pub async fn put_flow(&self, id: &str, flow: Value) {
        let (status, body) = send(self.client.put(self.url(&format!("/flows/{id}"))).json(&flow)).await;
        assert!(status == 200 || status == 201, "flow {id}: {status} {body}");
    }

    /// Creates a chat from a flow; returns its id.
    pub async fn create_chat(&self, flow: &str) -> String {
        let (status, body) =
            self.post("/chats", json!({"name": "t", "from_type": "flow", "from_flow": flow})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Posts a user message; asserts 202.
    pub async fn say(&self, chat: &str, text: &str) -> Value {
        let (status, body) = self.post(&format!("/chats/{chat}/messages"), json!({"message": text})).await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Answers the pending input; asserts 202.
    pub async fn answer(&self, chat: &str, text: &str) -> Value {
        let (status, body) = self.post(&format!("/chats/{chat}/input"), json!({"message": text})).await;
        assert_eq!(status, 202, "{body}");
        body
    }

    /// Answers the pending input, then waits for the chat's next `status`;
    /// returns its durable events so far.
    pub async fn answer_then(&self, chat: &str, text: &str, status: ChatStatus) -> Vec<Event> {
        let last = self.chat(chat).await["last_seq"].as_u64().unwrap();
        self.answer(chat, text).await;
        self.wait_for_status(chat, last, status).await
    }

    /// Waits (bounded) until the chat has a `chat.status` event to `status`
    /// after seq `after`; returns the chat's durable events so far.
    pub async fn wait_for_status(&self, chat: &str, after: u64, status: ChatStatus) -> Vec<Event> {
        self.wait_for(chat, |e| {
            e.kind == EventKind::ChatStatus && e.seq > Some(after) && e.data["status"] == json!(status)
        })
        .await
    }

    /// Waits (bounded) until an event matching `pred` is stored; subscribes to
    /// the bus before reading the store so nothing slips between the two.
    pub async fn wait_for(&self, chat: &str, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut sub = self.state.bus.subscribe(&Channel::Chat(chat_id(chat))).await.unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let events = self.events(chat).await;
            if events.iter().any(&pred) {
                return events;
            }
            match tokio::time::timeout_at(deadline, sub.receiver.recv()).await {
                Ok(_) => continue,
                Err(_) => panic!("timed out waiting on chat {chat}; events: {:#?}", kinds(&events)),
            }
        }
    }

    /// Every durable event of a chat, read from the store.
    pub async fn events(&self, chat: &str) -> Vec<Event> {
        let q = SeqQuery { limit: 10_000, ..Default::default() };
        self.state.store.events(&chat_id(chat), &q).await.unwrap()
    }

    /// Every message of a chat, via the API.
    pub async fn messages(&self, chat: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/chats/{chat}/messages?limit=1000")).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The chat via the API.
    pub async fn chat(&self, chat: &str) -> Value {
        let (status, body) = self.get(&format!("/chats/{chat}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// Sends a request; returns status and JSON body (Null when empty).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("the request is answered");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// `type` names of events, for failure messages.
pub fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e.seq.unwrap_or(0),
                e.kind.as_str(),
                e.data.get("status").map(|s| s.to_string()).unwrap_or_default()
            )
        })
        .collect()
}

/// The `status` values of the chat.status events, in order.
pub fn statuses(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == EventKind::ChatStatus)
        .map(|e| e.data["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}
