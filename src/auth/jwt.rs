//! Bearer tokens: JWTs verified by signature (HS256 secret or RS256 public key)
//! and expiry, and minted (HS256) as short-lived chat-scoped tokens for browser
//! widgets.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use super::session::Sessions;
use crate::config::JwtConfig;

/// Why a token setup or a token is refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The configured key cannot be used.
    #[error("jwt key: {0}")]
    Key(String),
    /// The token is malformed, wrongly signed, expired or lacks a tenant.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The claims Flowgate reads and writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant (unless `tenant` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The tenant, when the issuer uses `sub` for something else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Limits the token to one chat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// The API key that minted this token (`key_…`): the token dies with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before (checked, with the same leeway as `exp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl Claims {
    /// The tenant the token speaks for.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref().or(self.sub.as_deref()).filter(|t| !t.is_empty())
    }
}

/// Verifies tokens and mints chat tokens.
pub struct Jwt {
    hs_encoding: EncodingKey,
    decoders: Vec<(DecodingKey, Validation)>,
    issuer: Option<String>,
    chat_ttl_secs: u64,
    sessions: Sessions,
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Jwt {
    /// Builds the verifier from config. Without a configured secret, a random
    /// per-process HS256 secret signs (and alone verifies) minted tokens.
    pub fn from_config(config: &JwtConfig) -> Result<Self, JwtError> {
        let secret = config.secret.clone().unwrap_or_else(super::keys::mint_secret);
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = 5;
            v.set_required_spec_claims(&["exp"]);
            v.validate_nbf = true;
            if let Some(iss) = &config.issuer {
                v.set_issuer(&[iss]);
            }
            v
        };
        let key_err = |e: jsonwebtoken::errors::Error| JwtError::Key(e.to_string());
        let hs_decoding = DecodingKey::from_secret(secret.as_bytes()).map_err(key_err)?;
        let mut decoders = vec![(hs_decoding, validation(Algorithm::HS256))];
        if let Some(path) = &config.rs256_public_key {
            let pem = std::fs::read(path).map_err(|e| JwtError::Key(format!("{}: {e}", path.display())))?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| JwtError::Key(e.to_string()))?;
            decoders.push((key, validation(Algorithm::RS256)));
        }
        Ok(Self {
            hs_encoding: EncodingKey::from_secret(secret.as_bytes()).map_err(key_err)?,
            decoders,
            issuer: config.issuer.clone(),
            chat_ttl_secs: config.chat_token_ttl_secs.unwrap_or(600),
            sessions: Sessions::derive(secret.as_bytes()),
        })
    }

    /// Verifies a token: signature, algorithm, expiry, issuer, and a tenant.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let alg = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?.alg;
        let (key, validation) = self
            .decoders
            .iter()
            .find(|(_, v)| v.algorithms.contains(&alg))
            .ok_or_else(|| JwtError::Invalid(format!("algorithm {alg:?} is not accepted")))?;
        let data = decode::<Claims>(token, key, validation).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if data.claims.tenant().is_none() {
            return Err(JwtError::Invalid("no `sub` or `tenant` claim".into()));
        }
        Ok(data.claims)
    }

    /// Mints a token for one chat of one tenant; returns it with its expiry.
    pub fn mint_chat_token(
        &self,
        tenant: &str,
        chat_id: &str,
        ttl_secs: Option<u64>,
        key_id: Option<&str>,
    ) -> (String, u64) {
        let iat = now_secs();
        let exp = iat + ttl_secs.unwrap_or(self.chat_ttl_secs).clamp(1, 86_400);
        let claims = Claims {
            sub: Some(tenant.to_owned()),
            tenant: None,
            chat_id: Some(chat_id.to_owned()),
            key_id: key_id.map(str::to_owned),
            exp,
            iat: Some(iat),
            nbf: None,
            iss: self.issuer.clone(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.hs_encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        (token, exp)
    }

    /// Dashboard sessions, signed with a key derived from the same secret.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The default lifetime of minted chat tokens, seconds.
    pub fn chat_ttl_secs(&self) -> u64 {
        self.chat_ttl_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(secret: &str) -> Jwt {
        Jwt::from_config(&JwtConfig { secret: Some(secret.into()), ..Default::default() }).unwrap()
    }

    #[test]
    fn a_minted_chat_token_verifies_with_its_tenant_and_chat() {
        let j = jwt("0123456789abcdef0123456789abcdef");
        let (token, _) = j.mint_chat_token("acme", "chat_1", None, None);
        let claims = j.verify(&token).unwrap();
        assert_eq!(claims.tenant(), Some("acme"));
        assert_eq!(claims.chat_id.as_deref(), Some("chat_1"));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let (token, _) = jwt("0123456789abcdef0123456789abcdef").mint_chat_token("acme", "c", None, None);
        assert!(jwt("ffffffffffffffffffffffffffffffff").verify(&token).is_err());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let j = jwt("0123456789abcdef0123456789abcdef");
        let claims = Claims {
            sub: Some("acme".into()),
            tenant: None,
            chat_id: None,
            key_id: None,
            exp: now_secs() - 60,
            iat: None,
            nbf: None,
            iss: None,
        };
        let key = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef").unwrap();
        let token = encode(&Header::default(), &claims, &key).unwrap();
        assert!(j.verify(&token).is_err());
    }
}
