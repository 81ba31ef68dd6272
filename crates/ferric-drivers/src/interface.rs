//! The interface traits a hardware type is composed of.
//!
//! Every interface kind has its own trait; all share [`Interface`], which
//! carries what the conductor does to any interface: validate it, list its
//! steps and run one.

use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BootDevice, InterfaceKind, JsonObject, Node, Port, PowerState};
use serde::Serialize;

use crate::error::DriverError;

/// What an interface works on: the locked node (which it may change; the
/// conductor saves it) and the node's ports.
pub struct Task<'a> {
    pub node: &'a mut Node,
    pub ports: &'a [Port],
}

/// The flows a step may take part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepFlow {
    Clean,
    Deploy,
    Service,
}

/// A step an interface offers, as Ironic lists them in `clean_step` or
/// `driver_internal_info.clean_steps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    pub interface: InterfaceKind,
    pub step: &'static str,
    /// Default priority in automated flows; 0 means "only when asked".
    pub priority: i32,
    pub abortable: bool,
    pub argsinfo: Option<serde_json::Value>,
    #[serde(skip)]
    pub flows: &'static [StepFlow],
}

/// How a step, a deploy or an inspection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished; the flow moves on.
    Done,
    /// Started something that reports back later (an agent, a BMC job);
    /// the node waits in its `wait` state.
    Wait,
}

/// What every interface kind has.
#[async_trait]
pub trait Interface: Send + Sync {
    /// The Ironic name of this implementation, e.g. `fake`, `ipmitool`.
    fn name(&self) -> &'static str;

    fn kind(&self) -> InterfaceKind;

    /// `no-*` implementations exist only to say "not supported".
    fn supported(&self) -> bool {
        true
    }

    /// False for interfaces Ferric knows by name but has not built yet;
    /// they are never listed as enabled.
    fn available(&self) -> bool {
        true
    }

    /// Driver properties this interface reads from `driver_info`, with
    /// their descriptions (`driver property list`).
    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// Checks that the node is configured well enough to use this
    /// interface. Touches no hardware.
    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError>;

    fn steps(&self) -> Vec<StepDef> {
        Vec::new()
    }

    async fn execute_step(
        &self,
        _task: &mut Task<'_>,
        step: &str,
        _args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        Err(DriverError::InvalidParameter(format!(
            "{} interface {} has no step {step}",
            self.kind(),
            self.name()
        )))
    }
}

#[async_trait]
pub trait PowerInterface: Interface {
    async fn get_power_state(&self, task: &Task<'_>) -> Result<PowerState, DriverError>;
    async fn set_power_state(
        &self,
        task: &mut Task<'_>,
        target: PowerState,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError>;
    async fn reboot(
        &self,
        task: &mut Task<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError>;
    fn supported_power_states(&self) -> Vec<PowerState>;
}

/// The boot device a BMC reports; either part may be unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootDeviceSetting {
    pub boot_device: Option<BootDevice>,
    pub persistent: Option<bool>,
}

#[async_trait]
pub trait ManagementInterface: Interface {
    fn supported_boot_devices(&self) -> Vec<BootDevice>;
    async fn set_boot_device(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError>;
    async fn get_boot_device(&self, task: &Task<'_>) -> Result<BootDeviceSetting, DriverError>;
    async fn inject_nmi(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

#[async_trait]
pub trait BootInterface: Interface {
    async fn prepare_ramdisk(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn clean_up_ramdisk(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn prepare_instance(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn clean_up_instance(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

#[async_trait]
pub trait DeployInterface: Interface {
    /// Readies the environment before the deploy steps run.
    async fn prepare(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    /// Undoes everything deployed; the node ends powered off.
    async fn tear_down(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    /// Releases what `prepare` set up.
    async fn clean_up(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    /// Takes over an already deployed node (adoption, conductor takeover).
    async fn take_over(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn prepare_cleaning(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError>;
    async fn tear_down_cleaning(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

#[async_trait]
pub trait InspectInterface: Interface {
    async fn inspect_hardware(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError>;
    async fn abort(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

#[async_trait]
pub trait RescueInterface: Interface {
    async fn rescue(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError>;
    async fn unrescue(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn clean_up(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

#[async_trait]
pub trait ConsoleInterface: Interface {
    async fn start_console(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
    async fn stop_console(&self, task: &mut Task<'_>) -> Result<(), DriverError>;
}

/// Interfaces the spine only composes, validates and runs steps of.
pub trait VendorInterface: Interface {}
pub trait RaidInterface: Interface {}
pub trait BiosInterface: Interface {}
pub trait NetworkInterface: Interface {}
pub trait StorageInterface: Interface {}
pub trait FirmwareInterface: Interface {}
