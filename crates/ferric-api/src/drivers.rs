//! `/v1/drivers`: the hardware types this Ferric serves.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::InterfaceKind;
use ferric_drivers::HardwareType;
use serde_json::{json, Map, Value};

use crate::context::{Ctx, Params};
use crate::error::{ApiError, ApiResult};
use crate::version::at;
use crate::AppState;

/// Interface kinds a driver listing shows, with the version of each.
const KINDS: &[(InterfaceKind, u32)] = &[
    (InterfaceKind::Boot, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Console, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Deploy, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Inspect, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Management, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Network, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Power, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Raid, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Vendor, at::DYNAMIC_DRIVERS),
    (InterfaceKind::Storage, 33),
    (InterfaceKind::Rescue, at::RESCUE),
    (InterfaceKind::Bios, 40),
    (InterfaceKind::Firmware, 86),
];

fn driver_json(
    app: &AppState,
    ctx: &Ctx,
    hw: &HardwareType,
    detail: bool,
    fields: Option<&[String]>,
) -> Value {
    let mut out = Map::new();
    // Like Ironic's `sanitize_dict`, a field selection always keeps `links`.
    let mut put = |key: String, value: Value| {
        if key == "links" || fields.is_none_or(|f| f.contains(&key)) {
            out.insert(key, value);
        }
    };
    put("name".into(), json!(hw.name));
    put("hosts".into(), json!([app.conductor.host()]));
    put("links".into(), ctx.links(&format!("drivers/{}", hw.name)));
    if ctx.version.at_least(at::LINKS_NODESTATES_DRIVERPROPERTIES) {
        put(
            "properties".into(),
            ctx.links(&format!("drivers/{}/properties", hw.name)),
        );
    }
    if ctx.version.at_least(at::DYNAMIC_DRIVERS) {
        put("type".into(), json!("dynamic"));
        if detail {
            let registry = app.conductor.registry();
            for (kind, min) in KINDS {
                if ctx.version.at_least(*min) {
                    put(
                        format!("default_{kind}_interface"),
                        json!(registry.default_interface(hw, *kind)),
                    );
                    put(
                        format!("enabled_{kind}_interfaces"),
                        json!(registry.enabled_interfaces(hw, *kind)),
                    );
                }
            }
        }
    }
    Value::Object(out)
}

pub async fn list(State(app): State<AppState>, ctx: Ctx, mut p: Params) -> ApiResult<Response> {
    let kind = p.take("type");
    let detail = p.take_bool("detail")?;
    let fields = p.take("fields");
    p.finish()?;
    if (kind.is_some() || detail.is_some()) && !ctx.version.at_least(at::DYNAMIC_DRIVERS) {
        return Err(ApiError::needs_version(at::DYNAMIC_DRIVERS));
    }
    let fields = parse_fields(&ctx, fields, detail)?;
    let classic = match kind.as_deref() {
        None | Some("dynamic") => false,
        Some("classic") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "\"type\" filter must be one of \"classic\" or \"dynamic\", if specified.",
            ))
        }
    };
    let drivers: Vec<Value> = if classic {
        Vec::new()
    } else {
        app.conductor
            .registry()
            .available_hardware_types()
            .map(|hw| driver_json(&app, &ctx, hw, detail == Some(true), fields.as_deref()))
            .collect()
    };
    Ok(Json(json!({"drivers": drivers})).into_response())
}

fn parse_fields(
    ctx: &Ctx,
    fields: Option<String>,
    detail: Option<bool>,
) -> ApiResult<Option<Vec<String>>> {
    let Some(raw) = fields else {
        return Ok(None);
    };
    if !ctx.version.at_least(at::DRIVER_FIELDS) {
        return Err(ApiError::not_acceptable());
    }
    if detail == Some(true) {
        return Err(ApiError::bad_request(
            "Can not specify ?detail=True and fields in the same request.",
        ));
    }
    let fields: Vec<String> = raw
        .split(',')
        .map(|f| f.trim().to_ascii_lowercase())
        .filter(|f| !f.is_empty())
        .collect();
    let allowed = field_names();
    if let Some(bad) = fields.iter().find(|f| !allowed.contains(f)) {
        return Err(crate::listing::unknown_field(
            bad,
            allowed.iter().map(String::as_str),
        ));
    }
    Ok(Some(fields))
}

/// Every field a driver has, in the order of Ironic's schema.
fn field_names() -> Vec<String> {
    let mut names: Vec<String> = ["hosts", "links", "name"].map(String::from).into();
    for (kind, _) in KINDS {
        names.push(format!("default_{kind}_interface"));
        names.push(format!("enabled_{kind}_interfaces"));
    }
    names.extend(["properties", "type"].map(String::from));
    names
}

pub(crate) fn find<'a>(app: &'a AppState, name: &str) -> ApiResult<&'a HardwareType> {
    app.conductor
        .registry()
        .available_hardware_types()
        .find(|hw| hw.name == name)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "Could not find the following driver(s) or hardware type(s): {name}."
            ))
        })
}

/// [`find`] for the calls Ironic sends to a conductor of the driver
/// (properties, vendor passthru, RAID): its RPC layer words the refusal.
pub(crate) fn find_hosted<'a>(app: &'a AppState, name: &str) -> ApiResult<&'a HardwareType> {
    find(app, name).map_err(|_| ApiError::not_found(format!("The driver '{name}' is unknown.")))
}

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    mut p: Params,
) -> ApiResult<Response> {
    let fields = p.take("fields");
    p.finish()?;
    let fields = parse_fields(&ctx, fields, None)?;
    let hw = find(&app, &name)?;
    Ok(Json(driver_json(&app, &ctx, hw, true, fields.as_deref())).into_response())
}

pub async fn properties(
    State(app): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let hw = find_hosted(&app, &name)?;
    Ok(Json(json!(app.conductor.registry().properties(hw))).into_response())
}
