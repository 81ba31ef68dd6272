//! The handlers both volume resources share, generic over [`Resource`]:
//! each resource says what its objects look like and where they are kept.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::NodeUuid;
use serde_json::{json, Map, Value};

use super::{check_schema, require, ListSpec, Scope, Ty};
use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::{patch, AppState};

/// A boxed future, so that [`Resource`] can name its storage calls.
pub(crate) type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a volume resource (connectors, targets) tells the handlers.
pub(crate) trait Resource: Send + Sync + 'static {
    type Record: Clone + Send + Sync + 'static;
    /// The collection: `connectors`.
    const NAME: &'static str;
    /// The singular in messages: `connector` (schema errors, the UUID
    /// parameter).
    const WHAT: &'static str;
    /// The not-found name: `Volume connector`.
    const TITLE: &'static str;
    /// Shown fields in the order Ironic builds them.
    const FIELDS: &'static [&'static str];
    const SPEC: ListSpec;
    /// The body schema, properties in its order.
    const SCHEMA: &'static [(&'static str, Ty)];
    const REQUIRED: &'static [&'static str];
    const PATCH_FIELDS: &'static [&'static str];

    fn uuid(r: &Self::Record) -> uuid::Uuid;
    fn id(r: &Self::Record) -> i64;
    fn node(r: &Self::Record) -> NodeUuid;
    /// A field's value (links aside).
    fn value(r: &Self::Record, name: &str) -> Option<Value>;
    /// The fields a patch applies to, `node_uuid` as null.
    fn document(r: &Self::Record) -> Value;
    /// A record from a checked body; `base` is the record being patched.
    fn build(
        obj: &Map<String, Value>,
        uuid: uuid::Uuid,
        node: NodeUuid,
        base: Option<&Self::Record>,
    ) -> Self::Record;

    fn get(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_db::DbResult<Self::Record>>;
    fn list<'a>(
        app: &'a AppState,
        node: Option<NodeUuid>,
        page: &'a ferric_db::Page,
    ) -> Fut<'a, ferric_db::DbResult<Vec<Self::Record>>>;
    fn create<'a>(
        app: &'a AppState,
        r: &'a Self::Record,
    ) -> Fut<'a, ferric_db::DbResult<Self::Record>>;
    fn update(app: &AppState, r: Self::Record) -> Fut<'_, ferric_conductor::Result<Self::Record>>;
    fn destroy(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_conductor::Result<()>>;
}

fn render<R: Resource>(ctx: &Ctx, r: &R::Record, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(
        ctx,
        fields,
        R::FIELDS.iter().map(|n| (*n, 1)),
        |name| match name {
            "links" => Some(ctx.links(&format!("volume/{}/{}", R::NAME, R::uuid(r)))),
            other => R::value(r, other),
        },
    )
}

fn parse_uuid<R: Resource>(raw: &str) -> ApiResult<uuid::Uuid> {
    ferric_core::ids::parse_uuid(raw)
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for {}_uuid: {raw}", R::WHAT)))
}

async fn load<R: Resource>(app: &AppState, raw: &str) -> ApiResult<R::Record> {
    let uuid = parse_uuid::<R>(raw)?;
    R::get(app, uuid).await.map_err(|e| match e {
        ferric_db::DbError::NotFound { .. } => {
            ApiError::not_found(format!("{} {raw} could not be found.", R::TITLE))
        }
        other => other.into(),
    })
}

fn check_fields<R: Resource>(fields: Option<&Vec<String>>) -> ApiResult<()> {
    match fields
        .into_iter()
        .flatten()
        .find(|f| !R::SPEC.fields.contains(&f.as_str()))
    {
        Some(bad) => Err(crate::listing::unknown_field(
            bad,
            R::SPEC.fields.iter().copied(),
        )),
        None => Ok(()),
    }
}

/// The URL's parameters: `node` when under `/v1/nodes/{node}/volume`,
/// `uuid` for one object.
type UrlParams = Path<HashMap<String, String>>;

/// Where the request came in, with the version gate of that place.
fn scope_of(ctx: &Ctx, params: &HashMap<String, String>) -> ApiResult<Scope> {
    match params.get("node") {
        Some(node) => Scope::of_node(ctx, node.clone()),
        None => require(ctx).map(|()| Scope::Top),
    }
}

