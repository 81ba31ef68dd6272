//! `/v1/deploy_templates` (from 1.55): named deploy steps, added to the
//! deploy of a node whose `instance_info.traits` include the name.

use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{DeployTemplate, DeployTemplateUuid, Ident, TemplateStep};
use ferric_db::query::DEPLOY_TEMPLATE_SORT_COLUMNS;
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::step_schema::{self as schema, Errors, Seg, DEPLOY_STEP};
use crate::{patch, AppState};

const DEPLOY_TEMPLATES: u32 = 55;

/// Fields in the order Ironic's answers have them.
const FIELDS: &[&str] = &[
    "uuid",
    "created_at",
    "updated_at",
    "name",
    "extra",
    "links",
    "steps",
];

/// What `fields` may name (Ironic's query schema, which knows
/// `description` though templates have none).
const QUERY_FIELDS: &[&str] = &[
    "created_at",
    "description",
    "extra",
    "links",
    "name",
    "steps",
    "updated_at",
    "uuid",
];

const BODY_KEYS: &[&str] = &["description", "extra", "name", "steps", "uuid"];
const PATCH_FIELDS: &[&str] = &["extra", "name", "steps", "description"];

fn require(ctx: &Ctx, method: &Method) -> ApiResult<()> {
    schema::endpoint_gate(
        ctx,
        method,
        DEPLOY_TEMPLATES,
        "The API version does not allow deploy templates",
    )
}

fn template_json(ctx: &Ctx, t: &DeployTemplate, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().map(|n| (*n, 1)), |name| {
        Some(match name {
            "uuid" => json!(t.uuid),
            "created_at" => json!(timestamp(&t.created_at)),
            "updated_at" => json!(opt_timestamp(&t.updated_at)),
            "name" => json!(t.name),
            "extra" => Value::Object(t.extra.clone()),
            "links" => ctx.links(&format!("deploy_templates/{}", t.uuid)),
            "steps" => Value::Array(
                t.steps
                    .iter()
                    .map(|s| {
                        schema::step_view(&s.interface, &s.step, &s.args, ("priority", s.priority))
                    })
                    .collect(),
            ),
            _ => return None,
        })
    })
}

/// `fields` must be names Ironic's schema knows; `description` passes
/// the schema but no template has it.
fn check_fields(fields: Option<&[String]>, any_shown: bool) -> ApiResult<()> {
    let Some(fields) = fields else { return Ok(()) };
    if let Some(bad) = fields.iter().find(|f| !QUERY_FIELDS.contains(&f.as_str())) {
        return Err(crate::listing::unknown_field(
            bad,
            QUERY_FIELDS.iter().copied(),
        ));
    }
    if any_shown && fields.iter().any(|f| f == "description") {
        return Err(ApiError::bad_request(
            "Field(s) \"description\" are not valid",
        ));
    }
    Ok(())
}

/// A template named in a URL: a UUID, else a logical name.
async fn load(app: &AppState, raw: &str) -> ApiResult<DeployTemplate> {
    let ident = Ident::<DeployTemplateUuid>::parse(raw);
    if let Ident::Name(name) = &ident {
        if !ferric_core::ids::is_valid_logical_name(name) {
            return Err(ApiError::bad_request(format!(
                "Expected UUID or name for template_ident: {raw}"
            )));
        }
    }
    app.store()
        .get_deploy_template(&ident)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => {
                ApiError::not_found(format!("Deploy template {raw} could not be found."))
            }
            other => other.into(),
        })
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_templates(app, ctx, p, false).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_templates(app, ctx, p, true).await
}

async fn list_templates(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
) -> ApiResult<Response> {
    require(&ctx, &Method::GET)?;
    let args = ListArgs::take(
        &ctx,
        &mut p,
        DEPLOY_TEMPLATE_SORT_COLUMNS,
        &["extra", "steps"],
        |_| None,
    )?;
    p.finish()?;
    check_fields(args.fields.as_deref(), false)?;
    let marker = match &args.marker {
        Some(m) => Some(
            schema::uuid_marker(m, "Deploy template", |u| {
                let store = app.store().clone();
                async move { Ok(store.get_deploy_template(&Ident::Uuid(u)).await?.id) }
            })
            .await?,
        ),
        None => None,
    };
    let all = app
        .store()
        .list_deploy_templates(&args.page(marker))
        .await?;
    let fields = schema::list_fields(&args, detail_path);
    check_fields(fields.as_deref(), !all.is_empty())?;
    let items: Vec<Value> = all
        .iter()
        .map(|t| template_json(&ctx, t, fields.as_deref()))
        .collect();
    let last = all.last().map(|t| t.uuid.to_string());
    let out = schema::list_body(&ctx, &args, "deploy_templates", detail_path, items, last);
    Ok(Json(out).into_response())
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    require(&ctx, &Method::GET)?;
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    check_fields(fields.as_deref(), false)?;
    let t = load(&app, &raw).await?;
    check_fields(fields.as_deref(), true)?;
    Ok(Json(template_json(&ctx, &t, fields.as_deref())).into_response())
}

