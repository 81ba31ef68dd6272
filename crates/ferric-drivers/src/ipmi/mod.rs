//! Hardware type `ipmi`: the `ipmitool` power and management interfaces,
//! speaking IPMI v2.0 (RMCP+) natively through `ferric-ipmi` — Ironic's
//! interface names and `driver_info`, no ipmitool process.
//!
//! Each operation opens one session, does its commands (a power change and
//! the reads that wait for it) and closes the session. The cipher suite a
//! BMC negotiated is remembered per BMC and user, so it is probed once.
//! Every operation is bounded by `[ipmi] command_retry_timeout` and by the
//! task's deadline; transient failures (no answer, a busy BMC) are retried
//! within that bound.

pub mod info;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BootDevice, InterfaceKind, PowerState};
use ferric_ipmi::commands::{BootDevice as IpmiDevice, ChassisControl};
use ferric_ipmi::net::{Client, Target};
use ferric_ipmi::{CipherSuite, Password, Privilege};
use serde_json::{json, Value};

use crate::error::DriverError;
use crate::interface::{BootDeviceSetting, Interface, ManagementInterface, PowerInterface, Task};
use info::IpmiInfo;

/// How long a power change may take to show when the caller gives no
/// timeout (Ironic's `[conductor] power_state_change_timeout`).
pub const POWER_STATE_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Between reads while waiting for a power change.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Between whole attempts at an operation that failed transiently.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// `[ipmi]`: how the native IPMI client talks to BMCs.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct IpmiConfig {
    /// Seconds an operation may keep retrying a BMC that does not answer
    /// or is busy (Ironic's name).
    pub command_retry_timeout: u64,
    /// Seconds one datagram waits for its answer before it is sent again.
    pub attempt_timeout: u64,
    /// Sends of one datagram before the attempt fails.
    pub attempts: u32,
}

impl Default for IpmiConfig {
    fn default() -> Self {
        IpmiConfig {
            command_retry_timeout: 60,
            attempt_timeout: 1,
            attempts: 3,
        }
    }
}

/// What the power and management interfaces share: the cipher suites BMCs
/// negotiated.
#[derive(Default)]
pub struct Ipmi {
    suites: Mutex<HashMap<(String, u16, String), CipherSuite>>,
}

impl Ipmi {
    pub fn new() -> Arc<Ipmi> {
        Arc::new(Ipmi::default())
    }

