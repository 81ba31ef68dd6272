//! RAID: a node's target RAID configuration, checked by its RAID
//! interface, and what a driver's logical disks may say.

use ferric_core::{Ident, JsonObject, NodeIdent};

use crate::error::{ConductorError, Result};
use crate::Conductor;

impl Conductor {
    /// Stores the RAID configuration the next cleaning builds; an empty
    /// one unsets it without asking the RAID interface.
    pub async fn set_target_raid_config(
        &self,
        ident: &NodeIdent,
        config: JsonObject,
    ) -> Result<()> {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        if !config.is_empty() {
            let checked = task.driver().and_then(|d| {
                d.raid
                    .validate_raid_config(&config)
                    .map_err(|e| ConductorError::from_driver(&task.node.driver, e))
            });
            if let Err(e) = checked {
                return crate::flows::refuse(task, e).await;
            }
        }
        task.node.target_raid_config = config;
        task.release().await?;
        Ok(())
    }

    /// The logical disk properties of a hardware type's default RAID
    /// interface, with their descriptions.
    pub fn raid_logical_disk_properties(&self, driver: &str) -> Result<Vec<(String, String)>> {
        let registry = &self.inner.registry;
        let raid = registry.default_raid(registry.hardware_type(driver)?)?;
        Ok(raid.logical_disk_properties())
    }
}
