//! FlowGen (and Agentok) graph import: graphs built from the editors' saved
//! format, imported against a known model catalog, and the native examples.
//! What the import refuses (and the near misses it accepts) is in
//! `flowgen_import_refusals.rs`, which shares this module's helpers.

use std::collections::BTreeMap;
use std::path::Path;

use flowgate::flow::flowgen::{self, ModelCatalog};
use flowgate::flow::{
    AgentKind, AgentSpec, ChatKind, ChatSpec, Flow, FlowIssue, HumanInputMode, SpeakerSelection, Termination,
};
use serde_json::{Value, json};

pub(crate) fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/flowgen").join(name);
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub(crate) fn catalog() -> ModelCatalog {
    ModelCatalog::new(["default", "llama3.2"], Some("default"))
}

pub(crate) fn problems(graph: &Value, models: &ModelCatalog) -> Vec<FlowIssue> {
    match flowgen::import(graph, models) {
        Ok(imported) => panic!("expected the import to fail, got {:#?}", imported.flow),
        Err(issues) => issues,
    }
}

pub(crate) fn paths(issues: &[FlowIssue]) -> Vec<&str> {
    issues.iter().map(|i| i.path.as_str()).collect()
}

fn endswith(word: &str) -> Termination {
    Termination::Endswith { endswith: word.into(), ignore_case: false }
}

fn agent(name: &str, kind: AgentKind) -> AgentSpec {
    AgentSpec {
        name: name.into(),
        kind,
        model: None,
        system_message: None,
        description: None,
        human_input_mode: HumanInputMode::Never,
        max_consecutive_auto_reply: None,
        default_auto_reply: None,
        termination: None,
        tools: Vec::new(),
    }
}

pub(crate) fn set_node_field(graph: &mut Value, node: &str, key: &str, value: Value) {
    let nodes = graph["nodes"].as_array_mut().expect("nodes");
    let node = nodes.iter_mut().find(|n| n["id"] == node).expect("node exists");
    node["data"][key] = value;
}

#[test]
fn an_assistant_and_a_user_proxy_import_as_a_two_agent_flow() {
    let imported = flowgen::import(&fixture("two_agent.json"), &catalog()).expect("imports");
    let expected = Flow {
        name: "Simple Chat".into(),
        description: Some("A user proxy and one assistant".into()),
        models: BTreeMap::new(),
        agents: vec![
            AgentSpec {
                human_input_mode: HumanInputMode::Terminate,
                max_consecutive_auto_reply: Some(3),
                // The proxy's own rule, as AutoGen applied it: on what it answers.
                termination: Some(endswith("TERMINATE")),
                ..agent("UserProxy", AgentKind::UserProxy)
            },
            AgentSpec {
                // The first filter_dict name the gateway knows.
                model: Some("llama3.2".into()),
                system_message: Some(
                    "You are a helpful assistant. Reply TERMINATE when the task is done.".into(),
                ),
                max_consecutive_auto_reply: Some(5),
                ..agent("Assistant", AgentKind::Assistant)
            },
        ],
        chat: ChatSpec {
            kind: ChatKind::TwoAgent,
            speaker_selection: SpeakerSelection::RoundRobin,
            max_round: None,
            termination: None,
            selector_model: None,
        },
    };
    assert_eq!(imported.flow, expected);
    // AutoGen's UserProxyAgent ran code by default: the import says it does not.
    assert_eq!(paths(&imported.warnings), ["nodes[user-1].data.code_execution_config"]);
}

#[test]
fn a_group_of_three_assistants_imports_with_its_config() {
    let imported = flowgen::import(&fixture("group_chat.json"), &catalog()).expect("imports");
    let assistant =
        |name: &str| AgentSpec { model: Some("default".into()), ..agent(name, AgentKind::Assistant) };
    let expected = Flow {
        name: "Plan, write, review".into(),
        description: None,
        models: BTreeMap::new(),
        agents: vec![
            AgentSpec {
                system_message: Some("You break the task into steps.".into()),
                description: Some("Plans the work.".into()),
                ..assistant("Planner")
            },
            // enable_system_message is false; 0 auto replies means "not set".
            assistant("Writer"),
            AgentSpec {
                system_message: Some("You review the writer's draft. Say APPROVED when it is good.".into()),
                max_consecutive_auto_reply: Some(4),
                ..assistant("Critic")
            },
            // involve_user: the user proxy joins, last, as FlowGen placed it.
            AgentSpec {
                max_consecutive_auto_reply: Some(0),
                termination: Some(endswith("APPROVED")),
                ..agent("Admin", AgentKind::UserProxy)
            },
        ],
        chat: ChatSpec {
            kind: ChatKind::Group,
            // No method in the graph: AutoGen's default, which FlowGen ran.
            speaker_selection: SpeakerSelection::Auto,
            max_round: Some(12),
            // The manager had no rule: AutoGen's default (exactly TERMINATE).
            termination: None,
            selector_model: None,
        },
    };
    assert_eq!(imported.flow, expected);
    assert_eq!(
        paths(&imported.warnings),
        vec![
            "nodes[config-1].data.temperature",
            "nodes[config-1].data.max_tokens",
            "nodes[group-1].data.speaker_selection_method"
        ]
    );
}

