//! `/api-keys`: a tenant's key manages that tenant's keys. The secret is shown
//! once, at creation; listings never carry it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, JsonBody};
use crate::app::AppState;
use crate::auth::{Caller, create_key};
use crate::model::Page;

/// `POST /api-keys` body.
#[derive(Debug, Deserialize)]
pub struct CreateKey {
    name: Option<String>,
    environment: Option<String>,
}

/// `GET /api-keys` → every key of the tenant, without secrets.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let data = state.store.list_keys(&caller.tenant).await?;
    Ok(Json(Page { data, has_more: false, next_cursor: None }))
}

/// `POST /api-keys` → 201 with the key and its `secret` (shown only now).
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require_tenant_scope()?;
    let name = body
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("name", "name is required"))?;
    if name.len() > 128 {
        return Err(ApiError::invalid("name", "at most 128 characters"));
    }
    let environment = body.environment.filter(|e| !e.trim().is_empty());
    let (key, secret) = create_key(state.store.as_ref(), &caller.tenant, &name, environment).await?;
    let mut body = json!(key);
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /api-keys/{key_id}` → 204; the next request with it gets 401.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_tenant_scope()?;
    if state.store.delete_key(&caller.tenant, &key_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, "key_not_found", format!("no key {key_id}")))
    }
}
