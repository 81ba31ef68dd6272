//! Node sub-resources that act: `/states/*`, `/maintenance`,
//! `/management/*`, `/validate`, `/traits`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_conductor::{
    ConductorError, PowerRequest, ProvisionAction, ProvisionRequest, ValidationResult,
};
use ferric_core::{BootDevice, Ident, JsonObject, Node, PowerState, ProvisionState};
use serde_json::{json, Map, Value};

use super::load;
use super::view::{opt_timestamp, shown_state};
use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::step_schema::STEP_INTERFACES;
use crate::version::at;
use crate::AppState;

pub(crate) fn accepted(ctx: &Ctx, raw: &str) -> Response {
    let location = format!("{}/v1/nodes/{raw}/states", ctx.base);
    (StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response()
}

/// A request body's keys, refusing unknown ones as Ironic does.
pub(crate) fn body_object(body: Value, allowed: &[&str]) -> ApiResult<Map<String, Value>> {
    let Value::Object(obj) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object"));
    };
    let mut unexpected: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        return Err(ApiError::bad_request(format!(
            "Unexpected arguments: {}",
            unexpected.join(", ")
        )));
    }
    Ok(obj)
}

pub(crate) fn required_string(obj: &Map<String, Value>, key: &str) -> ApiResult<String> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(ApiError::bad_request(format!(
            "Missing mandatory parameter: {key}"
        ))),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Expected string for {key}: {other}"
        ))),
    }
}

pub async fn states(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let n = load(&app, &ctx, &raw).await?;
    let mut out = json!({
        "console_enabled": n.console_enabled,
        "last_error": n.last_error,
        "power_state": n.power_state,
        "provision_state": shown_state(n.provision_state, &ctx),
        "target_power_state": n.target_power_state,
        "target_provision_state": n.target_provision_state,
        "provision_updated_at": opt_timestamp(&n.provision_updated_at),
    });
    if ctx.version.at_least(at::RAID_CONFIG) {
        out["raid_config"] = Value::Object(n.raid_config.clone());
        out["target_raid_config"] = Value::Object(n.target_raid_config.clone());
    }
    if ctx.version.at_least(75) {
        out["boot_mode"] = json!(n.boot_mode);
        out["secure_boot"] = json!(n.secure_boot);
    }
    Ok(Json(out).into_response())
}

pub async fn power(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(body, &["target", "timeout"])?;
    let target = required_string(&obj, "target")?;
    let timeout = match obj.get("timeout") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("Expected an integer for timeout: {v}"))
        })?),
    };
    let node = load(&app, &ctx, &raw).await?;
    let soft = matches!(target.as_str(), "soft rebooting" | "soft power off");
    if (soft || timeout.is_some_and(|t| t != 0)) && !ctx.version.at_least(at::SOFT_POWER_OFF) {
        return Err(ApiError::not_acceptable());
    }
    if timeout.is_some_and(|t| t < 1) {
        return Err(ApiError::bad_request("timeout has to be positive integer"));
    }
    let refuse = |state: String| {
        ApiError::bad_request(format!(
            "The requested action \"{target}\" can not be performed on node \"{raw}\" while it is in state \"{state}\"."
        ))
    };
    let wanted: PowerState = match target.parse() {
        Ok(PowerState::Error) | Err(_) => {
            return Err(refuse(
                node.power_state.map_or("None".into(), |p| p.to_string()),
            ));
        }
        Ok(p) => p,
    };
    if matches!(
        node.provision_state,
        ProvisionState::Cleaning | ProvisionState::CleanWait
    ) {
        return Err(refuse(node.provision_state.to_string()));
    }
    if node.disable_power_off && matches!(wanted, PowerState::Off | PowerState::SoftPowerOff) {
        return Err(ApiError::conflict(format!(
            "Failed to set node power state to {target}."
        )));
    }
    let req = PowerRequest {
        target: wanted,
        timeout: timeout
            .and_then(|t| u64::try_from(t).ok())
            .map(std::time::Duration::from_secs),
    };
    app.conductor
        .change_power_state(&Ident::Uuid(node.uuid), req)
        .await?;
    Ok(accepted(&ctx, &raw))
}

/// Verbs and the microversion each appeared in.
fn verb_version(target: &str) -> u32 {
    match target {
        "deploy" => at::DEPLOY_UNDEPLOY_VERBS,
        "manage" | "provide" => at::MANAGEABLE_STATE,
        "inspect" => at::INSPECT_STATE,
        "abort" => at::ABORT_VERB,
        "clean" => at::MANUAL_CLEAN,
        "adopt" => at::ADOPT_VERB,
        "rescue" | "unrescue" => at::RESCUE,
        "unhold" => at::UNHOLD_VERB,
        "service" => at::SERVICE,
        _ => 1,
    }
}