#[test]
fn the_group_speaker_selection_method_and_defaults_are_carried_over() {
    let mut graph = fixture("group_chat.json");
    set_node_field(&mut graph, "group-1", "speaker_selection_method", json!("auto"));
    set_node_field(&mut graph, "group-1", "max_round", Value::Null);
    set_node_field(&mut graph, "group-1", "involve_user", json!(false));
    let flow = flowgen::import(&graph, &catalog()).expect("imports").flow;
    assert_eq!(flow.chat.speaker_selection, SpeakerSelection::Auto);
    assert_eq!(flow.chat.max_round, Some(20));
    let names: Vec<&str> = flow.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Planner", "Writer", "Critic"]);
    // The user proxy only opens the group: its rule never applies (a warning says so).
    assert_eq!(flow.chat.termination, None);
    assert!(flow.agents.iter().all(|a| a.termination.is_none()));
    for (method, expected) in [
        ("round_robin", SpeakerSelection::RoundRobin),
        ("random", SpeakerSelection::Random),
        ("manual", SpeakerSelection::Manual),
    ] {
        set_node_field(&mut graph, "group-1", "speaker_selection_method", json!(method));
        let flow = flowgen::import(&graph, &catalog()).expect("imports").flow;
        assert_eq!(flow.chat.speaker_selection, expected, "{method}");
    }
}

#[test]
fn note_nodes_are_ignored() {
    let with_notes = fixture("two_agent.json");
    let mut without = with_notes.clone();
    without["nodes"].as_array_mut().expect("nodes").retain(|n| n["type"] != "note");
    let a = flowgen::import(&with_notes, &catalog()).expect("imports");
    let b = flowgen::import(&without, &catalog()).expect("imports");
    assert_eq!(a, b);
    assert!(a.warnings.iter().all(|w| !w.path.contains("note")));
}

fn imported_from_text(value: &Value) -> bool {
    value.is_string()
}

#[test]
fn every_editor_lambda_variant_is_recognised() {
    let mut graph = fixture("two_agent.json");
    for lambda in [
        r#"lambda x: x.get("content", "").rstrip().endswith("TERMINATE")"#,
        "lambda x: x.get('content', '').rstrip().endswith('TERMINATE')",
        "lambda msg: msg.get('content', '').rstrip().endswith(\"TERMINATE\")",
        "lambda  x :  x.get( 'content' , '' ).rstrip( ).endswith( 'TERMINATE' ) ",
        "lambda x: (x.get('content') or '').rstrip().endswith('TERMINATE')",
        r#"lambda x: x.get("content", "") and x.get("content", "").rstrip().endswith("TERMINATE")"#,
        r#"lambda x: x["content"].rstrip().endswith("TERMINATE")"#,
    ] {
        set_node_field(&mut graph, "user-1", "is_termination_msg", json!(lambda));
        let flow = flowgen::import(&graph, &catalog()).unwrap_or_else(|e| panic!("{lambda}: {e:?}")).flow;
        assert_eq!(flow.agents[0].termination, Some(endswith("TERMINATE")), "{lambda}");
    }
    for none in [json!(""), json!("  "), Value::Null] {
        set_node_field(&mut graph, "user-1", "is_termination_msg", none.clone());
        let imported = flowgen::import(&graph, &catalog()).expect("imports");
        // AutoGen's default rule (exactly TERMINATE), said in a warning.
        assert_eq!(imported.flow.agents[0].termination, None);
        assert_eq!(imported.flow.agents[0].own_termination(), Termination::autogen_default());
        let warned = paths(&imported.warnings).contains(&"nodes[user-1].data.is_termination_msg");
        assert_eq!(warned, imported_from_text(&none), "{none}");
    }
}

#[test]
fn agents_outside_the_conversation_are_left_out_with_a_warning() {
    let mut graph = fixture("two_agent.json");
    graph["nodes"].as_array_mut().expect("nodes").push(json!({
        "id": "spare", "type": "assistant", "position": {"x": 0, "y": 0},
        "data": {"name": "Spare", "class": "AssistantAgent"}
    }));
    let imported = flowgen::import(&graph, &catalog()).expect("imports");
    assert_eq!(imported.flow.agents.len(), 2);
    assert_eq!(paths(&imported.warnings), ["nodes[user-1].data.code_execution_config", "nodes[spare]"]);
}

