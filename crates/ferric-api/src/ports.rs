//! `/v1/ports`: a node's NICs, known by MAC address.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{Ident, MacAddress, NodeIdent, Port, PortUuid};
use ferric_db::query::PORT_SORT_COLUMNS;
use ferric_db::PortFilter;
use serde_json::{json, Map, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::nodes::body::Fields;
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::version::at;
use crate::{patch, AppState};

/// Port fields in Ironic's order, with the version each appeared in.
const PORT_FIELDS: &[(&str, u32)] = &[
    ("uuid", 1),
    ("created_at", 1),
    ("updated_at", 1),
    ("address", 1),
    ("extra", 1),
    ("internal_info", 18),
    ("is_smartnic", 53),
    ("local_link_connection", 19),
    ("physical_network", 34),
    ("pxe_enabled", 19),
    ("node_uuid", 1),
    ("name", 88),
    ("description", 97),
    ("vendor", 100),
    ("category", 101),
    ("available_for_dynamic_portgroup", 111),
    ("links", 1),
    ("portgroup_uuid", 24),
];

const CREATE_KEYS: &[&str] = &[
    "address",
    "node_uuid",
    "node_ident",
    "extra",
    "is_smartnic",
    "local_link_connection",
    "physical_network",
    "portgroup_uuid",
    "pxe_enabled",
    "uuid",
    "name",
    "description",
    "vendor",
    "category",
    "available_for_dynamic_portgroup",
];

const PATCH_FIELDS: &[&str] = &[
    "address",
    "extra",
    "is_smartnic",
    "local_link_connection",
    "node_ident",
    "node_uuid",
    "physical_network",
    "portgroup_uuid",
    "pxe_enabled",
    "name",
    "description",
    "vendor",
    "category",
    "available_for_dynamic_portgroup",
];

const UNSORTABLE: &[&str] = &["extra", "internal_info", "local_link_connection"];

fn field_version(name: &str) -> Option<u32> {
    PORT_FIELDS
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, v)| *v)
}

/// A port as shown; `fields` limits it (links always stay).
pub fn port_json(ctx: &Ctx, port: &Port, fields: Option<&[String]>) -> Value {
    crate::listing::render_fields(ctx, fields, PORT_FIELDS.iter().copied(), |name| {
        Some(match name {
            "uuid" => json!(port.uuid),
            "created_at" => json!(timestamp(&port.created_at)),
            "updated_at" => json!(opt_timestamp(&port.updated_at)),
            "address" => json!(port.address),
            "extra" => Value::Object(port.extra.clone()),
            "internal_info" => Value::Object(port.internal_info.clone()),
            "is_smartnic" => json!(port.is_smartnic),
            "local_link_connection" => Value::Object(port.local_link_connection.clone()),
            "physical_network" => json!(port.physical_network),
            "pxe_enabled" => json!(port.pxe_enabled),
            "node_uuid" => json!(port.node_uuid),
            "name" => json!(port.name),
            "description" => json!(port.description),
            "vendor" => json!(port.vendor),
            "category" => json!(port.category),
            "available_for_dynamic_portgroup" => json!(port.available_for_dynamic_portgroup),
            "links" => ctx.links(&format!("ports/{}", port.uuid)),
            "portgroup_uuid" => json!(port.portgroup_uuid),
            _ => return None,
        })
    })
}

fn check_fields(ctx: &Ctx, fields: &[String]) -> ApiResult<()> {
    let unknown: Vec<&str> = fields
        .iter()
        .filter(|f| field_version(f).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Field(s) \"{}\" are not valid",
            unknown.join(", ")
        )));
    }
    if fields
        .iter()
        .any(|f| field_version(f).is_some_and(|m| !ctx.version.at_least(m)))
    {
        return Err(ApiError::not_acceptable());
    }
    Ok(())
}

/// A port is named in a URL by UUID or name; anything else (a MAC address,
/// say) is refused as Ironic's argument check does, before any lookup.
fn check_ident(raw: &str) -> ApiResult<()> {
    if ferric_core::ids::is_uuid_like(raw) || ferric_core::ids::is_valid_logical_name(raw) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Expected UUID or name for port_ident: {raw}"
        )))
    }
}

/// A port named in a URL: UUID or name.
async fn load(app: &AppState, raw: &str) -> ApiResult<Port> {
    check_ident(raw)?;
    let found = match raw.parse::<PortUuid>() {
        Ok(uuid) => app.store().get_port(uuid).await,
        Err(_) => app.store().get_port_by_name(raw).await,
    };
    found.map_err(|e| match e {
        ferric_db::DbError::NotFound { .. } => {
            ApiError::not_found(format!("Port {raw} could not be found."))
        }
        other => other.into(),
    })
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_ports(app, ctx, p, false, Scope::All).await
}

