//! Dashboard sessions: an API key exchanged (`POST /session`) for a signed,
//! short-lived value the browser keeps in an HttpOnly cookie. Stateless: the
//! value is an HS256 JWT carrying the tenant, the key id, a CSRF secret and
//! `iat`/`nbf`/`exp`, signed with a key derived from the gateway's token
//! secret (`jwt.secret`) under its own label, so a session never verifies as
//! a bearer token and a bearer token never verifies as a session.
//!
//! Touches nothing: keys and claims only. Whether the key behind a session
//! still exists is asked by the [`Authenticator`](super::Authenticator).

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::jwt::{JwtError, now_secs};

/// The cookie the session travels in.
pub const COOKIE: &str = "flowgate_session";

/// The `typ` claim of every session (bearer tokens have none).
const TYP: &str = "flowgate_session";

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const LEEWAY: u64 = 5;

/// What a session carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// Always `flowgate_session`.
    pub typ: String,
    /// The tenant.
    pub sub: String,
    /// The API key signed in with (`key_…`): the session dies with it.
    pub key_id: String,
    /// The CSRF token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
}

/// A freshly minted session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value.
    pub token: String,
    /// Its claims (the CSRF token, the expiry).
    pub claims: SessionClaims,
}

/// Mints and verifies sessions.
pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

impl Sessions {
    /// Session keys derived from the token secret (SHA-256 of a label and the
    /// secret: a different key from the bearer tokens' own).
    pub fn derive(secret: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"flowgate dashboard session v1\0");
        hasher.update(secret);
        let key = hasher.finalize();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY;
        validation.set_required_spec_claims(&["exp", "nbf"]);
        validation.validate_nbf = true;
        let encoding = EncodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid");
        let decoding = DecodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid");
        Self { encoding, decoding, validation }
    }

    /// A session for `tenant` signed in with `key_id`, lasting `ttl_secs`.
    pub fn mint(&self, tenant: &str, key_id: &str, ttl_secs: u64) -> Session {
        let mut csrf = [0u8; 32];
        rand::rng().fill_bytes(&mut csrf);
        let iat = now_secs();
        let claims = SessionClaims {
            typ: TYP.into(),
            sub: tenant.into(),
            key_id: key_id.into(),
            csrf: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(csrf),
            iat,
            nbf: iat,
            exp: iat + ttl_secs,
        };
        Session { token: self.sign(&claims), claims }
    }

    /// Signs claims as they are (tests forge expired ones through this).
    pub fn sign(&self, claims: &SessionClaims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail")
    }

    /// Verifies a cookie value: signature, algorithm, `exp`, `nbf`, `typ`.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, JwtError> {
        let data = decode::<SessionClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| JwtError::Invalid(format!("session: {e}")))?;
        if data.claims.typ != TYP {
            return Err(JwtError::Invalid("not a session".into()));
        }
        Ok(data.claims)
    }
}

/// Whether `presented` is this session's CSRF token (compared as digests, so
/// the time taken says nothing about how much matched).
pub fn csrf_matches(claims: &SessionClaims, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| Sha256::digest(p.trim().as_bytes()) == Sha256::digest(claims.csrf.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_session_verifies_and_carries_its_csrf_token() {
        let s = Sessions::derive(b"0123456789abcdef0123456789abcdef");
        let session = s.mint("acme", "key_1", 60);
        let claims = s.verify(&session.token).unwrap();
        assert_eq!(claims.sub, "acme");
        assert!(csrf_matches(&claims, Some(&session.claims.csrf)));
        assert!(!csrf_matches(&claims, Some("nope")));
        assert!(!csrf_matches(&claims, None));
    }

    #[test]
    fn a_session_from_another_secret_or_expired_or_not_yet_valid_is_refused() {
        let s = Sessions::derive(b"0123456789abcdef0123456789abcdef");
        let other = Sessions::derive(b"ffffffffffffffffffffffffffffffff");
        assert!(other.verify(&s.mint("acme", "key_1", 60).token).is_err());
        let mut claims = s.mint("acme", "key_1", 60).claims;
        claims.exp = now_secs() - 60;
        assert!(s.verify(&s.sign(&claims)).is_err());
        let mut claims = s.mint("acme", "key_1", 60).claims;
        claims.nbf = now_secs() + 600;
        assert!(s.verify(&s.sign(&claims)).is_err());
    }
}
