//! Power actions: the `PUT /states/power` verb and the power changes flows
//! make on the way (Ironic's `node_power_action`).

use std::time::Duration;

use ferric_core::{naive_timestamp, Ident, NodeIdent, PowerState, ProvisionState};
use serde_json::json;

use crate::error::{ConductorError, Result};
use crate::task::Task;
use crate::Conductor;
use ferric_core::InterfaceKind;

/// A requested power change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerRequest {
    pub target: PowerState,
    pub timeout: Option<Duration>,
}

/// What the node is heading to while `target` is being applied.
fn settled(target: PowerState) -> PowerState {
    match target {
        PowerState::On | PowerState::Rebooting | PowerState::SoftRebooting => PowerState::On,
        _ => PowerState::Off,
    }
}

impl Conductor {
    /// Starts a power change; returns once `target_power_state` is stored.
    pub async fn change_power_state(&self, ident: &NodeIdent, req: PowerRequest) -> Result<()> {
        let node = self.inner.store.get_node(ident).await?;
        let mut task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        if let Err(e) = check(&mut task, req).await {
            return crate::flows::refuse(task, e).await;
        }
        let slot = match task.inner.worker_slot() {
            Ok(s) => s,
            Err(e) => return crate::flows::no_free_worker(task, e).await,
        };
        task.node.target_power_state = Some(settled(req.target));
        task.node.last_error = None;
        task.save().await?;
        let inner = task.inner.clone();
        inner.spawn_flow(slot, "power", async move {
            let timeout = req.timeout.or_else(|| soft_timeout(&task, req.target));
            let _ = node_power_action(&mut task, req.target, timeout).await?;
            task.release().await?;
            Ok(())
        });
        Ok(())
    }
}

async fn check(task: &mut Task, req: PowerRequest) -> Result<()> {
    if task.node.disable_power_off && settled(req.target) == PowerState::Off {
        return Err(ConductorError::PowerStateFailure(req.target.to_string()));
    }
    let driver = task.driver()?;
    task.validate(InterfaceKind::Power)
        .await
        .map_err(|e| ConductorError::from_driver(&task.node.driver, e))?;
    if !driver.power.supported_power_states().contains(&req.target) {
        return Err(ConductorError::Invalid(format!(
            "The driver {} does not support the power state, {}",
            task.node.driver, req.target
        )));
    }
    Ok(())
}

fn soft_timeout(task: &Task, target: PowerState) -> Option<Duration> {
    matches!(target, PowerState::SoftPowerOff | PowerState::SoftRebooting)
        .then(|| crate::config::secs(task.inner.config.soft_power_off_timeout))
}

/// Applies `target` through the node's power interface and records the
/// result on the (locked) node. The outer error is storage; the inner one
/// is the power failure, already written to `last_error`.
pub(crate) async fn node_power_action(
    task: &mut Task,
    target: PowerState,
    timeout: Option<Duration>,
) -> Result<Result<(), String>> {
    task.driver()?;
    let new_state = settled(target);
    if matches!(
        target,
        PowerState::On | PowerState::Off | PowerState::SoftPowerOff
    ) {
        match task
            .call("power.get_power_state", |d, t| d.power.get_power_state(t))
            .await
        {
            Ok(current) if current == new_state => {
                task.node.last_error = None;
                task.node.power_state = Some(current);
                task.node.target_power_state = None;
                if new_state == PowerState::Off {
                    ferric_drivers::forget_agent(&mut task.node);
                }
                task.save().await?;
                return Ok(Ok(()));
            }
            Ok(_) => {}
            Err(e) => {
                let msg = format!("Failed to change power state to '{new_state}': {e}");
                return record_failure(task, msg).await;
            }
        }
    }
    task.node.target_power_state = Some(new_state);
    if !is_failure_state(task.node.provision_state) {
        task.node.last_error = None;
    }
    let now = naive_timestamp(task.now());
    task.set_internal("last_power_state_change", json!(now));
    if target != PowerState::On {
        ferric_drivers::forget_agent(&mut task.node);
    }
    task.save().await?;
    let timeout = timeout.or_else(|| {
        Some(crate::config::secs(
            task.inner.config.power_state_change_timeout,
        ))
    });
    let limit = call_limit(task, timeout);
    let result = match target {
        PowerState::Rebooting => {
            task.call_within("power.reboot", limit, |d, t| d.power.reboot(t, timeout))
                .await
        }
        _ => {
            task.call_within("power.set_power_state", limit, |d, t| {
                d.power.set_power_state(t, target, timeout)
            })
            .await
        }
    };
    match result {
        Ok(()) => {
            task.node.power_state = Some(new_state);
            task.node.target_power_state = None;
            task.save().await?;
            Ok(Ok(()))
        }
        Err(e) => {
            let msg = format!("Failed to change power state to '{new_state}' by '{target}': {e}");
            record_failure(task, msg).await
        }
    }
}

/// A power change given its own timeout may take that long, and a margin
/// for the BMC to answer.
fn call_limit(task: &Task, timeout: Option<Duration>) -> Duration {
    let default = task.inner.call_timeout();
    timeout.map_or(default, |t| default.max(t + Duration::from_secs(30)))
}

async fn record_failure(task: &mut Task, msg: String) -> Result<Result<(), String>> {
    tracing::warn!(node = %task.node.uuid, error = %msg, "power action failed");
    task.node.target_power_state = None;
    task.node.last_error = Some(msg.clone());
    task.save().await?;
    Ok(Err(msg))
}

fn is_failure_state(state: ProvisionState) -> bool {
    use ProvisionState as S;
    matches!(
        state,
        S::DeployFailed
            | S::CleanFailed
            | S::InspectFailed
            | S::RescueFailed
            | S::UnrescueFailed
            | S::AdoptFailed
            | S::ServiceFailed
    )
}
