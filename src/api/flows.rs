//! `/flows`: register (native JSON, or a FlowGen React Flow graph), list, show,
//! replace and delete a tenant's flows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{from_value, parse_value};
use super::{ApiError, BodyBytes, QueryParams};
use crate::app::AppState;
use crate::auth::Caller;
use crate::flow::flowgen::{self, ModelCatalog};
use crate::flow::{Flow, FlowIssue};
use crate::model::{FlowRecord, IdKind, new_id, now};
use crate::store::ChatQuery;

/// `GET /flows` query.
#[derive(Debug, Deserialize)]
pub struct ListFlows {
    after: Option<String>,
    limit: Option<usize>,
}

fn flow_not_found(id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "flow_not_found", format!("no flow {id}"))
}

/// A flow read from a request body.
struct ReadFlow {
    flow: Flow,
    /// The FlowGen graph it was imported from.
    source: Option<Value>,
    /// What the import could not carry over (shown once, not stored).
    warnings: Vec<FlowIssue>,
}

fn invalid_flow(issues: Vec<FlowIssue>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_flow", "the flow cannot run as written")
        .with("issues", json!(issues))
}

/// Reads a body into a validated native flow: native JSON, or a FlowGen
/// graph imported (and kept as the source).
fn read_flow(state: &AppState, body: &[u8]) -> Result<ReadFlow, ApiError> {
    let value = parse_value(body)?;
    if !value.is_object() {
        return Err(ApiError::invalid("", "the body must be a JSON object: a flow or a FlowGen graph"));
    }
    let known = state.engine.known_models();
    if flowgen::is_graph(&value) {
        let default = known.contains("default").then_some("default");
        let catalog = ModelCatalog::new(known.iter().cloned(), default);
        let imported = flowgen::import(&value, &catalog).map_err(invalid_flow)?;
        return Ok(ReadFlow { flow: imported.flow, source: Some(value), warnings: imported.warnings });
    }
    let flow: Flow = from_value(value)?;
    flow.validate(&known).map_err(invalid_flow)?;
    Ok(ReadFlow { flow, source: None, warnings: Vec::new() })
}

fn respond(status: StatusCode, rec: &FlowRecord, warnings: &[FlowIssue]) -> impl IntoResponse + use<> {
    let mut body = json!(rec);
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    (status, Json(body))
}

fn record(
    tenant: &str,
    id: String,
    flow: &Flow,
    source: Option<Value>,
    created: Option<crate::model::Timestamp>,
) -> Result<FlowRecord, ApiError> {
    let at = now();
    Ok(FlowRecord {
        id,
        tenant: tenant.to_owned(),
        name: flow.name.clone(),
        definition: serde_json::to_value(flow).map_err(crate::store::StoreError::from)?,
        source,
        created_at: created.unwrap_or(at),
        updated_at: at,
    })
}

/// `POST /flows` → 201 with the flow.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    BodyBytes(body): BodyBytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let read = read_flow(&state, &body)?;
    let rec = record(&caller.tenant, new_id(IdKind::Flow), &read.flow, read.source, None)?;
    state.store.put_flow(&rec).await?;
    Ok(respond(StatusCode::CREATED, &rec, &read.warnings))
}

/// `PUT /flows/{flow_id}` → 200 (replaced) or 201 (created under that id).
pub async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(flow_id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let valid_id = !flow_id.is_empty()
        && flow_id.len() <= 64
        && flow_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_id {
        return Err(ApiError::invalid("flow_id", "1 to 64 characters of [A-Za-z0-9_-]"));
    }
    let read = read_flow(&state, &body)?;
    let existing = state.store.get_flow(&caller.tenant, &flow_id).await?;
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    let created = existing.map(|e| e.created_at);
    let rec = record(&caller.tenant, flow_id, &read.flow, read.source, created)?;
    state.store.put_flow(&rec).await?;
    Ok(respond(status, &rec, &read.warnings))
}

/// `GET /flows` → a page, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListFlows>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 100"));
    }
    Ok(Json(state.store.list_flows(&caller.tenant, q.after.as_deref(), limit).await?))
}

/// `GET /flows/{flow_id}` → the flow.
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(flow_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let rec = state.store.get_flow(&caller.tenant, &flow_id).await?;
    Ok(Json(rec.ok_or_else(|| flow_not_found(&flow_id))?))
}

/// `DELETE /flows/{flow_id}` → 204; 409 `flow_in_use` while chats use it.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(flow_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_tenant_scope()?;
    if state.store.get_flow(&caller.tenant, &flow_id).await?.is_none() {
        return Err(flow_not_found(&flow_id));
    }
    let users = ChatQuery { from_flow: Some(flow_id.clone()), limit: 1, ..Default::default() };
    if !state.store.list_chats(&caller.tenant, &users).await?.data.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "flow_in_use",
            "chats still run this flow; delete them first",
        ));
    }
    state.store.delete_flow(&caller.tenant, &flow_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