pub async fn list_detail(State(app): State<AppState>, ctx: Ctx, p: Params) -> ApiResult<Response> {
    list_ports(app, ctx, p, true, Scope::All).await
}

pub async fn list_of_node(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    list_ports(app, ctx, p, false, Scope::Node(raw)).await
}

pub async fn list_of_node_detail(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    list_ports(app, ctx, p, true, Scope::Node(raw)).await
}

/// Which ports a listing covers: all, a node's, or a port group's.
pub enum Scope {
    All,
    Node(String),
    Portgroup(String),
}

pub async fn list_ports(
    app: AppState,
    ctx: Ctx,
    mut p: Params,
    detail_path: bool,
    scope: Scope,
) -> ApiResult<Response> {
    if detail_path {
        for forbidden in ["fields", "detail"] {
            if p.take(forbidden).is_some() {
                return Err(ApiError::bad_request(format!(
                    "Unexpected arguments: {forbidden}"
                )));
            }
        }
    }
    let mut filter = PortFilter::default();
    let node_param = p.take("node_uuid").or(p.take("node"));
    let portgroup_param = p.take("portgroup");
    if portgroup_param.is_some() && !ctx.version.at_least(at::PORTGROUPS_SUBCONTROLLERS) {
        return Err(ApiError::not_acceptable());
    }
    if let Some(addr) = p.take("address") {
        let mac: MacAddress = addr.parse().map_err(|_| {
            ApiError::bad_request(format!("Expected valid MAC address for address: {addr}"))
        })?;
        filter.address = Some(mac.to_string());
    }
    if let Some(shards) = p.take("shard") {
        ctx.require(at::NODE_SHARD)?;
        filter.shards = Some(
            shards
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        );
    }
    filter.description_contains = p.take("description_contains");
    let mut keep = p.filters();
    match &scope {
        Scope::All => {}
        Scope::Node(raw) => keep.push(("node".into(), raw.clone())),
        Scope::Portgroup(raw) => keep.push(("portgroup".into(), raw.clone())),
    }
    let (node, group) = match scope {
        Scope::All => (node_param, portgroup_param),
        Scope::Node(raw) => (Some(raw), portgroup_param),
        Scope::Portgroup(raw) => (node_param, Some(raw)),
    };
    if let Some(raw) = node {
        let n = crate::nodes::load(&app, &ctx, &raw).await?;
        filter.node_uuid = Some(n.uuid);
    }
    if let Some(raw) = group {
        let g = crate::portgroups::load(&app, &ctx, &raw).await?;
        filter.portgroup_id = Some(g.id);
    }
    let args = ListArgs::take(&ctx, &mut p, PORT_SORT_COLUMNS, UNSORTABLE, field_version)?;
    p.finish()?;
    if let Some(fields) = &args.fields {
        check_fields(&ctx, fields)?;
    }
    let marker = match &args.marker {
        Some(m) => {
            let uuid: PortUuid = m
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Expected UUID for marker: {m}")))?;
            Some(
                app.store()
                    .get_port(uuid)
                    .await
                    .map_err(|_| ApiError::not_found(format!("Port {m} could not be found.")))?
                    .id,
            )
        }
        None => None,
    };
    let ports = app.store().list_ports(&filter, &args.page(marker)).await?;
    let default = ["uuid".to_owned(), "address".to_owned()];
    let fields: Option<&[String]> = match (&args.fields, args.wants_detail(detail_path)) {
        (_, true) => None,
        (Some(f), false) => Some(f),
        (None, false) => Some(&default),
    };
    let items: Vec<Value> = ports
        .iter()
        .map(|port| port_json(&ctx, port, fields))
        .collect();
    let mut out = json!({"ports": items});
    let resource = if detail_path { "ports/detail" } else { "ports" };
    let last = ports.last().map(|p| p.uuid.to_string()).unwrap_or_default();
    if let Some(next) = args.next_link(&ctx, resource, &keep, ports.len(), &last) {
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
    check_ident(&raw)?;
    if let Some(f) = &fields {
        check_fields(&ctx, f)?;
    }
    let port = load(&app, &raw).await?;
    Ok(Json(port_json(&ctx, &port, fields.as_deref())).into_response())
}

/// Keys newer than the request's version may not appear at all.
fn check_key_versions(ctx: &Ctx, obj: &Map<String, Value>) -> ApiResult<()> {
    let versioned = [
        ("pxe_enabled", 19),
        ("local_link_connection", 19),
        ("portgroup_uuid", 24),
        ("physical_network", 34),
        ("is_smartnic", 53),
        ("name", at::PORT_NAME),
        ("description", 97),
        ("vendor", 100),
        ("category", 101),
        ("available_for_dynamic_portgroup", 111),
        ("node_ident", at::PORT_NODE_IDENT),
    ];
    for (key, min) in versioned {
        if obj.contains_key(key) && !ctx.version.at_least(min) {
            return Err(ApiError::not_acceptable());
        }
    }
    Ok(())
}

/// Ironic's `local_link_connection` schema.
fn check_local_link(llc: &Map<String, Value>) -> ApiResult<Map<String, Value>> {
    let allowed = [
        "port_id",
        "switch_id",
        "hostname",
        "switch_info",
        "network_type",
    ];
    let schema = |msg: String| {
        ApiError::bad_request(format!("Schema error for local_link_connection: {msg}"))
    };
    if let Some(extra) = llc.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(schema(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let has = |k: &str| llc.get(k).is_some_and(|v| v.is_string());
    let unmanaged = llc.get("network_type") == Some(&json!("unmanaged"));
    if !(llc.is_empty() || unmanaged || (has("port_id") && (has("switch_id") || has("hostname")))) {
        return Err(schema(format!(
            "{} is not valid under any of the given schemas. Possible root cause: 'switch_id' is a required property",
            Value::Object(llc.clone())
        )));
    }
    let mut out = llc.clone();
    if let Some(Value::String(switch)) = llc.get("switch_id") {
        let normalized = match switch.parse::<MacAddress>() {
            Ok(mac) => mac.to_string(),
            Err(_) if switch.len() == 16 && switch.bytes().all(|b| b.is_ascii_hexdigit()) => {
                switch.to_ascii_lowercase()
            }
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "Expected a MAC address or OpenFlow datapath ID but received {switch}."
                )))
            }
        };
        out.insert("switch_id".into(), json!(normalized));
    }
    Ok(out)
}

