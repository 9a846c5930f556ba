//! Who is calling: API keys (`X-API-KEY`, or `Authorization: Bearer fgk_…`),
//! JWT bearer tokens and dashboard sessions (a signed cookie), resolved to a [`Caller`] with a tenant, a scope and what
//! its credential's liveness depends on. What a caller may do is decided by the
//! domain services (`crate::service`), not here.
//!
//! Touches the store (key lookup by hash, `last_used_at`) and nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::model::{ApiKey, ChatId, KeyId, TenantId, now};
use crate::store::{Store, StoreError};

pub mod jwt;
pub mod keys;
pub mod session;

pub use jwt::Jwt;
pub use session::{Session, SessionClaims};

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
    /// A tenant-wide token in `?token=`, which takes chat tokens only.
    #[error("?token= takes chat tokens only; send a tenant-wide token in Authorization")]
    NotInUrl,
    /// The API key was deleted since the caller authenticated.
    #[error("the API key was revoked")]
    Revoked,
    /// The token expired since the caller authenticated.
    #[error("the token expired")]
    Expired,
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
    Chat(ChatId),
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whose records it may see.
    pub tenant: TenantId,
    /// How far it reaches within the tenant.
    pub scope: Scope,
    /// The API key used, or the one that minted the chat token used.
    pub key_id: Option<KeyId>,
    /// That key's hash, to check a long-lived socket's key is still valid.
    pub key_hash: Option<String>,
    /// A token's expiry (seconds since the epoch); the caller ends with it.
    pub expires_at: Option<u64>,
}

/// The credentials a request presented, as the transport found them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// `X-API-KEY`.
    pub api_key: Option<&'a str>,
    /// `Authorization` (`Bearer …`).
    pub authorization: Option<&'a str>,
    /// `?token=` (browsers: a chat token, never an API key).
    pub query_token: Option<&'a str>,
    /// The dashboard's session cookie, used only when nothing above is sent.
    pub session: Option<SessionPresented<'a>>,
}

/// A session cookie and what the request says about where it came from: the
/// domain decides from these whether a cookie may act (CSRF, `Origin`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionPresented<'a> {
    /// The cookie's value.
    pub cookie: &'a str,
    /// `X-CSRF-Token`.
    pub csrf: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Host`: the gateway's own origin is `scheme://` + this.
    pub host: Option<&'a str>,
    /// Whether the method changes state (anything but GET, HEAD, OPTIONS).
    pub changes_state: bool,
}

impl Caller {
    /// The operator acting on a tenant from the command line or at start-up
    /// (whoever can run the binary against the store already holds it all).
    pub fn operator(tenant: &TenantId) -> Caller {
        Caller {
            tenant: tenant.clone(),
            scope: Scope::Tenant,
            key_id: None,
            key_hash: None,
            expires_at: None,
        }
    }

    /// Whether the caller reaches a chat owned by `tenant`: the same tenant,
    /// and a chat token only its own chat. The one chat-level access rule;
    /// the domain answers "not found" otherwise, so existence does not leak.
    pub fn reaches_chat(&self, tenant: &TenantId, chat_id: &ChatId) -> bool {
        *tenant == self.tenant
            && match &self.scope {
                Scope::Tenant => true,
                Scope::Chat(id) => id == chat_id,
            }
    }
}

/// Resolves credentials to callers.
pub struct Authenticator {
    store: Arc<dyn Store>,
    jwt: Jwt,
    touched: DashMap<KeyId, Instant>,
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

