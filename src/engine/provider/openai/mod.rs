//! The `openai` model provider: any OpenAI-compatible Chat Completions server
//! (OpenAI, Ollama, vLLM, llama.cpp server, LM Studio). One `POST
//! {base_url}/chat/completions` per attempt, streamed over SSE (or read whole
//! when the server answers JSON), with a connect timeout, a total timeout per
//! attempt, and retries with backoff on connect errors, 429 and 5xx, never
//! once a delta went out.
//!
//! Touches the network (one `reqwest::Client` per provider) and the deltas
//! channel; it knows only the API key it was built with and never logs it.

use std::fmt::Display;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Response, Url};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Completion, CompletionRequest, ModelProvider, ProviderError};

mod config;
mod retry;
mod sse;
mod wire;

pub use config::{
    DEFAULT_BACKOFF_BASE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, OpenAiConfig,
    OpenAiConfigError, from_spec, from_spec_with,
};

use sse::{Reply, Sink};
use wire::ChatRequest;

/// The most we read of an error answer.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A model behind an OpenAI-compatible Chat Completions endpoint.
#[derive(Debug)]
pub struct OpenAiProvider {
    config: OpenAiConfig,
    client: reqwest::Client,
    url: Url,
}

/// Why one attempt failed, and whether another is worth it.
#[derive(Debug)]
struct Failure {
    error: ProviderError,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl OpenAiProvider {
    /// A provider for `config`; fails on a base URL that is not http(s).
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        Self::with_client(config, |builder| builder)
    }

    /// Like [`OpenAiProvider::new`], with the HTTP client adjusted by `adjust`
    /// (a flow's own model gets a guarded resolver and redirect policy).
    pub fn with_client(
        config: OpenAiConfig,
        adjust: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<Self, OpenAiConfigError> {
        let bad_url =
            || OpenAiConfigError::BadBaseUrl { name: config.name.clone(), base_url: config.base_url.clone() };
        let joined = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let url = Url::parse(&joined).map_err(|_| bad_url())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad_url());
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("flowgate/", env!("CARGO_PKG_VERSION")));
        let client = adjust(builder).build().map_err(|err| OpenAiConfigError::Client {
            name: config.name.clone(),
            message: err.to_string(),
        })?;
        Ok(Self { config, client, url })
    }

    /// Its settings.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// Attempts until one succeeds, a failure is final, or retries run out.
    async fn run(
        &self,
        request: &CompletionRequest,
        sink: &mut Sink<'_>,
    ) -> Result<Completion, ProviderError> {
        let body = ChatRequest::new(&self.config, &request.messages, &request.tools);
        let mut retries = 0;
        loop {
            tracing::debug!(model = %self.config.name, agent = %request.agent, retries, "model call");
            let failure = match self.attempt(&body, sink).await {
                Ok(reply) => return Ok(self.completion(reply)),
                Err(failure) => failure,
            };
            if !failure.retryable || sink.sent_any || retries >= self.config.max_retries {
                tracing::warn!(model = %self.config.name, error = %failure.error, "model call failed");
                return Err(failure.error);
            }
            let delay =
                failure.retry_after.unwrap_or_else(|| retry::backoff(self.config.backoff_base, retries));
            tracing::warn!(
                model = %self.config.name,
                error = %failure.error,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "model call failed; retrying"
            );
            tokio::time::sleep(delay).await;
            retries += 1;
        }
    }

    /// One attempt, bounded by the total timeout.
    async fn attempt(&self, body: &ChatRequest<'_>, sink: &mut Sink<'_>) -> Result<Reply, Failure> {
        match tokio::time::timeout(self.config.timeout, self.exchange(body, sink)).await {
            Ok(result) => result,
            Err(_) => Err(Failure {
                error: ProviderError::Timeout {
                    model: self.config.name.clone(),
                    secs: u64::try_from(self.config.timeout.as_millis().div_ceil(1000)).unwrap_or(u64::MAX),
                },
                retryable: false,
                retry_after: None,
            }),
        }
    }

    /// Sends the request and reads the answer.
    async fn exchange(&self, body: &ChatRequest<'_>, sink: &mut Sink<'_>) -> Result<Reply, Failure> {
        let mut request = self.client.post(self.url.clone()).json(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|err| Failure {
            retryable: !err.is_builder(),
            ..self.config.connect_failure(describe(&err))
        })?;
        if !response.status().is_success() {
            return Err(self.status_failure(response).await);
        }
        if is_json(response.headers()) {
            sse::read_json(&self.config, response, sink).await
        } else {
            sse::read_stream(&self.config, response, sink).await
        }
    }

    /// The failure an error status stands for, quoting the server's message.
    async fn status_failure(&self, response: Response) -> Failure {
        let status = response.status();
        let retryable = retry::is_retryable_status(status);
        let retry_after = retry::retry_after(response.headers());
        let body = sse::read_limited(response, ERROR_BODY_LIMIT).await.unwrap_or_default();
        let mut message =
            wire::error_message(&String::from_utf8_lossy(&body), self.config.api_key.as_deref());
        if message.is_empty() {
            message = status.canonical_reason().unwrap_or("no message").to_owned();
        }
        Failure {
            error: ProviderError::Http { model: self.config.name.clone(), status: status.as_u16(), message },
            retryable,
            retry_after,
        }
    }

    /// The reply with its metadata.
    fn completion(&self, reply: Reply) -> Completion {
        tracing::debug!(
            model = %self.config.name,
            chars = reply.content.chars().count(),
            finish_reason = reply.finish_reason.as_deref().unwrap_or(""),
            "model call done"
        );
        let mut metadata = Map::new();
        metadata.insert("provider".into(), json!("openai"));
        metadata.insert("model".into(), json!(self.config.model));
        if let Some(usage) = reply.usage {
            metadata.insert("usage".into(), usage);
        }
        metadata.insert("finish_reason".into(), json!(reply.finish_reason));
        Completion { content: reply.content, metadata: Value::Object(metadata), tool_calls: reply.calls }
    }
}

#[async_trait]
impl ModelProvider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        "openai"
    }

    async fn complete(
        &self,
        request: CompletionRequest,
        deltas: mpsc::Sender<String>,
        cancel: CancellationToken,
    ) -> Result<Completion, ProviderError> {
        let mut sink = Sink::new(&deltas);
        tokio::select! {
            biased;
            () = cancel.cancelled() => {
                tracing::debug!(model = %self.config.name, "model call cancelled");
                Err(ProviderError::Cancelled)
            }
            result = self.run(&request, &mut sink) => result,
        }
    }
}

impl OpenAiConfig {
    /// A retryable connection failure, key scrubbed.
    fn connect_failure(&self, message: impl Display) -> Failure {
        Failure {
            error: ProviderError::Connect {
                model: self.name.clone(),
                message: wire::scrub(&message.to_string(), self.api_key.as_deref()),
            },
            retryable: true,
            retry_after: None,
        }
    }

    /// A final failure to understand the answer, key scrubbed.
    fn malformed(&self, message: impl Display) -> Failure {
        Failure {
            error: ProviderError::Malformed {
                model: self.name.clone(),
                message: wire::scrub(&message.to_string(), self.api_key.as_deref()),
            },
            retryable: false,
            retry_after: None,
        }
    }
}

/// Whether the answer is a whole JSON document rather than an event stream.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/json"))
}

/// An error with its causes, `outer: inner: innermost`.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
