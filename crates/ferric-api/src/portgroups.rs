//! `/v1/portgroups`: bonds of a node's ports (from 1.23).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::ids::is_valid_logical_name;
use ferric_core::{Ident, MacAddress, NodeIdent, Portgroup, PortgroupUuid};
use ferric_db::query::PORTGROUP_SORT_COLUMNS;
use ferric_db::PortgroupFilter;
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::body::Fields;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::ports::Scope;
use crate::version::at;
use crate::{patch, AppState};

const FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("address", 1),
    ("extra", 1),
    ("internal_info", 1),
    ("mode", 26),
    ("name", 1),
    ("properties", 26),
    ("standalone_ports_supported", 1),
    ("node_uuid", 1),
    ("physical_network", 102),
    ("category", 103),
    ("dynamic_portgroup", 111),
    ("links", 1),
    ("ports", 1),
];

const CREATE_KEYS: &[&str] = &[
    "address",
    "category",
    "extra",
    "mode",
    "name",
    "node_uuid",
    "physical_network",
    "properties",
    "standalone_ports_supported",
    "uuid",
];

const PATCH_FIELDS: &[&str] = &[
    "address",
    "extra",
    "mode",
    "name",
    "node_uuid",
    "properties",
    "standalone_ports_supported",
    "physical_network",
    "category",
];

/// Ironic's `[DEFAULT]default_portgroup_mode`.
const DEFAULT_MODE: &str = "active-backup";

fn field_version(name: &str) -> Option<u32> {
    FIELDS.iter().find(|(f, _)| *f == name).map(|(_, v)| *v)
}

/// Below 1.24 a node's port groups and a group's ports are not routes at
/// all (Ironic's routing answers 404, not 406).
fn require_subcontrollers(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::PORTGROUPS_SUBCONTROLLERS) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

fn require_portgroups(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::PORTGROUPS) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "The API is not supported for this version",
        ))
    }
}

pub fn portgroup_json(ctx: &Ctx, g: &Portgroup, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, FIELDS.iter().copied(), |name| {
        Some(match name {
            "uuid" => json!(g.uuid),
            "created_at" => json!(timestamp(&g.created_at)),
            "updated_at" => json!(opt_timestamp(&g.updated_at)),
            "address" => json!(g.address),
            "extra" => Value::Object(g.extra.clone()),
            "internal_info" => Value::Object(g.internal_info.clone()),
            "mode" => json!(g.mode),
            "name" => json!(g.name),
            "properties" => Value::Object(g.properties.clone()),
            "standalone_ports_supported" => json!(g.standalone_ports_supported),
            "node_uuid" => json!(g.node_uuid),
            "physical_network" => json!(g.physical_network),
            "category" => json!(g.category),
            "dynamic_portgroup" => json!(g.dynamic_portgroup),
            "links" => ctx.links(&format!("portgroups/{}", g.uuid)),
            // A sub-resource link, shown only with the whole group.
            "ports" if fields.is_none() => ctx.links(&format!("portgroups/{}/ports", g.uuid)),
            _ => return None,
        })
    })
}

/// A port group named in a URL: UUID or name.
pub async fn load(app: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<Portgroup> {
    require_portgroups(ctx)?;
    app.store()
        .get_portgroup(&Ident::<PortgroupUuid>::parse(raw))
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => {
                ApiError::not_found(format!("Portgroup {raw} could not be found."))
            }
            other => other.into(),
        })
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_groups(app, ctx, p, false, None).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_groups(app, ctx, p, true, None).await
}

pub async fn list_of_node(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_subcontrollers(&ctx)?;
    list_groups(app, ctx, p, false, Some(raw)).await
}

pub async fn list_of_node_detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_subcontrollers(&ctx)?;
    list_groups(app, ctx, p, true, Some(raw)).await
}

