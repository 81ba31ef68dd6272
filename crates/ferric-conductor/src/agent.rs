//! The conductor's side of the agent protocol: the one-time token a booting
//! agent is handed at lookup, and its heartbeats, which carry a waiting
//! flow on (the handlers are in `flows::heartbeat`).

use ferric_core::{
    naive_timestamp, Ident, MacAddress, Node, NodeIdent, NodeUuid, ProvisionState as S, Secret,
};
use ferric_db::DbError;
use ferric_drivers::Heartbeat;
use rand::RngCore;
use serde_json::json;

use crate::error::{ConductorError, Result};
use crate::flows;
use crate::Conductor;

/// Where an agent's token lives, Ironic's key.
pub(crate) const TOKEN_KEY: &str = "agent_secret_token";

/// What a lookup answers: the node, and its token if this lookup is the
/// first since the agent booted (later ones get `******`, as Ironic).
#[derive(Debug, Clone)]
pub struct LookupAnswer {
    pub node: Node,
    /// `None` when the caller's API version knows no tokens.
    pub token: Option<Secret<String>>,
}

/// The states in which a booting agent may look its node up (Ironic's
/// `LOOKUP_ALLOWED_STATES`).
const LOOKUP_STATES: &[S] = &[
    S::Deploying,
    S::DeployWait,
    S::Cleaning,
    S::CleanWait,
    S::Inspecting,
    S::InspectWait,
    S::Rescuing,
    S::RescueWait,
    S::ServiceWait,
];

/// With fast track, an agent may also come up on an idle node (Ironic's
/// `FASTTRACK_LOOKUP_ALLOWED_STATES`).
const FAST_TRACK_LOOKUP_STATES: &[S] = &[
    S::Enroll,
    S::Manageable,
    S::Available,
    S::Servicing,
    S::ServiceHold,
];

/// The statuses an agent may report (Ironic's `AGENT_VALID_STATES`).
const AGENT_STATUSES: &[&str] = &["start", "end", "error"];

