//! Layered configuration: built-in defaults, then an optional TOML file
//! (`flowgate.toml`, or `--config FILE`), then `FLOWGATE_*` environment
//! variables, then command-line flags. A bad value stops the start with a
//! message naming the setting.
//!
//! Environment names: `FLOWGATE_LISTEN`, `FLOWGATE_DATA_DIR`, `FLOWGATE_API_KEY`,
//! `FLOWGATE_STORE`, `FLOWGATE_REDIS_URL`, `FLOWGATE_LOG`, and nested settings
//! with a double underscore (`FLOWGATE_JWT__SECRET`, `FLOWGATE_LIMITS__WS_FRAME_BYTES`,
//! `FLOWGATE_REDIS__CLUSTER`).
//! Pure: reads files and the environment, touches nothing else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::flow::ModelSpec;

mod sections;

pub use sections::*;

/// Top-level setting names, the only `FLOWGATE_*` variables read as config.
const KEYS: &[&str] = &[
    "cluster",
    "cors",
    "listen",
    "data_dir",
    "api_key",
    "store",
    "redis_url",
    "redis",
    "log",
    "demo",
    "jwt",
    "sqlite",
    "limits",
    "models",
    "node_id",
    "runs",
    "outbound",
    "rate_limits",
    "metrics",
    "session",
];

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type or shape (the message names the setting).
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is well-formed but unusable.
    #[error("configuration: `{key}`: {message}")]
    Value {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// Everything a node needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Where the SQLite file lives.
    pub data_dir: PathBuf,
    /// A key seeded for tenant `default` at start (idempotent).
    pub api_key: Option<String>,
    /// The backend.
    pub store: StoreKind,
    /// `redis://…`, with `store = "redis"` (with `redis.cluster`, one or
    /// more cluster nodes, comma separated).
    pub redis_url: Option<String>,
    /// How Redis is reached (`redis.cluster`).
    pub redis: RedisConfig,
    /// A `tracing` filter, e.g. `info` or `flowgate=debug`.
    pub log: String,
    /// Register the offline `demo` flow at start.
    pub demo: bool,
    /// This node's name (lease owner id); random when unset.
    pub node_id: Option<String>,
    /// Bearer tokens.
    pub jwt: JwtConfig,
    /// Embedded store.
    pub sqlite: SqliteConfig,
    /// Socket and request limits.
    pub limits: Limits,
    /// Run ownership across nodes.
    pub cluster: ClusterConfig,
    /// Caps on runs, quotas per tenant.
    pub runs: RunLimits,
    /// Where a flow's own models may call.
    pub outbound: OutboundConfig,
    /// Browsers on other origins.
    pub cors: CorsConfig,
    /// Request rates per API key and per tenant.
    pub rate_limits: RateLimitConfig,
    /// Access to `/metrics`.
    pub metrics: MetricsConfig,
    /// Dashboard sign-in sessions.
    pub session: SessionConfig,
    /// The model registry flows refer to by name (`[models.NAME]`).
    pub models: BTreeMap<String, ModelSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            api_key: None,
            store: StoreKind::Sqlite,
            redis_url: None,
            redis: RedisConfig::default(),
            log: "info".into(),
            demo: true,
            node_id: None,
            jwt: JwtConfig::default(),
            sqlite: SqliteConfig::default(),
            limits: Limits::default(),
            cluster: ClusterConfig::default(),
            runs: RunLimits::default(),
            outbound: OutboundConfig::default(),
            cors: CorsConfig::default(),
            rate_limits: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
            session: SessionConfig::default(),
            models: BTreeMap::new(),
        }
    }
}

/// Command-line values that override every other layer.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--data-dir`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--store`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// `--redis-url`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
}

