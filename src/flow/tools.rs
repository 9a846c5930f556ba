//! Tools an agent declares to its model (AutoGen 0.2's `register_for_llm`):
//! a name, a description and a JSON-schema `parameters` object. The model may
//! call them; the gateway never executes one: each call is answered by the
//! client (a pending input of kind `tool_calls`). The schema checks the
//! model's arguments before the client is asked.
//!
//! Pure data and pure functions: a FlowGen function's Python `source` is kept
//! as data and never run.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::FlowIssue;

/// Most tools one agent may declare.
pub const MAX_TOOLS_PER_AGENT: usize = 64;
/// Longest tool description, bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Largest `parameters` schema, bytes of its JSON.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// Largest kept `source`, bytes.
pub const MAX_SOURCE_BYTES: usize = 64 * 1024;

/// One tool an agent's model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// The function name the model calls (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON schema of the arguments object (default: an object with no
    /// declared properties).
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
    /// The Python body a FlowGen function had: kept as data, never run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// `{"type": "object", "properties": {}}`.
pub fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

impl ToolSpec {
    /// Why `arguments` (the model's JSON text) cannot be handed to the client:
    /// not JSON, not an object, or not valid against `parameters`.
    pub fn check_arguments(&self, arguments: &str) -> Result<Value, String> {
        let text = if arguments.trim().is_empty() { "{}" } else { arguments };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("Error: {e}\n The argument must be in JSON format."))?;
        if !value.is_object() {
            return Err("Error: the arguments must be a JSON object.".to_owned());
        }
        let validator = jsonschema::validator_for(&self.parameters)
            .map_err(|e| format!("Error: the tool's schema cannot be used: {e}"))?;
        let problems: Vec<String> = validator
            .iter_errors(&value)
            .take(5)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect();
        if problems.is_empty() {
            Ok(value)
        } else {
            Err(format!("Error: the arguments do not match the schema: {}", problems.join("; ")))
        }
    }
}

/// Checks one agent's tools, reporting under `path` (`agents[0].tools`).
pub(super) fn validate(tools: &[ToolSpec], path: &str, issues: &mut Vec<FlowIssue>) {
    if tools.len() > MAX_TOOLS_PER_AGENT {
        issues.push(FlowIssue::new(path, format!("at most {MAX_TOOLS_PER_AGENT} tools per agent")));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, tool) in tools.iter().enumerate() {
        let at = |field: &str| format!("{path}[{i}].{field}");
        if !is_tool_name(&tool.name) {
            issues.push(FlowIssue::new(at("name"), "must match ^[a-zA-Z0-9_-]{1,64}$ (OpenAI's rule)"));
        } else if !seen.insert(tool.name.as_str()) {
            issues.push(FlowIssue::new(at("name"), format!("duplicate tool name `{}`", tool.name)));
        }
        if tool.description.as_ref().is_some_and(|d| d.len() > MAX_DESCRIPTION_BYTES) {
            issues.push(FlowIssue::new(at("description"), format!("at most {MAX_DESCRIPTION_BYTES} bytes")));
        }
        if tool.source.as_ref().is_some_and(|s| s.len() > MAX_SOURCE_BYTES) {
            issues.push(FlowIssue::new(at("source"), format!("at most {MAX_SOURCE_BYTES} bytes")));
        }
        if let Err(why) = check_schema(&tool.parameters) {
            issues.push(FlowIssue::new(at("parameters"), why));
        }
    }
}

/// A usable `parameters` schema: an object schema, bounded, that compiles
/// without fetching anything.
fn check_schema(schema: &Value) -> Result<(), String> {
    if schema.to_string().len() > MAX_SCHEMA_BYTES {
        return Err(format!("at most {MAX_SCHEMA_BYTES} bytes of JSON"));
    }
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("must be a JSON schema with \"type\": \"object\" (the arguments object)".to_owned());
    }
    jsonschema::validator_for(schema).map(|_| ()).map_err(|e| format!("not a usable JSON schema: {e}"))
}

/// OpenAI's function name rule.
pub fn is_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(parameters: Value) -> ToolSpec {
        ToolSpec { name: "sh".into(), description: None, parameters, source: None }
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let t = tool(json!({
            "type": "object",
            "properties": {"script": {"type": "string"}},
            "required": ["script"]
        }));
        assert_eq!(t.check_arguments(r#"{"script":"ls"}"#).unwrap(), json!({"script": "ls"}));
        assert!(t.check_arguments("{not json").unwrap_err().contains("JSON format"));
        assert!(t.check_arguments("[1]").unwrap_err().contains("object"));
        assert!(t.check_arguments(r#"{"script": 3}"#).unwrap_err().contains("schema"));
        assert!(t.check_arguments("{}").unwrap_err().contains("script"));
    }

    #[test]
    fn a_bad_schema_or_name_is_reported_by_path() {
        let mut issues = Vec::new();
        let bad = vec![
            ToolSpec { name: "bad name".into(), ..tool(empty_object_schema()) },
            ToolSpec { name: "a".into(), ..tool(json!({"type": "string"})) },
            ToolSpec {
                name: "b".into(),
                ..tool(json!({"type": "object", "properties": {"a": {"type": 7}}}))
            },
        ];
        validate(&bad, "agents[0].tools", &mut issues);
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["agents[0].tools[0].name", "agents[0].tools[1].parameters", "agents[0].tools[2].parameters"]
        );
    }
}
