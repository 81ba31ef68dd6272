//! `/v1/volume` (from 1.32): a node's volume connectors and targets, also
//! reached as `/v1/nodes/{node}/volume`. What the two resources share is
//! here: the version gate, the scope of a request, list parameters and the
//! body schema checks.

pub mod connectors;
pub mod handlers;
pub mod targets;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{Ident, NodeUuid};
use serde_json::{json, Map, Value};

use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::listing::ListArgs;
use crate::version::at;
use crate::AppState;

/// Below 1.32 the volume root answers as Ironic's version decorator does.
fn require_root(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::VOLUME) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "The API is not supported for this version",
        ))
    }
}

/// Below 1.32 anything under the volume root is not routed at all.
pub(crate) fn require(ctx: &Ctx) -> ApiResult<()> {
    if ctx.version.at_least(at::VOLUME) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

/// Ironic checks a node named in the URL before anything else.
fn check_node_segment(raw: &str) -> ApiResult<()> {
    if ferric_core::ids::is_uuid_like(raw) || ferric_core::ids::is_valid_logical_name(raw) {
        Ok(())
    } else {
        Err(ApiError::routing(
            StatusCode::BAD_REQUEST,
            format!("Expected UUID or name for node: {raw}"),
        ))
    }
}

/// Where a request came in.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// `/v1/volume/...`
    Top,
    /// `/v1/nodes/{node}/volume/...`: lists only; anything else there is
    /// refused as a malformed URI once the object is found.
    Node(String),
}

impl Scope {
    pub(crate) fn of_node(ctx: &Ctx, raw: String) -> ApiResult<Scope> {
        check_node_segment(&raw)?;
        require(ctx)?;
        Ok(Scope::Node(raw))
    }

    /// Ironic serves single objects only at the top.
    pub(crate) fn refuse_nested(&self) -> ApiResult<()> {
        match self {
            Scope::Top => Ok(()),
            Scope::Node(_) => Err(ApiError::bad_request("Malformed request URI.")),
        }
    }
}

fn root_json(ctx: &Ctx, prefix: &str) -> Value {
    json!({
        "links": ctx.links(&format!("{prefix}volume/")),
        "connectors": ctx.links(&format!("{prefix}volume/connectors")),
        "targets": ctx.links(&format!("{prefix}volume/targets")),
    })
}

pub async fn root(ctx: Ctx, p: Params) -> ApiResult<Response> {
    require_root(&ctx)?;
    p.finish()?;
    Ok(Json(root_json(&ctx, "")).into_response())
}

/// `/v1/nodes/{node}/volume`: links only; Ironic does not look the node up.
pub async fn node_root(ctx: Ctx, Path(node): Path<String>, p: Params) -> ApiResult<Response> {
    check_node_segment(&node)?;
    require_root(&ctx)?;
    p.finish()?;
    Ok(Json(root_json(&ctx, &format!("nodes/{node}/"))).into_response())
}

/// The parameters of a volume listing, checked in Ironic's order.
pub(crate) struct VolumeList {
    pub node: Option<NodeUuid>,
    pub args: ListArgs,
}

/// What a resource tells [`take_list`] about itself.
pub(crate) struct ListSpec {
    /// Every field, sorted: the `fields` schema.
    pub fields: &'static [&'static str],
    pub default_fields: &'static [&'static str],
    pub sortable: &'static [&'static str],
    pub unsortable: &'static [&'static str],
}

pub(crate) async fn take_list(
    app: &AppState,
    ctx: &Ctx,
    mut p: Params,
    scope: &Scope,
    spec: &ListSpec,
) -> ApiResult<VolumeList> {
    let node_param = p.take("node");
    if let Some(n) = &node_param {
        if !ferric_core::ids::is_uuid_like(n) && !ferric_core::ids::is_valid_logical_name(n) {
            return Err(ApiError::bad_request(format!(
                "Expected UUID or name for node: {n}"
            )));
        }
    }
    let marker = p.take("marker");
    if let Some(m) = &marker {
        if !ferric_core::ids::is_uuid_like(m) {
            return Err(ApiError::bad_request(format!(
                "Expected UUID for marker: {m}"
            )));
        }
    }
    let detail = match p.take("detail") {
        Some(v) => crate::context::parse_bool("detail", &v)?,
        None => false,
    };
    let fields = crate::listing::take_fields(ctx, &mut p)?;
    if let Some(bad) = fields
        .iter()
        .flatten()
        .find(|f| !spec.fields.contains(&f.as_str()))
    {
        return Err(crate::listing::unknown_field(
            bad,
            spec.fields.iter().copied(),
        ));
    }
    let sort_dir = p.take("sort_dir");
    let sort_dir = match sort_dir.as_deref() {
        None | Some("asc") => ferric_db::SortDir::Asc,
        Some("desc") => ferric_db::SortDir::Desc,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Schema error: '{other}' is not one of ['asc', 'desc']"
            )))
        }
    };
    let mut args = ListArgs::take(ctx, &mut p, spec.sortable, spec.unsortable, |_| None)?;
    p.finish()?;
    let parent = match scope {
        Scope::Node(raw) => Some(parent_node(app, raw).await?),
        Scope::Top => None,
    };
    if fields.is_some() && detail {
        return Err(ApiError::bad_request(
            "Can't fetch a subset of fields with 'detail' set",
        ));
    }
    args.sort_dir = sort_dir;
    args.marker = marker;
    args.detail = detail.then_some(true);
    args.fields = match fields {
        Some(f) => Some(f),
        None if !detail => Some(
            spec.default_fields
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
        ),
        None => None,
    };
    let node = match (parent, node_param) {
        (Some(uuid), _) => Some(uuid),
        (None, Some(raw)) => Some(crate::nodes::load(app, ctx, &raw).await?.uuid),
        (None, None) => None,
    };
    Ok(VolumeList { node, args })
}

