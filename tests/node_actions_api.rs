//! Node actions over HTTP: the console, vendor passthru, driver RAID
//! properties and target RAID configs, children, shards and events.

mod common;

use std::time::{Duration, Instant};

use common::{faultstring, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// Polls the node until `field` is `want` and it is not locked.
fn wait_field(s: &Server, node: &str, field: &str, want: Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = s.get(&format!("/v1/nodes/{node}"));
        if n[field] == want && n["reservation"].is_null() {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{field} of {node} stays {}",
            n[field]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unknown_driver_is_not_found(s: &Server, path: &str) {
    let (status, body) = s.call(Method::GET, path, None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The driver 'nope' is unknown.".into())
    );
}

#[test]
fn console_is_enabled_shown_and_disabled() {
    let s = Server::start("");
    s.create_node("c1");
    let shown = s.get("/v1/nodes/c1/states/console");
    assert_eq!(
        shown,
        json!({"console_enabled": false, "console_info": null})
    );

    let resp = s.request(
        Method::PUT,
        "/v1/nodes/c1/states/console",
        Some("1.90"),
        Some(&json!({"enabled": true})),
    );
    assert_eq!(resp.status().as_u16(), 202);
    assert!(resp.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/v1/nodes/c1/states/console"));
    wait_field(&s, "c1", "console_enabled", json!(true));
    let shown = s.get("/v1/nodes/c1/states/console");
    assert_eq!(shown, json!({"console_enabled": true, "console_info": {}}));
    assert_eq!(s.get("/v1/nodes/c1/states")["console_enabled"], true);

    // The state it is already in: accepted, nothing happens.
    assert_eq!(
        s.put("/v1/nodes/c1/states/console", json!({"enabled": true})),
        202
    );
    assert_eq!(
        s.put("/v1/nodes/c1/states/console", json!({"enabled": "false"})),
        202
    );
    wait_field(&s, "c1", "console_enabled", json!(false));

    let (status, body) = s.call(Method::PUT, "/v1/nodes/c1/states/console", Some(json!({})));
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Missing mandatory parameter: enabled".into())
    );
    // The query's arguments count as the body's, as in Ironic.
    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/c1/states/console?foo=1",
        Some(json!({"enabled": true})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Unexpected arguments: foo".into())
    );
    assert_eq!(
        s.call(
            Method::PUT,
            "/v1/nodes/c1/states/console?enabled=true",
            Some(json!({}))
        )
        .0,
        202
    );
    wait_field(&s, "c1", "console_enabled", json!(true));
    let (status, _) = s.call(Method::GET, "/v1/nodes/nope/states/console", None);
    assert_eq!(status, 404);
}

#[test]
fn a_node_without_a_console_interface_is_refused() {
    let s = Server::start("");
    s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "name": "nc", "console_interface": "no-console"}),
    );
    let (status, body) = s.call(
        Method::PUT,
        "/v1/nodes/nc/states/console",
        Some(json!({"enabled": true})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Driver fake-hardware does not support console (disabled or not implemented).".into()
        )
    );
    assert_eq!(
        s.get("/v1/nodes/nc/states/console"),
        json!({"console_enabled": false, "console_info": null})
    );
}