/// Writes a port body's fields onto `port`. A patched document holds every
/// field, so absent means removed there.
fn apply(port: &mut Port, f: &Fields<'_>, patching: bool) -> ApiResult<()> {
    let present = |k: &str| patching || f.has(k);
    match f.string("address", 18)? {
        Some(addr) => {
            port.address = addr.parse().map_err(|_| {
                ApiError::bad_request(format!("Expected valid MAC address for address: {addr}"))
            })?;
        }
        None if patching => {
            return Err(ApiError::bad_request(
                "Schema error for patch: 'address' is a required property",
            ))
        }
        None => {}
    }
    if present("extra") {
        port.extra = f.object("extra")?.unwrap_or_default();
    }
    if present("local_link_connection") {
        port.local_link_connection =
            check_local_link(&f.object("local_link_connection")?.unwrap_or_default())?;
    }
    if present("physical_network") {
        port.physical_network = f.string("physical_network", 64)?;
        if port.physical_network.as_deref() == Some("") {
            return Err(ApiError::bad_request(
                "A non-empty value is required when setting physical_network",
            ));
        }
    }
    if present("pxe_enabled") {
        port.pxe_enabled = f.boolean("pxe_enabled")?.unwrap_or(true);
    }
    if present("is_smartnic") {
        port.is_smartnic = f.boolean("is_smartnic")?.unwrap_or(false);
    }
    if present("portgroup_uuid") {
        port.portgroup_uuid = match f.uuid("portgroup_uuid")? {
            Some(u) => Some(u.parse().map_err(|_| {
                ApiError::bad_request(format!("Expected UUID for portgroup_uuid: {u}"))
            })?),
            None => None,
        };
    }
    if present("name") {
        port.name = f.string("name", 255)?;
    }
    if present("description") {
        port.description = f.string("description", 255)?;
    }
    if present("vendor") {
        port.vendor = f.string("vendor", 32)?;
    }
    if present("category") {
        port.category = f.string("category", 80)?;
    }
    if present("available_for_dynamic_portgroup") {
        port.available_for_dynamic_portgroup = f
            .boolean("available_for_dynamic_portgroup")?
            .unwrap_or(true);
    }
    if port.is_smartnic
        && !(port.local_link_connection.contains_key("port_id")
            && port.local_link_connection.contains_key("hostname"))
    {
        return Err(ApiError::bad_request(
            "Smart NIC port must have port_id and hostname in local_link_connection",
        ));
    }
    Ok(())
}

