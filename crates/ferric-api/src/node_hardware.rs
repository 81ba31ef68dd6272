//! Node hardware settings changed through the management interface:
//! `PUT /states/boot_mode` and `/states/secure_boot` (API 1.76),
//! `/vmedia` (attach and detach 1.89, read 1.93) and
//! `/management/indicators` (1.63 in Ironic's history, but Ironic serves
//! them at every version, and so does Ferric).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::{BootDevice, Ident, Node, ProvisionState};
use ferric_drivers::{BootMode, IndicatorState, VMEDIA_DEVICES};
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::actions::{accepted, body_object, required_string};
use crate::nodes::load;
use crate::AppState;

const CHANGE_BOOT_MODE: u32 = 76;
const ATTACH_DETACH_VMEDIA: u32 = 89;
const GET_VMEDIA: u32 = 93;

/// Ironic's `UNSTABLE_STATES`: a node moving on its own.
fn transitioning(state: ProvisionState) -> bool {
    use ProvisionState as S;
    matches!(
        state,
        S::Deploying
            | S::DeployWait
            | S::Cleaning
            | S::CleanWait
            | S::Verifying
            | S::Deleting
            | S::Inspecting
            | S::InspectWait
            | S::Adopting
            | S::Rescuing
            | S::RescueWait
            | S::Unrescuing
            | S::Servicing
            | S::ServiceWait
    )
}

/// Ironic checks the version of these two after finding the node.
fn boot_settings_served(ctx: &Ctx) -> ApiResult<()> {
    if !ctx.version.at_least(CHANGE_BOOT_MODE) {
        return Err(ApiError::not_found(format!(
            "This endpoint is supported starting with the API version 1.{CHANGE_BOOT_MODE}"
        )));
    }
    Ok(())
}

fn refuse_transitioning(node: &Node) -> ApiResult<()> {
    if transitioning(node.provision_state) {
        return Err(ApiError::conflict(format!(
            "Node is in {} state. Since node is transitioning, the boot mode will not be set as this may \
             interfere with ongoing changes and result in erroneous modification. Try again later.",
            node.provision_state
        )));
    }
    Ok(())
}

/// `PUT /v1/nodes/{node}/states/boot_mode` `{"target": "uefi"|"bios"}`.
pub async fn set_boot_mode(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(body, &["target"])?;
    let target = required_string(&obj, "target")?;
    let node = load(&app, &ctx, &raw).await?;
    boot_settings_served(&ctx)?;
    let Some(mode) = BootMode::parse(&target) else {
        return Err(ApiError::bad_request(format!(
            "Invalid boot mode {target} requested for node. Allowed boot modes are: bios, uefi"
        )));
    };
    refuse_transitioning(&node)?;
    app.conductor
        .change_boot_mode(&Ident::Uuid(node.uuid), mode)
        .await?;
    Ok(accepted(&ctx, &raw))
}

/// `PUT /v1/nodes/{node}/states/secure_boot` `{"target": true|false}`.
pub async fn set_secure_boot(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(body, &["target"])?;
    let target = match obj.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(crate::context::parse_bool("target", s)?),
        Some(Value::Number(n)) => Some(crate::context::parse_bool("target", &n.to_string())?),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid target: Unrecognized value '{other}', acceptable values are: '0', '1', 'f', 'false', \
                 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'"
            )))
        }
    };
    let node = load(&app, &ctx, &raw).await?;
    boot_settings_served(&ctx)?;
    let Some(on) = target else {
        return Err(ApiError::bad_request(
            "Invalid secure_boot None requested for node. Allowed secure_boot states are: True, False) ",
        ));
    };
    refuse_transitioning(&node)?;
    app.conductor
        .change_secure_boot(&Ident::Uuid(node.uuid), on)
        .await?;
    Ok(accepted(&ctx, &raw))
}

/// Below 1.89 (1.93 for reading) there is no `/vmedia`.
fn vmedia_exists(ctx: &Ctx, minor: u32) -> ApiResult<()> {
    if ctx.version.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::routing(StatusCode::NOT_FOUND, ""))
    }
}

