//! Wires the parts together once: picks the store and bus named by the config,
//! builds the engine, the chat service and the authenticator into one
//! [`AppState`], seeds the bootstrap key and the demo flow, resumes runs left
//! `running`, and serves the router until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authenticator, Jwt, jwt::JwtError};
use crate::bus::redis::{RedisBus, RedisBusOptions};
use crate::bus::{Bus, BusError, memory::MemoryBus};
use crate::chats::{ChatService, Journal};
use crate::config::{Config, SqliteSync, StoreKind};
use crate::engine::lease::{Leases, LocalLeases, RedisLeases};
use crate::engine::models::SecretLookup;
use crate::engine::{Engine, EngineDeps};
use crate::flow::demo::{DEMO_FLOW_ID, demo_flow};
use crate::metrics::Metrics;
use crate::model::{FlowRecord, now};
use crate::realtime::Hub;
use crate::store::redis::{RedisStore, RedisStoreOptions};
use crate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use crate::store::{Store, StoreError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The token keys could not be loaded.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The bus could not be reached.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// A file or socket could not be used.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration asks for something this build cannot do.
    #[error("{0}")]
    Unsupported(String),
}

/// Everything a handler may use; cloned into each request (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// Chat operations.
    pub chats: ChatService,
    /// The durable records.
    pub store: Arc<dyn Store>,
    /// The live feed.
    pub bus: Arc<dyn Bus>,
    /// Credentials.
    pub auth: Arc<Authenticator>,
    /// The flow runner.
    pub engine: Arc<Engine>,
    /// The settings the node started with.
    pub config: Arc<Config>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Live WebSocket and SSE connections.
    pub hub: Arc<Hub>,
    /// Fires on shutdown; long-lived requests end with it.
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// A built node, ready to serve.
pub struct App {
    /// The shared state.
    pub state: AppState,
}

impl App {
    /// Opens the backends named by `config` and builds the state; API keys
    /// come from the process environment.
    pub async fn build(config: Config) -> Result<App, StartError> {
        Self::build_with(config, crate::engine::models::from_env()).await
    }

    /// Like [`App::build`], reading API keys with `secrets`.
    pub async fn build_with(config: Config, secrets: SecretLookup) -> Result<App, StartError> {
        let Backends { store, bus, leases } = open_backends(&config).await?;
        let shutdown = CancellationToken::new();
        let journal = Journal { store: store.clone(), bus: bus.clone() };
        let engine = Engine::new(EngineDeps {
            journal: journal.clone(),
            models: config.models.clone(),
            secrets,
            shutdown: shutdown.child_token(),
            leases,
            sweep_every: Duration::from_secs(config.cluster.sweep_secs),
        });
        let auth = Arc::new(Authenticator::new(store.clone(), Jwt::from_config(&config.jwt)?));
        if let Some(secret) = &config.api_key
            && crate::auth::seed_key(store.as_ref(), "default", secret).await?
        {
            tracing::info!("seeded FLOWGATE_API_KEY for tenant `default`");
        }
        if config.demo {
            register_demo(store.as_ref(), "default").await?;
        }
        let hub = Hub::new(config.limits.ws_max_connections);
        let state = AppState {
            chats: ChatService::new(journal, engine.clone()),
            store,
            bus,
            auth,
            engine,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            hub,
            shutdown,
        };
        Ok(App { state })
    }

    /// The HTTP and WebSocket routes over this state.
    pub fn router(&self) -> Router {
        crate::api::router(self.state.clone())
    }

    /// Resumes runs left `running`, serves until `signal` completes, then stops
    /// the runs and waits for them.
    pub async fn serve(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        match self.state.engine.resume_all().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "resumed runs left running"),
            Err(e) => tracing::error!(error = %e, "could not resume runs"),
        }
        let shutdown = self.state.shutdown.clone();
        let router = self.router();
        let stop = shutdown.clone();
        // Frames are batched and flushed on purpose; Nagle would only add a
        // delayed-ACK wait (~40 ms) to the tail of every stream.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            tokio::select! {
                _ = signal => {}
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        });
        let result = serve.await;
        shutdown.cancel();
        self.state.hub.wait().await;
        self.state.engine.shutdown().await;
        result
    }
}

/// The backends a node runs on, picked once from the config.
struct Backends {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    leases: Arc<dyn Leases>,
}

async fn open_backends(config: &Config) -> Result<Backends, StartError> {
    match config.store {
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&config.data_dir)?;
            let synchronous = match config.sqlite.synchronous {
                SqliteSync::Full => Synchronous::Full,
                SqliteSync::Normal => Synchronous::Normal,
            };
            let path = config.data_dir.join("flowgate.db");
            let store = SqliteStore::open(&path, SqliteOptions { synchronous, ..Default::default() })?;
            Ok(Backends {
                store: Arc::new(store),
                bus: Arc::new(MemoryBus::new()),
                leases: Arc::new(LocalLeases),
            })
        }
        StoreKind::Redis => open_redis(config).await,
    }
}

/// The shared backends: the Redis store, the Redis bus (one subscriber
/// connection for the node) and run leases in Redis under this node's id.
async fn open_redis(config: &Config) -> Result<Backends, StartError> {
    let url =
        config.redis_url.as_deref().ok_or_else(|| StartError::Unsupported("redis_url is required".into()))?;
    let options = RedisStoreOptions::default();
    let prefix = options.prefix.clone();
    let store = RedisStore::connect(url, options).await?;
    let bus = RedisBus::connect(url, RedisBusOptions::default()).await?;
    let client = redis::Client::open(url).map_err(StoreError::from)?;
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let conn =
        redis::aio::ConnectionManager::new_with_config(client, manager).await.map_err(StoreError::from)?;
    let node_id = config.node_id.clone().unwrap_or_else(|| format!("node-{}", ulid::Ulid::new()));
    let ttl = Duration::from_secs(config.cluster.lease_ttl_secs);
    tracing::info!(node_id, "sharing Redis with other nodes");
    Ok(Backends {
        store: Arc::new(store),
        bus: Arc::new(bus),
        leases: Arc::new(RedisLeases::new(conn, &prefix, &node_id, ttl)),
    })
}

/// Registers the demo flow for a tenant unless it already has one by that id.
pub async fn register_demo(store: &dyn Store, tenant: &str) -> Result<(), StoreError> {
    if store.get_flow(tenant, DEMO_FLOW_ID).await?.is_some() {
        return Ok(());
    }
    let flow = demo_flow();
    let at = now();
    store
        .put_flow(&FlowRecord {
            id: DEMO_FLOW_ID.into(),
            tenant: tenant.into(),
            name: flow.name.clone(),
            definition: serde_json::to_value(&flow)?,
            source: None,
            created_at: at,
            updated_at: at,
        })
        .await
}
