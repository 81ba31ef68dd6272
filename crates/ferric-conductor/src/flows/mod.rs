//! Provisioning flows, one module per family of states. Each has a `start_*`
//! that checks the request under the node's lock and makes the first
//! transition, and a worker half that does the slow part and releases the
//! node when it reaches a stable, waiting or failed state.

pub(crate) mod abort;
pub(crate) mod clean;
pub(crate) mod deploy;
pub(crate) mod heartbeat;
pub(crate) mod inspect;
pub(crate) mod rescue;
pub(crate) mod service;
pub(crate) mod steps;
pub(crate) mod teardown;
pub(crate) mod verify;

use ferric_core::{Event, ProvisionState};
use ferric_drivers::DriverError;
use serde_json::Value;

use crate::error::{ConductorError, Result};
use crate::task::Task;

/// Releases the lock and returns the error: for refusals made under the
/// lock before anything changed.
pub(crate) async fn refuse<T>(task: Task, e: ConductorError) -> Result<T> {
    task.release_unchanged().await?;
    Err(e)
}

/// Releases the lock and returns the error when no worker is free to run
/// the flow: the node stays as it was, but, as with Ironic's spawn error
/// handlers, `last_error` says why nothing happened.
pub(crate) async fn no_free_worker<T>(mut task: Task, e: ConductorError) -> Result<T> {
    task.node.last_error = Some("No free conductor workers available".into());
    task.release().await?;
    Err(e)
}

/// Starts an asynchronous flow: takes a worker slot, applies `prepare`,
/// makes the first transition (clearing `last_error`, as Ironic does when
/// work starts), stores it, and runs `flow` on the worker pool. Without a
/// free worker the node is left as it was, saying so in `last_error`.
pub(crate) async fn begin<Fut>(
    mut task: Task,
    event: Event,
    target: Option<ProvisionState>,
    what: &'static str,
    prepare: impl FnOnce(&mut Task),
    flow: impl FnOnce(Task) -> Fut,
) -> Result<()>
where
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let slot = match task.inner.worker_slot() {
        Ok(s) => s,
        Err(e) => return no_free_worker(task, e).await,
    };
    prepare(&mut task);
    task.fire(event, target)?;
    task.node.last_error = None;
    task.save().await?;
    let inner = task.inner.clone();
    inner.spawn_flow(slot, what, flow(task));
    Ok(())
}

/// Maps a driver's validation error to the 400 Ironic gives, prefixed.
pub(crate) fn invalid(prefix: &str, e: DriverError) -> ConductorError {
    ConductorError::Invalid(format!("{prefix}{e}"))
}

/// Clears the per-flow keys Ironic keeps in `driver_internal_info` while
/// a flow runs; the list key stays, set to null, as Ironic leaves it. The
/// agent's address and token go too, unless fast track keeps the agent
/// for the next flow.
fn wipe_internal(task: &mut Task, list_key: &str, keys: &[&str]) {
    task.set_internal(list_key, Value::Null);
    for key in keys {
        task.remove_internal(key);
    }
    for key in [
        "skip_current_clean_step",
        "skip_current_deploy_step",
        "skip_current_service_step",
        "cleaning_reboot",
        "deployment_reboot",
        "servicing_reboot",
        "step_interrupted",
    ] {
        task.remove_internal(key);
    }
    wipe_agent(task);
}

/// Forgets the agent's address, token and certificate unless fast track
/// keeps the agent for the next flow (Ironic's `wipe_token_and_url`).
/// Set `last_error` first: a failed flow keeps no agent.
pub(crate) fn wipe_agent(task: &mut Task) {
    if !fast_track_able(task) {
        for key in ["agent_url", "agent_secret_token", "agent_verify_ca"] {
            task.remove_internal(key);
        }
    }
}

/// Whether a live agent may be kept from one flow to the next (Ironic's
/// `fast_track_able`): fast track is on and nothing went wrong.
pub(crate) fn fast_track_able(task: &Task) -> bool {
    task.inner.registry.config().deploy.fast_track && task.node.last_error.is_none()
}

pub(crate) fn wipe_deploy_info(task: &mut Task) {
    wipe_internal(
        task,
        "deploy_steps",
        &[
            "user_deploy_steps",
            "agent_cached_deploy_steps",
            "deploy_step_index",
            "steps_validated",
            "image_source",
            "agent_start_attempted",
        ],
    );
}

pub(crate) fn wipe_cleaning_info(task: &mut Task) {
    wipe_internal(
        task,
        "clean_steps",
        &[
            "agent_cached_clean_steps",
            "clean_step_index",
            "cleaning_disable_ramdisk",
            "steps_validated",
            "declarative_cleaning",
            "agent_start_attempted",
        ],
    );
}

pub(crate) fn wipe_service_info(task: &mut Task) {
    wipe_internal(
        task,
        "service_steps",
        &[
            "service_step_index",
            "service_disable_ramdisk",
            "steps_validated",
            "agent_start_attempted",
        ],
    );
}

/// Whether the node's current step (of `field`) may be aborted at once.
/// The reserved `hold` and `wait` steps do no work that an abort could
/// cut short, and nothing ends them but `unhold`, a timeout or the abort
/// itself, so they always may.
pub(crate) fn step_abortable(step: &ferric_core::JsonObject) -> bool {
    step.is_empty()
        || step.get("abortable") == Some(&Value::Bool(true))
        || matches!(
            step.get("step").and_then(Value::as_str),
            Some("hold" | "wait")
        )
}

/// `" during or after the completion of step "iface.step""`, or nothing.
pub(crate) fn step_suffix(step: &ferric_core::JsonObject) -> String {
    if step.is_empty() {
        return String::new();
    }
    let iface = step.get("interface").and_then(Value::as_str).unwrap_or("");
    let name = step.get("step").and_then(Value::as_str).unwrap_or("");
    format!(" during or after the completion of step \"{iface}.{name}\"")
}
