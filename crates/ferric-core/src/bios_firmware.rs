//! What a node's firmware reports about itself: its BIOS settings (Ironic's
//! `bios_settings`, API 1.40, with the registry fields of 1.74) and its
//! firmware components (Ironic's `firmware_information`, API 1.86).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One BIOS setting of a node: its value and, when the BMC has a
/// registry, what values it may take.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BiosSetting {
    pub name: String,
    pub value: Option<String>,
    pub attribute_type: Option<String>,
    pub allowable_values: Option<Vec<String>>,
    pub lower_bound: Option<i64>,
    pub max_length: Option<i64>,
    pub min_length: Option<i64>,
    pub read_only: Option<bool>,
    pub reset_required: Option<bool>,
    pub unique: Option<bool>,
    pub upper_bound: Option<i64>,
    /// Set by storage; ignored when writing.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl BiosSetting {
    /// A setting with only a name and a value.
    pub fn new(name: impl Into<String>, value: Option<String>) -> BiosSetting {
        BiosSetting {
            name: name.into(),
            value,
            ..BiosSetting::default()
        }
    }
}

/// One firmware component of a node (`bios`, `bmc`, a NIC, ...) and its
/// versions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirmwareComponent {
    pub component: String,
    /// The version first seen; kept across updates.
    pub initial_version: String,
    pub current_version: Option<String>,
    pub last_version_flashed: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
    /// Set by storage; ignored when writing.
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl FirmwareComponent {
    /// Whether `seen`, a fresh reading of this component, differs from it
    /// in a way worth storing (Ironic's `sync_firmware_components`).
    pub fn changed_by(&self, seen: &FirmwareComponent) -> bool {
        let version_changed = seen.current_version != self.current_version
            || (self.last_version_flashed.is_some()
                && seen.current_version != self.last_version_flashed);
        version_changed
            || seen.vendor != self.vendor
            || seen.model != self.model
            || seen.serial_number != self.serial_number
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(current: &str, flashed: Option<&str>) -> FirmwareComponent {
        FirmwareComponent {
            component: "bios".into(),
            initial_version: "1.0".into(),
            current_version: Some(current.into()),
            last_version_flashed: flashed.map(str::to_owned),
            ..FirmwareComponent::default()
        }
    }

    #[test]
    fn a_component_changes_by_version_or_identity() {
        let stored = component("1.0", None);
        assert!(!stored.changed_by(&component("1.0", None)));
        assert!(stored.changed_by(&component("1.1", None)));
        let flashed = component("1.1", Some("1.2"));
        assert!(flashed.changed_by(&component("1.1", None)));
        let mut other_model = component("1.0", None);
        other_model.model = Some("X".into());
        assert!(stored.changed_by(&other_model));
    }
}
