//! API key secrets: minting (`fgk_` + 32 random bytes, base64url), hashing
//! (SHA-256, hex). A secret is looked up by its hash, never compared as text,
//! so lookup timing says nothing about the secret.

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every key Flowgate mints starts with this.
pub const PREFIX: &str = "fgk_";

/// A fresh secret: `fgk_` + 43 base64url characters (32 random bytes).
pub fn mint_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The hash a secret is stored and looked up by.
pub fn hash_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first characters of a secret, shown in listings to tell keys apart.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_are_prefixed_long_and_distinct() {
        let a = mint_secret();
        let b = mint_secret();
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hashes_are_stable_hex_and_never_the_secret() {
        let s = mint_secret();
        let h = hash_secret(&s);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_secret(&s));
        assert!(!h.contains(&s[PREFIX.len()..]));
    }
}
