//! The Chat Completions wire format: the request body we send, the shapes of
//! the answers we read (whole and streamed), and the text we are willing to
//! quote from an error answer (the server's own message, key scrubbed).
//!
//! Pure data and pure functions; no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::OpenAiConfig;
use crate::engine::provider::{Turn, TurnRole};
use crate::flow::ToolSpec;

/// How much of an error body we quote when it has no message of its own.
const QUOTE_LIMIT: usize = 300;

/// The request body.
#[derive(Debug, Serialize)]
pub(super) struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
}

/// A declared tool: `{"type": "function", "function": {...}}`.
#[derive(Debug, Serialize)]
struct WireTool<'a> {
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireFunction<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
}

/// A call in an `assistant` message.
#[derive(Debug, Serialize)]
struct WireCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireCallFunction<'a>,
}

#[derive(Debug, Serialize)]
struct WireCallFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    /// `null` only for an `assistant` turn with tool calls and no text.
    content: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

/// A message's content: a string, or (with images) content parts.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Parts(Vec<Part<'a>>),
}

/// One content part: the text, or an image by URL.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Debug, Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

impl<'a> Content<'a> {
    /// A string for a text-only turn (as before images), else the text part
    /// then one `image_url` part per image.
    fn of(turn: &'a Turn) -> Self {
        if turn.images.is_empty() {
            return Content::Text(&turn.content);
        }
        let text = std::iter::once(Part::Text { text: &turn.content });
        let images = turn.images.iter().map(|url| Part::ImageUrl { image_url: ImageUrl { url } });
        Content::Parts(text.chain(images).collect())
    }
}

impl<'a> ChatRequest<'a> {
    /// The body asking `config`'s model to answer `turns`, declaring `tools`.
    pub(super) fn new(config: &'a OpenAiConfig, turns: &'a [Turn], tools: &'a [ToolSpec]) -> Self {
        let messages = turns.iter().map(wire_message).collect();
        let tools = tools
            .iter()
            .map(|t| WireTool {
                r#type: "function",
                function: WireFunction {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters: &t.parameters,
                },
            })
            .collect();
        Self {
            model: &config.model,
            messages,
            stream: config.stream,
            stream_options: config.stream.then_some(StreamOptions { include_usage: true }),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            tools,
        }
    }
}

fn wire_message(turn: &Turn) -> WireMessage<'_> {
    let calls = turn.tool_calls.iter().map(|c| WireCall {
        id: &c.id,
        r#type: "function",
        function: WireCallFunction { name: &c.name, arguments: &c.arguments },
    });
    let silent = !turn.tool_calls.is_empty() && turn.content.is_empty();
    WireMessage {
        role: role_name(turn.role),
        content: (!silent).then(|| Content::of(turn)),
        name: turn.name.as_deref().filter(|n| turn.role != TurnRole::Tool && is_valid_name(n)),
        tool_calls: calls.collect(),
        tool_call_id: turn.tool_call_id.as_deref(),
    }
}

fn role_name(role: TurnRole) -> &'static str {
    match role {
        TurnRole::System => "system",
        TurnRole::User => "user",
        TurnRole::Assistant => "assistant",
        TurnRole::Tool => "tool",
    }
}

/// OpenAI accepts a message `name` matching `^[a-zA-Z0-9_-]{1,64}$` only.
pub(super) fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A whole (non-streamed) answer.
#[derive(Debug, Deserialize)]
pub(super) struct ChatResponse {
    #[serde(default)]
    pub(super) choices: Vec<ResponseChoice>,
    #[serde(default)]
    pub(super) usage: Option<Value>,
}

/// One choice of a whole answer.
#[derive(Debug, Deserialize)]
pub(super) struct ResponseChoice {
    #[serde(default)]
    pub(super) message: Option<ResponseMessage>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

/// The message of a whole answer.
#[derive(Debug, Deserialize)]
pub(super) struct ResponseMessage {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(super) tool_calls: Vec<CallDelta>,
}

/// A list that some servers send as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<CallDelta>, D::Error> {
    Ok(Option::<Vec<CallDelta>>::deserialize(d)?.unwrap_or_default())
}

