//! Flows: register (native JSON, or a FlowGen graph imported), list, show,
//! replace and delete a tenant's flows. Every operation needs a live,
//! tenant-wide caller.
//!
//! Touches the store (flow records, the chats that use a flow) and the
//! engine's model registry (which model names a flow may use).

use std::sync::Arc;

use serde_json::{Value, json};

use super::access::Access;
use crate::auth::Caller;
use crate::engine::Engine;
use crate::flow::flowgen::{self, ModelCatalog};
use crate::flow::{Flow, FlowIssue};
use crate::model::{ClientError, ErrorCode, FlowRecord, IdKind, Page, Timestamp, from_json, new_id, now};
use crate::store::{ChatQuery, Store, StoreError};

/// A stored flow and what its import could not carry over (shown once).
#[derive(Debug)]
pub struct Registered {
    /// The record as stored.
    pub record: FlowRecord,
    /// Import warnings.
    pub warnings: Vec<FlowIssue>,
    /// Whether it was created (not replaced).
    pub created: bool,
}

/// The flow operations.
#[derive(Clone)]
pub struct FlowService {
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    access: Access,
}

fn flow_not_found(id: &str) -> ClientError {
    ClientError::new(ErrorCode::FlowNotFound, format!("no flow {id}"))
}

fn invalid_flow(issues: Vec<FlowIssue>) -> ClientError {
    ClientError::new(ErrorCode::InvalidFlow, "the flow cannot run as written").with("issues", json!(issues))
}

/// Whether a caller-chosen flow id is usable: 1 to 64 of `[A-Za-z0-9_-]`.
fn valid_flow_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl FlowService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, access: Access) -> Self {
        Self { store, engine, access }
    }

    /// Registers a flow under a new id.
    pub async fn create(&self, caller: &Caller, body: Value) -> Result<Registered, ClientError> {
        self.access.tenant_wide(caller).await?;
        self.store_flow(caller, new_id(IdKind::Flow), body, None).await
    }

    /// Registers a flow under the caller's id, replacing any flow it had there.
    pub async fn replace(
        &self,
        caller: &Caller,
        flow_id: &str,
        body: Value,
    ) -> Result<Registered, ClientError> {
        self.access.tenant_wide(caller).await?;
        if !valid_flow_id(flow_id) {
            return Err(ClientError::invalid("flow_id", "1 to 64 characters of [A-Za-z0-9_-]"));
        }
        let existing = self.store.get_flow(&caller.tenant, flow_id).await?;
        self.store_flow(caller, flow_id.to_owned(), body, existing.map(|e| e.created_at)).await
    }

    /// A page of the tenant's flows, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<FlowRecord>, ClientError> {
        self.access.tenant_wide(caller).await?;
        Ok(self.store.list_flows(&caller.tenant, after, limit).await?)
    }

    /// One flow of the tenant.
    pub async fn get(&self, caller: &Caller, flow_id: &str) -> Result<FlowRecord, ClientError> {
        self.access.tenant_wide(caller).await?;
        self.store.get_flow(&caller.tenant, flow_id).await?.ok_or_else(|| flow_not_found(flow_id))
    }

    /// Deletes a flow no chat uses (409 `flow_in_use` otherwise); a stored
    /// flow that no longer reads back can still be deleted.
    pub async fn delete(&self, caller: &Caller, flow_id: &str) -> Result<(), ClientError> {
        self.access.tenant_wide(caller).await?;
        match self.store.get_flow(&caller.tenant, flow_id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(flow_not_found(flow_id)),
            Err(StoreError::Corrupt(e)) => tracing::warn!(flow_id, error = %e, "deleting an unreadable flow"),
            Err(e) => return Err(e.into()),
        }
        let users = ChatQuery { from_flow: Some(flow_id.to_owned()), limit: 1, ..Default::default() };
        if !self.store.list_chats(&caller.tenant, &users).await?.data.is_empty() {
            return Err(ClientError::new(
                ErrorCode::FlowInUse,
                "chats still run this flow; delete them first",
            ));
        }
        self.store.delete_flow(&caller.tenant, flow_id).await?;
        Ok(())
    }

    async fn store_flow(
        &self,
        caller: &Caller,
        id: String,
        body: Value,
        created: Option<Timestamp>,
    ) -> Result<Registered, ClientError> {
        let (mut flow, source, mut warnings) = self.read(body)?;
        if let Err((field, why)) = self.engine.check_flow_models(&flow).await {
            return Err(ClientError::invalid(&field, format!("{field}: {why}")));
        }
        warnings.extend(self.engine.clamp(&mut flow));
        let at = now();
        let record = FlowRecord {
            id,
            tenant: caller.tenant.clone(),
            name: flow.name.clone(),
            definition: serde_json::to_value(&flow).map_err(StoreError::from)?,
            source,
            created_at: created.unwrap_or(at),
            updated_at: at,
        };
        self.store.put_flow(&record).await?;
        Ok(Registered { record, warnings, created: created.is_none() })
    }

    /// Reads a body into a validated native flow: native JSON, or a FlowGen
    /// graph imported (and kept as the source).
    #[allow(clippy::type_complexity)]
    fn read(&self, value: Value) -> Result<(Flow, Option<Value>, Vec<FlowIssue>), ClientError> {
        if !value.is_object() {
            return Err(ClientError::invalid(
                "",
                "the body must be a JSON object: a flow or a FlowGen graph",
            ));
        }
        let known = self.engine.known_models();
        if flowgen::is_graph(&value) {
            let default = known.contains("default").then_some("default");
            let catalog = ModelCatalog::new(known.iter().cloned(), default);
            let imported = flowgen::import(&value, &catalog).map_err(invalid_flow)?;
            return Ok((imported.flow, Some(value), imported.warnings));
        }
        let flow: Flow = from_json(value)?;
        flow.validate(&known).map_err(invalid_flow)?;
        Ok((flow, None, Vec::new()))
    }
}
