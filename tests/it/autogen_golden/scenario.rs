//! A recorded AutoGen 0.2.35 scenario (`tests/fixtures/autogen_golden/`) as
//! a native flow: agents one to one (AutoGen's resolved defaults where
//! Flowgate's differ), each model agent on its own fake OpenAI server, and
//! what Flowgate cannot express said as a reason.

use serde_json::{Value, json};

/// The scenario file and its recording.
pub struct Golden {
    pub name: String,
    pub scenario: Value,
    pub recorded: Value,
}

impl Golden {
    /// Reads `NAME` from the fixtures.
    pub fn load(name: &str) -> Self {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/autogen_golden");
        let read = |kind: &str| -> Value {
            let text = std::fs::read_to_string(format!("{dir}/{kind}/{name}.json")).expect("fixture exists");
            serde_json::from_str(&text).expect("fixture is JSON")
        };
        Golden { name: name.to_owned(), scenario: read("scenarios"), recorded: read("recorded") }
    }

    pub fn is_group(&self) -> bool {
        self.scenario["chat"]["kind"] == "group"
    }

    /// The names of the agents that call a model (`__selector__` included).
    pub fn model_agents(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.scenario["replies"].as_object().into_iter().flatten().map(|(k, _)| k.clone()).collect();
        names.sort();
        names
    }

    fn resolved(&self, name: &str) -> &Value {
        let all = self.recorded["agents_resolved"].as_array().expect("agents_resolved");
        all.iter().find(|a| a["name"] == name).expect("resolved agent")
    }

    /// The agents of the native flow, in order: the two of a two-agent chat,
    /// or the group's members.
    fn members(&self) -> Vec<&Value> {
        let agents = self.scenario["agents"].as_array().expect("agents");
        let by_name = |n: &Value| agents.iter().find(|a| &a["name"] == n).expect("member exists");
        match self.scenario["chat"]["members"].as_array() {
            Some(members) if self.is_group() => members.iter().map(by_name).collect(),
            _ => agents.iter().collect(),
        }
    }

    /// The native flow, each model agent on `base_url(agent)`; `manager_rule`
    /// is set when the group manager has a rule of its own.
    pub fn flow(&self, base_url: impl Fn(&str) -> String) -> Value {
        let mut models = serde_json::Map::new();
        let mut model_for = |name: &str| {
            let key = format!("m_{name}");
            models.insert(
                key.clone(),
                json!({"provider": "openai", "base_url": base_url(name), "model": "fake"}),
            );
            key
        };
        let mut agents = Vec::new();
        for a in self.members() {
            let name = a["name"].as_str().expect("name");
            let r = self.resolved(name);
            let assistant = a["kind"] == "assistant";
            let mut spec = json!({"name": name, "kind": if assistant { "assistant" } else { "user_proxy" }});
            if assistant || a["model"] == true {
                spec["model"] = json!(model_for(name));
                spec["system_message"] = r["system_message"].clone();
            }
            if assistant || a.get("description").is_some_and(|d| !d.is_null()) {
                spec["description"] = r["description"].clone();
            }
            if !assistant {
                spec["human_input_mode"] = r["human_input_mode"].clone();
                spec["default_auto_reply"] = r["default_auto_reply"].clone();
            }
            if let Some(limit) = a.get("max_consecutive_auto_reply").filter(|l| !l.is_null()) {
                spec["max_consecutive_auto_reply"] = limit.clone();
            }
            if let Some(rule) = rule(&a["is_termination_msg"]) {
                spec["termination"] = rule;
            }
            agents.push(spec);
        }
        let chat = &self.scenario["chat"];
        let mut spec = json!({"kind": chat["kind"]});
        if self.is_group() {
            spec["speaker_selection"] = chat["speaker_selection_method"].clone();
            spec["max_round"] = chat["max_round"].clone();
            if chat["speaker_selection_method"] == "auto" {
                spec["selector_model"] = json!(model_for("__selector__"));
            }
            if let Some(rule) = rule(&chat["manager"]["is_termination_msg"]) {
                spec["termination"] = rule;
            }
        }
        json!({"name": self.name, "models": models, "agents": agents, "chat": spec})
    }

    /// Why Flowgate cannot replay this scenario, if it cannot.
    pub fn not_expressible(&self) -> Option<String> {
        let runs = self.scenario["runs"].as_array().expect("runs");
        if runs.iter().skip(1).any(|r| r["clear_history"] == true) {
            return Some("a follow-up run with clear_history=True: a Flowgate chat keeps its history".into());
        }
        if self.scenario["chat"].get("allow_repeat_speaker").is_some_and(|v| v != true) {
            return Some("allow_repeat_speaker=False has no native setting".into());
        }
        let manager_rule = rule(&self.scenario["chat"]["manager"]["is_termination_msg"]).is_some();
        let member_rules = self.members().iter().any(|a| rule(&a["is_termination_msg"]).is_some());
        if manager_rule && member_rules {
            return Some(
                "a manager rule and members' own rules together (chat.termination excludes agents' rules)"
                    .into(),
            );
        }
        None
    }
}

/// A declarative AutoGen rule as a native one; `None` for AutoGen's default.
fn rule(r: &Value) -> Option<Value> {
    let r = r.as_object()?;
    if let Some(w) = r.get("endswith") {
        return Some(json!({"endswith": w}));
    }
    if let Some(w) = r.get("equals") {
        return Some(json!({"exactly": w}));
    }
    if let Some(w) = r.get("contains") {
        return Some(json!({"contains": w}));
    }
    assert!(r.get("none").is_none(), "a `none` rule has no native form yet");
    None
}

/// Flowgate's stop reason for a recorded one.
pub fn stop_reason(recorded: &Value) -> String {
    match recorded["reason"].as_str().expect("reason") {
        "termination_msg" | "manager_termination_msg" | "empty_human_answer_to_termination_msg" => {
            "termination".into()
        }
        other => other.to_owned(),
    }
}