    /// Whether a caller's credential still holds: its token has not expired,
    /// and its API key (if any) was not deleted. The one liveness check; every
    /// long-lived stream asks it again.
    pub async fn still_valid(&self, caller: &Caller) -> Result<(), AuthError> {
        if caller.expires_at.is_some_and(|exp| exp <= jwt::now_secs()) {
            return Err(AuthError::Expired);
        }
        let alive = match (&caller.key_hash, &caller.key_id) {
            (Some(hash), _) => self.store.key_by_hash(hash).await?.is_some(),
            // A chat token minted by a key lives only as long as that key.
            (None, Some(key_id)) => {
                self.store.list_keys(&caller.tenant).await?.iter().any(|k| &k.id == key_id)
            }
            (None, None) => true,
        };
        if alive { Ok(()) } else { Err(AuthError::Revoked) }
    }

    /// Authenticates the presented credentials: headers first, else a
    /// `?token=`, which must be a chat token (API keys and tenant-wide tokens
    /// are never accepted in a URL).
    pub async fn authenticate(&self, presented: Presented<'_>) -> Result<Caller, AuthError> {
        if let Some(key) = presented.api_key.map(str::trim) {
            return self.api_key(key).await;
        }
        if let Some(value) = presented.authorization.map(str::trim) {
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
        match presented.query_token {
            Some(token) if !token.starts_with(keys::PREFIX) => {
                let caller = self.bearer(token)?;
                match caller.scope {
                    Scope::Chat(_) => Ok(caller),
                    Scope::Tenant => Err(AuthError::NotInUrl),
                }
            }
            _ => Err(AuthError::Missing),
        }
    }

    /// Resolves a session cookie: its signature, `exp` and `nbf`, then the
    /// liveness of the key it was signed in with (a revoked key ends every
    /// session made with it). Returns the claims too, for the CSRF check.
    pub async fn session(&self, cookie: &str) -> Result<(Caller, SessionClaims), AuthError> {
        let claims = self.jwt.sessions().verify(cookie.trim())?;
        let invalid = |why: String| AuthError::InvalidToken(jwt::JwtError::Invalid(why));
        let tenant = TenantId::parse(&claims.sub).map_err(|e| invalid(e.to_string()))?;
        let key_id = KeyId::parse(&claims.key_id).map_err(|e| invalid(e.to_string()))?;
        let caller = Caller {
            tenant,
            scope: Scope::Tenant,
            key_id: Some(key_id),
            key_hash: None,
            expires_at: Some(claims.exp),
        };
        self.still_valid(&caller).await?;
        Ok((caller, claims))
    }

    /// Mints a session for an API-key caller (`None` for any other caller:
    /// only a key signs in).
    pub fn mint_session(&self, caller: &Caller, ttl_secs: u64) -> Option<Session> {
        let key_id = caller.key_id.as_ref().filter(|_| caller.key_hash.is_some())?;
        Some(self.jwt.sessions().mint(caller.tenant.as_str(), key_id.as_str(), ttl_secs))
    }

    fn bearer(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.jwt.verify(token)?;
        let invalid = |why: String| AuthError::InvalidToken(jwt::JwtError::Invalid(why));
        let tenant = TenantId::parse(claims.tenant().unwrap_or_default())
            .map_err(|_| invalid("the tenant must be 1 to 64 of [A-Za-z0-9_.-]".into()))?;
        let scope = match claims.chat_id.as_deref() {
            None => Scope::Tenant,
            Some(id) => Scope::Chat(ChatId::parse(id).map_err(|e| invalid(e.to_string()))?),
        };
        let key_id = match claims.key_id.as_deref() {
            None => None,
            Some(id) => Some(KeyId::parse(id).map_err(|e| invalid(e.to_string()))?),
        };
        Ok(Caller { tenant, scope, key_id, key_hash: None, expires_at: Some(claims.exp) })
    }

    async fn api_key(&self, secret: &str) -> Result<Caller, AuthError> {
        let hash = keys::hash_secret(secret);
        let key = self.store.key_by_hash(&hash).await?.ok_or(AuthError::InvalidKey)?;
        self.touch(&key).await;
        Ok(Caller {
            tenant: key.tenant,
            scope: Scope::Tenant,
            key_id: Some(key.id),
            key_hash: Some(hash),
            expires_at: None,
        })
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
