//! The `fake` interfaces of the `fake-hardware` type: they touch no
//! hardware and complete every flow, like Ironic's. Each kind can be slowed
//! down by a configured delay (Ironic's `[fake]` options), which is how
//! tests catch a node mid-flow.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BiosSetting, BootDevice, InterfaceKind, JsonObject, Node, NodeUuid, PowerState};
use serde::Deserialize;
use serde_json::Value;

use crate::error::DriverError;
use crate::interface::*;
use crate::management::{
    media_type_of, vmedia_type_of, Indicator, IndicatorState, VirtualMediaDevice, VMEDIA_DEVICES,
};
use crate::vendor::PassthruMethod;

/// A delay in whole seconds: fixed (`"3"`) or drawn from a triangular
/// distribution weighted on the first value (`"1,5"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DelayRange {
    pub earliest: u32,
    pub latest: u32,
}

impl FromStr for DelayRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("delay {s:?} must be seconds, or two comma-separated seconds"))
        };
        let (earliest, latest) = match s.split_once(',') {
            None if s.trim().is_empty() => (0, 0),
            None => (parse(s)?, parse(s)?),
            Some((a, b)) => (parse(a)?, parse(b)?),
        };
        if latest < earliest {
            return Err(format!(
                "delay {s:?}: the second value must not be below the first"
            ));
        }
        Ok(DelayRange { earliest, latest })
    }
}

impl<'de> Deserialize<'de> for DelayRange {
    /// `"3"`, `"1,5"` or a plain `3`.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u32),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => Ok(DelayRange {
                earliest: n,
                latest: n,
            }),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl DelayRange {
    fn pick(self) -> Duration {
        if self.latest == 0 {
            return Duration::ZERO;
        }
        let (a, b) = (f64::from(self.earliest), f64::from(self.latest));
        if self.earliest == self.latest {
            return Duration::from_secs_f64(a);
        }
        // Inverse CDF of the triangular distribution with its mode at `a`.
        let u: f64 = rand::random();
        Duration::from_secs_f64(b - ((1.0 - u) * (b - a) * (b - a)).sqrt())
    }

    async fn wait(self) {
        let d = self.pick();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

impl serde::Serialize for DelayRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.earliest == self.latest {
            s.serialize_str(&self.earliest.to_string())
        } else {
            s.serialize_str(&format!("{},{}", self.earliest, self.latest))
        }
    }
}

/// Delays of the fake interfaces, per kind (`[fake]` in the config file).
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct FakeDelays {
    pub power_delay: DelayRange,
    pub boot_delay: DelayRange,
    pub deploy_delay: DelayRange,
    pub vendor_delay: DelayRange,
    pub management_delay: DelayRange,
    pub inspect_delay: DelayRange,
    pub raid_delay: DelayRange,
    pub bios_delay: DelayRange,
    pub rescue_delay: DelayRange,
    pub firmware_delay: DelayRange,
}

macro_rules! fake_interface {
    ($ty:ident) => {
        pub struct $ty {
            pub delay: DelayRange,
        }

        impl $ty {
            pub fn new(delay: DelayRange) -> Self {
                $ty { delay }
            }
        }
    };
}

fake_interface!(FakePower);
fake_interface!(FakeBoot);
fake_interface!(FakeDeploy);
fake_interface!(FakeInspect);
fake_interface!(FakeRescue);
fake_interface!(FakeConsole);
fake_interface!(FakeVendor);
fake_interface!(FakeRaid);
fake_interface!(FakeBios);
fake_interface!(FakeFirmware);

/// The fake management interface. Its BMC keeps what it was told about
/// each node's indicators and virtual media in memory, as a real BMC keeps
/// them outside Ferric's database.
pub struct FakeManagement {
    pub delay: DelayRange,
    bmc: std::sync::Mutex<HashMap<NodeUuid, FakeBmc>>,
}

/// What the fake BMC remembers of one node.
#[derive(Debug, Clone, Default)]
struct FakeBmc {
    indicators: HashMap<(String, String), IndicatorState>,
    /// Inserted image per virtual media device.
    media: HashMap<BootDevice, String>,
}

