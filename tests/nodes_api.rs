//! The node resource over HTTP: fields per microversion, listing, PATCH,
//! secrets, names, traits and deletion rules.

mod common;

use common::{faultstring, keys, reference, Server};
use reqwest::Method;
use serde_json::{json, Value};

#[test]
fn a_node_has_exactly_ironics_fields_at_each_version() {
    let s = Server::start("");
    let node = s.create_node("n1");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    assert_eq!(keys(&node), keys(&reference("ironic-39-node.json")));
    assert_eq!(node["provision_state"], "enroll");
    assert_eq!(
        node["links"][0]["href"],
        format!("{}/v1/nodes/{uuid}", s.url)
    );

    let old = s.request(Method::GET, &format!("/v1/nodes/{uuid}"), Some("1.1"), None);
    let old: Value = old.json().unwrap();
    assert!(
        old.get("name").is_none()
            && old.get("traits").is_none()
            && old.get("deploy_interface").is_none()
    );
    assert!(old.get("driver").is_some() && old.get("states").is_none());

    let at_130 = s
        .request(
            Method::GET,
            &format!("/v1/nodes/{uuid}"),
            Some("1.31"),
            None,
        )
        .json::<Value>()
        .unwrap();
    assert_eq!(at_130["deploy_interface"], "fake");
    assert!(at_130.get("storage_interface").is_none());

    let (status, body) = s.call(
        Method::GET,
        &format!("/v1/nodes/{uuid}?fields=uuid,name,bogus"),
        None,
    );
    assert_eq!(status, 400);
    assert_eq!(faultstring(&body), "Field bogus is not a valid field.");
    let picked = s.get(&format!("/v1/nodes/{uuid}?fields=name,Provision_State"));
    assert_eq!(keys(&picked), vec!["links", "name", "provision_state"]);
}

#[test]
fn lists_page_sort_and_filter() {
    let s = Server::start("");
    let mut uuids = Vec::new();
    for i in 0..5 {
        let n = s.create_node(&format!("node-{i}"));
        uuids.push(n["uuid"].as_str().unwrap().to_owned());
    }
    let list = s.get("/v1/nodes");
    let first = &list["nodes"][0];
    assert_eq!(
        keys(first),
        vec![
            "instance_uuid",
            "links",
            "maintenance",
            "name",
            "power_state",
            "provision_state",
            "uuid"
        ]
    );

    let page = s.get("/v1/nodes?limit=2&fields=uuid,name");
    assert_eq!(page["nodes"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!(
            "{}/v1/nodes?sort_key=id&sort_dir=asc&fields=uuid,name&limit=2&marker={}",
            s.url, uuids[1]
        )
    );
    let path = next.strip_prefix(&s.url).unwrap();
    let second = s.get(path);
    assert_eq!(second["nodes"][0]["uuid"], uuids[2]);

    let desc = s.get("/v1/nodes?sort_key=name&sort_dir=desc");
    assert_eq!(desc["nodes"][0]["name"], "node-4");
    let (status, body) = s.call(Method::GET, "/v1/nodes?sort_key=extra", None);
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "The sort_key value extra is an invalid field for sorting".into()
        )
    );
    let (status, _) = s.call(
        Method::GET,
        &format!(
            "/v1/nodes?marker={}",
            "5c2b03c2-8c02-48b6-90df-32b92f0dd261"
        ),
        None,
    );
    assert_eq!(status, 404);

    s.put(
        &format!("/v1/nodes/{}/maintenance", uuids[3]),
        json!({"reason": "disk"}),
    );
    let maint = s.get("/v1/nodes?maintenance=true");
    assert_eq!(maint["nodes"].as_array().unwrap().len(), 1);
    let first = s.get("/v1/nodes?maintenance=false&limit=2");
    let next = first["next"].as_str().unwrap();
    assert!(next.contains("maintenance=false"), "{next}");
    let rest = s.get(next.strip_prefix(&s.url).unwrap());
    let rest: Vec<&Value> = rest["nodes"].as_array().unwrap().iter().collect();
    assert_eq!(
        rest.len(),
        2,
        "the filter carries over: 4 nodes outside maintenance, 2 per page"
    );
    assert!(rest.iter().all(|n| n["maintenance"] == false));
    let enrolled = s.get("/v1/nodes?provision_state=enroll&limit=1000");
    assert_eq!(enrolled["nodes"].as_array().unwrap().len(), 5);
    let (status, body) = s.call(Method::GET, "/v1/nodes?provision_state=bogus", None);
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Provision state \"bogus\" is not valid".into())
    );
    let host = s.get("/v1/conductors")["conductors"][0]["hostname"]
        .as_str()
        .unwrap()
        .to_owned();
    let served = s.get(&format!("/v1/nodes?conductor={host}"));
    assert_eq!(served["nodes"].as_array().unwrap().len(), 5);
    assert_eq!(s.get("/v1/nodes?conductor=elsewhere")["nodes"], json!([]));
    let detail = s.get("/v1/nodes/detail?limit=1");
    assert!(detail["nodes"][0].get("driver_info").is_some());
    assert!(detail["next"]
        .as_str()
        .unwrap()
        .contains("/v1/nodes/detail?"));
}

