//! Enrolling, updating and deleting nodes, their traits and their ports.

use ferric_core::node::{is_valid_trait, MAX_TRAITS_PER_NODE};
use ferric_core::{
    Ident, InterfaceKind, Node, NodeIdent, Port, PortUuid, Portgroup, PortgroupUuid, ProvisionState,
};
use ferric_drivers::Registry;

use crate::error::{ConductorError, Result};
use crate::task::Task;
use crate::Conductor;

/// A change to apply to a record under its node's lock; it may refuse.
pub type Change<'a, T> = Box<dyn FnOnce(&mut T) -> Result<()> + Send + 'a>;

/// A change to a port or port group, made under its node's lock with the
/// node in view (what may change depends on the node's state).
pub type ChildChange<'a, T> = Box<dyn FnOnce(&mut T, &Node) -> Result<()> + Send + 'a>;

fn moved_while_locking(kind: &str, uuid: &impl std::fmt::Display) -> ConductorError {
    ConductorError::InvalidState(format!(
        "{kind} {uuid} moved to another node while being updated; retry"
    ))
}

/// States in which a node's interfaces and resource class may change.
const RECONFIGURABLE_STATES: &[ProvisionState] = &[
    ProvisionState::Enroll,
    ProvisionState::Inspecting,
    ProvisionState::InspectWait,
    ProvisionState::Manageable,
    ProvisionState::Available,
];