#[test]
fn node_vendor_passthru_lists_and_calls_the_fake_methods() {
    let s = Server::start("");
    s.create_node("v1");
    let methods = s.get("/v1/nodes/v1/vendor_passthru/methods");
    let names: Vec<&String> = methods.as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        [
            "fourth_method_shared_lock",
            "log_passthrough",
            "second_method",
            "third_method_sync"
        ]
    );
    assert_eq!(
        methods["third_method_sync"],
        json!({"http_methods": ["POST"], "async": false, "description": "Test if the value of bar is meow",
               "attach": false, "require_exclusive_lock": true})
    );
    assert_eq!(
        methods["fourth_method_shared_lock"]["require_exclusive_lock"],
        false
    );

    // Synchronous: 200 with the method's answer; by query or by path.
    let call = |path: &str, body: Value| s.call(Method::POST, path, Some(body));
    assert_eq!(
        call(
            "/v1/nodes/v1/vendor_passthru?method=third_method_sync",
            json!({"bar": "meow"})
        ),
        (200, json!(true))
    );
    assert_eq!(
        call(
            "/v1/nodes/v1/vendor_passthru/third_method_sync",
            json!({"bar": "woof"})
        ),
        (200, json!(false))
    );
    // Asynchronous: 202 and no body, with or without the lock.
    for method in [
        "second_method",
        "fourth_method_shared_lock",
        "log_passthrough",
    ] {
        let (status, body) = call(
            &format!("/v1/nodes/v1/vendor_passthru/{method}"),
            json!({"bar": "x"}),
        );
        assert_eq!((status, body), (202, Value::Null), "{method}");
    }
    wait_field(&s, "v1", "reservation", Value::Null);

    let (status, body) = call("/v1/nodes/v1/vendor_passthru/second_method", json!({}));
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "Parameter 'bar' not passed to method 'second_method'.".into()
        )
    );
    let (status, body) = call("/v1/nodes/v1/vendor_passthru/nope", json!({}));
    assert_eq!(
        (status, faultstring(&body)),
        (400, "No handler for method nope".into())
    );
    let (status, body) = s.call(
        Method::GET,
        "/v1/nodes/v1/vendor_passthru/second_method",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            400,
            "The method second_method does not support HTTP GET".into()
        )
    );
    // Only GET lists the methods; otherwise `methods` is a method's name.
    for path in [
        "/v1/nodes/v1/vendor_passthru/methods",
        "/v1/drivers/fake-hardware/vendor_passthru/methods",
    ] {
        let (status, body) = call(path, json!({}));
        assert_eq!(
            (status, faultstring(&body)),
            (400, "No handler for method methods".into()),
            "{path}"
        );
    }
    let (status, body) = call("/v1/nodes/v1/vendor_passthru", json!({}));
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Missing mandatory parameter: method".into())
    );
    let (status, body) = call("/v1/nodes/v1/vendor_passthru?method=", json!({}));
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Method not specified".into())
    );
    let (status, body) = call(
        "/v1/nodes/v1/vendor_passthru/third_method_sync",
        json!({"bar": "meow", "baz": 1}),
    );
    assert_eq!(status, 500);
    assert_eq!(
        faultstring(&body),
        "FakeVendorB.third_method_sync() got an unexpected keyword argument 'baz'"
    );

    s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "name": "nv", "vendor_interface": "no-vendor"}),
    );
    assert_eq!(s.get("/v1/nodes/nv/vendor_passthru/methods"), json!({}));
    let (status, body) = call(
        "/v1/nodes/nv/vendor_passthru/second_method",
        json!({"bar": "x"}),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "No handler for method second_method".into())
    );
}

