//! `/v1/nodes`: listing, showing, enrolling, updating and deleting nodes.

pub mod actions;
pub mod body;
pub mod history;
pub mod view;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{Ident, Node, NodeIdent, NodeUuid, ProvisionState};
use ferric_db::query::NODE_SORT_COLUMNS;
use ferric_db::NodeFilter;
use serde_json::Value;

use crate::compat::JsonSuffix;
use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::version::at;
use crate::{patch, AppState};
use body::{Fields, NameProblem};
use view::{Render, Shape};

/// JSON fields Ironic refuses to sort by.
const UNSORTABLE: &[&str] = &[
    "properties",
    "driver_info",
    "extra",
    "instance_info",
    "driver_internal_info",
    "clean_step",
    "deploy_step",
    "raid_config",
    "target_raid_config",
    "traits",
    "network_data",
    "service_step",
];

const FAULTS: &[&str] = &[
    "power failure",
    "clean failure",
    "rescue abort failure",
    "service failure",
];

/// A node named in a URL: a UUID, or a name from 1.5 on.
pub fn node_ident(ctx: &Ctx, raw: &str) -> ApiResult<NodeIdent> {
    let ident = NodeIdent::parse(raw);
    if let Ident::Name(name) = &ident {
        if !ctx.version.at_least(at::NODE_NAME) {
            return Err(ApiError::not_found(format!(
                "Node {raw} could not be found."
            )));
        }
        if !ferric_core::ids::is_valid_logical_name(name) {
            return Err(ApiError::routing(
                StatusCode::BAD_REQUEST,
                format!("Expected UUID or name for node: {raw}"),
            ));
        }
    }
    Ok(ident)
}

/// Loads a node named in a URL, or 404 naming it as the client did.
pub async fn load(app: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<Node> {
    let ident = node_ident(ctx, raw)?;
    app.store().get_node(&ident).await.map_err(|e| match e {
        ferric_db::DbError::NotFound { .. } => {
            ApiError::not_found(format!("Node {raw} could not be found."))
        }
        other => other.into(),
    })
}

/// [`load`] for a URL that lost a `.json` suffix: a node not found without
/// it is looked for again with it (a node may be named `n1.json`).
pub async fn load_with_suffix(
    app: &AppState,
    ctx: &Ctx,
    raw: &str,
    suffix: JsonSuffix,
) -> ApiResult<Node> {
    match load(app, ctx, raw).await {
        Err(e) if suffix.0 && e.status == StatusCode::NOT_FOUND => {
            load(app, ctx, &format!("{raw}.json")).await
        }
        other => other,
    }
}

pub fn render<'a>(app: &'a AppState, ctx: &'a Ctx, shape: Shape<'a>) -> Render<'a> {
    Render {
        ctx,
        shape,
        conductor: (
            &app.conductor.config().conductor_group,
            app.conductor.host(),
        ),
    }
}

/// One node, whole, as JSON text.
pub fn node_json(app: &AppState, ctx: &Ctx, node: &Node) -> Value {
    let r = render(app, ctx, Shape::Full);
    serde_json::to_value(r.node(node)).unwrap_or(Value::Null)
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_nodes(app, ctx, p, false, None).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_nodes(app, ctx, p, true, None).await
}

