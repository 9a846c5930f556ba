//! The one Redis connection type the store, the run leases and the shared rate
//! limits use: a single server's multiplexed `ConnectionManager`, or the
//! cluster client's connection (`redis.cluster = true`), which routes every
//! command to the master of its key's slot and follows the cluster's topology
//! by itself.
//!
//! On a cluster every command, script and pipeline must keep to one slot:
//! the store's key layout does (see `keys`), and what reads or writes across
//! slots sends one command per key instead of one pipeline.
//!
//! Touches the Redis server(s) it is given, nothing else.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};

/// A connection to one Redis server or to a Redis Cluster; cheap to clone
/// (every clone shares the same multiplexed socket(s)).
#[derive(Clone)]
pub enum RedisConn {
    /// One server (`redis.cluster = false`).
    Single(ConnectionManager),
    /// A Redis Cluster (`redis.cluster = true`).
    Cluster(ClusterConnection),
}

/// Where one `SCAN` walk runs: the one server, or one cluster master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanTarget {
    /// The single server.
    Single,
    /// A cluster master at `host:port`.
    Master {
        /// Its host.
        host: String,
        /// Its port.
        port: u16,
    },
}

impl RedisConn {
    /// Connects to a cluster through any of its `seeds` (`redis://host:port`
    /// each): every call is bounded by `timeout`, connecting by `connect`.
    pub async fn cluster(seeds: &[String], timeout: Duration, connect: Duration) -> RedisResult<RedisConn> {
        let client = ClusterClientBuilder::new(seeds.to_vec())
            .connection_timeout(connect)
            .response_timeout(timeout)
            .retries(3)
            .max_retry_wait(500)
            .build()?;
        Ok(RedisConn::Cluster(client.get_async_connection().await?))
    }

    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Where a walk over every key must run: the one server, or each master.
    pub async fn scan_targets(&self) -> RedisResult<Vec<ScanTarget>> {
        let RedisConn::Cluster(conn) = self else {
            return Ok(vec![ScanTarget::Single]);
        };
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn.clone()).await?;
        Ok(masters(&nodes))
    }

    /// One `SCAN cursor MATCH pattern COUNT count` step on `target`.
    pub async fn scan(
        &self,
        target: &ScanTarget,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
        match (self, target) {
            (RedisConn::Single(conn), ScanTarget::Single) => cmd.query_async(&mut conn.clone()).await,
            (RedisConn::Cluster(conn), ScanTarget::Master { host, port }) => {
                let at = SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
                let value = conn.clone().route_command(cmd, RoutingInfo::SingleNode(at)).await?;
                redis::from_redis_value(value).map_err(RedisError::from)
            }
            _ => Err(RedisError::from((ErrorKind::Client, "scan target does not match the connection"))),
        }
    }
}

/// The masters that serve slots, from `CLUSTER NODES` (`id host:port@bus
/// flags master …`); failed ones are skipped.
fn masters(nodes: &str) -> Vec<ScanTarget> {
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                return None;
            }
            let address = fields.get(1)?.split('@').next()?;
            let (host, port) = address.rsplit_once(':')?;
            Some(ScanTarget::Master { host: host.to_owned(), port: port.parse().ok()? })
        })
        .collect()
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_masters_serving_slots_are_read_from_cluster_nodes() {
        let nodes = "a 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n\
                     b 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922\n\
                     c 127.0.0.1:7004@17004 slave b 0 0 2 connected\n\
                     d 127.0.0.1:7003@17003 master,fail - 0 0 3 connected\n";
        assert_eq!(
            masters(nodes),
            vec![
                ScanTarget::Master { host: "127.0.0.1".into(), port: 7001 },
                ScanTarget::Master { host: "127.0.0.1".into(), port: 7002 },
            ]
        );
    }
}
