//! `/v1/runbooks` (from 1.92; traits, description and free names from
//! 1.112): named clean or service steps a node may run with `clean` or
//! `service` and `runbook`, when it carries the runbook's name (before
//! 1.112) or one of its traits.

use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{python_repr, Ident, JsonObject, Node, Runbook, RunbookStep, RunbookUuid};
use ferric_db::query::RUNBOOK_SORT_COLUMNS;
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::step_schema::{self as schema, Errors, Seg, RUNBOOK_STEP};
use crate::{patch, AppState};

pub const RUNBOOKS: u32 = 92;
const RUNBOOK_TRAITS: u32 = 112;

/// Fields in the order Ironic's answers have them, with the version each
/// appeared in.
const FIELDS: &[(&str, u32)] = &[
    ("uuid", RUNBOOKS),
    ("created_at", RUNBOOKS),
    ("updated_at", RUNBOOKS),
    ("name", RUNBOOKS),
    ("extra", RUNBOOKS),
    ("public", RUNBOOKS),
    ("owner", RUNBOOKS),
    ("disable_ramdisk", RUNBOOKS),
    ("description", RUNBOOK_TRAITS),
    ("links", RUNBOOKS),
    ("steps", RUNBOOKS),
    ("traits", RUNBOOK_TRAITS),
];

const BODY_KEYS: &[&str] = &[
    "uuid",
    "name",
    "steps",
    "disable_ramdisk",
    "extra",
    "public",
    "owner",
];

const PATCH_FIELDS: &[&str] = &[
    "disable_ramdisk",
    "extra",
    "name",
    "owner",
    "public",
    "steps",
];

fn require(ctx: &Ctx, method: &Method) -> ApiResult<()> {
    schema::endpoint_gate(
        ctx,
        method,
        RUNBOOKS,
        "The API version does not allow runbooks",
    )
}

fn require_traits(ctx: &Ctx, method: &Method) -> ApiResult<()> {
    require(ctx, method)?;
    if ctx.version.at_least(RUNBOOK_TRAITS) {
        Ok(())
    } else {
        Err(ApiError::routing(
            StatusCode::NOT_FOUND,
            "The API version does not allow runbook traits",
        ))
    }
}

fn runbook_json(ctx: &Ctx, r: &Runbook, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().copied(), |name| {
        Some(match name {
            "uuid" => json!(r.uuid),
            "created_at" => json!(timestamp(&r.created_at)),
            "updated_at" => json!(opt_timestamp(&r.updated_at)),
            "name" => json!(r.name),
            "extra" => Value::Object(r.extra.clone()),
            "public" => json!(r.public),
            "owner" => json!(r.owner),
            "disable_ramdisk" => json!(r.disable_ramdisk),
            "description" => json!(r.description),
            "links" => ctx.links(&format!("runbooks/{}", r.uuid)),
            "steps" => Value::Array(
                r.steps
                    .iter()
                    .map(|s| schema::step_view(&s.interface, &s.step, &s.args, ("order", s.order)))
                    .collect(),
            ),
            "traits" => json!(r.traits),
            _ => return None,
        })
    })
}

/// Ironic refuses fields a runbook does not show at this version.
fn check_fields(ctx: &Ctx, fields: Option<&[String]>) -> ApiResult<()> {
    let shown = |f: &String| {
        FIELDS
            .iter()
            .any(|(name, min)| name == f && ctx.version.at_least(*min))
    };
    let bad: Vec<&str> = fields
        .into_iter()
        .flatten()
        .filter(|f| !shown(f))
        .map(String::as_str)
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Field(s) \"{}\" are not valid",
            bad.join(", ")
        )))
    }
}

/// A runbook named in a URL or a request: a UUID, else a logical name.
pub async fn load(app: &AppState, raw: &str) -> ApiResult<Runbook> {
    let ident = Ident::<RunbookUuid>::parse(raw);
    if let Ident::Name(name) = &ident {
        if !ferric_core::ids::is_valid_logical_name(name) {
            return Err(ApiError::bad_request(format!(
                "Expected a logical name or UUID but received {raw}."
            )));
        }
    }
    app.store().get_runbook(&ident).await.map_err(|e| match e {
        ferric_db::DbError::NotFound { .. } => {
            ApiError::not_found(format!("Runbook {raw} could not be found."))
        }
        other => other.into(),
    })
}

/// [`load`] for a runbook in the URL, whose name Ironic checks first.
async fn load_from_url(app: &AppState, raw: &str) -> ApiResult<Runbook> {
    if !ferric_core::ids::is_valid_logical_name(raw) && !ferric_core::ids::is_uuid_like(raw) {
        return Err(ApiError::bad_request(format!(
            "Expected UUID or name for runbook_ident: {raw}"
        )));
    }
    load(app, raw).await
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_runbooks(app, ctx, p, false).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_runbooks(app, ctx, p, true).await
}