/// Lists nodes; `chassis` comes from `/v1/chassis/{uuid}/nodes`.
pub async fn list_nodes(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
    chassis: Option<String>,
) -> ApiResult<Response> {
    if detail_path && p.take("fields").is_some() {
        return Err(ApiError::bad_request("Unexpected arguments: fields"));
    }
    if detail_path && p.take("detail").is_some() {
        return Err(ApiError::bad_request("Unexpected arguments: detail"));
    }
    let served = (
        app.conductor.config().conductor_group.as_str(),
        app.conductor.host(),
    );
    let mut keep = p.filters();
    if let Some(c) = &chassis {
        keep.push(("chassis_uuid".into(), c.clone()));
    }
    let filter = take_filter(&ctx, &mut p, chassis, served)?;
    let args = ListArgs::take(
        &ctx,
        &mut p,
        NODE_SORT_COLUMNS,
        UNSORTABLE,
        view::field_version,
    )?;
    p.finish()?;
    if let Some(fields) = &args.fields {
        view::check_fields(&ctx, fields)?;
    }
    let marker = match &args.marker {
        Some(m) => Some(marker_id(&app, m).await?),
        None => None,
    };
    let nodes = app.store().list_nodes(&filter, &args.page(marker)).await?;
    let shape = match (&args.fields, args.wants_detail(detail_path)) {
        (Some(f), false) => Shape::Fields(f),
        (_, true) => Shape::Full,
        (None, false) => Shape::Default,
    };
    let r = render(&app, &ctx, shape);
    let views: Vec<_> = nodes.iter().map(|n| r.node(n)).collect();
    let resource = if detail_path { "nodes/detail" } else { "nodes" };
    let last = nodes.last().map(|n| n.uuid.to_string()).unwrap_or_default();
    let mut listing_args = args.clone();
    if listing_args.fields.is_none() && !listing_args.wants_detail(detail_path) {
        listing_args.fields = Some(
            [
                "instance_uuid",
                "maintenance",
                "power_state",
                "provision_state",
                "uuid",
                "name",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        );
    }
    let next = listing_args.next_link(&ctx, resource, &keep, nodes.len(), &last);
    let body = serde_json::to_string(&NodeList { nodes: views, next });
    Ok(json_text(
        StatusCode::OK,
        body.map_err(|_| ApiError::internal())?,
    ))
}

/// A page of nodes, serialized straight from the stored nodes.
#[derive(serde::Serialize)]
struct NodeList<'a> {
    nodes: Vec<view::NodeView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A JSON response from already serialized text.
pub fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn marker_id(app: &AppState, marker: &str) -> ApiResult<i64> {
    let uuid: NodeUuid = marker
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for marker: {marker}")))?;
    match app.store().get_node(&Ident::Uuid(uuid)).await {
        Ok(n) => Ok(n.id),
        Err(ferric_db::DbError::NotFound { .. }) => Err(ApiError::not_found(format!(
            "Node {marker} could not be found."
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The node filters of a list request.
fn take_filter(
    ctx: &Ctx,
    p: &mut Params,
    chassis: Option<String>,
    served: (&str, &str),
) -> ApiResult<NodeFilter> {
    let mut f = NodeFilter::default();
    let gated = |p: &mut Params, name: &str, min: u32| -> ApiResult<Option<String>> {
        match p.take(name) {
            Some(_) if !ctx.version.at_least(min) => Err(ApiError::needs_version(min)),
            other => Ok(other),
        }
    };
    if let Some(state) = p.take("provision_state") {
        if !ctx.version.at_least(at::PROVISION_STATE_FILTER) {
            return Err(ApiError::not_acceptable());
        }
        let parsed: ProvisionState = state.parse().map_err(|_| {
            ApiError::bad_request(format!("Provision state \"{state}\" is not valid"))
        })?;
        f.provision_states = Some(vec![parsed]);
    }
    f.driver = gated(p, "driver", at::DRIVER_FILTER)?;
    f.resource_class = gated(p, "resource_class", at::RESOURCE_CLASS)?;
    if let Some(fault) = gated(p, "fault", at::FAULT)? {
        if !FAULTS.contains(&fault.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Unrecognized fault \"{fault}\" is specified, allowed faults are ('power failure', 'clean failure', \
                 'rescue abort failure', 'service failure')"
            )));
        }
        f.fault = Some(fault);
    }
    f.conductor_group =
        gated(p, "conductor_group", at::CONDUCTOR_GROUP)?.map(|g| g.to_ascii_lowercase());
    let conductor = gated(p, "conductor", at::CONDUCTORS)?;
    f.owner = gated(p, "owner", at::NODE_OWNER)?;
    f.lessee = gated(p, "lessee", at::NODE_LESSEE)?;
    if let Some(shards) = gated(p, "shard", at::NODE_SHARD)? {
        f.shards = Some(
            shards
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    if let Some(sharded) = gated(p, "sharded", at::NODE_SHARD)? {
        f.sharded = Some(crate::context::parse_bool("sharded", &sharded)?);
    }
    if let Some(name) = p.take("instance_name") {
        if !ctx.version.at_least(at::NODE_INSTANCE_NAME) {
            return Err(ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                "instance_name is not acceptable in this API version",
            ));
        }
        f.instance_name = Some(name);
    }
    let include_children = match gated(p, "include_children", at::PARENT_CHILD_NODES)? {
        Some(v) => crate::context::parse_bool("include_children", &v)?,
        None => false,
    };
    f.parent_node = gated(p, "parent_node", at::PARENT_CHILD_NODES)?;
    f.exclude_children = !include_children && f.parent_node.is_none();
    if let Some(uuid) = p.take("instance_uuid") {
        let parsed = ferric_core::ids::parse_uuid(&uuid).map_err(|_| {
            ApiError::bad_request(format!("Expected UUID for instance_uuid: {uuid}"))
        })?;
        f.instance_uuid = Some(parsed.hyphenated().to_string());
    }
    for (name, slot) in [
        ("associated", &mut f.associated),
        ("maintenance", &mut f.maintenance),
        ("retired", &mut f.retired),
    ] {
        if let Some(v) = p.take_bool(name)? {
            *slot = Some(v);
        }
    }
    f.description_contains = p.take("description_contains");
    f.project = p.take("project");
    if let Some(c) = p.take("chassis_uuid").or(chassis) {
        let uuid = ferric_core::ids::parse_uuid(&c)
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for chassis_uuid: {c}")))?;
        f.chassis_uuid = Some(uuid.hyphenated().to_string());
    }
    if let Some(c) = conductor {
        // One conductor serves one group: its nodes are that group's.
        let (group, host) = served;
        let other_group = f
            .conductor_group
            .as_deref()
            .is_some_and(|g| !g.eq_ignore_ascii_case(group));
        if c != host || other_group {
            f.uuids = Some(Vec::new());
        }
        f.conductor_group = Some(group.to_ascii_lowercase());
    }
    Ok(f)
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    suffix: JsonSuffix,
    mut p: Params,
) -> ApiResult<Response> {
    let fields = crate::listing::take_fields(&ctx, &mut p)?;
    p.finish()?;
    if let Some(fields) = &fields {
        view::check_fields(&ctx, fields)?;
    }
    let node = load_with_suffix(&app, &ctx, &raw, suffix).await?;
    let shape = fields.as_deref().map_or(Shape::Full, Shape::Fields);
    let r = render(&app, &ctx, shape);
    let body = serde_json::to_string(&r.node(&node)).map_err(|_| ApiError::internal())?;
    Ok(json_text(StatusCode::OK, body))
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Value::Object(obj) = &body else {
        return Err(ApiError::bad_request(format!(
            "Schema error for node: {body} is not of type 'object'"
        )));
    };
    if let Some(extra) = obj
        .keys()
        .find(|k| !body::CREATE_KEYS.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Schema error for node: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    if !obj.contains_key("driver") {
        return Err(ApiError::bad_request(
            "Schema error for node: 'driver' is a required property",
        ));
    }
    body::check_versions(&ctx, obj)?;
    let fields = Fields::new(obj, "node");
    let uuid = match fields.uuid("uuid")? {
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        None => NodeUuid::new_random(),
    };
    let mut node = Node::enroll(uuid, String::new(), Default::default(), chrono::Utc::now());
    body::apply(&mut node, &fields, false)?;
    node.conductor_group = node.conductor_group.to_ascii_lowercase();
    if let Some(name) = fields.string("name", 255)? {
        match body::name_problem(&ctx, &name) {
            Some(NameProblem::Invalid) => {
                return Err(ApiError::bad_request(format!(
                    "Cannot create node with invalid name '{name}'"
                )))
            }
            Some(NameProblem::Reserved) => {
                return Err(ApiError::bad_request(body::reserved_message(&name)))
            }
            None => node.name = Some(name),
        }
    }
    if !ctx.version.at_least(at::ENROLL_STATE) {
        node.provision_state = ProvisionState::Available;
    }
    resolve_parent(&app, &mut node).await?;
    check_served(&app, &node)?;
    let created = app
        .conductor
        .create_node(node)
        .await
        .map_err(|e| named_duplicate(e, &uuid.to_string()))?;
    let location = format!("{}/v1/nodes/{}", ctx.base, created.uuid);
    let body = node_json(&app, &ctx, &created);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// Ironic's messages for a duplicate instance UUID name the node too.
fn named_duplicate(e: ferric_conductor::ConductorError, node: &str) -> ApiError {
    match e {
        ferric_conductor::ConductorError::Duplicate { kind: "node", field, value } if field == "instance_uuid" => {
            ApiError::conflict(format!(
                "Instance {value} is already associated with a node, it cannot be associated with this other node {node}"
            ))
        }
        other => other.into(),
    }
}

/// `parent_node` may name the parent; it is stored as its UUID.
async fn resolve_parent(app: &AppState, node: &mut Node) -> ApiResult<()> {
    let Some(parent) = node.parent_node.clone() else {
        return Ok(());
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "Unable to apply the requested parent_node '{parent}'. Requested value was invalid."
        ))
    };
    let found = app
        .store()
        .get_node(&NodeIdent::parse(&parent))
        .await
        .map_err(|_| invalid())?;
    if found.uuid == node.uuid || found.owner != node.owner {
        return Err(invalid());
    }
    node.parent_node = Some(found.uuid.to_string());
    Ok(())
}

/// Ironic's hash ring: some conductor must serve the node's driver and
/// conductor group.
fn check_served(app: &AppState, node: &Node) -> ApiResult<()> {
    let group = &app.conductor.config().conductor_group;
    let known = app.conductor.registry().hardware_type(&node.driver).is_ok();
    if known && node.conductor_group.eq_ignore_ascii_case(group) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "No valid host was found. Reason: No conductor service registered which supports driver {} for conductor \
         group \"{}\". Ensure the driver is valid and enabled.",
        node.driver, node.conductor_group
    )))
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    suffix: JsonSuffix,
    mut p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let reset = p.take_bool("reset_interfaces")?;
    p.finish()?;
    if reset.is_some() && !ctx.version.at_least(at::RESET_INTERFACES) {
        return Err(ApiError::not_acceptable());
    }
    let ops = patch::parse(body)?;
    patch::check_allowed(&ops, body::PATCH_FIELDS)?;
    for op in &ops {
        let newer = view::field_version(op.field()).is_some_and(|min| !ctx.version.at_least(min));
        if op.is_whole_field() && op.op != patch::Op::Remove && newer {
            return Err(ApiError::not_acceptable());
        }
    }
    let changes_driver = ops
        .iter()
        .any(|o| o.field() == "driver" && o.op != patch::Op::Remove);
    if reset == Some(true) && !changes_driver {
        return Err(ApiError::bad_request(
            "The reset_interfaces parameter can only be used when changing the node's driver.",
        ));
    }
    let node = load_with_suffix(&app, &ctx, &raw, suffix).await?;
    check_patchable(&node, &ops, &raw, &ctx)?;
    let ident = Ident::Uuid(node.uuid);
    let parent = new_parent(&app, &node, &ops).await?;
    let (app2, ctx2, raw2) = (app.clone(), ctx.clone(), raw.clone());
    let change: ferric_conductor::Change<'_, Node> = Box::new(move |n: &mut Node| {
        apply_patch(&ctx2, &raw2, n, &ops, parent).map_err(|e| match e.status {
            StatusCode::NOT_ACCEPTABLE | StatusCode::BAD_REQUEST => {
                ferric_conductor::ConductorError::Invalid(e.message)
            }
            _ => ferric_conductor::ConductorError::InvalidState(e.message),
        })?;
        check_served(&app2, n).map_err(|e| ferric_conductor::ConductorError::Invalid(e.message))
    });
    let updated = app
        .conductor
        .update_node(&ident, change, reset.unwrap_or(false))
        .await
        .map_err(|e| named_duplicate(e, &node.uuid.to_string()))?;
    Ok(Json(node_json(&app, &ctx, &updated)).into_response())
}

