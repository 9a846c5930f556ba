//! The WebSocket protocol of contract §5: client commands (`op`) and the
//! server's replies (`subscribed`, `ack`, `error`, `pong`). Pure: parsing and
//! rendering only.

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::model::{ClientError, ErrorCode, ToolResult};
use crate::store::MessageView;

/// The ops a client may send.
pub const OPS: &[&str] =
    &["subscribe", "unsubscribe", "message", "input", "cancel", "watch_status", "unwatch_status", "ping"];

/// One client command.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Replay every durable event after `after_seq`, then live.
    Subscribe {
        /// The chat (optional on a chat-bound socket).
        chat_id: Option<String>,
        /// The last seq the client saw (0 or absent: from the start).
        after_seq: Option<u64>,
        /// `all` (default) or `final`: only the events about user messages,
        /// human input and final answers, plus statuses, input and run
        /// events; no deltas.
        view: MessageView,
    },
    /// Stop a subscription.
    Unsubscribe {
        /// The chat.
        chat_id: Option<String>,
    },
    /// Same rules as `POST /messages`.
    Message {
        /// The chat.
        chat_id: Option<String>,
        /// The text (`message`, or FlowGen's `content`).
        text: Option<String>,
        /// Image URLs shown with the text (`images`; empty when absent).
        images: Vec<String>,
        /// An idempotency key: a resent command with it is not run twice.
        client_id: Option<String>,
    },
    /// Same rules as `POST /input`.
    Input {
        /// The chat.
        chat_id: Option<String>,
        /// The answer; `None` with `auto_reply`.
        text: Option<String>,
        /// The request answered (guards against a stale answer).
        request_id: Option<String>,
        /// Use the agent's auto reply instead of a text.
        auto_reply: bool,
        /// The answer to a `tool_calls` request, instead of a text.
        tool_results: Option<Vec<ToolResult>>,
        /// An idempotency key: a resent command with it is not run twice.
        client_id: Option<String>,
    },
    /// Stop the active run.
    Cancel {
        /// The chat.
        chat_id: Option<String>,
    },
    /// Every `chat.status` of the caller's tenant.
    WatchStatus,
    /// Stop the status feed.
    UnwatchStatus,
    /// Liveness: answered with `pong`.
    Ping,
}

/// Every field any op takes, read flat so a bad one is named exactly.
#[derive(Debug, Deserialize)]
struct Fields {
    op: String,
    chat_id: Option<String>,
    after_seq: Option<u64>,
    #[serde(default)]
    view: MessageView,
    message: Option<String>,
    content: Option<String>,
    images: Option<Vec<String>>,
    request_id: Option<String>,
    #[serde(default)]
    auto_reply: bool,
    tool_results: Option<Vec<ToolResult>>,
    client_id: Option<String>,
}

impl Fields {
    fn into_op(self) -> Op {
        let chat_id = self.chat_id;
        let text = self.message.or(self.content);
        match self.op.as_str() {
            "subscribe" => Op::Subscribe { chat_id, after_seq: self.after_seq, view: self.view },
            "unsubscribe" => Op::Unsubscribe { chat_id },
            "message" => {
                let images = self.images.unwrap_or_default();
                Op::Message { chat_id, text, images, client_id: self.client_id }
            }
            "input" => Op::Input {
                chat_id,
                text,
                request_id: self.request_id,
                auto_reply: self.auto_reply,
                tool_results: self.tool_results,
                client_id: self.client_id,
            },
            "cancel" => Op::Cancel { chat_id },
            "watch_status" => Op::WatchStatus,
            "unwatch_status" => Op::UnwatchStatus,
            _ => Op::Ping,
        }
    }
}

/// A parsed command with its optional `ref`, echoed in the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Echoed in the reply.
    pub reference: Option<Value>,
    /// What to do.
    pub op: Op,
}

