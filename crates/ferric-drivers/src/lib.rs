//! Drivers, as in Ironic: a hardware type is a composition of named
//! interfaces (power, management, boot, deploy, ...), each with several
//! implementations. The [`Registry`] knows them all and composes a node's
//! [`Driver`] from the interface names stored on the node.
//!
//! Architecture invariants:
//! - Interfaces never touch storage directly: they get a [`Task`] holding
//!   the locked node, change it in memory, and the conductor saves it when
//!   the call ends, or earlier when the interface asks
//!   ([`Task::checkpoint`], through the conductor's [`Persist`]).
//! - Every call runs under a deadline ([`Task::deadline`], enforced by the
//!   conductor with [`bounded`]).
//! - An implementation reports itself unavailable until it works; the API
//!   lists only available ones as enabled.

pub mod agent;
pub mod boot_mode;
mod config;
mod error;
pub mod fake;
pub mod interface;
pub mod ipmi;
pub mod management;
pub mod noop;
pub mod power;
pub mod pxe;
pub mod raid;
pub mod redfish;
pub mod registry;
pub mod vendor;

pub use config::{AgentConfig, DeployConfig, DriverConfig, InspectorConfig, IscsiConfig};
pub use error::{DriverError, Source};
pub use fake::{DelayRange, FakeDelays};
pub use interface::{
    bounded, AgentProgress, BootDeviceSetting, BootInterface, BootMode, DeployInterface, Heartbeat,
    InspectInterface, Interface, ManagementInterface, Outcome, Persist, PowerInterface, StepDef,
    StepFlow, Task, TaskParts,
};
pub use management::{Indicator, IndicatorState, VirtualMediaDevice, VMEDIA_DEVICES};
pub use power::{forget_agent, power_action};
pub use raid::RaidInterface;
pub use registry::{CompositionError, Driver, HardwareType, Registry};
pub use vendor::{PassthruMethod, VendorInterface};