/// The object's UUID in the URL, as given.
fn uuid_param(params: &HashMap<String, String>) -> String {
    params.get("uuid").cloned().unwrap_or_default()
}

pub(crate) async fn list<R: Resource>(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(params): UrlParams,
    p: Params,
) -> ApiResult<Response> {
    let scope = scope_of(&ctx, &params)?;
    let list = super::take_list(&app, &ctx, p, &scope, &R::SPEC).await?;
    let marker = match &list.args.marker {
        Some(m) => Some(R::id(&load::<R>(&app, m).await?)),
        None => None,
    };
    let page = list.args.page(marker);
    let all = R::list(&app, list.node, &page).await?;
    let fields = list.args.fields.as_deref();
    let items: Vec<Value> = all.iter().map(|r| render::<R>(&ctx, r, fields)).collect();
    let mut out = json!({ R::NAME: items });
    let last = all
        .last()
        .map(|r| R::uuid(r).to_string())
        .unwrap_or_default();
    let resource = format!("volume/{}", R::NAME);
    if let Some(next) = list.args.next_link(&ctx, &resource, &[], all.len(), &last) {
        out["next"] = json!(next);
    }
    Ok(Json(out).into_response())
}

pub(crate) async fn show<R: Resource>(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(params): UrlParams,
    mut p: Params,
) -> ApiResult<Response> {
    let scope = scope_of(&ctx, &params)?;
    let raw = uuid_param(&params);
    parse_uuid::<R>(&raw)?;
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    check_fields::<R>(fields.as_ref())?;
    let r = load::<R>(&app, &raw).await?;
    scope.refuse_nested()?;
    Ok(Json(render::<R>(&ctx, &r, fields.as_deref())).into_response())
}

pub(crate) async fn create<R: Resource>(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(params): UrlParams,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let scope = scope_of(&ctx, &params)?;
    let obj = check_schema(R::WHAT, &body, R::SCHEMA, R::REQUIRED)?;
    let node_raw = obj
        .get("node_uuid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let node = super::node_of_body(&app, node_raw).await?;
    scope.refuse_nested()?;
    let uuid = match obj.get("uuid").and_then(Value::as_str) {
        Some(u) if !u.is_empty() => parse_uuid::<R>(u)?,
        _ => uuid::Uuid::new_v4(),
    };
    let record = R::build(obj, uuid, node.uuid, None);
    let created = R::create(&app, &record).await?;
    let location = format!("{}/v1/volume/{}/{}", ctx.base, R::NAME, R::uuid(&created));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(render::<R>(&ctx, &created, None)),
    )
        .into_response())
}

pub(crate) async fn update<R: Resource>(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(params): UrlParams,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let scope = scope_of(&ctx, &params)?;
    let raw = uuid_param(&params);
    parse_uuid::<R>(&raw)?;
    let ops = patch::parse(body)?;
    let current = load::<R>(&app, &raw).await?;
    scope.refuse_nested()?;
    patch::check_allowed(&ops, R::PATCH_FIELDS)?;
    let owner = crate::nodes::load(&app, &ctx, &R::node(&current).to_string()).await?;
    let node = super::node_of_patch(&app, &owner, &ops).await?;
    let mut doc = R::document(&current);
    patch::apply(&mut doc, &ops)?;
    doc["node_uuid"] = json!(node.uuid);
    let doc = super::prune(doc, R::SCHEMA);
    let obj = check_schema("patch", &doc, R::SCHEMA, R::REQUIRED)?;
    let updated = R::build(obj, R::uuid(&current), node.uuid, Some(&current));
    let saved = R::update(&app, updated).await?;
    Ok(Json(render::<R>(&ctx, &saved, None)).into_response())
}

pub(crate) async fn delete<R: Resource>(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(params): UrlParams,
    p: Params,
) -> ApiResult<Response> {
    let scope = scope_of(&ctx, &params)?;
    let raw = uuid_param(&params);
    parse_uuid::<R>(&raw)?;
    p.finish()?;
    let r = load::<R>(&app, &raw).await?;
    scope.refuse_nested()?;
    R::destroy(&app, R::uuid(&r)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
