//! The endpoints a booting agent calls (Ironic's `ramdisk.py`): lookup by
//! MAC (API 1.22), heartbeat (1.22, with its fields by version), and
//! `continue_inspection` (1.84). They can also be served on a listener of
//! their own, for the provisioning network ([`ramdisk_router`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ferric_conductor::LookupAnswer;
use ferric_core::{MacAddress, NodeUuid, Secret};
use ferric_drivers::Heartbeat;
use serde_json::{json, Map, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::{mask, AppState};

const LOOKUP_HEARTBEAT: u32 = 22;
const AGENT_VERSION: u32 = 36;
const AGENT_TOKEN: u32 = 62;
const VERIFY_CA: u32 = 68;
const HEARTBEAT_STATUS: u32 = 72;
const CONTINUE_INSPECTION: u32 = 84;

/// The agent's endpoints alone, with version discovery: what a listener
/// on the provisioning network serves.
pub fn ramdisk_router(state: AppState) -> Router {
    crate::with_middleware(
        Router::new()
            .route("/", get(crate::root::root))
            .route("/v1", get(crate::root::v1))
            .route("/v1/", get(crate::root::v1))
            .merge(routes()),
        state,
    )
}

/// The routes, under `/v1`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/lookup", get(lookup))
        .route("/v1/heartbeat/{node}", post(heartbeat))
        .route("/v1/continue_inspection", post(continue_inspection))
}

fn not_found() -> ApiError {
    ApiError::not_found("Resource could not be found.")
}

/// `GET /v1/lookup?addresses=MAC,MAC&node_uuid=UUID`.
pub async fn lookup(State(app): State<AppState>, ctx: Ctx, mut p: Params) -> ApiResult<Response> {
    if !ctx.version.at_least(LOOKUP_HEARTBEAT) {
        return Err(not_found());
    }
    let addresses = p.take("addresses").unwrap_or_default();
    let node_uuid = p.take("node_uuid");
    p.finish()?;
    let macs = valid_macs(addresses.split(',').filter(|a| !a.is_empty()));
    let node_uuid =
        match node_uuid {
            Some(u) => Some(u.parse::<NodeUuid>().map_err(|_| {
                ApiError::bad_request(format!("Expected a UUID for node_uuid: {u}"))
            })?),
            None => None,
        };
    if macs.is_empty() && node_uuid.is_none() {
        return Err(ApiError::bad_request(
            "At least one of 'addresses' and 'node_uuid' parameters is required",
        ));
    }
    let answer = app
        .conductor
        .lookup(&macs, node_uuid, ctx.version.at_least(AGENT_TOKEN))
        .await
        .map_err(|e| match e {
            ferric_conductor::ConductorError::NotFound { .. } => not_found(),
            other => other.into(),
        })?;
    Ok(Json(lookup_body(&app, &ctx, &answer)).into_response())
}

/// The MACs that parse; the others are left out, as Ironic logs and
/// ignores them.
fn valid_macs<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<MacAddress> {
    raw.filter_map(|a| match a.trim().parse::<MacAddress>() {
        Ok(m) => Some(m),
        Err(_) => {
            tracing::warn!(address = a, "an invalid MAC address in a lookup is ignored");
            None
        }
    })
    .collect()
}

/// `{"node": {...}, "config": {...}}` as Ironic's lookup answers.
fn lookup_body(app: &AppState, ctx: &Ctx, answer: &LookupAnswer) -> Value {
    let node = &answer.node;
    let uuid = node.uuid.to_string();
    json!({
        "node": {
            "uuid": uuid,
            "properties": node.properties,
            "instance_info": mask::instance_info(&node.instance_info),
            "driver_internal_info": mask::mask_dict(&node.driver_internal_info),
            "links": ctx.links(&format!("nodes/{uuid}")),
        },
        "config": agent_config(app, answer),
    })
}

