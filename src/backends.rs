//! The one factory for what a node runs on: the store, the bus and the run
//! leases, built together from one config section, so a node never pairs a
//! shared store with a local bus. Embedded: a SQLite file, the in-process bus,
//! local leases. Scaled out: one Redis client shared by the store, the bus
//! (which adds its one subscriber connection) and the leases.
//!
//! Touches the backends' constructors and the config; nothing above them.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::cluster::ClusterBus;
use crate::bus::memory::MemoryBus;
use crate::bus::redis::{RedisBus, RedisBusOptions};
use crate::bus::{Bus, BusError};
use crate::config::{Config, SqliteSync, StoreKind};
use crate::engine::lease::{Leases, LocalLeases, RedisLeases};
use crate::store::redis::{RedisConn, RedisStore, RedisStoreOptions};
use crate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use crate::store::{Store, StoreError};

/// Why the backends could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The bus could not be reached.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// The data dir could not be made.
    #[error("data_dir: {0}")]
    Io(#[from] std::io::Error),
    /// A setting the backend needs is missing or wrong.
    #[error("{0}")]
    Config(String),
}

/// What a node runs on.
#[derive(Clone)]
pub struct Backends {
    /// The durable records.
    pub store: Arc<dyn Store>,
    /// The live feed between tasks and nodes.
    pub bus: Arc<dyn Bus>,
    /// Who drives each run.
    pub leases: Arc<dyn Leases>,
    /// The Redis the nodes share, for counters outside the store (rate
    /// limits); `None` when embedded.
    pub shared: Option<SharedRedis>,
}

/// A connection to the shared Redis and the key prefix the store uses.
#[derive(Clone)]
pub struct SharedRedis {
    /// The store's multiplexed connection (one server or the cluster).
    pub conn: RedisConn,
    /// Prepended to every key (`fg:`).
    pub prefix: String,
}

impl Backends {
    /// The backends the config names (`store = "sqlite" | "redis"`).
    pub async fn open(config: &Config) -> Result<Backends, BackendError> {
        match config.store {
            StoreKind::Sqlite => Self::sqlite(&config.data_dir, config.sqlite.synchronous),
            StoreKind::Redis => {
                let url = config.redis_url.as_deref().ok_or_else(|| {
                    BackendError::Config("redis_url is required when store = \"redis\"".into())
                })?;
                let node_id = config.node_id.clone().unwrap_or_else(|| format!("node-{}", ulid::Ulid::new()));
                let lease_ttl = Duration::from_secs(config.cluster.lease_ttl_secs);
                let bus = RedisBusOptions {
                    // A message streams within one stretch of its run.
                    partial_ttl: Duration::from_secs(config.runs.max_run_secs.saturating_add(60)),
                    ..RedisBusOptions::default()
                };
                if config.redis.cluster {
                    return Self::redis_cluster(&seeds(url), &node_id, lease_ttl, bus).await;
                }
                Self::redis(url, &node_id, lease_ttl, bus).await
            }
        }
    }

    /// Embedded: `flowgate.db` in `data_dir`, the in-process bus, local leases.
    pub fn sqlite(data_dir: &Path, sync: SqliteSync) -> Result<Backends, BackendError> {
        std::fs::create_dir_all(data_dir)?;
        let synchronous = match sync {
            SqliteSync::Full => Synchronous::Full,
            SqliteSync::Normal => Synchronous::Normal,
        };
        let path = data_dir.join("flowgate.db");
        let store = SqliteStore::open(&path, SqliteOptions { synchronous, ..Default::default() })?;
        Ok(Backends {
            store: Arc::new(store),
            bus: Arc::new(MemoryBus::new()),
            leases: Arc::new(LocalLeases),
            shared: None,
        })
    }

    /// Scaled out: the Redis store, the Redis bus (with `bus` options) and run
    /// leases in Redis under `node_id`, all from one client of `url`.
    pub async fn redis(
        url: &str,
        node_id: &str,
        lease_ttl: Duration,
        bus: RedisBusOptions,
    ) -> Result<Backends, BackendError> {
        let client = redis::Client::open(url)
            .map_err(|e| BackendError::Config(format!("redis_url `{url}` is not a Redis URL: {e}")))?;
        let options = RedisStoreOptions::default();
        let prefix = options.prefix.clone();
        let store = RedisStore::connect(client.clone(), options).await?;
        refuse_cluster_node(&store).await?;
        let bus = RedisBus::connect(client, bus).await?;
        let leases = RedisLeases::new(store.connection(), &prefix, node_id, lease_ttl);
        tracing::info!(node_id, "sharing Redis with other nodes");
        let shared = Some(SharedRedis { conn: store.connection(), prefix });
        Ok(Backends { store: Arc::new(store), bus: Arc::new(bus), leases: Arc::new(leases), shared })
    }

    /// Scaled out on a Redis Cluster (`redis.cluster = true`): the store and
    /// the leases on the cluster client, the bus (with `bus` options) on
    /// sharded pub/sub, all reached through any of `seeds`.
    pub async fn redis_cluster(
        seeds: &[String],
        node_id: &str,
        lease_ttl: Duration,
        bus: RedisBusOptions,
    ) -> Result<Backends, BackendError> {
        let misconfigured = |e: &dyn std::fmt::Display| {
            BackendError::Config(format!(
                "redis.cluster = true but redis_url `{}` does not lead to a Redis Cluster: {e}",
                seeds.join(",")
            ))
        };
        let options = RedisStoreOptions::default();
        let prefix = options.prefix.clone();
        let store = RedisStore::connect_cluster(seeds, options).await.map_err(|e| misconfigured(&e))?;
        let bus = ClusterBus::connect(seeds, bus).await.map_err(|e| misconfigured(&e))?;
        let leases = RedisLeases::new(store.connection(), &prefix, node_id, lease_ttl);
        tracing::info!(node_id, nodes = seeds.len(), "sharing a Redis Cluster with other nodes");
        let shared = Some(SharedRedis { conn: store.connection(), prefix });
        Ok(Backends { store: Arc::new(store), bus: Arc::new(bus), leases: Arc::new(leases), shared })
    }
}

/// The seed nodes of `redis_url` with `redis.cluster`: comma separated URLs.
fn seeds(url: &str) -> Vec<String> {
    url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Fails loudly when `redis.cluster = false` names a cluster node: its
/// commands would meet `MOVED` for most keys.
async fn refuse_cluster_node(store: &RedisStore) -> Result<(), BackendError> {
    let mut conn = store.connection();
    let info: String = match redis::cmd("INFO").arg("cluster").query_async(&mut conn).await {
        Ok(info) => info,
        Err(_) => return Ok(()), // An older or restricted server: no cluster there.
    };
    if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
        return Err(BackendError::Config(
            "redis_url names a Redis Cluster node: set redis.cluster = true (FLOWGATE_REDIS__CLUSTER=true)"
                .into(),
        ));
    }
    Ok(())
}
