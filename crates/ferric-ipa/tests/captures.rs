//! Round trips against real Ironic 39 captures (copied from
//! shared/reference into tests/fixtures).

use ferric_ipa::fault::ironic_error_text;
use ferric_ipa::version::ApiRoot;
use ferric_ipa::{ApiVersion, LookupResponse, RootDeviceHints};
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn lookup_capture_round_trips() {
    let text = fixture("ironic-39-lookup.json");
    let parsed = LookupResponse::from_body(text.as_bytes()).unwrap();
    assert_eq!(parsed.node.uuid, "fb1cf066-0b24-49b5-b8ce-4f1df789b019");
    assert_eq!(parsed.config.heartbeat_timeout, 300);
    let token = parsed.config.agent_token.as_ref().unwrap();
    assert!(token.is_usable());
    assert!(!format!("{parsed:?}").contains(token.expose()));
    assert_eq!(parsed.config.agent_md5_checksum_enable, Some(true));
    assert_eq!(
        parsed.config.permitted_image_formats.as_deref().unwrap(),
        ["raw", "gpt", "qcow2", "iso"]
    );
    assert_eq!(parsed.config.tls_min_version.as_deref(), Some("1.3"));
    assert_eq!(parsed.node.links.as_ref().unwrap().len(), 2);
    assert_eq!(parsed.node.instance_info["image_disk_format"], "raw");
    assert_eq!(parsed.node.root_device_hints(), None);
    let original: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&parsed).unwrap(), original);
}

#[test]
fn second_lookup_shows_the_mask() {
    let text = fixture("ironic-39-lookup.json")
        .replace("sqY15qmSwFs7MZfTmgUwq_4g6mkGkwWfH2q8lBJM_PQ", "******");
    let parsed = LookupResponse::from_body(text.as_bytes()).unwrap();
    assert!(parsed.config.agent_token.unwrap().is_masked());
}

#[test]
fn root_capture_round_trips() {
    let text = fixture("ironic-39-root.json");
    let root: ApiRoot = serde_json::from_str(&text).unwrap();
    assert_eq!(root.max_version(), ApiVersion::new(1, 115));
    assert!(root.max_version() >= ApiVersion::AGENT_VERIFY_CA);
    assert_eq!(
        serde_json::to_value(&root).unwrap(),
        serde_json::from_str::<Value>(&text).unwrap()
    );
}

#[test]
fn heartbeat_refusal_capture_reads() {
    let text = fixture("ironic-39-heartbeat-wrong-token.txt");
    let body = text
        .split("\n\n")
        .nth(1)
        .or_else(|| text.split("\r\n\r\n").nth(1))
        .unwrap();
    assert_eq!(
        ironic_error_text(body.trim().as_bytes()),
        "Invalid or missing agent token received."
    );
}

#[test]
fn hints_from_a_node_property() {
    let text = fixture("ironic-39-lookup.json");
    let mut parsed = LookupResponse::from_body(text.as_bytes()).unwrap();
    parsed.node.properties.insert(
        "root_device".into(),
        serde_json::json!({"size": ">= 4", "rotational": false}),
    );
    let hints = RootDeviceHints::parse(parsed.node.root_device_hints().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        hints.to_value(),
        serde_json::json!({"size": ">= 4", "rotational": false})
    );
}
