//! The interface traits a hardware type is composed of.
//!
//! Every interface kind has its own trait; all share [`Interface`], which
//! carries what the conductor does to any interface: validate it, list its
//! steps and run one.

use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BiosSetting, BootDevice, InterfaceKind, JsonObject, Node, Port, PowerState};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::DriverConfig;
use crate::error::DriverError;
use crate::management::{Indicator, IndicatorState, VirtualMediaDevice};
use crate::registry::Driver;

/// Where an interface writes what must survive it: the conductor saves
/// through this, under the node's lock, so a long call can record its
/// progress before it ends.
#[async_trait]
pub trait Persist: Send + Sync {
    async fn save_node(&self, node: &Node) -> Result<Node, DriverError>;
    async fn create_port(&self, port: &Port) -> Result<Port, DriverError>;
    async fn save_port(&self, port: &Port) -> Result<Port, DriverError>;
    /// Adds an event to the node's history (a deploy's timeline).
    async fn record_event(&self, node: &Node, event_type: &str, event: &str);

    // BIOS settings.
    /// The node's BIOS settings as last stored.
    async fn bios_settings(&self, node: &Node) -> Result<Vec<BiosSetting>, DriverError>;
    /// Makes `settings` the node's stored BIOS settings (names not in it
    /// are removed).
    async fn replace_bios_settings(
        &self,
        node: &Node,
        settings: &[BiosSetting],
    ) -> Result<(), DriverError>;
}

/// What an interface works on: the locked node and its ports (which it may
/// change; the conductor saves them when the call ends, or earlier through
/// [`Task::checkpoint`]), the node's whole driver (so a deploy interface
/// can call its boot and power siblings), the configuration, and when the
/// call must be over.
pub struct Task<'a> {
    pub node: &'a mut Node,
    pub ports: &'a mut Vec<Port>,
    pub driver: &'a Driver,
    pub config: &'a DriverConfig,
    /// The call is abandoned with a timeout at this instant.
    pub deadline: Instant,
    /// Cancelled when the conductor stops: long waits end early.
    pub cancel: &'a CancellationToken,
    persist: &'a dyn Persist,
}

/// The parts a [`Task`] is made of, for the conductor that makes it.
pub struct TaskParts<'a> {
    pub node: &'a mut Node,
    pub ports: &'a mut Vec<Port>,
    pub driver: &'a Driver,
    pub config: &'a DriverConfig,
    pub deadline: Instant,
    pub cancel: &'a CancellationToken,
    pub persist: &'a dyn Persist,
}

impl<'a> Task<'a> {
    pub fn new(parts: TaskParts<'a>) -> Task<'a> {
        Task {
            node: parts.node,
            ports: parts.ports,
            driver: parts.driver,
            config: parts.config,
            deadline: parts.deadline,
            cancel: parts.cancel,
            persist: parts.persist,
        }
    }

    /// Stores the node as it is now, keeping the lock: progress that a
    /// crash must not lose.
    pub async fn checkpoint(&mut self) -> Result<(), DriverError> {
        let stored = self.persist.save_node(self.node).await?;
        *self.node = stored;
        Ok(())
    }

    /// Creates a port of this node (inspection found a NIC).
    pub async fn add_port(&mut self, port: Port) -> Result<(), DriverError> {
        let stored = self.persist.create_port(&port).await?;
        self.ports.push(stored);
        Ok(())
    }

    /// Stores a change to the node's port at `index` of [`Task::ports`].
    pub async fn save_port(&mut self, index: usize) -> Result<(), DriverError> {
        let Some(port) = self.ports.get(index) else {
            return Err(DriverError::failed(format!("no port at index {index}")));
        };
        let stored = self.persist.save_port(port).await?;
        self.ports[index] = stored;
        Ok(())
    }

    /// Adds `event` to the node's history, as an `INFO` of `event_type`
    /// (`deploying`, `cleaning`, ...).
    pub async fn record_event(&self, event_type: &str, event: &str) {
        self.persist
            .record_event(self.node, event_type, event)
            .await;
    }

    /// The node's BIOS settings as last stored.
    pub async fn bios_settings(&self) -> Result<Vec<BiosSetting>, DriverError> {
        self.persist.bios_settings(self.node).await
    }

    /// Stores `settings` as the node's BIOS settings, replacing the others.
    pub async fn replace_bios_settings(
        &mut self,
        settings: &[BiosSetting],
    ) -> Result<(), DriverError> {
        self.persist
            .replace_bios_settings(self.node, settings)
            .await
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Runs `fut` until `deadline`; past it, the call is dropped and reported
/// as a timeout of `operation`.
pub async fn bounded<T>(
    deadline: Instant,
    operation: &str,
    fut: impl std::future::Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    let limit = deadline.saturating_duration_since(Instant::now());
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(result) => result,
        Err(_) => Err(DriverError::Timeout {
            operation: operation.to_owned(),
            seconds: u64::try_from(limit.as_millis().div_ceil(1000)).unwrap_or(u64::MAX),
        }),
    }
}

/// The flows a step may take part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepFlow {
    Clean,
    Deploy,
    Service,
}

impl StepFlow {
    pub fn as_str(self) -> &'static str {
        match self {
            StepFlow::Clean => "clean",
            StepFlow::Deploy => "deploy",
            StepFlow::Service => "service",
        }
    }
}