fn vmedia_schema_error(msg: String) -> ApiError {
    ApiError::bad_request(format!("Schema error for vmedia: {msg}"))
}

fn device_names() -> Vec<String> {
    VMEDIA_DEVICES.iter().map(|d| d.to_string()).collect()
}

/// The attach body, checked against Ironic's schema.
fn parse_attach(body: Value) -> ApiResult<(BootDevice, String)> {
    let Value::Object(obj) = &body else {
        return Err(vmedia_schema_error(format!(
            "{body} is not of type 'object'"
        )));
    };
    const ALLOWED: &[&str] = &["device_type", "image_url", "image_download_source"];
    if let Some(extra) = obj.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(vmedia_schema_error(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    for required in ["device_type", "image_url"] {
        if !obj.contains_key(required) {
            return Err(vmedia_schema_error(format!(
                "'{required}' is a required property"
            )));
        }
    }
    let quoted: Vec<String> = device_names().iter().map(|d| format!("'{d}'")).collect();
    let device = match &obj["device_type"] {
        Value::String(s) => s
            .parse::<BootDevice>()
            .ok()
            .filter(|d| VMEDIA_DEVICES.contains(d))
            .ok_or_else(|| {
                vmedia_schema_error(format!("'{s}' is not one of [{}]", quoted.join(", ")))
            })?,
        other => {
            return Err(vmedia_schema_error(format!(
                "{other} is not of type 'string'"
            )))
        }
    };
    let Value::String(url) = &obj["image_url"] else {
        return Err(vmedia_schema_error(format!(
            "{} is not of type 'string'",
            obj["image_url"]
        )));
    };
    match obj.get("image_download_source") {
        None => {}
        Some(Value::String(s)) if ["http", "local", "swift"].contains(&s.as_str()) => {}
        Some(other) => {
            return Err(vmedia_schema_error(format!(
                "{other} is not one of ['http', 'local', 'swift']"
            )))
        }
    }
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if !["http", "https", "nfs", "cifs", "smb"].contains(&scheme) {
        return Err(ApiError::bad_request(format!(
            "Unsupported or missing URL scheme: {scheme}"
        )));
    }
    Ok((device, url.clone()))
}

/// `POST /v1/nodes/{node}/vmedia` `{"device_type", "image_url"}`. The
/// BMC is given the URL itself, whatever `image_download_source` says
/// (Ironic's default, `local`, has the conductor serve a copy).
pub async fn attach_vmedia(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    vmedia_exists(&ctx, ATTACH_DETACH_VMEDIA)?;
    let (device, url) = parse_attach(body)?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .attach_virtual_media(&Ident::Uuid(node.uuid), device, url)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `device_types=cdrom,disk`: each must be a virtual media device.
fn parse_device_types(raw: Option<String>) -> ApiResult<Option<Vec<BootDevice>>> {
    let Some(raw) = raw else { return Ok(None) };
    let names: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let valid = device_names();
    let invalid: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !valid.iter().any(|v| v == n))
        .collect();
    if !invalid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid device type(s) {} (valid are {})",
            invalid.join(", "),
            valid.join(", ")
        )));
    }
    Ok(Some(names.iter().filter_map(|n| n.parse().ok()).collect()))
}

