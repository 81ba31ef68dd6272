//! Volume connectors (how a node reaches storage: an initiator IQN, a
//! WWPN, ...) and volume targets (the volumes it boots from or uses).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::NodeUuid;
pub use crate::ids::{VolumeConnectorUuid, VolumeTargetUuid};
use crate::secret::Fields;
use crate::JsonObject;

/// One of a node's storage connectors. `(kind, connector_id)` is unique
/// across all nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeConnector {
    pub id: i64,
    pub uuid: VolumeConnectorUuid,
    pub node_uuid: NodeUuid,
    /// Ironic's `type`: `iqn`, `ip`, `mac`, `wwnn`, `wwpn`, `port`,
    /// `portgroup` by convention; Ironic stores any string.
    pub kind: String,
    pub connector_id: String,
    pub extra: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A volume a node uses. `(node, boot_index)` is unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeTarget {
    pub id: i64,
    pub uuid: VolumeTargetUuid,
    pub node_uuid: NodeUuid,
    pub volume_type: String,
    pub volume_id: String,
    pub boot_index: i64,
    /// Connection details; may hold secrets (CHAP), so masked in `Debug`
    /// and in API answers.
    pub properties: Fields,
    pub extra: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}
