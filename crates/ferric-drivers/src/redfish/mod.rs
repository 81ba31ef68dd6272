//! Hardware type `redfish`: the `redfish` power and management interfaces
//! through `ferric-redfish`, with Ironic's names and `driver_info`.
//!
//! Clients come from one session cache shared by every node: a BMC's
//! session is opened once and reused, and logged out when evicted.

pub mod info;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BootDevice, InterfaceKind, PowerState};
use ferric_redfish::{
    request, AuthType, BootEnabled, BootSource, Client, ComputerSystem, Endpoint, MediaType,
    PowerAction, ResetPlan, ResetType, SessionCache, VirtualMedia,
};

use crate::error::DriverError;
use crate::interface::{
    BootDeviceSetting, BootMode, Interface, ManagementInterface, PowerInterface, Task,
};
use crate::management::VirtualMediaDevice;
use info::{RedfishInfo, VerifyCa};

/// Between reads while waiting for a power change.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// `[redfish]`: Ironic's options that apply.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RedfishConfig {
    /// `basic`, `session` or `auto`, for nodes without `redfish_auth_type`.
    pub auth_type: String,
    /// Seconds one HTTP request may take.
    pub request_timeout: u64,
}

impl Default for RedfishConfig {
    fn default() -> Self {
        RedfishConfig {
            auth_type: "auto".into(),
            request_timeout: 60,
        }
    }
}

/// What the power and management interfaces share: the BMC sessions.
#[derive(Default)]
pub struct Redfish {
    sessions: SessionCache,
}

impl Redfish {
    pub fn new() -> Arc<Redfish> {
        Arc::new(Redfish::default())
    }

    fn parse(task: &Task<'_>) -> Result<RedfishInfo, DriverError> {
        info::parse(
            task.node.uuid,
            &task.node.driver_info,
            &task.config.redfish.auth_type,
        )
    }

    fn client(&self, task: &Task<'_>) -> Result<(Client, RedfishInfo), DriverError> {
        let info = Self::parse(task)?;
        let endpoint = endpoint(&info, &task.config.redfish);
        let client = self
            .sessions
            .get(&endpoint)
            .map_err(|e| DriverError::InvalidParameter(e.to_string()))?;
        Ok((client, info))
    }

    /// The node's ComputerSystem, read fresh.
    async fn system(
        &self,
        task: &Task<'_>,
        what: &str,
    ) -> Result<(Client, ComputerSystem), DriverError> {
        let (client, info) = self.client(task)?;
        let system = client
            .system(info.system_id.as_deref())
            .await
            .map_err(|e| failure(task, what, e))?;
        Ok((client, system))
    }
}

fn endpoint(info: &RedfishInfo, config: &RedfishConfig) -> Endpoint {
    let mut address = info.address.clone();
    if let Some(prefix) = &info.root_prefix {
        address.push_str(prefix);
    }
    let mut endpoint = Endpoint::new(address);
    endpoint.username = info.username.clone();
    endpoint.password = info.password.clone().map(Into::into);
    endpoint.auth = match info.auth_type {
        "basic" => AuthType::Basic,
        "session" => AuthType::Session,
        _ => AuthType::Auto,
    };
    endpoint.verify_ca = match &info.verify_ca {
        VerifyCa::Yes => ferric_redfish::VerifyCa::Yes,
        VerifyCa::No => ferric_redfish::VerifyCa::No,
        VerifyCa::Path(p) => ferric_redfish::VerifyCa::Bundle(p.clone()),
    };
    endpoint.timeout = Duration::from_secs(config.request_timeout.max(1));
    endpoint
}

fn failure(task: &Task<'_>, what: &str, e: ferric_redfish::Error) -> DriverError {
    let message = format!("Redfish {what} failed for node {}: {e}", task.node.uuid);
    if e.is_transient() {
        DriverError::transient(message, Some(Arc::new(e)))
    } else {
        DriverError::failed_by(message, e)
    }
}

fn power_of(system: &ComputerSystem) -> PowerState {
    match system.power_state.as_ref().and_then(|p| p.is_on()) {
        Some(true) => PowerState::On,
        Some(false) => PowerState::Off,
        None => PowerState::Error,
    }
}