pub async fn provision(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(
        body,
        &[
            "target",
            "configdrive",
            "clean_steps",
            "deploy_steps",
            "rescue_password",
            "disable_ramdisk",
            "service_steps",
            "runbook",
        ],
    )?;
    let target = required_string(&obj, "target")?;
    let node = load(&app, &ctx, &raw).await?;
    if !ctx.version.at_least(verb_version(&target)) {
        return Err(ApiError::not_acceptable());
    }
    if matches!(target.as_str(), "active" | "rebuild") && node.maintenance {
        return Err(ConductorError::NodeInMaintenance {
            op: "provisioning",
            node: node.uuid.to_string(),
        }
        .into());
    }
    let runbook = match obj.get("runbook") {
        None | Some(Value::Null) => None,
        Some(Value::String(ident)) => {
            ctx.require(crate::runbooks::RUNBOOKS)?;
            Some(crate::runbooks::load(&app, ident).await?)
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Expected types <class 'NoneType'>, <class 'str'> for runbook: {}",
                ferric_core::python_repr(other)
            )))
        }
    };
    let action = provision_action(&ctx, &node, &target, &obj, runbook.as_ref())?;
    let req = ProvisionRequest { target, action };
    app.conductor
        .provision(&Ident::Uuid(node.uuid), req)
        .await?;
    Ok(accepted(&ctx, &raw))
}

fn steps_of(
    obj: &Map<String, Value>,
    key: &str,
    deploy: bool,
) -> ApiResult<Option<Vec<JsonObject>>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| check_step(key, item, deploy))
            .collect::<ApiResult<Vec<_>>>()
            .map(|v| (!v.is_empty()).then_some(v)),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid {key}: {other} is not of type 'array'"
        ))),
    }
}

/// Ironic's step schema: interface, step, args (and priority for deploy).
fn check_step(key: &str, item: &Value, deploy: bool) -> ApiResult<JsonObject> {
    let bad = |msg: String| ApiError::bad_request(format!("Invalid {key}: {msg}"));
    let Value::Object(step) = item else {
        return Err(bad(format!("{item} is not of type 'object'")));
    };
    let allowed: &[&str] = if deploy {
        &["interface", "step", "args", "priority"]
    } else {
        &[
            "interface",
            "step",
            "args",
            "order",
            "execute_on_child_nodes",
            "limit_child_node_execution",
        ]
    };
    if let Some(extra) = step.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    match step.get("interface") {
        Some(Value::String(i)) if STEP_INTERFACES.contains(&i.as_str()) => {}
        Some(other) => return Err(bad(format!("{other} is not one of {STEP_INTERFACES:?}"))),
        None => return Err(bad("'interface' is a required property".into())),
    }
    match step.get("step") {
        Some(Value::String(s)) if !s.is_empty() => {}
        Some(other) => return Err(bad(format!("{other} is too short"))),
        None => return Err(bad("'step' is a required property".into())),
    }
    if let Some(args) = step.get("args") {
        if !args.is_object() {
            return Err(bad(format!("{args} is not of type 'object'")));
        }
    }
    if deploy {
        for required in ["args", "priority"] {
            if !step.contains_key(required) {
                return Err(bad(format!("'{required}' is a required property")));
            }
        }
        let priority_ok = match &step["priority"] {
            Value::Number(n) => n.as_i64().is_some_and(|p| p >= 0),
            Value::String(s) => s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty(),
            _ => false,
        };
        if !priority_ok {
            return Err(bad(format!(
                "{} is not valid under any of the given schemas",
                step["priority"]
            )));
        }
    }
    Ok(step.clone())
}

