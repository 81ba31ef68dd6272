//! The node: one physical server and everything Ferric knows about it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::NodeUuid;
use crate::interfaces::Interfaces;
use crate::secret::Fields;
use crate::states::{PowerState, ProvisionState};
use crate::JsonObject;

/// A node as stored. Field names are Ironic's; the API decides which of them
/// a client sees at its microversion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Storage-internal sequence number: the default sort key and the tie
    /// breaker for pagination. Never shown.
    pub id: i64,
    pub uuid: NodeUuid,
    pub name: Option<String>,
    pub description: Option<String>,
    pub driver: String,
    pub interfaces: Interfaces,
    pub driver_info: Fields,
    pub driver_internal_info: Fields,
    pub properties: JsonObject,
    pub instance_info: Fields,
    pub instance_uuid: Option<String>,
    pub instance_name: Option<String>,
    pub extra: JsonObject,
    pub chassis_uuid: Option<String>,
    pub provision_state: ProvisionState,
    pub target_provision_state: Option<ProvisionState>,
    pub provision_updated_at: Option<DateTime<Utc>>,
    pub power_state: Option<PowerState>,
    pub target_power_state: Option<PowerState>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub fault: Option<String>,
    pub last_error: Option<String>,
    /// Hostname of the conductor holding the node's exclusive lock.
    pub reservation: Option<String>,
    pub conductor_group: String,
    pub resource_class: Option<String>,
    pub traits: Vec<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    pub automated_clean: Option<bool>,
    pub protected: bool,
    pub protected_reason: Option<String>,
    pub retired: bool,
    pub retired_reason: Option<String>,
    pub console_enabled: bool,
    pub boot_mode: Option<String>,
    pub secure_boot: Option<bool>,
    pub clean_step: Fields,
    pub deploy_step: Fields,
    pub service_step: Fields,
    pub raid_config: JsonObject,
    pub target_raid_config: JsonObject,
    pub network_data: JsonObject,
    pub shard: Option<String>,
    pub parent_node: Option<String>,
    pub allocation_uuid: Option<String>,
    pub inspection_started_at: Option<DateTime<Utc>>,
    pub inspection_finished_at: Option<DateTime<Utc>>,
    pub health: Option<String>,
    pub disable_power_off: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Node {
    /// A freshly enrolled node: state `enroll`, everything else empty.
    pub fn enroll(
        uuid: NodeUuid,
        driver: String,
        interfaces: Interfaces,
        now: DateTime<Utc>,
    ) -> Node {
        Node {
            id: 0,
            uuid,
            name: None,
            description: None,
            driver,
            interfaces,
            driver_info: Fields::new(),
            driver_internal_info: Fields::new(),
            properties: JsonObject::new(),
            instance_info: Fields::new(),
            instance_uuid: None,
            instance_name: None,
            extra: JsonObject::new(),
            chassis_uuid: None,
            provision_state: ProvisionState::Enroll,
            target_provision_state: None,
            provision_updated_at: None,
            power_state: None,
            target_power_state: None,
            maintenance: false,
            maintenance_reason: None,
            fault: None,
            last_error: None,
            reservation: None,
            conductor_group: String::new(),
            resource_class: None,
            traits: Vec::new(),
            owner: None,
            lessee: None,
            automated_clean: None,
            protected: false,
            protected_reason: None,
            retired: false,
            retired_reason: None,
            console_enabled: false,
            boot_mode: None,
            secure_boot: None,
            clean_step: Fields::new(),
            deploy_step: Fields::new(),
            service_step: Fields::new(),
            raid_config: JsonObject::new(),
            target_raid_config: JsonObject::new(),
            network_data: JsonObject::new(),
            shard: None,
            parent_node: None,
            allocation_uuid: None,
            inspection_started_at: None,
            inspection_finished_at: None,
            health: None,
            disable_power_off: false,
            created_at: now,
            updated_at: None,
        }
    }

    /// The name if it has one, else the UUID: how messages name a node.
    pub fn display_ident(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.uuid.to_string(),
        }
    }
}

/// The most traits a node may carry (Ironic's MAX_TRAITS_PER_NODE).
pub const MAX_TRAITS_PER_NODE: usize = 50;

/// Ironic's trait rule: `CUSTOM_` followed by upper-case letters, digits
/// and underscores, or one of os-traits' standard names; at most 255
/// characters.
pub fn is_valid_trait(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    match name.strip_prefix("CUSTOM_") {
        Some(rest) => {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }
        None => crate::standard_traits::STANDARD_TRAITS
            .binary_search(&name)
            .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traits_are_custom_or_standard() {
        for good in [
            "CUSTOM_GPU",
            "CUSTOM_RAID_1",
            "HW_CPU_X86_AVX2",
            "COMPUTE_ARCH_AARCH64",
        ] {
            assert!(is_valid_trait(good), "{good}");
        }
        for bad in [
            "CUSTOM_",
            "CUSTOM_gpu",
            "FOO",
            "HW_CPU_X86_NOPE",
            "",
            "custom_gpu",
        ] {
            assert!(!is_valid_trait(bad), "{bad}");
        }
        let sorted = crate::standard_traits::STANDARD_TRAITS
            .windows(2)
            .all(|w| w[0] < w[1]);
        assert!(sorted, "the standard list must stay sorted");
    }
}
