//! A fake OpenAI-compatible Chat Completions server for tests: axum on
//! 127.0.0.1, port 0. Each request to `POST /v1/chat/completions` is answered
//! by the next scripted [`Behaviour`] and recorded (path, headers, JSON body).
//!
//! Used as `crate::support::fake_openai`.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// An SSE stream: a role chunk, one chunk per string, a `stop` chunk, a
    /// usage chunk when the request asked for it, then `[DONE]`.
    Stream(Vec<String>),
    /// A whole `application/json` completion with this content and usage.
    Json(String),
    /// This status with this body, and a `Retry-After` header when given.
    Status(u16, String, Option<String>),
    /// No answer at all until the fake is dropped.
    Stall,
    /// An SSE stream of these chunks, then silence until the fake is dropped.
    StallAfter(Vec<String>),
    /// A stream whose first event is not JSON.
    MalformedChunk,
    /// These chunks, then (once [`FakeOpenAi::cut`] was called, or at once if
    /// there are none) the connection breaks without `[DONE]`.
    CloseMidStream(Vec<String>),
    /// This status with an OpenAI error body quoting the Authorization header.
    EchoAuth(u16),
    /// These SSE events verbatim (each gets `data: ` and a blank line), then
    /// a clean end.
    RawEvents(Vec<String>),
    /// A whole `application/json` completion calling tools: each
    /// `(id, name, arguments)`, with `finish_reason: "tool_calls"`.
    ToolCalls(Vec<(String, String, String)>),
    /// A stream of the first chunks, held until [`FakeOpenAi::release`] is
    /// called (or at once if it was), then the rest and a clean end: an
    /// answer a test can interrupt mid-way without sleeping.
    Held(Vec<String>, Vec<String>),
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// e.g. `/v1/chat/completions`.
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
}

struct Shared {
    script: Mutex<VecDeque<Behaviour>>,
    requests: Mutex<Vec<Recorded>>,
    count: watch::Sender<usize>,
    shutdown: CancellationToken,
    cut: CancellationToken,
    release: CancellationToken,
}

