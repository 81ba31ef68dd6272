//! `/v1/nodes/{node}/bios` (API 1.40; registry fields 1.74) and
//! `/v1/nodes/{node}/firmware` (1.86; vendor, model and serial number
//! 1.114): what a node's BIOS and firmware interfaces last read.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{BiosSetting, FirmwareComponent};
use serde_json::{json, Map, Value};

use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::AppState;

const BIOS_INTERFACE: u32 = 40;
const BIOS_REGISTRY: u32 = 74;
const FIRMWARE_INTERFACE: u32 = 86;
const FIRMWARE_IDENTITY: u32 = 114;

const BIOS_DEFAULT_FIELDS: &[&str] = &["name", "value"];
const BIOS_REGISTRY_FIELDS: &[&str] = &[
    "name",
    "value",
    "attribute_type",
    "allowable_values",
    "lower_bound",
    "max_length",
    "min_length",
    "read_only",
    "reset_required",
    "unique",
    "upper_bound",
];
/// What `fields` may name (Ironic's query schema, in its order).
const BIOS_QUERY_FIELDS: &[&str] = &[
    "allowable_values",
    "attribute_type",
    "created_at",
    "lower_bound",
    "links",
    "max_length",
    "min_length",
    "name",
    "node_uuid",
    "read_only",
    "reset_required",
    "unique",
    "updated_at",
    "value",
];

const FIRMWARE_DEFAULT_FIELDS: &[&str] = &[
    "component",
    "initial_version",
    "current_version",
    "last_version_flashed",
];
const FIRMWARE_IDENTITY_FIELDS: &[&str] = &["vendor", "model", "serial_number"];
const FIRMWARE_QUERY_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "component",
    "initial_version",
    "current_version",
    "last_version_flashed",
    "vendor",
    "model",
    "serial_number",
];

/// Below their version these URLs do not exist.
fn exists_from(ctx: &Ctx, minor: u32) -> ApiResult<()> {
    if ctx.version.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

/// `fields=a,b` as given (Ironic's `string_list`), each checked against
/// the query schema's names.
fn take_fields(p: &mut Params, allowed: &[&str]) -> ApiResult<Option<Vec<String>>> {
    let Some(raw) = p.take("fields") else {
        return Ok(None);
    };
    let mut fields: Vec<String> = Vec::new();
    for f in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !allowed.contains(&f) {
            return Err(crate::listing::unknown_field(f, allowed.iter().copied()));
        }
        if !fields.iter().any(|have| have == f) {
            fields.push(f.to_owned());
        }
    }
    Ok(Some(fields))
}

/// Ironic's refusal of query parameters a version's schema lacks.
fn not_in_schema(mut names: Vec<&str>) -> ApiError {
    names.sort_unstable();
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    let verb = if names.len() == 1 { "was" } else { "were" };
    ApiError::bad_request(format!(
        "Schema error: Additional properties are not allowed ({} {verb} unexpected)",
        quoted.join(", ")
    ))
}

fn both_refused() -> ApiError {
    ApiError::bad_request("Can not specify ?detail=True and fields in the same request.")
}

fn bios_value(s: &BiosSetting, field: &str) -> Option<Value> {
    Some(match field {
        "name" => json!(s.name),
        "value" => json!(s.value),
        "attribute_type" => json!(s.attribute_type),
        "allowable_values" => json!(s.allowable_values.clone().unwrap_or_default()),
        "lower_bound" => json!(s.lower_bound),
        "max_length" => json!(s.max_length),
        "min_length" => json!(s.min_length),
        "read_only" => json!(s.read_only),
        "reset_required" => json!(s.reset_required),
        "unique" => json!(s.unique),
        "upper_bound" => json!(s.upper_bound),
        "created_at" => json!(opt_timestamp(&s.created_at)),
        "updated_at" => json!(opt_timestamp(&s.updated_at)),
        _ => return None,
    })
}

/// One setting: its times, the chosen fields, and its links.
fn bios_json(ctx: &Ctx, node: &str, s: &BiosSetting, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for field in ["created_at", "updated_at"].iter().chain(fields) {
        if let Some(v) = bios_value(s, field) {
            out.insert((*field).to_owned(), v);
        }
    }
    out.insert(
        "links".into(),
        ctx.links(&format!("nodes/{node}/bios/{}", s.name)),
    );
    Value::Object(out)
}

