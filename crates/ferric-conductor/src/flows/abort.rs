//! `abort` and `unhold`: the two verbs that act on a flow already under
//! way, in a wait or hold state.

use ferric_core::{Event, ProvisionState as S};

use super::steps::{self, StepKind};
use crate::error::{ConductorError, Result};
use crate::task::Task;

pub(crate) async fn start_abort(task: Task) -> Result<()> {
    match task.node.provision_state {
        S::CleanWait | S::CleanHold => abort_flow(task, StepKind::Clean).await,
        S::DeployWait | S::DeployHold => abort_flow(task, StepKind::Deploy).await,
        S::ServiceWait | S::ServiceHold => abort_flow(task, StepKind::Service).await,
        S::InspectWait => abort_inspection(task).await,
        S::RescueWait => abort_rescue(task).await,
        S::ServiceFailed => abort_failed_service(task).await,
        state => {
            let e = ConductorError::InvalidStateRequested {
                action: "abort".into(),
                node: task.node.uuid.to_string(),
                state: state.to_string(),
            };
            super::refuse(task, e).await
        }
    }
}

/// Aborts a waiting or held step flow. A step that cannot be interrupted
/// is marked to abort once it ends, as Ironic does.
async fn abort_flow(mut task: Task, kind: StepKind) -> Result<()> {
    let current = kind.current(&mut task).clone();
    if !super::step_abortable(&current) {
        kind.current(&mut task)
            .insert("abort_after".into(), serde_json::Value::Bool(true));
        task.release().await?;
        return Ok(());
    }
    abort_now(task, kind).await
}

/// Ends a waiting or held step flow by request, now: the interface cleans
/// up, the node lands in the flow's failed state saying so. Also where a
/// flow marked `abort_after` goes once its step has ended.
pub(crate) async fn abort_now(mut task: Task, kind: StepKind) -> Result<()> {
    let current = kind.current(&mut task).clone();
    let msg = format!(
        "By request, the {} operation was aborted{}",
        flow_noun(kind),
        super::step_suffix(&current)
    );
    task.driver()?;
    let cleanup = match kind {
        StepKind::Clean => {
            task.call("deploy.tear_down_cleaning", |d, t| {
                d.deploy.tear_down_cleaning(t)
            })
            .await
        }
        StepKind::Deploy => {
            task.call("deploy.clean_up", |d, t| d.deploy.clean_up(t))
                .await
        }
        StepKind::Service => Ok(()),
    };
    kind.current(&mut task).clear();
    task.node.last_error = Some(match cleanup {
        Ok(()) => msg,
        Err(e) => format!("{msg}. Also failed to clean up after aborting the operation: {e}"),
    });
    match kind {
        StepKind::Clean => super::wipe_cleaning_info(&mut task),
        StepKind::Deploy => super::wipe_deploy_info(&mut task),
        StepKind::Service => super::wipe_service_info(&mut task),
    }
    match kind {
        StepKind::Clean => {
            let manual = task.node.target_provision_state == Some(S::Manageable);
            task.fire(Event::Abort, manual.then_some(S::Manageable))?;
        }
        StepKind::Deploy => task.fire(Event::Abort, None)?,
        StepKind::Service => {
            task.fire(Event::Abort, None)?;
            task.fire(Event::Abort, None)?;
        }
    }
    task.release().await?;
    Ok(())
}

fn flow_noun(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Clean => "clean",
        StepKind::Deploy => "deploy",
        StepKind::Service => "service",
    }
}

async fn abort_inspection(mut task: Task) -> Result<()> {
    task.driver()?;
    if let Err(e) = task.call("inspect.abort", |d, t| d.inspect.abort(t)).await {
        let e = ConductorError::from_driver(&task.node.driver, e);
        return super::refuse(task, e).await;
    }
    task.node.last_error = Some("Inspection was aborted by request.".into());
    task.fire(Event::Abort, None)?;
    task.release().await?;
    Ok(())
}

async fn abort_rescue(mut task: Task) -> Result<()> {
    super::rescue::forget_rescue_password(&mut task);
    task.remove_internal("agent_url");
    task.driver()?;
    if let Err(e) = task
        .call("rescue.clean_up", |d, t| d.rescue.clean_up(t))
        .await
    {
        let msg = "Failed to clean up rescue after aborting the operation".to_owned();
        tracing::warn!(node = %task.node.uuid, error = %e, "{msg}");
        task.node.maintenance = true;
        task.node.maintenance_reason = Some(msg.clone());
        task.node.fault = Some("rescue abort failure".into());
        task.node.last_error = Some(msg);
    }
    task.fire(Event::Abort, None)?;
    task.release().await?;
    Ok(())
}

async fn abort_failed_service(mut task: Task) -> Result<()> {
    if task.node.maintenance {
        let msg = format!(
            "Can not abort service on node \"{}\" while it is in maintenance mode. Please remove the node \
             from maintenance prior to issuing the request to abort the service operation.",
            task.node.uuid
        );
        return super::refuse(task, ConductorError::InvalidState(msg)).await;
    }
    task.node.service_step.clear();
    super::wipe_service_info(&mut task);
    task.fire(Event::Abort, None)?;
    task.release().await?;
    Ok(())
}

/// `unhold`: a held flow goes back to waiting; with no agent to call back,
/// the conductor resumes it at the step after the hold.
pub(crate) async fn start_unhold(mut task: Task) -> Result<()> {
    let kind = match task.node.provision_state {
        S::CleanHold => StepKind::Clean,
        S::DeployHold => StepKind::Deploy,
        S::ServiceHold => StepKind::Service,
        state => {
            let e = ConductorError::InvalidStateRequested {
                action: "unhold".into(),
                node: task.node.uuid.to_string(),
                state: state.to_string(),
            };
            return super::refuse(task, e).await;
        }
    };
    let slot = match task.inner.worker_slot() {
        Ok(s) => s,
        Err(e) => return super::no_free_worker(task, e).await,
    };
    let target = task.node.target_provision_state;
    task.fire(Event::Unhold, target)?;
    task.save().await?;
    let inner = task.inner.clone();
    inner.spawn_flow(slot, "resume after hold", resume(task, kind, target));
    Ok(())
}

async fn resume(mut task: Task, kind: StepKind, target: Option<S>) -> Result<()> {
    task.fire(Event::Resume, target)?;
    task.save().await?;
    let next = steps::next_index(&mut task, kind);
    match kind {
        StepKind::Clean => super::clean::continue_from(task, next).await,
        StepKind::Deploy => super::deploy::continue_from(task, next).await,
        StepKind::Service => super::service::continue_from(task, next).await,
    }
}
