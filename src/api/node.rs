//! `GET /node`: the node's own figures (connections, running runs, frames,
//! errors) as JSON, read from the same series `/metrics` serves, for the
//! dashboard. Any tenant-wide caller may read them: they are the node's, not
//! a tenant's, and say nothing of any tenant's records.
//!
//! Touches the access rules and the metrics.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use crate::auth::Caller;
use crate::model::ClientError;

/// `GET /node` → 200 [`NodeFigures`](crate::metrics::NodeFigures).
pub async fn show(State(state): State<ApiState>, caller: Caller) -> Result<impl IntoResponse, ClientError> {
    state.services.access.tenant_wide(&caller).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(state.metrics.figures())))
}
