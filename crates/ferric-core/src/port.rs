//! Ports (the node's NICs, by MAC), port groups (bonds) and chassis.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ChassisUuid, MacAddress, NodeUuid, PortUuid, PortgroupUuid};
use crate::JsonObject;

/// A physical network port of a node, known by its MAC address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Port {
    pub id: i64,
    pub uuid: PortUuid,
    pub address: MacAddress,
    pub node_uuid: NodeUuid,
    pub portgroup_uuid: Option<PortgroupUuid>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub extra: JsonObject,
    pub internal_info: JsonObject,
    pub local_link_connection: JsonObject,
    pub physical_network: Option<String>,
    pub pxe_enabled: bool,
    pub is_smartnic: bool,
    pub vendor: Option<String>,
    pub category: Option<String>,
    pub available_for_dynamic_portgroup: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A group of a node's ports bonded together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Portgroup {
    pub id: i64,
    pub uuid: PortgroupUuid,
    pub name: Option<String>,
    pub address: Option<MacAddress>,
    pub node_uuid: NodeUuid,
    pub extra: JsonObject,
    pub internal_info: JsonObject,
    pub mode: Option<String>,
    pub properties: JsonObject,
    pub standalone_ports_supported: bool,
    pub physical_network: Option<String>,
    pub category: Option<String>,
    pub dynamic_portgroup: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A rack enclosure that nodes may point at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chassis {
    pub id: i64,
    pub uuid: ChassisUuid,
    pub description: Option<String>,
    pub extra: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}
