//! Resolves an agent's model name to a provider: the flow's own `models` first,
//! then the gateway's configured registry. Providers are cached by name and
//! spec, so a flow edit that changes a spec builds a new one.
//!
//! Touches nothing but the providers it builds.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;

use super::outbound::Outbound;
use super::provider::openai::{self, OpenAiConfigError, OpenAiProvider};
use super::provider::scripted::{Pace, ScriptedProvider};
use super::provider::{ModelProvider, ProviderError};
use crate::flow::{Flow, ModelSpec};

/// Past this many cached providers the cache starts over (flows are edited
/// rarely; this only bounds a pathological churn).
const CACHE_LIMIT: usize = 256;

/// Where API keys come from: given a variable name (`api_key_env`), its value.
/// The process environment in production ([`from_env`]); tests pass their own.
pub type SecretLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads API keys from the process environment.
pub fn from_env() -> SecretLookup {
    Arc::new(|var| std::env::var(var).ok())
}

/// The model registry of one engine.
pub struct Models {
    registry: BTreeMap<String, ModelSpec>,
    outbound: Outbound,
    secrets: SecretLookup,
    cache: DashMap<String, Arc<dyn ModelProvider>>,
}

impl Models {
    /// A resolver over the configured registry, reading keys with `secrets`.
    /// A flow's own models call only where `outbound` allows.
    pub fn new(registry: BTreeMap<String, ModelSpec>, secrets: SecretLookup, outbound: Outbound) -> Self {
        Self { registry, outbound, secrets, cache: DashMap::new() }
    }

    /// Refuses a flow whose own `openai` model URL `outbound` does not allow
    /// (after DNS resolution); `Err` is the field and why.
    pub async fn check_flow_models(&self, flow: &Flow) -> Result<(), (String, String)> {
        for (name, spec) in &flow.models {
            if let ModelSpec::Openai { base_url, .. } = spec {
                let field = format!("models.{name}.base_url");
                self.outbound.check_resolved(base_url).await.map_err(|why| (field, why))?;
            }
        }
        Ok(())
    }

    /// The configured model names (for flow validation).
    pub fn known(&self) -> HashSet<String> {
        self.registry.keys().cloned().collect()
    }

    /// The spec a name means within `flow`.
    pub fn spec<'a>(&'a self, flow: &'a Flow, name: &str) -> Option<&'a ModelSpec> {
        flow.models.get(name).or_else(|| self.registry.get(name))
    }

    /// Whether `name` within `flow` is the flow's own model (tenant input: it
    /// never gets a key, whatever it says).
    fn from_flow(flow: &Flow, name: &str) -> bool {
        flow.models.contains_key(name)
    }

    /// The provider for `name` within `flow`.
    pub fn resolve(&self, flow: &Flow, name: &str) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        let spec = self.spec(flow, name).ok_or_else(|| ProviderError::Connect {
            model: name.to_owned(),
            message: "no such model in the flow or the gateway's registry".into(),
        })?;
        let key = format!("{name}\u{0}{}", serde_json::to_string(spec).unwrap_or_default());
        if let Some(hit) = self.cache.get(&key) {
            return Ok(hit.value().clone());
        }
        let provider = if Self::from_flow(flow, name) {
            self.build_keyless(name, spec)?
        } else {
            self.build(name, spec)?
        };
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(key, provider.clone());
        Ok(provider)
    }
}

impl Models {
    fn build(&self, name: &str, spec: &ModelSpec) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        match spec {
            ModelSpec::Scripted { replies, echo, delay_ms, tokens_per_sec } => {
                let pace = Pace::from_spec(*delay_ms, *tokens_per_sec);
                Ok(Arc::new(ScriptedProvider::new(name, replies.clone(), *echo, pace)))
            }
            ModelSpec::Openai { .. } => self.build_openai(name, spec),
        }
    }

    /// Builds a flow's own model: never with an API key (validation refuses
    /// `api_key_env` in a flow; this holds even for a flow stored before that).
    fn build_keyless(&self, name: &str, spec: &ModelSpec) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        match spec {
            ModelSpec::Openai { api_key_env: Some(_), .. } => Err(ProviderError::Connect {
                model: name.to_owned(),
                message: "a flow's own model cannot use an API key; use a registry model".into(),
            }),
            ModelSpec::Openai { base_url, .. } => {
                let refused = |message| ProviderError::Connect { model: name.to_owned(), message };
                self.outbound.check_url(base_url).map_err(refused)?;
                let setup_failed = |e: OpenAiConfigError| refused(e.to_string());
                let config = openai::from_spec_with(name, spec, |_| None).map_err(setup_failed)?;
                let guard = |builder| self.outbound.guard(builder);
                Ok(Arc::new(OpenAiProvider::with_client(config, guard).map_err(setup_failed)?))
            }
            _ => self.build(name, spec),
        }
    }

    /// Builds an OpenAI-compatible provider (its API key looked up by the
    /// variable name the spec gives). A setup failure (missing key, bad URL) is
    /// reported like a connection failure: the run fails with `model_error`.
    fn build_openai(&self, name: &str, spec: &ModelSpec) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        let setup_failed =
            |e: OpenAiConfigError| ProviderError::Connect { model: name.to_owned(), message: e.to_string() };
        let config = openai::from_spec_with(name, spec, |var| (self.secrets)(var)).map_err(setup_failed)?;
        let provider = OpenAiProvider::new(config).map_err(setup_failed)?;
        Ok(Arc::new(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow_with(models: &str) -> Flow {
        serde_json::from_str(&format!(
            r#"{{"name":"f","models":{models},"agents":[],"chat":{{"kind":"group"}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_flow_model_shadows_the_registry_and_providers_are_cached() {
        let registry: BTreeMap<String, ModelSpec> = serde_json::from_str(
            r#"{"m":{"provider":"scripted","replies":["registry"]},
                "r":{"provider":"scripted","echo":true}}"#,
        )
        .unwrap();
        let models = Models::new(registry, from_env(), Outbound::default());
        let flow = flow_with(r#"{"m":{"provider":"scripted","replies":["flow"]}}"#);
        assert_eq!(
            models.spec(&flow, "m"),
            Some(&ModelSpec::Scripted {
                replies: vec!["flow".into()],
                echo: false,
                delay_ms: 0,
                tokens_per_sec: 0
            })
        );
        let a = models.resolve(&flow, "r").unwrap();
        let b = models.resolve(&flow, "r").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(models.resolve(&flow, "nope").is_err());
        assert_eq!(models.known().len(), 2);
    }
}
