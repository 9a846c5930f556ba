//! FlowGen (and Agentok) graph import, what it refuses: each problem named
//! by the node and field it is in, every problem of a graph at once, and the
//! near misses it accepts (code execution switched off, no filter_dict).

use flowgate::flow::FlowIssue;
use flowgate::flow::flowgen::{self, ModelCatalog};
use serde_json::{Value, json};

use crate::flowgen_import::{catalog, fixture, paths, problems, set_node_field};

#[test]
fn an_unrecognised_termination_lambda_is_refused_naming_its_node_and_field() {
    let issues = problems(&fixture("unsupported_lambda.json"), &catalog());
    assert_eq!(paths(&issues), ["nodes[user-1].data.is_termination_msg"]);
    assert!(issues[0].message.contains("never run"), "{}", issues[0].message);
}

#[test]
fn a_user_proxy_that_executes_code_is_refused() {
    let issues = problems(&fixture("code_execution.json"), &catalog());
    assert_eq!(paths(&issues), ["nodes[user-1].data.code_execution_config"]);
    assert!(issues[0].message.contains("code execution"));
}

#[test]
fn code_execution_set_to_false_or_null_is_accepted() {
    let mut graph = fixture("code_execution.json");
    for off in [json!(false), Value::Null] {
        set_node_field(&mut graph, "user-1", "code_execution_config", off);
        flowgen::import(&graph, &catalog()).expect("imports");
    }
    for on in [json!({}), json!({"use_docker": false}), json!(true)] {
        set_node_field(&mut graph, "user-1", "code_execution_config", on);
        problems(&graph, &catalog());
    }
}

#[test]
fn every_problem_in_a_graph_is_reported_at_once() {
    let issues = problems(&fixture("many_problems.json"), &catalog());
    let mut found = paths(&issues);
    found.sort_unstable();
    let mut expected = vec![
        "nodes[rag-user].data.class",
        "nodes[rag-user].data.human_input_mode",
        "nodes[rag-user].data.is_termination_msg",
        "nodes[rag-user].data.code_execution_config",
        "nodes[rag-user].data.retrieve_config",
        "nodes[group-1].data.max_round",
        "nodes[group-1].data.speaker_selection_method",
        "nodes[gpt].data.class",
        "nodes[ext].type",
        "nodes[helper].data.name",
        "nodes[config-1].data.filter_dict",
    ];
    expected.sort_unstable();
    assert_eq!(found, expected, "{issues:#?}");
    let message = |path: &str| {
        let issue = issues.iter().find(|i| i.path == path).expect("reported");
        issue.message.as_str()
    };
    assert!(message("nodes[gpt].data.class").contains("GPTAssistantAgent"));
    assert!(message("nodes[rag-user].data.class").contains("RetrieveUserProxyAgent"));
    assert!(message("nodes[ext].type").contains("custom_conversable"));
    assert!(message("nodes[helper].data.name").contains("duplicate"));
}

#[test]
fn a_graph_without_a_user_node_is_refused_clearly() {
    let issues = problems(&fixture("no_user.json"), &catalog());
    assert_eq!(paths(&issues), ["nodes"]);
    assert!(issues[0].message.contains("no user proxy"));
}

#[test]
fn a_user_proxy_nothing_converses_with_is_refused() {
    let mut graph = fixture("two_agent.json");
    graph["edges"] = json!([]);
    let issues = problems(&graph, &catalog());
    assert_eq!(paths(&issues), ["nodes[user-1]"]);
}

#[test]
fn a_filter_dict_naming_no_known_model_is_refused_naming_the_names_tried() {
    let mut graph = fixture("two_agent.json");
    set_node_field(&mut graph, "config-1", "filter_dict", json!("gpt-4, gpt-4o"));
    let issues = problems(&graph, &catalog());
    assert_eq!(paths(&issues), ["nodes[config-1].data.filter_dict"]);
    assert!(issues[0].message.contains("`gpt-4`, `gpt-4o`"));
}

#[test]
fn an_empty_or_absent_filter_dict_uses_the_default_model() {
    let mut graph = fixture("two_agent.json");
    for empty in [json!(""), json!(" , "), Value::Null] {
        set_node_field(&mut graph, "config-1", "filter_dict", empty);
        let flow = flowgen::import(&graph, &catalog()).expect("imports").flow;
        assert_eq!(flow.agents[1].model.as_deref(), Some("default"));
    }
    let no_default = ModelCatalog::new(["default"], None);
    let issues = problems(&graph, &no_default);
    assert_eq!(paths(&issues), ["nodes[config-1].data.filter_dict"]);
}

#[test]
fn a_flow_records_name_is_a_string_or_null() {
    let graph = fixture("two_agent.json");
    let unnamed = json!({"name": null, "flow": graph.clone()});
    assert!(flowgen::import(&unnamed, &catalog()).is_ok());
    for bad in [json!({}), json!(5), json!(["x"])] {
        let issues = flowgen::import(&json!({"name": bad, "flow": graph.clone()}), &catalog()).unwrap_err();
        assert!(issues.iter().any(|i| i.path == "name"), "{bad}: {issues:?}");
    }
}

#[test]
fn a_malformed_graph_is_refused_naming_the_bad_nodes() {
    let graph = json!({
        "nodes": [{"type": "user", "data": {}}, {"id": "x", "type": "hologram"}, 7],
        "edges": [{"id": "e", "source": "x"}]
    });
    let issues = problems(&graph, &catalog());
    let found = paths(&issues);
    for path in ["nodes[#0]", "nodes[#2]", "nodes[x].type", "edges[#0]", "nodes"] {
        assert!(found.contains(&path), "{path} in {found:?}");
    }
    assert_eq!(
        flowgen::import(&json!({"agents": []}), &catalog()).map(|i| i.flow),
        Err(vec![FlowIssue::new("nodes", "not a FlowGen graph: expected `nodes` and `edges` arrays")])
    );
}

#[test]
fn agentok_sequential_chats_and_tools_are_refused() {
    let mut graph = fixture("agentok_group.json");
    graph["edges"].as_array_mut().expect("edges").push(json!({
        "id": "user-poet", "source": "user", "target": "poet", "type": "converse",
        "data": {"tools": [12]}
    }));
    let issues = problems(&graph, &catalog());
    assert_eq!(paths(&issues), ["edges[user-poet].data.tools", "nodes[user]"]);
    assert!(issues[1].message.contains("sequential chats"));
}
