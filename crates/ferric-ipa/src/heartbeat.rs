//! `POST /v1/heartbeat/{node_uuid}`: the agent tells Ironic where to reach
//! it. Ironic answers 202 with no body.
//!
//! Which fields IPA sends depends on the server's microversion (read in
//! `ironic_api_client.heartbeat`): `callback_url` always; `agent_token` from
//! 1.62; `agent_version` from 1.36; `agent_verify_ca` from 1.68 and only when
//! the agent serves TLS. `agent_status`/`agent_status_message` (1.72) are
//! used by the anaconda ramdisk only; IPA never sends them. Ironic refuses a
//! wrong token with 400 "Invalid or missing agent token received." and, with
//! `[agent]require_tls`, an `http://` callback with 400 "TLS is required by
//! configuration"; 409 means the node is locked (retry).

use serde::{Deserialize, Serialize};

use crate::secret::AgentToken;
use crate::version::ApiVersion;

/// The heartbeat path for a node.
pub fn heartbeat_path(node_uuid: &str) -> String {
    format!("/v1/heartbeat/{}", crate::query::encode(node_uuid))
}

/// `agent_status` values Ironic accepts (`AGENT_VALID_STATES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// The deployment started.
    Start,
    /// The deployment ended.
    End,
    /// The deployment failed; `agent_status_message` says why.
    Error,
}

/// The heartbeat body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// `http[s]://ADDRESS:PORT` of the agent's command API (IPv6 in brackets).
    pub callback_url: String,
    /// The token from lookup (1.62+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<AgentToken>,
    /// The agent's version string (1.36+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// PEM of the agent's self-signed certificate (1.68+, TLS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_verify_ca: Option<String>,
    /// Anaconda-style status (1.72+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_status: Option<AgentStatus>,
    /// Text describing `agent_status` (1.72+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_status_message: Option<String>,
}

/// What the agent knows when it heartbeats; [`HeartbeatRequest::for_version`]
/// keeps only what the server's microversion accepts.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatFields {
    /// The agent's command API URL.
    pub callback_url: String,
    /// The token from lookup.
    pub agent_token: Option<AgentToken>,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// The agent's certificate, when it serves TLS.
    pub agent_verify_ca: Option<String>,
    /// Optional status.
    pub agent_status: Option<AgentStatus>,
    /// Optional status text.
    pub agent_status_message: Option<String>,
}

impl HeartbeatRequest {
    /// The body IPA would send to a server at `server` version.
    pub fn for_version(server: ApiVersion, fields: HeartbeatFields) -> Self {
        let from = |min: ApiVersion| server >= min;
        Self {
            callback_url: fields.callback_url,
            agent_token: fields.agent_token.filter(|_| from(ApiVersion::AGENT_TOKEN)),
            agent_version: fields
                .agent_version
                .filter(|_| from(ApiVersion::AGENT_VERSION)),
            agent_verify_ca: fields
                .agent_verify_ca
                .filter(|_| from(ApiVersion::AGENT_VERIFY_CA)),
            agent_status: fields
                .agent_status
                .filter(|_| from(ApiVersion::AGENT_STATUS)),
            agent_status_message: fields
                .agent_status_message
                .filter(|_| from(ApiVersion::AGENT_STATUS)),
        }
    }
}

/// Builds the `callback_url` IPA advertises: brackets around IPv6 hosts.
pub fn callback_url(https: bool, host: &str, port: u16) -> String {
    let scheme = if https { "https" } else { "http" };
    if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> HeartbeatFields {
        HeartbeatFields {
            callback_url: "https://192.0.2.5:9999".into(),
            agent_token: Some(AgentToken::new("t".repeat(43))),
            agent_version: Some("13.0.0".into()),
            agent_verify_ca: Some("-----BEGIN CERTIFICATE-----".into()),
            agent_status: Some(AgentStatus::Start),
            agent_status_message: Some("go".into()),
        }
    }

    #[test]
    fn sends_fields_by_version() {
        let old = HeartbeatRequest::for_version(ApiVersion::new(1, 31), fields());
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            json!({"callback_url": "https://192.0.2.5:9999"})
        );
        let v62 = HeartbeatRequest::for_version(ApiVersion::new(1, 62), fields());
        let body = serde_json::to_value(&v62).unwrap();
        assert_eq!(body["agent_version"], "13.0.0");
        assert_eq!(body["agent_token"], "t".repeat(43));
        assert!(body.get("agent_verify_ca").is_none());
        let new = HeartbeatRequest::for_version(ApiVersion::new(1, 115), fields());
        let body = serde_json::to_value(&new).unwrap();
        assert_eq!(body["agent_verify_ca"], "-----BEGIN CERTIFICATE-----");
        assert_eq!(body["agent_status"], "start");
    }

    #[test]
    fn round_trips_ipa_body() {
        let text = r#"{"callback_url": "http://10.0.0.5:9999", "agent_token": "sqY15qmSwFs7MZfTmgUwq_4g6mkGkwWfH2q8lBJM_PQ", "agent_version": "13.0.0"}"#;
        let body: HeartbeatRequest = serde_json::from_str(text).unwrap();
        assert_eq!(body.callback_url, "http://10.0.0.5:9999");
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert!(serde_json::from_str::<HeartbeatRequest>(
            r#"{"callback_url": "x", "agent_status": "bogus"}"#
        )
        .is_err());
    }

    #[test]
    fn brackets_ipv6() {
        assert_eq!(
            callback_url(false, "10.0.0.5", 9999),
            "http://10.0.0.5:9999"
        );
        assert_eq!(
            callback_url(true, "fd00::5", 9999),
            "https://[fd00::5]:9999"
        );
        assert_eq!(heartbeat_path("abc"), "/v1/heartbeat/abc");
    }
}
