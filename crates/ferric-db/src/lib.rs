//! Ferric's storage: the [`Store`] trait every caller uses, and its SQLite
//! implementation with embedded migrations.
//!
//! Architecture invariants:
//! - Callers see only [`Store`]; no SQL leaves this crate, so a PostgreSQL
//!   store can be added beside [`SqliteStore`] without touching them.
//! - Each method is one transaction: a process killed at any moment leaves
//!   either the whole change or none of it.
//! - A node row changes only under its reservation: [`Store::save_node`]
//!   writes only if the caller still holds the node's lock.

mod error;
pub mod query;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferric_core::inspection_rule::InspectionRuleUuid;
use ferric_core::volume::{VolumeConnectorUuid, VolumeTargetUuid};
use ferric_core::InspectionRule;
use ferric_core::{
    BiosSetting, Chassis, ChassisUuid, ConductorRecord, DeployTemplate, DeployTemplateUuid,
    FirmwareComponent, HistoryEvent, Ident, MacAddress, Node, NodeIdent, NodeInventory, NodeUuid,
    Port, PortUuid, Portgroup, PortgroupUuid, Runbook, RunbookUuid, VolumeConnector, VolumeTarget,
};

pub use error::{DbError, DbResult};
pub use query::{NodeFilter, Page, PortFilter, PortgroupFilter, SortDir};
pub use sqlite::SqliteStore;

/// How a node is written back: keep holding its lock, or let it go in the
/// same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSave {
    KeepLock,
    Release,
}

/// A node as the periodic tasks read it: identity, states, locks, driver,
/// interfaces and `driver_info`. The large fields (`instance_info` with its
/// config drive, `properties`, `extra`, `driver_internal_info`, steps, RAID
/// and network data, traits) are left out and empty here, so a brief node
/// is never saved whole: its changes go through [`Store::save_power_sync`].
#[derive(Debug, Clone, PartialEq)]
pub struct BriefNode(Node);

impl BriefNode {
    /// The node with its large fields empty: for reading, never saving.
    pub fn node(&self) -> &Node {
        &self.0
    }

    /// An owned copy for a driver call that stores nothing.
    pub fn to_read_only_node(&self) -> Node {
        self.0.clone()
    }
}

impl std::ops::Deref for BriefNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.0
    }
}

/// What the power-state sync writes of a node it holds, releasing it in
/// the same transaction: every field is written as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerSyncRecord {
    pub power_state: Option<ferric_core::PowerState>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<String>,
    pub last_error: Option<String>,
}