/// Checks a provision request's body for its verb, as Ironic's API does,
/// and builds the typed action.
fn provision_action(
    ctx: &Ctx,
    node: &Node,
    target: &str,
    obj: &Map<String, Value>,
    runbook: Option<&ferric_core::Runbook>,
) -> ApiResult<ProvisionAction> {
    let configdrive = obj
        .get("configdrive")
        .filter(|v| crate::mask::truthy(v))
        .cloned();
    if let Some(cd) = &configdrive {
        check_configdrive(ctx, target, cd)?;
    }
    let mut disable_ramdisk = match obj.get("disable_ramdisk") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid disable_ramdisk: {other}"
            )))
        }
    };
    let mut clean_steps = steps_of(obj, "clean_steps", false)?;
    let mut service_steps = steps_of(obj, "service_steps", false)?;
    if let Some(rb) = runbook {
        let from_runbook = crate::runbooks::steps_for_node(
            ctx,
            node,
            target,
            rb,
            clean_steps.take(),
            service_steps.take(),
        )?;
        clean_steps = from_runbook.clean_steps;
        service_steps = from_runbook.service_steps;
        // Ironic takes the runbook's value as if the request had given it.
        disable_ramdisk = Some(from_runbook.disable_ramdisk);
    }
    let only_clean_or_service = || {
        ApiError::bad_request(
            "\"runbooks\" is only valid when setting target provision state to any of ['clean', 'service']",
        )
    };
    if disable_ramdisk.is_some() {
        match target {
            "clean" if !ctx.version.at_least(at::CLEAN_DISABLE_RAMDISK) => {
                return Err(disable_ramdisk_406())
            }
            "service" if !ctx.version.at_least(at::SERVICE_DISABLE_RAMDISK) => {
                return Err(disable_ramdisk_406())
            }
            "clean" | "service" => {}
            _ => {
                return Err(ApiError::bad_request(
                    "disable_ramdisk is supported only with manual cleaning or servicing",
                ))
            }
        }
    }
    if clean_steps.is_some() && target != "clean" {
        if runbook.is_some() {
            return Err(only_clean_or_service());
        }
        return Err(ApiError::bad_request(
            "\"clean_steps\" is only valid when setting target provision state to clean",
        ));
    }
    let deploy_steps = steps_of(obj, "deploy_steps", true)?;
    if deploy_steps.is_some() {
        if !ctx.version.at_least(at::DEPLOY_STEPS) {
            return Err(ApiError::needs_version(at::DEPLOY_STEPS));
        }
        if !matches!(target, "active" | "rebuild" | "deploy") {
            return Err(ApiError::bad_request(
                "\"deploy_steps\" is only valid when setting target provision state to active or rebuild",
            ));
        }
    }
    let rescue_password = match obj.get("rescue_password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Expected string for rescue_password: {other}"
            )))
        }
    };
    if rescue_password.is_some() && target != "rescue" {
        return Err(ApiError::bad_request(
            "\"rescue_password\" is only valid when setting target provision state to rescue",
        ));
    }
    if target == "abort" {
        if node.provision_state == ProvisionState::InspectWait
            && !ctx.version.at_least(at::INSPECTION_ABORT)
        {
            return Err(ApiError::not_acceptable());
        }
        if node.provision_state == ProvisionState::DeployWait
            && !ctx.version.at_least(at::DEPLOYWAIT_ABORT)
        {
            return Err(ApiError::not_acceptable());
        }
    }
    if service_steps.is_some() && target != "service" {
        if runbook.is_some() {
            return Err(only_clean_or_service());
        }
        return Err(ApiError::bad_request(
            "\"service_steps\" is only valid when setting target provision state to service",
        ));
    }
    let steps = deploy_steps.unwrap_or_default();
    Ok(match target {
        "active" | "deploy" => ProvisionAction::Deploy { configdrive, deploy_steps: steps },
        "rebuild" => ProvisionAction::Rebuild { configdrive, deploy_steps: steps },
        "deleted" | "undeploy" => ProvisionAction::Undeploy,
        "manage" => ProvisionAction::Manage,
        "provide" => ProvisionAction::Provide,
        "inspect" => ProvisionAction::Inspect,
        "abort" => ProvisionAction::Abort,
        "adopt" => ProvisionAction::Adopt,
        "unrescue" => ProvisionAction::Unrescue,
        "unhold" => ProvisionAction::Unhold,
        "clean" => ProvisionAction::Clean {
            clean_steps: clean_steps.ok_or_else(|| {
                ApiError::bad_request("\"clean_steps\" is required when setting target provision state to clean")
            })?,
            disable_ramdisk,
        },
        "service" => ProvisionAction::Service {
            service_steps: service_steps.ok_or_else(|| {
                ApiError::bad_request("\"service_steps\" is required when setting target provision state to service")
            })?,
            disable_ramdisk,
        },
        "rescue" => match rescue_password.filter(|p| !p.trim().is_empty()) {
            Some(password) => ProvisionAction::Rescue {
                password: password.into(),
            },
            None => {
                return Err(ApiError::bad_request(
                    "A non-empty \"rescue_password\" is required when setting target provision state to rescue",
                ))
            }
        },
        other => {
            return Err(ApiError::bad_request(format!(
                "The requested action \"{other}\" can not be performed on node \"{}\" while it is in state \"{}\".",
                node.uuid, node.provision_state
            )))
        }
    })
}

