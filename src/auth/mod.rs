//! Who is calling: API keys (`X-API-KEY`, or `Authorization: Bearer fgk_…`) and
//! JWT bearer tokens, resolved to a [`Caller`] with a tenant and a scope. The
//! axum extractor lives here so every handler that takes a `Caller` is
//! authenticated before its body runs.
//!
//! Touches the store (key lookup by hash, `last_used_at`) and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use dashmap::DashMap;

use crate::model::{ApiKey, IdKind, TenantId, now};
use crate::store::{Store, StoreError};

pub mod jwt;
pub mod keys;

pub use jwt::Jwt;

/// How often `last_used_at` is written for one key, at most.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Why a request is not authenticated or not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("missing credentials: send X-API-KEY or Authorization: Bearer")]
    Missing,
    /// An API key that does not exist (or was deleted).
    #[error("invalid API key")]
    InvalidKey,
    /// A bearer token that does not verify.
    #[error("{0}")]
    InvalidToken(#[from] jwt::JwtError),
    /// Authenticated, but the credential's scope does not cover this route.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The key store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a credential may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything of the tenant (API keys, tenant tokens).
    Tenant,
    /// One chat only (minted chat tokens).
    Chat(String),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose records it may see.
    pub tenant: TenantId,
    /// How far it reaches within the tenant.
    pub scope: Scope,
    /// The API key used, if any.
    pub key_id: Option<String>,
    /// That key's hash, to check a long-lived socket's key is still valid.
    pub key_hash: Option<String>,
}

/// Whether a tenant name is usable: 1 to 64 of `[A-Za-z0-9_.-]` (it becomes
/// part of store keys and Redis hash tags, where a brace would change slots).
pub fn valid_tenant(tenant: &str) -> bool {
    (1..=64).contains(&tenant.len())
        && tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl Caller {
    /// Refuses chat-scoped tokens on tenant-wide routes (listing, flows, keys).
    pub fn require_tenant_scope(&self) -> Result<(), AuthError> {
        match self.scope {
            Scope::Tenant => Ok(()),
            Scope::Chat(_) => Err(AuthError::Forbidden("this token is limited to one chat")),
        }
    }

    /// Whether the caller may touch this chat (a chat token only its own).
    /// The caller answers "not found" otherwise, so existence does not leak.
    pub fn may_access_chat(&self, chat_id: &str) -> bool {
        match &self.scope {
            Scope::Tenant => true,
            Scope::Chat(id) => id == chat_id,
        }
    }
}

/// Resolves credentials to callers.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: Jwt,
    touched: DashMap<String, Instant>,
}

impl Authenticator {
    /// Builds it on the store's keys and the token verifier.
    pub fn new(store: Arc<dyn Store>, jwt: Jwt) -> Self {
        Self { store, jwt, touched: DashMap::new() }
    }

    /// The token verifier and minter.
    pub fn jwt(&self) -> &Jwt {
        &self.jwt
    }

    /// Whether a caller's credential still holds: a deleted API key does not
    /// (tokens hold until they expire, which the socket's caller checked once).
    pub async fn still_valid(&self, caller: &Caller) -> bool {
        match &caller.key_hash {
            Some(hash) => matches!(self.store.key_by_hash(hash).await, Ok(Some(_))),
            None => true,
        }
    }

    /// Authenticates from headers, or from a `?token=` (a JWT; API keys are
    /// never accepted in a URL).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        query_token: Option<&str>,
    ) -> Result<Caller, AuthError> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        if let Some(key) = header("x-api-key") {
            return self.api_key(key).await;
        }
        if let Some(value) = header("authorization") {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or(AuthError::Missing)?;
            if token.starts_with(keys::PREFIX) {
                return self.api_key(token).await;
            }
            return self.bearer(token);
        }
        match query_token {
            Some(token) if !token.starts_with(keys::PREFIX) => self.bearer(token),
            _ => Err(AuthError::Missing),
        }
    }

    fn bearer(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.jwt.verify(token)?;
        let tenant = claims.tenant().unwrap_or_default().to_owned();
        let scope = claims.chat_id.map_or(Scope::Tenant, Scope::Chat);
        if !valid_tenant(&tenant) {
            return Err(AuthError::InvalidToken(jwt::JwtError::Invalid(
                "the tenant must be 1 to 64 of [A-Za-z0-9_.-]".into(),
            )));
        }
        Ok(Caller { tenant, scope, key_id: None, key_hash: None })
    }

    async fn api_key(&self, secret: &str) -> Result<Caller, AuthError> {
        let hash = keys::hash_secret(secret);
        let key = self.store.key_by_hash(&hash).await?.ok_or(AuthError::InvalidKey)?;
        self.touch(&key).await;
        Ok(Caller { tenant: key.tenant, scope: Scope::Tenant, key_id: Some(key.id), key_hash: Some(hash) })
    }

    async fn touch(&self, key: &ApiKey) {
        let due = self.touched.get(&key.id).is_none_or(|at| at.elapsed() >= TOUCH_EVERY);
        if due {
            self.touched.insert(key.id.clone(), Instant::now());
            if let Err(e) = self.store.touch_key(&key.id, now()).await {
                tracing::warn!(key_id = %key.id, error = %e, "could not record key use");
            }
        }
    }
}

/// Creates a key for a tenant; returns the record and the secret (shown once).
pub async fn create_key(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    environment: Option<String>,
) -> Result<(ApiKey, String), StoreError> {
    let secret = keys::mint_secret();
    let key = ApiKey {
        id: crate::model::new_id(IdKind::Key),
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        environment,
        prefix: keys::display_prefix(&secret),
        created_at: now(),
        last_used_at: None,
    };
    store.insert_key(&key, &keys::hash_secret(&secret)).await?;
    Ok((key, secret))
}

/// Seeds a given secret for a tenant if no key has it yet (`FLOWGATE_API_KEY`).
pub async fn seed_key(store: &dyn Store, tenant: &str, secret: &str) -> Result<bool, StoreError> {
    let hash = keys::hash_secret(secret);
    if store.key_by_hash(&hash).await?.is_some() {
        return Ok(false);
    }
    let key = ApiKey {
        id: crate::model::new_id(IdKind::Key),
        tenant: tenant.to_owned(),
        name: "seeded from FLOWGATE_API_KEY".into(),
        environment: None,
        prefix: keys::display_prefix(secret),
        created_at: now(),
        last_used_at: None,
    };
    store.insert_key(&key, &hash).await?;
    Ok(true)
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = crate::api::ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        Ok(auth.authenticate(&parts.headers, None).await?)
    }
}