/// Ironic refuses to update a node in the middle of a transition.
fn check_patchable(node: &Node, ops: &[patch::PatchOp], raw: &str, ctx: &Ctx) -> ApiResult<()> {
    let only_unsets_instance =
        ops.len() == 1 && ops[0].op == patch::Op::Remove && ops[0].path == "/instance_uuid";
    if node.maintenance && only_unsets_instance {
        return Ok(());
    }
    if node.target_provision_state.is_some() && !node.provision_state.allows_update() {
        return Err(ApiError::conflict(format!(
            "Node {raw} can not be updated while a state transition is in progress."
        )));
    }
    if node.provision_state == ProvisionState::Inspecting && ctx.version.at_least(at::INSPECT_WAIT)
    {
        return Err(ApiError::conflict(format!(
            "Cannot update node \"{}\" while it is in state \"inspecting\".",
            node.uuid
        )));
    }
    Ok(())
}

/// Resolves a patched `parent_node` (a name or UUID) before the lock.
async fn new_parent(
    app: &AppState,
    node: &Node,
    ops: &[patch::PatchOp],
) -> ApiResult<Option<String>> {
    let Some(op) = ops
        .iter()
        .rev()
        .find(|o| o.path == "/parent_node" && o.op != patch::Op::Remove)
    else {
        return Ok(None);
    };
    let Some(Value::String(parent)) = &op.value else {
        return Ok(None);
    };
    let mut probe = node.clone();
    probe.parent_node = Some(parent.clone());
    resolve_parent(app, &mut probe).await?;
    Ok(probe.parent_node)
}