#[test]
fn secrets_never_leave_the_api() {
    let s = Server::start("");
    let node = s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "driver_info": {"ipmi_password": "hunter2", "ipmi_username": "admin"},
               "instance_info": {"configdrive": "abc", "image_source": "img"}}),
    );
    assert_eq!(node["driver_info"]["ipmi_password"], "******");
    assert_eq!(node["driver_info"]["ipmi_username"], "admin");
    assert_eq!(node["instance_info"]["configdrive"], "******");
    let uuid = node["uuid"].as_str().unwrap();
    let listed = s.get("/v1/nodes/detail");
    assert!(!listed.to_string().contains("hunter2"));
    let shown = s.get(&format!("/v1/nodes/{uuid}"));
    assert!(!shown.to_string().contains("hunter2"));
}

#[test]
fn patch_updates_and_refuses_like_ironic() {
    let s = Server::start("");
    let node = s.create_node("p1");
    let uuid = node["uuid"].as_str().unwrap();
    let path = format!("/v1/nodes/{uuid}");
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([
            {"op": "add", "path": "/driver_info/ipmi_address", "value": "10.0.0.1"},
            {"op": "add", "path": "/properties/cpu_arch", "value": "x86_64"},
            {"op": "replace", "path": "/resource_class", "value": "baremetal"},
            {"op": "replace", "path": "/name", "value": "p2"},
            {"op": "replace", "path": "/deploy_interface", "value": "fake"},
        ])),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["driver_info"]["ipmi_address"], "10.0.0.1");
    assert_eq!(body["resource_class"], "baremetal");
    assert_eq!(body["name"], "p2");
    assert_eq!(s.get("/v1/nodes/p2")["uuid"], uuid);

    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "replace", "path": "/uuid", "value": "x"}])),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body)
        .starts_with("Cannot patch /uuid. Only the following can be updated: automated_clean"));
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "remove", "path": "/extra/nope"}])),
    );
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        "Couldn't apply patch '{'op': 'remove', 'path': '/extra/nope'}'. Reason: can't remove a non-existent object 'nope'"
    );
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "replace", "path": "/deploy_interface", "value": "bogus"}])),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body).contains("'ironic.hardware.interfaces.deploy' entrypoint: bogus"));
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "replace", "path": "/name", "value": "a b"}])),
    );
    assert_eq!(status, 400, "{body}");
    let other = s.create_node("taken");
    let (status, body) = s.call(
        Method::PATCH,
        &path,
        Some(json!([{"op": "replace", "path": "/name", "value": "taken"}])),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (409, "A node with name taken already exists.".into())
    );
    let _ = other;
}