#[test]
fn a_flowgen_flow_record_is_unwrapped() {
    let mut graph = fixture("two_agent.json");
    set_node_field(&mut graph, "config-1", "flow_name", Value::Null);
    let record = json!({"id": "q13mx69lsj5aez7", "name": "From the record", "flow": graph});
    assert!(flowgen::is_graph(&record));
    let flow = flowgen::import(&record, &catalog()).expect("imports").flow;
    assert_eq!(flow.name, "From the record");
}

#[test]
fn is_graph_tells_a_react_flow_graph_from_a_native_flow() {
    assert!(flowgen::is_graph(&fixture("two_agent.json")));
    assert!(flowgen::is_graph(&json!({"nodes": [], "edges": []})));
    assert!(!flowgen::is_graph(&json!({"nodes": []})));
    assert!(!flowgen::is_graph(&json!({"nodes": {}, "edges": []})));
    assert!(!flowgen::is_graph(&json!([])));
    let native = std::fs::read_to_string(examples_dir().join("two_agent.json")).expect("example");
    assert!(!flowgen::is_graph(&serde_json::from_str(&native).expect("JSON")));
}

#[test]
fn an_agentok_graph_imports_with_its_nested_group() {
    let imported = flowgen::import(&fixture("agentok_group.json"), &catalog()).expect("imports");
    let expected = Flow {
        name: "Imported FlowGen flow".into(),
        description: None,
        models: BTreeMap::new(),
        agents: vec![
            AgentSpec {
                model: Some("default".into()),
                system_message: Some("You write haiku.".into()),
                description: Some("Writes the haiku.".into()),
                max_consecutive_auto_reply: Some(3),
                ..agent("poet", AgentKind::Assistant)
            },
            AgentSpec {
                model: Some("default".into()),
                system_message: Some("You check the haiku's syllables.".into()),
                description: Some("Checks syllables and says TERMINATE when the haiku is right.".into()),
                ..agent("editor", AgentKind::Assistant)
            },
        ],
        chat: ChatSpec {
            kind: ChatKind::Group,
            speaker_selection: SpeakerSelection::Auto,
            max_round: Some(6),
            termination: None,
            selector_model: None,
        },
    };
    assert_eq!(imported.flow, expected);
    let mut warned = paths(&imported.warnings);
    warned.sort_unstable();
    assert_eq!(
        warned,
        [
            "config.flow_name",
            "edges[user-group].data.max_turns",
            "nodes[user].data.code_execution_config",
            // The ALWAYS user opens the chat but is not in the group, so
            // neither its mode nor its rule has any effect.
            "nodes[user].data.human_input_mode",
            "nodes[user].data.termination_msg",
        ]
    );
}

#[test]
fn an_agentok_two_agent_chat_imports() {
    let mut graph = fixture("agentok_group.json");
    graph["edges"][1]["target"] = json!("poet");
    let flow = flowgen::import(&graph, &catalog()).expect("imports").flow;
    assert_eq!(flow.chat.kind, ChatKind::TwoAgent);
    let names: Vec<&str> = flow.agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["user", "poet"]);
    // Agentok's 0 means "not set"; ALWAYS asks the human every turn.
    assert_eq!(flow.agents[0].human_input_mode, HumanInputMode::Always);
    assert_eq!(flow.agents[0].max_consecutive_auto_reply, None);
}

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flows")
}

#[test]
fn every_example_flow_parses_and_validates() {
    let known = ModelCatalog::new(["default"], Some("default"));
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("examples/flows") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).expect("readable");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        let flow: Flow = if flowgen::is_graph(&value) {
            flowgen::import(&value, &known).unwrap_or_else(|e| panic!("{}: {e:#?}", path.display())).flow
        } else {
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        flow.validate(&known.known).unwrap_or_else(|e| panic!("{}: {e:#?}", path.display()));
    }
    assert!(seen >= 3, "expected the three examples, found {seen}");
}

#[tokio::test]
async fn flowgens_default_flow_with_a_multimodal_agent_imports_as_an_assistant_with_a_warning() {
    let app = crate::support::app::spawn_configured(|config| {
        let scripted = flowgate::flow::ModelSpec::Scripted {
            replies: vec![],
            echo: true,
            delay_ms: 0,
            tokens_per_sec: 0,
        };
        config.models.insert("gpt-4o".into(), scripted);
    })
    .await;
    let (status, body) = app.post("/flows", fixture("multimodal_default.json")).await;
    assert_eq!(status, 201, "{body}");
    let agents = &body["definition"]["agents"];
    assert_eq!((agents[1]["name"].as_str(), agents[1]["kind"].as_str()), (Some("vision"), Some("assistant")));
    let warnings = body["warnings"].as_array().expect("warnings");
    let class =
        warnings.iter().find(|w| w["path"] == "nodes[assistant-1].data.class").expect("a class warning");
    let message = class["message"].as_str().unwrap_or_default();
    assert!(message.contains("images") && message.contains("content parts"), "{message}");
}