/// The `redfish` power interface.
pub struct RedfishPower {
    redfish: Arc<Redfish>,
}

impl RedfishPower {
    pub fn new(redfish: Arc<Redfish>) -> Self {
        RedfishPower { redfish }
    }

    /// Carries out `action` and waits until the system shows `want`.
    async fn act(
        &self,
        task: &Task<'_>,
        action: PowerAction,
        want: PowerState,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        let what = format!("power {want}");
        let (client, system) = self.redfish.system(task, &what).await?;
        let allowed = client
            .allowed_reset_types(&system)
            .await
            .map_err(|e| failure(task, &what, e))?;
        let plan = request::choose_reset(
            action,
            system.power_state.as_ref(),
            allowed.as_deref(),
            system.path(),
        )
        .map_err(|e| {
            DriverError::InvalidParameter(format!(
                "Redfish {what} for node {}: {e}",
                task.node.uuid
            ))
        })?;
        let timeout = timeout.unwrap_or(crate::ipmi::POWER_STATE_CHANGE_TIMEOUT);
        match plan {
            ResetPlan::Single(reset) => {
                self.reset(task, &client, &system, reset, &what).await?;
            }
            ResetPlan::OffThenOn { off, on } => {
                self.reset(task, &client, &system, off, &what).await?;
                self.wait(task, PowerState::Off, timeout).await?;
                self.reset(task, &client, &system, on, &what).await?;
            }
        }
        self.wait(task, want, timeout).await
    }

    async fn reset(
        &self,
        task: &Task<'_>,
        client: &Client,
        system: &ComputerSystem,
        reset: ResetType,
        what: &str,
    ) -> Result<(), DriverError> {
        client
            .reset(system, reset)
            .await
            .map_err(|e| failure(task, what, e))
    }

