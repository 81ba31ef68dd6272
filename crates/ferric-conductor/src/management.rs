//! Management actions (boot device, NMI) and driver validation.

use ferric_core::{BootDevice, Ident, InterfaceKind, NodeIdent};
use ferric_drivers::{BootDeviceSetting, DriverError};

use crate::error::{ConductorError, Result};
use crate::task::Task;
use crate::Conductor;

/// One interface's verdict in `GET /validate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationResult {
    Valid,
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceValidation {
    pub kind: InterfaceKind,
    pub result: ValidationResult,
}

/// Ironic's order of `/validate`; vendor is never validated there.
const VALIDATION_ORDER: &[InterfaceKind] = &[
    InterfaceKind::Boot,
    InterfaceKind::Deploy,
    InterfaceKind::Management,
    InterfaceKind::Network,
    InterfaceKind::Power,
    InterfaceKind::Bios,
    InterfaceKind::Console,
    InterfaceKind::Firmware,
    InterfaceKind::Inspect,
    InterfaceKind::Raid,
    InterfaceKind::Rescue,
    InterfaceKind::Storage,
];

impl Conductor {
    async fn locked(&self, ident: &NodeIdent) -> Result<Task> {
        let node = self.inner.store.get_node(ident).await?;
        self.inner.lock(&Ident::Uuid(node.uuid)).await
    }

    pub async fn set_boot_device(
        &self,
        ident: &NodeIdent,
        device: BootDevice,
        persistent: bool,
    ) -> Result<()> {
        let mut task = self.locked(ident).await?;
        let fail = driver_error(&task);
        let result = async {
            task.validate(InterfaceKind::Management)
                .await
                .map_err(&fail)?;
            task.call("management.set_boot_device", |d, t| {
                d.management.set_boot_device(t, device, persistent)
            })
            .await
            .map_err(&fail)
        }
        .await;
        finish_management(task, result).await
    }

    pub async fn get_boot_device(&self, ident: &NodeIdent) -> Result<BootDeviceSetting> {
        let mut task = self.locked(ident).await?;
        let fail = driver_error(&task);
        let result = async {
            task.validate(InterfaceKind::Management)
                .await
                .map_err(&fail)?;
            task.call("management.get_boot_device", |d, t| {
                d.management.get_boot_device(t)
            })
            .await
            .map_err(&fail)
        }
        .await;
        finish_management(task, result).await
    }

    /// Needs no lock: it asks the driver what it supports.
    pub async fn supported_boot_devices(&self, ident: &NodeIdent) -> Result<Vec<BootDevice>> {
        let node = self.inner.store.get_node(ident).await?;
        let driver = self.inner.registry.compose(&node)?;
        Ok(driver.management.supported_boot_devices())
    }

    pub async fn inject_nmi(&self, ident: &NodeIdent) -> Result<()> {
        let mut task = self.locked(ident).await?;
        let fail = driver_error(&task);
        let result = async {
            task.validate(InterfaceKind::Management)
                .await
                .map_err(&fail)?;
            task.call("management.inject_nmi", |d, t| d.management.inject_nmi(t))
                .await
                .map_err(&fail)
        }
        .await;
        finish_management(task, result).await
    }

    /// Validates every interface of the node's driver. Reads only; takes
    /// no lock.
    pub async fn validate(&self, ident: &NodeIdent) -> Result<Vec<InterfaceValidation>> {
        let mut node = self.inner.store.get_node(ident).await?;
        self.inner.registry.compose(&node)?;
        let mut ports = self
            .inner
            .store
            .list_ports(
                &ferric_db::PortFilter {
                    node_uuid: Some(node.uuid),
                    ..Default::default()
                },
                &Default::default(),
            )
            .await?;
        let mut out = Vec::new();
        for kind in VALIDATION_ORDER {
            let kind = *kind;
            let operation = format!("{kind}.validate");
            let validated = crate::task::call_unlocked(
                &self.inner,
                &mut node,
                &mut ports,
                &operation,
                |d, t| d.interface(kind).validate(t),
            )
            .await;
            let result = match validated {
                Ok(()) => ValidationResult::Valid,
                Err(DriverError::Unsupported { .. }) => ValidationResult::Invalid(format!(
                    "Driver {} does not support {kind} (disabled or not implemented).",
                    node.driver
                )),
                Err(e) => ValidationResult::Invalid(e.to_string()),
            };
            out.push(InterfaceValidation { kind, result });
        }
        Ok(out)
    }
}

/// Maps a driver error of this node's driver to what the API reports.
fn driver_error(task: &Task) -> impl Fn(DriverError) -> ConductorError {
    let driver = task.node.driver.clone();
    move |e| ConductorError::from_driver(&driver, e)
}

/// Stores what the interface wrote on the node (a cached boot device, a
/// BMC's answer) and releases it.
async fn finish_management<T>(task: Task, result: Result<T>) -> Result<T> {
    task.release().await?;
    result
}
