//! `GET /v1/lookup?addresses=MAC,MAC&node_uuid=UUID`: how the agent finds
//! its node, and the answer Ironic gives (`node` and `config`).
//!
//! Ironic answers 404 "Resource could not be found." for an unknown MAC, a
//! node in a state that forbids lookup, or a microversion below 1.22; the
//! agent retries those. The `agent_token` in `config` is handed out once: a
//! second lookup shows it as `******` ([`crate::secret::MASK`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mac::MacAddress;
use crate::query;
use crate::secret::AgentToken;
use crate::version::Link;

/// The lookup path, relative to the API root.
pub const LOOKUP_PATH: &str = "/v1/lookup";

/// The lookup query: the agent's MAC addresses and, when known, its node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupQuery {
    /// MACs of every interface that has one, in inventory order.
    pub addresses: Vec<MacAddress>,
    /// The node's UUID, when the agent knows it (e.g. from inspection).
    pub node_uuid: Option<String>,
}

impl LookupQuery {
    /// The query string (without `?`), with `addresses` comma-separated.
    pub fn to_query_string(&self) -> String {
        let addresses = self
            .addresses
            .iter()
            .map(MacAddress::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut pairs = vec![("addresses", addresses.as_str())];
        if let Some(uuid) = &self.node_uuid {
            pairs.push(("node_uuid", uuid.as_str()));
        }
        query::build(pairs)
    }

    /// Parses a lookup query as Ironic does: invalid MACs are dropped (Ironic
    /// logs and ignores them); an empty `node_uuid` counts as absent.
    pub fn parse(query_string: &str) -> Self {
        let pairs = query::parse(query_string);
        let addresses = query::first(&pairs, "addresses")
            .unwrap_or_default()
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        let node_uuid = query::first(&pairs, "node_uuid").filter(|u| !u.is_empty());
        Self {
            addresses,
            node_uuid,
        }
    }
}

/// A node as Ironic hands it to the agent: in the lookup answer (only
/// `uuid`, `properties`, `instance_info`, `driver_internal_info`, `links`)
/// and as the `node` parameter of step commands (`node.as_dict()`, with
/// every other field kept in `extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The node's UUID.
    pub uuid: String,
    /// Includes `root_device` (root device hints) and `capabilities`.
    #[serde(default)]
    pub properties: Map<String, Value>,
    /// Includes `image_source`, per-instance `root_device`, `capabilities`.
    #[serde(default)]
    pub instance_info: Map<String, Value>,
    /// Conductor-private data: `agent_erase_devices_iterations`,
    /// `agent_erase_devices_zeroize`, `is_whole_disk_image`, ...
    #[serde(default)]
    pub driver_internal_info: Map<String, Value>,
    /// `self` and `bookmark` links (lookup answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<Link>>,
    /// Every other field (`name`, `driver`, `provision_state`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Node {
    /// The root device hints IPA uses: `instance_info.root_device`, else
    /// `properties.root_device`; `None` when neither is set or both are empty.
    pub fn root_device_hints(&self) -> Option<&Value> {
        let non_empty =
            |v: &&Value| !matches!(v, Value::Null) && v.as_object().is_none_or(|o| !o.is_empty());
        self.instance_info
            .get("root_device")
            .filter(non_empty)
            .or_else(|| self.properties.get("root_device").filter(non_empty))
    }