impl Conductor {
    /// The node a booting agent belongs to, found by its NICs' MACs (or
    /// named by UUID), if the node is in a state that expects an agent.
    /// Anything else is "not found", so a caller learns nothing about nodes
    /// it may not look up.
    pub async fn lookup(
        &self,
        addresses: &[MacAddress],
        node_uuid: Option<NodeUuid>,
        with_token: bool,
    ) -> Result<LookupAnswer> {
        let not_found = || ConductorError::NotFound {
            kind: "Node",
            ident: "lookup".into(),
        };
        let uuid = match node_uuid {
            Some(u) => u,
            None => self
                .node_of_addresses(addresses)
                .await?
                .ok_or_else(not_found)?,
        };
        let node = match self.inner.store.get_node(&Ident::Uuid(uuid)).await {
            Ok(n) => n,
            Err(DbError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        if !self.lookup_allowed(&node) {
            tracing::warn!(node = %node.uuid, state = %node.provision_state, "lookup refused: no agent is expected in this state");
            return Err(not_found());
        }
        if !with_token {
            return Ok(LookupAnswer { node, token: None });
        }
        self.node_with_token(node.uuid).await
    }

    /// The one node all of `addresses` that are known belong to.
    pub(crate) async fn node_of_addresses(
        &self,
        addresses: &[MacAddress],
    ) -> Result<Option<NodeUuid>> {
        let mut found: Option<NodeUuid> = None;
        for mac in addresses {
            let port = match self.inner.store.get_port_by_address(mac).await {
                Ok(p) => p,
                Err(DbError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            match found {
                Some(n) if n != port.node_uuid => {
                    tracing::warn!(macs = ?addresses, "lookup refused: the MACs belong to several nodes");
                    return Ok(None);
                }
                _ => found = Some(port.node_uuid),
            }
        }
        Ok(found)
    }

    /// The agent of a node under inspection posts its inventory: the node
    /// is found (by the UUID, its NICs' MACs or its BMC's address), handed
    /// its token if the caller's API version knows tokens, and its
    /// inspection goes on in a worker.
    pub async fn continue_inspection(
        &self,
        macs: &[MacAddress],
        bmc_addresses: &[String],
        node_uuid: Option<NodeUuid>,
        inventory: ferric_core::JsonObject,
        plugin_data: ferric_core::JsonObject,
        with_token: bool,
    ) -> Result<LookupAnswer> {
        let not_found = || ConductorError::NotFound {
            kind: "Node",
            ident: "lookup".into(),
        };
        let uuid = match node_uuid {
            Some(u) => Some(u),
            None => match self.node_of_addresses(macs).await? {
                Some(u) => Some(u),
                None => self.node_of_bmc(bmc_addresses).await?,
            },
        }
        .ok_or_else(not_found)?;
        let node = match self.inner.store.get_node(&Ident::Uuid(uuid)).await {
            Ok(n) if n.provision_state == S::InspectWait => n,
            Ok(n) => {
                tracing::warn!(node = %uuid, state = %n.provision_state, "inventory from a node not waiting for inspection");
                return Err(not_found());
            }
            Err(DbError::NotFound { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        let mut task = self.inner.try_lock(&Ident::Uuid(node.uuid)).await?;
        let token = with_token.then(|| hand_out_token(&mut task));
        let answer = LookupAnswer {
            node: task.node.clone(),
            token,
        };
        flows::inspect::continue_with(task, inventory, plugin_data).await?;
        Ok(answer)
    }

    /// The node waiting for inspection whose BMC has one of `addresses`.
    async fn node_of_bmc(&self, addresses: &[String]) -> Result<Option<NodeUuid>> {
        if addresses.is_empty() {
            return Ok(None);
        }
        let filter = ferric_db::NodeFilter {
            provision_states: Some(vec![S::InspectWait]),
            ..Default::default()
        };
        let nodes = self
            .inner
            .store
            .list_nodes(&filter, &Default::default())
            .await?;
        Ok(nodes
            .iter()
            .find(|n| {
                n.driver_info.iter().any(|(k, v)| {
                    k.ends_with("_address")
                        && v.as_str()
                            .is_some_and(|a| addresses.iter().any(|b| bmc_host(a) == bmc_host(b)))
                })
            })
            .map(|n| n.uuid))
    }

    fn lookup_allowed(&self, node: &Node) -> bool {
        LOOKUP_STATES.contains(&node.provision_state)
            || (self.inner.registry.config().deploy.fast_track
                && FAST_TRACK_LOOKUP_STATES.contains(&node.provision_state))
    }

    /// Ironic's `get_node_with_token`: hands out the node's agent token,
    /// made now if it has none; a token already handed out is never shown
    /// again.
    pub async fn node_with_token(&self, uuid: NodeUuid) -> Result<LookupAnswer> {
        let node = self.inner.store.get_node(&Ident::Uuid(uuid)).await?;
        if node.driver_internal_info.contains_key(TOKEN_KEY) {
            tracing::warn!(node = %uuid, "an agent token was asked for again; it is handed out only once");
            return Ok(LookupAnswer {
                node,
                token: Some(Secret::new(ferric_core::secret::MASK.to_owned())),
            });
        }
        let mut task = self.inner.try_lock(&Ident::Uuid(uuid)).await?;
        if task.node.driver_internal_info.contains_key(TOKEN_KEY) {
            let node = task.node.clone();
            task.release_unchanged().await?;
            return Ok(LookupAnswer {
                node,
                token: Some(Secret::new(ferric_core::secret::MASK.to_owned())),
            });
        }
        let token = hand_out_token(&mut task);
        let node = task.release().await?;
        tracing::info!(node = %uuid, "agent token handed out");
        let what = crate::task::activity(node.provision_state);
        self.inner
            .record_history(
                &node,
                ferric_core::Severity::Info,
                what,
                "The agent looked its node up",
            )
            .await;
        Ok(LookupAnswer {
            node,
            token: Some(token),
        })
    }

    /// An agent's heartbeat: checked, recorded on the node, and, if a flow
    /// waits on the agent, handed to a worker that carries the flow on.
    /// Returns once the heartbeat is recorded.
    pub async fn heartbeat(
        &self,
        ident: &NodeIdent,
        token: Option<&Secret<String>>,
        heartbeat: Heartbeat,
    ) -> Result<()> {
        let node = self.inner.store.get_node(ident).await?;
        check_heartbeat(
            &node,
            token,
            &heartbeat,
            self.inner.registry.config().agent.require_tls,
        )?;
        let task = match self.inner.try_lock(&Ident::Uuid(node.uuid)).await {
            Ok(t) => t,
            Err(ConductorError::NodeLocked { .. }) => {
                tracing::info!(node = %node.uuid, "node is busy; this heartbeat is skipped (the next one is processed)");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        flows::heartbeat::record_and_continue(task, heartbeat).await
    }
}

/// The host of a BMC address as `driver_info` may hold it: `10.0.0.5`,
/// `https://10.0.0.5:443/`, `[fd00::5]`.
fn bmc_host(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    if let Some(v6) = host.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Ironic's checks of a heartbeat, with its texts.
fn check_heartbeat(
    node: &Node,
    token: Option<&Secret<String>>,
    heartbeat: &Heartbeat,
    require_tls: bool,
) -> Result<()> {
    let invalid = |m: &str| Err(ConductorError::Invalid(m.to_owned()));
    let Some(token) = token else {
        return invalid("Agent token is required for heartbeat processing.");
    };
    let known = node
        .driver_internal_info
        .get(TOKEN_KEY)
        .and_then(|v| v.as_str());
    if !known.is_some_and(|k| constant_time_eq(k.as_bytes(), token.expose().as_bytes())) {
        tracing::warn!(node = %node.uuid, "heartbeat with an invalid or missing agent token");
        return invalid("Invalid or missing agent token received.");
    }
    if heartbeat.agent_version.is_none() && heartbeat.agent_status.is_none() {
        return invalid(
            "Agent did not transmit a version, and a version is required. Please update the agent being used.",
        );
    }
    if let Some(status) = &heartbeat.agent_status {
        if !AGENT_STATUSES.contains(&status.as_str()) {
            return invalid("Agent status is invalid. Valid states are start,end,error.");
        }
    }
    let url = &heartbeat.callback_url;
    if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
        return invalid("An issue with the supplied \"callback_url\" has been detected.");
    }
    let recorded = node
        .driver_internal_info
        .get("agent_url")
        .and_then(|v| v.as_str());
    if recorded.is_some_and(|r| r != url) {
        tracing::warn!(node = %node.uuid, "heartbeat from a callback URL other than the recorded one");
        return invalid("Detected change in ramdisk provided \"callback_url\"");
    }
    if require_tls && !url.is_empty() && !url.starts_with("https://") {
        return invalid("TLS is required by configuration");
    }
    let recorded_ca = node
        .driver_internal_info
        .get("agent_verify_ca")
        .and_then(|v| v.as_str());
    if let (Some(old), Some(new)) = (recorded_ca, heartbeat.agent_verify_ca.as_deref()) {
        if old != new {
            tracing::warn!(node = %node.uuid, "heartbeat with a certificate other than the recorded one");
            return invalid("Detected change in ramdisk provided \"agent_verify_ca\"");
        }
    }
    Ok(())
}

/// The node's token, made now; `******` if one was handed out already.
fn hand_out_token(task: &mut crate::task::Task) -> Secret<String> {
    if task.node.driver_internal_info.contains_key(TOKEN_KEY) {
        return Secret::new(ferric_core::secret::MASK.to_owned());
    }
    let token = new_token();
    task.set_internal(TOKEN_KEY, json!(token.expose()));
    token
}

/// 32 random bytes as URL-safe base64 without padding: Python's
/// `secrets.token_urlsafe()`, which Ironic uses.
fn new_token() -> Secret<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(base64_url(&bytes))
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a heartbeat writes on the node, with Ironic's keys.
pub(crate) fn record(node: &mut Node, heartbeat: &Heartbeat, now: chrono::DateTime<chrono::Utc>) {
    let info = &mut node.driver_internal_info;
    info.insert("agent_url".into(), json!(heartbeat.callback_url));
    // An agent that sends no version predates versions: Ironic assumes 3.0.0.
    let version = heartbeat.agent_version.as_deref().unwrap_or("3.0.0");
    info.insert("agent_version".into(), json!(version));
    info.insert("agent_last_heartbeat".into(), json!(naive_timestamp(now)));
    if let Some(ca) = &heartbeat.agent_verify_ca {
        info.insert("agent_verify_ca".into(), json!(ca));
    }
    if let Some(status) = &heartbeat.agent_status {
        info.insert("agent_status".into(), json!(status));
    }
    if let Some(message) = &heartbeat.agent_status_message {
        info.insert("agent_status_message".into(), json!(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_urlsafe_base64_of_32_bytes() {
        let t = new_token();
        assert_eq!(t.expose().len(), 43);
        assert!(t
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(new_token().expose(), t.expose());
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn bmc_hosts_are_read_from_urls_and_addresses() {
        assert_eq!(bmc_host("10.0.0.5"), "10.0.0.5");
        assert_eq!(bmc_host("https://10.0.0.5:443/redfish/v1"), "10.0.0.5");
        assert_eq!(bmc_host("[fd00::5]:623"), "fd00::5");
        assert_eq!(bmc_host("fd00::5"), "fd00::5");
        assert_eq!(bmc_host("bmc.example:623"), "bmc.example");
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