async fn list_runbooks(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
) -> ApiResult<Response> {
    require(&ctx, &Method::GET)?;
    let args = ListArgs::take(
        &ctx,
        &mut p,
        RUNBOOK_SORT_COLUMNS,
        &["extra", "steps", "traits"],
        |_| None,
    )?;
    p.finish()?;
    let marker = match &args.marker {
        Some(m) => Some(
            schema::uuid_marker(m, "Runbook", |u| {
                let store = app.store().clone();
                async move { Ok(store.get_runbook(&Ident::Uuid(u)).await?.id) }
            })
            .await?,
        ),
        None => None,
    };
    let all = app.store().list_runbooks(&args.page(marker)).await?;
    let fields = schema::list_fields(&args, detail_path);
    if !all.is_empty() {
        check_fields(&ctx, fields.as_deref())?;
    }
    let items: Vec<Value> = all
        .iter()
        .map(|r| runbook_json(&ctx, r, fields.as_deref()))
        .collect();
    let last = all.last().map(|r| r.uuid.to_string());
    let out = schema::list_body(&ctx, &args, "runbooks", detail_path, items, last);
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
    let r = load_from_url(&app, &raw).await?;
    check_fields(&ctx, fields.as_deref())?;
    Ok(Json(runbook_json(&ctx, &r, fields.as_deref())).into_response())
}

/// Ironic's runbook schemas, reported under `name`. `free_name`: the
/// 1.112 schema (any logical name, and a description) instead of the
/// first one (a trait for a name).
fn check_body(body: &Value, name: &str, free_name: bool) -> ApiResult<()> {
    let mut errs = Errors::default();
    let key = |k: &str| [Seg::Key(k.to_owned())];
    let mut allowed = BODY_KEYS.to_vec();
    if free_name {
        allowed.push("description");
    }
    if let Some(obj) = schema::check_object(&mut errs, &[], body, &["steps", "name"], &allowed) {
        for (k, v) in obj {
            let path = key(k);
            match k.as_str() {
                "description" | "owner" => schema::check_opt_string(&mut errs, &path, v, 255),
                "extra" => schema::check_opt_object(&mut errs, &path, v),
                "disable_ramdisk" | "public" => schema::check_opt_bool(&mut errs, &path, v),
                "name" if free_name => check_free_name(&mut errs, &path, v),
                "name" => schema::check_trait(&mut errs, &path, v),
                "steps" => schema::check_steps(&mut errs, &path, v, &RUNBOOK_STEP),
                "uuid" if !v.is_string() && !v.is_null() => {
                    errs.add(&path, schema::not_of_type(v, "'string', 'null'"))
                }
                _ => {}
            }
        }
    }
    errs.into_result(name)?;
    schema::duplicate_steps(&schema::parse_steps(&body["steps"], &RUNBOOK_STEP))?;
    body.as_object().map_or(Ok(()), schema::check_uuid)
}

/// 1.112's runbook names: 1 to 255 RFC 3986 unreserved characters.
fn check_free_name(errs: &mut Errors, path: &[Seg], v: &Value) {
    if schema::check_string(errs, path, v, 1, 255)
        && !ferric_core::ids::is_valid_logical_name(v.as_str().unwrap_or_default())
    {
        errs.add(
            path,
            format!("{} does not match '^[A-Za-z0-9\\\\-._~]+$'", python_repr(v)),
        );
    }
}

fn steps_of(body: &Value) -> Vec<RunbookStep> {
    schema::parse_steps(&body["steps"], &RUNBOOK_STEP)
        .into_iter()
        .map(|s| RunbookStep {
            interface: s.interface,
            step: s.step,
            args: s.args,
            order: s.rank,
        })
        .collect()
}

fn text_of(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn flag_of(body: &Value, key: &str) -> bool {
    body.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, &Method::POST)?;
    check_body(&body, "runbook", ctx.version.at_least(RUNBOOK_TRAITS))?;
    // Without keystone a request has no project and no system scope, so
    // Ironic takes it for a project-scoped admin of no project.
    if body.get("owner").is_some_and(crate::mask::truthy) {
        return Err(ApiError::bad_request(
            "Cannot create a runbook as a project scoped admin with an owner other than your own project.",
        ));
    }
    let uuid = match text_of(&body, "uuid") {
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        None => RunbookUuid::new_random(),
    };
    let runbook = Runbook {
        id: 0,
        uuid,
        name: text_of(&body, "name").unwrap_or_default(),
        description: text_of(&body, "description"),
        steps: steps_of(&body),
        disable_ramdisk: flag_of(&body, "disable_ramdisk"),
        extra: body
            .get("extra")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        public: flag_of(&body, "public"),
        owner: None,
        traits: Vec::new(),
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    let created = app.store().create_runbook(&runbook).await?;
    tracing::info!(runbook = %created.uuid, name = %created.name, "runbook created");
    let location = format!("{}/v1/runbooks/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(runbook_json(&ctx, &created, None)),
    )
        .into_response())
}

