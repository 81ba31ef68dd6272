//! The agents' endpoints over HTTP against the real binary, compared with
//! what Ironic 39 answered (tests/fixtures/ironic-39 and
//! ../shared/reference): lookup by MAC with the one-time token, heartbeats
//! and their refusals, history and inventory.

mod common;

use common::{faultstring, keys, Server, LATEST};
use reqwest::Method;
use serde_json::{json, Value};

/// A node waiting in `clean wait` (a `wait` step without seconds), with a
/// NIC: a node that expects an agent.
fn waiting_node(s: &Server, mac: &str) -> String {
    let node = s.create_node("agent-1");
    let uuid = node["uuid"].as_str().expect("uuid").to_owned();
    s.post("/v1/ports", json!({"address": mac, "node_uuid": uuid}));
    s.provision(&uuid, "manage", "manageable");
    let status = s.put(
        &format!("/v1/nodes/{uuid}/states/provision"),
        json!({"target": "clean", "clean_steps": [{"interface": "deploy", "step": "wait"}]}),
    );
    assert_eq!(status, 202);
    s.wait_state(&uuid, "clean wait");
    uuid
}

fn lookup(s: &Server, query: &str, version: &str) -> (u16, Value) {
    let resp = s.request(
        Method::GET,
        &format!("/v1/lookup?{query}"),
        Some(version),
        None,
    );
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn heartbeat(s: &Server, node: &str, body: Value) -> (u16, Value) {
    let resp = s.request(
        Method::POST,
        &format!("/v1/heartbeat/{node}"),
        Some(LATEST),
        Some(&body),
    );
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn reference_lookup() -> Value {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/reference/ironic-39-lookup.txt"),
    )
    .or_else(|_| std::fs::read_to_string("/work/shared/reference/ironic-39-lookup.txt"))
    .expect("the lookup capture");
    let body = text
        .split("\n\n")
        .nth(1)
        .or_else(|| text.split("\r\n\r\n").nth(1))
        .expect("a body");
    serde_json::from_str(body.trim()).expect("JSON")
}

#[test]
fn lookup_hands_out_the_token_once_in_ironics_shape() {
    let s = Server::start("");
    let uuid = waiting_node(&s, "52:54:00:12:34:56");
    let (status, first) = lookup(&s, "addresses=aa:bb:cc:dd:ee:ff,52:54:00:12:34:56", LATEST);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["node"]["uuid"], uuid.as_str());
    let reference = reference_lookup();
    assert_eq!(keys(&first), keys(&reference));
    assert_eq!(keys(&first["node"]), keys(&reference["node"]));
    assert_eq!(keys(&first["config"]), keys(&reference["config"]));
    let token = first["config"]["agent_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(first["config"]["agent_token_required"], true);
    assert_eq!(first["config"]["heartbeat_timeout"], 300);
    // The token is never shown again, by lookup or by the node itself.
    let (_, second) = lookup(&s, "addresses=52:54:00:12:34:56", LATEST);
    assert_eq!(second["config"]["agent_token"], "******");
    let shown = s.get(&format!("/v1/nodes/{uuid}"));
    assert_eq!(
        shown["driver_internal_info"]["agent_secret_token"],
        "******"
    );
    // Unknown MACs, old versions and nodes expecting no agent: 404.
    let (status, body) = lookup(&s, "addresses=aa:bb:cc:dd:ee:ff", LATEST);
    assert_eq!(
        (status, faultstring(&body)),
        (404, "Resource could not be found.".to_owned())
    );
    let (status, _) = lookup(&s, "addresses=52:54:00:12:34:56", "1.21");
    assert_eq!(status, 404);
    let (status, body) = lookup(&s, "addresses=nonsense", LATEST);
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        "At least one of 'addresses' and 'node_uuid' parameters is required"
    );
    // The heartbeat: refused without the token, accepted with it.
    let (status, body) = heartbeat(
        &s,
        &uuid,
        json!({"callback_url": "http://127.0.0.1:9999", "agent_token": "wrong", "agent_version": "13.0.0"}),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Invalid or missing agent token received.".to_owned())
    );
    let (status, body) = heartbeat(
        &s,
        &uuid,
        json!({"callback_url": "http://127.0.0.1:9999", "agent_token": token, "agent_version": "13.0.0"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, Value::Null);
    let node = s.get(&format!("/v1/nodes/{uuid}"));
    assert_eq!(
        node["driver_internal_info"]["agent_url"],
        "http://127.0.0.1:9999"
    );
    assert_eq!(node["provision_state"], "clean wait");
    let (status, body) = heartbeat(&s, &uuid, json!({"agent_token": token}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = heartbeat(
        &s,
        &uuid,
        json!({"callback_url": "http://127.0.0.1:9999", "agent_token": token, "agent_version": "1", "bogus": 1}),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn history_records_errors_and_inventory_is_404_until_inspected() {
    let s = Server::start(
        "[conductor]\nclean_callback_timeout = 1\ncheck_provision_state_interval = 1\n",
    );
    let uuid = waiting_node(&s, "52:54:00:12:34:57");
    // The wait times out: the failure is in last_error and in the history.
    s.wait_state(&uuid, "clean failed");
    let history = s.get(&format!("/v1/nodes/{uuid}/history"));
    let events = history["history"].as_array().expect("a list");
    let error = events
        .iter()
        .find(|e| e["severity"] == "ERROR")
        .expect("an error event");
    assert!(
        error["event"]
            .as_str()
            .unwrap_or("")
            .starts_with("Timeout reached while cleaning"),
        "{error}"
    );
    assert_eq!(
        keys(error),
        vec!["created_at", "event", "links", "severity", "uuid"]
    );
    let one = s.get(&format!(
        "/v1/nodes/{uuid}/history/{}",
        error["uuid"].as_str().expect("uuid")
    ));
    assert_eq!(one["event_type"], "cleaning");
    assert_eq!(one["state"], "clean failed");
    assert!(one["conductor"].is_string());
    let (status, _) = s.call(Method::GET, &format!("/v1/nodes/{uuid}/history"), None);
    assert_eq!(status, 200);
    let old = s.request(
        Method::GET,
        &format!("/v1/nodes/{uuid}/history"),
        Some("1.77"),
        None,
    );
    assert_eq!(old.status().as_u16(), 404);
    let (status, body) = s.call(Method::GET, &format!("/v1/nodes/{uuid}/inventory"), None);
    assert_eq!(status, 404);
    assert_eq!(
        faultstring(&body),
        format!("Node inventory record for node {uuid} could not be found.")
    );
}

#[test]
fn agent_listen_serves_only_the_agents_endpoints() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferric"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .env("FERRIC_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("ferric");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut url = |prefix: &str| {
        let line = lines.next().expect("a line").expect("text");
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{line:?}"))
            .to_owned()
    };
    let api = url("ferric listening on ");
    let agents = url("ferric serving agents on ");
    let client = reqwest::blocking::Client::new();
    let get = |base: &str, path: &str| {
        client
            .get(format!("{base}{path}"))
            .header("X-OpenStack-Ironic-API-Version", LATEST)
            .send()
            .expect("answer")
    };
    assert_eq!(get(&agents, "/").status().as_u16(), 200);
    let lookup = get(&agents, "/v1/lookup?addresses=52:54:00:12:34:56");
    assert_eq!(lookup.status().as_u16(), 404);
    let body: Value = lookup.json().expect("json");
    assert_eq!(faultstring(&body), "Resource could not be found.");
    assert_eq!(
        get(&agents, "/v1/nodes").status().as_u16(),
        404,
        "no user API there"
    );
    assert_eq!(get(&api, "/v1/nodes").status().as_u16(), 200);
    let _ = child.kill();
    let _ = child.wait();
}