/// `DELETE /v1/nodes/{node}/vmedia[?device_types=]`; openstacksdk sends
/// `device_types` in a JSON body instead, which Ironic takes too.
pub async fn detach_vmedia(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    vmedia_exists(&ctx, ATTACH_DETACH_VMEDIA)?;
    let obj = body_object(body, &["device_types"])?;
    let from_body = match obj.get("device_types") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
        ),
        Some(other) => Some(other.to_string()),
    };
    let devices = parse_device_types(p.take("device_types").or(from_body))?;
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .detach_virtual_media(&Ident::Uuid(node.uuid), devices)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/nodes/{node}/vmedia`: the devices, as a JSON list.
pub async fn get_vmedia(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    vmedia_exists(&ctx, GET_VMEDIA)?;
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let devices = app
        .conductor
        .get_virtual_media(&Ident::Uuid(node.uuid))
        .await?;
    Ok(Json(json!(devices)).into_response())
}

/// `name@component` split as Ironic does, at the first `@`.
fn split_indicator(unique: &str) -> ApiResult<(String, String)> {
    match unique.split_once('@') {
        Some((name, component)) => Ok((name.to_owned(), component.to_owned())),
        None => Err(ApiError::bad_request(format!(
            "Malformed indicator name \"{unique}\""
        ))),
    }
}

/// `GET /v1/nodes/{node}/management/indicators`.
pub async fn list_indicators(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let indicators = app
        .conductor
        .supported_indicators(&Ident::Uuid(node.uuid))
        .await?;
    let items: Vec<Value> = indicators
        .iter()
        .map(|i| {
            let unique = format!("{}@{}", i.name, i.component);
            json!({
                "name": unique,
                "component": i.component,
                "readonly": i.readonly,
                "states": i.states,
                "links": ctx.links(&format!("nodes/{raw}/management/indicators/{unique}")),
            })
        })
        .collect();
    Ok(Json(json!({"indicators": items})).into_response())
}

/// `GET /v1/nodes/{node}/management/indicators/{name@component}`.
pub async fn get_indicator(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, unique)): Path<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let (name, component) = split_indicator(&unique)?;
    let state = app
        .conductor
        .get_indicator_state(&Ident::Uuid(node.uuid), component, name)
        .await?;
    Ok(Json(json!({"state": state})).into_response())
}

/// `PUT /v1/nodes/{node}/management/indicators/{name@component}`
/// `{"state": "on"|"off"|"blinking"}` (Ironic's `indicator_states`).
pub async fn set_indicator(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, unique)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(body, &["state"])?;
    let wanted = required_string(&obj, "state")?;
    let node = load(&app, &ctx, &raw).await?;
    let (name, component) = split_indicator(&unique)?;
    let Some(state) = IndicatorState::parse_target(&wanted) else {
        return Err(ApiError::bad_request(format!(
            "Invalid indicator state {wanted} requested. Allowed states are: BLINKING, OFF, ON"
        )));
    };
    app.conductor
        .set_indicator_state(&Ident::Uuid(node.uuid), component, name, state)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indicator_names_split_at_the_first_at() {
        assert_eq!(
            split_indicator("led@system").unwrap(),
            ("led".to_owned(), "system".to_owned())
        );
        assert_eq!(split_indicator("a@b@c").unwrap().1, "b@c");
        assert_eq!(
            split_indicator("led").unwrap_err().message,
            "Malformed indicator name \"led\""
        );
    }

    #[test]
    fn attach_bodies_follow_ironics_schema() {
        let ok =
            parse_attach(json!({"device_type": "cdrom", "image_url": "http://x/a.iso"})).unwrap();
        assert_eq!(ok.0, BootDevice::Cdrom);
        assert_eq!(
            parse_attach(json!({"image_url": "http://x"}))
                .unwrap_err()
                .message,
            "Schema error for vmedia: 'device_type' is a required property"
        );
        assert_eq!(
            parse_attach(json!({"device_type": "pxe", "image_url": "http://x"}))
                .unwrap_err()
                .message,
            "Schema error for vmedia: 'pxe' is not one of ['disk', 'cdrom', 'floppy']"
        );
        assert_eq!(
            parse_attach(json!({"device_type": "cdrom", "image_url": "file:///a.iso"}))
                .unwrap_err()
                .message,
            "Unsupported or missing URL scheme: file"
        );
        assert_eq!(
            parse_attach(json!({"device_type": "cdrom", "image_url": "a.iso"}))
                .unwrap_err()
                .message,
            "Unsupported or missing URL scheme: "
        );
    }

    #[test]
    fn device_types_are_checked() {
        assert_eq!(parse_device_types(None).unwrap(), None);
        assert_eq!(
            parse_device_types(Some("cdrom,disk".into())).unwrap(),
            Some(vec![BootDevice::Cdrom, BootDevice::Disk])
        );
        assert_eq!(
            parse_device_types(Some("cdrom,pxe".into()))
                .unwrap_err()
                .message,
            "Invalid device type(s) pxe (valid are disk, cdrom, floppy)"
        );
    }
}
