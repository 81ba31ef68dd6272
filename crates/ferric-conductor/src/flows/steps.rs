//! Steps: the unit of work of cleaning, deploying and servicing.
//!
//! A flow computes its list of steps once, stores it in
//! `driver_internal_info` (`clean_steps`, `deploy_steps`, `service_steps`)
//! and runs it from an index, so a flow that waited or was held resumes
//! where it stopped. The current step is shown in the node's `clean_step`,
//! `deploy_step` or `service_step` field.

use std::cmp::Reverse;
use std::time::Duration;

use ferric_core::{Event, InterfaceKind, JsonObject, Node, PowerState};
use ferric_drivers::{Driver, Outcome, StepDef, StepFlow};
use serde_json::{json, Value};

use crate::error::Result;
use crate::power;
use crate::task::Task;

/// Which flow a step list belongs to, and where it keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepKind {
    Clean,
    Deploy,
    Service,
}

impl StepKind {
    pub(crate) fn flow(self) -> StepFlow {
        match self {
            StepKind::Clean => StepFlow::Clean,
            StepKind::Deploy => StepFlow::Deploy,
            StepKind::Service => StepFlow::Service,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            StepKind::Clean => "clean",
            StepKind::Deploy => "deploy",
            StepKind::Service => "service",
        }
    }

    pub(crate) fn list_key(self) -> &'static str {
        match self {
            StepKind::Clean => "clean_steps",
            StepKind::Deploy => "deploy_steps",
            StepKind::Service => "service_steps",
        }
    }

    pub(crate) fn index_key(self) -> &'static str {
        match self {
            StepKind::Clean => "clean_step_index",
            StepKind::Deploy => "deploy_step_index",
            StepKind::Service => "service_step_index",
        }
    }

    /// `driver_internal_info` key that, set to false, makes the current
    /// step run again when the flow resumes (Ironic's name).
    pub(crate) fn skip_key(self) -> &'static str {
        match self {
            StepKind::Clean => "skip_current_clean_step",
            StepKind::Deploy => "skip_current_deploy_step",
            StepKind::Service => "skip_current_service_step",
        }
    }

    /// `driver_internal_info` key set while the node reboots at a step's
    /// request (Ironic's name).
    pub(crate) fn reboot_key(self) -> &'static str {
        match self {
            StepKind::Clean => "cleaning_reboot",
            StepKind::Deploy => "deployment_reboot",
            StepKind::Service => "servicing_reboot",
        }
    }

    /// The node field showing the step in progress.
    pub(crate) fn current(self, task: &mut Task) -> &mut ferric_core::Fields {
        match self {
            StepKind::Clean => &mut task.node.clean_step,
            StepKind::Deploy => &mut task.node.deploy_step,
            StepKind::Service => &mut task.node.service_step,
        }
    }
}

/// Step names every flow understands whatever the interface (Ironic's
/// reserved steps).
pub(crate) const RESERVED_STEPS: &[&str] = &["power_on", "power_off", "reboot", "hold", "wait"];

/// Where a run of steps stopped.
#[derive(Debug, PartialEq)]
pub(crate) enum StepsEnd {
    /// Every step ran.
    Done,
    /// A step started work that reports back later; the node must wait.
    Wait,
    /// A `hold` step: the node waits for `unhold` or `abort`.
    Hold,
    /// A step failed; the text goes to `last_error`.
    Failed(String),
}

/// How one step ended; a pause is handled by the runner.
#[derive(Debug, PartialEq)]
enum StepEnd {
    Next,
    Pause(Duration),
    Stop(StepsEnd),
}

/// Interface ranks that order steps of equal priority (Ironic's).
fn interface_rank(kind: InterfaceKind) -> u8 {
    match kind {
        InterfaceKind::Vendor => 7,
        InterfaceKind::Power => 6,
        InterfaceKind::Management => 5,
        InterfaceKind::Firmware => 4,
        InterfaceKind::Deploy => 3,
        InterfaceKind::Bios => 2,
        InterfaceKind::Raid => 1,
        _ => 0,
    }
}

