//! Ports, port groups, chassis, drivers and conductors over HTTP.

mod common;

use common::{faultstring, keys, reference, Server};
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn ports_are_created_found_and_guarded() {
    let s = Server::start("");
    let node = s.create_node("pn");
    let uuid = node["uuid"].as_str().unwrap();
    let port = s.post(
        "/v1/ports",
        json!({"address": "52:54:00:AB:CD:EF", "node_uuid": uuid}),
    );
    assert_eq!(keys(&port), keys(&reference("ironic-39-port.json")));
    assert_eq!(port["address"], "52:54:00:ab:cd:ef");
    assert_eq!(port["pxe_enabled"], true);
    let port_uuid = port["uuid"].as_str().unwrap();

    let (status, body) = s.call(
        Method::POST,
        "/v1/ports",
        Some(json!({"address": "52:54:00:ab:cd:ef", "node_uuid": uuid})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            409,
            "A port with MAC address 52:54:00:ab:cd:ef already exists.".into()
        )
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/ports",
        Some(json!({"address": "zz", "node_uuid": uuid})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Expected valid MAC address for address: zz".into())
    );

    let by_mac = s.get("/v1/ports?address=52:54:00:AB:CD:EF");
    assert_eq!(by_mac["ports"][0]["uuid"], port_uuid);
    assert_eq!(keys(&by_mac["ports"][0]), vec!["address", "links", "uuid"]);
    let of_node = s.get(&format!("/v1/nodes/{uuid}/ports"));
    assert_eq!(of_node["ports"].as_array().unwrap().len(), 1);
    let of_name = s.get("/v1/nodes/pn/ports/detail");
    assert_eq!(of_name["ports"][0]["node_uuid"], uuid);

    let (status, body) = s.call(
        Method::PATCH,
        &format!("/v1/ports/{port_uuid}"),
        Some(json!([{"op": "add", "path": "/extra/switch", "value": "sw1"}, {"op": "replace", "path": "/pxe_enabled", "value": false}])),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["extra"]["switch"], "sw1");
    assert_eq!(body["pxe_enabled"], false);

    s.provision(uuid, "manage", "manageable");
    s.provision(uuid, "provide", "available");
    s.provision(uuid, "active", "active");
    let (status, body) = s.call(
        Method::PATCH,
        &format!("/v1/ports/{port_uuid}"),
        Some(json!([{"op": "replace", "path": "/address", "value": "52:54:00:00:00:01"}])),
    );
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        s.call(Method::DELETE, &format!("/v1/ports/{port_uuid}"), None)
            .0,
        204
    );
    assert_eq!(
        s.call(Method::GET, &format!("/v1/ports/{port_uuid}"), None)
            .0,
        404
    );
}