    /// Reads the system until its power is `want` (Ironic's
    /// `node_wait_for_power_state`).
    async fn wait(
        &self,
        task: &Task<'_>,
        want: PowerState,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let (_, system) = self.redfish.system(task, "power status").await?;
            if power_of(&system) == want {
                return Ok(());
            }
            if tokio::time::Instant::now() + POLL_INTERVAL > until {
                return Err(DriverError::failed(format!(
                    "Timeout reached while waiting for the power state of node {} to become {want} (it is {}) \
                     within {} seconds.",
                    task.node.uuid,
                    power_of(&system),
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[async_trait]
impl Interface for RedfishPower {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Power
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        info::properties()
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        Redfish::parse(task).map(drop)
    }
}

#[async_trait]
impl PowerInterface for RedfishPower {
    async fn get_power_state(&self, task: &Task<'_>) -> Result<PowerState, DriverError> {
        let (_, system) = self.redfish.system(task, "power status").await?;
        Ok(power_of(&system))
    }

    async fn set_power_state(
        &self,
        task: &mut Task<'_>,
        target: PowerState,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        let (action, want) = match target {
            PowerState::On => (PowerAction::On, PowerState::On),
            PowerState::Off => (PowerAction::Off, PowerState::Off),
            PowerState::SoftPowerOff => (PowerAction::SoftOff, PowerState::Off),
            PowerState::Rebooting => (PowerAction::Reboot, PowerState::On),
            PowerState::SoftRebooting => (PowerAction::SoftReboot, PowerState::On),
            PowerState::Error => {
                return Err(DriverError::InvalidParameter(format!(
                    "set_power_state called with an invalid power state: {target}."
                )))
            }
        };
        self.act(task, action, want, timeout).await
    }

    async fn reboot(
        &self,
        task: &mut Task<'_>,
        timeout: Option<Duration>,
    ) -> Result<(), DriverError> {
        self.act(task, PowerAction::Reboot, PowerState::On, timeout)
            .await
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

/// The `redfish` management interface.
pub struct RedfishManagement {
    redfish: Arc<Redfish>,
}

impl RedfishManagement {
    pub fn new(redfish: Arc<Redfish>) -> Self {
        RedfishManagement { redfish }
    }
}

const SUPPORTED_DEVICES: &[BootDevice] = &[
    BootDevice::Pxe,
    BootDevice::Disk,
    BootDevice::Cdrom,
    BootDevice::Bios,
    BootDevice::UefiHttp,
];

fn to_source(device: BootDevice) -> Option<BootSource> {
    Some(match device {
        BootDevice::Pxe => BootSource::Pxe,
        BootDevice::Disk => BootSource::Hdd,
        BootDevice::Cdrom => BootSource::Cd,
        BootDevice::Bios => BootSource::BiosSetup,
        BootDevice::UefiHttp => BootSource::UefiHttp,
        _ => return None,
    })
}

fn from_source(source: &BootSource) -> Option<BootDevice> {
    Some(match source {
        BootSource::Pxe => BootDevice::Pxe,
        BootSource::Hdd => BootDevice::Disk,
        BootSource::Cd | BootSource::UsbCd => BootDevice::Cdrom,
        BootSource::BiosSetup => BootDevice::Bios,
        BootSource::UefiHttp => BootDevice::UefiHttp,
        BootSource::Floppy => BootDevice::Floppy,
        _ => return None,
    })
}

#[async_trait]
impl Interface for RedfishManagement {
    fn name(&self) -> &'static str {
        "redfish"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        info::properties()
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        Redfish::parse(task).map(drop)
    }
}

#[async_trait]
impl ManagementInterface for RedfishManagement {
    fn supported_boot_devices(&self) -> Vec<BootDevice> {
        SUPPORTED_DEVICES.to_vec()
    }

    async fn set_boot_device(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let Some(source) = to_source(device) else {
            return Err(crate::interface::invalid_boot_device(
                device,
                SUPPORTED_DEVICES,
            ));
        };
        let what = format!("setting boot device {device}");
        let (client, system) = self.redfish.system(task, &what).await?;
        let enabled = if persistent {
            BootEnabled::Continuous
        } else {
            BootEnabled::Once
        };
        client
            .set_boot_override(&system, source, enabled, None)
            .await
            .map_err(|e| failure(task, &what, e))
    }

    async fn get_boot_device(&self, task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        let (_, system) = self.redfish.system(task, "reading the boot device").await?;
        let boot = system.boot.unwrap_or_default();
        let persistent = match boot.enabled {
            Some(BootEnabled::Continuous) => Some(true),
            Some(BootEnabled::Once) => Some(false),
            _ => None,
        };
        let device = match boot.enabled {
            Some(BootEnabled::Disabled) => None,
            _ => boot.target.as_ref().and_then(from_source),
        };
        Ok(BootDeviceSetting {
            boot_device: device,
            persistent,
        })
    }

    fn supported_boot_modes(&self) -> Vec<BootMode> {
        vec![BootMode::Bios, BootMode::Uefi]
    }

    async fn get_boot_mode(&self, task: &Task<'_>) -> Result<Option<BootMode>, DriverError> {
        let (_, system) = self.redfish.system(task, "reading the boot mode").await?;
        Ok(match system.boot.and_then(|b| b.mode) {
            Some(ferric_redfish::BootMode::Uefi) => Some(BootMode::Uefi),
            Some(ferric_redfish::BootMode::Legacy) => Some(BootMode::Bios),
            _ => None,
        })
    }

    /// Sets the mode with the override the system has (Ironic's
    /// `set_boot_mode` keeps target and enabled as they are).
    async fn set_boot_mode(&self, task: &mut Task<'_>, mode: BootMode) -> Result<(), DriverError> {
        let what = format!("setting boot mode {mode}");
        let (client, system) = self.redfish.system(task, &what).await?;
        let boot = system.boot.clone().unwrap_or_default();
        let wire = match mode {
            BootMode::Uefi => ferric_redfish::BootMode::Uefi,
            BootMode::Bios => ferric_redfish::BootMode::Legacy,
        };
        client
            .set_boot_override(
                &system,
                boot.target.unwrap_or(BootSource::None),
                boot.enabled.unwrap_or(BootEnabled::Disabled),
                Some(wire),
            )
            .await
            .map_err(|e| failure(task, &what, e))?;
        task.node.boot_mode = Some(mode.as_str().to_owned());
        Ok(())
    }

    async fn inject_nmi(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let (client, system) = self.redfish.system(task, "inject NMI").await?;
        client
            .reset(&system, ResetType::Nmi)
            .await
            .map_err(|e| failure(task, "inject NMI", e))
    }
    async fn get_virtual_media(
        &self,
        task: &Task<'_>,
    ) -> Result<Vec<VirtualMediaDevice>, DriverError> {
        let what = "reading virtual media";
        let (client, system) = self.redfish.system(task, what).await?;
        let devices = client
            .virtual_media(&system)
            .await
            .map_err(|e| failure(task, what, e))?;
        if devices.is_empty() {
            return Err(DriverError::InvalidParameter(
                "No suitable virtual media device found".into(),
            ));
        }
        Ok(devices.iter().map(shown_media).collect())
    }

    /// As Ironic: whatever the devices of that type hold is ejected, then
    /// the image goes into the first device that takes the type.
    async fn attach_virtual_media(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        image_url: &str,
    ) -> Result<(), DriverError> {
        let kind = vmedia_type(device)?;
        let what = format!("inserting virtual media into {kind}");
        let (client, system) = self.redfish.system(task, &what).await?;
        let devices = client
            .virtual_media(&system)
            .await
            .map_err(|e| failure(task, &what, e))?;
        let usable: Vec<&VirtualMedia> = devices.iter().filter(|m| m.accepts(&kind)).collect();
        for media in &usable {
            if media.is_inserted() {
                if let Err(e) = client.eject_media(media).await {
                    tracing::debug!(node = %task.node.uuid, error = %e, "could not eject the old media first");
                }
            }
        }
        let Some(first) = usable.first() else {
            return Err(DriverError::InvalidParameter(format!(
                "No suitable virtual media device found for node {} to mount image {image_url}",
                task.node.uuid
            )));
        };
        client
            .insert_media(first, image_url, true, true)
            .await
            .map_err(|e| {
                DriverError::InvalidParameter(format!(
                    "Virtual media mount failed for node {} with image {image_url}. Error: {e}",
                    task.node.uuid
                ))
            })
    }

    async fn detach_virtual_media(
        &self,
        task: &mut Task<'_>,
        devices: Option<&[BootDevice]>,
    ) -> Result<(), DriverError> {
        let kinds = match devices {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|d| vmedia_type(*d))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let what = "ejecting virtual media";
        let (client, system) = self.redfish.system(task, what).await?;
        let media = client
            .virtual_media(&system)
            .await
            .map_err(|e| failure(task, what, e))?;
        for device in &media {
            let wanted = kinds
                .as_ref()
                .is_none_or(|kinds| kinds.iter().any(|k| device.accepts(k)));
            if wanted && device.is_inserted() {
                client
                    .eject_media(device)
                    .await
                    .map_err(|e| failure(task, what, e))?;
            }
        }
        Ok(())
    }
}

/// Redfish's media type of a virtual media device type.
fn vmedia_type(device: BootDevice) -> Result<MediaType, DriverError> {
    crate::management::vmedia_type_of(device).map(MediaType::from_wire)
}

/// A device as `GET /vmedia` shows it.
fn shown_media(media: &VirtualMedia) -> VirtualMediaDevice {
    VirtualMediaDevice {
        media_types: media
            .media_types()
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect(),
        inserted: media.inserted,
        image: media.image.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_devices_map_both_ways() {
        for d in SUPPORTED_DEVICES {
            assert_eq!(from_source(&to_source(*d).unwrap()), Some(*d));
        }
        assert_eq!(to_source(BootDevice::Wanboot), None);
    }

    #[test]
    fn endpoints_carry_the_root_prefix_and_auth() {
        let info = RedfishInfo {
            address: "https://bmc:8443".into(),
            root_prefix: Some("/custom/v1/".into()),
            system_id: None,
            username: Some("admin".into()),
            password: Some("pw".into()),
            verify_ca: VerifyCa::No,
            auth_type: "session",
        };
        let e = endpoint(&info, &RedfishConfig::default());
        assert_eq!(e.address, "https://bmc:8443/custom/v1/");
        assert_eq!(e.auth, AuthType::Session);
        assert_eq!(e.verify_ca, ferric_redfish::VerifyCa::No);
        assert!(!format!("{e:?}").contains("pw"));
    }
}
