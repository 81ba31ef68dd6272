//! Drivers, as in Ironic: a hardware type is a composition of named
//! interfaces (power, management, boot, deploy, ...), each with several
//! implementations. The [`Registry`] knows them all and composes a node's
//! [`Driver`] from the interface names stored on the node.
//!
//! Architecture invariants:
//! - Interfaces never touch storage: they get a [`Task`] holding the locked
//!   node, change it in memory, and the conductor saves it.
//! - An implementation reports itself unavailable until it works; the API
//!   lists only available ones as enabled.

mod error;
pub mod fake;
pub mod interface;
pub mod noop;
pub mod registry;

pub use error::DriverError;
pub use fake::{DelayRange, FakeDelays};
pub use interface::{BootDeviceSetting, Interface, Outcome, StepDef, StepFlow, Task};
pub use registry::{CompositionError, Driver, HardwareType, Registry};
