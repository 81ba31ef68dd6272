//! `/v1/nodes/{node}/history` (API 1.78) and `/v1/nodes/{node}/inventory`
//! (1.81): what happened to a node, and what its agent said it is made of.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::HistoryEvent;
use ferric_db::Page;
use serde_json::{json, Value};

use super::view::timestamp;
use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::AppState;

const NODE_HISTORY: u32 = 78;
const NODE_INVENTORY: u32 = 81;
const HISTORY_PROJECT: u32 = 113;
const HISTORY_FIELDS: u32 = 115;

/// Below their version these URLs do not exist (Ironic answers 404).
fn exists_from(ctx: &Ctx, minor: u32) -> ApiResult<()> {
    if ctx.version.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

fn event_json(ctx: &Ctx, node: &str, e: &HistoryEvent, detail: bool) -> Value {
    let uuid = e.uuid.to_string();
    let mut out = json!({
        "uuid": uuid,
        "created_at": timestamp(&e.created_at),
        "severity": e.severity.as_str(),
    });
    if detail {
        out["event"] = json!(e.event);
        out["event_type"] = json!(e.event_type);
        out["conductor"] = json!(e.conductor);
        out["user"] = json!(e.user);
        if ctx.version.at_least(HISTORY_PROJECT) {
            out["project"] = json!(e.project);
        }
        if ctx.version.at_least(HISTORY_FIELDS) {
            out["state"] = json!(e.state);
            out["target_provision_state"] = json!(e.target_provision_state);
            out["duration_seconds"] = json!(e.duration_seconds);
        }
    } else {
        // Ironic truncates the event in the short form.
        let text: String = if e.event.chars().count() > 255 {
            e.event.chars().take(251).chain("...".chars()).collect()
        } else {
            e.event.clone()
        };
        out["event"] = json!(text);
    }
    out["links"] = json!([{
        "href": format!("{}/v1/nodes/{node}/history/{uuid}", ctx.base),
        "rel": "self",
    }]);
    out
}

/// `GET /v1/nodes/{node}/history[?detail=&limit=&marker=]`.
pub async fn list(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, NODE_HISTORY)?;
    let detail = p.take_bool("detail")?.unwrap_or(false);
    let limit = crate::listing::parse_limit(p.take("limit"))?;
    let marker = p.take("marker");
    p.finish()?;
    let node = super::load(&app, &ctx, &raw).await?;
    let marker_id = match marker {
        None => None,
        Some(m) => {
            let id = m
                .parse::<uuid::Uuid>()
                .map_err(|_| ApiError::bad_request(format!("Expected a UUID for marker: {m}")))?;
            Some(app.store().get_history(node.uuid, id).await?.id)
        }
    };
    let page = Page {
        marker: marker_id,
        limit: Some(limit),
        ..Page::default()
    };
    let events = app.store().list_history(node.uuid, &page).await?;
    let uuid = node.uuid.to_string();
    let items: Vec<Value> = events
        .iter()
        .map(|e| event_json(&ctx, &uuid, e, detail))
        .collect();
    let mut out = json!({"history": items});
    if u32::try_from(events.len()).is_ok_and(|n| n == limit) {
        if let Some(last) = events.last() {
            out["next"] = json!(format!(
                "{}/v1/nodes/{raw}/history?limit={limit}&marker={}{}",
                ctx.base,
                last.uuid,
                if detail { "&detail=True" } else { "" }
            ));
        }
    }
    Ok(Json(out).into_response())
}

/// `GET /v1/nodes/{node}/history/{event}`: one event, in full.
pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, event)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, NODE_HISTORY)?;
    p.finish()?;
    let node = super::load(&app, &ctx, &raw).await?;
    let not_found =
        || ApiError::not_found(format!("Node history record {event} could not be found."));
    let id = event.parse::<uuid::Uuid>().map_err(|_| not_found())?;
    let e = app
        .store()
        .get_history(node.uuid, id)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => not_found(),
            other => other.into(),
        })?;
    Ok(Json(event_json(&ctx, &node.uuid.to_string(), &e, true)).into_response())
}

/// `GET /v1/nodes/{node}/inventory`.
pub async fn inventory(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, NODE_INVENTORY)?;
    p.finish()?;
    let node = super::load(&app, &ctx, &raw).await?;
    let stored = app
        .store()
        .get_inventory(node.uuid)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => ApiError::not_found(format!(
                "Node inventory record for node {} could not be found.",
                node.uuid
            )),
            other => other.into(),
        })?;
    Ok(
        Json(json!({"inventory": stored.inventory, "plugin_data": stored.plugin_data}))
            .into_response(),
    )
}
