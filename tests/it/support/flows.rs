//! Small scripted flows for tests.

use serde_json::{Value, json};

/// A two-agent flow: a user proxy with `mode` and one scripted assistant whose
/// replies cycle through `replies`.
pub fn two_agent(mode: &str, replies: &[&str]) -> Value {
    json!({
        "name": format!("two agent {mode}"),
        "models": {"script": {"provider": "scripted", "replies": replies}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": mode,
             "max_consecutive_auto_reply": 2, "default_auto_reply": "Go on."},
            {"name": "assistant", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "two_agent", "termination": {"contains": "TERMINATE"}}
    })
}

/// A slow two-agent flow (per-chunk delay) whose assistant never terminates,
/// so a run stays `running` for a while.
pub fn slow(delay_ms: u64) -> Value {
    json!({
        "name": "slow",
        "models": {"script": {"provider": "scripted", "replies": ["one two three four five six seven eight nine ten"], "delay_ms": delay_ms}},
        "agents": [
            {"name": "user", "kind": "user_proxy", "human_input_mode": "NEVER", "max_consecutive_auto_reply": 3},
            {"name": "assistant", "kind": "assistant", "model": "script"}
        ],
        "chat": {"kind": "two_agent"}
    })
}