    fn remembered(&self, info: &IpmiInfo) -> Option<CipherSuite> {
        let map = self.suites.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key(info)).copied()
    }

    fn remember(&self, info: &IpmiInfo, suite: CipherSuite) {
        let mut map = self.suites.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key(info), suite);
    }

    fn target(&self, info: &IpmiInfo, config: &IpmiConfig) -> Target {
        let mut target = Target::new(
            info.address.clone(),
            info.username.clone(),
            Password::from(info.password.as_str()),
        );
        target.port = info.port;
        target.privilege =
            Privilege::from_name(info.priv_level).unwrap_or(Privilege::Administrator);
        target.cipher_suite = info
            .cipher_suite
            .and_then(CipherSuite::from_id)
            .or_else(|| self.remembered(info));
        target.timeout = Duration::from_secs(config.attempt_timeout.max(1));
        target.retries = config.attempts.max(1);
        target.bridge = info.bridge.map(|b| ferric_ipmi::net::Bridge {
            channel: b.target_channel,
            target_address: b.target_address,
        });
        target
    }

    /// Runs `op` in one session with the node's BMC, retrying transient
    /// failures until `[ipmi] command_retry_timeout` or the task's deadline.
    async fn with_bmc<T, F>(&self, task: &Task<'_>, what: &str, op: F) -> Result<T, DriverError>
    where
        F: for<'c> Fn(&'c mut Client) -> BmcCall<'c, T>,
    {
        let info = info::parse(&task.node.driver_info)?;
        let config = &task.config.ipmi;
        let budget = Duration::from_secs(config.command_retry_timeout.max(1));
        let until = task.deadline.min(tokio::time::Instant::now() + budget);
        loop {
            let target = self.target(&info, config);
            let attempt = async {
                let mut client = Client::connect(&target).await?;
                self.remember(&info, client.cipher_suite());
                let result = op(&mut client).await;
                if let Err(e) = client.close().await {
                    tracing::debug!(node = %task.node.uuid, error = %e, "closing the IPMI session failed");
                }
                result
            };
            let result = match tokio::time::timeout_at(until, attempt).await {
                Ok(r) => r,
                Err(_) => return Err(timed_out(task, &info, what, budget)),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if retryable(&e) && tokio::time::Instant::now() + RETRY_PAUSE < until => {
                    tracing::debug!(node = %task.node.uuid, error = %e, what, "IPMI operation failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(failure(task, &info, what, e)),
            }
        }
    }
}

fn key(info: &IpmiInfo) -> (String, u16, String) {
    (info.address.clone(), info.port, info.username.clone())
}

/// The future of an operation run on a connected client.
pub type BmcCall<'c, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ferric_ipmi::Error>> + Send + 'c>>;

fn retryable(e: &ferric_ipmi::Error) -> bool {
    use ferric_ipmi::Error as E;
    match e {
        E::NoAnswer { .. } | E::Io { .. } => true,
        // Node busy, timeout, out of space, insufficient resources: the
        // completion codes Ironic retries.
        E::Completion { code, .. } => matches!(code, 0xc0 | 0xc3 | 0xc4 | 0xce),
        E::Refused { status, .. } => *status == 0x01,
        _ => false,
    }
}

fn failure(task: &Task<'_>, info: &IpmiInfo, what: &str, e: ferric_ipmi::Error) -> DriverError {
    let message = format!(
        "IPMI {what} failed for node {} (BMC {}:{}): {e}",
        task.node.uuid, info.address, info.port
    );
    if retryable(&e) {
        DriverError::transient(message, Some(Arc::new(e)))
    } else {
        DriverError::failed_by(message, e)
    }
}

fn timed_out(task: &Task<'_>, info: &IpmiInfo, what: &str, budget: Duration) -> DriverError {
    DriverError::transient(
        format!(
            "IPMI {what} failed for node {} (BMC {}:{}): no result within {} seconds",
            task.node.uuid,
            info.address,
            info.port,
            budget.as_secs()
        ),
        None,
    )
}

/// The `ipmitool` power interface.
pub struct IpmiPower {
    ipmi: Arc<Ipmi>,
}

impl IpmiPower {
    pub fn new(ipmi: Arc<Ipmi>) -> Self {
        IpmiPower { ipmi }
    }

    /// Sends `control` (unless the machine is already `want`), then reads
    /// the power state until it is `want` or `timeout` has passed.
    async fn change(
        &self,
        task: &Task<'_>,
        control: ChassisControl,
        want: bool,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let what = format!("power {}", if want { "on" } else { "off" });
        let reached = self
            .ipmi
            .with_bmc(task, &what, move |c| {
                Box::pin(async move {
                    if c.chassis_status().await?.power_on != want {
                        c.chassis_control(control).await?;
                    }
                    let until = tokio::time::Instant::now() + timeout;
                    loop {
                        if c.chassis_status().await?.power_on == want {
                            return Ok(true);
                        }
                        if tokio::time::Instant::now() + POLL_INTERVAL > until {
                            return Ok(false);
                        }
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                })
            })
            .await?;
        if reached {
            return Ok(());
        }
        let target = if want {
            PowerState::On
        } else {
            PowerState::Off
        };
        Err(DriverError::failed(format!(
            "Failed to set node {} power state to {target} within {} seconds.",
            task.node.uuid,
            timeout.as_secs()
        )))
    }

    /// Powers on, setting the boot device again first when the node asks
    /// for it (`ipmi_force_boot_device`).
    async fn power_on(&self, task: &mut Task<'_>, timeout: Duration) -> Result<(), DriverError> {
        let info = info::parse(&task.node.driver_info)?;
        if info.force_boot_device {
            if let Some(device) = forced_device(task) {
                let persistent = task
                    .node
                    .driver_internal_info
                    .get("is_next_boot_persistent")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                set_boot_device(&self.ipmi, task, &info, device, persistent).await?;
            }
        }
        self.change(task, ChassisControl::PowerUp, true, timeout)
            .await?;
        if info.force_boot_device {
            // A one-time boot device has been used by this boot.
            let internal = &mut task.node.driver_internal_info;
            if internal
                .get("is_next_boot_persistent")
                .and_then(Value::as_bool)
                == Some(false)
            {
                internal.remove("is_next_boot_persistent");
            }
        }
        Ok(())
    }
}

/// The device `ipmi_force_boot_device` sets before each power-on.
fn forced_device(task: &Task<'_>) -> Option<BootDevice> {
    let internal = &task.node.driver_internal_info;
    let key = if internal
        .get("is_next_boot_persistent")
        .and_then(Value::as_bool)
        == Some(false)
    {
        "next_boot_device"
    } else {
        "persistent_boot_device"
    };
    internal.get(key)?.as_str()?.parse().ok()
}

#[async_trait]
impl Interface for IpmiPower {
    fn name(&self) -> &'static str {
        "ipmitool"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Power
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        info::properties()
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        info::parse(&task.node.driver_info).map(drop)
    }
}

#[async_trait]
impl PowerInterface for IpmiPower {
    async fn get_power_state(&self, task: &Task<'_>) -> Result<PowerState, DriverError> {
        let on = self
            .ipmi
            .with_bmc(task, "power status", |c| {
                Box::pin(async move { Ok(c.chassis_status().await?.power_on) })
            })
            .await?;
        Ok(if on { PowerState::On } else { PowerState::Off })
    }

    async fn set_power_state(
        &self,
        task: &mut Task<'_>,
        target: PowerState,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        let timeout = timeout.unwrap_or(POWER_STATE_CHANGE_TIMEOUT);
        match target {
            PowerState::On => self.power_on(task, timeout).await,
            PowerState::Off => {
                self.change(task, ChassisControl::PowerDown, false, timeout)
                    .await
            }
            PowerState::SoftPowerOff => {
                self.change(task, ChassisControl::SoftShutdown, false, timeout)
                    .await
            }
            PowerState::Rebooting => self.reboot(task, Some(timeout)).await,
            PowerState::SoftRebooting => {
                self.change(task, ChassisControl::SoftShutdown, false, timeout)
                    .await?;
                self.power_on(task, timeout).await
            }
            PowerState::Error => Err(DriverError::InvalidParameter(format!(
                "set_power_state called with an invalid power state: {target}."
            ))),
        }
    }

    /// Off, then on, as Ironic's ipmitool reboot (a power cycle would not
    /// re-apply a forced boot device).
    async fn reboot(
        &self,
        task: &mut Task<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        let timeout = timeout.unwrap_or(POWER_STATE_CHANGE_TIMEOUT);
        self.change(task, ChassisControl::PowerDown, false, timeout)
            .await?;
        self.power_on(task, timeout).await
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

/// The `ipmitool` management interface.
pub struct IpmiManagement {
    ipmi: Arc<Ipmi>,
}

impl IpmiManagement {
    pub fn new(ipmi: Arc<Ipmi>) -> Self {
        IpmiManagement { ipmi }
    }
}

const SUPPORTED_DEVICES: &[BootDevice] = &[
    BootDevice::Pxe,
    BootDevice::Disk,
    BootDevice::Cdrom,
    BootDevice::Bios,
    BootDevice::Safe,
];

fn to_ipmi(device: BootDevice) -> Option<IpmiDevice> {
    Some(match device {
        BootDevice::Pxe => IpmiDevice::Pxe,
        BootDevice::Disk => IpmiDevice::Disk,
        BootDevice::Cdrom => IpmiDevice::Cdrom,
        BootDevice::Bios => IpmiDevice::BiosSetup,
        BootDevice::Safe => IpmiDevice::DiskSafeMode,
        _ => return None,
    })
}

fn from_ipmi(device: IpmiDevice) -> Option<BootDevice> {
    Some(match device {
        IpmiDevice::Pxe => BootDevice::Pxe,
        IpmiDevice::Disk => BootDevice::Disk,
        IpmiDevice::Cdrom | IpmiDevice::RemoteCdrom => BootDevice::Cdrom,
        IpmiDevice::BiosSetup => BootDevice::Bios,
        IpmiDevice::DiskSafeMode => BootDevice::Safe,
        IpmiDevice::Floppy | IpmiDevice::RemoteFloppy => BootDevice::Floppy,
        _ => return None,
    })
}

/// Sets the boot device as Ironic's ipmitool does: the 60-second boot
/// flag timeout disabled first (unless the node says not to), the EFI bit
/// when the node boots in UEFI mode.
async fn set_boot_device(
    ipmi: &Ipmi,
    task: &Task<'_>,
    info: &IpmiInfo,
    device: BootDevice,
    persistent: bool,
) -> Result<(), DriverError> {
    let Some(wire) = to_ipmi(device) else {
        return Err(crate::interface::invalid_boot_device(
            device,
            SUPPORTED_DEVICES,
        ));
    };
    let uefi = crate::boot_mode::requested(task.node) == "uefi";
    let disable_timeout = info.disable_boot_timeout;
    ipmi.with_bmc(task, &format!("chassis bootdev {device}"), move |c| {
        Box::pin(async move {
            if disable_timeout {
                c.disable_boot_flag_timeout().await?;
            }
            c.set_boot_device(wire, persistent, Some(uefi)).await
        })
    })
    .await
}

#[async_trait]
impl Interface for IpmiManagement {
    fn name(&self) -> &'static str {
        "ipmitool"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        info::properties()
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        info::parse(&task.node.driver_info).map(drop)
    }
}

#[async_trait]
impl ManagementInterface for IpmiManagement {
    fn supported_boot_devices(&self) -> Vec<BootDevice> {
        SUPPORTED_DEVICES.to_vec()
    }

    async fn set_boot_device(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        if !SUPPORTED_DEVICES.contains(&device) {
            return Err(crate::interface::invalid_boot_device(
                device,
                SUPPORTED_DEVICES,
            ));
        }
        let info = info::parse(&task.node.driver_info)?;
        if info.force_boot_device {
            let internal = &mut task.node.driver_internal_info;
            if persistent {
                internal.insert("persistent_boot_device".into(), json!(device.as_str()));
                internal.remove("next_boot_device");
            } else {
                internal.insert("next_boot_device".into(), json!(device.as_str()));
            }
            internal.insert("is_next_boot_persistent".into(), json!(persistent));
        }
        set_boot_device(&self.ipmi, task, &info, device, persistent).await
    }

    async fn get_boot_device(&self, task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        let info = info::parse(&task.node.driver_info)?;
        if info.force_boot_device {
            let internal = &task.node.driver_internal_info;
            let persistent = internal
                .get("is_next_boot_persistent")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            return Ok(BootDeviceSetting {
                boot_device: forced_device(task),
                persistent: Some(persistent),
            });
        }
        let flags = self
            .ipmi
            .with_bmc(task, "chassis bootparam get 5", |c| {
                Box::pin(c.boot_device())
            })
            .await?;
        if !flags.valid {
            return Ok(BootDeviceSetting {
                boot_device: None,
                persistent: None,
            });
        }
        Ok(BootDeviceSetting {
            boot_device: from_ipmi(flags.device),
            persistent: Some(flags.persistent),
        })
    }

    async fn inject_nmi(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.ipmi
            .with_bmc(task, "power diag", |c| {
                Box::pin(c.chassis_control(ChassisControl::PulseDiagnosticInterrupt))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_devices_map_both_ways() {
        for d in SUPPORTED_DEVICES {
            let wire = to_ipmi(*d).unwrap();
            assert_eq!(from_ipmi(wire), Some(*d));
        }
        assert_eq!(to_ipmi(BootDevice::Wanboot), None);
        assert_eq!(from_ipmi(IpmiDevice::NoOverride), None);
    }

    #[test]
    fn busy_and_silent_bmcs_are_retried_wrong_passwords_are_not() {
        assert!(retryable(&ferric_ipmi::Error::NoAnswer {
            peer: "x".into(),
            attempts: 3
        }));
        assert!(retryable(&ferric_ipmi::Error::completion(0xc0)));
        assert!(!retryable(&ferric_ipmi::Error::completion(0xd4)));
        assert!(!retryable(&ferric_ipmi::Error::WrongPassword {
            username: "admin".into()
        }));
    }
}