fn agent_config(app: &AppState, answer: &LookupAnswer) -> Value {
    let drivers = app.conductor.registry().config();
    let out_of_band = matches!(
        answer
            .node
            .interfaces
            .get(ferric_core::InterfaceKind::Management),
        "redfish" | "idrac-redfish"
    );
    json!({
        "metrics": {"backend": "noop", "prepend_host": false, "prepend_uuid": false,
                    "prepend_host_reverse": true, "global_prefix": null},
        "metrics_statsd": {"statsd_host": "localhost", "statsd_port": 8125},
        "heartbeat_timeout": drivers.agent.ramdisk_heartbeat_timeout,
        "agent_containers": {"allow_arbitrary_containers": false, "allowed_containers": [],
                             "container_steps_file": "/etc/ironic-python-agent.d/mysteps.yaml",
                             "runner": "podman", "pull_options": [],
                             "run_options": ["--rm", "--network=host"]},
        "agent_token": answer.token.as_ref().map(|t| t.expose().clone()),
        "agent_token_required": true,
        "agent_md5_checksum_enable": true,
        "disable_deep_image_inspection": false,
        "permitted_image_formats": ["raw", "gpt", "qcow2", "iso"],
        "agent_skip_bmc_detect": out_of_band,
        "enable_bios_bootloader_install": false,
        "tls_min_version": "1.3",
        "tls_cipher_suites": null,
    })
}