pub async fn create(
    State(app): State<AppState>,
    ctx: Ctx,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Value::Object(obj) = &body else {
        return Err(ApiError::bad_request(format!(
            "Schema error for port: {body} is not of type 'object'"
        )));
    };
    if let Some(extra) = obj.keys().find(|k| !CREATE_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Schema error for port: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    if !obj.contains_key("address") {
        return Err(ApiError::bad_request(
            "Schema error for port: 'address' is a required property",
        ));
    }
    let f = Fields::new(obj, "port");
    let node_ref = match (f.uuid("node_uuid")?, f.string("node_ident", 255)?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "Schema error for port: specify only one of node_uuid and node_ident",
            ))
        }
        (Some(uuid), None) => uuid,
        (None, Some(ident)) => ident,
        (None, None) => {
            return Err(ApiError::bad_request(
                "Schema error for port: 'node_uuid' is a required property",
            ))
        }
    };
    check_key_versions(&ctx, obj)?;
    let node = app
        .store()
        .get_node(&NodeIdent::parse(&node_ref))
        .await
        .map_err(|_| ApiError::bad_request(format!("Node {node_ref} could not be found.")))?;
    let uuid = match f.uuid("uuid")? {
        Some(u) => u
            .parse()
            .map_err(|_| ApiError::bad_request(format!("Expected UUID for uuid: {u}")))?,
        None => PortUuid::new_random(),
    };
    let mut port = Port {
        id: 0,
        uuid,
        address: mac_of(&f)?,
        node_uuid: node.uuid,
        portgroup_uuid: None,
        name: None,
        description: None,
        extra: Default::default(),
        internal_info: Default::default(),
        local_link_connection: Default::default(),
        physical_network: None,
        pxe_enabled: true,
        is_smartnic: false,
        vendor: None,
        category: None,
        available_for_dynamic_portgroup: true,
        created_at: chrono::Utc::now(),
        updated_at: None,
    };
    apply(&mut port, &f, false)?;
    check_portgroup(&app, &port).await?;
    let created = app.conductor.create_port(port).await?;
    let location = format!("{}/v1/ports/{}", ctx.base, created.uuid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(port_json(&ctx, &created, None)),
    )
        .into_response())
}

async fn check_portgroup(app: &AppState, port: &Port) -> ApiResult<()> {
    if let Some(group) = port.portgroup_uuid {
        let g = app
            .store()
            .get_portgroup(&Ident::Uuid(group))
            .await
            .map_err(|_| ApiError::bad_request(format!("Portgroup {group} could not be found.")))?;
        if g.node_uuid != port.node_uuid {
            return Err(ApiError::bad_request(
                "Port can not be added to a portgroup belonging to a different node.",
            ));
        }
    }
    Ok(())
}

fn port_document(port: &Port) -> Value {
    json!({
        "address": port.address,
        "extra": port.extra,
        "is_smartnic": port.is_smartnic,
        "local_link_connection": port.local_link_connection,
        "node_uuid": port.node_uuid,
        "physical_network": port.physical_network,
        "portgroup_uuid": port.portgroup_uuid,
        "pxe_enabled": port.pxe_enabled,
        "name": port.name,
        "description": port.description,
        "vendor": port.vendor,
        "category": port.category,
        "available_for_dynamic_portgroup": port.available_for_dynamic_portgroup,
    })
}

pub async fn update(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    check_ident(&raw)?;
    let ops = patch::parse(body)?;
    patch::check_allowed(&ops, PATCH_FIELDS)?;
    for op in &ops {
        if op.is_whole_field()
            && field_version(op.field()).is_some_and(|m| !ctx.version.at_least(m))
        {
            return Err(ApiError::not_acceptable());
        }
    }
    let port = load(&app, &raw).await?;
    // Validate the patch now, for its errors; it is applied again to the
    // port as it stands under its node's lock.
    let preview = patched(&port, &ops)?;
    let mut new_node = None;
    let node_ref = preview.1;
    if let Some(node_ref) = node_ref {
        let node = app
            .store()
            .get_node(&NodeIdent::parse(&node_ref))
            .await
            .map_err(|_| {
                ApiError::bad_request(format!(
                "Unable to apply the requested node_uuid '{node_ref}'. Requested value was invalid."
            ))
            })?;
        new_node = Some(node.uuid);
    }
    let mut probe = preview.0;
    if let Some(uuid) = new_node {
        probe.node_uuid = uuid;
    }
    check_portgroup(&app, &probe).await?;
    let pins_physnet = ctx.version.at_least(at::PORTGROUP_PHYSICAL_NETWORK)
        && ops
            .first()
            .is_some_and(|op| op.field() == "physical_network");
    let change: ferric_conductor::ChildChange<'_, Port> = Box::new(move |p: &mut Port, node| {
        // Ironic looks at the first operation only.
        if pins_physnet && p.portgroup_uuid.is_some() {
            return Err(ferric_conductor::ConductorError::Invalid(
                "physical_network cannot be changed while the port belongs to a portgroup.".into(),
            ));
        }
        let (mut updated, _) = patched(p, &ops).map_err(api_to_conductor)?;
        if let Some(uuid) = new_node {
            updated.node_uuid = uuid;
        }
        check_port_update(p, &updated, node).map_err(api_to_conductor)?;
        *p = updated;
        Ok(())
    });
    let saved = app.conductor.update_port(port.uuid, change).await?;
    Ok(Json(port_json(&ctx, &saved, None)).into_response())
}

