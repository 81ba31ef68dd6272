//! `/v1/chassis`: enclosures nodes may point at.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{Chassis, ChassisUuid};
use ferric_db::query::CHASSIS_SORT_COLUMNS;
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::body::Fields;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::{patch, AppState};

const FIELDS: &[&str] = &[
    "uuid",
    "created_at",
    "updated_at",
    "description",
    "extra",
    "links",
    "nodes",
];

fn chassis_json(ctx: &Ctx, c: &Chassis, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().map(|n| (*n, 1)), |name| {
        Some(match name {
            "uuid" => json!(c.uuid),
            "created_at" => json!(timestamp(&c.created_at)),
            "updated_at" => json!(opt_timestamp(&c.updated_at)),
            "description" => json!(c.description),
            "extra" => Value::Object(c.extra.clone()),
            "links" => ctx.links(&format!("chassis/{}", c.uuid)),
            // Ironic wraps these links in one more list.
            "nodes" if fields.is_none() => json!([ctx.links(&format!("chassis/{}/nodes", c.uuid))]),
            _ => return None,
        })
    })
}

fn parse_uuid(raw: &str) -> ApiResult<ChassisUuid> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for chassis_uuid: {raw}")))
}

async fn load(app: &AppState, raw: &str) -> ApiResult<Chassis> {
    app.store()
        .get_chassis(parse_uuid(raw)?)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => {
                ApiError::not_found(format!("Chassis {raw} could not be found."))
            }
            other => other.into(),
        })
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_chassis(app, ctx, p, false).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_chassis(app, ctx, p, true).await
}

async fn list_chassis(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
) -> ApiResult<Response> {
    let args = ListArgs::take(&ctx, &mut p, CHASSIS_SORT_COLUMNS, &["extra"], |_| None)?;
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
        Some(m) => Some(load(&app, m).await?.id),
        None => None,
    };
    let all = app.store().list_chassis(&args.page(marker)).await?;
    let default = ["uuid".to_owned(), "description".to_owned()];
    let fields: Option<&[String]> = match (&args.fields, args.wants_detail(detail_path)) {
        (_, true) => None,
        (Some(f), false) => Some(f),
        (None, false) => Some(&default),
    };
    let items: Vec<Value> = all.iter().map(|c| chassis_json(&ctx, c, fields)).collect();
    let mut out = json!({"chassis": items});
    let resource = if detail_path {
        "chassis/detail"
    } else {
        "chassis"
    };
    let last = all.last().map(|c| c.uuid.to_string()).unwrap_or_default();
    if let Some(next) = args.next_link(&ctx, resource, &[], all.len(), &last) {
        out["next"] = json!(next);
    }
    Ok(Json(out).into_response())
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    let c = load(&app, &raw).await?;
    Ok(Json(chassis_json(&ctx, &c, fields.as_deref())).into_response())
}

pub async fn nodes(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    load(&app, &raw).await?;
    crate::nodes::list_nodes(app, ctx, p, false, Some(raw)).await
}

pub async fn nodes_detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    load(&app, &raw).await?;
    crate::nodes::list_nodes(app, ctx, p, true, Some(raw)).await
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Value::Object(obj) = &body else {
        return Err(ApiError::bad_request(format!(
            "Schema error for chassis: {body} is not of type 'object'"
        )));
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !["uuid", "description", "extra"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Schema error for chassis: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let f = Fields::new(obj, "chassis");
    let uuid = match f.uuid("uuid")? {
        Some(u) => parse_uuid(&u)?,
        None => ChassisUuid::new_random(),
    };
    let chassis = Chassis {
        id: 0,
        uuid,
        description: f.string("description", 255)?,
        extra: f.object("extra")?.unwrap_or_default(),
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    let created = app.store().create_chassis(&chassis).await?;
    let location = format!("{}/v1/chassis/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(chassis_json(&ctx, &created, None)),
    )
        .into_response())
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let ops = patch::parse(body)?;
    patch::check_allowed(&ops, &["uuid", "extra", "description"])?;
    let c = load(&app, &raw).await?;
    let mut doc = json!({"uuid": c.uuid, "extra": c.extra, "description": c.description});
    patch::apply(&mut doc, &ops)?;
    if doc["uuid"] != json!(c.uuid) {
        return Err(ApiError::bad_request(
            "Cannot overwrite UUID for an existing Chassis.",
        ));
    }
    let Value::Object(obj) = &doc else {
        return Err(ApiError::internal());
    };
    let f = Fields::new(obj, "patch");
    let mut updated = c.clone();
    updated.description = f.string("description", 255)?;
    updated.extra = f.object("extra")?.unwrap_or_default();
    let saved = app.store().save_chassis(&updated).await?;
    Ok(Json(chassis_json(&ctx, &saved, None)).into_response())
}

pub async fn delete(State(app): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let c = load(&app, &raw).await?;
    app.store()
        .delete_chassis(c.uuid)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::Reference(_) => ApiError::bad_request(format!(
                "Cannot complete the requested action because chassis {} contains nodes.",
                c.uuid
            )),
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
