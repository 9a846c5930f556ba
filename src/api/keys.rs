//! `/api-keys`: a tenant's key manages that tenant's keys. The secret is shown
//! once, at creation; listings never carry it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ApiState;
use crate::auth::Caller;
use crate::http::{IdPath, IdempotencyHeader, JsonBody};
use crate::model::{ClientError, KeyId, Page};
use crate::service::Outcome;
use crate::store::StoredAnswer;

/// `POST /api-keys` body.
#[derive(Debug, Deserialize, Serialize)]
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
///
/// With an `Idempotency-Key`, a retry gets the same key, with `secret: null`:
/// the secret is shown once and never stored.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    IdempotencyHeader(idempotency): IdempotencyHeader,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<impl IntoResponse, ClientError> {
    let request = ("POST /api-keys", &body);
    let answer = state.services.idempotent.once(&caller, idempotency.as_ref(), request, || async {
        let (key, secret) =
            state.services.keys.create(&caller, body.name.clone(), body.environment.clone()).await?;
        let mut sent = json!(key);
        sent["secret"] = json!(secret);
        let mut kept = json!(key);
        kept["secret"] = serde_json::Value::Null;
        let status = StatusCode::CREATED.as_u16();
        Ok(Outcome { sent: StoredAnswer { status, body: sent }, kept: StoredAnswer { status, body: kept } })
    });
    answer.await
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
