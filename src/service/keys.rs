//! API keys: a tenant's key manages that tenant's keys (HTTP), the operator
//! any tenant's (the command line, start-up seeding). The secret is returned
//! once, at creation; only its hash is stored.
//!
//! Touches the store's key records.

use std::sync::Arc;

use super::access::Access;
use crate::auth::{Caller, keys};
use crate::model::{ApiKey, ClientError, ErrorCode, KeyId, TenantId, now};
use crate::store::Store;

/// The key operations.
#[derive(Clone)]
pub struct KeyService {
    store: Arc<dyn Store>,
    access: Access,
}

impl KeyService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, access: Access) -> Self {
        Self { store, access }
    }

    /// Creates a key for the caller's tenant; returns it with its secret.
    pub async fn create(
        &self,
        caller: &Caller,
        name: Option<String>,
        environment: Option<String>,
    ) -> Result<(ApiKey, String), ClientError> {
        self.access.tenant_wide(caller).await?;
        let name = name
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| ClientError::invalid("name", "name is required"))?;
        if name.len() > 128 {
            return Err(ClientError::invalid("name", "at most 128 characters"));
        }
        let environment = environment.filter(|e| !e.trim().is_empty());
        let secret = keys::mint_secret();
        let key = self.record(&caller.tenant, name, environment, &secret);
        self.store.insert_key(&key, &keys::hash_secret(&secret)).await?;
        Ok((key, secret))
    }

    /// Every key of the caller's tenant, without secrets.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ApiKey>, ClientError> {
        self.access.tenant_wide(caller).await?;
        Ok(self.store.list_keys(&caller.tenant).await?)
    }

    /// Deletes one of the tenant's keys; the next request with it gets 401.
    pub async fn revoke(&self, caller: &Caller, key_id: &KeyId) -> Result<(), ClientError> {
        self.access.tenant_wide(caller).await?;
        if self.store.delete_key(&caller.tenant, key_id).await? {
            Ok(())
        } else {
            Err(ClientError::new(ErrorCode::KeyNotFound, format!("no key {key_id}")))
        }
    }

    /// Seeds a given secret for a tenant unless a key has it already
    /// (`FLOWGATE_API_KEY`); whether it was added.
    pub async fn seed(&self, tenant: &TenantId, secret: &str) -> Result<bool, ClientError> {
        let hash = keys::hash_secret(secret);
        if self.store.key_by_hash(&hash).await?.is_some() {
            return Ok(false);
        }
        let key = self.record(tenant, "seeded from FLOWGATE_API_KEY".into(), None, secret);
        self.store.insert_key(&key, &hash).await?;
        Ok(true)
    }

    fn record(&self, tenant: &TenantId, name: String, environment: Option<String>, secret: &str) -> ApiKey {
        ApiKey {
            id: KeyId::new(),
            tenant: tenant.clone(),
            name,
            environment,
            prefix: keys::display_prefix(secret),
            created_at: now(),
            last_used_at: None,
        }
    }
}