    /// A `driver_internal_info` value read as a boolean (JSON bool, or a
    /// string such as `"true"`), with a default.
    pub fn internal_flag(&self, key: &str, default: bool) -> bool {
        match self.driver_internal_info.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => crate::hints::parse_bool(s).unwrap_or(default),
            Some(Value::Number(n)) => n.as_i64().map_or(default, |n| n != 0),
            _ => default,
        }
    }

    /// A `driver_internal_info` value read as an unsigned integer.
    pub fn internal_u64(&self, key: &str) -> Option<u64> {
        match self.driver_internal_info.get(key)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// The `config` part of the lookup answer (Ironic's `ramdisk.config()`).
///
/// Ironic always sends every key, `null` included, so `None` serializes as
/// `null` here; keys this crate does not know are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupConfig {
    /// `[metrics]` options for the agent.
    #[serde(default)]
    pub metrics: Option<Value>,
    /// `[metrics_statsd]` options for the agent.
    #[serde(default)]
    pub metrics_statsd: Option<Value>,
    /// `[api]ramdisk_heartbeat_timeout` in seconds: heartbeats come every
    /// 0.3–0.6 × this.
    pub heartbeat_timeout: u64,
    /// `[agent_containers]` options.
    #[serde(default)]
    pub agent_containers: Option<Value>,
    /// The one-time token, `******` after the first lookup, or null.
    #[serde(default)]
    pub agent_token: Option<AgentToken>,
    /// Always true since Victoria.
    #[serde(default)]
    pub agent_token_required: Option<bool>,
    /// `[agent]allow_md5_checksum`.
    #[serde(default)]
    pub agent_md5_checksum_enable: Option<bool>,
    /// `[conductor]disable_deep_image_inspection`.
    #[serde(default)]
    pub disable_deep_image_inspection: Option<bool>,
    /// `[conductor]permitted_image_formats`, e.g. raw, gpt, qcow2, iso.
    #[serde(default)]
    pub permitted_image_formats: Option<Vec<String>>,
    /// True for out-of-band management (redfish): skip BMC detection.
    #[serde(default)]
    pub agent_skip_bmc_detect: Option<bool>,
    /// `[agent]enable_bios_bootloader_install`.
    #[serde(default)]
    pub enable_bios_bootloader_install: Option<bool>,
    /// `[agent]tls_minimum_version`: `1.2` or `1.3`.
    #[serde(default)]
    pub tls_min_version: Option<String>,
    /// `[agent]tls_ciphers`.
    #[serde(default)]
    pub tls_cipher_suites: Option<String>,
    /// Keys added by newer Ironic releases.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl LookupConfig {
    /// A config with Ironic 39's defaults for everything but the token and
    /// heartbeat timeout, for a conductor to fill in.
    pub fn new(heartbeat_timeout: u64, agent_token: Option<AgentToken>) -> Self {
        Self {
            metrics: None,
            metrics_statsd: None,
            heartbeat_timeout,
            agent_containers: None,
            agent_token,
            agent_token_required: Some(true),
            agent_md5_checksum_enable: Some(false),
            disable_deep_image_inspection: Some(false),
            permitted_image_formats: Some(
                ["raw", "gpt", "qcow2", "iso"].map(String::from).to_vec(),
            ),
            agent_skip_bmc_detect: Some(false),
            enable_bios_bootloader_install: Some(false),
            tls_min_version: None,
            tls_cipher_suites: None,
            extra: Map::new(),
        }
    }
}

/// Ironic's lookup answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupResponse {
    /// The node that owns one of the MACs.
    pub node: Node,
    /// Settings for the agent.
    pub config: LookupConfig,
}

impl LookupResponse {
    /// Parses a lookup answer body the way IPA accepts it: a JSON object
    /// with `node.uuid` and `config`.
    pub fn from_body(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_and_parses_the_query() {
        let q = LookupQuery {
            addresses: vec![
                "52:54:00:12:34:56".parse().unwrap(),
                "52:54:00:ab:cd:ef".parse().unwrap(),
            ],
            node_uuid: None,
        };
        let text = q.to_query_string();
        assert_eq!(
            text,
            "addresses=52%3A54%3A00%3A12%3A34%3A56%2C52%3A54%3A00%3Aab%3Acd%3Aef"
        );
        assert_eq!(LookupQuery::parse(&text), q);
        let raw = LookupQuery::parse("addresses=52:54:00:12:34:56,bogus&node_uuid=");
        assert_eq!(raw.addresses.len(), 1);
        assert_eq!(raw.node_uuid, None);
    }

    #[test]
    fn finds_root_device_hints_like_ipa() {
        let mut node: Node = serde_json::from_value(json!({
            "uuid": "u", "properties": {"root_device": {"size": 10}},
            "instance_info": {}, "driver_internal_info": {}
        }))
        .unwrap();
        assert_eq!(node.root_device_hints(), Some(&json!({"size": 10})));
        node.instance_info
            .insert("root_device".into(), json!({"name": "/dev/vda"}));
        assert_eq!(node.root_device_hints(), Some(&json!({"name": "/dev/vda"})));
        node.instance_info.insert("root_device".into(), json!({}));
        assert_eq!(node.root_device_hints(), Some(&json!({"size": 10})));
        node.properties.clear();
        assert_eq!(node.root_device_hints(), None);
    }

    #[test]
    fn reads_internal_flags() {
        let node: Node = serde_json::from_value(json!({
            "uuid": "u",
            "driver_internal_info": {"a": true, "b": "False", "c": 3, "d": "2"}
        }))
        .unwrap();
        assert!(node.internal_flag("a", false));
        assert!(!node.internal_flag("b", true));
        assert!(node.internal_flag("c", false));
        assert!(node.internal_flag("missing", true));
        assert_eq!(node.internal_u64("c"), Some(3));
        assert_eq!(node.internal_u64("d"), Some(2));
    }
}