/// `GET /v1/nodes/{node}/bios[?detail=&fields=]`.
pub async fn list_bios(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, BIOS_INTERFACE)?;
    let registry = ctx.version.at_least(BIOS_REGISTRY);
    let allowed = if registry { BIOS_QUERY_FIELDS } else { &[][..] };
    let detail_given = p.has("detail");
    let fields_given = p.has("fields");
    if !registry && (detail_given || fields_given) {
        let mut names = Vec::new();
        if detail_given {
            names.push("detail");
        }
        if fields_given {
            names.push("fields");
        }
        return Err(not_in_schema(names));
    }
    let fields = take_fields(&mut p, allowed)?;
    let detail = p.take_bool("detail")?.unwrap_or(false);
    p.finish()?;
    if fields.is_some() && detail {
        return Err(both_refused());
    }
    let node = crate::nodes::load(&app, &ctx, &raw).await?;
    let settings = app.store().list_bios_settings(node.uuid).await?;
    let chosen: Vec<&str> = match (&fields, detail) {
        (Some(f), _) => f.iter().map(String::as_str).collect(),
        (None, true) => BIOS_REGISTRY_FIELDS.to_vec(),
        (None, false) => BIOS_DEFAULT_FIELDS.to_vec(),
    };
    let items: Vec<Value> = settings
        .iter()
        .map(|s| bios_json(&ctx, &raw, s, &chosen))
        .collect();
    Ok(Json(json!({"bios": items})).into_response())
}

/// `GET /v1/nodes/{node}/bios/{setting}`: `{name: setting}`.
pub async fn show_bios(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, name)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, BIOS_INTERFACE)?;
    p.finish()?;
    let node = crate::nodes::load(&app, &ctx, &raw).await?;
    let setting = app
        .store()
        .get_bios_setting(node.uuid, &name)
        .await
        .map_err(|e| match e {
            ferric_db::DbError::NotFound { .. } => ApiError::not_found(format!(
                "Node {} doesn't have a BIOS setting '{name}'",
                node.uuid
            )),
            other => other.into(),
        })?;
    let fields = if ctx.version.at_least(BIOS_REGISTRY) {
        BIOS_REGISTRY_FIELDS
    } else {
        BIOS_DEFAULT_FIELDS
    };
    let body = bios_json(&ctx, &node.uuid.to_string(), &setting, fields);
    let mut out = Map::new();
    out.insert(name, body);
    Ok(Json(Value::Object(out)).into_response())
}

fn firmware_value(c: &FirmwareComponent, field: &str) -> Option<Value> {
    Some(match field {
        "component" => json!(c.component),
        "initial_version" => json!(c.initial_version),
        "current_version" => json!(c.current_version),
        "last_version_flashed" => json!(c.last_version_flashed),
        "vendor" => json!(c.vendor),
        "model" => json!(c.model),
        "serial_number" => json!(c.serial_number),
        "created_at" => json!(c.created_at.as_ref().map(timestamp)),
        "updated_at" => json!(opt_timestamp(&c.updated_at)),
        _ => return None,
    })
}

fn firmware_json(c: &FirmwareComponent, fields: &[&str]) -> Value {
    let mut out = Map::new();
    for field in ["created_at", "updated_at"].iter().chain(fields) {
        if let Some(v) = firmware_value(c, field) {
            out.insert((*field).to_owned(), v);
        }
    }
    Value::Object(out)
}