async fn list_groups(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
    node: Option<String>,
) -> ApiResult<Response> {
    require_portgroups(&ctx)?;
    let mut keep = p.filters();
    if let Some(raw) = &node {
        keep.push(("node".into(), raw.clone()));
    }
    let mut filter = PortgroupFilter::default();
    let node = node.or(p.take("node"));
    if let Some(raw) = node {
        filter.node_uuid = Some(crate::nodes::load(&app, &ctx, &raw).await?.uuid);
    }
    if let Some(addr) = p.take("address") {
        let mac: MacAddress = addr.parse().map_err(|_| {
            ApiError::bad_request(format!("Expected valid MAC address for address: {addr}"))
        })?;
        filter.address = Some(mac.to_string());
    }
    let args = ListArgs::take(
        &ctx,
        &mut p,
        PORTGROUP_SORT_COLUMNS,
        &["extra", "internal_info", "properties"],
        field_version,
    )?;
    p.finish()?;
    if let Some(fields) = &args.fields {
        if let Some(bad) = fields.iter().find(|f| field_version(f).is_none()) {
            let names: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
            return Err(crate::listing::unknown_field_sorted(bad, &names));
        }
    }
    let marker = match &args.marker {
        Some(m) => Some(
            load(&app, &ctx, m)
                .await
                .map_err(|_| ApiError::not_found(format!("Portgroup {m} could not be found.")))?
                .id,
        ),
        None => None,
    };
    let groups = app
        .store()
        .list_portgroups(&filter, &args.page(marker))
        .await?;
    let default = ["uuid".to_owned(), "address".to_owned(), "name".to_owned()];
    let fields: Option<&[String]> = match (&args.fields, args.wants_detail(detail_path)) {
        (_, true) => None,
        (Some(f), false) => Some(f),
        (None, false) => Some(&default),
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|g| portgroup_json(&ctx, g, fields))
        .collect();
    let mut out = json!({"portgroups": items});
    let resource = if detail_path {
        "portgroups/detail"
    } else {
        "portgroups"
    };
    let last = groups
        .last()
        .map(|g| g.uuid.to_string())
        .unwrap_or_default();
    if let Some(next) = args.next_link(&ctx, resource, &keep, groups.len(), &last) {
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
    let g = load(&app, &ctx, &raw).await?;
    Ok(Json(portgroup_json(&ctx, &g, fields.as_deref())).into_response())
}

pub async fn ports(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_subcontrollers(&ctx)?;
    crate::ports::list_ports(app, ctx, p, false, Scope::Portgroup(raw)).await
}

pub async fn ports_detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    require_subcontrollers(&ctx)?;
    crate::ports::list_ports(app, ctx, p, true, Scope::Portgroup(raw)).await
}