#[test]
fn port_groups_hold_ports_of_their_node() {
    let s = Server::start("");
    let node = s.create_node("gn");
    let uuid = node["uuid"].as_str().unwrap();
    let group = s.post(
        "/v1/portgroups",
        json!({"node_uuid": uuid, "name": "bond0", "address": "52:54:00:00:01:00"}),
    );
    assert_eq!(group["mode"], "active-backup");
    let group_uuid = group["uuid"].as_str().unwrap();
    let port = s.post(
        "/v1/ports",
        json!({"address": "52:54:00:00:01:01", "node_uuid": uuid, "portgroup_uuid": group_uuid}),
    );
    assert_eq!(port["portgroup_uuid"], group_uuid);
    let members = s.get("/v1/portgroups/bond0/ports");
    assert_eq!(members["ports"].as_array().unwrap().len(), 1);
    let (status, body) = s.call(Method::DELETE, "/v1/portgroups/bond0", None);
    assert_eq!(status, 400);
    assert!(faultstring(&body).contains("contains ports"), "{body}");
    let (status, body) = s.call(
        Method::PATCH,
        "/v1/portgroups/bond0",
        Some(json!([{"op": "replace", "path": "/mode", "value": "802.3ad"}])),
    );
    assert_eq!((status, body["mode"].clone()), (200, json!("802.3ad")));
    s.call(
        Method::DELETE,
        &format!("/v1/ports/{}", port["uuid"].as_str().unwrap()),
        None,
    );
    assert_eq!(s.call(Method::DELETE, "/v1/portgroups/bond0", None).0, 204);
    let (status, _) = s
        .request(Method::GET, "/v1/portgroups", Some("1.22"), None)
        .status()
        .as_u16()
        .pipe(|st| (st, ()));
    assert_eq!(status, 404);
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

#[test]
fn chassis_group_nodes() {
    let s = Server::start("");
    let chassis = s.post("/v1/chassis", json!({"description": "rack 12"}));
    let cuuid = chassis["uuid"].as_str().unwrap();
    assert_eq!(
        chassis["nodes"][0][0]["href"],
        format!("{}/v1/chassis/{cuuid}/nodes", s.url)
    );
    let node = s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "chassis_uuid": cuuid}),
    );
    assert_eq!(node["chassis_uuid"], cuuid);
    let nodes = s.get(&format!("/v1/chassis/{cuuid}/nodes"));
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);
    let (status, body) = s.call(Method::DELETE, &format!("/v1/chassis/{cuuid}"), None);
    assert_eq!(status, 400, "{body}");
    let (status, body) = s.call(
        Method::PATCH,
        &format!("/v1/chassis/{cuuid}"),
        Some(json!([{"op": "replace", "path": "/description", "value": "rack 13"}])),
    );
    assert_eq!(
        (status, body["description"].clone()),
        (200, json!("rack 13"))
    );
    let (status, _) = s.call(Method::POST, "/v1/nodes", Some(json!({"driver": "fake-hardware", "chassis_uuid": "5c2b03c2-8c02-48b6-90df-32b92f0dd261"})));
    assert_eq!(status, 404);
}

#[test]
fn drivers_and_conductors_describe_this_ferric() {
    let s = Server::start("[conductor]\nhost = \"c1\"\n");
    let list = s.get("/v1/drivers?detail=true");
    let reference = reference("ironic-39-drivers.json");
    let fake = &list["drivers"][0];
    let want = reference["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "fake-hardware")
        .unwrap();
    assert_eq!(keys(fake), keys(want));
    assert_eq!(fake["hosts"], json!(["c1"]));
    assert_eq!(fake["default_deploy_interface"], "fake");
    assert_eq!(
        fake["enabled_deploy_interfaces"],
        json!(["fake", "direct", "iscsi"])
    );
    assert_eq!(s.get("/v1/drivers/fake-hardware")["name"], "fake-hardware");
    assert_eq!(
        s.get("/v1/drivers/fake-hardware/properties"),
        json!({"B1": "B1 description. Required.", "B2": "B2 description. Required."})
    );
    assert_eq!(s.get("/v1/drivers/ipmi")["name"], "ipmi");
    let (status, body) = s.call(Method::GET, "/v1/drivers/idrac", None);
    assert_eq!(status, 404);
    assert_eq!(
        faultstring(&body),
        "Could not find the following driver(s) or hardware type(s): idrac."
    );

    let conductors = s.get("/v1/conductors");
    assert_eq!(
        conductors["conductors"],
        json!([{"hostname": "c1", "conductor_group": "", "alive": true,
        "links": [{"href": format!("{}/v1/conductors/c1", s.url), "rel": "self"}, {"href": format!("{}/conductors/c1", s.url), "rel": "bookmark"}]}])
    );
    let one = s.get("/v1/conductors/c1");
    assert_eq!(
        one["drivers"],
        json!(["fake-hardware", "ipmi", "redfish", "manual-management"])
    );
    let old: Value = s
        .request(Method::GET, "/v1/conductors", Some("1.48"), None)
        .json()
        .unwrap();
    assert_eq!(
        faultstring(&old),
        "The API is not supported for this version"
    );
}
