//! `/v1/nodes/{node}/children` (from 1.83): the UUIDs of the nodes whose
//! `parent_node` is this node, with a link to the filtered node list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_db::{NodeFilter, Page};
use serde_json::json;

use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::load;
use crate::version::at;
use crate::AppState;

fn require(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::PARENT_CHILD_NODES) {
        Ok(())
    } else {
        Err(ApiError::not_found("Resource could not be found."))
    }
}

/// Ironic's children controller has no members: any path below it, with
/// any HTTP method, is 405.
pub async fn below(ctx: Ctx) -> ApiResult<Response> {
    require(&ctx)?;
    Err(ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, ""))
}

pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require(&ctx)?;
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let filter = NodeFilter {
        parent_node: Some(node.uuid.to_string()),
        ..NodeFilter::default()
    };
    let children: Vec<String> = app
        .store()
        .list_nodes(&filter, &Page::default())
        .await?
        .iter()
        .map(|n| n.uuid.to_string())
        .collect();
    let href = format!("{}/v1/nodes?parent_node={}", ctx.base, node.uuid);
    Ok(
        Json(json!({"children": children, "links": {"href": href, "rel": "children"}}))
            .into_response(),
    )
}