/// Ironic's template schema, reported under `name` (`template` for a
/// POST body, `patch` for a patched one).
fn check_body(body: &Value, name: &str) -> ApiResult<()> {
    let mut errs = Errors::default();
    let key = |k: &str| [Seg::Key(k.to_owned())];
    if let Some(obj) = schema::check_object(&mut errs, &[], body, &["steps", "name"], BODY_KEYS) {
        if let Some(v) = obj.get("description") {
            schema::check_opt_string(&mut errs, &key("description"), v, 255);
        }
        if let Some(v) = obj.get("extra") {
            schema::check_opt_object(&mut errs, &key("extra"), v);
        }
        if let Some(v) = obj.get("name") {
            schema::check_trait(&mut errs, &key("name"), v);
        }
        if let Some(v) = obj.get("steps") {
            schema::check_steps(&mut errs, &key("steps"), v, &DEPLOY_STEP);
        }
        if let Some(v) = obj.get("uuid") {
            if !v.is_string() && !v.is_null() {
                errs.add(&key("uuid"), schema::not_of_type(v, "'string', 'null'"));
            }
        }
    }
    errs.into_result(name)?;
    let steps = schema::parse_steps(&body["steps"], &DEPLOY_STEP);
    schema::duplicate_steps(&steps)?;
    body.as_object().map_or(Ok(()), schema::check_uuid)
}

/// The steps and extra of a body that passed [`check_body`].
fn steps_of(body: &Value) -> Vec<TemplateStep> {
    schema::parse_steps(&body["steps"], &DEPLOY_STEP)
        .into_iter()
        .map(|s| TemplateStep {
            interface: s.interface,
            step: s.step,
            args: s.args,
            priority: s.rank,
        })
        .collect()
}

fn extra_of(body: &Value) -> ferric_core::JsonObject {
    body.get("extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, &Method::POST)?;
    check_body(&body, "template")?;
    let uuid = match body.get("uuid").and_then(Value::as_str) {
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        None => DeployTemplateUuid::new_random(),
    };
    let template = DeployTemplate {
        id: 0,
        uuid,
        name: body["name"].as_str().unwrap_or_default().to_owned(),
        steps: steps_of(&body),
        extra: extra_of(&body),
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    let created = app.store().create_deploy_template(&template).await?;
    tracing::info!(template = %created.uuid, name = %created.name, "deploy template created");
    let location = format!("{}/v1/deploy_templates/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(template_json(&ctx, &created, None)),
    )
        .into_response())
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, &Method::PATCH)?;
    let ops = patch::parse(body)?;
    patch::check_allowed(&ops, PATCH_FIELDS)?;
    let t = load(&app, &raw).await?;
    let steps: Vec<Value> = t.steps.iter().map(|s| Value::Object(s.to_json())).collect();
    let mut doc = json!({"uuid": t.uuid, "name": t.name, "steps": steps, "extra": t.extra});
    patch::apply(&mut doc, &ops)?;
    schema::check_patched_steps(&mut doc, &DEPLOY_STEP)?;
    check_body(&doc, "patch")?;
    let mut updated = t.clone();
    updated.name = doc["name"].as_str().unwrap_or_default().to_owned();
    updated.steps = steps_of(&doc);
    updated.extra = extra_of(&doc);
    let saved = app.store().save_deploy_template(&updated).await?;
    Ok(Json(template_json(&ctx, &saved, None)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    require(&ctx, &Method::DELETE)?;
    let t = load(&app, &raw).await?;
    app.store().delete_deploy_template(t.uuid).await?;
    tracing::info!(template = %t.uuid, name = %t.name, "deploy template deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