/// The fields a firmware listing shows: the ones asked for, else the
/// version's defaults; with `detail=True` and no fields, Ironic shows only
/// the times.
fn firmware_fields(
    ctx: &Ctx,
    fields: Option<Vec<String>>,
    detail: Option<bool>,
) -> ApiResult<Vec<String>> {
    let identity = ctx.version.at_least(FIRMWARE_IDENTITY);
    if let (Some(f), false) = (&fields, identity) {
        let mut disallowed: Vec<&str> = f
            .iter()
            .map(String::as_str)
            .filter(|n| FIRMWARE_IDENTITY_FIELDS.contains(n))
            .collect();
        if !disallowed.is_empty() {
            disallowed.sort_unstable();
            return Err(ApiError::bad_request(format!(
                "Fields {} are not allowed in this API version. They require at least API version 1.{FIRMWARE_IDENTITY}.",
                disallowed.join(", ")
            )));
        }
    }
    if fields.is_some() && detail == Some(true) {
        return Err(both_refused());
    }
    Ok(match (fields, detail) {
        (Some(f), _) => f,
        (None, Some(true)) => Vec::new(),
        (None, _) => {
            let mut all: Vec<&str> = FIRMWARE_DEFAULT_FIELDS.to_vec();
            if identity {
                all.extend(FIRMWARE_IDENTITY_FIELDS);
            }
            all.into_iter().map(str::to_owned).collect()
        }
    })
}

/// `GET /v1/nodes/{node}/firmware[?fields=&detail=]`.
pub async fn list_firmware(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    exists_from(&ctx, FIRMWARE_INTERFACE)?;
    let fields = take_fields(&mut p, FIRMWARE_QUERY_FIELDS)?;
    let detail = p.take_bool("detail")?;
    p.finish()?;
    let node = crate::nodes::load(&app, &ctx, &raw).await?;
    let chosen = firmware_fields(&ctx, fields, detail)?;
    let chosen: Vec<&str> = chosen.iter().map(String::as_str).collect();
    let components = app.store().list_firmware_components(node.uuid).await?;
    let items: Vec<Value> = components
        .iter()
        .map(|c| firmware_json(c, &chosen))
        .collect();
    Ok(Json(json!({"firmware": items})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Version;

    fn ctx(minor: u32) -> Ctx {
        Ctx {
            version: Version(minor),
            base: "http://h".into(),
        }
    }

    fn component() -> FirmwareComponent {
        FirmwareComponent {
            component: "bmc".into(),
            initial_version: "1.0".into(),
            current_version: Some("1.1".into()),
            last_version_flashed: Some("1.1".into()),
            model: Some("iDRAC".into()),
            created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0),
            ..FirmwareComponent::default()
        }
    }

    #[test]
    fn firmware_identity_shows_from_1_114() {
        let below = firmware_fields(&ctx(113), None, None).unwrap();
        let shown = firmware_json(
            &component(),
            &below.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let keys: Vec<&String> = shown.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "created_at",
                "updated_at",
                "component",
                "initial_version",
                "current_version",
                "last_version_flashed"
            ]
        );
        let at = firmware_fields(&ctx(114), None, None).unwrap();
        let shown = firmware_json(
            &component(),
            &at.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(shown["model"], "iDRAC");
        assert_eq!(shown["vendor"], Value::Null);
        assert_eq!(shown["created_at"], "2023-11-14T22:13:20+00:00");
    }

    #[test]
    fn firmware_identity_fields_are_refused_below_1_114() {
        let e = firmware_fields(&ctx(86), Some(vec!["vendor".into(), "model".into()]), None)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Fields model, vendor are not allowed in this API version. They require at least API version 1.114."
        );
        assert!(firmware_fields(&ctx(114), Some(vec!["vendor".into()]), None).is_ok());
        assert!(firmware_fields(&ctx(114), None, Some(true))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn bios_settings_show_times_fields_and_links() {
        let mut s = BiosSetting::new("Boot", Some("Uefi".into()));
        s.created_at = chrono::DateTime::from_timestamp(1_700_000_000, 0);
        let v = bios_json(&ctx(74), "n1", &s, BIOS_REGISTRY_FIELDS);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("created_at"));
        assert_eq!(keys.last().map(|k| k.as_str()), Some("links"));
        assert_eq!(v["allowable_values"], json!([]));
        assert_eq!(v["links"][0]["href"], "http://h/v1/nodes/n1/bios/Boot");
    }

    #[test]
    fn schema_refusals_name_the_parameters() {
        assert_eq!(
            not_in_schema(vec!["fields", "detail"]).message,
            "Schema error: Additional properties are not allowed ('detail', 'fields' were unexpected)"
        );
    }
}