#[test]
fn driver_vendor_passthru_has_no_fake_methods() {
    let s = Server::start("");
    assert_eq!(
        s.get("/v1/drivers/fake-hardware/vendor_passthru/methods"),
        json!({})
    );
    assert_eq!(s.get("/v1/drivers/ipmi/vendor_passthru/methods"), json!({}));
    let (status, body) = s.call(
        Method::POST,
        "/v1/drivers/fake-hardware/vendor_passthru?method=lookup",
        Some(json!({})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "No handler for method lookup".into())
    );
    unknown_driver_is_not_found(&s, "/v1/drivers/nope/vendor_passthru/methods");
    let (status, body) = s.call(
        Method::POST,
        "/v1/drivers/nope/vendor_passthru/x",
        Some(json!({})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The driver 'nope' is unknown.".into())
    );
}

#[test]
fn driver_raid_properties_are_ironics_schema_from_1_12() {
    let s = Server::start("");
    let props = s.get("/v1/drivers/fake-hardware/raid/logical_disk_properties");
    let names: Vec<&String> = props.as_object().unwrap().keys().collect();
    assert_eq!(names.len(), 10);
    assert_eq!(names[..2], ["raid_level", "size_gb"]);
    assert!(props["raid_level"]
        .as_str()
        .unwrap()
        .starts_with("RAID level for the logical disk."));
    assert_eq!(
        s.get("/v1/drivers/ipmi/raid/logical_disk_properties"),
        props
    );

    let path = "/v1/drivers/fake-hardware/raid/logical_disk_properties";
    assert_eq!(s.call_at("1.12", Method::GET, path, None).0, 200);
    let (status, body) = s.call_at("1.11", Method::GET, path, None);
    assert_eq!(
        (status, faultstring(&body)),
        (406, "Request not acceptable.".into())
    );
    unknown_driver_is_not_found(&s, "/v1/drivers/nope/raid/logical_disk_properties");
}

#[test]
fn target_raid_configs_are_validated_against_ironics_schema() {
    let s = Server::start("");
    s.create_node("r1");
    let good =
        json!({"logical_disks": [{"raid_level": "1", "size_gb": 100, "is_root_volume": true}]});
    assert_eq!(s.put("/v1/nodes/r1/states/raid", good.clone()), 204);
    assert_eq!(s.get("/v1/nodes/r1")["target_raid_config"], good);

    let refused = |body: Value| {
        let (status, out) = s.call(Method::PUT, "/v1/nodes/r1/states/raid", Some(body));
        (status, faultstring(&out))
    };
    assert_eq!(
        refused(json!({"logical_disks": [{"raid_level": "7", "size_gb": 1}]})),
        (
            400,
            "RAID config validation error: '7' is not one of ['JBOD', '0', '1', '2', '5', '6', '1+0', '5+0', '6+0']"
                .into()
        )
    );
    assert_eq!(
        refused(json!({"logical_disks": []})),
        (
            400,
            "RAID config validation error: [] should be non-empty".into()
        )
    );
    assert_eq!(
        refused(json!([1])),
        (
            400,
            "Expected types <class 'dict'> for target_raid_config: [1]".into()
        )
    );
    assert_eq!(
        refused(json!("x")),
        (
            400,
            "Expected types <class 'dict'> for target_raid_config: x".into()
        )
    );
    let (status, out) = s.call(Method::PUT, "/v1/nodes/r1/states/raid?x=1", Some(json!({})));
    assert_eq!(
        (status, faultstring(&out)),
        (400, "Unexpected arguments: x".into())
    );
    assert_eq!(s.get("/v1/nodes/r1")["target_raid_config"], good);
    assert_eq!(s.put("/v1/nodes/r1/states/raid", json!({})), 204);
    assert_eq!(s.get("/v1/nodes/r1")["target_raid_config"], json!({}));

    let (status, _) = s.call_at(
        "1.11",
        Method::PUT,
        "/v1/nodes/r1/states/raid",
        Some(good.clone()),
    );
    assert_eq!(status, 406);
    assert_eq!(
        s.call_at(
            "1.12",
            Method::PUT,
            "/v1/nodes/r1/states/raid",
            Some(good.clone())
        )
        .0,
        204
    );

    s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "name": "nr", "raid_interface": "no-raid"}),
    );
    let (status, body) = s.call(Method::PUT, "/v1/nodes/nr/states/raid", Some(good));
    assert_eq!(
        (status, faultstring(&body)),
        (
            404,
            "Driver fake-hardware does not support raid (disabled or not implemented).".into()
        )
    );
    assert_eq!(s.put("/v1/nodes/nr/states/raid", json!({})), 204);
}