#[test]
fn creation_validates_its_body() {
    let s = Server::start("");
    let (status, body) = s.call(Method::POST, "/v1/nodes", Some(json!({"name": "x"})));
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Schema error for node: 'driver' is a required property".into()
        )
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/nodes",
        Some(json!({"driver": "fake-hardware", "foo": 1})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Schema error for node: Additional properties are not allowed ('foo' was unexpected)"
                .into()
        )
    );
    let (status, body) = s.call(Method::POST, "/v1/nodes", Some(json!({"driver": "nope"})));
    assert_eq!(status, 400);
    assert!(
        faultstring(&body).starts_with("No valid host was found."),
        "{body}"
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/nodes",
        Some(json!({"driver": "fake-hardware", "name": "detail"})),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body).starts_with("The word \"detail\" is reserved"));
    s.create_node("dup");
    let (status, body) = s.call(
        Method::POST,
        "/v1/nodes",
        Some(json!({"driver": "fake-hardware", "name": "dup"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (409, "A node with name dup already exists.".into())
    );
    let ipmi = s.post(
        "/v1/nodes",
        json!({"driver": "ipmi", "deploy_interface": "direct"}),
    );
    assert_eq!(ipmi["power_interface"], "ipmitool");
    let drivers = s.get("/v1/drivers");
    let names: Vec<&Value> = drivers["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["name"])
        .collect();
    assert_eq!(
        names,
        vec!["fake-hardware", "ipmi", "redfish", "manual-management"]
    );
}

#[test]
fn traits_are_managed_through_their_endpoint() {
    let s = Server::start("");
    let node = s.create_node("t1");
    let base = format!("/v1/nodes/{}/traits", node["uuid"].as_str().unwrap());
    assert_eq!(s.put(&format!("{base}/CUSTOM_GPU"), json!(null)), 204);
    assert_eq!(
        s.put(
            &base,
            json!({"traits": ["CUSTOM_B", "CUSTOM_A", "CUSTOM_A"]})
        ),
        204
    );
    assert_eq!(s.get(&base)["traits"], json!(["CUSTOM_A", "CUSTOM_B"]));
    let (status, body) = s.call(Method::PUT, &format!("{base}/lowercase"), None);
    assert_eq!(status, 400);
    assert!(faultstring(&body).starts_with("Schema error for trait:"));
    let (status, body) = s.call(Method::DELETE, &format!("{base}/CUSTOM_NOPE"), None);
    assert_eq!(status, 404);
    assert!(faultstring(&body).ends_with("doesn't have a trait 'CUSTOM_NOPE'"));
    let many: Vec<String> = (0..51).map(|i| format!("CUSTOM_{i}")).collect();
    assert_eq!(s.put(&base, json!({"traits": many})), 400);
    assert_eq!(s.call(Method::DELETE, &base, None).0, 204);
    assert_eq!(s.get(&base)["traits"], json!([]));
}

#[test]
fn deletion_follows_the_state_rules() {
    let s = Server::start("");
    let node = s.create_node("d1");
    let uuid = node["uuid"].as_str().unwrap();
    s.post(
        "/v1/ports",
        json!({"address": "52:54:00:00:00:d1", "node_uuid": uuid}),
    );
    s.provision(uuid, "manage", "manageable");
    s.provision(uuid, "provide", "available");
    s.provision(uuid, "active", "active");
    let (status, body) = s.call(Method::DELETE, &format!("/v1/nodes/{uuid}"), None);
    assert_eq!(status, 409);
    assert!(faultstring(&body).starts_with(&format!(
        "Can not delete node \"{uuid}\" while it is in provision state \"active\""
    )));
    assert_eq!(
        s.put(&format!("/v1/nodes/{uuid}/maintenance"), json!({})),
        202
    );
    assert_eq!(
        s.call(Method::DELETE, &format!("/v1/nodes/{uuid}"), None).0,
        204
    );
    assert_eq!(
        s.call(Method::GET, &format!("/v1/nodes/{uuid}"), None).0,
        404
    );
    assert_eq!(s.get("/v1/ports")["ports"], json!([]));
}