/// `POST /v1/heartbeat/{node}`: 202 once recorded.
pub async fn heartbeat(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    if !ctx.version.at_least(LOOKUP_HEARTBEAT) {
        return Err(not_found());
    }
    let ident = crate::nodes::node_ident(&ctx, &raw)?;
    let Value::Object(mut body) = body else {
        return Err(ApiError::bad_request(
            "Invalid heartbeat: the body must be a JSON object",
        ));
    };
    let field = |body: &mut Map<String, Value>, name: &str| -> ApiResult<Option<String>> {
        match body.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid {name}: {other} is not a string"
            ))),
        }
    };
    let callback_url = field(&mut body, "callback_url")?
        .ok_or_else(|| ApiError::bad_request("Missing argument: \"callback_url\""))?;
    let agent_version = field(&mut body, "agent_version")?;
    let agent_token = field(&mut body, "agent_token")?.map(Secret::new);
    let agent_verify_ca = field(&mut body, "agent_verify_ca")?;
    let agent_status = field(&mut body, "agent_status")?;
    let agent_status_message = field(&mut body, "agent_status_message")?;
    if let Some(unknown) = body.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unknown argument: \"{unknown}\""
        )));
    }
    if agent_version.is_some() && !ctx.version.at_least(AGENT_VERSION) {
        return Err(ApiError::bad_request(
            "Field \"agent_version\" not recognised",
        ));
    }
    if (agent_status.is_some() || agent_status_message.is_some())
        && !ctx.version.at_least(HEARTBEAT_STATUS)
    {
        return Err(ApiError::bad_request(
            "Fields \"agent_status\" and \"agent_status_message\" not recognised.",
        ));
    }
    if agent_verify_ca.is_some() && !ctx.version.at_least(VERIFY_CA) {
        return Err(ApiError::bad_request(
            "Field \"agent_verify_ca\" not recognised in this version",
        ));
    }
    let heartbeat = Heartbeat {
        callback_url,
        agent_version,
        agent_verify_ca,
        agent_status,
        agent_status_message,
    };
    app.conductor
        .heartbeat(&ident, agent_token.as_ref(), heartbeat)
        .await
        .map_err(|e| match e {
            ferric_conductor::ConductorError::NotFound { .. } => {
                ApiError::not_found(format!("Node {raw} could not be found."))
            }
            other => other.into(),
        })?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST /v1/continue_inspection[?node_uuid=]`: the agent's inventory.
pub async fn continue_inspection(
    State(app): State<AppState>,
    ctx: Ctx,
    mut p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let node_uuid = p.take("node_uuid");
    p.finish()?;
    let modern = ctx.version.at_least(CONTINUE_INSPECTION);
    // 1.1 too, as ironic-inspector's API (IPA posts without a version).
    if !modern && ctx.version != crate::version::MIN {
        return Err(ApiError::not_found(format!(
            "API version 1.{CONTINUE_INSPECTION} or newer is required"
        )));
    }
    if node_uuid.is_some() && !modern {
        return Err(ApiError::not_found(format!(
            "API version 1.{CONTINUE_INSPECTION} or newer is required"
        )));
    }
    let node_uuid =
        match node_uuid {
            Some(u) => Some(u.parse::<NodeUuid>().map_err(|_| {
                ApiError::bad_request(format!("Expected a UUID for node_uuid: {u}"))
            })?),
            None => None,
        };
    let (inventory, plugin_data) = inspection_data(body)?;
    let macs = valid_macs(
        inventory["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["mac_address"].as_str()),
    );
    let bmc: Vec<String> = ["bmc_address", "bmc_v6address"]
        .iter()
        .filter_map(|k| inventory.get(*k).and_then(Value::as_str))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if macs.is_empty() && bmc.is_empty() && node_uuid.is_none() {
        return Err(ApiError::bad_request("No lookup information provided"));
    }
    let answer = app
        .conductor
        .continue_inspection(&macs, &bmc, node_uuid, inventory, plugin_data, modern)
        .await
        .map_err(|e| match e {
            ferric_conductor::ConductorError::NotFound { .. } => not_found(),
            other => other.into(),
        })?;
    let out = if modern {
        lookup_body(&app, &ctx, &answer)
    } else {
        json!({"uuid": answer.node.uuid.to_string()})
    };
    Ok((StatusCode::ACCEPTED, Json(out)).into_response())
}

/// Ironic's minimal inventory schema: an object with `interfaces`, a
/// non-empty list of objects each with a string `mac_address`.
fn inspection_data(body: Value) -> ApiResult<(Map<String, Value>, Map<String, Value>)> {
    let Value::Object(mut data) = body else {
        return Err(ApiError::bad_request(
            "Invalid data: the body must be a JSON object",
        ));
    };
    let Some(Value::Object(inventory)) = data.remove("inventory") else {
        return Err(ApiError::bad_request(
            "Invalid data: 'inventory' is a required property and must be an object",
        ));
    };
    let interfaces_ok = inventory
        .get("interfaces")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            !list.is_empty()
                && list
                    .iter()
                    .all(|i| i.get("mac_address").is_some_and(Value::is_string))
        });
    if !interfaces_ok {
        return Err(ApiError::bad_request(
            "Invalid data: inventory 'interfaces' must be a non-empty list of objects, each with a \
             'mac_address' string",
        ));
    }
    for key in ["bmc_address", "bmc_v6address"] {
        if inventory
            .get(key)
            .is_some_and(|v| !(v.is_string() || v.is_null()))
        {
            return Err(ApiError::bad_request(format!(
                "Invalid data: inventory '{key}' must be a string or null"
            )));
        }
    }
    Ok((inventory, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventories_are_checked_like_ironics_schema() {
        let ok = json!({"inventory": {"interfaces": [{"mac_address": "52:54:00:12:34:56"}], "bmc_address": null},
                        "extra_plugin": {"x": 1}});
        let (inv, plugin) = inspection_data(ok).unwrap();
        assert_eq!(inv["interfaces"][0]["mac_address"], "52:54:00:12:34:56");
        assert_eq!(plugin["extra_plugin"]["x"], 1);
        for bad in [
            json!([]),
            json!({}),
            json!({"inventory": {"interfaces": []}}),
            json!({"inventory": {"interfaces": [{"name": "eth0"}]}}),
            json!({"inventory": {"interfaces": [{"mac_address": "x"}], "bmc_address": 5}}),
        ] {
            assert!(inspection_data(bad.clone()).is_err(), "{bad}");
        }
    }
}
