//! A node's history (Ironic's node history, API 1.78): what happened to it
//! and when, one event at a time. Errors land here as they land in
//! `last_error`; a deploy also records its timeline (the agent's lookup,
//! the image written, the boot device set, the reboot, `active`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::NodeUuid;
use crate::node::Node;

/// How bad an event is, in Ironic's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "INFO")]
    Info,
    #[serde(rename = "ERROR")]
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Error => "ERROR",
        }
    }
}

/// One entry of a node's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Storage-internal sequence number; never shown.
    pub id: i64,
    pub uuid: Uuid,
    pub node_uuid: NodeUuid,
    pub created_at: DateTime<Utc>,
    pub severity: Severity,
    /// The activity it happened in: `deploying`, `cleaning`, ...
    pub event_type: String,
    pub event: String,
    pub conductor: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    /// The node's provision state and target when it happened.
    pub state: Option<String>,
    pub target_provision_state: Option<String>,
    /// Seconds since the node's provision state last changed, as Ironic
    /// counts them.
    pub duration_seconds: Option<i64>,
}

impl HistoryEvent {
    /// An event of `node` as it is at `now`.
    pub fn of(
        node: &Node,
        severity: Severity,
        event_type: &str,
        event: impl Into<String>,
        conductor: &str,
        now: DateTime<Utc>,
    ) -> HistoryEvent {
        HistoryEvent {
            id: 0,
            uuid: Uuid::new_v4(),
            node_uuid: node.uuid,
            created_at: now,
            severity,
            event_type: event_type.to_owned(),
            event: event.into(),
            conductor: Some(conductor.to_owned()),
            user: None,
            project: None,
            state: Some(node.provision_state.as_str().to_owned()),
            target_provision_state: node.target_provision_state.map(|s| s.as_str().to_owned()),
            duration_seconds: node
                .provision_updated_at
                .map(|t| (now - t).num_seconds().max(0)),
        }
    }
}

/// What a node's agent reported of its hardware (Ironic's node inventory,
/// API 1.81), and what inspection made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInventory {
    pub node_uuid: NodeUuid,
    pub inventory: crate::JsonObject,
    pub plugin_data: crate::JsonObject,
    pub created_at: DateTime<Utc>,
}
