//! `/api-keys`: a tenant's key manages that tenant's keys. The secret is shown
//! once, at creation; listings never carry it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::auth::Caller;
use crate::http::{IdPath, JsonBody};
use crate::model::{ClientError, KeyId, Page};

/// `POST /api-keys` body.
#[derive(Debug, Deserialize)]
pub struct CreateKey {
    name: Option<String>,
    environment: Option<String>,
}

/// `GET /api-keys` → every key of the tenant, without secrets.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<impl IntoResponse, ClientError> {
    let data = state.services.keys.list(&caller).await?;
    Ok(Json(Page { data, has_more: false, next_cursor: None }))
}

/// `POST /api-keys` → 201 with the key and its `secret` (shown only now).
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<impl IntoResponse, ClientError> {
    let (key, secret) = state.services.keys.create(&caller, body.name, body.environment).await?;
    let mut body = json!(key);
    body["secret"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `DELETE /api-keys/{key_id}` → 204; the next request with it gets 401.
pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(key_id): IdPath<KeyId>,
) -> Result<StatusCode, ClientError> {
    state.services.keys.revoke(&caller, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