fn disable_ramdisk_406() -> ApiError {
    ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        "disable_ramdisk is not acceptable in this API version",
    )
}

fn check_configdrive(ctx: &Ctx, target: &str, cd: &Value) -> ApiResult<()> {
    let rebuild_ok = ctx.version.at_least(at::REBUILD_CONFIG_DRIVE);
    if !(target == "active" || (target == "rebuild" && rebuild_ok)) {
        let allowed = if rebuild_ok {
            "active, rebuild"
        } else {
            "active"
        };
        return Err(ApiError::bad_request(format!(
            "Adding a config drive is only supported when setting provision state to {allowed}"
        )));
    }
    match cd {
        Value::Object(obj) => {
            if !ctx.version.at_least(at::BUILD_CONFIGDRIVE) {
                return Err(ApiError::bad_request(
                    "Providing a JSON object for configdrive is only supported starting with API version 1.56",
                ));
            }
            if obj.contains_key("vendor_data") && !ctx.version.at_least(at::CONFIGDRIVE_VENDOR_DATA)
            {
                return Err(ApiError::bad_request(
                    "Providing vendor_data in configdrive is only supported starting with API version 1.59",
                ));
            }
            let allowed = ["meta_data", "network_data", "user_data", "vendor_data"];
            if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(ApiError::bad_request(format!(
                    "Invalid configdrive format: Additional properties are not allowed ('{extra}' was unexpected)"
                )));
            }
            Ok(())
        }
        Value::String(s) => {
            let base64ish = s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=\n\r\t ".contains(&b));
            if s.contains("://") || base64ish {
                Ok(())
            } else {
                Err(ApiError::bad_request(
                    "Invalid configdrive format: it is neither a JSON, nor a URL, nor a base64 string",
                ))
            }
        }
        other => Err(ApiError::bad_request(format!(
            "Invalid configdrive format: {other} is not of type 'object', 'string', 'null'"
        ))),
    }
}

pub async fn set_maintenance(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    mut p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let query_reason = p.take("reason");
    p.finish()?;
    let obj = body_object(body, &["reason"])?;
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => query_reason,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Expected string for reason: {other}"
            )))
        }
    };
    maintenance(&app, &ctx, &raw, true, reason).await
}

pub async fn unset_maintenance(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    maintenance(&app, &ctx, &raw, false, None).await
}

async fn maintenance(
    app: &AppState,
    ctx: &Ctx,
    raw: &str,
    on: bool,
    reason: Option<String>,
) -> ApiResult<Response> {
    let node = load(app, ctx, raw).await?;
    let change: ferric_conductor::Change<'_, Node> = Box::new(move |n: &mut Node| {
        n.maintenance = on;
        n.maintenance_reason = reason;
        if !on {
            n.fault = None;
        }
        Ok(())
    });
    app.conductor
        .update_node(&Ident::Uuid(node.uuid), change, false)
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub async fn get_boot_device(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let setting = app
        .conductor
        .get_boot_device(&Ident::Uuid(node.uuid))
        .await?;
    Ok(
        Json(json!({"boot_device": setting.boot_device, "persistent": setting.persistent}))
            .into_response(),
    )
}

pub async fn set_boot_device(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let obj = body_object(body, &["boot_device", "persistent"])?;
    let device = required_string(&obj, "boot_device")?;
    let persistent = match obj.get("persistent") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => crate::context::parse_bool("persistent", s)?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid persistent: {other}"
            )))
        }
    };
    let node = load(&app, &ctx, &raw).await?;
    let device: BootDevice = device
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid boot device {device} specified.")))?;
    app.conductor
        .set_boot_device(&Ident::Uuid(node.uuid), device, persistent)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn supported_boot_devices(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let devices = app
        .conductor
        .supported_boot_devices(&Ident::Uuid(node.uuid))
        .await?;
    Ok(Json(json!({"supported_boot_devices": devices})).into_response())
}

