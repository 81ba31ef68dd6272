//! `/redfish/v1/Systems`: the ComputerSystem of each machine (power, boot
//! override, reset, its NIC) and the PATCH and reset that change it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use super::{collection, json_object, redfish_json, Principal, RedfishError, Service};
use crate::machine::{BootDevice, BootMode, Power};
use crate::sim::{BootChange, Machine, MachineError, PowerAction};

/// The reset types served, in the order they are listed.
pub const RESET_TYPES: [(&str, PowerAction); 7] = [
    ("On", PowerAction::On),
    ("ForceOff", PowerAction::ForceOff),
    ("GracefulShutdown", PowerAction::SoftOff),
    ("GracefulRestart", PowerAction::SoftRestart),
    ("ForceRestart", PowerAction::ForceRestart),
    ("Nmi", PowerAction::Nmi),
    ("PowerCycle", PowerAction::Cycle),
];

/// Boot override targets and what they mean.
const TARGETS: [(&str, BootDevice); 5] = [
    ("None", BootDevice::None),
    ("Pxe", BootDevice::Pxe),
    ("Hdd", BootDevice::Disk),
    ("Cd", BootDevice::Cdrom),
    ("BiosSetup", BootDevice::Bios),
];

const ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
const MODES: [(&str, BootMode); 2] = [("UEFI", BootMode::Uefi), ("Legacy", BootMode::Legacy)];

pub fn routes() -> Router<Arc<Service>> {
    Router::new()
        .route("/redfish/v1/Systems", get(list))
        .route("/redfish/v1/Systems/{name}", get(show).patch(patch))
        .route(
            "/redfish/v1/Systems/{name}/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .route("/redfish/v1/Systems/{name}/EthernetInterfaces", get(nics))
        .route(
            "/redfish/v1/Systems/{name}/EthernetInterfaces/{nic}",
            get(nic),
        )
}

async fn list(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let members = who
        .visible(&service)
        .map(|m| format!("/redfish/v1/Systems/{}", m.name()))
        .collect();
    redfish_json(collection(
        "#ComputerSystemCollection.ComputerSystemCollection",
        "/redfish/v1/Systems",
        "Computer System Collection",
        members,
    ))
}

async fn show(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    let (body, etag) = system_json(machine);
    let mut response = redfish_json(body);
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    Ok(response)
}

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("None", |(name, _)| name)
}

/// The ComputerSystem body and its entity tag.
fn system_json(machine: &Machine) -> (Value, String) {
    let view = machine.view();
    let state = &view.state;
    let etag = state.etag();
    let id = format!("/redfish/v1/Systems/{}", machine.name());
    let enabled = match (state.boot_override.is_set(), state.boot_override.persistent) {
        (false, _) => "Disabled",
        (true, false) => "Once",
        (true, true) => "Continuous",
    };
    let body = json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "@odata.id": id,
        "@odata.etag": etag,
        "Id": machine.name(),
        "Name": machine.name(),
        "UUID": machine.uuid.to_string(),
        "Manufacturer": "Ferric",
        "Model": "ferric-lab simulated machine",
        "SystemType": "Physical",
        "Status": { "State": "Enabled", "Health": "OK" },
        "PowerState": if state.power == Power::On { "On" } else { "Off" },
        "Boot": {
            "BootSourceOverrideTarget": name_of(&TARGETS, state.boot_override.device),
            "BootSourceOverrideTarget@Redfish.AllowableValues":
                TARGETS.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            "BootSourceOverrideEnabled": enabled,
            "BootSourceOverrideMode": name_of(&MODES, state.boot_mode),
        },
        "EthernetInterfaces": { "@odata.id": format!("{id}/EthernetInterfaces") },
        "VirtualMedia": { "@odata.id": format!("{id}/VirtualMedia") },
        "Links": {
            "ManagedBy": [ { "@odata.id": format!("/redfish/v1/Managers/{}", machine.name()) } ],
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{id}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues":
                    RESET_TYPES.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            }
        },
    });
    (body, etag)
}

async fn patch(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, RedfishError> {
    let machine = who.machine(&service, &name)?;
    let current = machine.view().state;
    if let Some(tag) = headers.get(header::IF_MATCH) {
        if !etag_matches(tag.as_bytes(), &current.etag()) {
            return Err(RedfishError::precondition_failed());
        }
    }
    let change = boot_change(&json_object(&body)?, current.boot_override.is_set())?;
    machine.set_boot(change).await.map_err(machine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `*`, or the tag itself, weak or strong.
fn etag_matches(given: &[u8], current: &str) -> bool {
    let strip = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
    given == b"*" || strip(given) == strip(current.as_bytes())
}

/// Reads a PATCH of `Boot`; anything else is refused.
fn boot_change(body: &Map<String, Value>, override_set: bool) -> Result<BootChange, RedfishError> {
    if let Some(other) = body.keys().find(|k| k.as_str() != "Boot") {
        return Err(RedfishError::property_unknown(other));
    }
    let Some(boot) = body.get("Boot") else {
        return Err(RedfishError::property_unknown("Boot"));
    };
    let boot = boot
        .as_object()
        .ok_or_else(|| RedfishError::property_type("Boot", "an object"))?;
    let mut change = BootChange::default();
    for (key, value) in boot {
        let property = format!("Boot/{key}");
        match key.as_str() {
            "BootSourceOverrideTarget" => {
                let text = text_value(&property, value)?;
                change.device = Some(lookup(&TARGETS, &property, text)?);
            }
            "BootSourceOverrideEnabled" => {
                let text = text_value(&property, value)?;
                match text {
                    // Applied below, whatever the order of the keys.
                    "Disabled" => {}
                    "Once" => change.persistent = Some(false),
                    "Continuous" => change.persistent = Some(true),
                    _ => return Err(RedfishError::value_not_in_list(&property, text, &ENABLED)),
                }
            }
            "BootSourceOverrideMode" => {
                let text = text_value(&property, value)?;
                change.mode = Some(lookup(&MODES, &property, text)?);
            }
            // sushy clears it when not booting over HTTP; nothing to clear.
            "HttpBootUri" if value.is_null() => {}
            _ => return Err(RedfishError::property_unknown(&property)),
        }
    }
    if boot
        .get("BootSourceOverrideEnabled")
        .and_then(Value::as_str)
        == Some("Disabled")
    {
        change.device = Some(BootDevice::None);
    }
    let enabling = matches!(change.device, Some(d) if d != BootDevice::None);
    if enabling && change.persistent.is_none() && !override_set {
        change.persistent = Some(false);
    }
    Ok(change)
}

fn text_value<'a>(property: &str, value: &'a Value) -> Result<&'a str, RedfishError> {
    value
        .as_str()
        .ok_or_else(|| RedfishError::property_type(property, "a string"))
}

fn lookup<T: Copy>(table: &[(&str, T)], property: &str, text: &str) -> Result<T, RedfishError> {
    table
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let allowed: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            RedfishError::value_not_in_list(property, text, &allowed)
        })
}

