//! Flow-wide settings of an imported graph: the `config` node (name,
//! description, the model from `filter_dict`, what cannot be carried over) and
//! a `groupchat` node's settings.
//!
//! Pure: touches nothing.

use serde_json::{Map, Value, json};

use super::ModelCatalog;
use super::graph::{Graph, Node, Report};
use crate::flow::{SpeakerSelection, ToolSpec};

/// The name an import gets when the graph names none.
pub(super) const FALLBACK_NAME: &str = "Imported FlowGen flow";

/// What the config node (or its absence) decides.
#[derive(Debug)]
pub(super) struct Settings {
    pub name: String,
    pub description: Option<String>,
    /// The assistants' model; `None` when none fits (already reported).
    pub model: Option<String>,
    /// Where the model choice comes from, for issues about it.
    pub model_path: String,
    /// The `functions`, as tools of every assistant.
    pub tools: Vec<ToolSpec>,
    /// Where they come from, for issues about them.
    pub functions_path: String,
}

/// Reads the config node.
pub(super) fn flow_settings(g: &Graph, catalog: &ModelCatalog, r: &mut Report) -> Settings {
    let mut configs = g.of_kind("config");
    let config = configs.next();
    for extra in configs {
        r.warn(extra.at(), "a second config node; only the first one is read, this one is ignored");
    }
    let name_path = config.map_or("config.flow_name".to_owned(), |c| c.field("flow_name"));
    let name = config
        .and_then(|c| c.nonblank("flow_name", r))
        .or_else(|| g.record_name.clone().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| {
            r.warn(name_path, format!("no flow name; named `{FALLBACK_NAME}`"));
            FALLBACK_NAME.to_owned()
        });
    let description = config.and_then(|c| c.nonblank("flow_description", r));
    let model_path = config.map_or("config.filter_dict".to_owned(), |c| c.field("filter_dict"));
    let model = choose_model(config, catalog, &model_path, r);
    if let Some(c) = config {
        warn_tuning(c, model.as_deref(), r);
    }
    let tools = config.map(|c| import_functions(c, r)).unwrap_or_default();
    let functions_path = config.map_or("config.functions".to_owned(), |c| c.field("functions"));
    Settings { name, description, model, model_path, tools, functions_path }
}

/// The first `filter_dict` name the gateway knows; `default` when there is none.
fn choose_model(config: Option<&Node>, catalog: &ModelCatalog, path: &str, r: &mut Report) -> Option<String> {
    let Some(tried) = requested_models(config.and_then(|c| c.get("filter_dict"))) else {
        r.issue(path, "must be a comma-separated list of model names");
        return None;
    };
    if tried.is_empty() {
        if catalog.default.is_none() {
            r.issue(path, "no model: filter_dict is empty and the gateway has no default model");
        }
        return catalog.default.clone();
    }
    if let Some(found) = tried.iter().find(|m| catalog.known.contains(*m)) {
        return Some(found.clone());
    }
    let mut known: Vec<&str> = catalog.known.iter().map(String::as_str).collect();
    known.sort_unstable();
    r.issue(
        path,
        format!(
            "none of the models tried ({}) is known to the gateway (known: {})",
            quoted(tried.iter().map(String::as_str)),
            quoted(known.into_iter()),
        ),
    );
    None
}

/// `"a, b"`, `["a", "b"]` or AutoGen's own `{"model": […]}`; `None` when it is
/// none of these.
fn requested_models(value: Option<&Value>) -> Option<Vec<String>> {
    let names = |s: &str| {
        s.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect::<Vec<_>>()
    };
    match value {
        None => Some(Vec::new()),
        Some(Value::String(s)) => Some(names(s)),
        Some(Value::Array(items)) => {
            items.iter().map(|i| i.as_str().map(names)).collect::<Option<Vec<_>>>().map(|v| v.concat())
        }
        Some(Value::Object(o)) => requested_models(o.get("model").filter(|m| !m.is_object())),
        Some(_) => None,
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if list.is_empty() { "none".to_owned() } else { list.join(", ") }
}

/// FlowGen's `functions`: each becomes a tool declared to every assistant's
/// model (FlowGen gave them all one `llm_config`), answered by the client; the
/// Python `code` is kept as the tool's `source`, never run.
fn import_functions(config: &Node, r: &mut Report) -> Vec<ToolSpec> {
    let path = config.field("functions");
    let items = match config.get("functions") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            r.issue(path, "must be a list of functions");
            return Vec::new();
        }
    };
    items.iter().enumerate().filter_map(|(i, f)| function_tool(f, &format!("{path}[{i}]"), r)).collect()
}