/// A tool call, whole or one streamed piece of it (pieces share `index`).
#[derive(Debug, Deserialize)]
pub(super) struct CallDelta {
    #[serde(default)]
    pub(super) index: Option<usize>,
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) function: Option<FunctionDelta>,
}

/// A call's function, whole or a piece (`arguments` arrive in pieces).
#[derive(Debug, Deserialize)]
pub(super) struct FunctionDelta {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) arguments: Option<String>,
}

/// One streamed chunk.
#[derive(Debug, Deserialize)]
pub(super) struct ChatChunk {
    #[serde(default)]
    pub(super) choices: Vec<ChunkChoice>,
    #[serde(default)]
    pub(super) usage: Option<Value>,
    /// Some servers report a failure inside the stream.
    #[serde(default)]
    pub(super) error: Option<Value>,
}

/// One choice of a streamed chunk.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkChoice {
    #[serde(default)]
    pub(super) delta: Option<ChunkDelta>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

/// The new text of a streamed chunk.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkDelta {
    #[serde(default)]
    pub(super) content: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub(super) tool_calls: Vec<CallDelta>,
}

/// The message worth quoting from an error body: `error.message` (OpenAI),
/// `error` as a string (Ollama), `message` (vLLM) or `detail`, else the body
/// itself, cut to about 300 characters; `key` is scrubbed from it.
pub(super) fn error_message(body: &str, key: Option<&str>) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|json| json_message(&json));
    let text = from_json.unwrap_or_else(|| body.trim().to_owned());
    truncate(&scrub(&text, key), QUOTE_LIMIT)
}

/// The message inside a JSON error value, if any.
pub(super) fn json_message(json: &Value) -> Option<String> {
    let candidates =
        [json.pointer("/error/message"), json.get("error"), json.get("message"), json.get("detail")];
    candidates
        .into_iter()
        .flatten()
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
        .map(|s| s.trim().to_owned())
}

/// `text` cut to at most `limit` characters, marked with `…` when cut.
pub(super) fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

/// `text` with every occurrence of `key` replaced.
pub(super) fn scrub(text: &str, key: Option<&str>) -> String {
    match key {
        Some(key) if !key.is_empty() => text.replace(key, "[redacted]"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_with_images_is_sent_as_content_parts_and_a_text_only_turn_as_a_string() {
        let mut turn = Turn { role: TurnRole::User, content: "what is this?".into(), ..Turn::default() };
        assert_eq!(serde_json::to_value(Content::of(&turn)).unwrap(), serde_json::json!("what is this?"));
        turn.images = vec!["https://example.com/a.png".into()];
        assert_eq!(
            serde_json::to_value(Content::of(&turn)).unwrap(),
            serde_json::json!([
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ])
        );
    }

    #[test]
    fn names_follow_the_openai_pattern() {
        assert!(is_valid_name("critic_2"));
        assert!(is_valid_name("user-proxy"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("Dr. Who"));
        assert!(!is_valid_name("ünïcode"));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(is_valid_name(&"a".repeat(64)));
    }

    #[test]
    fn the_servers_own_message_is_quoted() {
        let openai = r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#;
        assert_eq!(error_message(openai, None), "Rate limit reached");
        assert_eq!(error_message(r#"{"error":"model not found"}"#, None), "model not found");
        let vllm = r#"{"object":"error","message":"bad prompt","code":400}"#;
        assert_eq!(error_message(vllm, None), "bad prompt");
        assert_eq!(error_message("  upstream down \n", None), "upstream down");
    }

    #[test]
    fn a_long_body_is_cut() {
        let body = "é".repeat(1000);
        let quoted = error_message(&body, None);
        assert_eq!(quoted.chars().count(), QUOTE_LIMIT + 1);
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn the_key_is_scrubbed_from_quotes() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-abc123."}}"#;
        let quoted = error_message(body, Some("sk-abc123"));
        assert!(!quoted.contains("sk-abc123"), "{quoted}");
        assert!(quoted.contains("[redacted]"), "{quoted}");
    }
}