/// Everything Ferric stores.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Nodes.
    /// Inserts a new node (with its traits); returns it with its id.
    async fn create_node(&self, node: &Node) -> DbResult<Node>;
    async fn get_node(&self, ident: &NodeIdent) -> DbResult<Node>;
    async fn list_nodes(&self, filter: &NodeFilter, page: &Page) -> DbResult<Vec<Node>>;
    /// As [`Store::list_nodes`], reading only the columns of a [`BriefNode`].
    async fn list_nodes_brief(&self, filter: &NodeFilter, page: &Page) -> DbResult<Vec<BriefNode>>;
    /// Writes every field of `node` but its id, reservation, creation time
    /// and traits, if `holder` still holds its reservation.
    async fn save_node(&self, node: &Node, holder: &str, after: AfterSave) -> DbResult<Node>;
    /// Replaces the node's traits, if `holder` holds its reservation.
    async fn set_node_traits(
        &self,
        uuid: NodeUuid,
        traits: &[String],
        holder: &str,
    ) -> DbResult<Node>;
    /// Deletes the node, its ports, port groups and traits, if `holder`
    /// holds its reservation.
    async fn delete_node(&self, uuid: NodeUuid, holder: &str) -> DbResult<()>;

    // Node locks.
    /// Takes the node's exclusive lock for `holder`, or says who has it.
    async fn reserve_node(&self, ident: &NodeIdent, holder: &str) -> DbResult<Node>;
    /// As [`Store::reserve_node`], reading only the columns of a
    /// [`BriefNode`].
    async fn reserve_node_brief(&self, uuid: NodeUuid, holder: &str) -> DbResult<BriefNode>;
    /// Writes what the power-state sync found and releases the node, if
    /// `holder` holds it.
    async fn save_power_sync(
        &self,
        uuid: NodeUuid,
        holder: &str,
        record: &PowerSyncRecord,
    ) -> DbResult<()>;
    /// Lets go of the lock if `holder` has it; a no-op otherwise.
    async fn release_node(&self, uuid: NodeUuid, holder: &str) -> DbResult<()>;
    /// Clears every lock held by `holder`; returns the nodes it freed.
    async fn release_all_reservations(&self, holder: &str) -> DbResult<Vec<NodeUuid>>;

    // Ports.
    async fn create_port(&self, port: &Port) -> DbResult<Port>;
    async fn get_port(&self, uuid: PortUuid) -> DbResult<Port>;
    /// The port with this MAC: how a booting machine is recognised.
    async fn get_port_by_address(&self, address: &MacAddress) -> DbResult<Port>;
    async fn get_port_by_name(&self, name: &str) -> DbResult<Port>;
    async fn list_ports(&self, filter: &PortFilter, page: &Page) -> DbResult<Vec<Port>>;
    async fn save_port(&self, port: &Port) -> DbResult<Port>;
    async fn delete_port(&self, uuid: PortUuid) -> DbResult<()>;

    // Port groups.
    async fn create_portgroup(&self, group: &Portgroup) -> DbResult<Portgroup>;
    async fn get_portgroup(&self, ident: &Ident<PortgroupUuid>) -> DbResult<Portgroup>;
    async fn list_portgroups(
        &self,
        filter: &PortgroupFilter,
        page: &Page,
    ) -> DbResult<Vec<Portgroup>>;
    async fn save_portgroup(&self, group: &Portgroup) -> DbResult<Portgroup>;
    /// Refuses while ports are still members.
    async fn delete_portgroup(&self, uuid: PortgroupUuid) -> DbResult<()>;

    // Chassis.
    async fn create_chassis(&self, chassis: &Chassis) -> DbResult<Chassis>;
    async fn get_chassis(&self, uuid: ChassisUuid) -> DbResult<Chassis>;
    async fn list_chassis(&self, page: &Page) -> DbResult<Vec<Chassis>>;
    async fn save_chassis(&self, chassis: &Chassis) -> DbResult<Chassis>;
    /// Refuses while nodes still belong to it.
    async fn delete_chassis(&self, uuid: ChassisUuid) -> DbResult<()>;

    // Conductors.
    /// Registers (or re-registers after a restart) a conductor as online.
    async fn register_conductor(
        &self,
        hostname: &str,
        group: &str,
        drivers: &[String],
        now: DateTime<Utc>,
    ) -> DbResult<ConductorRecord>;
    async fn touch_conductor(&self, hostname: &str, now: DateTime<Utc>) -> DbResult<()>;
    async fn unregister_conductor(&self, hostname: &str) -> DbResult<()>;
    async fn get_conductor(&self, hostname: &str) -> DbResult<ConductorRecord>;
    async fn list_conductors(&self, page: &Page) -> DbResult<Vec<ConductorRecord>>;

    // Node history and inventory.
    /// Adds an event to its node's history, keeping the newest `keep`
    /// events of that node (0 keeps them all).
    async fn add_history(&self, event: &HistoryEvent, keep: usize) -> DbResult<()>;
    /// A node's history, oldest first; `page.marker` is an event's id.
    async fn list_history(&self, node: NodeUuid, page: &Page) -> DbResult<Vec<HistoryEvent>>;
    async fn get_history(&self, node: NodeUuid, event: uuid::Uuid) -> DbResult<HistoryEvent>;
    /// Stores the node's inventory, replacing an earlier one.
    async fn save_inventory(&self, inventory: &NodeInventory) -> DbResult<()>;
    async fn get_inventory(&self, node: NodeUuid) -> DbResult<NodeInventory>;

    // Shards.
    /// Each node shard with its number of nodes (`None`: nodes without a
    /// shard), most nodes first.
    async fn shard_counts(&self) -> DbResult<Vec<(Option<String>, u64)>>;

    // BIOS settings and firmware components.
    /// The node's BIOS settings, by name.
    async fn list_bios_settings(&self, node: NodeUuid) -> DbResult<Vec<BiosSetting>>;
    async fn get_bios_setting(&self, node: NodeUuid, name: &str) -> DbResult<BiosSetting>;
    /// Makes the node's BIOS settings `settings`: new names created,
    /// changed values updated (at `now`), names not given deleted.
    async fn replace_bios_settings(
        &self,
        node: NodeUuid,
        settings: &[BiosSetting],
        now: DateTime<Utc>,
    ) -> DbResult<()>;
    /// The node's firmware components, in the order first seen.
    async fn list_firmware_components(&self, node: NodeUuid) -> DbResult<Vec<FirmwareComponent>>;
    /// Records components just read from the node: new ones created,
    /// changed ones updated (a new version counts as flashed).
    async fn sync_firmware_components(
        &self,
        node: NodeUuid,
        components: &[FirmwareComponent],
        now: DateTime<Utc>,
    ) -> DbResult<()>;

    // Deploy templates.
    /// Inserts a template with its steps; a name or UUID already taken is
    /// a [`DbError::Duplicate`].
    async fn create_deploy_template(&self, template: &DeployTemplate) -> DbResult<DeployTemplate>;
    async fn get_deploy_template(
        &self,
        ident: &Ident<DeployTemplateUuid>,
    ) -> DbResult<DeployTemplate>;
    async fn list_deploy_templates(&self, page: &Page) -> DbResult<Vec<DeployTemplate>>;
    /// The templates with one of these names, in the order they were made.
    async fn list_deploy_templates_by_names(
        &self,
        names: &[String],
    ) -> DbResult<Vec<DeployTemplate>>;
    /// Writes the name, extra and steps (replacing the stored steps).
    async fn save_deploy_template(&self, template: &DeployTemplate) -> DbResult<DeployTemplate>;
    async fn delete_deploy_template(&self, uuid: DeployTemplateUuid) -> DbResult<()>;

    // Runbooks.
    /// Inserts a runbook with its steps and traits; a name or UUID already
    /// taken is a [`DbError::Duplicate`].
    async fn create_runbook(&self, runbook: &Runbook) -> DbResult<Runbook>;
    async fn get_runbook(&self, ident: &Ident<RunbookUuid>) -> DbResult<Runbook>;
    async fn list_runbooks(&self, page: &Page) -> DbResult<Vec<Runbook>>;
    /// Writes every field but the traits, replacing the stored steps.
    async fn save_runbook(&self, runbook: &Runbook) -> DbResult<Runbook>;
    /// Replaces the runbook's traits.
    async fn set_runbook_traits(&self, uuid: RunbookUuid, traits: &[String]) -> DbResult<Runbook>;
    async fn delete_runbook(&self, uuid: RunbookUuid) -> DbResult<()>;

    // Volume connectors and targets. A node's are deleted with it.
    /// Refuses a second connector with the same type and connector ID.
    async fn create_volume_connector(&self, c: &VolumeConnector) -> DbResult<VolumeConnector>;
    async fn get_volume_connector(&self, uuid: VolumeConnectorUuid) -> DbResult<VolumeConnector>;
    /// All connectors, or the node's.
    async fn list_volume_connectors(
        &self,
        node: Option<NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<VolumeConnector>>;
    async fn save_volume_connector(&self, c: &VolumeConnector) -> DbResult<VolumeConnector>;
    async fn delete_volume_connector(&self, uuid: VolumeConnectorUuid) -> DbResult<()>;
    /// Refuses a second target of the node with the same boot index.
    async fn create_volume_target(&self, t: &VolumeTarget) -> DbResult<VolumeTarget>;
    async fn get_volume_target(&self, uuid: VolumeTargetUuid) -> DbResult<VolumeTarget>;
    async fn list_volume_targets(
        &self,
        node: Option<NodeUuid>,
        page: &Page,
    ) -> DbResult<Vec<VolumeTarget>>;
    async fn save_volume_target(&self, t: &VolumeTarget) -> DbResult<VolumeTarget>;
    async fn delete_volume_target(&self, uuid: VolumeTargetUuid) -> DbResult<()>;

    // Inspection rules.
    async fn create_inspection_rule(&self, rule: &InspectionRule) -> DbResult<InspectionRule>;
    async fn get_inspection_rule(&self, uuid: InspectionRuleUuid) -> DbResult<InspectionRule>;
    async fn list_inspection_rules(&self, page: &Page) -> DbResult<Vec<InspectionRule>>;
    async fn save_inspection_rule(&self, rule: &InspectionRule) -> DbResult<InspectionRule>;
    async fn delete_inspection_rule(&self, uuid: InspectionRuleUuid) -> DbResult<()>;
}