pub(crate) fn step_json(def: &StepDef) -> JsonObject {
    let mut obj = JsonObject::new();
    obj.insert("step".into(), json!(def.step));
    obj.insert("priority".into(), json!(def.priority));
    obj.insert("abortable".into(), json!(def.abortable));
    obj.insert(
        "argsinfo".into(),
        def.argsinfo.clone().unwrap_or(Value::Null),
    );
    obj.insert("interface".into(), json!(def.interface.as_str()));
    if def.reboot_requested {
        obj.insert("reboot_requested".into(), json!(true));
    }
    if def.requires_ramdisk {
        obj.insert("requires_ramdisk".into(), json!(true));
    }
    obj
}

fn priority(step: &JsonObject) -> i64 {
    step.get("priority").and_then(Value::as_i64).unwrap_or(0)
}

fn interface_of(step: &JsonObject) -> Option<InterfaceKind> {
    step.get("interface")?.as_str()?.parse().ok()
}

fn name_of(step: &JsonObject) -> &str {
    step.get("step").and_then(Value::as_str).unwrap_or("")
}

/// Sorts by priority, highest first, then by interface rank.
pub(crate) fn sort_steps(steps: &mut [JsonObject]) {
    steps.sort_by_key(|s| {
        let rank = interface_of(s).map(interface_rank).unwrap_or(0);
        (Reverse(priority(s)), Reverse(rank))
    });
}

/// The steps an automated flow runs: the driver's steps with a priority
/// above zero, in order.
pub(crate) fn automated_steps(driver: &Driver, node: &Node, kind: StepKind) -> Vec<JsonObject> {
    let mut steps: Vec<JsonObject> = driver
        .steps(kind.flow(), node)
        .iter()
        .filter(|s| s.priority > 0)
        .map(step_json)
        .collect();
    sort_steps(&mut steps);
    steps
}

/// Checks steps a user asked for against what the driver offers and fills
/// in their priority and abortability. Reserved steps pass as they are.
pub(crate) fn validate_user_steps(
    driver: &Driver,
    node: &Node,
    kind: StepKind,
    user: &[JsonObject],
) -> Result<Vec<JsonObject>, String> {
    check_user_steps(driver, node, kind, user, Missing::Refuse)
}

/// What to do with a user's step the driver does not offer (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    Refuse,
    /// Leave it out for now: it may be one of the agent's, which are known
    /// only once the agent is up (Ironic's `skip_missing`).
    Skip,
}

pub(crate) fn check_user_steps(
    driver: &Driver,
    node: &Node,
    kind: StepKind,
    user: &[JsonObject],
    missing: Missing,
) -> Result<Vec<JsonObject>, String> {
    let offered = driver.steps(kind.flow(), node);
    let mut errors = Vec::new();
    let mut validated = Vec::new();
    for step in user {
        let name = name_of(step);
        if RESERVED_STEPS.contains(&name) {
            validated.push(step.clone());
            continue;
        }
        let iface = interface_of(step);
        let Some(def) = offered
            .iter()
            .find(|d| Some(d.interface) == iface && d.step == name)
        else {
            if missing == Missing::Refuse {
                errors.push(format!(
                    "node does not support this {} step: {}",
                    kind.name(),
                    ferric_core::step_repr(step)
                ));
            }
            continue;
        };
        let args = step
            .get("args")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Err(e) = check_args(def, &args, kind) {
            errors.push(e);
            continue;
        }
        let mut full = step.clone();
        full.insert("abortable".into(), json!(def.abortable));
        full.entry("priority").or_insert(json!(def.priority));
        full.insert("args".into(), Value::Object(args));
        validated.push(full);
    }
    if errors.is_empty() {
        Ok(validated)
    } else {
        Err(errors.join("; "))
    }
}

