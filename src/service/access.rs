//! Access, decided in one place: who is calling (credentials to a [`Caller`],
//! a dashboard session included, with its CSRF and `Origin` rules),
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
use crate::auth::session::csrf_matches;
use crate::auth::{Authenticator, Caller, Presented, Scope, Session, SessionClaims, SessionPresented};
use crate::model::{ClientError, ErrorCode, KeyId};

/// What the domain knows about browsers: the other origins whose pages may
/// use the API (`cors.allowed_origins`), and how long a session lasts.
#[derive(Debug, Clone)]
pub struct BrowserRules {
    /// Origins besides the gateway's own whose pages may act with a session
    /// (its socket upgrades and streams; CORS never lets them read with one).
    pub allowed_origins: Vec<String>,
    /// Session lifetime, seconds.
    pub session_ttl_secs: u64,
}

impl Default for BrowserRules {
    fn default() -> Self {
        Self { allowed_origins: Vec::new(), session_ttl_secs: 3600 }
    }
}

/// The access rules.
#[derive(Clone)]
pub struct Access {
    auth: Arc<Authenticator>,
    credentials: Arc<Credentials>,
    rate: RateLimiter,
    browser: Arc<BrowserRules>,
}

impl Access {
    /// The rules over an authenticator, with rate limits; the node's
    /// credential checker ends with `shutdown`.
    pub fn new(
        auth: Arc<Authenticator>,
        rate: RateLimiter,
        browser: BrowserRules,
        shutdown: CancellationToken,
    ) -> Self {
        let credentials = Arc::new(Credentials::start(auth.clone(), shutdown));
        Self { auth, credentials, rate, browser: Arc::new(browser) }
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
    ///
    /// A session cookie counts only when no header or `?token=` credential
    /// is sent (those behave exactly as without it). With it, a present
    /// `Origin` must be the gateway's own or an allowed one, and a request
    /// that changes state must echo the session's CSRF token in
    /// `X-CSRF-Token`: else 403 `csrf_failed`.
    pub async fn authenticate(&self, presented: Presented<'_>) -> Result<Caller, ClientError> {
        let explicit = presented.api_key.is_some()
            || presented.authorization.is_some()
            || presented.query_token.is_some();
        let caller = match presented.session {
            Some(session) if !explicit => {
                let (caller, claims) = self.session(session).await?;
                if session.changes_state && !csrf_matches(&claims, session.csrf) {
                    return Err(ClientError::new(
                        ErrorCode::CsrfFailed,
                        "a request authenticated by the session cookie must send its X-CSRF-Token",
                    ));
                }
                caller
            }
            _ => self.auth.authenticate(presented).await?,
        };
        self.rate.check(&caller).await?;
        Ok(caller)
    }

    /// A session cookie's caller and claims (`GET /session`): signature,
    /// expiry, the key's liveness, and the `Origin` rule; no CSRF check.
    pub async fn session(
        &self,
        session: SessionPresented<'_>,
    ) -> Result<(Caller, SessionClaims), ClientError> {
        self.check_origin(session.origin, session.host)?;
        Ok(self.auth.session(session.cookie).await?)
    }

    /// Exchanges an API key for a session (`POST /session`): the key must be
    /// valid (401 otherwise), the request's `Origin`, when present, the
    /// gateway's own or an allowed one (403 `csrf_failed`).
    pub async fn sign_in(
        &self,
        api_key: &str,
        origin: Option<&str>,
        host: Option<&str>,
    ) -> Result<Session, ClientError> {
        self.check_origin(origin, host)?;
        let caller = self.authenticate(Presented { api_key: Some(api_key), ..Presented::default() }).await?;
        self.auth
            .mint_session(&caller, self.browser.session_ttl_secs)
            .ok_or_else(|| ClientError::unauthenticated("only an API key signs in"))
    }

    /// Refuses a present `Origin` that is neither the gateway's own
    /// (`http(s)://` + `Host`) nor one of `cors.allowed_origins`.
    pub fn check_origin(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), ClientError> {
        match origin {
            Some(origin) if !origin_allowed(origin, host, &self.browser.allowed_origins) => {
                Err(ClientError::new(
                    ErrorCode::CsrfFailed,
                    format!("origin `{origin}` may not use the session cookie"),
                ))
            }
            _ => Ok(()),
        }
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

/// Whether a browser's `Origin` is the gateway's own or an allowed one.
fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim();
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let rest = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    matches!((rest, host), (Some(rest), Some(host)) if rest.eq_ignore_ascii_case(host.trim()))
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn the_gateways_own_origin_and_allowed_ones_pass_and_others_do_not() {
        let allowed = vec!["https://app.example.com".to_owned()];
        let host = Some("127.0.0.1:8080");
        assert!(origin_allowed("http://127.0.0.1:8080", host, &allowed));
        assert!(origin_allowed("https://app.example.com", host, &allowed));
        assert!(!origin_allowed("http://127.0.0.1:9090", host, &allowed));
        assert!(!origin_allowed("null", host, &allowed));
        assert!(!origin_allowed("http://127.0.0.1:8080", None, &[]));
    }
}
