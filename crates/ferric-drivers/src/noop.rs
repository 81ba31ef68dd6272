//! Interfaces that do nothing: `no-*` ones, which refuse every operation as
//! unsupported, and `noop` ones (network, storage), which succeed at doing
//! nothing because there is nothing to do.

use async_trait::async_trait;
use ferric_core::InterfaceKind;

use crate::error::DriverError;
use crate::interface::*;

/// A `no-*` interface, e.g. `no-console`.
pub struct NotSupported {
    kind: InterfaceKind,
    name: &'static str,
}

impl NotSupported {
    pub fn new(kind: InterfaceKind, name: &'static str) -> Self {
        NotSupported { kind, name }
    }

    fn refuse(&self, operation: &'static str) -> DriverError {
        DriverError::Unsupported {
            kind: self.kind,
            name: self.name.to_owned(),
            operation,
        }
    }
}

#[async_trait]
impl Interface for NotSupported {
    fn name(&self) -> &'static str {
        self.name
    }

    fn kind(&self) -> InterfaceKind {
        self.kind
    }

    fn supported(&self) -> bool {
        false
    }

    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse("validate"))
    }
}

#[async_trait]
impl InspectInterface for NotSupported {
    async fn inspect_hardware(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Err(self.refuse("inspect_hardware"))
    }
    async fn abort(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse("abort"))
    }
}

#[async_trait]
impl RescueInterface for NotSupported {
    async fn rescue(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Err(self.refuse("rescue"))
    }
    async fn unrescue(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse("unrescue"))
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl ConsoleInterface for NotSupported {
    async fn start_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse("start_console"))
    }
    async fn stop_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse("stop_console"))
    }
    async fn get_console(&self, _task: &Task<'_>) -> Result<ferric_core::JsonObject, DriverError> {
        Err(self.refuse("get_console"))
    }
}

impl VendorInterface for NotSupported {}
impl RaidInterface for NotSupported {
    fn validate_raid_config(&self, _config: &ferric_core::JsonObject) -> Result<(), DriverError> {
        Err(self.refuse("validate_raid_config"))
    }
}
impl BiosInterface for NotSupported {}
impl FirmwareInterface for NotSupported {}

/// A `noop` interface: network or storage handled outside Ferric.
pub struct Noop {
    kind: InterfaceKind,
}

impl Noop {
    pub fn new(kind: InterfaceKind) -> Self {
        Noop { kind }
    }
}

#[async_trait]
impl Interface for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn kind(&self) -> InterfaceKind {
        self.kind
    }

    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

impl NetworkInterface for Noop {}
impl StorageInterface for Noop {}

/// Ironic's `noop` management: the boot device is set by hand (or needs no
/// setting); accepts `pxe` and `disk` and changes nothing.
pub struct NoopManagement;

#[async_trait]
impl Interface for NoopManagement {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }

    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl ManagementInterface for NoopManagement {
    fn supported_boot_devices(&self) -> Vec<ferric_core::BootDevice> {
        vec![ferric_core::BootDevice::Pxe, ferric_core::BootDevice::Disk]
    }

    async fn set_boot_device(
        &self,
        _task: &mut Task<'_>,
        device: ferric_core::BootDevice,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        let supported = self.supported_boot_devices();
        if supported.contains(&device) {
            return Ok(());
        }
        Err(crate::interface::invalid_boot_device(device, &supported))
    }

    async fn get_boot_device(&self, _task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        Ok(BootDeviceSetting {
            boot_device: None,
            persistent: None,
        })
    }

    async fn inject_nmi(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(DriverError::Unsupported {
            kind: InterfaceKind::Management,
            name: "noop".to_owned(),
            operation: "inject_nmi",
        })
    }
}

/// An interface Ferric knows by name but has not built yet (`ipmitool`
/// before the IPMI driver lands). Nodes may be enrolled with it; every
/// operation fails saying it is not available.
pub struct Unavailable {
    kind: InterfaceKind,
    name: &'static str,
}

impl Unavailable {
    pub fn new(kind: InterfaceKind, name: &'static str) -> Self {
        Unavailable { kind, name }
    }

    fn refuse(&self) -> DriverError {
        DriverError::Unavailable {
            kind: self.kind,
            name: self.name.to_owned(),
        }
    }
}

#[async_trait]
impl Interface for Unavailable {
    fn name(&self) -> &'static str {
        self.name
    }

    fn kind(&self) -> InterfaceKind {
        self.kind
    }

    fn available(&self) -> bool {
        false
    }

    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl PowerInterface for Unavailable {
    async fn get_power_state(
        &self,
        _task: &Task<'_>,
    ) -> Result<ferric_core::PowerState, DriverError> {
        Err(self.refuse())
    }
    async fn set_power_state(
        &self,
        _task: &mut Task<'_>,
        _target: ferric_core::PowerState,
        _timeout: Option<std::time::Duration>,
    ) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn reboot(
        &self,
        _task: &mut Task<'_>,
        _timeout: Option<std::time::Duration>,
    ) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    fn supported_power_states(&self) -> Vec<ferric_core::PowerState> {
        Vec::new()
    }
}

#[async_trait]
impl ManagementInterface for Unavailable {
    fn supported_boot_devices(&self) -> Vec<ferric_core::BootDevice> {
        Vec::new()
    }
    async fn set_boot_device(
        &self,
        _task: &mut Task<'_>,
        _device: ferric_core::BootDevice,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn get_boot_device(&self, _task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        Err(self.refuse())
    }
    async fn inject_nmi(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl BootInterface for Unavailable {
    async fn prepare_ramdisk(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn clean_up_ramdisk(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn prepare_instance(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn clean_up_instance(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl DeployInterface for Unavailable {
    async fn prepare(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn tear_down(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn take_over(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn prepare_cleaning(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Err(self.refuse())
    }
    async fn tear_down_cleaning(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl InspectInterface for Unavailable {
    async fn inspect_hardware(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Err(self.refuse())
    }
    async fn abort(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl RescueInterface for Unavailable {
    async fn rescue(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Err(self.refuse())
    }
    async fn unrescue(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}

#[async_trait]
impl ConsoleInterface for Unavailable {
    async fn start_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn stop_console(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Err(self.refuse())
    }
    async fn get_console(&self, _task: &Task<'_>) -> Result<ferric_core::JsonObject, DriverError> {
        Err(self.refuse())
    }
}

impl VendorInterface for Unavailable {}
impl RaidInterface for Unavailable {
    fn validate_raid_config(&self, _config: &ferric_core::JsonObject) -> Result<(), DriverError> {
        Err(self.refuse())
    }
}
impl BiosInterface for Unavailable {}
impl NetworkInterface for Unavailable {}
impl StorageInterface for Unavailable {}
impl FirmwareInterface for Unavailable {}
