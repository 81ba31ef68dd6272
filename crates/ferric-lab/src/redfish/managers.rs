//! `/redfish/v1/Managers`: each machine's BMC and its virtual media (one
//! `Cd` drive), also reachable under the system as newer BMCs offer it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::systems::machine_error;
use super::{collection, json_object, redfish_json, Principal, RedfishError, Service};
use crate::machine::{stable_uuid, Media};
use crate::sim::Machine;

/// The one virtual media drive.
const CD: &str = "Cd";

pub fn routes() -> Router<Arc<Service>> {
    let mut router = Router::new()
        .route("/redfish/v1/Managers", get(list))
        .route("/redfish/v1/Managers/{name}", get(show));
    for parent in ["Managers", "Systems"] {
        let base = format!("/redfish/v1/{parent}/{{name}}/VirtualMedia");
        router = router
            .route(&base, get(media_list))
            .route(&format!("{base}/{{device}}"), get(media_show))
            .route(
                &format!("{base}/{{device}}/Actions/VirtualMedia.InsertMedia"),
                post(insert),
            )
            .route(
                &format!("{base}/{{device}}/Actions/VirtualMedia.EjectMedia"),
                post(eject),
            );
    }
    router
}

async fn list(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let members = who
        .visible(&service)
        .map(|m| format!("/redfish/v1/Managers/{}", m.name()))
        .collect();
    redfish_json(collection(
        "#ManagerCollection.ManagerCollection",
        "/redfish/v1/Managers",
        "Manager Collection",
        members,
    ))
}

async fn show(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    let id = format!("/redfish/v1/Managers/{}", machine.name());
    Ok(redfish_json(json!({
        "@odata.type": "#Manager.v1_10_0.Manager",
        "@odata.id": id,
        "Id": machine.name(),
        "Name": format!("BMC of {}", machine.name()),
        "ManagerType": "BMC",
        "UUID": stable_uuid(&format!("manager/{}", machine.name())).to_string(),
        "Model": "ferric-lab virtual BMC",
        "FirmwareVersion": env!("CARGO_PKG_VERSION"),
        "PowerState": "On",
        "Status": { "State": "Enabled", "Health": "OK" },
        "VirtualMedia": { "@odata.id": format!("{id}/VirtualMedia") },
        "Links": {
            "ManagerForServers": [ { "@odata.id": format!("/redfish/v1/Systems/{}", machine.name()) } ],
        },
    })))
}

/// The parent path a media request came through (`Managers` or `Systems`).
fn media_base(uri: &axum::http::Uri, machine: &Machine) -> String {
    let parent = if uri.path().starts_with("/redfish/v1/Systems/") {
        "Systems"
    } else {
        "Managers"
    };
    format!("/redfish/v1/{parent}/{}/VirtualMedia", machine.name())
}

async fn media_list(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    let base = media_base(&uri, machine);
    Ok(redfish_json(collection(
        "#VirtualMediaCollection.VirtualMediaCollection",
        &base,
        "Virtual Media Services",
        vec![format!("{base}/{CD}")],
    )))
}

fn check_device(device: &str) -> Result<(), RedfishError> {
    if device == CD {
        Ok(())
    } else {
        Err(RedfishError::not_found(&format!("virtual media {device}")))
    }
}

async fn media_show(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path((name, device)): Path<(String, String)>,
    uri: axum::http::Uri,
) -> Result<Response, RedfishError> {
    let machine = who.machine(&service, &name)?;
    check_device(&device)?;
    let base = media_base(&uri, machine);
    let media = machine.view().state.media;
    let id = format!("{base}/{CD}");
    Ok(redfish_json(json!({
        "@odata.type": "#VirtualMedia.v1_4_0.VirtualMedia",
        "@odata.id": id,
        "Id": CD,
        "Name": "Virtual CD",
        "MediaTypes": ["CD", "DVD"],
        "ConnectedVia": if media.inserted { "URI" } else { "NotConnected" },
        "Image": media.image,
        "ImageName": media.image.as_deref().and_then(|i| i.rsplit('/').next()),
        "Inserted": media.inserted,
        "WriteProtected": media.write_protected,
        "Actions": {
            "#VirtualMedia.InsertMedia": { "target": format!("{id}/Actions/VirtualMedia.InsertMedia") },
            "#VirtualMedia.EjectMedia": { "target": format!("{id}/Actions/VirtualMedia.EjectMedia") },
        },
    })))
}

async fn insert(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path((name, device)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, RedfishError> {
    const ACTION: &str = "VirtualMedia.InsertMedia";
    let machine = who.machine(&service, &name)?;
    check_device(&device)?;
    let body = json_object(&body)?;
    let image = match body.get("Image") {
        Some(Value::String(image)) if !image.is_empty() => image.clone(),
        Some(Value::String(_)) | None => {
            return Err(RedfishError::parameter_missing(ACTION, "Image"))
        }
        Some(_) => return Err(RedfishError::property_type("Image", "a string")),
    };
    let flag = |key: &str| match body.get(key) {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RedfishError::property_type(key, "a boolean")),
    };
    let media = Media {
        image: Some(image),
        inserted: flag("Inserted")?,
        write_protected: flag("WriteProtected")?,
    };
    machine.insert_media(media).await.map_err(machine_error)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn eject(
    State(service): State<Arc<Service>>,
    Extension(who): Extension<Principal>,
    Path((name, device)): Path<(String, String)>,
) -> Result<StatusCode, RedfishError> {
    let machine = who.machine(&service, &name)?;
    check_device(&device)?;
    machine.eject_media().await.map_err(machine_error)?;
    Ok(StatusCode::NO_CONTENT)
}