/// A frame that is not a command: answered with an `error` frame, and the
/// connection stays usable.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    /// The `ref`, if one could be read.
    pub reference: Option<Value>,
    /// `invalid_json`, `unknown_op`, `invalid_request`.
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Command, BadFrame> {
    let bad = |reference, code, message: String| BadFrame { reference, code, message };
    if let Err(e) = crate::model::check_json_depth(text.as_bytes()) {
        let field = e.details.get("param").and_then(Value::as_str).unwrap_or("body").to_owned();
        return Err(bad(None, e.code, format!("`{field}`: {}", e.message)));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| bad(None, ErrorCode::InvalidJson, format!("malformed JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(bad(None, ErrorCode::InvalidRequest, "a command is a JSON object with an `op`".into()));
    };
    let reference = object.remove("ref");
    match object.get("op").and_then(Value::as_str) {
        None => return Err(bad(reference, ErrorCode::InvalidRequest, "missing `op`".into())),
        Some(op) if !OPS.contains(&op) => {
            return Err(bad(
                reference,
                ErrorCode::UnknownOp,
                format!("unknown op `{op}`; known: {}", OPS.join(", ")),
            ));
        }
        Some(_) => {}
    }
    let fields: Fields = serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        bad(reference.clone(), ErrorCode::InvalidRequest, format!("{}: {}", e.path(), e.inner()))
    })?;
    Ok(Command { reference, op: fields.into_op() })
}

fn render(kind: &str, reference: Option<&Value>, fields: Value) -> Utf8Bytes {
    let mut object = Map::new();
    object.insert("type".into(), json!(kind));
    if let Some(r) = reference {
        object.insert("ref".into(), r.clone());
    }
    if let Value::Object(extra) = fields {
        object.extend(extra);
    }
    Utf8Bytes::from(Value::Object(object).to_string())
}

/// `{"type":"ack","ref","op",...fields}`
pub fn ack(reference: Option<&Value>, op: &str, fields: Value) -> Utf8Bytes {
    let mut fields = fields;
    if let Value::Object(f) = &mut fields {
        f.insert("op".into(), json!(op));
    } else {
        fields = json!({"op": op});
    }
    render("ack", reference, fields)
}

/// `{"type":"subscribed","ref","chat_id","last_seq","view"}`
pub fn subscribed(reference: Option<&Value>, chat_id: &str, last_seq: u64, view: MessageView) -> Utf8Bytes {
    let fields = json!({"chat_id": chat_id, "last_seq": last_seq, "view": view.as_str()});
    render("subscribed", reference, fields)
}

/// `{"type":"error","ref","code","message",...details}`
pub fn error(reference: Option<&Value>, e: &ClientError) -> Utf8Bytes {
    let mut fields = e.details.clone();
    fields.insert("code".into(), json!(e.code.as_str()));
    fields.insert("message".into(), json!(e.message));
    render("error", reference, Value::Object(fields))
}

/// `{"type":"pong","ref"}`
pub fn pong(reference: Option<&Value>) -> Utf8Bytes {
    render("pong", reference, json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT: &str = "chat_00000000000000000000000001";

    #[test]
    fn a_subscribe_with_a_ref_parses() {
        let c =
            parse(r#"{"op":"subscribe","chat_id":"chat_00000000000000000000000001","after_seq":4,"ref":7}"#)
                .unwrap();
        assert_eq!(c.reference, Some(json!(7)));
        assert_eq!(
            c.op,
            Op::Subscribe { chat_id: Some(CHAT.into()), after_seq: Some(4), view: MessageView::All }
        );
    }

    #[test]
    fn a_subscribe_takes_the_final_view_and_names_a_bad_one() {
        let c = parse(r#"{"op":"subscribe","chat_id":"chat_00000000000000000000000001","view":"final"}"#)
            .unwrap();
        assert_eq!(
            c.op,
            Op::Subscribe { chat_id: Some(CHAT.into()), after_seq: None, view: MessageView::Final }
        );
        let e = parse(r#"{"op":"subscribe","chat_id":"chat_00000000000000000000000001","view":"summary"}"#)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.starts_with("view"), "{}", e.message);
    }

    #[test]
    fn not_json_an_unknown_op_and_a_bad_field_are_told_apart() {
        assert_eq!(parse("nope").unwrap_err().code, ErrorCode::InvalidJson);
        let e = parse(r#"{"op":"dance","ref":"a"}"#).unwrap_err();
        assert_eq!((e.code, e.reference), (ErrorCode::UnknownOp, Some(json!("a"))));
        let e = parse(r#"{"op":"subscribe","after_seq":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.message.contains("after_seq"), "{}", e.message);
        assert_eq!(parse("[1]").unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn replies_echo_the_ref() {
        let v: Value =
            serde_json::from_str(&ack(Some(&json!(3)), "cancel", json!({"chat_id": "c"}))).unwrap();
        assert_eq!(v, json!({"type": "ack", "ref": 3, "op": "cancel", "chat_id": "c"}));
        let v: Value = serde_json::from_str(&pong(None)).unwrap();
        assert_eq!(v, json!({"type": "pong"}));
    }
}