impl Config {
    /// Loads the layers. `file` is `--config`; without it `flowgate.toml` in
    /// the working directory is read if present.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => {
                return Err(ConfigError::Value {
                    key: "--config",
                    message: format!("{} does not exist", path.display()),
                });
            }
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("flowgate.toml")),
        }
        let env = Env::prefixed("FLOWGATE_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
        });
        let config: Config =
            figment.merge(env).merge(Serialized::defaults(overrides)).extract().map_err(Box::new)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |key, message: &str| Err(ConfigError::Value { key, message: message.into() });
        if self.store == StoreKind::Redis && self.redis_url.is_none() {
            return bad("redis_url", "required when store = \"redis\" (FLOWGATE_REDIS_URL)");
        }
        if self.redis.cluster && self.store != StoreKind::Redis {
            return bad("redis.cluster", "needs store = \"redis\" and redis_url naming the cluster's nodes");
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().len() < 16) {
            return bad("api_key", "must be at least 16 characters");
        }
        if self.jwt.secret.as_deref().is_some_and(|s| s.len() < 32) {
            return bad("jwt.secret", "must be at least 32 bytes");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return bad("log", "not a valid tracing filter (try `info` or `flowgate=debug`)");
        }
        let l = &self.limits;
        if l.ws_frame_bytes < 1024 || l.max_body_bytes < 1024 || l.ws_outbound_queue_bytes < 4096 {
            return bad("limits", "byte limits must be at least 1 KiB (queue: 4 KiB)");
        }
        if self.cluster.lease_ttl_secs < 1 || self.cluster.sweep_secs < 1 {
            return bad("cluster", "lease_ttl_secs and sweep_secs must be at least 1");
        }
        if l.max_message_bytes == 0 || l.ws_outbound_queue_bytes < 4 * l.max_message_bytes {
            return bad(
                "limits.ws_outbound_queue_bytes",
                "must hold at least four messages: 4 × limits.max_message_bytes",
            );
        }
        if self.runs.max_round == 0 || self.runs.max_consecutive_auto_reply == 0 {
            return bad("runs", "max_round and max_consecutive_auto_reply must be at least 1");
        }
        let r = &self.runs;
        if r.max_run_secs == 0 || r.max_reply_bytes == 0 || r.max_events_per_run == 0 {
            return bad("runs", "max_run_secs, max_reply_bytes and max_events_per_run must be at least 1");
        }
        if r.max_tool_calls_per_message == 0 || r.max_tool_argument_bytes == 0 || r.max_tool_result_bytes == 0
        {
            return bad(
                "runs",
                "max_tool_calls_per_message, max_tool_argument_bytes and max_tool_result_bytes must be at least 1",
            );
        }
        if l.http_header_read_secs == 0 {
            return bad("limits.http_header_read_secs", "must be at least 1");
        }
        if l.http_idle_secs == 0 {
            return bad("limits.http_idle_secs", "must be at least 1");
        }
        if l.http_body_timeout_secs == 0 {
            return bad("limits.http_body_timeout_secs", "must be at least 1");
        }
        if let Some(bad_origin) = self.cors.allowed_origins.iter().find(|o| !is_origin(o)) {
            return Err(ConfigError::Value {
                key: "cors.allowed_origins",
                message: format!("`{bad_origin}` is not an origin like https://app.example.com[:port]"),
            });
        }
        if self.rate_limits.burst_secs == 0 {
            return bad("rate_limits.burst_secs", "must be at least 1");
        }
        if self.metrics.token.as_deref().is_some_and(|t| t.len() < 16) {
            return bad("metrics.token", "must be at least 16 characters");
        }
        if !(60..=86_400).contains(&self.session.ttl_secs) {
            return bad("session.ttl_secs", "must be between 60 and 86400");
        }
        if l.ws_ping_secs == 0 || l.ws_pong_timeout_secs <= l.ws_ping_secs {
            return bad("limits.ws_pong_timeout_secs", "must be greater than ws_ping_secs > 0");
        }
        for (name, spec) in &self.models {
            if let Some((field, message)) = spec.issues().into_iter().next() {
                return Err(ConfigError::Value {
                    key: "models",
                    message: format!("{name}.{field}: {message}"),
                });
            }
        }
        Ok(())
    }
}

/// Whether `s` is a web origin as a browser sends it: `http(s)://host[:port]`,
/// no path, no wildcard.
fn is_origin(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_listen_on_loopback_8080_with_data_in_dot_data() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.check().is_ok());
    }

    #[test]
    fn a_bad_listen_value_names_the_setting() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLOWGATE_LISTEN", "not-an-address");
            let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.to_lowercase().contains("listen"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn file_env_and_flags_layer_in_that_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "flowgate.toml",
                "listen = \"127.0.0.1:9000\"\ndata_dir = \"/a\"\n[limits]\nws_frame_bytes = 2048\n",
            )?;
            jail.set_env("FLOWGATE_DATA_DIR", "/b");
            jail.set_env("FLOWGATE_REQUIRE_REDIS", "1");
            let flags = Overrides { listen: Some("127.0.0.1:9001".into()), ..Default::default() };
            let c = Config::load(None, &flags).unwrap();
            assert_eq!(c.listen.port(), 9001);
            assert_eq!(c.data_dir, PathBuf::from("/b"));
            assert_eq!(c.limits.ws_frame_bytes, 2048);
            Ok(())
        });
    }

    #[test]
    fn the_readmes_model_registry_loads_from_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "flowgate.toml",
                "[models.default]\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\n\
                 model = \"llama3.2\"\napi_key_env = \"OPENAI_API_KEY\"\ntimeout_secs = 120\n\
                 [models.offline]\nprovider = \"scripted\"\nreplies = [\"hi\"]\n",
            )?;
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert!(
                matches!(&c.models["default"], ModelSpec::Openai { model, timeout_secs: Some(120), .. } if model == "llama3.2")
            );
            assert!(matches!(&c.models["offline"], ModelSpec::Scripted { .. }));
            Ok(())
        });
    }

    #[test]
    fn a_registry_model_paced_two_ways_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "flowgate.toml",
                "[models.fast]\nprovider = \"scripted\"\ntokens_per_sec = 400\n\
                 [models.both]\nprovider = \"scripted\"\ntokens_per_sec = 400\ndelay_ms = 2\n",
            )?;
            let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("both.tokens_per_sec"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn cors_origins_load_from_the_environment_and_a_path_or_wildcard_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "FLOWGATE_CORS__ALLOWED_ORIGINS",
                "[https://app.example.com, http://localhost:5173]",
            );
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(c.cors.allowed_origins, ["https://app.example.com", "http://localhost:5173"]);
            for bad in ["*", "https://app.example.com/", "app.example.com"] {
                jail.set_env("FLOWGATE_CORS__ALLOWED_ORIGINS", format!("[\"{bad}\"]"));
                let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
                assert!(err.contains("cors.allowed_origins"), "{bad}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn redis_cluster_loads_from_the_environment_and_is_refused_without_the_redis_store() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLOWGATE_REDIS__CLUSTER", "true");
            let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("redis.cluster"), "{err}");
            jail.set_env("FLOWGATE_STORE", "redis");
            jail.set_env("FLOWGATE_REDIS_URL", "redis://127.0.0.1:7001,redis://127.0.0.1:7002");
            let c = Config::load(None, &Overrides::default()).unwrap();
            assert!(c.redis.cluster);
            Ok(())
        });
    }

    #[test]
    fn redis_without_a_url_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FLOWGATE_STORE", "redis");
            let err = Config::load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("redis_url"), "{err}");
            Ok(())
        });
    }
}
