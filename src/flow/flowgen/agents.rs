//! One agent node to one native [`AgentSpec`]: which node types are agents,
//! which classes and features run natively, and how their fields map.
//!
//! Pure: touches nothing.

use serde_json::Value;

use super::graph::{Node, Report};
use super::lambda;
use crate::flow::{AgentKind, AgentSpec, HumanInputMode, Termination};

/// Which editor wrote the graph: field meanings differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// FlowGen: edges point to the user proxy, `class`, lambda strings.
    FlowGen,
    /// Agentok: an initializer, `converse` edges, `class_type`, `termination_msg`.
    Agentok,
}

/// A mapped agent; its own termination rule (AutoGen's `is_termination_msg`)
/// is in `spec.termination`.
#[derive(Debug, Clone)]
pub(super) struct Mapped {
    pub spec: AgentSpec,
}

/// The classes that run natively.
const NATIVE_CLASSES: [&str; 3] = ["AssistantAgent", "UserProxyAgent", "ConversableAgent"];

/// AutoGen's vision agent (FlowGen's default new flow has one): imported as an
/// assistant, its model given the images of user messages as content parts.
const MULTIMODAL_CLASS: &str = "MultimodalConversableAgent";

/// The native role of a node, if it is an agent at all. Unsupported agent
/// types get the nearest role, so the rest of the graph still validates.
pub(super) fn role(node: &Node) -> Option<AgentKind> {
    match node.kind.as_str() {
        "assistant" | "gpt_assistant" | "retrieve_assistant" | "custom_conversable" => {
            Some(AgentKind::Assistant)
        }
        "user" | "retrieve_user" => Some(AgentKind::UserProxy),
        "conversable" if node.get("disable_llm") == Some(&Value::Bool(true)) => Some(AgentKind::UserProxy),
        "conversable" => Some(AgentKind::Assistant),
        _ => None,
    }
}

/// Maps an agent node, reporting every unsupported class, feature or value.
/// `model` is the assistants' model.
pub(super) fn map(node: &Node, dialect: Dialect, model: Option<&str>, r: &mut Report) -> Mapped {
    check_supported(node, r);
    let kind = role(node).unwrap_or(AgentKind::Assistant);
    let conversable = node.kind == "conversable";
    let system_message = match kind {
        AgentKind::Assistant if node.get("enable_system_message") == Some(&Value::Bool(false)) => None,
        AgentKind::Assistant => node.nonblank("system_message", r),
        AgentKind::UserProxy => {
            if dialect == Dialect::Agentok && node.nonblank("system_message", r).is_some() {
                r.warn(node.field("system_message"), "ignored: an imported user proxy has no model");
            }
            None
        }
    };
    let human_input_mode = if kind == AgentKind::UserProxy || conversable {
        human_input_mode(node, kind, r)
    } else {
        HumanInputMode::Never
    };
    warn_default_code_execution(node, r);
    let mut rules = termination_rules(node, r);
    let termination = match rules.len() {
        0 => None,
        1 => rules.pop(),
        _ => Some(Termination::Any { any: rules }),
    };
    let spec = AgentSpec {
        name: node.text("name", r).unwrap_or_default(),
        kind,
        model: (kind == AgentKind::Assistant).then(|| model.map(str::to_owned)).flatten(),
        system_message,
        description: node.nonblank("description", r),
        human_input_mode,
        max_consecutive_auto_reply: auto_reply_limit(node, dialect, kind, r),
        default_auto_reply: None,
        termination,
        tools: Vec::new(),
    };
    Mapped { spec }
}

/// Reports node types, classes and features that cannot run natively.
fn check_supported(node: &Node, r: &mut Report) {
    let type_reason = match node.kind.as_str() {
        "custom_conversable" => Some("extension agents run custom Python"),
        "gpt_assistant" => Some("they run on the OpenAI Assistants API"),
        "retrieve_assistant" | "retrieve_user" => Some("they retrieve documents (RAG)"),
        _ => None,
    };
    if let Some(reason) = type_reason {
        r.issue(format!("{}.type", node.at()), format!("`{}` nodes are not supported: {reason}", node.kind));
    } else {
        check_class(node, r);
    }
    match node.get("code_execution_config") {
        None | Some(Value::Bool(false)) => {}
        Some(_) => r.issue(
            node.field("code_execution_config"),
            "code execution is not supported: Flowgate never runs code; set it to false",
        ),
    }
    if node.get("enable_code_execution") == Some(&Value::Bool(true)) {
        r.issue(
            node.field("enable_code_execution"),
            "code execution is not supported: Flowgate never runs code",
        );
    }
    if node.get("retrieve_config").is_some() {
        r.issue(node.field("retrieve_config"), "retrieval (RAG) is not supported");
    }
}

