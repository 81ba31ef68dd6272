//! `manage`: from `enroll` through `verifying` (can Ferric reach the BMC?)
//! to `manageable`; from the other states straight to `manageable`.

use ferric_core::{Event, ProvisionState};

use crate::error::Result;
use crate::task::Task;
use ferric_core::InterfaceKind;

pub(crate) async fn start_manage(mut task: Task) -> Result<()> {
    if task.node.provision_state != ProvisionState::Enroll {
        task.fire(Event::Manage, None)?;
        task.release().await?;
        return Ok(());
    }
    super::begin(task, Event::Manage, None, "verify", |_| {}, verify).await
}

/// Checks the power interface's settings and reads the power state.
async fn verify(mut task: Task) -> Result<()> {
    let uuid = task.node.uuid;
    task.driver()?;
    let outcome = match task.validate(InterfaceKind::Power).await {
        Err(e) => Err(format!(
            "Failed to validate power driver interface for node {uuid}. Error: {e}"
        )),
        Ok(()) => task
            .call("power.get_power_state", |d, t| d.power.get_power_state(t))
            .await
            .map_err(|e| format!("Failed to get power state for node {uuid}. Error: {e}")),
    };
    match outcome {
        Ok(power) => {
            task.node.power_state = Some(power);
            task.fire(Event::Done, None)?;
        }
        Err(msg) => {
            task.node.last_error = Some(msg);
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}
