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
