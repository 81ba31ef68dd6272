//! What an agent's heartbeat does to the flow waiting on it, as Ironic's
//! `HeartbeatMixin`: the agent is recorded (which also restarts the wait's
//! timeout); in a wait state the deploy interface says how the agent's
//! work goes, and the flow goes on, fails, or keeps waiting.

use ferric_core::{Event, ProvisionState as S};
use ferric_drivers::{AgentProgress, Heartbeat};
use serde_json::Value;

use super::steps::{self, StepKind};
use crate::error::Result;
use crate::task::Task;

/// The states a heartbeat is accepted in without fast track (Ironic's
/// `HEARTBEAT_ALLOWED`); fast track adds the idle ones.
const ALLOWED: &[S] = &[
    S::DeployWait,
    S::CleanWait,
    S::RescueWait,
    S::ServiceWait,
    S::Deploying,
    S::Cleaning,
    S::Rescuing,
    S::DeployHold,
    S::CleanHold,
    S::Servicing,
    S::ServiceHold,
];

fn allowed(task: &Task) -> bool {
    let state = task.node.provision_state;
    ALLOWED.contains(&state)
        || (task.inner.registry.config().deploy.fast_track
            && matches!(state, S::Manageable | S::Available | S::Enroll))
}

/// Records the heartbeat and, if a flow waits on the agent, carries the
/// flow on in a worker. Returns once the heartbeat is stored.
pub(crate) async fn record_and_continue(mut task: Task, heartbeat: Heartbeat) -> Result<()> {
    let state = task.node.provision_state;
    if !allowed(&task) {
        tracing::warn!(node = %task.node.uuid, %state, "heartbeat in a state that expects no agent; not taking any action");
        return task.release_unchanged().await;
    }
    let now = task.now();
    crate::agent::record(&mut task.node, &heartbeat, now);
    if state.is_waiting() {
        task.node.provision_updated_at = Some(now);
    }
    let kind = match state {
        S::DeployWait => StepKind::Deploy,
        S::CleanWait => StepKind::Clean,
        S::ServiceWait => StepKind::Service,
        _ => {
            task.release().await?;
            return Ok(());
        }
    };
    let slot = match task.inner.worker_slot() {
        Ok(s) => s,
        Err(e) => {
            task.release().await?;
            return Err(e);
        }
    };
    task.save().await?;
    let inner = task.inner.clone();
    if task.node.maintenance {
        inner.spawn_flow(slot, "heartbeat in maintenance", in_maintenance(task, kind));
    } else {
        inner.spawn_flow(slot, "heartbeat", carry_on(task, kind));
    }
    Ok(())
}

/// A node in maintenance gets no work done; with provisioning in
/// maintenance refused, its flow fails.
async fn in_maintenance(task: Task, kind: StepKind) -> Result<()> {
    if task.inner.config.allow_provisioning_in_maintenance {
        tracing::warn!(node = %task.node.uuid, "heartbeat from a node in maintenance; not taking any action");
        task.release().await?;
        return Ok(());
    }
    let msg = match kind {
        StepKind::Clean => "Cleaning aborted as node is in maintenance mode",
        StepKind::Deploy => "Deploy aborted as node is in maintenance mode",
        StepKind::Service => "Service aborted as node is in maintenance mode",
    };
    fail(task, kind, msg.to_owned()).await
}

/// Asks the deploy interface how the agent's work goes and acts on it.
async fn carry_on(mut task: Task, kind: StepKind) -> Result<()> {
    if paused_by_reserved_step(&mut task, kind) {
        task.release().await?;
        return Ok(());
    }
    let flow = kind.flow();
    let progress = task
        .call("deploy.heartbeat", |d, t| d.deploy.heartbeat(t, flow))
        .await;
    let interrupted = task.internal("step_interrupted") == Some(&Value::Bool(true));
    if progress.is_ok() {
        task.remove_internal("step_interrupted");
    }
    match progress {
        Err(e) if e.is_transient() => {
            tracing::warn!(node = %task.node.uuid, error = %e.chain(), "could not read the agent's progress; trying again at the next heartbeat");
            task.release().await?;
            Ok(())
        }
        Err(e) => {
            let what = match kind {
                StepKind::Clean => "Node failed to check cleaning progress",
                StepKind::Deploy => "Failed to process the next deploy step",
                StepKind::Service => "Node failed to check service progress",
            };
            fail(task, kind, format!("{what}: {e}")).await
        }
        Ok(AgentProgress::Idle)
            if interrupted || task.internal(kind.skip_key()) == Some(&Value::Bool(false)) =>
        {
            rerun_current(task, kind).await
        }
        Ok(AgentProgress::Running | AgentProgress::Idle) => {
            task.release().await?;
            Ok(())
        }
        Ok(AgentProgress::Booted) => {
            // The agent holds no result, yet the conductor stopped at a step
            // after the agent was up: the step was never handed over. Unless
            // the step had the machine rebooted, it runs again.
            if interrupted
                && !kind.current(&mut task).is_empty()
                && task.internal(kind.reboot_key()).is_none()
            {
                task.set_internal(kind.skip_key(), Value::Bool(false));
            }
            booted(task, kind).await
        }
        Ok(AgentProgress::StepDone) => step_done(task, kind).await,
        Ok(AgentProgress::RebootRequested) => reboot_for_step(task, kind).await,
        Ok(AgentProgress::StepFailed(msg)) => fail(task, kind, msg).await,
    }
}

