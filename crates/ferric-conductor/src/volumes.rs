//! Changing and deleting volume connectors and targets, under their node's
//! lock, with Ironic's power-state rules. Creating one needs no lock (as in
//! Ironic, the API stores it directly).

use ferric_core::volume::{VolumeConnectorUuid, VolumeTargetUuid};
use ferric_core::{Ident, Node, NodeUuid, PowerState, VolumeConnector, VolumeTarget};

use crate::error::{ConductorError, Result};
use crate::Conductor;

/// Ironic changes a node's volumes only while it is powered off.
fn check_update(node: &Node, action: &str) -> Result<()> {
    if node.power_state == Some(PowerState::Off) {
        return Ok(());
    }
    Err(refused(node, action))
}

/// Deletion is also allowed in the states a node itself may be deleted in.
fn check_destroy(node: &Node, action: &str) -> Result<()> {
    if node.provision_state.allows_delete() {
        return Ok(());
    }
    check_update(node, action)
}

fn refused(node: &Node, action: &str) -> ConductorError {
    ConductorError::InvalidStateRequested {
        action: action.to_owned(),
        node: node.uuid.to_string(),
        // Ironic names the power state here, `None` when unknown.
        state: node
            .power_state
            .map_or_else(|| "None".to_owned(), |p| p.to_string()),
    }
}

impl Conductor {
    /// Runs `store` under the lock of `node` if `check` allows it.
    async fn under_node_lock<T>(
        &self,
        node: NodeUuid,
        check: impl FnOnce(&Node) -> Result<()>,
        store: impl std::future::Future<Output = ferric_db::DbResult<T>>,
    ) -> Result<T> {
        let task = self.inner.lock(&Ident::Uuid(node)).await?;
        if let Err(e) = check(&task.node) {
            return crate::flows::refuse(task, e).await;
        }
        let result = store.await;
        task.release_unchanged().await?;
        Ok(result?)
    }

    /// Saves a changed connector; the lock taken is that of the node it
    /// belongs to after the change.
    pub async fn update_volume_connector(&self, c: VolumeConnector) -> Result<VolumeConnector> {
        let store = self.inner.store.clone();
        let node = c.node_uuid;
        self.under_node_lock(
            node,
            |n| check_update(n, "volume connector update"),
            async move { store.save_volume_connector(&c).await },
        )
        .await
    }

    pub async fn destroy_volume_connector(&self, uuid: VolumeConnectorUuid) -> Result<()> {
        let c = self.inner.store.get_volume_connector(uuid).await?;
        let store = self.inner.store.clone();
        self.under_node_lock(
            c.node_uuid,
            |n| check_destroy(n, "volume connector deletion"),
            async move { store.delete_volume_connector(uuid).await },
        )
        .await
    }

    /// As [`Conductor::update_volume_connector`].
    pub async fn update_volume_target(&self, t: VolumeTarget) -> Result<VolumeTarget> {
        let store = self.inner.store.clone();
        let node = t.node_uuid;
        self.under_node_lock(
            node,
            |n| check_update(n, "volume target update"),
            async move { store.save_volume_target(&t).await },
        )
        .await
    }

    pub async fn destroy_volume_target(&self, uuid: VolumeTargetUuid) -> Result<()> {
        let t = self.inner.store.get_volume_target(uuid).await?;
        let store = self.inner.store.clone();
        self.under_node_lock(
            t.node_uuid,
            |n| check_destroy(n, "volume target deletion"),
            async move { store.delete_volume_target(uuid).await },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_core::ProvisionState;

    fn node(power: Option<PowerState>, state: ProvisionState) -> Node {
        let mut n = Node::enroll(
            NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            chrono::Utc::now(),
        );
        n.power_state = power;
        n.provision_state = state;
        n
    }

    #[test]
    fn volumes_change_only_on_powered_off_nodes() {
        let off = node(Some(PowerState::Off), ProvisionState::Active);
        assert!(check_update(&off, "volume target update").is_ok());
        let on = node(Some(PowerState::On), ProvisionState::Enroll);
        let e = check_update(&on, "volume connector update").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "The requested action \"volume connector update\" can not be performed on node \"{}\" while it is in state \"power on\".",
                on.uuid
            )
        );
        let unknown = node(None, ProvisionState::Available);
        assert!(check_update(&unknown, "x")
            .unwrap_err()
            .to_string()
            .ends_with("state \"None\"."));
    }

    #[test]
    fn volumes_of_deletable_nodes_may_go_while_powered_on() {
        let on = |s| node(Some(PowerState::On), s);
        assert!(check_destroy(&on(ProvisionState::Manageable), "x").is_ok());
        assert!(check_destroy(&on(ProvisionState::Enroll), "x").is_ok());
        assert!(check_destroy(&on(ProvisionState::Available), "x").is_err());
        assert!(check_destroy(&node(Some(PowerState::Off), ProvisionState::Active), "x").is_ok());
    }
}
