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
use crate::model::{ClientError, ErrorCode, FlowId, FlowRecord, Page, Timestamp, from_json, now};
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

fn flow_not_found(id: &FlowId) -> ClientError {
    ClientError::new(ErrorCode::FlowNotFound, format!("no flow {id}"))
}

fn invalid_flow(issues: Vec<FlowIssue>) -> ClientError {
    ClientError::new(ErrorCode::InvalidFlow, "the flow cannot run as written").with("issues", json!(issues))
}

impl FlowService {
    /// Wires the service.
    pub fn new(store: Arc<dyn Store>, engine: Arc<Engine>, access: Access) -> Self {
        Self { store, engine, access }
    }

    /// Registers a flow under a new id.
    pub async fn create(&self, caller: &Caller, body: Value) -> Result<Registered, ClientError> {
        self.access.tenant_wide(caller).await?;
        self.store_flow(caller, FlowId::new(), body, None).await
    }

    /// Registers a flow under the caller's id, replacing any flow it had there.
    pub async fn replace(
        &self,
        caller: &Caller,
        flow_id: &FlowId,
        body: Value,
    ) -> Result<Registered, ClientError> {
        self.access.tenant_wide(caller).await?;
        let existing = self.store.get_flow(&caller.tenant, flow_id).await?;
        self.store_flow(caller, flow_id.clone(), body, existing.map(|e| e.created_at)).await
    }

    /// A page of the tenant's flows, newest first.
    pub async fn list(
        &self,
        caller: &Caller,
        after: Option<&FlowId>,
        limit: usize,
    ) -> Result<Page<FlowRecord>, ClientError> {
        self.access.tenant_wide(caller).await?;
        Ok(self.store.list_flows(&caller.tenant, after, limit).await?)
    }

    /// One flow of the tenant.
    pub async fn get(&self, caller: &Caller, flow_id: &FlowId) -> Result<FlowRecord, ClientError> {
        self.access.tenant_wide(caller).await?;
        self.store.get_flow(&caller.tenant, flow_id).await?.ok_or_else(|| flow_not_found(flow_id))
    }

    /// Deletes a flow no chat uses (409 `flow_in_use` otherwise); a stored
    /// flow that no longer reads back can still be deleted.
    pub async fn delete(&self, caller: &Caller, flow_id: &FlowId) -> Result<(), ClientError> {
        self.access.tenant_wide(caller).await?;
        match self.store.get_flow(&caller.tenant, flow_id).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(flow_not_found(flow_id)),
            Err(StoreError::Corrupt(e)) => {
                tracing::warn!(%flow_id, error = %e, "deleting an unreadable flow")
            }
            Err(e) => return Err(e.into()),
        }
        let users = ChatQuery { from_flow: Some(flow_id.clone()), limit: 1, ..Default::default() };
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
        id: FlowId,
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
