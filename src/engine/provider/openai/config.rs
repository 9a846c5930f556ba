//! How an `openai` provider is set up: [`OpenAiConfig`], built by hand or from
//! a flow's or the config's [`ModelSpec::Openai`], with the API key read from
//! the environment variable the spec names.
//!
//! Pure data; the only outside thing it reads is that one environment variable.

use std::fmt;
use std::time::Duration;

use crate::flow::ModelSpec;

/// Default total time for one call (one attempt).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of retries after the first attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Default base of the exponential backoff.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);

/// Settings of one OpenAI-compatible model. Its `Debug` output hides the key.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// The registry name of the model, used in errors and logs.
    pub name: String,
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    /// The model id sent to the server, e.g. `gpt-4o-mini` or `llama3.2`.
    pub model: String,
    /// The API key, resolved by the caller; sent as a bearer token, never logged.
    pub api_key: Option<String>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Completion token cap.
    pub max_tokens: Option<u32>,
    /// Total time for one attempt, from sending the request to the last chunk.
    pub timeout: Duration,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Retries after the first attempt (connect errors, 429, 5xx).
    pub max_retries: u32,
    /// Base of the exponential backoff between retries.
    pub backoff_base: Duration,
    /// Ask the server to stream its answer.
    pub stream: bool,
}

impl OpenAiConfig {
    /// A config with the default timeouts, retries and streaming, no key and
    /// no sampling options.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            stream: true,
        }
    }
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("stream", &self.stream)
            .finish()
    }
}

/// Why an `openai` provider could not be set up. Never holds a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenAiConfigError {
    /// The spec is not an `openai` one.
    #[error("model `{name}` is not an openai model")]
    NotOpenai {
        /// Registry name.
        name: String,
    },
    /// The environment variable that should hold the key is unset or empty.
    #[error("model `{name}`: environment variable `{var}` (its API key) is not set or empty")]
    MissingKey {
        /// Registry name.
        name: String,
        /// The variable's name.
        var: String,
    },
    /// The base URL is not an absolute http(s) URL.
    #[error("model `{name}`: base_url `{base_url}` is not an http(s) URL")]
    BadBaseUrl {
        /// Registry name.
        name: String,
        /// What was given.
        base_url: String,
    },
    /// The HTTP client could not be built.
    #[error("model `{name}`: cannot build the HTTP client: {message}")]
    Client {
        /// Registry name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// The config of the model `name`, reading its API key from the process
/// environment.
pub fn from_spec(name: &str, spec: &ModelSpec) -> Result<OpenAiConfig, OpenAiConfigError> {
    from_spec_with(name, spec, |var| std::env::var(var).ok())
}

/// Like [`from_spec`], with `lookup` standing for the environment.
pub fn from_spec_with(
    name: &str,
    spec: &ModelSpec,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<OpenAiConfig, OpenAiConfigError> {
    let ModelSpec::Openai { base_url, model, api_key_env, temperature, max_tokens, timeout_secs } = spec
    else {
        return Err(OpenAiConfigError::NotOpenai { name: name.into() });
    };
    let api_key = match api_key_env {
        None => None,
        Some(var) => match lookup(var) {
            Some(key) if !key.trim().is_empty() => Some(key.trim().to_owned()),
            _ => {
                return Err(OpenAiConfigError::MissingKey { name: name.into(), var: var.clone() });
            }
        },
    };
    let mut config = OpenAiConfig::new(name, base_url.clone(), model.clone());
    config.api_key = api_key;
    config.temperature = *temperature;
    config.max_tokens = *max_tokens;
    if let Some(secs) = timeout_secs.filter(|s| *s > 0) {
        config.timeout = Duration::from_secs(secs);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(api_key_env: Option<&str>) -> ModelSpec {
        ModelSpec::Openai {
            base_url: "http://127.0.0.1:11434/v1".into(),
            model: "llama3.2".into(),
            api_key_env: api_key_env.map(Into::into),
            temperature: Some(0.5),
            max_tokens: Some(100),
            timeout_secs: Some(30),
        }
    }

    #[test]
    fn a_spec_becomes_a_config_with_the_key_from_the_environment() {
        let config = from_spec_with("local", &spec(Some("LOCAL_KEY")), |var| {
            (var == "LOCAL_KEY").then(|| "sk-local".to_owned())
        })
        .expect("config");
        assert_eq!(config.name, "local");
        assert_eq!(config.model, "llama3.2");
        assert_eq!(config.api_key.as_deref(), Some("sk-local"));
        assert_eq!(config.temperature, Some(0.5));
        assert_eq!(config.max_tokens, Some(100));
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert!(config.stream);
    }

    #[test]
    fn a_missing_key_variable_is_named_in_the_error() {
        let err = from_spec_with("gpt", &spec(Some("OPENAI_API_KEY")), |_| None).expect_err("missing key");
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
        assert!(err.to_string().contains("gpt"), "{err}");
    }

    #[test]
    fn a_spec_without_a_key_variable_needs_no_key() {
        let config = from_spec_with("local", &spec(None), |_| panic!("no lookup")).expect("ok");
        assert_eq!(config.api_key, None);
    }

    #[test]
    fn a_scripted_spec_is_refused() {
        let scripted = ModelSpec::Scripted { replies: vec![], echo: true, delay_ms: 0, tokens_per_sec: 0 };
        let err = from_spec("demo", &scripted).expect_err("not openai");
        assert_eq!(err, OpenAiConfigError::NotOpenai { name: "demo".into() });
    }

    #[test]
    fn debug_output_hides_the_key() {
        let mut config = OpenAiConfig::new("gpt", "http://x/v1", "gpt-4o");
        config.api_key = Some("sk-very-secret".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-very-secret"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