/// `hold` and `wait` steps end by `unhold`, their time or a timeout, never
/// by an agent.
fn paused_by_reserved_step(task: &mut Task, kind: StepKind) -> bool {
    matches!(
        kind.current(task).get("step").and_then(Value::as_str),
        Some("hold" | "wait")
    )
}

/// The agent has just booted: it says which steps it offers, then the flow
/// starts (cleaning and servicing plan their steps now) or goes on past the
/// step that booted or rebooted it.
async fn booted(mut task: Task, kind: StepKind) -> Result<()> {
    task.remove_internal(kind.reboot_key());
    let flow = kind.flow();
    let refreshed = task
        .call("deploy.refresh_steps", |d, t| {
            d.deploy.refresh_steps(t, flow)
        })
        .await;
    if let Err(e) = refreshed {
        if matches!(e, ferric_drivers::DriverError::Transient { .. }) {
            tracing::warn!(node = %task.node.uuid, error = %e, "the agent is busy or out of reach; its steps are read at the next heartbeat");
            task.release().await?;
            return Ok(());
        }
        let what = match kind {
            StepKind::Clean => "Node failed to start the first cleaning step",
            StepKind::Deploy => "Failed to load in-band deploy steps",
            StepKind::Service => "Node failed to start the first service step",
        };
        return fail(task, kind, format!("{what}: {e}")).await;
    }
    if kind.current(&mut task).is_empty() {
        let target = task.node.target_provision_state;
        task.fire(Event::Resume, target)?;
        task.save().await?;
        return match kind {
            StepKind::Clean => super::clean::start_steps(task).await,
            StepKind::Service => super::service::continue_from(task, 0).await,
            StepKind::Deploy => {
                let msg = "The deploy has no step under way".to_owned();
                super::deploy::fail(task, msg).await
            }
        };
    }
    step_done(task, kind).await
}

/// The current step ended well: on to the next (or the same one, if it
/// asked to run again), unless an abort waited for it to end.
async fn step_done(mut task: Task, kind: StepKind) -> Result<()> {
    if kind.current(&mut task).get("abort_after") == Some(&Value::Bool(true)) {
        tracing::info!(node = %task.node.uuid, "the step marked to abort after it has ended; aborting");
        return super::abort::abort_now(task, kind).await;
    }
    // Once the agent is up (a fresh boot, or one kept by fast track) its
    // own deploy steps are known: the plan is made again with them.
    if steps::needs_replan(&task, kind) {
        if let Err(msg) = super::deploy::replan(&mut task).await {
            return super::deploy::fail(task, msg).await;
        }
    }
    let next = steps::next_index(&mut task, kind);
    resume(task, kind, next).await
}

/// The agent never got the step under way (the conductor stopped between
/// storing it and handing it over, or the agent was busy): it runs again.
async fn rerun_current(mut task: Task, kind: StepKind) -> Result<()> {
    task.remove_internal(kind.skip_key());
    let current = task
        .internal(kind.index_key())
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0);
    tracing::info!(node = %task.node.uuid, step = current, "the agent never got the step under way; running it again");
    resume(task, kind, current).await
}

async fn resume(mut task: Task, kind: StepKind, from: usize) -> Result<()> {
    let target = task.node.target_provision_state;
    task.fire(Event::Resume, target)?;
    task.save().await?;
    match kind {
        StepKind::Clean => super::clean::continue_from(task, from).await,
        StepKind::Deploy => super::deploy::continue_from(task, from).await,
        StepKind::Service => super::service::continue_from(task, from).await,
    }
}

/// The step asked for a reboot once done: the node boots the ramdisk again
/// and the flow goes on when its agent is back (Ironic's
/// `reboot_to_finish_step`).
async fn reboot_for_step(mut task: Task, kind: StepKind) -> Result<()> {
    let prepared = task
        .call("boot.prepare_ramdisk", |d, t| d.boot.prepare_ramdisk(t))
        .await
        .map_err(|e| e.to_string());
    let rebooted = match prepared {
        Ok(()) => {
            crate::power::node_power_action(&mut task, ferric_core::PowerState::Rebooting, None)
                .await?
        }
        Err(e) => Err(e),
    };
    if let Err(e) = rebooted {
        let msg = format!(
            "Reboot requested by {} step {} failed for node {}: {e}",
            kind.name(),
            ferric_core::step_repr(kind.current(&mut task)),
            task.node.uuid
        );
        return fail(task, kind, msg).await;
    }
    task.set_internal(kind.reboot_key(), Value::Bool(true));
    task.release().await?;
    Ok(())
}

async fn fail(task: Task, kind: StepKind, msg: String) -> Result<()> {
    match kind {
        StepKind::Clean => super::clean::fail(task, msg).await,
        StepKind::Deploy => super::deploy::fail(task, msg).await,
        StepKind::Service => super::service::fail(task, msg).await,
    }
}
