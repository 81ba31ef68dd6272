//! Gaps the stock clients found: routes that do not exist below their
//! microversion, ports named only by UUID or name, the `.json` suffix of
//! older clients, port groups on one physical network, and paths that are
//! not UTF-8.

mod common;

use common::{fault, faultstring, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// Status and JSON body of a call at `version` (legacy header).
fn at(s: &Server, version: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call_at(version, method, path, body)
}

fn node_with_group(s: &Server, name: &str) -> (String, String) {
    let node = s.create_node(name);
    let node_uuid = node["uuid"].as_str().expect("node uuid").to_owned();
    let group = s.post(
        "/v1/portgroups",
        json!({"node_uuid": node_uuid, "name": format!("{name}-pg")}),
    );
    (
        node_uuid,
        group["uuid"].as_str().expect("group uuid").to_owned(),
    )
}

#[test]
fn subresources_below_their_version_are_not_routes() {
    let s = Server::start("");
    let (node, group) = node_with_group(&s, "sub");
    for path in [
        format!("/v1/nodes/{node}/portgroups"),
        format!("/v1/nodes/{node}/portgroups/detail"),
        format!("/v1/portgroups/{group}/ports"),
        format!("/v1/portgroups/{group}/ports/detail"),
    ] {
        let (status, body) = at(&s, "1.23", Method::GET, &path, None);
        assert_eq!(status, 404, "{path} at 1.23: {body}");
        assert_eq!(fault(&body)["code"], 404, "{path}: routing body {body}");
        let (status, body) = at(&s, "1.24", Method::GET, &path, None);
        assert_eq!(status, 200, "{path} at 1.24: {body}");
    }
    // The whole /v1/portgroups endpoint is 1.23: 404 before any body check.
    let patch = json!([{"op": "replace", "path": "/mode", "value": "802.3ad"}]);
    let (status, body) = at(
        &s,
        "1.22",
        Method::PATCH,
        &format!("/v1/portgroups/{group}"),
        Some(patch),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The API is not supported for this version".into())
    );
    let (status, body) = at(
        &s,
        "1.23",
        Method::PATCH,
        &format!("/v1/portgroups/{group}"),
        Some(json!([{"op": "add", "path": "/extra/a", "value": "b"}])),
    );
    assert_eq!((status, body["extra"]["a"].clone()), (200, json!("b")));
}

#[test]
fn ports_are_named_by_uuid_or_name_only() {
    let s = Server::start("");
    let node = s.create_node("pn");
    let mac = "52:54:00:12:34:56";
    s.post(
        "/v1/ports",
        json!({"address": mac, "node_uuid": node["uuid"]}),
    );
    let patch = json!([{"op": "add", "path": "/extra/a", "value": "b"}]);
    for (method, ident, body) in [
        (Method::GET, mac, None),
        (Method::PATCH, mac, Some(patch.clone())),
        (Method::GET, "malformed:uuid", None),
        (Method::PATCH, "malformed:uuid", Some(patch.clone())),
    ] {
        let (status, out) = s.call(method.clone(), &format!("/v1/ports/{ident}"), body);
        assert_eq!(
            (status, faultstring(&out)),
            (
                400,
                format!("Expected UUID or name for port_ident: {ident}")
            ),
            "{method} {ident}"
        );
    }
    let (status, out) = s.call(Method::GET, "/v1/ports/no-such-port", None);
    assert_eq!(
        (status, faultstring(&out)),
        (404, "Port no-such-port could not be found.".into())
    );
    let (status, out) = s.call(Method::DELETE, &format!("/v1/ports/{mac}"), None);
    assert_eq!(
        (status, faultstring(&out)),
        (400, format!("Expected UUID for port_uuid: {mac}"))
    );
}

#[test]
fn dot_json_means_the_resource_up_to_1_90() {
    let s = Server::start("");
    let (node, group) = node_with_group(&s, "js");
    let port = s.post(
        "/v1/ports",
        json!({"address": "52:54:00:00:00:0a", "node_uuid": node}),
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let chassis = s.post("/v1/chassis", json!({}))["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    // From 1.91 the suffix is part of the name (a chassis takes only UUIDs).
    for (path, from_1_91) in [
        (format!("/v1/nodes/{node}.json"), 404),
        ("/v1/nodes/js.json".to_owned(), 404),
        (format!("/v1/portgroups/{group}.json"), 404),
        (format!("/v1/ports/{port}.json"), 404),
        (format!("/v1/chassis/{chassis}.json"), 400),
        ("/v1/nodes.json".to_owned(), 404),
    ] {
        let (status, body) = at(&s, "1.90", Method::GET, &path, None);
        assert_eq!(status, 200, "{path} at 1.90: {body}");
        let (status, _) = at(&s, "1.91", Method::GET, &path, None);
        assert_eq!(status, from_1_91, "{path} at 1.91");
    }
    let (status, body) = at(&s, "1.91", Method::GET, "/v1/nodes/js.json", None);
    assert_eq!(
        faultstring(&body),
        "Node js.json could not be found.",
        "{status}"
    );
    // Only the legacy header counts, as in Ironic.
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/nodes/js.json", s.url))
        .header("OpenStack-API-Version", "baremetal 1.90")
        .send()
        .expect("request");
    assert_eq!(resp.status().as_u16(), 404);

    // A node whose name ends in .json is still found by it.
    s.create_node("dotted.json");
    let (status, body) = at(&s, "1.90", Method::GET, "/v1/nodes/dotted.json", None);
    assert_eq!((status, body["name"].clone()), (200, json!("dotted.json")));

    let patch = json!([{"op": "add", "path": "/extra/via", "value": "json"}]);
    for path in [
        "/v1/nodes/js.json".to_owned(),
        format!("/v1/portgroups/{group}.json"),
        format!("/v1/ports/{port}.json"),
    ] {
        let (status, body) = at(&s, "1.90", Method::PATCH, &path, Some(patch.clone()));
        assert_eq!(
            (status, body["extra"]["via"].clone()),
            (200, json!("json")),
            "PATCH {path}"
        );
    }

    for path in [
        format!("/v1/ports/{port}.json"),
        format!("/v1/portgroups/{group}.json"),
        "/v1/nodes/js.json".to_owned(),
        format!("/v1/chassis/{chassis}.json"),
    ] {
        let (status, body) = at(&s, "1.90", Method::DELETE, &path, None);
        assert_eq!(status, 204, "DELETE {path}: {body}");
    }
    assert_eq!(
        s.call(Method::GET, &format!("/v1/nodes/{node}"), None).0,
        404
    );
}

#[test]
fn ports_of_a_group_share_its_physical_network() {
    let s = Server::start("");
    let (node, group) = node_with_group(&s, "pn");
    let create = |mac: &str, physnet: Value, group: Option<&str>| {
        let mut body = json!({"address": mac, "node_uuid": node, "physical_network": physnet});
        if let Some(g) = group {
            body["portgroup_uuid"] = json!(g);
        }
        s.call(Method::POST, "/v1/ports", Some(body))
    };
    let (status, first) = create("52:54:00:00:01:01", json!("net1"), Some(&group));
    assert_eq!(status, 201, "{first}");
    let (status, second) = create("52:54:00:00:01:02", json!("net1"), Some(&group));
    assert_eq!(status, 201, "{second}");
    let refused = |physnet: &str| {
        format!(
            "Port with physical network {physnet} cannot become a member of port group {group} which has ports \
             in physical network net1."
        )
    };
    let (status, body) = create("52:54:00:00:01:03", json!("net2"), Some(&group));
    assert_eq!((status, faultstring(&body)), (409, refused("net2")));
    let (status, body) = create("52:54:00:00:01:04", Value::Null, Some(&group));
    assert_eq!((status, faultstring(&body)), (409, refused("None")));

    // Joining later is checked the same way.
    let (status, loner) = create("52:54:00:00:01:05", json!("net2"), None);
    assert_eq!(status, 201, "{loner}");
    let join = json!([{"op": "add", "path": "/portgroup_uuid", "value": group}]);
    let path = format!("/v1/ports/{}", loner["uuid"].as_str().unwrap());
    let (status, body) = s.call(Method::PATCH, &path, Some(join));
    assert_eq!((status, faultstring(&body)), (409, refused("net2")));

    // A member's network: checked against the others up to 1.101, not
    // changeable at all from 1.102.
    let move_first = json!([{"op": "replace", "path": "/physical_network", "value": "net2"}]);
    let path = format!("/v1/ports/{}", first["uuid"].as_str().unwrap());
    let (status, body) = at(&s, "1.101", Method::PATCH, &path, Some(move_first.clone()));
    assert_eq!((status, faultstring(&body)), (409, refused("net2")));
    let (status, body) = at(&s, "1.102", Method::PATCH, &path, Some(move_first));
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "physical_network cannot be changed while the port belongs to a portgroup.".into()
        )
    );

    // An empty group with a network of its own takes only ports on it.
    let other = s.post(
        "/v1/portgroups",
        json!({"node_uuid": node, "physical_network": "net3"}),
    )["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = create("52:54:00:00:01:06", json!("net1"), Some(&other));
    assert_eq!(status, 409, "{body}");
    assert!(
        faultstring(&body).ends_with("which has ports in physical network net3."),
        "{body}"
    );
    let (status, body) = create("52:54:00:00:01:07", json!("net3"), Some(&other));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn paths_that_are_not_utf8_get_ironics_error_body() {
    let s = Server::start("");
    let resp = s.request(Method::GET, "/v1/nodes/%00%ff", Some("1.50"), None);
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(
        resp.headers()["x-openstack-ironic-api-version"],
        "1.50",
        "stamped like any answer"
    );
    let body: Value = resp.json().expect("JSON body");
    let inner = fault(&body);
    assert_eq!(inner["code"], 400, "{body}");
    assert_eq!(inner["title"], "Bad Request", "{body}");
    let (status, body) = s.call(Method::GET, "/v1/ports/no%2Dsuch", None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "Port no-such could not be found.".into()),
        "escapes that decode are looked up as usual"
    );
}

#[test]
fn node_states_keep_ironics_key_order() {
    let s = Server::start("");
    let node = s.create_node("states-order");
    let uuid = node["uuid"].as_str().expect("uuid");
    let states = s.get(&format!("/v1/nodes/{uuid}/states"));
    let keys: Vec<&str> = states
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    // As a real Ironic 39 answered.
    assert_eq!(
        keys,
        [
            "console_enabled",
            "last_error",
            "power_state",
            "provision_state",
            "target_power_state",
            "target_provision_state",
            "provision_updated_at",
            "raid_config",
            "target_raid_config",
            "boot_mode",
            "secure_boot",
        ]
    );
}
