//! Wires the parts together once: opens the backends the config names
//! ([`Backends`]), builds the engine and the domain services into one [`AppState`] (with the
//! REST and realtime sub-states its handlers take), composes the routes,
//! seeds the bootstrap key and the demo flow, resumes runs left `running`, and
//! serves until shutdown. The only module that sees every other.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::handler::Handler;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::api::ApiState;
use crate::auth::{Authenticator, Jwt, jwt::JwtError};
use crate::backends::{BackendError, Backends};
use crate::bus::Bus;
use crate::config::{Config, Limits};
use crate::engine::models::SecretLookup;
use crate::engine::{Engine, EngineDeps};
use crate::flow::demo::{DEMO_FLOW_ID, demo_flow};
use crate::http::serve::ServeLimits;
use crate::ledger::Journal;
use crate::metrics::Metrics;
use crate::model::{ClientError, ErrorCode, FlowId, FlowRecord, TenantId, now};
use crate::realtime::{Connections, RealtimeState};
use crate::service::{BrowserRules, RateLimiter, Services, SharedRates};
use crate::store::{Store, StoreError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The backends could not be opened.
    #[error(transparent)]
    Backends(#[from] BackendError),
    /// The store could not be read or seeded.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The token keys could not be loaded.
    #[error(transparent)]
    Jwt(#[from] JwtError),
    /// The bootstrap key could not be seeded.
    #[error("seeding FLOWGATE_API_KEY: {0}")]
    Seed(ClientError),
}

/// The node's state; handlers take the sub-state they need ([`Services`],
/// [`ApiState`], [`RealtimeState`]). Cloned into each request (all `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The domain: chats, flows, keys, access.
    pub services: Services,
    /// The durable records.
    pub store: Arc<dyn Store>,
    /// The live feed.
    pub bus: Arc<dyn Bus>,
    /// The flow runner.
    pub engine: Arc<Engine>,
    /// The settings the node started with.
    pub config: Arc<Config>,
    /// `config.limits`, shared: every socket's state holds it.
    pub limits: Arc<Limits>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Live WebSocket and SSE connections.
    pub connections: Arc<Connections>,
    /// Fires on shutdown; long-lived requests end with it.
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for Services {
    fn from_ref(state: &AppState) -> Self {
        state.services.clone()
    }
}

impl FromRef<AppState> for ApiState {
    fn from_ref(state: &AppState) -> Self {
        ApiState {
            services: state.services.clone(),
            metrics: state.metrics.clone(),
            long_poll_max_secs: state.config.limits.long_poll_max_secs,
            shutdown: state.shutdown.clone(),
            metrics_token: state.config.metrics.token.as_deref().map(Arc::from),
            secure_cookie: state.config.session.secure_cookie,
        }
    }
}

impl FromRef<AppState> for RealtimeState {
    fn from_ref(state: &AppState) -> Self {
        RealtimeState {
            services: state.services.clone(),
            connections: state.connections.clone(),
            limits: state.limits.clone(),
            metrics: state.metrics.clone(),
            shutdown: state.shutdown.clone(),
        }
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
        let backends = Backends::open(&config).await?;
        Self::build_with(config, crate::engine::models::from_env(), backends).await
    }

    /// Builds the state on given backends, reading API keys with `secrets`:
    /// the one seam the tests use.
    pub async fn build_with(
        config: Config,
        secrets: SecretLookup,
        backends: Backends,
    ) -> Result<App, StartError> {
        let Backends { store, bus, leases, shared } = backends;
        let shutdown = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        let journal = Journal { store: store.clone(), bus: bus.clone(), metrics: metrics.clone() };
        let engine = Engine::new(EngineDeps {
            journal: journal.clone(),
            models: config.models.clone(),
            secrets,
            shutdown: shutdown.child_token(),
            leases,
            sweep_every: Duration::from_secs(config.cluster.sweep_secs),
            runs: config.runs.clone(),
            outbound: config.outbound.clone(),
        });
        let auth = Arc::new(Authenticator::new(store.clone(), Jwt::from_config(&config.jwt)?));
        let shared = shared.map(|r| SharedRates::new(r.conn, &r.prefix));
        let rate = RateLimiter::new(&config.rate_limits, shared, &metrics);
        let limit = config.limits.max_message_bytes;
        let keep = Duration::from_secs(config.limits.idempotency_keep_secs);
        let browser = BrowserRules {
            allowed_origins: config.cors.allowed_origins.clone(),
            session_ttl_secs: config.session.ttl_secs,
        };
        let services =
            Services::new(journal, engine.clone(), auth, limit, rate, browser, shutdown.child_token())
                .keeping_idempotent_answers_for(keep);
        if let Some(secret) = &config.api_key
            && services.keys.seed(&TenantId::default(), secret).await.map_err(StartError::Seed)?
        {
            tracing::info!("seeded FLOWGATE_API_KEY for tenant `default`");
        }
        if config.demo {
            register_demo(store.as_ref(), &TenantId::default()).await?;
        }
        let state = AppState {
            services,
            store,
            bus,
            engine,
            connections: Connections::new(config.limits.ws_max_connections),
            limits: Arc::new(config.limits.clone()),
            config: Arc::new(config),
            metrics,
            shutdown,
        };
        Ok(App { state })
    }

    /// The HTTP and WebSocket routes over this state.
    pub fn router(&self) -> Router {
        router(self.state.clone())
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
        tokio::spawn(async move {
            tokio::select! {
                _ = signal => {}
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        });
        let serve =
            crate::http::serve::serve(listener, router, serve_limits(&self.state.config), shutdown.clone());
        let result = serve.await;
        shutdown.cancel();
        self.state.connections.wait().await;
        self.state.engine.shutdown().await;
        result
    }
}

/// The server's connection bounds, from `limits.http_*`.
fn serve_limits(config: &Config) -> ServeLimits {
    let l = &config.limits;
    let max_connections = match l.http_max_connections {
        0 => crate::http::serve::default_max_connections(256),
        n => n,
    };
    ServeLimits {
        header_read: Duration::from_secs(l.http_header_read_secs),
        idle: Duration::from_secs(l.http_idle_secs),
        max_connections,
        max_per_client: (l.http_max_connections_per_client > 0).then_some(l.http_max_connections_per_client),
        trusted_proxies: l.trusted_proxies.clone(),
        drain: Duration::from_secs(l.long_poll_max_secs.max(l.http_header_read_secs).max(l.http_idle_secs)),
    }
}

/// Every route over one state: REST and realtime, at `/` and under `/v1`,
/// with the contract's envelope for unknown routes, wrong methods and panics.
pub fn router(state: AppState) -> Router {
    let limit = state.config.limits.max_body_bytes;
    let cors = crate::http::cors::layer(&state.config.cors);
    let routes = || {
        crate::api::routes::<AppState>()
            .merge(crate::realtime::routes::<AppState>())
            .route("/chats/{chat_id}/events", axum::routing::get(events))
    };
    Router::new()
        .merge(routes())
        .nest("/v1", routes())
        // Nested, `/` is `/v1` alone; the dashboard answers `/v1/` too.
        .route("/v1/", axum::routing::get(crate::api::dashboard_page))
        .route_layer(axum::middleware::from_fn(crate::http::access::mark_route))
        .fallback(|| async { ClientError::new(ErrorCode::NotFound, "no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            ClientError::new(ErrorCode::MethodNotAllowed, "this route does not take that method")
        })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_secs(state.config.limits.http_body_timeout_secs)))
        .layer(CatchPanicLayer::custom(|_| ClientError::internal("a handler panicked").into_response()))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), crate::http::access::track))
        .layer(tower::util::option_layer(cors))
        .with_state(state)
}

/// `GET /chats/{chat_id}/events`: the SSE stream for `Accept:
/// text/event-stream`, else the JSON page.
async fn events(State(state): State<AppState>, request: Request) -> Response {
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if accept.is_some_and(|v| v.contains("text/event-stream")) {
        crate::realtime::sse::events.call(request, state).await
    } else {
        crate::api::events_page.call(request, state).await
    }
}

/// Registers the demo flow for a tenant unless it already has one by that id.
pub async fn register_demo(store: &dyn Store, tenant: &TenantId) -> Result<(), StoreError> {
    let id = FlowId::parse(DEMO_FLOW_ID).expect("the demo's id is a flow id");
    if store.get_flow(tenant, &id).await?.is_some() {
        return Ok(());
    }
    let flow = demo_flow();
    let at = now();
    store
        .put_flow(&FlowRecord {
            id,
            tenant: tenant.clone(),
            name: flow.name.clone(),
            definition: serde_json::to_value(&flow)?,
            source: None,
            created_at: at,
            updated_at: at,
        })
        .await
}
