//! A node's BIOS settings, firmware components, boot mode and secure boot,
//! virtual media and indicators over HTTP, on `fake-hardware`.

mod common;

use std::time::{Duration, Instant};

use common::{faultstring, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn at(s: &Server, version: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call_at(version, method, path, body)
}

/// Polls the node until `check` holds and it is unlocked (10 s at most).
fn wait_for(s: &Server, node: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = s.get(&format!("/v1/nodes/{node}"));
        if check(&n) && n["reservation"].is_null() {
            return n;
        }
        assert!(Instant::now() < deadline, "{what}: node is {n}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn clean(s: &Server, node: &str, steps: Value) {
    let status = s.put(
        &format!("/v1/nodes/{node}/states/provision"),
        json!({"target": "clean", "clean_steps": steps}),
    );
    assert_eq!(status, 202);
    let n = s.wait_state(node, "manageable");
    assert!(n["last_error"].is_null(), "{}", n["last_error"]);
}

fn apply_bios(s: &Server, node: &str, settings: Value) {
    clean(
        s,
        node,
        json!([{"interface": "bios", "step": "apply_configuration", "args": {"settings": settings}}]),
    );
}

#[test]
fn bios_settings_follow_the_fake_bios_steps() {
    let s = Server::start("");
    let node = s.create_node("b1");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    s.provision("b1", "manage", "manageable");
    assert_eq!(s.get("/v1/nodes/b1/bios"), json!({"bios": []}));

    apply_bios(
        &s,
        "b1",
        json!([{"name": "ProcVirtualization", "value": "Enabled"}, {"name": "Cores", "value": 4}]),
    );
    let listed = s.get("/v1/nodes/b1/bios");
    let items = listed["bios"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let first = &items[0];
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["created_at", "updated_at", "name", "value", "links"]);
    assert_eq!(
        (first["name"].as_str(), first["value"].as_str()),
        (Some("Cores"), Some("4"))
    );
    assert!(first["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/v1/nodes/b1/bios/Cores"));

    let detail = s.get("/v1/nodes/b1/bios?detail=True");
    assert_eq!(detail["bios"][1]["allowable_values"], json!([]));
    assert_eq!(detail["bios"][1]["read_only"], Value::Null);
    let some = s.get("/v1/nodes/b1/bios?fields=value");
    let keys: Vec<&String> = some["bios"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["created_at", "updated_at", "value", "links"]);
    let (status, body) = s.call(
        Method::GET,
        "/v1/nodes/b1/bios?fields=value&detail=True",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Can not specify ?detail=True and fields in the same request.".into()
        )
    );

    let shown = s.get("/v1/nodes/b1/bios/ProcVirtualization");
    let setting = &shown["ProcVirtualization"];
    assert_eq!(setting["value"], "Enabled");
    assert!(setting.get("upper_bound").is_some());
    assert!(setting["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/nodes/{uuid}/bios/ProcVirtualization")));
    let (status, body) = s.call(Method::GET, "/v1/nodes/b1/bios/Nope", None);
    assert_eq!(
        (status, faultstring(&body)),
        (
            404,
            format!("Node {uuid} doesn't have a BIOS setting 'Nope'")
        )
    );

    // Applying again replaces the set, as Ironic's fake does.
    apply_bios(&s, "b1", json!([{"name": "Cores", "value": "8"}]));
    let listed = s.get("/v1/nodes/b1/bios");
    assert_eq!(listed["bios"].as_array().unwrap().len(), 1);
    assert_eq!(listed["bios"][0]["value"], "8");
    assert!(listed["bios"][0]["updated_at"].is_string());

    clean(
        &s,
        "b1",
        json!([{"interface": "bios", "step": "factory_reset"}]),
    );
    assert_eq!(s.get("/v1/nodes/b1/bios"), json!({"bios": []}));
}

#[test]
fn bios_is_served_from_1_40_and_its_registry_from_1_74() {
    let s = Server::start("");
    s.create_node("b2");
    s.provision("b2", "manage", "manageable");
    apply_bios(&s, "b2", json!([{"name": "Boot", "value": "Uefi"}]));

    let (status, _) = at(&s, "1.39", Method::GET, "/v1/nodes/b2/bios", None);
    assert_eq!(status, 404);
    let (status, _) = at(&s, "1.39", Method::GET, "/v1/nodes/b2/bios/Boot", None);
    assert_eq!(status, 404);
    let (status, body) = at(&s, "1.40", Method::GET, "/v1/nodes/b2/bios", None);
    assert_eq!(status, 200);
    assert_eq!(body["bios"][0]["value"], "Uefi");

    let (_, shown) = at(&s, "1.73", Method::GET, "/v1/nodes/b2/bios/Boot", None);
    assert!(shown["Boot"].get("attribute_type").is_none());
    let (_, shown) = at(&s, "1.74", Method::GET, "/v1/nodes/b2/bios/Boot", None);
    assert!(shown["Boot"].get("attribute_type").is_some());

    let (status, body) = at(
        &s,
        "1.73",
        Method::GET,
        "/v1/nodes/b2/bios?detail=True",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Schema error: Additional properties are not allowed ('detail' was unexpected)".into()
        )
    );
    let (status, body) = at(
        &s,
        "1.74",
        Method::GET,
        "/v1/nodes/b2/bios?detail=True",
        None,
    );
    assert_eq!(status, 200);
    assert!(body["bios"][0].get("reset_required").is_some());
}

