//! Cleaning: automated (on `provide` and after undeploy, ending in
//! `available`) and manual (`clean` with steps, ending in `manageable`).

use ferric_core::{Event, JsonObject, ProvisionState};
use serde_json::json;

use super::steps::{self, StepKind, StepsEnd};
use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

/// `provide`: manageable → cleaning → available.
pub(crate) async fn start_provide(task: Task) -> Result<()> {
    if task.node.retired {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeIsRetired {
                op: "providing",
                node,
            },
        )
        .await;
    }
    if task.node.maintenance && !task.inner.config.allow_provisioning_in_maintenance {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeInMaintenance {
                op: "providing",
                node,
            },
        )
        .await;
    }
    super::begin(
        task,
        Event::Provide,
        None,
        "automated clean",
        |_| {},
        |t| run(t, None),
    )
    .await
}

/// `clean`: manageable → cleaning → manageable, running the user's steps.
pub(crate) async fn start_manual(
    mut task: Task,
    user_steps: Vec<JsonObject>,
    disable_ramdisk: Option<bool>,
) -> Result<()> {
    if task.node.maintenance {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeInMaintenance {
                op: "cleaning",
                node,
            },
        )
        .await;
    }
    if let Err(e) = validate_for_cleaning(&mut task).await {
        return super::refuse(task, ConductorError::Invalid(e)).await;
    }
    let steps = Some((user_steps, disable_ramdisk));
    let target = Some(ProvisionState::Manageable);
    super::begin(
        task,
        Event::Clean,
        target,
        "manual clean",
        |_| {},
        |t| run(t, steps),
    )
    .await
}

async fn validate_for_cleaning(task: &mut Task) -> Result<(), String> {
    let uuid = task.node.uuid;
    task.driver().map_err(|e| e.to_string())?;
    let prefix = |e: ferric_drivers::DriverError| {
        format!("Validation of node {uuid} for cleaning failed: {e}")
    };
    task.validate(InterfaceKind::Power).await.map_err(prefix)?;
    task.validate(InterfaceKind::Network)
        .await
        .map_err(prefix)?;
    Ok(())
}

fn is_manual(task: &Task) -> bool {
    task.node.target_provision_state == Some(ProvisionState::Manageable)
}

/// Runs cleaning from the start. `manual` carries the user's steps.
///
/// The user's steps are stored before the ramdisk is prepared: when
/// preparing means booting an agent, the node waits, and its steps are
/// planned (and checked against what the agent offers) on the agent's
/// first heartbeat, from what was stored.
pub(crate) async fn run(
    mut task: Task,
    manual: Option<(Vec<JsonObject>, Option<bool>)>,
) -> Result<()> {
    if manual.is_none() && !automated_clean_enabled(&task) {
        task.node.clean_step.clear();
        task.fire(Event::Done, None)?;
        task.release().await?;
        return Ok(());
    }
    if let Err(msg) = validate_for_cleaning(&mut task).await {
        return fail(task, msg).await;
    }
    super::wipe_cleaning_info(&mut task);
    if let Some((user, disable_ramdisk)) = manual {
        let user = user.into_iter().map(serde_json::Value::Object).collect();
        task.set_internal("clean_steps", serde_json::Value::Array(user));
        task.set_internal("cleaning_disable_ramdisk", json!(disable_ramdisk));
        task.set_internal("declarative_cleaning", json!(true));
    }
    task.save().await?;
    let prepared = task
        .call("deploy.prepare_cleaning", |d, t| {
            d.deploy.prepare_cleaning(t)
        })
        .await;
    match prepared {
        Ok(ferric_drivers::Outcome::Done) => start_steps(task).await,
        Ok(_) => steps::park(task, &StepsEnd::Wait).await,
        Err(e) => {
            let msg = format!(
                "Failed to prepare node {} for cleaning: {e}",
                task.node.uuid
            );
            fail(task, msg).await
        }
    }
}

/// Plans the clean steps, now that every interface (and the agent, if the
/// flow boots one) can say which it offers, stores them and runs them from
/// the first.
pub(crate) async fn start_steps(mut task: Task) -> Result<()> {
    let planned = plan(&task);
    match planned {
        Ok(steps) => {
            steps::store(&mut task, StepKind::Clean, steps);
            continue_from(task, 0).await
        }
        Err(msg) => fail(task, msg).await,
    }
}

/// The automated steps, or the user's stored ones checked against what the
/// driver offers.
fn plan(task: &Task) -> Result<Vec<JsonObject>, String> {
    let driver = task.driver().map_err(|e| e.to_string())?;
    if task.internal("declarative_cleaning") != Some(&json!(true)) {
        return Ok(steps::automated_steps(&driver, &task.node, StepKind::Clean));
    }
    let user: Vec<JsonObject> = task
        .internal("clean_steps")
        .and_then(serde_json::Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default();
    steps::validate_user_steps(&driver, &task.node, StepKind::Clean, &user)
        .map_err(|e| format!("Cannot clean node {}: {e}", task.node.uuid))
}

fn automated_clean_enabled(task: &Task) -> bool {
    task.node
        .automated_clean
        .unwrap_or(task.inner.config.automated_clean)
}

/// Runs the stored clean steps from `start` to the end, a wait, a hold or
/// a failure.
pub(crate) async fn continue_from(mut task: Task, start: usize) -> Result<()> {
    match steps::run_steps(&mut task, StepKind::Clean, start).await? {
        StepsEnd::Done => finish(task).await,
        StepsEnd::Failed(msg) => fail(task, msg).await,
        parked => steps::park(task, &parked).await,
    }
}

async fn finish(mut task: Task) -> Result<()> {
    task.node.clean_step.clear();
    super::wipe_cleaning_info(&mut task);
    task.driver()?;
    if let Err(e) = task
        .call("deploy.tear_down_cleaning", |d, t| {
            d.deploy.tear_down_cleaning(t)
        })
        .await
    {
        let msg = format!(
            "Failed to tear down from cleaning for node {}, reason: {e}",
            task.node.uuid
        );
        return fail(task, msg).await;
    }
    let event = if is_manual(&task) || task.node.retired {
        Event::Manage
    } else {
        Event::Done
    };
    task.fire(event, None)?;
    task.release().await?;
    Ok(())
}

/// Ironic's cleaning error handler: a failure during a step puts the node
/// in maintenance, since the disk may be half-erased.
pub(crate) async fn fail(mut task: Task, msg: String) -> Result<()> {
    tracing::warn!(node = %task.node.uuid, error = %msg, "cleaning failed");
    let mut msg = msg;
    if !task.node.clean_step.is_empty() {
        task.node.maintenance = true;
        task.node.fault = Some("clean failure".into());
        if task.node.maintenance_reason.is_none() {
            task.node.maintenance_reason = Some(msg.clone());
        }
    }
    if task.driver().is_ok() {
        if let Err(e) = task
            .call("deploy.tear_down_cleaning", |d, t| {
                d.deploy.tear_down_cleaning(t)
            })
            .await
        {
            msg.push_str(&format!(
                ". Also Failed to tear down cleaning on node {}, reason: {e}",
                task.node.uuid
            ));
        }
    }
    task.node.clean_step.clear();
    task.remove_internal("clean_step_index");
    task.node.last_error = Some(msg);
    super::wipe_agent(&mut task);
    let target = is_manual(&task).then_some(ProvisionState::Manageable);
    task.fire(Event::Fail, target)?;
    task.release().await?;
    Ok(())
}
