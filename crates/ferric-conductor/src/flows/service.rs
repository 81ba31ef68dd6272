//! Servicing: active → servicing → active, running the user's service
//! steps on a deployed node.

use ferric_core::{Event, JsonObject, ProvisionState};
use serde_json::json;

use super::steps::{self, StepKind, StepsEnd};
use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

pub(crate) async fn start(
    mut task: Task,
    user_steps: Vec<JsonObject>,
    disable_ramdisk: Option<bool>,
) -> Result<()> {
    if task.node.maintenance {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeInMaintenance {
                op: "service",
                node,
            },
        )
        .await;
    }
    let uuid = task.node.uuid;
    let validated = async {
        task.driver()?;
        let prefix = format!("Validation of node {uuid} for servicing failed: ");
        task.validate(InterfaceKind::Power)
            .await
            .map_err(|e| super::invalid(&prefix, e))?;
        task.validate(InterfaceKind::Network)
            .await
            .map_err(|e| super::invalid(&prefix, e))
    }
    .await;
    if let Err(e) = validated {
        return super::refuse(task, e).await;
    }
    let target = Some(ProvisionState::Active);
    let flow = |t| run(t, user_steps, disable_ramdisk);
    super::begin(task, Event::Service, target, "service", |_| {}, flow).await
}

async fn run(
    mut task: Task,
    user_steps: Vec<JsonObject>,
    disable_ramdisk: Option<bool>,
) -> Result<()> {
    super::wipe_service_info(&mut task);
    task.set_internal("service_disable_ramdisk", json!(disable_ramdisk));
    let driver = task.driver()?;
    let steps =
        match steps::validate_user_steps(&driver, &task.node, StepKind::Service, &user_steps) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("Cannot service node {}: {e}", task.node.uuid);
                return fail(task, msg).await;
            }
        };
    steps::store(&mut task, StepKind::Service, steps);
    continue_from(task, 0).await
}

/// Runs the stored service steps from `start` to the end, a wait, a hold
/// or a failure.
pub(crate) async fn continue_from(mut task: Task, start: usize) -> Result<()> {
    match steps::run_steps(&mut task, StepKind::Service, start).await? {
        StepsEnd::Done => {
            task.node.service_step.clear();
            super::wipe_service_info(&mut task);
            task.fire(Event::Done, None)?;
            task.release().await?;
            Ok(())
        }
        StepsEnd::Failed(msg) => fail(task, msg).await,
        parked => steps::park(task, &parked).await,
    }
}

/// Ironic's servicing error handler.
pub(crate) async fn fail(mut task: Task, msg: String) -> Result<()> {
    tracing::warn!(node = %task.node.uuid, error = %msg, "servicing failed");
    if !task.node.service_step.is_empty() {
        task.node.maintenance = true;
        task.node.fault = Some("service failure".into());
        if task.node.maintenance_reason.is_none() {
            task.node.maintenance_reason = Some(msg.clone());
        }
    }
    task.node.service_step.clear();
    task.node.last_error = Some(msg);
    super::wipe_agent(&mut task);
    task.fire(Event::Fail, None)?;
    task.release().await?;
    Ok(())
}