/// Arguments must be ones the step declares, and include the required ones.
fn check_args(def: &StepDef, args: &JsonObject, kind: StepKind) -> Result<(), String> {
    let info = def.argsinfo.as_ref().and_then(Value::as_object);
    let unexpected: Vec<&str> = args
        .keys()
        .filter(|k| !info.is_some_and(|i| i.contains_key(k.as_str())))
        .map(String::as_str)
        .collect();
    if !unexpected.is_empty() {
        return Err(format!(
            "{} step {} has these unexpected arguments: {}",
            kind.name(),
            step_label(def),
            unexpected.join(", ")
        ));
    }
    let missing: Vec<String> = info
        .into_iter()
        .flatten()
        .filter(|(name, spec)| {
            spec.get("required") == Some(&Value::Bool(true)) && !args.contains_key(name.as_str())
        })
        .map(|(name, spec)| {
            let desc = spec
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{name} ({desc})")
        })
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} step {} is missing these required arguments: {}",
            kind.name(),
            step_label(def),
            missing.join(", ")
        ));
    }
    Ok(())
}

fn step_label(def: &StepDef) -> String {
    format!("{}.{}", def.interface, def.step)
}

/// Stores the steps a flow will run, from the first, with no step yet in
/// progress.
pub(crate) fn store(task: &mut Task, kind: StepKind, steps: Vec<JsonObject>) {
    task.set_internal(
        kind.list_key(),
        Value::Array(steps.into_iter().map(Value::Object).collect()),
    );
    kind.current(task).clear();
}

/// Runs the stored steps of `kind` from `start`, saving progress before
/// each one. A `wait` step with a duration parks the node in the flow's
/// wait state for that long, then the run goes on.
pub(crate) async fn run_steps(task: &mut Task, kind: StepKind, start: usize) -> Result<StepsEnd> {
    let mut index = start;
    while let Some(step) = stored_steps(task, kind).get(index).cloned() {
        *kind.current(task) = step.clone().into();
        task.set_internal(kind.index_key(), json!(index));
        task.save().await?;
        match run_one(task, kind, &step).await? {
            StepEnd::Next => {}
            StepEnd::Pause(d) => pause(task, d).await?,
            StepEnd::Stop(end) => return Ok(end),
        }
        if needs_replan(task, kind) {
            // The step brought the agent up (fast track keeps one): its own
            // deploy steps are known now, and the plan is made again.
            if let Err(msg) = super::deploy::replan(task).await {
                return Ok(StepsEnd::Failed(msg));
            }
            index = next_index(task, kind);
        } else {
            index += 1;
        }
    }
    kind.current(task).clear();
    task.remove_internal(kind.index_key());
    Ok(StepsEnd::Done)
}

fn stored_steps(task: &Task, kind: StepKind) -> Vec<JsonObject> {
    task.internal(kind.list_key())
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default()
}

/// A deploy whose plan was made before its agent said which steps it has.
pub(crate) fn needs_replan(task: &Task, kind: StepKind) -> bool {
    kind == StepKind::Deploy
        && task.internal("steps_validated") != Some(&Value::Bool(true))
        && task.internal("agent_cached_deploy_steps").is_some()
}

/// The index to resume from after the step at the stored index ended: the
/// next one, or the same one again if the step asked to be re-run (the
/// flag is consumed).
pub(crate) fn next_index(task: &mut Task, kind: StepKind) -> usize {
    let rerun = task.internal(kind.skip_key()) == Some(&Value::Bool(false));
    task.remove_internal(kind.skip_key());
    let current = task
        .internal(kind.index_key())
        .and_then(Value::as_u64)
        .and_then(|i| usize::try_from(i).ok());
    match current {
        None => 0,
        Some(i) if rerun => i,
        Some(i) => i + 1,
    }
}

/// Sits in the flow's wait state for `d`, holding the lock, then resumes.
async fn pause(task: &mut Task, d: Duration) -> Result<()> {
    let target = task.node.target_provision_state;
    task.fire(Event::Wait, target)?;
    task.save().await?;
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        // Stopping: the node stays in its wait state, unlocked, for the
        // callback timeout to deal with.
        _ = task.inner.shutdown.cancelled() => {
            return Err(crate::ConductorError::Failed("the conductor is stopping".into()));
        }
    }
    task.fire(Event::Resume, target)?;
    task.save().await
}

