//! `/flows`: register (native JSON, or a FlowGen React Flow graph), list, show,
//! replace and delete a tenant's flows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::auth::Caller;
use crate::http::{BodyBytes, IdPath, QueryParams, parse_value};
use crate::model::{ClientError, FlowId};
use crate::service::Registered;

/// `GET /flows` query.
#[derive(Debug, Deserialize)]
pub struct ListFlows {
    after: Option<FlowId>,
    limit: Option<usize>,
}

/// 201 (created) or 200 (replaced), with the import's warnings if any.
fn respond(registered: Registered) -> impl IntoResponse {
    let mut body = json!(registered.record);
    if !registered.warnings.is_empty() {
        body["warnings"] = json!(registered.warnings);
    }
    let status = if registered.created { StatusCode::CREATED } else { StatusCode::OK };
    (status, Json(body))
}

/// `POST /flows` → 201 with the flow.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    BodyBytes(body): BodyBytes,
) -> Result<impl IntoResponse, ClientError> {
    let registered = state.services.flows.create(&caller, parse_value(&body)?).await?;
    Ok(respond(registered))
}

/// `PUT /flows/{flow_id}` → 200 (replaced) or 201 (created under that id).
pub async fn replace(
    State(state): State<ApiState>,
    caller: Caller,
    Path(flow_id): Path<String>,
    BodyBytes(body): BodyBytes,
) -> Result<impl IntoResponse, ClientError> {
    let flow_id = FlowId::parse(&flow_id)
        .map_err(|_| ClientError::invalid("flow_id", "1 to 64 characters of [A-Za-z0-9_-]"))?;
    let registered = state.services.flows.replace(&caller, &flow_id, parse_value(&body)?).await?;
    Ok(respond(registered))
}

/// `GET /flows` → a page, newest first.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    QueryParams(q): QueryParams<ListFlows>,
) -> Result<impl IntoResponse, ClientError> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ClientError::invalid("limit", "must be between 1 and 100"));
    }
    Ok(Json(state.services.flows.list(&caller, q.after.as_ref(), limit).await?))
}

/// `GET /flows/{flow_id}` → the flow.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(flow_id): IdPath<FlowId>,
) -> Result<impl IntoResponse, ClientError> {
    Ok(Json(state.services.flows.get(&caller, &flow_id).await?))
}

/// `DELETE /flows/{flow_id}` → 204; 409 `flow_in_use` while chats use it.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(flow_id): IdPath<FlowId>,
) -> Result<StatusCode, ClientError> {
    state.services.flows.delete(&caller, &flow_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