async fn reset(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, RedfishError> {
    const ACTION: &str = "ComputerSystem.Reset";
    let machine = who.machine(&service, &name)?;
    let body = json_object(&body)?;
    let reset_type = match body.get("ResetType") {
        None => return Err(RedfishError::parameter_missing(ACTION, "ResetType")),
        Some(value) => text_value("ResetType", value)?,
    };
    let action = RESET_TYPES
        .iter()
        .find(|(name, _)| *name == reset_type)
        .map(|(_, action)| *action)
        .ok_or_else(|| RedfishError::parameter_not_supported(ACTION, "ResetType", reset_type))?;
    machine.power(action).await.map_err(machine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn machine_error(e: MachineError) -> RedfishError {
    match e {
        MachineError::NotPoweredOn => RedfishError::conflict("the system is powered off"),
        MachineError::Stopped => RedfishError::internal("the BMC is shutting down"),
    }
}

async fn nics(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    let id = format!("/redfish/v1/Systems/{}/EthernetInterfaces", machine.name());
    Ok(redfish_json(collection(
        "#EthernetInterfaceCollection.EthernetInterfaceCollection",
        &id,
        "Ethernet Interface Collection",
        vec![format!("{id}/nic0")],
    )))
}

async fn nic(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path((name, nic)): Path<(String, String)>,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    if nic != "nic0" {
        return Err(RedfishError::not_found(&format!("interface {nic}")));
    }
    let mac = machine.spec.mac.to_string();
    Ok(redfish_json(json!({
        "@odata.type": "#EthernetInterface.v1_4_1.EthernetInterface",
        "@odata.id": format!("/redfish/v1/Systems/{}/EthernetInterfaces/nic0", machine.name()),
        "Id": "nic0",
        "Name": "nic0",
        "Status": { "State": "Enabled", "Health": "OK" },
        "LinkStatus": "LinkUp",
        "PermanentMACAddress": mac,
        "MACAddress": mac,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(body: Value, set: bool) -> Result<BootChange, RedfishError> {
        boot_change(body.as_object().unwrap(), set)
    }

    #[test]
    fn boot_patches_become_changes() {
        let pxe_once = change(
            json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
            false,
        )
        .unwrap();
        assert_eq!(
            pxe_once,
            BootChange {
                device: Some(BootDevice::Pxe),
                persistent: Some(false),
                mode: None
            }
        );
        let hdd = change(
            json!({"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "UEFI"}}),
            false,
        )
        .unwrap();
        assert_eq!(hdd.device, Some(BootDevice::Disk));
        assert_eq!(hdd.persistent, Some(true));
        assert_eq!(hdd.mode, Some(BootMode::Uefi));
        // A target alone on a machine with no override is a once override;
        // with one, it keeps the override's persistence.
        let alone = json!({"Boot": {"BootSourceOverrideTarget": "Cd"}});
        assert_eq!(
            change(alone.clone(), false).unwrap().persistent,
            Some(false)
        );
        assert_eq!(change(alone, true).unwrap().persistent, None);
        let off = change(
            json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Disabled"}}),
            true,
        )
        .unwrap();
        assert_eq!(off.device, Some(BootDevice::None));
    }

    #[test]
    fn bad_boot_patches_are_400_naming_the_property() {
        let cases = [
            json!({"Boot": {"BootSourceOverrideTarget": "Floppy"}}),
            json!({"Boot": {"BootSourceOverrideEnabled": "Sometimes"}}),
            json!({"Boot": {"BootSourceOverrideMode": "UEFI2"}}),
            json!({"Boot": {"BootSourceOverrideTarget": 5}}),
            json!({"Boot": {"Colour": "red"}}),
            json!({"AssetTag": "x"}),
            json!({}),
        ];
        for body in cases {
            let e = change(body.clone(), false).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{body}");
        }
    }

    #[test]
    fn etags_match_weak_or_strong() {
        assert!(etag_matches(b"W/\"abc\"", "W/\"abc\""));
        assert!(etag_matches(b"\"abc\"", "W/\"abc\""));
        assert!(etag_matches(b"*", "W/\"abc\""));
        assert!(!etag_matches(b"W/\"abd\"", "W/\"abc\""));
    }
}
