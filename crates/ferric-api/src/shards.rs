//! `/v1/shards` (from 1.82): every node shard and how many nodes it holds,
//! nodes without a shard under `"None"`, as Ironic counts them.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::version::at;
use crate::AppState;

fn require(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::NODE_SHARD) {
        Ok(())
    } else {
        Err(ApiError::not_found("The API version does not allow shards"))
    }
}

/// Query parameters are ignored, as Ironic's schema allows any.
pub async fn list(State(app): State<AppState>, ctx: Ctx) -> ApiResult<Response> {
    require(&ctx)?;
    let shards: Vec<_> = app
        .store()
        .shard_counts()
        .await?
        .into_iter()
        .map(|(name, count)| json!({"name": name.as_deref().unwrap_or("None"), "count": count}))
        .collect();
    Ok(Json(json!({"shards": shards})).into_response())
}

/// Ironic has no single-shard resource: its controller refuses with the
/// generic 404 text.
pub async fn show(ctx: Ctx) -> ApiResult<Response> {
    require(&ctx)?;
    Err(ApiError::not_found("The resource could not be found."))
}
