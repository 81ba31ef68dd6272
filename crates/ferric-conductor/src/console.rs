//! The node's serial console: turning it on and off (Ironic's
//! `set_console_mode`) and saying how to reach it
//! (`get_console_information`).

use ferric_core::{Ident, JsonObject, NodeIdent};

use crate::error::{ConductorError, Result};
use crate::task::{call_unlocked, Task};
use crate::Conductor;

impl Conductor {
    /// How to reach the node's console, or `None` when it is not enabled.
    /// Reads only; takes no lock.
    pub async fn get_console_information(&self, ident: &NodeIdent) -> Result<Option<JsonObject>> {
        let mut node = self.inner.store.get_node(ident).await?;
        if !node.console_enabled {
            return Ok(None);
        }
        let driver = node.driver.clone();
        let fail = |e| ConductorError::from_driver(&driver, e);
        let mut ports = Vec::new();
        call_unlocked(
            &self.inner,
            &mut node,
            &mut ports,
            "console.validate",
            |d, t| d.console.validate(t),
        )
        .await
        .map_err(fail)?;
        let info = call_unlocked(
            &self.inner,
            &mut node,
            &mut ports,
            "console.get_console",
            |d, t| d.console.get_console(t),
        )
        .await
        .map_err(fail)?;
        Ok(Some(info))
    }

    /// Starts or stops the console on a worker; returns once the request
    /// is accepted. As in Ironic, the console interface is validated and
    /// the state compared without the node's lock, so asking for the state
    /// the console is already in does nothing, even on a busy node.
    pub async fn set_console_mode(&self, ident: &NodeIdent, enabled: bool) -> Result<()> {
        let mut node = self.inner.store.get_node(ident).await?;
        let driver = node.driver.clone();
        call_unlocked(
            &self.inner,
            &mut node,
            &mut Vec::new(),
            "console.validate",
            |d, t| d.console.validate(t),
        )
        .await
        .map_err(|e| ConductorError::from_driver(&driver, e))?;
        if node.console_enabled == enabled {
            tracing::info!(
                node = %node.uuid,
                "No console action was triggered because the console is already {}",
                if enabled { "enabled" } else { "disabled" }
            );
            return Ok(());
        }
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        let slot = match task.inner.worker_slot() {
            Ok(s) => s,
            Err(e) => return crate::flows::no_free_worker(task, e).await,
        };
        task.node.last_error = None;
        task.save().await?;
        let inner = task.inner.clone();
        inner.spawn_flow(slot, "console", async move {
            switch_console(&mut task, enabled).await;
            task.release().await?;
            Ok(())
        });
        Ok(())
    }
}

/// A node being deleted with its console on has it stopped first; a
/// failure is logged and the deletion goes on, as in Ironic.
pub(crate) async fn stop_before_delete(task: &mut Task) {
    if !task.node.console_enabled {
        return;
    }
    if let Err(e) = task
        .call("console.stop_console", |d, t| d.console.stop_console(t))
        .await
    {
        tracing::error!(node = %task.node.uuid, error = %e.chain(), "Failed to stop console while deleting the node");
    }
}

/// Asks the console interface to start or stop; a failure goes to
/// `last_error` and leaves `console_enabled` as it was.
async fn switch_console(task: &mut Task, enabled: bool) {
    let result = if enabled {
        task.call("console.start_console", |d, t| d.console.start_console(t))
            .await
    } else {
        task.call("console.stop_console", |d, t| d.console.stop_console(t))
            .await
    };
    match result {
        Ok(()) => {
            task.node.console_enabled = enabled;
            task.node.last_error = None;
        }
        Err(e) => {
            let op = if enabled { "enabling" } else { "disabling" };
            let msg = format!(
                "Error {op} the console on node {}. Reason: {e}",
                task.node.uuid
            );
            tracing::error!(node = %task.node.uuid, error = %e.chain(), "{msg}");
            task.node.last_error = Some(msg);
        }
    }
}
