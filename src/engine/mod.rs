//! The flow runner (stub until the engine branch lands).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::chats::Journal;
use crate::flow::ModelSpec;
use crate::store::StoreResult;

pub mod provider;

/// What an engine is built from.
pub struct EngineDeps {
    /// Store and bus.
    pub journal: Journal,
    /// The configured model registry.
    pub models: BTreeMap<String, ModelSpec>,
    /// Fires on shutdown.
    pub shutdown: CancellationToken,
}

/// The runner registry of one node.
pub struct Engine {
    #[allow(dead_code)]
    deps: EngineDeps,
}

impl Engine {
    /// A new engine.
    pub fn new(deps: EngineDeps) -> Arc<Self> {
        Arc::new(Self { deps })
    }

    /// Makes sure a runner task drives the chat.
    pub fn start(&self, _chat_id: &str) {}

    /// Stops the chat's runner task at once, if any.
    pub fn stop(&self, _chat_id: &str) {}

    /// Starts every chat left running.
    pub async fn resume_all(&self) -> StoreResult<usize> {
        Ok(0)
    }

    /// Stops every runner and waits for them.
    pub async fn shutdown(&self) {}

    /// The configured model names.
    pub fn known_models(&self) -> HashSet<String> {
        self.deps.models.keys().cloned().collect()
    }
}