#[test]
fn firmware_is_listed_from_1_86_with_identity_from_1_114() {
    let s = Server::start("");
    s.create_node("f1");
    s.provision("f1", "manage", "manageable");
    // Ironic's fake firmware update flashes and records nothing.
    clean(
        &s,
        "f1",
        json!([{"interface": "firmware", "step": "update", "args": {"settings": [{"component": "bmc", "url": "http://x/fw.bin"}]}}]),
    );
    let (status, _) = at(&s, "1.85", Method::GET, "/v1/nodes/f1/firmware", None);
    assert_eq!(status, 404);
    let (status, body) = at(&s, "1.86", Method::GET, "/v1/nodes/f1/firmware", None);
    assert_eq!((status, body), (200, json!({"firmware": []})));
    let (status, body) = at(
        &s,
        "1.113",
        Method::GET,
        "/v1/nodes/f1/firmware?fields=vendor",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Fields vendor are not allowed in this API version. They require at least API version 1.114.".into()
        )
    );
    let (status, _) = at(
        &s,
        "1.114",
        Method::GET,
        "/v1/nodes/f1/firmware?fields=vendor",
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn boot_mode_and_secure_boot_are_set_through_the_management_interface() {
    let s = Server::start("");
    s.create_node("m1");
    let status = s.put("/v1/nodes/m1/states/boot_mode", json!({"target": "uefi"}));
    assert_eq!(status, 202);
    let n = wait_for(&s, "m1", "boot mode uefi", |n| n["boot_mode"] == "uefi");
    assert!(n["last_error"].is_null());
    assert_eq!(s.get("/v1/nodes/m1/states")["boot_mode"], "uefi");

    assert_eq!(
        s.put("/v1/nodes/m1/states/secure_boot", json!({"target": true})),
        202
    );
    wait_for(&s, "m1", "secure boot on", |n| n["secure_boot"] == true);
    assert_eq!(
        s.put("/v1/nodes/m1/states/secure_boot", json!({"target": "off"})),
        202
    );
    wait_for(&s, "m1", "secure boot off", |n| n["secure_boot"] == false);

    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/m1/states/boot_mode",
        Some(json!({"target": "legacy"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Invalid boot mode legacy requested for node. Allowed boot modes are: bios, uefi"
                .into()
        )
    );
    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/m1/states/secure_boot",
        Some(json!({"target": null})),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body).starts_with("Invalid secure_boot None requested for node."));
}

#[test]
fn boot_mode_is_refused_below_1_76_and_while_the_node_moves() {
    let s = Server::start("[fake]\ndeploy_delay = \"2\"\n");
    s.create_node("m2");
    let body = json!({"target": "bios"});
    let (status, err) = at(
        &s,
        "1.75",
        Method::PUT,
        "/v1/nodes/m2/states/boot_mode",
        Some(body.clone()),
    );
    assert_eq!(
        (status, faultstring(&err)),
        (
            404,
            "This endpoint is supported starting with the API version 1.76".into()
        )
    );
    let (status, _) = at(
        &s,
        "1.75",
        Method::PUT,
        "/v1/nodes/m2/states/secure_boot",
        Some(json!({"target": true})),
    );
    assert_eq!(status, 404);
    let (status, _) = at(
        &s,
        "1.76",
        Method::PUT,
        "/v1/nodes/m2/states/boot_mode",
        Some(body.clone()),
    );
    assert_eq!(status, 202);
    wait_for(&s, "m2", "boot mode bios", |n| n["boot_mode"] == "bios");

    s.provision("m2", "manage", "manageable");
    s.provision("m2", "provide", "available");
    assert_eq!(
        s.put("/v1/nodes/m2/states/provision", json!({"target": "active"})),
        202
    );
    // The deploy step takes 2 s: the node is in `deploying` now.
    let (status, err) = s.call(
        Method::PUT,
        "/v1/nodes/m2/states/boot_mode",
        Some(json!({"target": "uefi"})),
    );
    assert_eq!(status, 409, "{err}");
    assert!(
        faultstring(&err).starts_with("Node is in deploying state. Since node is transitioning")
    );
}

