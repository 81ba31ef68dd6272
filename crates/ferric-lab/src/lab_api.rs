//! The lab's own endpoints, beside Redfish on its listener and without
//! authentication: `GET /lab/machines` and `/lab/machines/{name}` show the
//! machines' state (power, boot override, last boot and what its network
//! boot loaded, boot count, NMIs, agent pid); `GET`/`PUT /lab/machines/{name}/faults` read and replace a
//! machine's faults (JSON with the machines file's keys).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::Faults;
use crate::lab::Lab;
use crate::sim::Machine;

/// What the lab endpoints need.
pub struct LabApi {
    pub lab: Arc<Lab>,
    pub sessions: Arc<dyn SessionCounts>,
}

/// How many sessions a machine has open, per protocol.
pub trait SessionCounts: Send + Sync {
    fn redfish_sessions(&self, machine: usize) -> usize;
    fn ipmi_sessions(&self, _machine: usize) -> Option<usize> {
        None
    }
}

pub fn router(api: Arc<LabApi>) -> Router {
    Router::new()
        .route("/lab/machines", get(list))
        .route("/lab/machines/{name}", get(show))
        .route("/lab/machines/{name}/faults", get(faults).put(set_faults))
        .with_state(api)
}

/// An error answer of the lab endpoints: `{"error": "..."}`.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn find<'a>(api: &'a LabApi, name: &str) -> Result<&'a Arc<Machine>, Problem> {
    api.lab
        .machine(name)
        .ok_or_else(|| Problem(StatusCode::NOT_FOUND, format!("no machine named {name:?}")))
}
/// A machine's state as the lab shows it.
pub fn machine_json(api: &LabApi, machine: &Machine) -> Value {
    let view = machine.view();
    let state = &view.state;
    json!({
        "name": machine.name(),
        "uuid": machine.uuid.to_string(),
        "mac": machine.spec.mac.to_string(),
        "power": state.power,
        "boot_override": {
            "device": state.boot_override.device,
            "persistent": state.boot_override.persistent,
        },
        "boot_mode": state.boot_mode,
        "last_boot": state.last_boot,
        "last_boot_config": state.last_boot_config,
        "boot_count": state.boot_count,
        "nmi_count": state.nmi_count,
        "virtual_media": state.media,
        "agent_pid": view.agent_pid,
        "agent_listen": view.agent_listen.map(|a| a.to_string()),
        "agent_error": view.agent_error,
        "qemu_pid": view.qemu_pid,
        "serial_log": view.serial_log.as_ref().map(|p| p.display().to_string()),
        "locked_out_seconds": machine.locked_for(Instant::now()),
        "redfish_sessions": api.sessions.redfish_sessions(machine.index),
        "ipmi_sessions": api.sessions.ipmi_sessions(machine.index),
        "faults": machine.faults(),
    })
}

async fn list(State(api): State<Arc<LabApi>>) -> Json<Value> {
    let machines: Vec<Value> = api
        .lab
        .machines
        .iter()
        .map(|m| machine_json(&api, m))
        .collect();
    Json(json!({ "machines": machines }))
}

async fn show(
    State(api): State<Arc<LabApi>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let machine = find(&api, &name)?;
    Ok(Json(machine_json(&api, machine)))
}

async fn faults(
    State(api): State<Arc<LabApi>>,
    Path(name): Path<String>,
) -> Result<Json<Faults>, Problem> {
    Ok(Json(find(&api, &name)?.faults()))
}

async fn set_faults(
    State(api): State<Arc<LabApi>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Faults>, Problem> {
    let machine = find(&api, &name)?;
    let faults: Faults = serde_json::from_slice(&body)
        .map_err(|e| Problem(StatusCode::BAD_REQUEST, format!("faults: {e}")))?;
    faults.validate().map_err(|(key, message)| {
        Problem(StatusCode::BAD_REQUEST, format!("faults.{key}: {message}"))
    })?;
    machine.set_faults(faults.clone());
    Ok(Json(faults))
}