/// A node named in a volume URL: Ironic looks it up by UUID only.
async fn parent_node(app: &AppState, raw: &str) -> ApiResult<NodeUuid> {
    let missing = || ApiError::not_found(format!("Node {raw} could not be found."));
    let uuid: NodeUuid = raw.parse().map_err(|_| missing())?;
    match app.store().get_node(&Ident::Uuid(uuid)).await {
        Ok(n) => Ok(n.uuid),
        Err(ferric_db::DbError::NotFound { .. }) => Err(missing()),
        Err(e) => Err(e.into()),
    }
}

/// The JSON types Ironic's volume schemas use.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str,
    StrOrNull,
    ObjOrNull,
    Int,
}

impl Ty {
    fn admits(self, v: &Value) -> bool {
        match self {
            Ty::Str => v.is_string(),
            Ty::StrOrNull => v.is_string() || v.is_null(),
            Ty::ObjOrNull => v.is_object() || v.is_null(),
            // JSON Schema's integer: a number without a fractional part.
            Ty::Int => v.as_i64().is_some() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        }
    }

    fn names(self) -> &'static str {
        match self {
            Ty::Str => "'string'",
            Ty::StrOrNull => "'string', 'null'",
            Ty::ObjOrNull => "'object', 'null'",
            Ty::Int => "'integer'",
        }
    }
}

/// A body checked against an object schema as jsonschema reports it
/// (`Schema error for {what}: ...`): missing required keys first, then
/// unknown keys, then the type of each property in the schema's order.
/// Then the UUID-valued keys are checked as Ironic's validators do.
pub(crate) fn check_schema<'a>(
    what: &str,
    body: &'a Value,
    props: &[(&str, Ty)],
    required: &[&str],
) -> ApiResult<&'a Map<String, Value>> {
    let err = |msg: String| ApiError::bad_request(format!("Schema error for {what}: {msg}"));
    let Value::Object(obj) = body else {
        return Err(err(format!(
            "{} is not of type 'object'",
            ferric_core::python_repr(body)
        )));
    };
    if let Some(missing) = required.iter().find(|k| !obj.contains_key(**k)) {
        return Err(err(format!("'{missing}' is a required property")));
    }
    let extra: Vec<String> = obj
        .keys()
        .filter(|k| !props.iter().any(|(p, _)| p == k))
        .map(|k| ferric_core::python_repr(&json!(k)))
        .collect();
    if !extra.is_empty() {
        let verb = if extra.len() == 1 { "was" } else { "were" };
        return Err(err(format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            extra.join(", ")
        )));
    }
    for (key, ty) in props {
        if let Some(v) = obj.get(*key) {
            if !ty.admits(v) {
                return Err(err(format!(
                    "{} is not of type {}",
                    ferric_core::python_repr(v),
                    ty.names()
                )));
            }
        }
    }
    for key in ["node_uuid", "uuid"] {
        if let Some(Value::String(s)) = obj.get(key) {
            if !ferric_core::ids::is_uuid_like(s) {
                return Err(ApiError::bad_request(format!(
                    "Expected UUID for {key}: {s}"
                )));
            }
        }
    }
    Ok(obj)
}

/// The node a new volume object names, or Ironic's "invalid input".
pub(crate) async fn node_of_body(app: &AppState, raw: &str) -> ApiResult<ferric_core::Node> {
    let invalid = || {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute node_uuid. Value: '{raw}'. "
        ))
    };
    let uuid: NodeUuid = raw.parse().map_err(|_| invalid())?;
    match app.store().get_node(&Ident::Uuid(uuid)).await {
        Ok(n) => Ok(n),
        Err(ferric_db::DbError::NotFound { .. }) => Err(invalid()),
        Err(e) => Err(e.into()),
    }
}