fn check_class(node: &Node, r: &mut Report) {
    let key = if node.get("class_type").is_some() { "class_type" } else { "class" };
    let Some(class) = node.text(key, r) else {
        return;
    };
    if NATIVE_CLASSES.contains(&class.as_str()) {
        return;
    }
    if class == MULTIMODAL_CLASS {
        r.warn(
            node.field(key),
            "imported as an assistant: images in user messages (`images` of POST /messages) are \
             passed to its model as content parts; choose a model that reads images",
        );
        return;
    }
    let reason = match class.as_str() {
        "GPTAssistantAgent" => "it runs on the OpenAI Assistants API",
        c if c.starts_with("Retrieve") => "it retrieves documents (RAG)",
        "LLaVAAgent" => "it calls a LLaVA server of its own",
        "MathUserProxyAgent" => "it executes code",
        _ => "only AssistantAgent, UserProxyAgent and ConversableAgent run natively",
    };
    r.issue(node.field(key), format!("class `{class}` is not supported: {reason}"));
}

/// An absent mode is AutoGen's default for the class the node became:
/// `UserProxyAgent` `ALWAYS`, `ConversableAgent` `TERMINATE` (said in a warning).
fn human_input_mode(node: &Node, kind: AgentKind, r: &mut Report) -> HumanInputMode {
    let Some(mode) = node.text("human_input_mode", r) else {
        let (default, class) = match (node.kind.as_str(), kind) {
            // A native assistant never asks the human.
            (_, AgentKind::Assistant) => return HumanInputMode::Never,
            ("conversable", _) => (HumanInputMode::Terminate, "ConversableAgent"),
            _ => (HumanInputMode::Always, "UserProxyAgent"),
        };
        {
            r.warn(
                node.field("human_input_mode"),
                format!("absent: imported as {default:?} (AutoGen's {class} default), so the human is asked; set NEVER to run without them")
                    .replace("Always", "ALWAYS")
                    .replace("Terminate", "TERMINATE"),
            );
        }
        return default;
    };
    match mode.trim().to_ascii_uppercase().as_str() {
        "ALWAYS" => HumanInputMode::Always,
        "TERMINATE" => HumanInputMode::Terminate,
        "NEVER" | "" => HumanInputMode::Never,
        _ => {
            r.issue(
                node.field("human_input_mode"),
                format!("unknown mode `{mode}`: use ALWAYS, TERMINATE or NEVER"),
            );
            HumanInputMode::Never
        }
    }
}

/// AutoGen's `UserProxyAgent` ran code blocks unless `code_execution_config`
/// said `false`; the imported proxy never runs code, which is worth a word.
fn warn_default_code_execution(node: &Node, r: &mut Report) {
    if node.kind == "user" && node.get("code_execution_config").is_none() {
        r.warn(
            node.field("code_execution_config"),
            "absent: AutoGen's UserProxyAgent executed the code blocks it received by default; \
             the imported user proxy never runs code (its reply is the human's, or its auto reply)",
        );
    }
}

/// `max_consecutive_auto_reply`, where `0` means "not set" except on a
/// FlowGen user proxy (FlowGen's code generator passed it on only there).
fn auto_reply_limit(node: &Node, dialect: Dialect, kind: AgentKind, r: &mut Report) -> Option<u32> {
    let limit = node.count("max_consecutive_auto_reply", r)?;
    let zero_is_a_limit = dialect == Dialect::FlowGen && kind == AgentKind::UserProxy;
    (limit > 0 || zero_is_a_limit).then_some(limit)
}

/// `is_termination_msg` (the editor's lambda) and Agentok's `termination_msg`
/// (a word the content contains, ignoring case).
fn termination_rules(node: &Node, r: &mut Report) -> Vec<Termination> {
    let mut rules = Vec::new();
    let declared = node.get("is_termination_msg").is_some() || node.get("termination_msg").is_some();
    if declared
        && node.nonblank("is_termination_msg", r).is_none()
        && node.nonblank("termination_msg", r).is_none()
    {
        r.warn(
            node.field("is_termination_msg"),
            "empty: AutoGen's default rule applies, a message that is exactly `TERMINATE` ends the chat",
        );
    }
    if let Some(source) = node.nonblank("is_termination_msg", r) {
        match lambda::recognise(&source) {
            Some(rule) => rules.push(rule),
            None => r.issue(
                node.field("is_termination_msg"),
                "not the editor's pattern, so it cannot be imported (lambdas are never run): \
                 use `lambda x: x.get(\"content\", \"\").rstrip().endswith(\"TERMINATE\")` \
                 with your word, or register a native flow with a declarative `termination`",
            ),
        }
    }
    if let Some(word) = node.nonblank("termination_msg", r) {
        rules.push(Termination::Contains { contains: word.trim().to_owned(), ignore_case: true });
    }
    rules
}
