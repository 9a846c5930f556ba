//! `examples/` runs offline: every flow in `examples/flows/` registers and
//! runs to a resting status on `examples/flowgate.toml`'s scripted `default`
//! model, as the README tells a newcomer to try it.

use std::path::{Path, PathBuf};

use flowgate::config::{Config, Overrides};
use flowgate::flow::ModelSpec;
use flowgate::model::{ChatStatus, EventKind};
use serde_json::Value;

use crate::support::app::{spawn_with, test_config};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// `examples/flowgate.toml` as `--config` loads it, on a temporary data
/// directory and port, without the scripted model's pause between words.
fn example_config(data_dir: PathBuf) -> Config {
    let file = Config::load(Some(&examples().join("flowgate.toml")), &Overrides::default())
        .expect("examples/flowgate.toml loads");
    let mut config = test_config(data_dir);
    config.models = file.models;
    for spec in config.models.values_mut() {
        if let ModelSpec::Scripted { delay_ms, tokens_per_sec, .. } = spec {
            *delay_ms = 0;
            *tokens_per_sec = 0;
        }
    }
    config
}

#[tokio::test]
async fn every_example_flow_runs_offline_on_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(example_config(dir.path().to_path_buf())).await;
    let mut ran = 0;
    for entry in std::fs::read_dir(examples().join("flows")).expect("examples/flows") {
        let path = entry.expect("an entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let flow: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (status, body) = app.post("/flows", flow).await;
        assert_eq!(status, 201, "{}: {body}", path.display());
        let chat = app.create_chat(body["id"].as_str().unwrap()).await;
        app.say(&chat, "What is a multi-agent flow?").await;
        let events = app
            .wait_for(&chat, |e| {
                e.kind == EventKind::ChatStatus
                    && e.data["status"] != serde_json::json!(ChatStatus::Running)
                    && e.seq > Some(2)
            })
            .await;
        let last = events.iter().rev().find(|e| e.kind == EventKind::ChatStatus).unwrap();
        assert_ne!(
            last.data["status"],
            serde_json::json!(ChatStatus::Error),
            "{}: {:#?}",
            path.display(),
            last
        );
        let replies: Vec<Value> = app.messages(&chat).await.into_iter().skip(1).collect();
        assert!(!replies.is_empty(), "{}: no agent replied", path.display());
        assert!(
            replies.iter().any(|m| m["metadata"]["scripted"] == true),
            "{}: {replies:#?}",
            path.display()
        );
        ran += 1;
    }
    assert!(ran >= 3, "expected the three example flows, ran {ran}");
}
