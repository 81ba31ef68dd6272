//! Settings of a node's hardware changed through its management interface
//! (Ironic's `change_node_boot_mode`, `change_node_secure_boot`, the
//! indicator calls and the virtual media calls).
//!
//! Boot mode, secure boot and virtual media changes are asynchronous: the
//! lock is taken and `last_error` cleared before the answer, the change
//! runs on a worker, and a failure lands in `last_error`.

use std::future::Future;

use ferric_core::{BootDevice, Ident, InterfaceKind, NodeIdent};
use ferric_drivers::{BootMode, DriverError, Indicator, IndicatorState, VirtualMediaDevice};

use crate::error::{ConductorError, Result};
use crate::task::Task;
use crate::Conductor;

impl Conductor {
    /// Starts switching the node's boot mode to `target`.
    pub async fn change_boot_mode(&self, ident: &NodeIdent, target: BootMode) -> Result<()> {
        self.start_management_change(ident, "boot mode", move |mut task| async move {
            let current = task
                .call("management.get_boot_mode", |d, t| d.management.get_boot_mode(t))
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(node = %task.node.uuid, error = %e, "could not read the boot mode");
                    None
                });
            if current != Some(target) {
                let set = task
                    .call("management.set_boot_mode", |d, t| {
                        d.management.set_boot_mode(t, target)
                    })
                    .await;
                match set {
                    Ok(()) => task.node.boot_mode = Some(target.as_str().to_owned()),
                    // Ironic's text, its missing quote included.
                    Err(e) => {
                        task.node.last_error =
                            Some(format!("Failed to change boot mode to '{target}: {e}"))
                    }
                }
            }
            task.release().await.map(drop)
        })
        .await
    }

    /// Starts turning the node's UEFI secure boot on or off.
    pub async fn change_secure_boot(&self, ident: &NodeIdent, on: bool) -> Result<()> {
        self.start_management_change(ident, "secure boot", move |mut task| async move {
            let current = task
                .call("management.get_secure_boot_state", |d, t| {
                    d.management.get_secure_boot_state(t)
                })
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(node = %task.node.uuid, error = %e, "could not read secure boot");
                    None
                });
            if current != Some(on) {
                let set = task
                    .call("management.set_secure_boot_state", |d, t| {
                        d.management.set_secure_boot_state(t, on)
                    })
                    .await;
                match set {
                    Ok(()) => task.node.secure_boot = Some(on),
                    Err(e) => {
                        task.node.last_error = Some(format!(
                            "Failed to change secure_boot state to '{}': {e}",
                            python_bool(on)
                        ))
                    }
                }
            }
            task.release().await.map(drop)
        })
        .await
    }

    /// Starts inserting the image at `image_url` into the node's virtual
    /// `device`.
    pub async fn attach_virtual_media(
        &self,
        ident: &NodeIdent,
        device: BootDevice,
        image_url: String,
    ) -> Result<()> {
        self.start_vmedia_change(ident, "attach", move |mut task| async move {
            let attached = task
                .call("management.attach_virtual_media", |d, t| {
                    Box::pin(async move {
                        d.management
                            .attach_virtual_media(t, device, &image_url)
                            .await
                    })
                })
                .await;
            if let Err(e) = attached {
                let uuid = task.node.uuid;
                task.node.last_error = Some(format!(
                    "Could not attach device {device} to node {uuid}: {e}"
                ));
            }
            task.release().await.map(drop)
        })
        .await
    }

    /// Starts ejecting the media of `devices` (every device when `None`).
    pub async fn detach_virtual_media(
        &self,
        ident: &NodeIdent,
        devices: Option<Vec<BootDevice>>,
    ) -> Result<()> {
        self.start_vmedia_change(ident, "detach", move |mut task| async move {
            let named = devices_repr(devices.as_deref());
            let detached = task
                .call("management.detach_virtual_media", |d, t| {
                    Box::pin(async move {
                        d.management
                            .detach_virtual_media(t, devices.as_deref())
                            .await
                    })
                })
                .await;
            if let Err(e) = detached {
                let uuid = task.node.uuid;
                task.node.last_error = Some(format!(
                    "Could not detach device(s) {named} from node {uuid}: {e}"
                ));
            }
            task.release().await.map(drop)
        })
        .await
    }

    /// The node's virtual media devices. Reads only; takes no lock.
    pub async fn get_virtual_media(&self, ident: &NodeIdent) -> Result<Vec<VirtualMediaDevice>> {
        let mut node = self.inner.store.get_node(ident).await?;
        self.inner.registry.compose(&node)?;
        let driver = node.driver.clone();
        let fail = |e| ConductorError::from_driver(&driver, e);
        let mut ports = Vec::new();
        crate::task::call_unlocked(
            &self.inner,
            &mut node,
            &mut ports,
            "management.validate",
            |d, t| d.management.validate(t),
        )
        .await
        .map_err(fail)?;
        crate::task::call_unlocked(
            &self.inner,
            &mut node,
            &mut ports,
            "management.get_virtual_media",
            |d, t| d.management.get_virtual_media(t),
        )
        .await
        .map_err(fail)
    }

    pub async fn supported_indicators(&self, ident: &NodeIdent) -> Result<Vec<Indicator>> {
        self.management_call(ident, |mut task| async move {
            let result = task
                .call("management.get_supported_indicators", |d, t| {
                    d.management.get_supported_indicators(t)
                })
                .await;
            (task, result)
        })
        .await
    }

    pub async fn get_indicator_state(
        &self,
        ident: &NodeIdent,
        component: String,
        indicator: String,
    ) -> Result<IndicatorState> {
        self.management_call(ident, |mut task| async move {
            let result = task
                .call("management.get_indicator_state", |d, t| {
                    Box::pin(async move {
                        d.management
                            .get_indicator_state(t, &component, &indicator)
                            .await
                    })
                })
                .await;
            (task, result)
        })
        .await
    }

    pub async fn set_indicator_state(
        &self,
        ident: &NodeIdent,
        component: String,
        indicator: String,
        state: IndicatorState,
    ) -> Result<()> {
        self.management_call(ident, |mut task| async move {
            let result = task
                .call("management.set_indicator_state", |d, t| {
                    Box::pin(async move {
                        d.management
                            .set_indicator_state(t, &component, &indicator, state)
                            .await
                    })
                })
                .await;
            (task, result)
        })
        .await
    }

    /// A synchronous management call under the node's lock, after the
    /// interface is validated.
    async fn management_call<T, F, Fut>(&self, ident: &NodeIdent, call: F) -> Result<T>
    where
        F: FnOnce(Task) -> Fut,
        Fut: Future<Output = (Task, Result<T, DriverError>)>,
    {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        let driver = task.node.driver.clone();
        if let Err(e) = task.validate(InterfaceKind::Management).await {
            return crate::flows::refuse(task, ConductorError::from_driver(&driver, e)).await;
        }
        let (task, result) = call(task).await;
        task.release().await?;
        result.map_err(|e| ConductorError::from_driver(&driver, e))
    }

    /// Virtual media changes are refused while the node's power is in
    /// fault (Ironic's check).
    async fn start_vmedia_change<F, Fut>(
        &self,
        ident: &NodeIdent,
        verb: &'static str,
        change: F,
    ) -> Result<()>
    where
        F: FnOnce(Task) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let node = self.inner.store.get_node(ident).await?;
        if node.maintenance && node.fault.as_deref() == Some("power failure") {
            return Err(ConductorError::TemporaryFailure(format!(
                "Unable to {verb} virtual media for node {} due to power failure state",
                node.uuid
            )));
        }
        let what = if verb == "attach" {
            "attaching virtual media"
        } else {
            "detaching virtual media"
        };
        self.start_management_change(ident, what, change).await
    }

    /// Takes the lock, validates the management interface, clears
    /// `last_error`, and runs `change` on a worker; it must release the
    /// task.
    async fn start_management_change<F, Fut>(
        &self,
        ident: &NodeIdent,
        what: &'static str,
        change: F,
    ) -> Result<()>
    where
        F: FnOnce(Task) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        let driver = task.node.driver.clone();
        if let Err(e) = task.validate(InterfaceKind::Management).await {
            return crate::flows::refuse(task, ConductorError::from_driver(&driver, e)).await;
        }
        let slot = match task.inner.worker_slot() {
            Ok(s) => s,
            Err(e) => return crate::flows::no_free_worker(task, e).await,
        };
        task.node.last_error = None;
        task.save().await?;
        tracing::debug!(node = %task.node.uuid, what, "management change started");
        let inner = task.inner.clone();
        inner.spawn_flow(slot, what, change(task));
        Ok(())
    }
}

fn python_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The device types as Ironic's messages print the list: `['cdrom']`, or
/// `None` for all.
fn devices_repr(devices: Option<&[BootDevice]>) -> String {
    match devices {
        None => "None".into(),
        Some(list) => {
            let names: Vec<String> = list.iter().map(|d| format!("'{d}'")).collect();
            format!("[{}]", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_print_as_python_lists() {
        assert_eq!(devices_repr(None), "None");
        assert_eq!(
            devices_repr(Some(&[BootDevice::Cdrom, BootDevice::Disk])),
            "['cdrom', 'disk']"
        );
    }
}