#[test]
fn virtual_media_is_attached_listed_and_detached() {
    let s = Server::start("");
    s.create_node("v1");
    let (status, body) = s.call(
        Method::POST,
        "/v1/nodes/v1/vmedia",
        Some(json!({"device_type": "cdrom", "image_url": "http://images/boot.iso"})),
    );
    assert_eq!(status, 204, "{body}");
    let media = wait_vmedia(&s, "v1", |m| m[1]["inserted"] == true);
    assert_eq!(
        media[1],
        json!({"media_types": ["CD"], "inserted": true, "image": "http://images/boot.iso"})
    );
    assert_eq!(media[0]["inserted"], false);

    let (status, _) = s.call(
        Method::POST,
        "/v1/nodes/v1/vmedia",
        Some(json!({"device_type": "disk", "image_url": "https://images/cd.img"})),
    );
    assert_eq!(status, 204);
    wait_vmedia(&s, "v1", |m| m[0]["inserted"] == true);
    let (status, _) = s.call(
        Method::DELETE,
        "/v1/nodes/v1/vmedia?device_types=cdrom",
        None,
    );
    assert_eq!(status, 204);
    let media = wait_vmedia(&s, "v1", |m| m[1]["inserted"] == false);
    assert_eq!(media[0]["inserted"], true);
    let (status, _) = s.call(Method::DELETE, "/v1/nodes/v1/vmedia", None);
    assert_eq!(status, 204);
    wait_vmedia(&s, "v1", |m| m[0]["inserted"] == false);

    let (status, body) = s.call(Method::DELETE, "/v1/nodes/v1/vmedia?device_types=pxe", None);
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Invalid device type(s) pxe (valid are disk, cdrom, floppy)".into()
        )
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/nodes/v1/vmedia",
        Some(json!({"device_type": "cdrom", "image_url": "ftp://x/a.iso"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Unsupported or missing URL scheme: ftp".into())
    );
}

fn wait_vmedia(s: &Server, node: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let media = s.get(&format!("/v1/nodes/{node}/vmedia"));
        if check(&media) {
            return media;
        }
        assert!(Instant::now() < deadline, "vmedia is {media}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn virtual_media_is_served_from_1_89_and_read_from_1_93() {
    let s = Server::start("");
    s.create_node("v2");
    let attach = json!({"device_type": "floppy", "image_url": "http://x/f.img"});
    let (status, _) = at(
        &s,
        "1.88",
        Method::POST,
        "/v1/nodes/v2/vmedia",
        Some(attach.clone()),
    );
    assert_eq!(status, 404);
    let (status, _) = at(&s, "1.88", Method::DELETE, "/v1/nodes/v2/vmedia", None);
    assert_eq!(status, 404);
    let (status, _) = at(
        &s,
        "1.89",
        Method::POST,
        "/v1/nodes/v2/vmedia",
        Some(attach),
    );
    assert_eq!(status, 204);
    let (status, _) = at(&s, "1.92", Method::GET, "/v1/nodes/v2/vmedia", None);
    assert_eq!(status, 404);
    let (status, body) = at(&s, "1.93", Method::GET, "/v1/nodes/v2/vmedia", None);
    assert_eq!(status, 200);
    assert_eq!(body.as_array().map(Vec::len), Some(3));
}

#[test]
fn indicators_are_listed_read_and_set() {
    let s = Server::start("");
    s.create_node("i1");
    let listed = s.get("/v1/nodes/i1/management/indicators");
    let items = listed["indicators"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "led-0@chassis");
    assert_eq!(items[0]["component"], "chassis");
    assert_eq!(items[0]["readonly"], true);
    assert_eq!(items[0]["states"], json!(["off", "on"]));
    assert_eq!(items[1]["states"], json!(["blinking", "off", "on"]));
    assert!(items[1]["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/v1/nodes/i1/management/indicators/led@system"));

    assert_eq!(
        s.get("/v1/nodes/i1/management/indicators/led@system"),
        json!({"state": "on"})
    );
    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/i1/management/indicators/led@system",
        Some(json!({"state": "blinking"})),
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        s.get("/v1/nodes/i1/management/indicators/led@system"),
        json!({"state": "blinking"})
    );

    let (status, body) = s.call(Method::GET, "/v1/nodes/i1/management/indicators/led", None);
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Malformed indicator name \"led\"".into())
    );
    let (status, body) = s.call(
        Method::GET,
        "/v1/nodes/i1/management/indicators/led@disk",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Invalid component disk specified.".into())
    );
    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/i1/management/indicators/led-0@chassis",
        Some(json!({"state": "off"})),
    );
    assert_eq!(status, 400, "{body}");
    // Ironic serves indicators at every version (1.63 only names them).
    let (status, _) = at(
        &s,
        "1.62",
        Method::GET,
        "/v1/nodes/i1/management/indicators",
        None,
    );
    assert_eq!(status, 200);
}
