//! The REST side of the bench: the target gateway (checked to be on
//! loopback), flow registration, chat creation and message posting.
//!
//! Touches only the gateway's HTTP API.

use std::net::{SocketAddr, ToSocketAddrs};

use serde_json::{Value, json};

use crate::{BenchError, Common};

/// The gateway under test.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:8080`.
    pub base: String,
    /// `host:port` as written in the URL (the WebSocket `Host`).
    pub authority: String,
    /// The resolved loopback address.
    pub addr: SocketAddr,
    /// The API key.
    pub key: String,
    /// How many handshakes may be in flight.
    pub connect_concurrency: usize,
    http: reqwest::Client,
}

/// A chat the bench created.
#[derive(Debug, Clone)]
pub struct Chat {
    /// `chat_…`
    pub id: String,
    /// Its last seq when created (subscribe after it: no replay).
    pub last_seq: u64,
}

impl Target {
    /// Checks the URL (plain `http://`, loopback host) and builds a client.
    pub fn new(common: &Common) -> Result<Self, BenchError> {
        let bad = |why| BenchError::Url { url: common.url.clone(), why };
        let base = common.url.trim_end_matches('/').to_owned();
        let authority = base.strip_prefix("http://").ok_or_else(|| bad("must start with http://"))?;
        if authority.contains('/') {
            return Err(bad("must have no path"));
        }
        let addr = authority
            .to_socket_addrs()
            .map_err(|_| bad("host:port does not resolve"))?
            .next()
            .ok_or_else(|| bad("host:port does not resolve"))?;
        if !addr.ip().is_loopback() {
            return Err(bad("the bench talks to a gateway on loopback only"));
        }
        if common.key.is_empty() {
            return Err(BenchError::Usage("an API key is required: --key or FLOWGATE_API_KEY"));
        }
        if common.connect_concurrency == 0 {
            return Err(BenchError::Usage("--connect-concurrency must be at least 1"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let value = reqwest::header::HeaderValue::from_str(&common.key)
            .map_err(|_| BenchError::Usage("the API key is not a valid header value"))?;
        headers.insert("x-api-key", value);
        let http = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(256).build()?;
        Ok(Target {
            authority: authority.to_owned(),
            base,
            addr,
            key: common.key.clone(),
            connect_concurrency: common.connect_concurrency,
            http,
        })
    }

    /// The same settings against another gateway (a second node).
    pub fn on(&self, url: &str) -> Result<Self, BenchError> {
        let common = Common {
            url: url.to_owned(),
            key: self.key.clone(),
            connect_concurrency: self.connect_concurrency,
            timeout_secs: 0,
        };
        Target::new(&common)
    }

    async fn send(&self, what: &'static str, req: reqwest::RequestBuilder) -> Result<Value, BenchError> {
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        if !(200..300).contains(&status) {
            return Err(BenchError::Api { what, status, body: text });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `PUT /flows/{id}` with a native flow.
    pub async fn put_flow(&self, id: &str, flow: &Value) -> Result<(), BenchError> {
        let req = self.http.put(format!("{}/flows/{id}", self.base)).json(flow);
        self.send("PUT /flows", req).await.map(drop)
    }

    /// `POST /chats` from a flow.
    pub async fn create_chat(&self, flow: &str) -> Result<Chat, BenchError> {
        let body = json!({"name": "bench", "from_type": "flow", "from_flow": flow});
        let v = self.send("POST /chats", self.http.post(format!("{}/chats", self.base)).json(&body)).await?;
        let id = v["id"].as_str().ok_or(BenchError::Api {
            what: "POST /chats",
            status: 201,
            body: "no `id` in the reply".into(),
        })?;
        Ok(Chat { id: id.to_owned(), last_seq: v["last_seq"].as_u64().unwrap_or(0) })
    }

    /// Creates `count` chats, a few requests at a time.
    pub async fn create_chats(&self, flow: &str, count: usize) -> Result<Vec<Chat>, BenchError> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(0..count).map(|_| self.create_chat(flow)).buffered(16).try_collect().await
    }

    /// `POST /chats/{id}/messages`; returns the HTTP status (202, or 409 when
    /// the chat is still busy).
    pub async fn post_message(&self, chat_id: &str, text: &str) -> Result<u16, BenchError> {
        let url = format!("{}/chats/{chat_id}/messages", self.base);
        let resp = self.http.post(url).json(&json!({"message": text})).send().await?;
        let status = resp.status().as_u16();
        let body = resp.text().await?;
        match status {
            202 | 409 => Ok(status),
            _ => Err(BenchError::Api { what: "POST /messages", status, body }),
        }
    }

    /// The server's `/metrics` value of one metric, if present.
    pub async fn metric(&self, name: &str) -> Result<Option<f64>, BenchError> {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await?.text().await?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok())))
    }
}

/// The bench flow's assistant: the agent whose replies stream.
pub const STREAMER: &str = "a";

/// What the bench flow's scripted assistant does per reply.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    /// Words per reply: one `message.delta` each.
    pub words: usize,
    /// The user proxy's auto replies; the assistant replies `turns + 1` times.
    pub auto_replies: u32,
    /// Milliseconds the scripted model waits before each chunk.
    pub delay_ms: u64,
    /// The scripted model's pace in chunks per second (0: unpaced; not with `delay_ms`).
    pub tokens_per_sec: u32,
}

impl Script {
    /// `message.delta` events one run streams.
    pub fn deltas_per_run(&self) -> u64 {
        self.words as u64 * (u64::from(self.auto_replies) + 1)
    }

    /// The native flow: a NEVER-asking user proxy and one scripted assistant.
    pub fn flow(&self, name: &str) -> Value {
        let reply: Vec<String> = (1..=self.words).map(|i| format!("w{i}")).collect();
        let mut model =
            json!({"provider": "scripted", "replies": [reply.join(" ")], "delay_ms": self.delay_ms});
        if self.tokens_per_sec > 0 {
            model["tokens_per_sec"] = self.tokens_per_sec.into();
        }
        json!({
            "name": name,
            "models": {"s": model},
            "agents": [
                {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER",
                 "max_consecutive_auto_reply": self.auto_replies},
                {"name": STREAMER, "kind": "assistant", "model": "s"}
            ],
            "chat": {"kind": "two_agent"}
        })
    }
}
