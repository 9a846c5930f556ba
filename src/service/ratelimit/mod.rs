//! Request and command rates, decided once for both transports: every
//! authenticated REST request (and WebSocket upgrade) and every WebSocket
//! command counts against the caller's API key (when it used one) and its
//! tenant. Each limit is a GCRA of `per_sec` a second with a burst of
//! `per_sec × burst_secs`. A refusal is `429 rate_limited` carrying a
//! [`RateLimitNote`] for the IETF draft's headers.
//!
//! Embedded, the limits are this node's ([`governor`]). With `store =
//! "redis"` they are shared by every node: one Lua script checks and spends
//! both limits atomically in Redis ([`redis::SharedRates`]); while Redis does
//! not answer, each node falls back to its own local limits.
//!
//! Touches the shared Redis (when given) and the metrics (refusals, by policy).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Caller;
use crate::config::RateLimitConfig;
use crate::metrics::Metrics;
use crate::model::{ClientError, RateLimitNote, RatePolicy};

pub mod redis;

pub use redis::SharedRates;

/// How often the local limiters forget callers that have been quiet a while.
const SWEEP_EVERY: u64 = 4096;

/// The node's rate limits; cheap to clone. [`RateLimiter::off`] admits all.
#[derive(Clone, Default)]
pub struct RateLimiter {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    key: Option<Limit>,
    tenant: Option<Limit>,
    shared: Option<SharedRates>,
    /// Set while Redis does not answer and the local limits stand in.
    degraded: AtomicBool,
    checks: AtomicU64,
}

/// One limit: its policy, its rate, and this node's limiter for it.
struct Limit {
    policy: RatePolicy,
    per_sec: u32,
    local: DefaultKeyedRateLimiter<String>,
    /// `flowgate_rate_limited_total{policy}`, resolved once.
    refused: prometheus::IntCounter,
}

/// One limit applied to one caller.
pub(crate) struct Subject<'a> {
    limit: &'a Limit,
    /// The key of the limiter: the API key's id, or the tenant.
    id: String,
}

impl Limit {
    fn new(name: &'static str, per_sec: u32, burst_secs: u32, metrics: &Metrics) -> Option<Limit> {
        let rate = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(per_sec.saturating_mul(burst_secs.max(1)))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(Limit {
            policy: RatePolicy {
                name,
                quota: u64::from(burst.get()),
                window_secs: u64::from(burst_secs.max(1)),
            },
            per_sec,
            local: DefaultKeyedRateLimiter::keyed(quota),
            refused: metrics.rate_limited.with_label_values(&[name]),
        })
    }
}

impl RateLimiter {
    /// No limits.
    pub fn off() -> Self {
        Self::default()
    }

    /// The limits of `config`, shared through Redis when `shared` is given;
    /// refusals are counted in `metrics`.
    pub fn new(config: &RateLimitConfig, shared: Option<SharedRates>, metrics: &Metrics) -> Self {
        let key = Limit::new("key", config.per_key_per_sec, config.burst_secs, metrics);
        let tenant = Limit::new("tenant", config.per_tenant_per_sec, config.burst_secs, metrics);
        if key.is_none() && tenant.is_none() {
            return Self::off();
        }
        let inner =
            Inner { key, tenant, shared, degraded: AtomicBool::new(false), checks: AtomicU64::new(0) };
        Self { inner: Some(Arc::new(inner)) }
    }

    /// Counts one request or command of `caller`: `Ok` when every limit that
    /// applies admits it, else `429 rate_limited` naming the one that refused.
    pub async fn check(&self, caller: &Caller) -> Result<(), ClientError> {
        let Some(inner) = &self.inner else { return Ok(()) };
        let subjects = inner.subjects(caller);
        if subjects.is_empty() {
            return Ok(());
        }
        let refused = match &inner.shared {
            Some(shared) => match shared.check(&caller.tenant, &subjects).await {
                Ok(verdict) => {
                    inner.recovered();
                    verdict
                }
                Err(e) => {
                    inner.degrade(&e);
                    inner.check_locally(&subjects)
                }
            },
            None => inner.check_locally(&subjects),
        };
        match refused {
            None => Ok(()),
            Some((index, wait)) => {
                subjects[index].limit.refused.inc();
                Err(ClientError::rate_limited(RateLimitNote {
                    policies: subjects.iter().map(|s| s.limit.policy).collect(),
                    refused: subjects[index].limit.policy,
                    reset_secs: wait.as_secs_f64().ceil() as u64,
                }))
            }
        }
    }
}

impl Inner {
    /// The limits that apply: the key's (API-key callers only) and the tenant's.
    fn subjects(&self, caller: &Caller) -> Vec<Subject<'_>> {
        let mut subjects = Vec::with_capacity(2);
        if let (Some(limit), Some(key)) = (&self.key, &caller.key_id) {
            subjects.push(Subject { limit, id: key.to_string() });
        }
        if let Some(limit) = &self.tenant {
            subjects.push(Subject { limit, id: caller.tenant.to_string() });
        }
        subjects
    }

    /// This node's verdict: the index of the refusing subject and its wait.
    fn check_locally(&self, subjects: &[Subject<'_>]) -> Option<(usize, Duration)> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.key.iter().chain(&self.tenant).for_each(|l| l.local.retain_recent());
        }
        subjects.iter().enumerate().find_map(|(i, s)| {
            let limiter = &s.limit.local;
            limiter
                .check_key(&s.id)
                .err()
                .map(|not_until| (i, not_until.wait_time_from(limiter.clock().now())))
        })
    }

    fn degrade(&self, e: &::redis::RedisError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %e, "rate limits: Redis does not answer; each node limits on its own");
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            tracing::info!("rate limits: shared through Redis again");
        }
    }
}
