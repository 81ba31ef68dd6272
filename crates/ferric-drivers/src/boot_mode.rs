//! Which boot mode a node's instance boots in, read as Ironic's
//! `boot_mode_utils.get_boot_mode` reads it.

use ferric_core::Node;
use serde_json::Value;

/// Capability `key` in a capabilities value: a dict, or Ironic's
/// `key:value,key:value` string.
fn capability(caps: Option<&Value>, key: &str) -> Option<String> {
    match caps? {
        Value::Object(map) => map.get(key).and_then(Value::as_str).map(str::to_owned),
        Value::String(text) => text
            .split(',')
            .filter_map(|c| c.split_once(':'))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned()),
        _ => None,
    }
}

fn boot_mode_capability(caps: Option<&Value>) -> Option<String> {
    capability(caps, "boot_mode")
}

/// Capability `key` of the instance (`instance_info.capabilities`).
pub fn instance_capability(node: &Node, key: &str) -> Option<String> {
    capability(node.instance_info.get("capabilities"), key)
}

/// The boot mode the instance boots in, in Ironic's order: the instance's
/// capability, `instance_info.deploy_boot_mode`, the node's capability, the
/// mode the BMC reports, and Ironic's default (`uefi`).
pub fn requested(node: &Node) -> String {
    boot_mode_capability(node.instance_info.get("capabilities"))
        .or_else(|| {
            node.instance_info
                .get("deploy_boot_mode")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| boot_mode_capability(node.properties.get("capabilities")))
        .or_else(|| node.boot_mode.clone())
        .unwrap_or_else(|| "uefi".to_owned())
}