/// One FlowGen function as a tool; `None` (reported) when it has no name.
fn function_tool(f: &Value, at: &str, r: &mut Report) -> Option<ToolSpec> {
    let Some(name) = f.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
        r.issue(format!("{at}.name"), "a function needs a name");
        return None;
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    let params = match f.get("parameters") {
        None | Some(Value::Null) => &Vec::new(),
        Some(Value::Array(params)) => params,
        Some(_) => {
            r.issue(format!("{at}.parameters"), "must be a list of parameters");
            return None;
        }
    };
    for (j, p) in params.iter().enumerate() {
        let Some(pname) = p.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            r.issue(format!("{at}.parameters[{j}].name"), "a parameter needs a name");
            continue;
        };
        let mut prop = Map::new();
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("string");
        prop.insert("type".into(), json!(json_type(kind)));
        if let Some(d) = p.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
            prop.insert("description".into(), json!(d));
        }
        properties.insert(pname.to_owned(), Value::Object(prop));
        if p.get("required") == Some(&Value::Bool(true)) {
            required.push(json!(pname));
        }
    }
    r.warn(
        at,
        format!(
            "`{name}` is declared to the assistants' models as a tool; Flowgate never runs its \
             Python (kept as the tool's `source`): each call must be answered by a client \
             (a pending input of kind `tool_calls`, answered with `tool_results` on \
             POST /chats/{{id}}/input or the socket's `input` op)"
        ),
    );
    Some(ToolSpec {
        name: name.to_owned(),
        description: f.get("description").and_then(Value::as_str).map(str::to_owned),
        parameters: json!({"type": "object", "properties": properties, "required": required}),
        source: f.get("code").and_then(Value::as_str).filter(|c| !c.is_empty()).map(str::to_owned),
    })
}

/// A parameter type as JSON schema names it (FlowGen's editor offered these,
/// and Python's names are taken too).
fn json_type(kind: &str) -> &str {
    match kind {
        "str" => "string",
        "int" => "integer",
        "float" => "number",
        "bool" => "boolean",
        "list" => "array",
        "dict" => "object",
        other => other,
    }
}

/// Sampling settings cannot change a model of the gateway's registry.
fn warn_tuning(config: &Node, model: Option<&str>, r: &mut Report) {
    let model = model.map_or("the gateway's model".to_owned(), |m| format!("`{m}`"));
    for key in ["temperature", "max_tokens", "timeout"] {
        if config.get(key).is_some() {
            r.warn(
                config.field(key),
                format!(
                    "not applied: the assistants use {model} as the gateway's model \
                     registry configures it; set it there, or register a native flow \
                     with its own `models` entry"
                ),
            );
        }
    }
}

/// A `groupchat` node's settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupSettings {
    pub max_round: u32,
    pub speaker_selection: SpeakerSelection,
    pub involve_user: bool,
}

/// AutoGen's and FlowGen's default `max_round`.
const DEFAULT_MAX_ROUND: u32 = 20;

/// Reads a `groupchat` node.
pub(super) fn group_settings(group: &Node, r: &mut Report) -> GroupSettings {
    let max_round = match group.count("max_round", r) {
        Some(0) => {
            r.issue(group.field("max_round"), "must be at least 1");
            DEFAULT_MAX_ROUND
        }
        Some(n) => n,
        None => DEFAULT_MAX_ROUND,
    };
    let speaker_selection = match group.text("speaker_selection_method", r) {
        None => {
            r.warn(
                group.field("speaker_selection_method"),
                "absent: imported as `auto` (AutoGen's default, which FlowGen's code ran): \
                 a model picks each speaker; set round_robin for a fixed order",
            );
            SpeakerSelection::Auto
        }
        Some(method) => match method.trim().to_ascii_lowercase().as_str() {
            "round_robin" => SpeakerSelection::RoundRobin,
            "random" => SpeakerSelection::Random,
            "manual" => SpeakerSelection::Manual,
            "auto" => SpeakerSelection::Auto,
            _ => {
                r.issue(
                    group.field("speaker_selection_method"),
                    format!("unknown method `{method}`: use round_robin, random, manual or auto"),
                );
                SpeakerSelection::RoundRobin
            }
        },
    };
    for key in ["allow_repeat_speaker", "send_introductions"] {
        if group.get(key).is_some() {
            r.warn(group.field(key), "not supported; ignored");
        }
    }
    GroupSettings {
        max_round,
        speaker_selection,
        involve_user: group.flag("involve_user", r).unwrap_or(false),
    }
}
