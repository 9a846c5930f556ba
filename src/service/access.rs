//! Access, decided in one place: who is calling (credentials to a [`Caller`]),
//! whether that caller's credential still holds, whether its scope reaches
//! tenant-wide operations, and whether it is within its rate limits (every
//! authenticated request, and every socket command, is counted here). The chat-level rule (tenant and chat-token scope)
//! is applied by [`super::ChatService::get`], in the read every chat
//! operation makes anyway.
//!
//! Touches the authenticator (and through it the key store) and the rate
//! limiter (and through it, in Redis mode, the shared counters).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::credentials::{CredentialWatch, Credentials};
use super::ratelimit::RateLimiter;
use crate::auth::{Authenticator, Caller, Presented, Scope};
use crate::model::{ClientError, KeyId};

/// The access rules.
#[derive(Clone)]
pub struct Access {
    auth: Arc<Authenticator>,
    credentials: Arc<Credentials>,
    rate: RateLimiter,
}

impl Access {
    /// The rules over an authenticator, with rate limits; the node's
    /// credential checker ends with `shutdown`.
    pub fn new(auth: Arc<Authenticator>, rate: RateLimiter, shutdown: CancellationToken) -> Self {
        let credentials = Arc::new(Credentials::start(auth.clone(), shutdown));
        Self { auth, credentials, rate }
    }

    /// A watch that fires when the caller's credential ends (token expiry,
    /// key revoked on any node): every long-lived stream holds one.
    pub fn watch(&self, caller: &Caller) -> CredentialWatch {
        self.credentials.watch(caller)
    }

    /// Resolves presented credentials to a caller (401 when they do not hold,
    /// 403 for a tenant-wide token in `?token=`) and counts the request
    /// against its rate limits (429 `rate_limited` over them). Every REST
    /// request and WebSocket upgrade authenticates exactly once, here.
    pub async fn authenticate(&self, presented: Presented<'_>) -> Result<Caller, ClientError> {
        let caller = self.auth.authenticate(presented).await?;
        self.rate.check(&caller).await?;
        Ok(caller)
    }

    /// Counts one more command of an already authenticated caller (a
    /// WebSocket frame) against its rate limits: 429 `rate_limited` over them.
    pub async fn throttle(&self, caller: &Caller) -> Result<(), ClientError> {
        self.rate.check(caller).await
    }

    /// Whether the caller's credential still holds (token not expired, key
    /// not revoked): 401 `unauthenticated` otherwise. Asked by every
    /// operation, so a socket's next command after a revocation or expiry is
    /// refused (and the socket closed with 4001).
    pub async fn live(&self, caller: &Caller) -> Result<(), ClientError> {
        Ok(self.auth.still_valid(caller).await?)
    }

    /// A live caller whose scope is the whole tenant (listing, flows, keys,
    /// minting tokens); a chat token gets 403 `forbidden`.
    pub async fn tenant_wide(&self, caller: &Caller) -> Result<(), ClientError> {
        self.live(caller).await?;
        match caller.scope {
            Scope::Tenant => Ok(()),
            Scope::Chat(_) => {
                Err(crate::auth::AuthError::Forbidden("this token is limited to one chat").into())
            }
        }
    }

    /// Mints a token for one chat of the caller's tenant (checked by the caller).
    pub(crate) fn mint_chat_token(&self, caller: &Caller, chat_id: &str, ttl: Option<u64>) -> (String, u64) {
        let key_id = caller.key_id.as_ref().map(KeyId::as_str);
        self.auth.jwt().mint_chat_token(&caller.tenant, chat_id, ttl, key_id)
    }
}
