//! Volume connectors and targets (1.32) and inspection rules (1.96) over
//! HTTP.

mod common;

use std::time::{Duration, Instant};

use common::{fault, faultstring, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn at(s: &Server, version: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let resp = s.request(method, path, Some(version), body.as_ref());
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn set_power(s: &Server, uuid: &str, target: &str) {
    let states = format!("/v1/nodes/{uuid}/states");
    assert_eq!(
        s.put(&format!("{states}/power"), json!({"target": target})),
        202
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let st = s.get(&states);
        if st["power_state"] == target && st["target_power_state"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "power {target}: {st}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn names(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn volume_endpoints_appear_at_1_32() {
    let s = Server::start("");
    let node = s.create_node("vgate");
    let uuid = node["uuid"].as_str().unwrap();
    let (status, body) = at(&s, "1.31", Method::GET, "/v1/volume", None);
    assert_eq!(status, 404);
    assert_eq!(
        faultstring(&body),
        "The API is not supported for this version"
    );
    for path in [
        "/v1/volume/connectors".to_owned(),
        "/v1/volume/targets".to_owned(),
        format!("/v1/nodes/{uuid}/volume/connectors"),
    ] {
        let (status, body) = at(&s, "1.31", Method::GET, &path, None);
        assert_eq!(status, 404, "{path}");
        assert_eq!(fault(&body)["code"], 404, "{path}");
    }
    let (status, _) = at(
        &s,
        "1.31",
        Method::GET,
        &format!("/v1/nodes/{uuid}/volume"),
        None,
    );
    assert_eq!(status, 404);
    let n = at(&s, "1.31", Method::GET, &format!("/v1/nodes/{uuid}"), None).1;
    assert!(n.get("volume").is_none());
    let v1 = at(&s, "1.31", Method::GET, "/v1", None).1;
    assert!(v1.get("volume").is_none());

    let (status, body) = at(&s, "1.32", Method::GET, "/v1/volume", None);
    assert_eq!(status, 200);
    assert_eq!(names(&body), vec!["links", "connectors", "targets"]);
    assert!(body["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/v1/volume/"));
    assert!(body["connectors"][1]["href"]
        .as_str()
        .unwrap()
        .ends_with("/volume/connectors"));
    let (status, body) = at(&s, "1.32", Method::GET, "/v1/volume/connectors", None);
    assert_eq!((status, body), (200, json!({"connectors": []})));
    let body = at(
        &s,
        "1.32",
        Method::GET,
        &format!("/v1/nodes/{uuid}/volume"),
        None,
    )
    .1;
    assert!(body["targets"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/nodes/{uuid}/volume/targets")));
    let n = at(&s, "1.32", Method::GET, &format!("/v1/nodes/{uuid}"), None).1;
    assert!(n.get("volume").is_some());
    let v1 = at(&s, "1.32", Method::GET, "/v1", None).1;
    assert!(v1.get("volume").is_some());
}

#[test]
fn volume_connectors_follow_ironic() {
    let s = Server::start("");
    let node = s.create_node("vc");
    let uuid = node["uuid"].as_str().unwrap();
    let c = s.post(
        "/v1/volume/connectors",
        json!({"node_uuid": uuid, "type": "iqn", "connector_id": "iqn.2017-07.org.openstack:01:x"}),
    );
    assert_eq!(
        names(&c),
        vec![
            "uuid",
            "created_at",
            "updated_at",
            "connector_id",
            "extra",
            "type",
            "links",
            "node_uuid"
        ]
    );
    assert_eq!(c["extra"], json!({}));
    let cu = c["uuid"].as_str().unwrap().to_owned();

    let (status, body) = s.call(
        Method::POST,
        "/v1/volume/connectors",
        Some(json!({"node_uuid": uuid, "type": "iqn", "connector_id": "iqn.2017-07.org.openstack:01:x"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (409, "A volume connector with type iqn and connector ID iqn.2017-07.org.openstack:01:x already exists.".into())
    );
    let cases = [
        (json!({"node_uuid": uuid, "connector_id": "x"}), "Schema error for connector: 'type' is a required property"),
        (json!({"node_uuid": uuid, "type": "ip", "connector_id": "x", "foo": 1}), "Schema error for connector: Additional properties are not allowed ('foo' was unexpected)"),
        (json!({"node_uuid": "nope", "type": "ip", "connector_id": "x"}), "Expected UUID for node_uuid: nope"),
        (json!({"node_uuid": "eeeeeeee-cccc-aaaa-bbbb-cccccccccccc", "type": "ip", "connector_id": "x"}), "Invalid input for field/attribute node_uuid. Value: 'eeeeeeee-cccc-aaaa-bbbb-cccccccccccc'. "),
    ];
    for (body, want) in cases {
        let (status, out) = s.call(Method::POST, "/v1/volume/connectors", Some(body));
        assert_eq!((status, faultstring(&out).as_str()), (400, want));
    }
    let (status, out) = s.call(
        Method::POST,
        &format!("/v1/nodes/{uuid}/volume/connectors"),
        Some(json!({"node_uuid": uuid, "type": "ip", "connector_id": "10.0.0.1"})),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Malformed request URI.")
    );

    let list = s.get("/v1/volume/connectors");
    assert_eq!(
        names(&list["connectors"][0]),
        vec!["uuid", "connector_id", "type", "links", "node_uuid"]
    );
    let detail = s.get("/v1/volume/connectors?detail=True");
    assert!(detail["connectors"][0].get("extra").is_some());
    let by_name = s.get("/v1/volume/connectors?node=vc");
    assert_eq!(by_name["connectors"].as_array().unwrap().len(), 1);
    let of_node = s.get(&format!("/v1/nodes/{uuid}/volume/connectors"));
    assert_eq!(of_node["connectors"][0]["uuid"], cu.as_str());
    let (status, out) = s.call(Method::GET, "/v1/nodes/vc/volume/connectors", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (404, "Node vc could not be found.")
    );
    let (status, out) = s.call(Method::GET, "/v1/volume/connectors/detail", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Expected UUID for connector_uuid: detail")
    );
    let (status, out) = s.call(
        Method::GET,
        "/v1/volume/connectors?fields=uuid&detail=True",
        None,
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Can't fetch a subset of fields with 'detail' set")
    );
    let (status, out) = s.call(Method::GET, "/v1/volume/connectors?fields=bogus", None);
    assert_eq!(status, 400);
    assert!(faultstring(&out).starts_with("Schema error: 'bogus' is not one of ['connector_id',"));
    let (status, out) = s.call(Method::GET, "/v1/volume/connectors?sort_key=extra", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (
            400,
            "The sort_key value extra is an invalid field for sorting"
        )
    );
    let shown = s.get(&format!("/v1/volume/connectors/{cu}?fields=type"));
    assert_eq!(names(&shown), vec!["type", "links"]);
    let (status, out) = s.call(
        Method::GET,
        &format!("/v1/nodes/{uuid}/volume/connectors/{cu}"),
        None,
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Malformed request URI.")
    );

    s.post(
        "/v1/volume/connectors",
        json!({"node_uuid": uuid, "type": "mac", "connector_id": "52:54:00:00:00:01"}),
    );
    let page = s.get("/v1/volume/connectors?limit=1");
    assert_eq!(
        page["next"].as_str().unwrap(),
        format!("{}/v1/volume/connectors?sort_key=id&sort_dir=asc&fields=uuid,node_uuid,type,connector_id&limit=1&marker={cu}", s.url)
    );

    // The node has no power state yet: changes are refused.
    let patch = json!([{"op": "add", "path": "/extra/rack", "value": "r1"}]);
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/volume/connectors/{cu}"),
        Some(patch.clone()),
    );
    assert_eq!(
        (status, faultstring(&out)),
        (400, format!("The requested action \"volume connector update\" can not be performed on node \"{uuid}\" while it is in state \"None\"."))
    );
    set_power(&s, uuid, "power off");
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/volume/connectors/{cu}"),
        Some(patch),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["extra"], json!({"rack": "r1"}));
    assert!(out["updated_at"].is_string());
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/volume/connectors/{cu}"),
        Some(json!([{"op": "replace", "path": "/connector_id", "value": "52:54:00:00:00:01"}, {"op": "replace", "path": "/type", "value": "mac"}])),
    );
    assert_eq!(
        (status, faultstring(&out)),
        (
            409,
            "A volume connector with type mac and connector ID 52:54:00:00:00:01 already exists."
                .into()
        )
    );
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/volume/connectors/{cu}"),
        Some(json!([{"op": "replace", "path": "/uuid", "value": "x"}])),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Cannot patch /uuid. Only the following can be updated: connector_id, extra, node_uuid, type")
    );
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/volume/connectors/{cu}"),
        Some(json!([{"op": "replace", "path": "/node_uuid", "value": "eeeeeeee-cccc-aaaa-bbbb-cccccccccccc"}])),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Unable to apply the requested node_uuid 'eeeeeeee-cccc-aaaa-bbbb-cccccccccccc'. Requested value was invalid.")
    );

    // Powered on outside enroll/manageable: no deletion either.
    s.provision(uuid, "manage", "manageable");
    s.provision(uuid, "provide", "available");
    set_power(&s, uuid, "power on");
    let (status, out) = s.call(Method::DELETE, &format!("/v1/volume/connectors/{cu}"), None);
    assert_eq!(
        (status, faultstring(&out)),
        (400, format!("The requested action \"volume connector deletion\" can not be performed on node \"{uuid}\" while it is in state \"power on\"."))
    );
    set_power(&s, uuid, "power off");
    assert_eq!(
        s.call(Method::DELETE, &format!("/v1/volume/connectors/{cu}"), None)
            .0,
        204
    );
    let (status, out) = s.call(Method::GET, &format!("/v1/volume/connectors/{cu}"), None);
    assert_eq!(
        (status, faultstring(&out)),
        (404, format!("Volume connector {cu} could not be found."))
    );
}

#[test]
fn volume_targets_follow_ironic_and_go_with_their_node() {
    let s = Server::start("");
    let node = s.create_node("vt");
    let uuid = node["uuid"].as_str().unwrap();
    let t = s.post(
        "/v1/volume/targets",
        json!({"node_uuid": uuid, "volume_type": "iscsi", "volume_id": "04452bed-5367-4202-8bf5-de4335ac56d2",
               "boot_index": 0, "properties": {"auth_password": "hunter2", "target_iqn": "iqn.x"}}),
    );
    assert_eq!(
        names(&t),
        vec![
            "uuid",
            "created_at",
            "updated_at",
            "boot_index",
            "extra",
            "properties",
            "volume_id",
            "volume_type",
            "links",
            "node_uuid"
        ]
    );
    assert_eq!(
        t["properties"],
        json!({"auth_password": "******", "target_iqn": "iqn.x"})
    );
    let (status, out) = s.call(
        Method::POST,
        "/v1/volume/targets",
        Some(
            json!({"node_uuid": uuid, "volume_type": "iscsi", "volume_id": "v2", "boot_index": 0}),
        ),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (
            409,
            "A volume target with boot index '0' for the same node already exists."
        )
    );
    let (status, out) = s.call(
        Method::POST,
        "/v1/volume/targets",
        Some(json!({"node_uuid": uuid, "volume_type": "iscsi", "volume_id": "v2", "boot_index": "1"})),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Schema error for target: '1' is not of type 'integer'")
    );
    s.post(
        "/v1/volume/targets",
        json!({"node_uuid": uuid, "volume_type": "iscsi", "volume_id": "v2", "boot_index": 1}),
    );
    let list = s.get(&format!(
        "/v1/nodes/{uuid}/volume/targets?sort_key=boot_index&sort_dir=desc"
    ));
    let idx: Vec<i64> = list["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["boot_index"].as_i64().unwrap())
        .collect();
    assert_eq!(idx, vec![1, 0]);
    assert_eq!(
        names(&list["targets"][0]),
        vec![
            "uuid",
            "boot_index",
            "volume_id",
            "volume_type",
            "links",
            "node_uuid"
        ]
    );
    let (status, out) = s.call(Method::GET, "/v1/volume/targets?sort_dir=up", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Schema error: 'up' is not one of ['asc', 'desc']")
    );

    assert_eq!(
        s.call(Method::DELETE, &format!("/v1/nodes/{uuid}"), None).0,
        204
    );
    assert_eq!(s.get("/v1/volume/targets"), json!({"targets": []}));
}

#[test]
fn inspection_rules_appear_at_1_96() {
    let s = Server::start("");
    let (status, body) = at(&s, "1.95", Method::GET, "/v1/inspection_rules", None);
    assert_eq!(
        (status, faultstring(&body).as_str()),
        (404, "The API version does not allow inspection rules")
    );
    let rule = json!({"actions": [{"op": "log", "args": {"msg": "hi"}}]});
    let (status, body) = at(
        &s,
        "1.95",
        Method::POST,
        "/v1/inspection_rules",
        Some(rule.clone()),
    );
    assert_eq!(
        (status, faultstring(&body).as_str()),
        (405, "The API version does not allow inspection rules")
    );
    assert!(at(&s, "1.95", Method::GET, "/v1", None)
        .1
        .get("inspection_rules")
        .is_none());
    let (status, body) = at(&s, "1.96", Method::GET, "/v1/inspection_rules", None);
    assert_eq!((status, body), (200, json!({"inspection_rules": []})));
    let (status, _) = at(&s, "1.96", Method::POST, "/v1/inspection_rules", Some(rule));
    assert_eq!(status, 201);
    assert!(at(&s, "1.96", Method::GET, "/v1", None)
        .1
        .get("inspection_rules")
        .is_some());
}

#[test]
fn inspection_rules_follow_ironic() {
    let s = Server::start("");
    let rule = s.post(
        "/v1/inspection_rules",
        json!({
            "description": "BMC credentials",
            "priority": 100,
            "conditions": [{"op": "eq", "args": {"values": ["{inventory[system_vendor][manufacturer]}", "Dell"]}}],
            "actions": [
                {"op": "set-attribute", "args": {"path": "driver_info/ipmi_password", "value": "x"}},
                {"op": "set-plugin-data", "args": {"path": "a.b", "value": 1}, "unique": true},
            ],
        }),
    );
    assert_eq!(
        names(&rule),
        vec![
            "uuid",
            "created_at",
            "updated_at",
            "description",
            "priority",
            "sensitive",
            "phase",
            "conditions",
            "actions",
            "links"
        ]
    );
    assert_eq!(
        (rule["phase"].as_str(), rule["sensitive"].as_bool()),
        (Some("main"), Some(false))
    );
    assert_eq!(
        rule["actions"][1],
        json!({"op": "set-plugin-data", "args": {"path": "a.b", "value": 1, "plugin_data": {}}})
    );
    let uuid = rule["uuid"].as_str().unwrap().to_owned();
    assert!(rule["links"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/inspection/{uuid}")));

    let cases = [
        (json!({"conditions": []}), "Schema error: 'actions' is a required property"),
        (json!({"actions": []}), "Schema error: [] should be non-empty"),
        (json!({"actions": [{"op": "nope", "args": {}}]}), "Schema error: 'nope' is not one of ['fail', 'log', 'set-attribute', 'extend-attribute', 'del-attribute', 'set-capability', 'unset-capability', 'add-trait', 'remove-trait', 'set-plugin-data', 'extend-plugin-data', 'unset-plugin-data', 'set-port-attribute', 'extend-port-attribute', 'del-port-attribute', 'api-call']"),
        (json!({"actions": [{"op": "log", "args": {"msg": "m"}}], "priority": -1}), "Schema error: -1 is less than the minimum of 0"),
        (json!({"actions": [{"op": "log", "args": {"msg": "m"}}], "priority": 10000}), "Priority must be between 0 and 9999 for user-defined rules."),
        (json!({"actions": [{"op": "log", "args": {"msg": "m"}}], "phase": "late"}), "Invalid phase: late. Valid phases are: main"),
        (json!({"actions": [{"op": "log", "args": {}}]}), "missing required argument(s): msg"),
        (json!({"actions": [{"op": "log", "args": {"msg": "m"}}], "conditions": null}), "Schema error: None is not of type 'array'"),
    ];
    for (body, want) in cases {
        let (status, out) = s.call(Method::POST, "/v1/inspection_rules", Some(body));
        assert_eq!((status, faultstring(&out).as_str()), (400, want));
    }

    let list = s.get("/v1/inspection_rules");
    assert_eq!(
        names(&list["inspection_rules"][0]),
        vec!["uuid", "description", "priority", "phase", "links"]
    );
    let (status, out) = s.call(Method::GET, "/v1/inspection_rules?fields=bogus", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Field(s) \"bogus\" are not valid")
    );
    let (status, out) = s.call(Method::GET, "/v1/inspection_rules?sort_key=actions", None);
    assert_eq!(status, 400);
    assert!(faultstring(&out).starts_with("Schema error: 'actions' should not be valid under"));
    s.post(
        "/v1/inspection_rules",
        json!({"actions": [{"op": "log", "args": ["hello"]}], "sensitive": true}),
    );
    let page = s.get("/v1/inspection_rules?limit=1&phase=main");
    assert_eq!(
        page["next"].as_str().unwrap(),
        format!("{}/v1/inspection?filters={{'phase': 'main'}}&sort_key=id&sort_dir=asc&fields=uuid,priority,phase,description&limit=1&marker={uuid}", s.url)
    );
    let detail = s.get("/v1/inspection_rules?detail=True");
    let secret = &detail["inspection_rules"][1];
    assert_eq!(
        (
            secret["sensitive"].as_bool(),
            &secret["actions"],
            &secret["conditions"]
        ),
        (Some(true), &Value::Null, &Value::Null)
    );
    let secret_uuid = secret["uuid"].as_str().unwrap().to_owned();

    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/inspection_rules/{uuid}"),
        Some(json!([{"op": "replace", "path": "/priority", "value": 50}, {"op": "add", "path": "/sensitive", "value": true}])),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (out["priority"].as_i64(), &out["actions"]),
        (Some(50), &Value::Null)
    );
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/inspection_rules/{secret_uuid}"),
        Some(json!([{"op": "replace", "path": "/sensitive", "value": false}])),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Couldn't apply patch '[{'op': 'replace', 'path': '/sensitive', 'value': False}]'. Reason: Inspection rules cannot have the sensitive flag unset.")
    );
    let (status, out) = s.call(
        Method::PATCH,
        &format!("/v1/inspection_rules/{secret_uuid}"),
        Some(json!([{"op": "replace", "path": "/priority", "value": "high"}])),
    );
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (
            400,
            "Schema error for patch: 'high' is not of type 'integer'"
        )
    );

    assert_eq!(
        s.call(
            Method::DELETE,
            &format!("/v1/inspection_rules/{uuid}"),
            None
        )
        .0,
        204
    );
    let (status, out) = s.call(Method::GET, &format!("/v1/inspection_rules/{uuid}"), None);
    assert_eq!(
        (status, faultstring(&out)),
        (404, format!("Rule {uuid} could not be found."))
    );
    let (status, out) = s.call(Method::DELETE, "/v1/inspection_rules/nope", None);
    assert_eq!(
        (status, faultstring(&out).as_str()),
        (400, "Schema error: 'nope' is not a 'uuid'")
    );
}