/// Leaves the node waiting (for a callback, or for `unhold`) and lets go
/// of it; the flow's target stays what it was.
pub(crate) async fn park(mut task: Task, end: &StepsEnd) -> Result<()> {
    let event = if *end == StepsEnd::Hold {
        Event::Hold
    } else {
        Event::Wait
    };
    let target = task.node.target_provision_state;
    task.fire(event, target)?;
    task.release().await?;
    Ok(())
}

async fn run_one(task: &mut Task, kind: StepKind, step: &JsonObject) -> Result<StepEnd> {
    let name = name_of(step).to_owned();
    let args = step
        .get("args")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    match name.as_str() {
        "hold" => return Ok(StepEnd::Stop(StepsEnd::Hold)),
        "wait" => {
            let Some(seconds) = args.get("seconds").and_then(Value::as_u64) else {
                return Ok(StepEnd::Stop(StepsEnd::Wait));
            };
            let capped = seconds.min(task.inner.config.max_conductor_wait_step_seconds);
            return Ok(StepEnd::Pause(Duration::from_secs(capped)));
        }
        "power_on" | "power_off" | "reboot" => {
            let target = match name.as_str() {
                "power_on" => PowerState::On,
                "power_off" => PowerState::Off,
                _ => PowerState::Rebooting,
            };
            return Ok(match power::node_power_action(task, target, None).await? {
                Ok(()) => StepEnd::Next,
                Err(msg) => StepEnd::Stop(StepsEnd::Failed(step_failure(task, kind, step, &msg))),
            });
        }
        _ => {}
    }
    let Some(iface) = interface_of(step) else {
        let msg = step_failure(task, kind, step, "unknown interface");
        return Ok(StepEnd::Stop(StepsEnd::Failed(msg)));
    };
    let operation = format!("{iface}.{name}");
    let outcome = task
        .call(&operation, move |d, t| {
            Box::pin(async move { d.interface(iface).execute_step(t, &name, &args).await })
        })
        .await;
    Ok(match outcome {
        Ok(Outcome::Done) => StepEnd::Next,
        Ok(Outcome::Wait) => StepEnd::Stop(StepsEnd::Wait),
        Ok(Outcome::RerunAfterReboot) => {
            task.set_internal(kind.skip_key(), json!(false));
            StepEnd::Stop(StepsEnd::Wait)
        }
        // The node's agent was busy or briefly out of reach: the step is
        // handed to it again at its next heartbeat (Ironic waits on a busy
        // agent the same way).
        Err(ferric_drivers::DriverError::Transient { message, .. })
            if task.internal("agent_url").is_some() =>
        {
            tracing::warn!(node = %task.node.uuid, step = %name_of(step), error = %message, "the agent cannot take the step now; trying again at its next heartbeat");
            task.set_internal(kind.skip_key(), json!(false));
            StepEnd::Stop(StepsEnd::Wait)
        }
        Err(e) => StepEnd::Stop(StepsEnd::Failed(step_failure(
            task,
            kind,
            step,
            &e.to_string(),
        ))),
    })
}

fn step_failure(task: &Task, kind: StepKind, step: &JsonObject, error: &str) -> String {
    match kind {
        StepKind::Deploy => format!(
            "Deploy step {}.{} failed: {error}.",
            step.get("interface").and_then(Value::as_str).unwrap_or(""),
            name_of(step)
        ),
        _ => format!(
            "Node {} failed step {}: {error}",
            task.node.uuid,
            ferric_core::step_repr(step)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(iface: &str, name: &str, priority: i64) -> JsonObject {
        json!({"interface": iface, "step": name, "priority": priority})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn steps_sort_by_priority_then_interface_rank() {
        let mut steps = vec![
            step("raid", "a", 10),
            step("deploy", "b", 10),
            step("vendor", "c", 1),
            step("bios", "d", 99),
        ];
        sort_steps(&mut steps);
        let order: Vec<&str> = steps.iter().map(name_of).collect();
        assert_eq!(order, vec!["d", "b", "a", "c"]);
    }
}