/// The values a patch gives `path` (Ironic's `get_patch_values`).
fn patch_values<'a>(ops: &'a [patch::PatchOp], path: &str) -> Vec<&'a Value> {
    ops.iter()
        .filter(|o| o.path == path && o.op != patch::Op::Remove)
        .filter_map(|o| o.value.as_ref())
        .collect()
}

/// A public runbook has no owner: setting one needs `public` made false
/// in the same patch; making it public (or not) clears the owner.
fn check_owner_and_public(
    raw: &Value,
    ops: &[patch::PatchOp],
    r: &Runbook,
    doc: &mut Value,
) -> ApiResult<()> {
    let owner = patch_values(ops, "/owner");
    let public = patch_values(ops, "/public");
    if !owner.is_empty() {
        let public_value = public.first().is_some_and(|v| crate::mask::truthy(v));
        if (r.public && public.is_empty()) || public_value {
            return Err(ApiError::bad_request(format!(
                "Couldn't apply patch '{}'. Reason: There cannot be an owner for a public runbook",
                python_repr(raw)
            )));
        }
    }
    if !public.is_empty() {
        doc["owner"] = Value::Null;
    }
    Ok(())
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require(&ctx, &Method::PATCH)?;
    let ops = patch::parse(body.clone())?;
    let mut allowed = PATCH_FIELDS.to_vec();
    if ctx.version.at_least(RUNBOOK_TRAITS) {
        allowed.push("description");
    }
    patch::check_allowed(&ops, &allowed)?;
    let r = load_from_url(&app, &raw).await?;
    let steps: Vec<Value> = r.steps.iter().map(|s| Value::Object(s.to_json())).collect();
    let mut doc = json!({
        "uuid": r.uuid, "name": r.name, "description": r.description, "steps": steps,
        "disable_ramdisk": r.disable_ramdisk, "extra": r.extra, "public": r.public, "owner": r.owner,
    });
    check_owner_and_public(&body, &ops, &r, &mut doc)?;
    patch::apply(&mut doc, &ops)?;
    schema::check_patched_steps(&mut doc, &RUNBOOK_STEP)?;
    check_body(&doc, "patch", true)?;
    let mut updated = r.clone();
    updated.name = text_of(&doc, "name").unwrap_or_default();
    updated.description = text_of(&doc, "description");
    updated.steps = steps_of(&doc);
    updated.disable_ramdisk = flag_of(&doc, "disable_ramdisk");
    updated.extra = doc
        .get("extra")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    updated.public = flag_of(&doc, "public");
    updated.owner = text_of(&doc, "owner");
    let saved = app.store().save_runbook(&updated).await?;
    Ok(Json(runbook_json(&ctx, &saved, None)).into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    require(&ctx, &Method::DELETE)?;
    let r = load_from_url(&app, &raw).await?;
    app.store().delete_runbook(r.uuid).await?;
    tracing::info!(runbook = %r.uuid, name = %r.name, "runbook deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Traits (1.112).

pub async fn get_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    require_traits(&ctx, &Method::GET)?;
    let r = load(&app, &raw).await?;
    Ok(Json(json!({"traits": r.traits})).into_response())
}

const ONE_OR_ALL: &str = "A single runbook trait may be added via PUT /v1/runbooks/<runbook identifier>/traits/<trait> \
     with no body, or all runbook traits may be replaced via PUT /v1/runbooks/<runbook identifier>/traits with the \
     list of traits specified in the request body.";

/// `PUT /runbooks/{r}/traits` with `{"traits": [...]}`: replaces them all.
pub async fn set_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_traits(&ctx, &Method::PUT)?;
    let mut errs = Errors::default();
    if let Some(obj) = schema::check_object(&mut errs, &[], &body, &[], &["traits"]) {
        if let Some(list) = obj.get("traits") {
            let path = [Seg::Key("traits".into())];
            match list.as_array() {
                Some(items) => {
                    for (i, t) in items.iter().enumerate() {
                        schema::check_trait(&mut errs, &[path[0].clone(), Seg::Index(i)], t);
                    }
                }
                None => errs.add(&path, schema::not_of_type(list, "'array'")),
            }
        }
    }
    errs.into_result("body")?;
    let r = load(&app, &raw).await?;
    let Some(traits) = body.get("traits").and_then(Value::as_array) else {
        return Err(ApiError::bad_request(ONE_OR_ALL));
    };
    let traits: Vec<String> = traits
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    app.store().set_runbook_traits(r.uuid, &traits).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /runbooks/{r}/traits/{trait}`, no body: adds one.
pub async fn add_trait(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_traits(&ctx, &Method::PUT)?;
    let mut errs = Errors::default();
    schema::check_trait(&mut errs, &[], &Value::String(name.clone()));
    errs.into_result("trait")?;
    let r = load(&app, &raw).await?;
    if crate::mask::truthy(&body) {
        return Err(ApiError::bad_request(
            "No body should be provided when adding a trait",
        ));
    }
    if !r.traits.contains(&name) {
        let mut traits = r.traits.clone();
        traits.push(name.clone());
        app.store().set_runbook_traits(r.uuid, &traits).await?;
    }
    let location = format!("{}/v1/runbooks/{raw}/traits/{name}", ctx.base);
    Ok((StatusCode::NO_CONTENT, [(header::LOCATION, location)]).into_response())
}

/// `DELETE /runbooks/{r}/traits`: removes them all.
pub async fn remove_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    require_traits(&ctx, &Method::DELETE)?;
    let r = load(&app, &raw).await?;
    app.store().set_runbook_traits(r.uuid, &[]).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /runbooks/{r}/traits/{trait}`: removes one; one it lacks is no
/// error.
pub async fn remove_trait(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_traits(&ctx, &Method::DELETE)?;
    let r = load(&app, &raw).await?;
    if r.traits.contains(&name) {
        let traits: Vec<String> = r.traits.iter().filter(|t| **t != name).cloned().collect();
        app.store().set_runbook_traits(r.uuid, &traits).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// Cleaning and servicing with a runbook.

/// What a `clean` or `service` request with a runbook runs: the runbook's
/// steps (for those verbs) and its `disable_ramdisk`, once the node is
/// found allowed to run it (Ironic's `_handle_runbook`).
pub struct RunbookSteps {
    pub clean_steps: Option<Vec<JsonObject>>,
    pub service_steps: Option<Vec<JsonObject>>,
    pub disable_ramdisk: bool,
}

pub fn steps_for_node(
    ctx: &Ctx,
    node: &Node,
    target: &str,
    r: &Runbook,
    clean_steps: Option<Vec<JsonObject>>,
    service_steps: Option<Vec<JsonObject>>,
) -> ApiResult<RunbookSteps> {
    check_node_may_run(ctx, node, r)?;
    let steps = || r.steps.iter().map(RunbookStep::to_json).collect::<Vec<_>>();
    let (mut clean, mut service) = (clean_steps, service_steps);
    match target {
        "clean" if clean.is_some() => {
            return Err(ApiError::bad_request(
                "Please provide either \"clean_steps\" or a runbook, but not both.",
            ))
        }
        "clean" => clean = Some(steps()),
        "service" if service.is_some() => {
            return Err(ApiError::bad_request(
                "Please provide either \"service_steps\" or a runbook, but not both.",
            ))
        }
        "service" => service = Some(steps()),
        _ => {}
    }
    Ok(RunbookSteps {
        clean_steps: clean,
        service_steps: service,
        disable_ramdisk: r.disable_ramdisk,
    })
}

fn check_node_may_run(ctx: &Ctx, node: &Node, r: &Runbook) -> ApiResult<()> {
    if !ctx.version.at_least(RUNBOOK_TRAITS) {
        if node.traits.contains(&r.name) {
            return Ok(());
        }
        return Err(ApiError::bad_request(format!(
            "This runbook has not been approved for use on this node {}. Please ask an administrator to add it \
             to your node traits.",
            node.uuid
        )));
    }
    if r.traits.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Runbook {} has no traits configured. Please ask an administrator to add traits to the runbook.",
            r.uuid
        )));
    }
    if r.traits.iter().any(|t| node.traits.contains(t)) {
        return Ok(());
    }
    let mut sorted = r.traits.clone();
    sorted.sort();
    Err(ApiError::bad_request(format!(
        "This runbook has not been approved for use on this node {}. The node does not have any of the \
         runbook's traits {}. Please ask an administrator to add a matching trait to your node.",
        node.uuid,
        python_repr(&json!(sorted))
    )))
}