fn allowed_states_text() -> String {
    RECONFIGURABLE_STATES
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Conductor {
    /// Enrolls a node: checks its driver and interfaces and fills in the
    /// defaults, then stores it in `enroll`.
    pub async fn create_node(&self, mut node: Node) -> Result<Node> {
        self.inner.registry.fill_interfaces(&mut node)?;
        self.check_chassis(&node).await?;
        Ok(self.inner.store.create_node(&node).await?)
    }

    async fn check_chassis(&self, node: &Node) -> Result<()> {
        if let Some(chassis) = &node.chassis_uuid {
            let uuid = chassis.parse().map_err(|_| ConductorError::NotFound {
                kind: "Chassis",
                ident: chassis.clone(),
            })?;
            self.inner.store.get_chassis(uuid).await?;
        }
        Ok(())
    }

    /// Applies `change` to the node under its lock, with Ironic's checks on
    /// what may change in which state.
    pub async fn update_node(
        &self,
        ident: &NodeIdent,
        change: Change<'_, Node>,
        reset_interfaces: bool,
    ) -> Result<Node> {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        let before = task.node.clone();
        let mut after = before.clone();
        let checked = match change(&mut after) {
            Ok(()) => check_update(&self.inner.registry, &before, &mut after, reset_interfaces),
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            return crate::flows::refuse(task, e).await;
        }
        if let Err(e) = self.check_chassis(&after).await {
            return crate::flows::refuse(task, e).await;
        }
        task.node = after;
        task.release().await
    }

    /// Deletes a node and its ports, with Ironic's refusals.
    pub async fn destroy_node(&self, ident: &NodeIdent) -> Result<()> {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        if let Err(e) = check_destroy(&task, self.inner.config.allow_deleting_available_nodes) {
            return crate::flows::refuse(task, e).await;
        }
        crate::console::stop_before_delete(&mut task).await;
        task.delete_node().await
    }

    /// Replaces the node's traits; an empty list removes them all.
    pub async fn set_traits(&self, ident: &NodeIdent, traits: Vec<String>) -> Result<Node> {
        self.change_traits(ident, |_| Ok(traits)).await
    }

    pub async fn add_trait(&self, ident: &NodeIdent, name: String) -> Result<Node> {
        self.change_traits(ident, move |node| {
            let mut all = node.traits.clone();
            all.push(name);
            Ok(all)
        })
        .await
    }

    pub async fn remove_trait(&self, ident: &NodeIdent, name: String) -> Result<Node> {
        self.change_traits(ident, move |node| {
            if !node.traits.contains(&name) {
                return Err(ConductorError::TraitNotFound {
                    node: node.uuid.to_string(),
                    name,
                });
            }
            Ok(node
                .traits
                .iter()
                .filter(|t| **t != name)
                .cloned()
                .collect())
        })
        .await
    }

    async fn change_traits(
        &self,
        ident: &NodeIdent,
        change: impl FnOnce(&Node) -> Result<Vec<String>>,
    ) -> Result<Node> {
        let node = self.inner.store.get_node(ident).await?;
        let task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        let mut traits = match change(&task.node) {
            Ok(t) => t,
            Err(e) => return crate::flows::refuse(task, e).await,
        };
        let mut seen = std::collections::HashSet::new();
        traits.retain(|t| seen.insert(t.clone()));
        if let Err(e) = check_traits(&task.node, &traits) {
            return crate::flows::refuse(task, e).await;
        }
        let uuid = task.node.uuid;
        let stored = self
            .inner
            .store
            .set_node_traits(uuid, &traits, &self.inner.host)
            .await;
        task.release_unchanged().await?;
        Ok(stored?)
    }

    /// Creates a port. Needs no node lock, as in Ironic.
    pub async fn create_port(&self, port: Port) -> Result<Port> {
        self.check_port_group(&port, None).await?;
        Ok(self.inner.store.create_port(&port).await?)
    }

    /// A port joins only a group of its own node, on the group's physical
    /// network; `before` is the port as stored, when it is being updated.
    async fn check_port_group(&self, port: &Port, before: Option<&Port>) -> Result<()> {
        let Some(group) = port.portgroup_uuid else {
            return Ok(());
        };
        let group = self.inner.store.get_portgroup(&Ident::Uuid(group)).await?;
        if group.node_uuid != port.node_uuid {
            return Err(ConductorError::Invalid(format!(
                "Port with uuid {} and portgroup with uuid {} must belong to the same node.",
                port.uuid, group.uuid
            )));
        }
        let membership_changed = before.is_none_or(|b| {
            b.portgroup_uuid != port.portgroup_uuid || b.physical_network != port.physical_network
        });
        if membership_changed {
            self.check_port_physnet(port, &group).await?;
        }
        Ok(())
    }

    /// Ironic's rule: every port of a group is on the same physical network
    /// (possibly none) as the others, or as the group says when it has no
    /// other ports.
    async fn check_port_physnet(&self, port: &Port, group: &Portgroup) -> Result<()> {
        let members = ferric_db::PortFilter {
            portgroup_id: Some(group.id),
            ..Default::default()
        };
        let others = self
            .inner
            .store
            .list_ports(&members, &ferric_db::Page::default())
            .await?;
        let physnets: std::collections::BTreeSet<Option<&str>> = others
            .iter()
            .filter(|p| p.uuid != port.uuid)
            .map(|p| p.physical_network.as_deref())
            .collect();
        let shown = |p: Option<&str>| p.unwrap_or("None").to_owned();
        if physnets.len() > 1 {
            let listed: Vec<String> = physnets.iter().map(|p| shown(*p)).collect();
            return Err(ConductorError::Failed(format!(
                "Port group {} has member ports with inconsistent physical networks ({}). All ports in a port \
                 group must have the same physical network.",
                group.uuid,
                listed.join(", ")
            )));
        }
        let expected = match physnets.first() {
            Some(p) => *p,
            None if group.physical_network.is_some() => group.physical_network.as_deref(),
            None => return Ok(()),
        };
        if port.physical_network.as_deref() == expected {
            return Ok(());
        }
        Err(ConductorError::Conflict(format!(
            "Port with physical network {} cannot become a member of port group {} which has ports in physical \
             network {}.",
            shown(port.physical_network.as_deref()),
            group.uuid,
            shown(expected)
        )))
    }

    /// Updates a port under its node's lock, on the port as it stands once
    /// the lock is held.
    pub async fn update_port(&self, uuid: PortUuid, change: ChildChange<'_, Port>) -> Result<Port> {
        let port = self.inner.store.get_port(uuid).await?;
        let task = self.inner.lock(&Ident::Uuid(port.node_uuid)).await?;
        let result = async {
            let current = self.inner.store.get_port(uuid).await?;
            if current.node_uuid != task.node.uuid {
                return Err(moved_while_locking("Port", &uuid));
            }
            let mut updated = current.clone();
            change(&mut updated, &task.node)?;
            if updated.node_uuid != current.node_uuid {
                self.inner
                    .store
                    .get_node(&Ident::Uuid(updated.node_uuid))
                    .await?;
            }
            self.check_port_group(&updated, Some(&current)).await?;
            Ok(self.inner.store.save_port(&updated).await?)
        }
        .await;
        task.release_unchanged().await?;
        result
    }

    pub async fn destroy_port(&self, uuid: PortUuid) -> Result<()> {
        let port = self.inner.store.get_port(uuid).await?;
        let task = self.inner.lock(&Ident::Uuid(port.node_uuid)).await?;
        let result = self.inner.store.delete_port(uuid).await;
        task.release_unchanged().await?;
        Ok(result?)
    }

    pub async fn create_portgroup(&self, group: Portgroup) -> Result<Portgroup> {
        Ok(self.inner.store.create_portgroup(&group).await?)
    }

    /// Updates a port group under its node's lock. A group with member
    /// ports cannot move to another node.
    pub async fn update_portgroup(
        &self,
        uuid: PortgroupUuid,
        change: ChildChange<'_, Portgroup>,
    ) -> Result<Portgroup> {
        let group = self.inner.store.get_portgroup(&Ident::Uuid(uuid)).await?;
        let task = self.inner.lock(&Ident::Uuid(group.node_uuid)).await?;
        let result = async {
            let current = self.inner.store.get_portgroup(&Ident::Uuid(uuid)).await?;
            if current.node_uuid != task.node.uuid {
                return Err(moved_while_locking("Portgroup", &uuid));
            }
            let mut updated = current.clone();
            change(&mut updated, &task.node)?;
            if updated.node_uuid != current.node_uuid {
                self.inner
                    .store
                    .get_node(&Ident::Uuid(updated.node_uuid))
                    .await?;
                let members = ferric_db::PortFilter {
                    portgroup_id: Some(current.id),
                    ..Default::default()
                };
                let page = ferric_db::Page {
                    limit: Some(1),
                    ..Default::default()
                };
                if !self
                    .inner
                    .store
                    .list_ports(&members, &page)
                    .await?
                    .is_empty()
                {
                    return Err(ConductorError::Invalid(format!(
                        "Cannot complete the requested action because portgroup {} contains ports.",
                        current.id
                    )));
                }
            }
            Ok(self.inner.store.save_portgroup(&updated).await?)
        }
        .await;
        task.release_unchanged().await?;
        result
    }

    pub async fn destroy_portgroup(&self, uuid: PortgroupUuid) -> Result<()> {
        let group = self.inner.store.get_portgroup(&Ident::Uuid(uuid)).await?;
        let task = self.inner.lock(&Ident::Uuid(group.node_uuid)).await?;
        let result = self.inner.store.delete_portgroup(uuid).await;
        task.release_unchanged().await?;
        match result {
            Err(ferric_db::DbError::Reference(_)) => Err(ConductorError::Invalid(format!(
                "Cannot complete the requested action because portgroup {} contains ports.",
                group.id
            ))),
            other => Ok(other?),
        }
    }
}

fn check_traits(node: &Node, traits: &[String]) -> Result<()> {
    if let Some(bad) = traits.iter().find(|t| !is_valid_trait(t)) {
        return Err(ConductorError::Invalid(format!(
            "Schema error for trait: '{bad}' is not valid under any of the given schemas"
        )));
    }
    if traits.len() > MAX_TRAITS_PER_NODE {
        return Err(ConductorError::Invalid(format!(
            "Could not modify traits for node {} as it would exceed the maximum number of traits per node ({} vs. {MAX_TRAITS_PER_NODE})",
            node.id,
            traits.len()
        )));
    }
    Ok(())
}

/// Ironic's `update_node` checks, on the node before and after the change.
fn check_update(
    registry: &Registry,
    before: &Node,
    after: &mut Node,
    reset_interfaces: bool,
) -> Result<()> {
    let uuid = after.uuid;
    if after.maintenance != before.maintenance && !after.maintenance {
        after.maintenance_reason = None;
        after.fault = None;
    }
    check_protected_and_retired(before, after)?;
    let reconfigurable =
        RECONFIGURABLE_STATES.contains(&after.provision_state) || after.maintenance;
    let driver_changed = after.driver != before.driver;
    let mut check_interfaces = driver_changed;
    for kind in InterfaceKind::ALL {
        if after.interfaces.get(*kind) == before.interfaces.get(*kind) {
            if driver_changed && reset_interfaces {
                after.interfaces.set(*kind, "");
            }
            continue;
        }
        if !reconfigurable {
            return Err(ConductorError::InvalidState(format!(
                "Node {uuid} can not have {} updated unless it is in one of allowed ({}) states or in \
                 maintenance mode. Current state is '{}'.",
                kind.field_name(),
                allowed_states_text(),
                after.provision_state
            )));
        }
        check_interfaces = true;
    }
    if check_interfaces {
        registry.fill_interfaces(after)?;
    }
    if after.instance_uuid != before.instance_uuid
        && after.instance_uuid.is_some()
        && before.instance_uuid.is_some()
    {
        return Err(ConductorError::NodeAssociated {
            node: uuid.to_string(),
            instance: before.instance_uuid.clone().unwrap_or_default(),
        });
    }
    if after.resource_class != before.resource_class
        && before.resource_class.is_some()
        && !RECONFIGURABLE_STATES.contains(&before.provision_state)
    {
        return Err(ConductorError::InvalidState(format!(
            "Node {uuid} can not have resource_class updated unless it is in one of allowed ({}) states. \
             Current state is '{}'.",
            allowed_states_text(),
            before.provision_state
        )));
    }
    Ok(())
}

fn check_protected_and_retired(before: &Node, after: &mut Node) -> Result<()> {
    let uuid = after.uuid;
    if after.protected != before.protected {
        if !after.protected {
            after.protected_reason = None;
        } else if !matches!(
            after.provision_state,
            ProvisionState::Active | ProvisionState::Rescue
        ) {
            return Err(ConductorError::InvalidState(format!(
                "Node {uuid} can only be made protected in provision states 'active' or 'rescue', the \
                 current state is '{}'",
                after.provision_state
            )));
        }
    }
    if after.protected_reason != before.protected_reason
        && after.protected_reason.is_some()
        && !after.protected
    {
        return Err(ConductorError::Invalid(
            "The protected_reason field can only be set when protected is True".into(),
        ));
    }
    if after.retired != before.retired {
        if !after.retired {
            after.retired_reason = None;
        } else if after.provision_state == ProvisionState::Available {
            return Err(ConductorError::InvalidState(format!(
                "Node {uuid} can not have 'retired' set in provision state 'available', the current state is '{}'",
                after.provision_state
            )));
        }
    }
    if after.retired_reason != before.retired_reason
        && after.retired_reason.is_some()
        && !after.retired
    {
        return Err(ConductorError::Invalid(
            "The retired_reason field can only be set when retired is True".into(),
        ));
    }
    Ok(())
}

fn check_destroy(task: &Task, allow_available: bool) -> Result<()> {
    let node = &task.node;
    let uuid = node.uuid.to_string();
    if let (false, Some(instance)) = (node.maintenance, &node.instance_uuid) {
        return Err(ConductorError::NodeAssociated {
            node: uuid,
            instance: instance.clone(),
        });
    }
    if node.protected {
        return Err(ConductorError::NodeProtected(uuid));
    }
    let allowed = node.provision_state.allows_delete()
        || (allow_available && node.provision_state == ProvisionState::Available);
    if !node.maintenance && !allowed {
        let mut states = vec!["'manageable'", "'enroll'", "'adopt failed'"];
        if allow_available {
            states.push("'available'");
        }
        return Err(ConductorError::InvalidState(format!(
            "Can not delete node \"{uuid}\" while it is in provision state \"{}\". Valid provision states to \
             perform deletion are: \"({})\", or set the node into maintenance mode",
            node.provision_state,
            states.join(", ")
        )));
    }
    Ok(())
}