/// Applies patch operations to the node's document and writes it back.
fn apply_patch(
    ctx: &Ctx,
    raw: &str,
    node: &mut Node,
    ops: &[patch::PatchOp],
    parent: Option<String>,
) -> ApiResult<()> {
    let mut doc = body::patch_document(node);
    patch::apply(&mut doc, ops)?;
    let Value::Object(obj) = &doc else {
        return Err(ApiError::internal());
    };
    if let Some(Value::String(name)) = obj.get("name") {
        if ops.iter().any(|o| o.field() == "name") {
            if !ctx.version.at_least(at::NODE_NAME) {
                return Err(ApiError::not_acceptable());
            }
            match body::name_problem(ctx, name) {
                Some(NameProblem::Invalid) => {
                    return Err(ApiError::bad_request(format!(
                        "Node {raw}: Cannot change name to invalid name '{name}'"
                    )))
                }
                Some(NameProblem::Reserved) => {
                    return Err(ApiError::bad_request(body::reserved_message(name)))
                }
                None => {}
            }
        }
    }
    let fields = Fields::new(obj, "patch");
    let chassis_before = node.chassis_uuid.clone();
    body::apply(node, &fields, true)?;
    node.name = fields.string("name", 255)?;
    node.conductor_group = node.conductor_group.to_ascii_lowercase();
    if chassis_before.is_some()
        && node.chassis_uuid.is_none()
        && !ctx.version.at_least(at::UNSET_CHASSIS_UUID)
    {
        return Err(ApiError::not_acceptable());
    }
    if let Some(parent) = parent {
        node.parent_node = Some(parent);
    }
    Ok(())
}

pub async fn delete(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    suffix: JsonSuffix,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load_with_suffix(&app, &ctx, &raw, suffix).await?;
    app.conductor.destroy_node(&Ident::Uuid(node.uuid)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
