//! Ferric's domain types: typed ids, nodes and their neighbours, the
//! driver-interface kinds and Ironic's provision state machine.
//!
//! Architecture invariant: this crate does no I/O and imports no other
//! Ferric crate. Everything here is plain data and pure functions.

pub mod conductor;
pub mod ids;
pub mod interfaces;
pub mod node;
pub mod port;
pub mod states;

pub use conductor::ConductorRecord;
pub use ids::{ChassisUuid, Ident, MacAddress, NodeIdent, NodeUuid, PortUuid, PortgroupUuid};
pub use interfaces::{BootDevice, InterfaceKind, Interfaces};
pub use node::Node;
pub use port::{Chassis, Port, Portgroup};
pub use states::{Event, PowerState, ProvisionState};

/// A JSON object, the type of every free-form dictionary field
/// (`driver_info`, `properties`, `extra`, ...).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// Formats a time as Ironic stores naive timestamps inside JSON fields,
/// e.g. `2026-11-24T16:45:16.267338`.
pub fn naive_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}
