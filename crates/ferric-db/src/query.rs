//! What a list call asks for: filters, order and page.

use ferric_core::{NodeUuid, ProvisionState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    #[default]
    Asc,
    Desc,
}

impl SortDir {
    pub fn as_sql(self) -> &'static str {
        match self {
            SortDir::Asc => "ASC",
            SortDir::Desc => "DESC",
        }
    }
}

/// Order and page of a listing. `sort_key` must be one of the resource's
/// sortable columns; `marker` is the internal id of the last row of the
/// previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub sort_key: String,
    pub sort_dir: SortDir,
    pub marker: Option<i64>,
    pub limit: Option<u32>,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            sort_key: "id".into(),
            sort_dir: SortDir::Asc,
            marker: None,
            limit: None,
        }
    }
}

/// Filters of a node listing; `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFilter {
    pub associated: Option<bool>,
    pub maintenance: Option<bool>,
    pub retired: Option<bool>,
    pub provision_states: Option<Vec<ProvisionState>>,
    pub driver: Option<String>,
    pub resource_class: Option<String>,
    pub conductor_group: Option<String>,
    pub fault: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    /// Owner or lessee equals this project.
    pub project: Option<String>,
    pub chassis_uuid: Option<String>,
    pub instance_uuid: Option<String>,
    pub instance_name: Option<String>,
    pub description_contains: Option<String>,
    pub shards: Option<Vec<String>>,
    /// `Some(true)`: only nodes with a shard; `Some(false)`: only without.
    pub sharded: Option<bool>,
    pub parent_node: Option<String>,
    /// Leave out nodes that have a parent node.
    pub exclude_children: bool,
    pub reserved_by: Option<String>,
    pub reserved: Option<bool>,
    pub uuids: Option<Vec<NodeUuid>>,
}

/// Filters of a port listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    pub node_uuid: Option<NodeUuid>,
    pub portgroup_id: Option<i64>,
    pub address: Option<String>,
    pub physical_network: Option<String>,
    pub shards: Option<Vec<String>>,
    pub conductor_group: Option<String>,
    pub description_contains: Option<String>,
}

/// Filters of a port group listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortgroupFilter {
    pub node_uuid: Option<NodeUuid>,
    pub address: Option<String>,
}

/// Scalar node columns a listing may sort by. JSON columns are refused as
/// Ironic refuses them.
pub const NODE_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "description",
    "driver",
    "instance_uuid",
    "instance_name",
    "provision_state",
    "target_provision_state",
    "provision_updated_at",
    "power_state",
    "target_power_state",
    "maintenance",
    "maintenance_reason",
    "fault",
    "last_error",
    "reservation",
    "conductor_group",
    "resource_class",
    "owner",
    "lessee",
    "automated_clean",
    "protected",
    "retired",
    "console_enabled",
    "boot_mode",
    "secure_boot",
    "shard",
    "parent_node",
    "inspection_started_at",
    "inspection_finished_at",
    "created_at",
    "updated_at",
    "bios_interface",
    "boot_interface",
    "console_interface",
    "deploy_interface",
    "firmware_interface",
    "inspect_interface",
    "management_interface",
    "network_interface",
    "power_interface",
    "raid_interface",
    "rescue_interface",
    "storage_interface",
    "vendor_interface",
];

pub const PORT_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "address",
    "name",
    "description",
    "physical_network",
    "pxe_enabled",
    "is_smartnic",
    "vendor",
    "category",
    "created_at",
    "updated_at",
];

pub const PORTGROUP_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "address",
    "mode",
    "standalone_ports_supported",
    "physical_network",
    "category",
    "created_at",
    "updated_at",
];

pub const CHASSIS_SORT_COLUMNS: &[&str] =
    &["id", "uuid", "description", "created_at", "updated_at"];

pub const CONDUCTOR_SORT_COLUMNS: &[&str] = &[
    "id",
    "hostname",
    "conductor_group",
    "online",
    "created_at",
    "updated_at",
];

pub const DEPLOY_TEMPLATE_SORT_COLUMNS: &[&str] =
    &["id", "uuid", "name", "created_at", "updated_at"];

pub const RUNBOOK_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "name",
    "description",
    "public",
    "owner",
    "disable_ramdisk",
    "created_at",
    "updated_at",
];

pub const VOLUME_CONNECTOR_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "node_id",
    "type",
    "connector_id",
    "created_at",
    "updated_at",
];

pub const VOLUME_TARGET_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "node_id",
    "volume_type",
    "volume_id",
    "boot_index",
    "created_at",
    "updated_at",
];

pub const INSPECTION_RULE_SORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "priority",
    "description",
    "scope",
    "sensitive",
    "phase",
    "created_at",
    "updated_at",
];