pub async fn inject_nmi(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if !ctx.version.at_least(at::INJECT_NMI) {
        return Err(ApiError::not_found("Resource could not be found."));
    }
    body_object(body, &[])?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor.inject_nmi(&Ident::Uuid(node.uuid)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn validate(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    validate_node(&app, &ctx, &raw).await
}

/// `/v1/nodes/validate?node=<ident>` (or `node_uuid=`).
pub async fn validate_by_query(
    State(app): State<AppState>,
    ctx: Ctx,
    mut p: Params,
) -> ApiResult<Response> {
    let node_uuid = p.take("node_uuid");
    let node = p.take("node");
    p.finish()?;
    let raw = match (node_uuid, node) {
        (Some(u), _) => {
            ferric_core::ids::parse_uuid(&u)
                .map_err(|_| ApiError::bad_request(format!("Expected UUID for node_uuid: {u}")))?;
            u
        }
        (None, Some(n)) => n,
        (None, None) => return Err(ApiError::bad_request("Missing mandatory parameter: node")),
    };
    validate_node(&app, &ctx, &raw).await
}

async fn validate_node(app: &AppState, ctx: &Ctx, raw: &str) -> ApiResult<Response> {
    let node = load(app, ctx, raw).await?;
    let results = app.conductor.validate(&Ident::Uuid(node.uuid)).await?;
    let mut out = Map::new();
    for r in results {
        let entry = match r.result {
            ValidationResult::Valid => json!({"result": true}),
            ValidationResult::Invalid(reason) => json!({"result": false, "reason": reason}),
        };
        out.insert(r.kind.to_string(), entry);
    }
    Ok(Json(Value::Object(out)).into_response())
}

pub async fn get_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    ctx.require(at::NODE_TRAITS)?;
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    Ok(Json(json!({"traits": node.traits})).into_response())
}

const TRAITS_USAGE: &str = "A single node trait may be added via PUT /v1/nodes/<node identifier>/traits/<trait> with no \
     body, or all node traits may be replaced via PUT /v1/nodes/<node identifier>/traits with the list of traits \
     specified in the request body.";

pub async fn set_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    traits_version(&ctx, StatusCode::METHOD_NOT_ALLOWED)?;
    let Value::Object(obj) = &body else {
        return Err(ApiError::bad_request(format!(
            "Schema error for body: {body} is not of type 'object'"
        )));
    };
    if let Some(extra) = obj.keys().find(|k| *k != "traits") {
        return Err(ApiError::bad_request(format!(
            "Schema error for body: Additional properties are not allowed ('{extra}' was unexpected)"
        )));
    }
    let Some(Value::Array(items)) = obj.get("traits") else {
        return Err(ApiError::bad_request(TRAITS_USAGE));
    };
    let traits = items
        .iter()
        .map(|t| {
            t.as_str().map(str::to_owned).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Schema error for body: {t} is not of type 'string'"
                ))
            })
        })
        .collect::<ApiResult<Vec<String>>>()?;
    if let Some(bad) = traits
        .iter()
        .find(|t| !ferric_core::node::is_valid_trait(t))
    {
        return Err(invalid_trait("body", bad));
    }
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .set_traits(&Ident::Uuid(node.uuid), traits)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn traits_version(ctx: &Ctx, below: StatusCode) -> ApiResult<()> {
    if ctx.version.at_least(at::NODE_TRAITS) {
        Ok(())
    } else {
        Err(ApiError::new(below, "Resource could not be found."))
    }
}

fn invalid_trait(what: &str, t: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Schema error for {what}: '{t}' is not valid under any of the given schemas. Possible root cause: '{t}' does \
         not match '^CUSTOM_[A-Z0-9_]+$'"
    ))
}

pub async fn add_trait(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, name)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    traits_version(&ctx, StatusCode::METHOD_NOT_ALLOWED)?;
    let empty = body.is_null() || body.as_object().is_some_and(|o| o.is_empty());
    if !empty {
        return Err(ApiError::bad_request(TRAITS_USAGE));
    }
    if !ferric_core::node::is_valid_trait(&name) {
        return Err(invalid_trait("trait", &name));
    }
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .add_trait(&Ident::Uuid(node.uuid), name.clone())
        .await?;
    let location = format!("{}/v1/nodes/{raw}/traits/{name}", ctx.base);
    Ok((StatusCode::NO_CONTENT, [(header::LOCATION, location)]).into_response())
}

pub async fn remove_traits(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    traits_version(&ctx, StatusCode::NOT_FOUND)?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .set_traits(&Ident::Uuid(node.uuid), Vec::new())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn remove_trait(
    State(app): State<AppState>,
    ctx: Ctx,
    Path((raw, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    traits_version(&ctx, StatusCode::NOT_FOUND)?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .remove_trait(&Ident::Uuid(node.uuid), name)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