/// The node a patch moves a volume object to (the last `node_uuid` it
/// sets), checked as Ironic checks it: a UUID of a node of the same owner.
pub(crate) async fn node_of_patch(
    app: &AppState,
    current: &ferric_core::Node,
    ops: &[crate::patch::PatchOp],
) -> ApiResult<ferric_core::Node> {
    let values: Vec<&Value> = ops
        .iter()
        .filter(|o| o.path == "/node_uuid" && o.op != crate::patch::Op::Remove)
        .filter_map(|o| o.value.as_ref())
        .collect();
    for v in &values {
        let uuid_like = v.as_str().is_some_and(ferric_core::ids::is_uuid_like);
        if !uuid_like {
            let shown = v
                .as_str()
                .map_or_else(|| ferric_core::python_repr(v), str::to_owned);
            return Err(ApiError::bad_request(format!(
                "Expected a UUID for node_uuid, but received {shown}."
            )));
        }
    }
    let Some(first) = values.first().and_then(|v| v.as_str()) else {
        return Ok(current.clone());
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "Unable to apply the requested node_uuid '{first}'. Requested value was invalid."
        ))
    };
    let uuid: NodeUuid = first.parse().map_err(|_| invalid())?;
    let node = app
        .store()
        .get_node(&Ident::Uuid(uuid))
        .await
        .map_err(|_| invalid())?;
    if node.owner != current.owner {
        return Err(invalid());
    }
    Ok(node)
}

/// A patched document with the keys outside the schema dropped, as
/// Ironic prunes it before checking it.
pub(crate) fn prune(doc: Value, props: &[(&str, Ty)]) -> Value {
    match doc {
        Value::Object(mut obj) => {
            obj.retain(|k, _| props.iter().any(|(p, _)| p == k));
            Value::Object(obj)
        }
        other => other,
    }
}

/// A JSON schema integer as stored.
pub(crate) fn as_int(v: &Value) -> i64 {
    #[allow(clippy::cast_possible_truncation)]
    v.as_i64()
        .unwrap_or_else(|| v.as_f64().map_or(0, |f| f as i64))
}

/// A string known to be present (the schema required it).
pub(crate) fn as_str(obj: &Map<String, Value>, key: &str) -> String {
    obj.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// An `['object', 'null']` value: null is stored as `{}`.
pub(crate) fn as_obj(obj: &Map<String, Value>, key: &str) -> ferric_core::JsonObject {
    obj.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROPS: &[(&str, Ty)] = &[
        ("connector_id", Ty::Str),
        ("extra", Ty::ObjOrNull),
        ("node_uuid", Ty::Str),
        ("type", Ty::Str),
        ("uuid", Ty::StrOrNull),
    ];
    const REQUIRED: &[&str] = &["connector_id", "node_uuid", "type"];

    fn err(body: Value) -> String {
        check_schema("connector", &body, PROPS, REQUIRED)
            .unwrap_err()
            .message
    }

    #[test]
    fn schema_errors_read_as_jsonschemas() {
        assert_eq!(
            err(json!([1])),
            "Schema error for connector: [1] is not of type 'object'"
        );
        assert_eq!(
            err(json!({"node_uuid": "x", "connector_id": "c"})),
            "Schema error for connector: 'type' is a required property"
        );
        assert_eq!(
            err(json!({"node_uuid": "x", "connector_id": "c", "type": "iqn", "a": 1, "b": 2})),
            "Schema error for connector: Additional properties are not allowed ('a', 'b' were unexpected)"
        );
        assert_eq!(
            err(json!({"node_uuid": "x", "connector_id": 5, "type": "iqn"})),
            "Schema error for connector: 5 is not of type 'string'"
        );
        assert_eq!(
            err(json!({"node_uuid": "x", "connector_id": "c", "type": "iqn", "extra": "no"})),
            "Schema error for connector: 'no' is not of type 'object', 'null'"
        );
        assert_eq!(
            err(json!({"node_uuid": "x", "connector_id": "c", "type": "iqn"})),
            "Expected UUID for node_uuid: x"
        );
    }

    #[test]
    fn integers_are_json_schemas() {
        assert!(Ty::Int.admits(&json!(3)));
        assert!(Ty::Int.admits(&json!(3.0)));
        assert!(!Ty::Int.admits(&json!(3.5)));
        assert!(!Ty::Int.admits(&json!(true)));
        assert!(!Ty::Int.admits(&json!("3")));
    }
}