/// The body's `address`, which a port cannot do without.
fn mac_of(f: &Fields<'_>) -> ApiResult<MacAddress> {
    match f.string("address", 18)? {
        Some(addr) => addr.parse().map_err(|_| {
            ApiError::bad_request(format!("Expected valid MAC address for address: {addr}"))
        }),
        None => Err(ApiError::bad_request(
            "Schema error for port: None is not of type 'string'",
        )),
    }
}

/// The port with the patch applied, and the node the patch names (if it
/// moves the port).
fn patched(port: &Port, ops: &[patch::PatchOp]) -> ApiResult<(Port, Option<String>)> {
    let mut doc = port_document(port);
    patch::apply(&mut doc, ops)?;
    let Value::Object(obj) = &doc else {
        return Err(ApiError::internal());
    };
    let f = Fields::new(obj, "patch");
    let mut updated = port.clone();
    apply(&mut updated, &f, true)?;
    let moved_to = f.string("node_ident", 255)?.or(f.string("node_uuid", 36)?);
    let moved_to = moved_to.filter(|n| *n != port.node_uuid.to_string());
    Ok((updated, moved_to))
}

/// Carries an API refusal made under the lock back out unchanged.
pub(crate) fn api_to_conductor(e: ApiError) -> ferric_conductor::ConductorError {
    match e.status {
        axum::http::StatusCode::CONFLICT => {
            ferric_conductor::ConductorError::InvalidState(e.message)
        }
        _ => ferric_conductor::ConductorError::Invalid(e.message),
    }
}

/// Ironic protects the wiring of deployed nodes.
fn check_port_update(before: &Port, after: &Port, node: &ferric_core::Node) -> ApiResult<()> {
    use ferric_core::ProvisionState as S;
    if node.provision_state == S::Inspecting {
        return Err(ApiError::conflict(format!(
            "Cannot update port \"{}\" on \"{}\" while it is in state \"inspecting\".",
            before.uuid, node.uuid
        )));
    }
    let deployed = node.provision_state == S::Active || node.instance_uuid.is_some();
    if before.address != after.address && deployed && !node.maintenance {
        return Err(ApiError::conflict(format!(
            "Cannot update hardware address for port {} as node {} is active or has instance UUID assigned",
            before.uuid, node.uuid
        )));
    }
    let mut changed = Vec::new();
    if before.portgroup_uuid != after.portgroup_uuid {
        changed.push("portgroup_uuid");
    }
    if before.pxe_enabled != after.pxe_enabled {
        changed.push("pxe_enabled");
    }
    if before.local_link_connection != after.local_link_connection {
        changed.push("local_link_connection");
    }
    if before.physical_network != after.physical_network {
        changed.push("physical_network");
    }
    let wiring_ok = matches!(
        node.provision_state,
        S::Enroll | S::Inspecting | S::InspectWait | S::Manageable
    ) || node.maintenance;
    if !changed.is_empty() && !wiring_ok {
        return Err(ApiError::conflict(format!(
            "Port {} can not have any connectivity attributes ({}) updated unless node {} is in a enroll, inspecting, \
             inspect wait, manageable state or in maintenance mode. The current state is {}.",
            before.uuid,
            changed.join(", "),
            node.uuid,
            node.provision_state
        )));
    }
    Ok(())
}

pub async fn delete(State(app): State<AppState>, Path(raw): Path<String>) -> ApiResult<Response> {
    let uuid: PortUuid = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Expected UUID for port_uuid: {raw}")))?;
    app.conductor
        .destroy_port(uuid)
        .await
        .map_err(|e| match e {
            ferric_conductor::ConductorError::NotFound { kind: "Port", .. } => {
                ApiError::not_found(format!("Port {raw} could not be found."))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
