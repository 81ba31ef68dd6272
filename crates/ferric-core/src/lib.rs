//! Ferric's domain types: typed ids, nodes and their neighbours, the
//! driver-interface kinds and Ironic's provision state machine.
//!
//! Architecture invariant: this crate does no I/O and imports no other
//! Ferric crate. Everything here is plain data and pure functions.

pub mod bios_firmware;
pub mod conductor;
pub mod history;
pub mod ids;
pub mod inspection_rule;
pub mod interfaces;
pub mod jsonschema;
pub mod node;
pub mod port;
pub mod secret;
pub mod standard_traits;
pub mod states;
pub mod templates;
pub mod volume;

pub use bios_firmware::{BiosSetting, FirmwareComponent};
pub use conductor::ConductorRecord;
pub use history::{HistoryEvent, NodeInventory, Severity};
pub use ids::{
    ChassisUuid, DeployTemplateUuid, Ident, MacAddress, NodeIdent, NodeUuid, PortUuid,
    PortgroupUuid, RunbookUuid,
};
pub use inspection_rule::InspectionRule;
pub use interfaces::{BootDevice, InterfaceKind, Interfaces};
pub use node::Node;
pub use port::{Chassis, Port, Portgroup};
pub use secret::{Fields, Secret};
pub use states::{Event, PowerState, ProvisionState};
pub use templates::{DeployTemplate, Runbook, RunbookStep, TemplateStep};
pub use volume::{VolumeConnector, VolumeTarget};

/// A JSON object, the type of every free-form dictionary field
/// (`driver_info`, `properties`, `extra`, ...).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Formats a time as Ironic stores naive timestamps inside JSON fields,
/// e.g. `2026-11-24T16:45:16.267338`.
pub fn naive_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// A JSON value as Python's `repr` prints it, which is how Ironic quotes
/// steps and other dictionaries in its messages: `{'step': 'x', 'args': {}}`.
pub fn python_repr(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => python_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// A step as Ironic quotes it in messages, with the secrets among its
/// arguments masked: `{'interface': 'deploy', 'step': 'x', 'args': {...}}`.
pub fn step_repr(step: &JsonObject) -> String {
    python_repr(&serde_json::Value::Object(secret::mask_dict(step)))
}

/// Python quotes with `'` unless the text holds a `'` and no `"`.
fn python_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_matches_pythons() {
        let v = serde_json::json!({"interface": "deploy", "step": "wait", "args": {"seconds": 5, "x": null, "b": true}, "l": ["it's"]});
        assert_eq!(
            python_repr(&v),
            r#"{'interface': 'deploy', 'step': 'wait', 'args': {'seconds': 5, 'x': None, 'b': True}, 'l': ["it's"]}"#
        );
    }
}
