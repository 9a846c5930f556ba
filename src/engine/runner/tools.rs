//! An agent reply's tool calls, checked before they are stored: each gets a
//! call id (the model's, or one made from the message id), and a call the
//! client is not asked (an unknown tool, arguments that are not a JSON object
//! or break the tool's schema, arguments over `runs.max_tool_argument_bytes`,
//! calls past `runs.max_tool_calls_per_message`) gets the error the model is
//! answered with (AutoGen's wording where it has one). A reply taking the run
//! past `runs.max_tool_calls_per_run` fails the run instead.
//!
//! Pure: touches nothing.

use serde_json::{Value, json};

use super::bounds::Exceeded;
use crate::config::RunLimits;
use crate::engine::prompt;
use crate::engine::provider::ToolCall;
use crate::flow::AgentSpec;
use crate::model::Message;

/// The `metadata.tool_calls` of `agent`'s reply making `calls`, or the cap
/// the run goes over. `earlier` is this run's messages so far.
pub(super) fn checked_calls(
    agent: &AgentSpec,
    calls: Vec<ToolCall>,
    message_id: &str,
    earlier: &[Message],
    caps: &RunLimits,
) -> Result<Value, Exceeded> {
    let made: usize = earlier.iter().map(|m| prompt::calls_of(m).len()).sum();
    let cap = caps.max_tool_calls_per_run as usize;
    if made + calls.len() > cap {
        return Err(Exceeded {
            code: "max_tool_calls_per_run",
            message: format!(
                "the run made {} tool calls, over runs.max_tool_calls_per_run ({cap})",
                made + calls.len()
            ),
        });
    }
    let mut ids: Vec<String> = Vec::with_capacity(calls.len());
    let mut out = Vec::with_capacity(calls.len());
    for (i, call) in calls.into_iter().enumerate() {
        let mut id = call.id.clone();
        if id.is_empty() || ids.contains(&id) {
            id = format!("call_{message_id}_{i}");
        }
        ids.push(id.clone());
        let (arguments, error) = match refusal(agent, &call, i, caps) {
            Some((arguments, why)) => (arguments, Some(why)),
            None => (call.arguments, None),
        };
        let mut entry = json!({"call_id": id, "name": call.name, "arguments": arguments});
        if let Some(why) = error {
            entry["error"] = json!(why);
        }
        out.push(entry);
    }
    Ok(Value::Array(out))
}

/// Why the client is not asked this call (with the arguments to store), if so.
fn refusal(agent: &AgentSpec, call: &ToolCall, i: usize, caps: &RunLimits) -> Option<(String, String)> {
    let per_message = caps.max_tool_calls_per_message as usize;
    if i >= per_message {
        let why = format!("Error: at most {per_message} tool calls per message; call it again.");
        return Some((call.arguments.clone(), why));
    }
    if call.arguments.len() > caps.max_tool_argument_bytes {
        let why = format!("Error: the arguments are over {} bytes.", caps.max_tool_argument_bytes);
        return Some(("{}".to_owned(), why));
    }
    let Some(tool) = agent.tools.iter().find(|t| t.name == call.name) else {
        return Some((call.arguments.clone(), format!("Error: Function {} not found.", call.name)));
    };
    tool.check_arguments(&call.arguments).err().map(|why| (call.arguments.clone(), why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentSpec {
        serde_json::from_value(json!({
            "name": "a", "kind": "assistant", "model": "m",
            "tools": [{"name": "sh", "parameters": {
                "type": "object", "properties": {"script": {"type": "string"}}, "required": ["script"]
            }}]
        }))
        .unwrap()
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
    }

    #[test]
    fn calls_get_ids_and_refused_ones_their_error() {
        let calls = vec![
            call("c1", "sh", r#"{"script":"ls"}"#),
            call("", "sh", "{oops"),
            call("c1", "nope", "{}"),
            call("c4", "sh", r#"{"script":1}"#),
        ];
        let caps = RunLimits { max_tool_calls_per_message: 3, ..RunLimits::default() };
        let out = checked_calls(&agent(), calls, "msg_1", &[], &caps).unwrap();
        assert_eq!(out[0], json!({"call_id": "c1", "name": "sh", "arguments": r#"{"script":"ls"}"#}));
        assert_eq!(out[1]["call_id"], "call_msg_1_1");
        assert!(out[1]["error"].as_str().unwrap().contains("JSON format"));
        assert_eq!(out[2]["call_id"], "call_msg_1_2");
        assert_eq!(out[2]["error"], "Error: Function nope not found.");
        assert!(out[3]["error"].as_str().unwrap().contains("at most 3"));
    }

    #[test]
    fn a_reply_past_the_runs_cap_is_refused() {
        let caps = RunLimits { max_tool_calls_per_run: 1, ..RunLimits::default() };
        let calls = vec![call("a", "sh", "{}"), call("b", "sh", "{}")];
        let over = checked_calls(&agent(), calls, "m", &[], &caps).unwrap_err();
        assert_eq!(over.code, "max_tool_calls_per_run");
    }
}
