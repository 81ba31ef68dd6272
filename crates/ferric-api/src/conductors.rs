//! `/v1/conductors` (from 1.49): the conductors serving this deployment.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::ConductorRecord;
use ferric_db::query::CONDUCTOR_SORT_COLUMNS;
use serde_json::{json, Value};

use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::version::at;
use crate::AppState;

const FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "hostname",
    "conductor_group",
    "drivers",
    "links",
    "alive",
];

fn require(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::CONDUCTORS) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "The API is not supported for this version",
        ))
    }
}

fn conductor_json(
    app: &AppState,
    ctx: &Ctx,
    c: &ConductorRecord,
    fields: Option<&[String]>,
) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().map(|n| (*n, 1)), |name| {
        Some(match name {
            "created_at" => json!(timestamp(&c.created_at)),
            "updated_at" => json!(opt_timestamp(&c.updated_at)),
            "hostname" => json!(c.hostname),
            "conductor_group" => json!(c.conductor_group),
            "drivers" => json!(c.drivers),
            "links" => ctx.links(&format!("conductors/{}", c.hostname)),
            "alive" => json!(app.conductor.is_alive(c)),
            _ => return None,
        })
    })
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, mut p: Params) -> ApiResult<Response> {
    require(&ctx)?;
    let args = ListArgs::take(
        &ctx,
        &mut p,
        CONDUCTOR_SORT_COLUMNS,
        &["alive", "drivers"],
        |_| None,
    )?;
    p.finish()?;
    if let Some(bad) = args
        .fields
        .iter()
        .flatten()
        .find(|f| !FIELDS.contains(&f.as_str()))
    {
        return Err(crate::listing::unknown_field_sorted(bad, FIELDS));
    }
    let marker = match &args.marker {
        Some(host) => Some(app.store().get_conductor(host).await?.id),
        None => None,
    };
    let all = app.store().list_conductors(&args.page(marker)).await?;
    let default = [
        "hostname".to_owned(),
        "conductor_group".to_owned(),
        "alive".to_owned(),
    ];
    let fields: Option<&[String]> = match (&args.fields, args.wants_detail(false)) {
        (_, true) => None,
        (Some(f), false) => Some(f),
        (None, false) => Some(&default),
    };
    let items: Vec<Value> = all
        .iter()
        .map(|c| conductor_json(&app, &ctx, c, fields))
        .collect();
    let mut out = json!({"conductors": items});
    let last = all.last().map(|c| c.hostname.clone()).unwrap_or_default();
    if let Some(next) = args.next_link(&ctx, "conductors", &[], all.len(), &last) {
        out["next"] = json!(next);
    }
    Ok(Json(out).into_response())
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(host): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    require(&ctx)?;
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    let c = app
        .store()
        .get_conductor(&host)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => {
                ApiError::not_found(format!("Conductor {host} could not be found."))
            }
            other => other.into(),
        })?;
    Ok(Json(conductor_json(&app, &ctx, &c, fields.as_deref())).into_response())
}
