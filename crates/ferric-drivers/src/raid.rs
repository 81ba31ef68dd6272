//! RAID configuration: Ironic's schema of a target RAID config, the
//! logical disk properties it describes, and validation against it with
//! Ironic's messages.

use std::sync::OnceLock;

use ferric_core::jsonschema::{best_match, iter_errors, Draft};
use ferric_core::JsonObject;
use serde_json::Value;

use crate::error::DriverError;
use crate::interface::Interface;

/// Ironic's `raid_config_schema.json` (JSON Schema draft 4).
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(include_str!("raid_config_schema.json")).unwrap_or(Value::Null)
    })
}

/// Each logical disk property and its description, in the schema's order.
pub fn logical_disk_properties() -> Vec<(String, String)> {
    schema()
        .pointer("/properties/logical_disks/items/properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, prop)| {
            let description = prop["description"].as_str().unwrap_or_default();
            (name.clone(), description.to_owned())
        })
        .collect()
}

/// Checks a RAID configuration as Ironic's `validate_configuration` does:
/// the schema, then at most one root volume.
pub fn validate_configuration(config: &JsonObject) -> Result<(), DriverError> {
    let instance = Value::Object(config.clone());
    if let Some(e) = best_match(iter_errors(schema(), &instance, Draft::Four)) {
        return Err(DriverError::InvalidParameter(format!(
            "RAID config validation error: {}",
            e.message
        )));
    }
    let roots = config
        .get("logical_disks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| crate::vendor::truthy(d.get("is_root_volume")))
        .count();
    if roots > 1 {
        return Err(DriverError::InvalidParameter(format!(
            "Raid config cannot have more than one root volume. {roots} root volumes were specified"
        )));
    }
    Ok(())
}

pub trait RaidInterface: Interface {
    /// What a logical disk of a target RAID config may say.
    fn logical_disk_properties(&self) -> Vec<(String, String)> {
        logical_disk_properties()
    }

    /// Checks a (non-empty) target RAID configuration.
    fn validate_raid_config(&self, config: &JsonObject) -> Result<(), DriverError> {
        validate_configuration(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases and the messages Ironic (with jsonschema 4.26) gives for them.
    #[test]
    fn configurations_are_refused_with_ironics_messages() {
        let cases: Vec<(Value, Option<&str>)> = vec![
            (serde_json::json!({}), Some("RAID config validation error: 'logical_disks' is a required property")),
            (serde_json::json!({"logical_disks": []}), Some("RAID config validation error: [] should be non-empty")),
            (serde_json::json!({"logical_disks": "x"}), Some("RAID config validation error: 'x' is not of type 'array'")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1"}]}), Some("RAID config validation error: 'size_gb' is a required property")),
            (serde_json::json!({"logical_disks": [{"raid_level": "7", "size_gb": 10}]}),
             Some("RAID config validation error: '7' is not one of ['JBOD', '0', '1', '2', '5', '6', '1+0', '5+0', '6+0']")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": -1}]}), Some("RAID config validation error: -1 is less than the minimum of 0")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": "100"}]}), Some("RAID config validation error: '100' is not one of ['MAX']")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "number_of_physical_disks": 0}]}),
             Some("RAID config validation error: 0 is less than or equal to the minimum of 0")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "physical_disks": ["a"]}]}),
             Some("RAID config validation error: 'controller' is a dependency of 'physical_disks'")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "physical_disks": [{"a": 1}], "controller": "c"}]}),
             Some("RAID config validation error: {'a': 1} is not of type 'string'")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "physical_disks": "x", "controller": "c"}]}),
             Some("RAID config validation error: 'x' is not valid under any of the given schemas")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1.5}]}),
             Some("RAID config validation error: 1.5 is not valid under any of the given schemas")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "a": 1, "b": 2}]}),
             Some("RAID config validation error: Additional properties are not allowed ('a', 'b' were unexpected)")),
            (serde_json::json!({"logical_disks": [{"size_gb": 1, "raid_level": "9", "zz": 1}]}),
             Some("RAID config validation error: Additional properties are not allowed ('zz' was unexpected)")),
            (serde_json::json!({"logical_disks": [5]}), Some("RAID config validation error: 5 is not of type 'object'")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1}, {"raid_level": "x"}]}),
             Some("RAID config validation error: 'size_gb' is a required property")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "is_root_volume": true},
                                                  {"raid_level": "0", "size_gb": "MAX", "is_root_volume": true}]}),
             Some("Raid config cannot have more than one root volume. 2 root volumes were specified")),
            (serde_json::json!({"logical_disks": [{"raid_level": "1", "size_gb": 100, "controller": "RAID.0", "volume_name": "v",
                                                  "share_physical_disks": false, "interface_type": "sas", "number_of_physical_disks": 2}]}),
             None),
        ];
        for (config, want) in cases {
            let Value::Object(obj) = &config else {
                unreachable!()
            };
            let got = validate_configuration(obj).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{config}");
        }
    }

    #[test]
    fn properties_come_in_the_schemas_order() {
        let names: Vec<String> = logical_disk_properties()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names[..3], ["raid_level", "size_gb", "volume_name"]);
        assert_eq!(names.len(), 10);
    }
}
