//! `POST /chats/{chat_id}/tokens`: mints a short-lived JWT limited to one chat,
//! for browser widgets that connect with `?token=` (never an API key in a URL).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::auth::Caller;
use crate::http::{IdPath, JsonBody};
use crate::model::{ChatId, ClientError};

/// Longest lifetime a caller may ask for, seconds.
const MAX_TTL_SECS: u64 = 3600;

/// Body (optional).
#[derive(Debug, Deserialize)]
pub struct MintToken {
    /// Seconds; `600` and `600.0` alike (JSON Schema's `integer`).
    #[serde(default, deserialize_with = "crate::flow::number::optional")]
    ttl_secs: Option<u64>,
}

/// → 201 `{"token", "chat_id", "expires_at", "expires_in"}`
pub async fn mint(
    State(state): State<ApiState>,
    caller: Caller,
    IdPath(chat_id): IdPath<ChatId>,
    JsonBody(body): JsonBody<MintToken>,
) -> Result<impl IntoResponse, ClientError> {
    if body.ttl_secs.is_some_and(|t| t == 0 || t > MAX_TTL_SECS) {
        return Err(ClientError::invalid("ttl_secs", format!("between 1 and {MAX_TTL_SECS}")));
    }
    let (token, exp) = state.services.chats.mint_token(&caller, &chat_id, body.ttl_secs).await?;
    let expires_at = chrono::DateTime::from_timestamp(exp as i64, 0).map(crate::model::Timestamp);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let expires_in = exp.saturating_sub(now);
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "chat_id": chat_id, "expires_at": expires_at, "expires_in": expires_in})),
    ))
}