impl FakeManagement {
    pub fn new(delay: DelayRange) -> Self {
        FakeManagement {
            delay,
            bmc: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn with_bmc<T>(&self, node: NodeUuid, f: impl FnOnce(&mut FakeBmc) -> T) -> T {
        let mut all = self
            .bmc
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(all.entry(node).or_default())
    }

    /// Ironic's fake indicators: a read-only LED on the chassis, a
    /// settable one on the system.
    fn indicators() -> Vec<Indicator> {
        use IndicatorState::{Blinking, Off, On};
        vec![
            Indicator {
                component: "chassis".into(),
                name: "led-0".into(),
                readonly: true,
                states: vec![Off, On],
            },
            Indicator {
                component: "system".into(),
                name: "led".into(),
                readonly: false,
                states: vec![Blinking, Off, On],
            },
        ]
    }

    /// The indicator named, or Ironic's refusal of the component or name.
    fn indicator(component: &str, name: &str) -> Result<Indicator, DriverError> {
        let all = Self::indicators();
        if !all.iter().any(|i| i.component == component) {
            return Err(DriverError::InvalidParameter(format!(
                "Invalid component {component} specified."
            )));
        }
        all.into_iter()
            .find(|i| i.component == component && i.name == name)
            .ok_or_else(|| {
                DriverError::InvalidParameter(format!("Invalid indicator {name} specified."))
            })
    }
}

/// The name and kind every fake shares.
macro_rules! fake_basics {
    ($kind:expr) => {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn kind(&self) -> InterfaceKind {
            $kind
        }
    };
}

#[async_trait]
impl Interface for FakePower {
    fake_basics!(InterfaceKind::Power);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl PowerInterface for FakePower {
    /// The fake BMC's power is whatever Ferric last recorded.
    async fn get_power_state(&self, task: &Task<'_>) -> Result<PowerState, DriverError> {
        self.delay.wait().await;
        Ok(task.node.power_state.unwrap_or(PowerState::Off))
    }

    async fn set_power_state(
        &self,
        task: &mut Task<'_>,
        target: PowerState,
        _timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        let reached = match target {
            PowerState::On => PowerState::On,
            PowerState::Off | PowerState::SoftPowerOff => PowerState::Off,
            PowerState::Rebooting | PowerState::SoftRebooting => PowerState::On,
            PowerState::Error => {
                return Err(DriverError::InvalidParameter(format!(
                    "set_power_state called with an invalid power state: {target}."
                )))
            }
        };
        task.node.power_state = Some(reached);
        Ok(())
    }

    async fn reboot(
        &self,
        task: &mut Task<'_>,
        _timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        task.node.power_state = Some(PowerState::On);
        Ok(())
    }

    fn supported_power_states(&self) -> Vec<PowerState> {
        vec![
            PowerState::On,
            PowerState::Off,
            PowerState::Rebooting,
            PowerState::SoftRebooting,
            PowerState::SoftPowerOff,
        ]
    }
}

#[async_trait]
impl Interface for FakeManagement {
    fake_basics!(InterfaceKind::Management);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl ManagementInterface for FakeManagement {
    fn supported_boot_devices(&self) -> Vec<BootDevice> {
        vec![BootDevice::Pxe]
    }

    async fn set_boot_device(
        &self,
        _task: &mut Task<'_>,
        device: BootDevice,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        if !self.supported_boot_devices().contains(&device) {
            return Err(DriverError::InvalidParameter(format!(
                "Invalid boot device {device} specified."
            )));
        }
        Ok(())
    }

    async fn get_boot_device(&self, _task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        self.delay.wait().await;
        Ok(BootDeviceSetting {
            boot_device: Some(BootDevice::Pxe),
            persistent: Some(false),
        })
    }

    async fn inject_nmi(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }

    fn supported_boot_modes(&self) -> Vec<BootMode> {
        vec![BootMode::Bios, BootMode::Uefi]
    }

    /// The fake BMC's mode is whatever Ferric last set.
    async fn get_boot_mode(&self, task: &Task<'_>) -> Result<Option<BootMode>, DriverError> {
        Ok(task.node.boot_mode.as_deref().and_then(BootMode::parse))
    }

    async fn set_boot_mode(&self, task: &mut Task<'_>, mode: BootMode) -> Result<(), DriverError> {
        self.delay.wait().await;
        task.node.boot_mode = Some(mode.as_str().to_owned());
        Ok(())
    }

    /// As with the boot mode, the fake BMC's secure boot is what Ferric
    /// last set.
    async fn get_secure_boot_state(&self, task: &Task<'_>) -> Result<Option<bool>, DriverError> {
        Ok(task.node.secure_boot)
    }

    async fn set_secure_boot_state(
        &self,
        task: &mut Task<'_>,
        on: bool,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        task.node.secure_boot = Some(on);
        Ok(())
    }

    async fn get_supported_indicators(
        &self,
        _task: &Task<'_>,
    ) -> Result<Vec<Indicator>, DriverError> {
        self.delay.wait().await;
        Ok(Self::indicators())
    }

    /// Ironic's fake says `ON` for every indicator; this one says what it
    /// was last set to, `ON` until then.
    async fn get_indicator_state(
        &self,
        task: &Task<'_>,
        component: &str,
        indicator: &str,
    ) -> Result<IndicatorState, DriverError> {
        self.delay.wait().await;
        Self::indicator(component, indicator)?;
        let key = (component.to_owned(), indicator.to_owned());
        Ok(self.with_bmc(task.node.uuid, |bmc| {
            bmc.indicators
                .get(&key)
                .copied()
                .unwrap_or(IndicatorState::On)
        }))
    }

    async fn set_indicator_state(
        &self,
        task: &mut Task<'_>,
        component: &str,
        indicator: &str,
        state: IndicatorState,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        let found = Self::indicator(component, indicator)?;
        if found.readonly {
            return Err(DriverError::InvalidParameter(format!(
                "Indicator {indicator} of component {component} is read-only."
            )));
        }
        if !found.states.contains(&state) {
            return Err(DriverError::InvalidParameter(format!(
                "Invalid state {state} for indicator {indicator} of component {component}."
            )));
        }
        let key = (component.to_owned(), indicator.to_owned());
        self.with_bmc(task.node.uuid, |bmc| bmc.indicators.insert(key, state));
        Ok(())
    }

    /// One device per virtual media type, as a simple BMC has them.
    async fn get_virtual_media(
        &self,
        task: &Task<'_>,
    ) -> Result<Vec<VirtualMediaDevice>, DriverError> {
        self.delay.wait().await;
        let media = self.with_bmc(task.node.uuid, |bmc| bmc.media.clone());
        Ok(VMEDIA_DEVICES
            .iter()
            .map(|device| {
                let image = media.get(device).cloned();
                VirtualMediaDevice {
                    media_types: media_type_of(*device)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    inserted: Some(image.is_some()),
                    image: Some(image.unwrap_or_default()),
                }
            })
            .collect())
    }

    async fn attach_virtual_media(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        image_url: &str,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        vmedia_type_of(device)?;
        self.with_bmc(task.node.uuid, |bmc| {
            bmc.media.insert(device, image_url.to_owned())
        });
        Ok(())
    }

    async fn detach_virtual_media(
        &self,
        task: &mut Task<'_>,
        devices: Option<&[BootDevice]>,
    ) -> Result<(), DriverError> {
        self.delay.wait().await;
        self.with_bmc(task.node.uuid, |bmc| match devices {
            None => bmc.media.clear(),
            Some(devices) => bmc.media.retain(|d, _| !devices.contains(d)),
        });
        Ok(())
    }
}

#[async_trait]
impl Interface for FakeBoot {
    fake_basics!(InterfaceKind::Boot);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl BootInterface for FakeBoot {
    /// No files to prepare; the machine is told to boot from the network
    /// (once), as the `pxe` interface does, so that a fake boot with a real
    /// BMC and a machine that boots its ramdisk over PXE works.
    async fn prepare_ramdisk(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        let management = task.driver.management.clone();
        if management
            .supported_boot_devices()
            .contains(&BootDevice::Pxe)
        {
            management
                .set_boot_device(task, BootDevice::Pxe, false)
                .await?;
        }
        Ok(())
    }
    async fn clean_up_ramdisk(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn prepare_instance(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn clean_up_instance(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
}

#[async_trait]
impl Interface for FakeDeploy {
    fake_basics!(InterfaceKind::Deploy);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn steps(&self, _node: &Node) -> Vec<StepDef> {
        // Deploy steps are abortable unless they say otherwise (Ironic's
        // `deploy_step` decorator).
        let mut deploy = StepDef::new(InterfaceKind::Deploy, "deploy", 100, &[StepFlow::Deploy]);
        deploy.abortable = true;
        vec![deploy]
    }

    async fn execute_step(
        &self,
        _task: &mut Task<'_>,
        step: &str,
        _args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        match step {
            "deploy" => {
                self.delay.wait().await;
                Ok(Outcome::Done)
            }
            other => Err(no_such_step(InterfaceKind::Deploy, other)),
        }
    }
}

#[async_trait]
impl DeployInterface for FakeDeploy {
    async fn prepare(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn tear_down(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn take_over(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn prepare_cleaning(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Ok(Outcome::Done)
    }
    async fn tear_down_cleaning(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl Interface for FakeInspect {
    fake_basics!(InterfaceKind::Inspect);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl InspectInterface for FakeInspect {
    async fn inspect_hardware(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        self.delay.wait().await;
        Ok(Outcome::Done)
    }
    async fn abort(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl Interface for FakeRescue {
    fake_basics!(InterfaceKind::Rescue);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl RescueInterface for FakeRescue {
    async fn rescue(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        self.delay.wait().await;
        Ok(Outcome::Done)
    }
    async fn unrescue(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        self.delay.wait().await;
        Ok(())
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl Interface for FakeConsole {
    fake_basics!(InterfaceKind::Console);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl ConsoleInterface for FakeConsole {
    async fn start_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    async fn stop_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    /// Ironic's fake console has nothing to connect to: its info is empty.
    async fn get_console(&self, _task: &Task<'_>) -> Result<JsonObject, DriverError> {
        Ok(JsonObject::new())
    }
}

#[async_trait]
impl Interface for FakeVendor {
    fake_basics!(InterfaceKind::Vendor);

    /// Ironic's fake vendor documents these two properties.
    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("B1", "B1 description. Required."),
            ("B2", "B2 description. Required."),
        ]
    }

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    /// Like Ironic's fake vendor, one step that only logs, run in automated
    /// cleaning (priority 1) and available to servicing.
    fn steps(&self, _node: &Node) -> Vec<StepDef> {
        vec![StepDef::new(
            InterfaceKind::Vendor,
            "log_passthrough",
            1,
            &[StepFlow::Clean, StepFlow::Service],
        )]
    }

    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        match step {
            "log_passthrough" => {
                tracing::info!(node = %task.node.uuid, args = args.len(), "fake vendor step log_passthrough");
                self.delay.wait().await;
                Ok(Outcome::Done)
            }
            other => Err(no_such_step(InterfaceKind::Vendor, other)),
        }
    }
}
/// Ironic's `fake` vendor interface (its FakeVendorB): methods that tell
/// whether `bar` is a given word.
const FAKE_PASSTHRU: &[PassthruMethod] = &[
    fake_method(
        "fourth_method_shared_lock",
        true,
        "Test if the value of bar is woof",
        false,
    ),
    fake_method("log_passthrough", true, "Test pass-through to wait.", true),
    fake_method(
        "second_method",
        true,
        "Test if the value of bar is kazoo",
        true,
    ),
    fake_method(
        "third_method_sync",
        false,
        "Test if the value of bar is meow",
        true,
    ),
];

const fn fake_method(
    name: &'static str,
    is_async: bool,
    description: &'static str,
    require_exclusive_lock: bool,
) -> PassthruMethod {
    PassthruMethod {
        name,
        http_methods: &["POST"],
        is_async,
        description,
        attach: false,
        require_exclusive_lock,
    }
}

/// The word each method compares `bar` with.
fn fake_word(method: &str) -> Option<&'static str> {
    match method {
        "second_method" => Some("kazoo"),
        "third_method_sync" => Some("meow"),
        "fourth_method_shared_lock" => Some("woof"),
        _ => None,
    }
}

#[async_trait]
impl VendorInterface for FakeVendor {
    fn passthru_methods(&self) -> Vec<PassthruMethod> {
        FAKE_PASSTHRU.to_vec()
    }

    async fn validate_passthru(
        &self,
        _task: &Task<'_>,
        method: &str,
        args: &JsonObject,
    ) -> Result<(), DriverError> {
        if fake_word(method).is_some() && !crate::vendor::truthy(args.get("bar")) {
            return Err(DriverError::MissingParameter(format!(
                "Parameter 'bar' not passed to method '{method}'."
            )));
        }
        Ok(())
    }

    async fn passthru(
        &self,
        task: &mut Task<'_>,
        method: &str,
        _http_method: &str,
        args: &JsonObject,
    ) -> Result<serde_json::Value, DriverError> {
        if method == "log_passthrough" {
            tracing::debug!(node = %task.node.uuid, args = ?args.keys().collect::<Vec<_>>(), "fake vendor log_passthrough called");
            self.delay.wait().await;
            return Ok(serde_json::Value::Null);
        }
        let Some(word) = fake_word(method) else {
            return Err(crate::vendor::no_handler(method));
        };
        // Python refuses an argument the method does not take.
        if let Some(extra) = args.keys().find(|k| *k != "bar") {
            return Err(DriverError::failed(format!(
                "FakeVendorB.{method}() got an unexpected keyword argument '{extra}'"
            )));
        }
        self.delay.wait().await;
        Ok(serde_json::Value::Bool(
            args.get("bar").and_then(|b| b.as_str()) == Some(word),
        ))
    }
}

#[async_trait]
impl Interface for FakeRaid {
    fake_basics!(InterfaceKind::Raid);

    /// As every RAID interface in Ironic: the target RAID config, if any,
    /// must be a valid one.
    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        if task.node.target_raid_config.is_empty() {
            return Ok(());
        }
        self.validate_raid_config(&task.node.target_raid_config)
    }

    fn steps(&self, _node: &Node) -> Vec<StepDef> {
        ["create_configuration", "delete_configuration"]
            .into_iter()
            .map(|step| {
                StepDef::new(
                    InterfaceKind::Raid,
                    step,
                    0,
                    &[StepFlow::Clean, StepFlow::Deploy],
                )
            })
            .collect()
    }

    async fn execute_step(
        &self,
        _task: &mut Task<'_>,
        step: &str,
        _args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        match step {
            "create_configuration" | "delete_configuration" => {
                self.delay.wait().await;
                Ok(Outcome::Done)
            }
            other => Err(no_such_step(InterfaceKind::Raid, other)),
        }
    }
}
impl RaidInterface for FakeRaid {}

#[async_trait]
impl Interface for FakeBios {
    fake_basics!(InterfaceKind::Bios);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn steps(&self, _node: &Node) -> Vec<StepDef> {
        let settings = serde_json::json!({"settings": {
            "description": "List of BIOS settings, each item needs to contain a dictionary with name/value pairs",
            "required": true}});
        let mut apply = StepDef::new(
            InterfaceKind::Bios,
            "apply_configuration",
            0,
            &[StepFlow::Clean],
        );
        apply.argsinfo = Some(settings);
        vec![
            apply,
            StepDef::new(InterfaceKind::Bios, "factory_reset", 0, &[StepFlow::Clean]),
            StepDef::new(
                InterfaceKind::Bios,
                "cache_bios_settings",
                0,
                &[StepFlow::Clean],
            ),
        ]
    }

    /// Like Ironic's fake, `apply_configuration` makes the given settings
    /// the node's stored ones and `factory_reset` removes them all.
    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        match step {
            "apply_configuration" => {
                let settings = bios_settings_arg(args)?;
                self.delay.wait().await;
                task.replace_bios_settings(&settings).await?;
                self.cache_bios_settings(task).await?;
                Ok(Outcome::Done)
            }
            "factory_reset" => {
                self.delay.wait().await;
                task.replace_bios_settings(&[]).await?;
                self.cache_bios_settings(task).await?;
                Ok(Outcome::Done)
            }
            "cache_bios_settings" => {
                self.delay.wait().await;
                self.cache_bios_settings(task).await?;
                Ok(Outcome::Done)
            }
            other => Err(no_such_step(InterfaceKind::Bios, other)),
        }
    }
}

/// The fake BIOS holds no settings of its own: what is stored is what it
/// has, so there is nothing to read back.
#[async_trait]
impl BiosInterface for FakeBios {}

/// `apply_configuration`'s `settings`: a list of `{name, value}`.
fn bios_settings_arg(args: &JsonObject) -> Result<Vec<BiosSetting>, DriverError> {
    let bad = || {
        DriverError::InvalidParameter(
            "BIOS settings must be a list of dictionaries with a name and a value".into(),
        )
    };
    let Some(Value::Array(items)) = args.get("settings") else {
        return Err(bad());
    };
    items
        .iter()
        .map(|item| {
            let name = item.get("name").and_then(Value::as_str).ok_or_else(bad)?;
            let value = match item.get("value").ok_or_else(bad)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(ferric_core::python_repr(other)),
            };
            Ok(BiosSetting::new(name, value))
        })
        .collect()
}

#[async_trait]
impl Interface for FakeFirmware {
    fake_basics!(InterfaceKind::Firmware);

    /// A fake accepts any node.
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    fn steps(&self, _node: &Node) -> Vec<StepDef> {
        let mut update = StepDef::new(InterfaceKind::Firmware, "update", 0, &[StepFlow::Clean]);
        update.argsinfo = Some(serde_json::json!({"settings": {
            "description": "List of Firmware components, each item needs to contain a dictionary with name/value pairs",
            "required": true}}));
        vec![update]
    }

    /// Like Ironic's fake, `update` flashes nothing and records nothing:
    /// the node's firmware components stay as they were.
    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        match step {
            "update" => {
                let count = args
                    .get("settings")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                tracing::debug!(node = %task.node.uuid, components = count, "fake firmware update");
                self.delay.wait().await;
                Ok(Outcome::Done)
            }
            other => Err(no_such_step(InterfaceKind::Firmware, other)),
        }
    }
}
impl FirmwareInterface for FakeFirmware {}

fn no_such_step(kind: InterfaceKind, step: &str) -> DriverError {
    DriverError::InvalidParameter(format!("{kind} interface fake has no step {step}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_parse_like_ironic() {
        assert_eq!("".parse::<DelayRange>(), Ok(DelayRange::default()));
        assert_eq!(
            "3".parse::<DelayRange>(),
            Ok(DelayRange {
                earliest: 3,
                latest: 3
            })
        );
        assert_eq!(
            "1, 5".parse::<DelayRange>(),
            Ok(DelayRange {
                earliest: 1,
                latest: 5
            })
        );
        assert!("5,1".parse::<DelayRange>().is_err());
        assert!("x".parse::<DelayRange>().is_err());
        assert!("-1".parse::<DelayRange>().is_err());
    }

    #[test]
    fn triangular_delays_stay_in_range() {
        let range = DelayRange {
            earliest: 1,
            latest: 3,
        };
        for _ in 0..1000 {
            let d = range.pick().as_secs_f64();
            assert!((1.0..=3.0).contains(&d), "{d}");
        }
        assert_eq!(DelayRange::default().pick(), Duration::ZERO);
    }
}