/// A step an interface offers, as Ironic lists them in `clean_step` or
/// `driver_internal_info.clean_steps`. Owned, because steps can come from
/// the node's agent at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDef {
    pub interface: InterfaceKind,
    pub step: String,
    /// Default priority in automated flows; 0 means "only when asked".
    pub priority: i32,
    pub abortable: bool,
    pub argsinfo: Option<serde_json::Value>,
    /// The machine must reboot (into the ramdisk) once the step is done.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reboot_requested: bool,
    /// The step runs on the node's agent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub requires_ramdisk: bool,
    #[serde(skip)]
    pub flows: Vec<StepFlow>,
}

impl StepDef {
    /// A step run by the conductor, neither rebooting nor in the ramdisk.
    pub fn new(interface: InterfaceKind, step: &str, priority: i32, flows: &[StepFlow]) -> Self {
        StepDef {
            interface,
            step: step.to_owned(),
            priority,
            abortable: false,
            argsinfo: None,
            reboot_requested: false,
            requires_ramdisk: false,
            flows: flows.to_vec(),
        }
    }
}

/// How a step, a deploy or an inspection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished; the flow moves on.
    Done,
    /// Started something that reports back later (an agent, a BMC job);
    /// the node waits in its `wait` state.
    Wait,
    /// Restarted the machine; the same step runs again once its agent is
    /// back (Ironic's `skip_current_*_step = False`).
    RerunAfterReboot,
}

/// What an agent's heartbeat says about the flow waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentProgress {
    /// Still working, or nothing to report: keep waiting.
    Running,
    /// Running nothing, and holding no result of the current step: it was
    /// never sent (the conductor stopped in between) or has not begun.
    Idle,
    /// The agent has just booted and holds no result: the flow starts, or
    /// goes on after the reboot that a step asked for.
    Booted,
    /// The current step finished.
    StepDone,
    /// The current step finished and asks for a reboot before the next.
    RebootRequested,
    /// The current step failed; the text is for `last_error`.
    StepFailed(String),
}

/// What an agent said in its heartbeat, as the conductor records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub callback_url: String,
    pub agent_version: Option<String>,
    pub agent_verify_ca: Option<String>,
    pub agent_status: Option<String>,
    pub agent_status_message: Option<String>,
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

    /// The steps this interface offers for `node`; agent-backed
    /// interfaces read the steps their agent reported.
    fn steps(&self, _node: &Node) -> Vec<StepDef> {
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

/// How a machine's firmware boots: Ironic's `bios` (legacy) and `uefi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMode {
    Bios,
    Uefi,
}

impl BootMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Bios => "bios",
            BootMode::Uefi => "uefi",
        }
    }

    /// Ironic's names; anything else is `None`.
    pub fn parse(text: &str) -> Option<BootMode> {
        match text {
            "bios" => Some(BootMode::Bios),
            "uefi" => Some(BootMode::Uefi),
            _ => None,
        }
    }
}

impl std::fmt::Display for BootMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ironic's refusal of a boot device a management interface lacks.
pub fn invalid_boot_device(device: BootDevice, supported: &[BootDevice]) -> DriverError {
    let names: Vec<String> = supported.iter().map(|d| format!("'{d}'")).collect();
    DriverError::InvalidParameter(format!(
        "Invalid boot device {device} specified, supported are [{}].",
        names.join(", ")
    ))
}

#[async_trait]
pub trait ManagementInterface: Interface {
    fn supported_boot_devices(&self) -> Vec<BootDevice>;

    /// Boot modes the BMC can switch between; empty when it cannot.
    fn supported_boot_modes(&self) -> Vec<BootMode> {
        Vec::new()
    }

    /// The boot mode the BMC reports; `None` when it cannot tell.
    async fn get_boot_mode(&self, _task: &Task<'_>) -> Result<Option<BootMode>, DriverError> {
        Ok(None)
    }