#[test]
fn children_are_listed_from_1_83() {
    let s = Server::start("");
    let parent = s.create_node("parent")["uuid"].as_str().unwrap().to_owned();
    let a = s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "name": "a", "parent_node": "parent"}),
    );
    let b = s.post(
        "/v1/nodes",
        json!({"driver": "fake-hardware", "name": "b", "parent_node": parent}),
    );
    s.create_node("other");
    let children = s.get("/v1/nodes/parent/children");
    assert_eq!(children["children"], json!([a["uuid"], b["uuid"]]));
    assert_eq!(children["links"]["rel"], "children");
    assert!(children["links"]["href"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/v1/nodes?parent_node={parent}")));
    assert_eq!(s.get("/v1/nodes/a/children")["children"], json!([]));

    assert_eq!(
        s.call_at("1.83", Method::GET, "/v1/nodes/parent/children", None)
            .0,
        200
    );
    let (status, body) = s.call_at("1.82", Method::GET, "/v1/nodes/parent/children", None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "Resource could not be found.".into())
    );

    // Nothing lies below a node's children, whatever the method (405).
    for (method, path) in [
        (Method::GET, "/v1/nodes/parent/children/a"),
        (Method::DELETE, "/v1/nodes/parent/children/a"),
        (Method::GET, "/v1/nodes/parent/children/a/children"),
    ] {
        assert_eq!(s.call(method, path, None).0, 405, "{path}");
    }

    // The node list leaves children out unless asked.
    let names = |path: &str| -> Vec<String> {
        let mut v: Vec<String> = s.get(path)["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("/v1/nodes"), ["other", "parent"]);
    assert_eq!(
        names("/v1/nodes?include_children=true"),
        ["a", "b", "other", "parent"]
    );
    assert_eq!(
        names(&format!("/v1/nodes?parent_node={parent}")),
        ["a", "b"]
    );
}

#[test]
fn shards_are_counted_from_1_82() {
    let s = Server::start("");
    for (name, shard) in [
        ("s1", Some("east")),
        ("s2", Some("east")),
        ("s3", Some("west")),
        ("s4", None),
    ] {
        let mut body = json!({"driver": "fake-hardware", "name": name});
        if let Some(shard) = shard {
            body["shard"] = json!(shard);
        }
        s.post("/v1/nodes", body);
    }
    assert_eq!(
        s.get("/v1/shards"),
        json!({"shards": [{"name": "east", "count": 2}, {"name": "None", "count": 1}, {"name": "west", "count": 1}]})
    );
    assert_eq!(s.call_at("1.82", Method::GET, "/v1/shards", None).0, 200);
    let (status, body) = s.call_at("1.81", Method::GET, "/v1/shards", None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The API version does not allow shards".into())
    );
    let (status, body) = s.call(Method::GET, "/v1/shards/east", None);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The resource could not be found.".into())
    );
    assert!(s.get("/v1")["shards"][0]["href"]
        .as_str()
        .unwrap()
        .ends_with("/v1/shards/"));
    let (_, v1) = s.call_at("1.81", Method::GET, "/v1", None);
    assert!(v1.get("shards").is_none());
}

#[test]
fn events_are_checked_and_accepted_from_1_54() {
    let s = Server::start("");
    let event = json!({"events": [{"event": "network.bind_port", "port_id": "11111111-2222-3333-4444-555555555555",
                                   "mac_address": "52:54:00:12:34:56", "status": "ACTIVE", "device_id": null}]});
    assert_eq!(
        s.call(Method::POST, "/v1/events", Some(event.clone())),
        (204, Value::Null)
    );
    assert_eq!(
        s.call_at("1.54", Method::POST, "/v1/events", Some(event.clone()))
            .0,
        204
    );
    let (status, body) = s.call_at("1.53", Method::POST, "/v1/events", Some(event));
    assert_eq!(
        (status, faultstring(&body)),
        (404, "The API is not supported for this version".into())
    );
    let (status, body) = s.call(
        Method::POST,
        "/v1/events",
        Some(json!({"events": [{"event": "network.bind_port", "port_id": "abc", "mac_address": "52:54:00:12:34:56", "status": "x"}]})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Schema error: 'abc' is not a 'uuid'".into())
    );
    assert!(s.get("/v1").get("events").is_some());
    assert!(s
        .call_at("1.53", Method::GET, "/v1", None)
        .1
        .get("events")
        .is_none());
    let (status, body) = s.call(Method::POST, "/v1/events", None);
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Schema error: 'events' is a required property".into())
    );
}

#[test]
fn a_node_with_its_console_on_can_be_deleted() {
    let s = Server::start("");
    s.create_node("cd");
    assert_eq!(
        s.put("/v1/nodes/cd/states/console", json!({"enabled": true})),
        202
    );
    wait_field(&s, "cd", "console_enabled", json!(true));
    assert_eq!(s.call(Method::DELETE, "/v1/nodes/cd", None).0, 204);
    assert_eq!(s.call(Method::GET, "/v1/nodes/cd", None).0, 404);
}

/// As in Ironic, the console state is compared without the node's lock:
/// the state it is already in is accepted while the node is busy, a change
/// is refused as locked.
#[test]
fn a_busy_nodes_console_already_in_the_state_asked_for_is_accepted() {
    let s =
        Server::start("[conductor]\nnode_locked_retry_attempts = 1\n[fake]\npower_delay = \"3\"\n");
    s.create_node("busy");
    assert_eq!(
        s.put("/v1/nodes/busy/states/power", json!({"target": "power on"})),
        202
    );
    assert!(!s.get("/v1/nodes/busy")["reservation"].is_null());
    assert_eq!(
        s.put("/v1/nodes/busy/states/console", json!({"enabled": false})),
        202
    );
    let (status, _) = s.call(
        Method::PUT,
        "/v1/nodes/busy/states/console",
        Some(json!({"enabled": true})),
    );
    assert_eq!(status, 409);
}