fn apply(ctx: &Ctx, g: &mut Portgroup, f: &Fields<'_>, patching: bool) -> ApiResult<()> {
    let present = |k: &str| patching || f.has(k);
    if present("address") {
        g.address = match f.string("address", 18)? {
            Some(a) => Some(a.parse().map_err(|_| {
                ApiError::bad_request(format!("Expected valid MAC address for address: {a}"))
            })?),
            None => None,
        };
    }
    if present("extra") {
        g.extra = f.object("extra")?.unwrap_or_default();
    }
    if present("mode") {
        match f.string("mode", 255)? {
            Some(mode) => g.mode = Some(mode),
            None if patching => {
                return Err(ApiError::bad_request(
                    "'mode' is a mandatory attribute and can not be removed",
                ))
            }
            None => {}
        }
    }
    if present("name") {
        g.name = f.string("name", 255)?;
        if let Some(name) = &g.name {
            if !is_valid_logical_name(name) || ferric_core::ids::is_uuid_like(name) {
                return Err(ApiError::bad_request(format!(
                    "Cannot create portgroup with invalid name '{name}'"
                )));
            }
        }
    }
    if present("properties") {
        g.properties = f.object("properties")?.unwrap_or_default();
    }
    if present("standalone_ports_supported") {
        g.standalone_ports_supported = f.boolean("standalone_ports_supported")?.unwrap_or(true);
    }
    if present("physical_network") {
        g.physical_network = f.string("physical_network", 64)?;
    }
    if present("category") {
        g.category = f.string("category", 80)?;
    }
    for (key, min) in [
        ("mode", at::PORTGROUP_MODE_PROPERTIES),
        ("properties", at::PORTGROUP_MODE_PROPERTIES),
    ] {
        if !patching && f.has(key) && !ctx.version.at_least(min) {
            return Err(ApiError::not_acceptable());
        }
    }
    Ok(())
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_portgroups(&ctx)?;
    let Value::Object(obj) = &body else {
        return Err(ApiError::bad_request(format!(
            "Schema error: {body} is not of type 'object'"
        )));
    };
    if let Some(extra) = obj.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Schema error: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let f = Fields::new(obj, "portgroup");
    let node_uuid = f
        .uuid("node_uuid")?
        .ok_or_else(|| ApiError::bad_request("Schema error: 'node_uuid' is a required property"))?;
    let node = app
        .store()
        .get_node(&NodeIdent::parse(&node_uuid))
        .await
        .map_err(|_| ApiError::bad_request(format!("Node {node_uuid} could not be found.")))?;
    let uuid = match f.uuid("uuid")? {
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        None => PortgroupUuid::new_random(),
    };
    let mut g = Portgroup {
        id: 0,
        uuid,
        name: None,
        address: None,
        node_uuid: node.uuid,
        extra: Default::default(),
        internal_info: Default::default(),
        mode: Some(DEFAULT_MODE.into()),
        properties: Default::default(),
        standalone_ports_supported: true,
        physical_network: None,
        category: None,
        dynamic_portgroup: false,
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    apply(&ctx, &mut g, &f, false)?;
    let created = app.conductor.create_portgroup(g).await?;
    let location = format!("{}/v1/portgroups/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(portgroup_json(&ctx, &created, None)),
    )
        .into_response())
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    require_portgroups(&ctx)?;
    let ops = patch::parse(body)?;
    patch::check_allowed(&ops, PATCH_FIELDS)?;
    let newer = |op: &patch::PatchOp| matches!(op.field(), "mode" | "properties");
    if !ctx.version.at_least(at::PORTGROUP_MODE_PROPERTIES) && ops.iter().any(newer) {
        return Err(ApiError::not_acceptable());
    }
    let g = load(&app, &ctx, &raw).await?;
    // Validated now for its errors, applied again under the node's lock.
    let (_, moved_to) = patched(&ctx, &raw, &g, &ops)?;
    let new_node = match moved_to {
        Some(node_ref) => Some(
            app.store()
                .get_node(&NodeIdent::parse(&node_ref))
                .await
                .map_err(|_| ApiError::bad_request(format!("Node {node_ref} could not be found.")))?
                .uuid,
        ),
        None => None,
    };
    let (inner_ctx, inner_raw) = (ctx.clone(), raw.clone());
    let change: ferric_conductor::ChildChange<'_, Portgroup> = Box::new(
        move |p: &mut Portgroup, node| {
            let (ctx, raw) = (inner_ctx, inner_raw);
            if node.provision_state == ferric_core::ProvisionState::Inspecting
                && ctx.version.at_least(at::INSPECT_WAIT)
            {
                return Err(ferric_conductor::ConductorError::InvalidState(format!(
                "Cannot update portgroup \"{}\" on node \"{}\" while it is in state \"inspecting\".",
                p.uuid, node.uuid
            )));
            }
            let (mut updated, _) =
                patched(&ctx, &raw, p, &ops).map_err(crate::ports::api_to_conductor)?;
            if let Some(uuid) = new_node {
                updated.node_uuid = uuid;
            }
            *p = updated;
            Ok(())
        },
    );
    let saved = app.conductor.update_portgroup(g.uuid, change).await?;
    Ok(Json(portgroup_json(&ctx, &saved, None)).into_response())
}

/// The group with the patch applied, and the node the patch names (if it
/// moves the group).
fn patched(
    ctx: &Ctx,
    raw: &str,
    g: &Portgroup,
    ops: &[patch::PatchOp],
) -> ApiResult<(Portgroup, Option<String>)> {
    let mut doc = json!({
        "address": g.address, "extra": g.extra, "mode": g.mode, "name": g.name, "node_uuid": g.node_uuid,
        "properties": g.properties, "standalone_ports_supported": g.standalone_ports_supported,
        "physical_network": g.physical_network, "category": g.category,
    });
    patch::apply(&mut doc, ops)?;
    let Value::Object(obj) = &doc else {
        return Err(ApiError::internal());
    };
    let f = Fields::new(obj, "patch");
    let mut updated = g.clone();
    apply(ctx, &mut updated, &f, true).map_err(|e| match &updated.name {
        Some(name)
            if e.message
                .starts_with("Cannot create portgroup with invalid name") =>
        {
            ApiError::bad_request(format!(
                "Portgroup {raw}: Cannot change name to invalid name '{name}'"
            ))
        }
        _ => e,
    })?;
    let moved_to = f
        .string("node_uuid", 36)?
        .filter(|n| *n != g.node_uuid.to_string());
    Ok((updated, moved_to))
}

pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let g = load(&app, &ctx, &raw).await?;
    app.conductor.destroy_portgroup(g.uuid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