    async fn set_boot_mode(
        &self,
        _task: &mut Task<'_>,
        _mode: BootMode,
    ) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            kind: self.kind(),
            name: self.name().to_owned(),
            operation: "set_boot_mode",
        })
    }

    async fn set_boot_device(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError>;
    async fn get_boot_device(&self, task: &Task<'_>) -> Result<BootDeviceSetting, DriverError>;
    async fn inject_nmi(&self, task: &mut Task<'_>) -> Result<(), DriverError>;

    // Secure boot, indicators and virtual media: Ironic's base class
    // refuses each by its own name.
    /// Whether UEFI secure boot is on; `None` when the BMC cannot tell.
    async fn get_secure_boot_state(&self, _task: &Task<'_>) -> Result<Option<bool>, DriverError> {
        Err(self.lacks("get_secure_boot_state"))
    }

    async fn set_secure_boot_state(
        &self,
        _task: &mut Task<'_>,
        _on: bool,
    ) -> Result<(), DriverError> {
        Err(self.lacks("set_secure_boot_state"))
    }

    async fn get_supported_indicators(
        &self,
        _task: &Task<'_>,
    ) -> Result<Vec<Indicator>, DriverError> {
        Err(self.lacks("get_supported_indicators"))
    }

    async fn get_indicator_state(
        &self,
        _task: &Task<'_>,
        _component: &str,
        _indicator: &str,
    ) -> Result<IndicatorState, DriverError> {
        Err(self.lacks("get_indicator_state"))
    }

    async fn set_indicator_state(
        &self,
        _task: &mut Task<'_>,
        _component: &str,
        _indicator: &str,
        _state: IndicatorState,
    ) -> Result<(), DriverError> {
        Err(self.lacks("set_indicator_state"))
    }

    async fn get_virtual_media(
        &self,
        _task: &Task<'_>,
    ) -> Result<Vec<VirtualMediaDevice>, DriverError> {
        Err(self.lacks("get_virtual_media"))
    }

    /// Inserts the image at `image_url` into the node's virtual `device`
    /// (one of [`crate::management::VMEDIA_DEVICES`]).
    async fn attach_virtual_media(
        &self,
        _task: &mut Task<'_>,
        _device: BootDevice,
        _image_url: &str,
    ) -> Result<(), DriverError> {
        Err(self.lacks("attach_virtual_media"))
    }

    /// Ejects the media of `devices`, or of every device when `None`.
    async fn detach_virtual_media(
        &self,
        _task: &mut Task<'_>,
        _devices: Option<&[BootDevice]>,
    ) -> Result<(), DriverError> {
        Err(self.lacks("detach_virtual_media"))
    }

    /// The refusal of an operation this interface lacks.
    fn lacks(&self, operation: &'static str) -> DriverError {
        DriverError::Unsupported {
            kind: self.kind(),
            name: self.name().to_owned(),
            operation,
        }
    }
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

    /// Asks the node's agent for its steps of `flow` and keeps them on the
    /// node, when the agent comes up. Interfaces without an agent have
    /// nothing to refresh.
    async fn refresh_steps(
        &self,
        _task: &mut Task<'_>,
        _flow: StepFlow,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// Reads how the agent's work on the current step of `flow` is going,
    /// on each of its heartbeats while the node waits for it.
    async fn heartbeat(
        &self,
        _task: &mut Task<'_>,
        _flow: StepFlow,
    ) -> Result<AgentProgress, DriverError> {
        Ok(AgentProgress::Running)
    }
}

#[async_trait]
pub trait InspectInterface: Interface {
    async fn inspect_hardware(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError>;
    async fn abort(&self, task: &mut Task<'_>) -> Result<(), DriverError>;

    /// Reads the inventory a node's agent posted into the node (its
    /// properties and ports), and ends what `inspect_hardware` set up.
    async fn continue_inspection(
        &self,
        _task: &mut Task<'_>,
        _inventory: &JsonObject,
        _plugin_data: &JsonObject,
    ) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            kind: self.kind(),
            name: self.name().to_owned(),
            operation: "continue_inspection",
        })
    }
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
    /// How to reach the enabled console (Ironic's `console_info`).
    async fn get_console(&self, task: &Task<'_>) -> Result<JsonObject, DriverError>;
}

pub use crate::raid::RaidInterface;
pub use crate::vendor::VendorInterface;

/// A BIOS interface's steps change the settings; afterwards the settings
/// are read back and stored (Ironic's `cache_bios_settings`).
#[async_trait]
pub trait BiosInterface: Interface {
    /// Reads the node's BIOS settings from the hardware and stores them.
    async fn cache_bios_settings(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

/// Interfaces the spine only composes, validates and runs steps of.
pub trait NetworkInterface: Interface {}
pub trait StorageInterface: Interface {}
pub trait FirmwareInterface: Interface {}