/// A running fake; stops when dropped.
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeOpenAi {
    /// Starts a fake with an empty script (unscripted requests get a 500).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake");
        let addr = listener.local_addr().expect("fake address");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            shutdown: CancellationToken::new(),
            cut: CancellationToken::new(),
            release: CancellationToken::new(),
        });
        let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(shared.clone());
        let stop = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Self { addr, shared, server }
    }

    /// The base URL to configure a provider with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A keyless registry model (`[models.NAME]`) this fake serves.
    pub fn model(&self) -> flowgate::flow::ModelSpec {
        model_at(self.base_url())
    }

    /// Queues the answer to a later request.
    pub fn push(&self, behaviour: Behaviour) -> &Self {
        lock(&self.shared.script).push_back(behaviour);
        self
    }

    /// Breaks every [`Behaviour::CloseMidStream`] connection, now and later.
    pub fn cut(&self) {
        self.shared.cut.cancel();
    }

    /// Lets every [`Behaviour::Held`] stream finish, now and later.
    pub fn release(&self) {
        self.shared.release.cancel();
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received so far.
    pub fn request_count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Waits until at least `n` requests were received.
    pub async fn wait_for_requests(&self, n: usize) {
        let mut count = self.shared.count.subscribe();
        let _ = count.wait_for(|c| *c >= n).await;
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let recorded = Recorded {
        path: "/v1/chat/completions".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let wants_usage = recorded.body["stream_options"]["include_usage"] == json!(true);
    let prompt_tokens = recorded.body["messages"].as_array().map_or(0, Vec::len);
    let auth = recorded.headers.get("authorization").cloned().unwrap_or_default();
    lock(&shared.requests).push(recorded);
    shared.count.send_modify(|c| *c += 1);
    let next = lock(&shared.script).pop_front();
    let Some(behaviour) = next else {
        return status(500, r#"{"error":{"message":"fake: nothing scripted"}}"#.into(), None);
    };
    match behaviour {
        Behaviour::Stream(chunks) => {
            let usage = wants_usage.then(|| usage(prompt_tokens, chunks.len()));
            sse(stream::iter(full_stream(&chunks, usage).into_iter().map(Ok)).boxed())
        }
        Behaviour::Json(text) => whole(&text, usage(prompt_tokens, 1)),
        Behaviour::Status(code, body, retry_after) => status(code, body, retry_after),
        Behaviour::Stall => {
            shared.shutdown.cancelled().await;
            status(503, "fake stopped".into(), None)
        }
        Behaviour::StallAfter(chunks) => {
            let stop = shared.shutdown.clone();
            let silence = stream::once(async move {
                stop.cancelled_owned().await;
                Ok(Bytes::new())
            });
            sse(stream::iter(opening(&chunks).into_iter().map(Ok)).chain(silence).boxed())
        }
        Behaviour::MalformedChunk => sse(stream::iter([Ok(event("{\"choices\": [oops"))]).boxed()),
        Behaviour::CloseMidStream(chunks) => close_mid_stream(&shared, &chunks),
        Behaviour::EchoAuth(code) => {
            let message = format!("Incorrect API key provided: {auth}");
            status(code, json!({"error": {"message": message}}).to_string(), None)
        }
        Behaviour::ToolCalls(calls) => tool_calls(&calls),
        Behaviour::Held(first, rest) => held(&shared, &first, &rest, wants_usage, prompt_tokens),
        Behaviour::RawEvents(events) => {
            sse(stream::iter(events.iter().map(|e| Ok(event(e))).collect::<Vec<_>>()).boxed())
        }
    }
}

fn close_mid_stream(shared: &Shared, chunks: &[String]) -> Response {
    let cut = shared.cut.clone();
    let wait = !chunks.is_empty();
    let broken = stream::once(async move {
        if wait {
            cut.cancelled_owned().await;
        }
        Err(io::Error::other("fake: connection dropped"))
    });
    sse(stream::iter(opening(chunks).into_iter().map(Ok)).chain(broken).boxed())
}

fn held(shared: &Shared, first: &[String], rest: &[String], wants_usage: bool, prompt: usize) -> Response {
    let usage = wants_usage.then(|| usage(prompt, first.len() + rest.len()));
    let all: Vec<String> = first.iter().chain(rest).cloned().collect();
    let tail = full_stream(&all, usage).split_off(first.len() + 1);
    let release = shared.release.clone();
    let gate = stream::once(async move {
        release.cancelled_owned().await;
        Ok(Bytes::new())
    });
    let rest = stream::iter(tail.into_iter().map(Ok));
    sse(stream::iter(opening(first).into_iter().map(Ok)).chain(gate).chain(rest).boxed())
}

fn sse(body: BoxStream<'static, Result<Bytes, io::Error>>) -> Response {
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}

fn status(code: u16, body: String, retry_after: Option<String>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (code, body).into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn whole(text: &str, usage: Value) -> Response {
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn tool_calls(calls: &[(String, String, String)]) -> Response {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    let message = json!({"role": "assistant", "content": null, "tool_calls": calls});
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn event(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Bytes {
    event(
        &json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        })
        .to_string(),
    )
}

/// The role chunk and one chunk per string.
fn opening(chunks: &[String]) -> Vec<Bytes> {
    let mut frames = vec![chunk(json!({"role": "assistant", "content": ""}), None)];
    frames.extend(chunks.iter().map(|c| chunk(json!({"content": c}), None)));
    frames
}

fn full_stream(chunks: &[String], usage: Option<Value>) -> Vec<Bytes> {
    let mut frames = opening(chunks);
    frames.push(chunk(json!({}), Some("stop")));
    if let Some(usage) = usage {
        frames.push(event(&json!({"choices": [], "usage": usage}).to_string()));
    }
    frames.push(event("[DONE]"));
    frames
}

/// A keyless registry model served at `base_url` (a fake's [`FakeOpenAi::base_url`]).
pub fn model_at(base_url: String) -> flowgate::flow::ModelSpec {
    flowgate::flow::ModelSpec::Openai {
        base_url,
        model: "m".into(),
        api_key_env: None,
        temperature: None,
        max_tokens: None,
        timeout_secs: Some(10),
    }
}
