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
    let (status, body) = call("/v1/nodes/v1/vendor_passthru", json!({}));
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
    let (status, body) = s.call(
        Method::GET,
        "/v1/drivers/nope/vendor_passthru/methods",
        None,
    );
    assert_eq!(
        (status, faultstring(&body)),
        (
            404,
            "Could not find the following driver(s) or hardware type(s): nope.".into()
        )
    );
}
