//! Interfaces that work through the node's agent (ironic-python-agent or
//! `ferric-agent`): the `direct` and `iscsi` deploys and the `agent` inspection, and
//! what they share (Ironic's `agent_base`): the agent's steps, running them
//! in-band, reading how they went from the agent's command list, fast
//! track.

pub mod client;
pub mod direct;
pub mod inspect;
pub mod iscsi;
mod iscsi_disk;

use chrono::{NaiveDateTime, Utc};
use ferric_core::{InterfaceKind, Node, PowerState, ProvisionState as S};
use ferric_ipa::{CommandResult, CommandStatus};
use serde_json::{json, Map, Value};

use crate::error::DriverError;
use crate::interface::{AgentProgress, StepDef, StepFlow, Task};
use client::{command_error, node_dict, ports_list, AgentClient};

/// The flow a node's agent is working for, from its provision state.
pub(crate) fn flow_of(node: &Node) -> StepFlow {
    match node.provision_state {
        S::Cleaning | S::CleanWait | S::CleanHold => StepFlow::Clean,
        S::Servicing | S::ServiceWait | S::ServiceHold => StepFlow::Service,
        _ => StepFlow::Deploy,
    }
}

fn cached_key(flow: StepFlow) -> String {
    format!("agent_cached_{}_steps", flow.as_str())
}

/// The agent's steps of `flow` on `interface`, as its last report cached
/// them, with the configured priorities of the erase steps.
pub(crate) fn cached_steps(
    node: &Node,
    flow: StepFlow,
    interface: InterfaceKind,
    erase: (i32, i32),
) -> Vec<StepDef> {
    let Some(Value::Object(by_interface)) = node.driver_internal_info.get(&cached_key(flow)) else {
        return Vec::new();
    };
    let Some(Value::Array(steps)) = by_interface.get(interface.as_str()) else {
        return Vec::new();
    };
    steps
        .iter()
        .filter_map(|s| step_def(s, interface, flow, erase))
        .collect()
}

fn step_def(
    step: &Value,
    interface: InterfaceKind,
    flow: StepFlow,
    erase: (i32, i32),
) -> Option<StepDef> {
    let name = step.get("step")?.as_str()?;
    let mut priority = i32::try_from(step.get("priority")?.as_i64()?).ok()?;
    if flow == StepFlow::Clean {
        match name {
            "erase_devices" => priority = erase.0,
            "erase_devices_metadata" => priority = erase.1,
            _ => {}
        }
    }
    let mut def = StepDef::new(interface, name, priority, &[flow]);
    def.abortable = step
        .get("abortable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    def.argsinfo = step.get("argsinfo").cloned().filter(|a| !a.is_null());
    def.reboot_requested = step
        .get("reboot_requested")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    def.requires_ramdisk = true;
    Some(def)
}

/// The agent command that lists steps of `flow`, and the one that runs one.
fn step_commands(flow: StepFlow) -> (String, String) {
    let f = flow.as_str();
    (
        format!("{f}.get_{f}_steps"),
        format!("{f}.execute_{f}_step"),
    )
}

/// Asks the agent for its steps of `flow` and caches them on the node,
/// grouped by interface (Ironic's `refresh_steps`).
pub(crate) async fn refresh_steps(task: &mut Task<'_>, flow: StepFlow) -> Result<(), DriverError> {
    let client = AgentClient::for_node(task.node, &task.config.agent)?;
    let (get, _) = step_commands(flow);
    let mut params = Map::new();
    params.insert("node".into(), node_dict(task.node));
    params.insert("ports".into(), ports_list(task.ports));
    let result = client.command(&get, params, true).await?;
    let answer = result.command_result.clone().unwrap_or(Value::Null);
    let list_key = format!("{}_steps", flow.as_str());
    let missing: Vec<&str> = [list_key.as_str(), "hardware_manager_version"]
        .into_iter()
        .filter(|k| answer.get(*k).is_none())
        .collect();
    if result.command_status == CommandStatus::Failed || !missing.is_empty() {
        return Err(DriverError::failed(format!(
            "agent get_{}_steps for node {} returned an invalid result. Keys: {missing:?} are missing from \
             result: {}",
            flow.as_str(),
            task.node.uuid,
            answer
        )));
    }
    let mut by_interface: Map<String, Value> = Map::new();
    let managers = answer
        .get(&list_key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for step in managers.values().filter_map(Value::as_array).flatten() {
        let complete = ["interface", "step", "priority"]
            .iter()
            .all(|k| step.get(*k).is_some());
        let Some(interface) = step
            .get("interface")
            .and_then(Value::as_str)
            .filter(|_| complete)
        else {
            return Err(DriverError::failed(format!(
                "agent get_{}_steps for node {} returned an invalid {} step: {step}",
                flow.as_str(),
                task.node.uuid,
                flow.as_str()
            )));
        };
        let mut step = step.clone();
        if flow == StepFlow::Clean {
            step["requires_ramdisk"] = json!(true);
        }
        let list = by_interface
            .entry(interface.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(items) = list {
            items.push(step);
        }
    }
    let info = &mut task.node.driver_internal_info;
    info.insert(
        "hardware_manager_version".into(),
        answer["hardware_manager_version"].clone(),
    );
    info.insert(cached_key(flow), Value::Object(by_interface));
    info.insert(
        format!("agent_cached_{}_steps_refreshed", flow.as_str()),
        json!(ferric_core::naive_timestamp(Utc::now())),
    );
    task.checkpoint().await
}

/// Hands `step` to the agent to run in the background (Ironic's
/// `execute_step`); the agent's heartbeats then say how it went.
pub(crate) async fn execute_in_band(
    task: &mut Task<'_>,
    flow: StepFlow,
    step: Value,
) -> Result<(), DriverError> {
    let client = AgentClient::for_node(task.node, &task.config.agent)?;
    let (_, execute) = step_commands(flow);
    let mut params = Map::new();
    params.insert("step".into(), step);
    params.insert("node".into(), node_dict(task.node));
    params.insert("ports".into(), ports_list(task.ports));
    params.insert(
        format!("{}_version", flow.as_str()),
        task.node
            .driver_internal_info
            .get("hardware_manager_version")
            .cloned()
            .unwrap_or(Value::Null),
    );
    client.command(&execute, params, false).await.map(drop)
}

/// How the agent's work on the current step goes, from its command list
/// (Ironic's `process_next_step`, `_freshly_booted` and
/// `_get_completed_command`).
pub(crate) async fn progress(
    task: &mut Task<'_>,
    flow: StepFlow,
) -> Result<AgentProgress, DriverError> {
    let client = AgentClient::for_node(task.node, &task.config.agent)?;
    let commands = client.commands().await?;
    let current = current_step(task.node, flow);
    Ok(judge(&commands, flow, &current, task.node))
}

pub(crate) fn current_step(node: &Node, flow: StepFlow) -> ferric_core::JsonObject {
    match flow {
        StepFlow::Clean => node.clean_step.clone().into(),
        StepFlow::Deploy => node.deploy_step.clone().into(),
        StepFlow::Service => node.service_step.clone().into(),
    }
}

/// The verdict on a command list; pure, so it is tested as a table.
fn judge(
    commands: &[CommandResult],
    flow: StepFlow,
    current: &ferric_core::JsonObject,
    node: &Node,
) -> AgentProgress {
    let (get, execute) = step_commands(flow);
    let list_name = get.split_once('.').map_or(get.as_str(), |(_, n)| n);
    let execute_name = execute.split_once('.').map_or(execute.as_str(), |(_, n)| n);
    if commands.iter().all(|c| c.command_name == list_name) {
        return AgentProgress::Booted;
    }
    if commands
        .iter()
        .any(|c| c.command_status == CommandStatus::Running)
    {
        return AgentProgress::Running;
    }
    let Some(last) = commands.last() else {
        return AgentProgress::Booted;
    };
    if last.command_name != execute_name {
        return AgentProgress::Idle;
    }
    let ran = last
        .command_result
        .as_ref()
        .and_then(|r| r.get(format!("{}_step", flow.as_str())));
    let same = ran.is_some_and(|s| {
        s.get("interface") == current.get("interface") && s.get("step") == current.get("step")
    });
    match last.command_status {
        CommandStatus::Failed => AgentProgress::StepFailed(format!(
            "{} step {} failed on node {}. {}",
            capitalized(flow.as_str()),
            step_id(current),
            node.uuid,
            command_error(last)
        )),
        CommandStatus::VersionMismatch => AgentProgress::StepFailed(format!(
            "The agent on node {} reports that its hardware managers changed since its {} steps were read; \
             the {} operation must start again",
            node.uuid,
            flow.as_str(),
            flow.as_str()
        )),
        CommandStatus::Succeeded if !same => AgentProgress::Idle,
        CommandStatus::Succeeded => {
            if current.get("reboot_requested") == Some(&Value::Bool(true)) {
                AgentProgress::RebootRequested
            } else {
                AgentProgress::StepDone
            }
        }
        CommandStatus::Running => AgentProgress::Running,
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `interface.step`, as Ironic's `step_id` names a step.
pub(crate) fn step_id(step: &ferric_core::JsonObject) -> String {
    format!(
        "{}.{}",
        step.get("interface").and_then(Value::as_str).unwrap_or(""),
        step.get("step").and_then(Value::as_str).unwrap_or("")
    )
}

/// Whether a live agent may be reused instead of booting one (Ironic's
/// `is_fast_track`): fast track is on, nothing failed, the agent
/// heartbeated recently and the machine is on.
pub(crate) async fn fast_track(task: &mut Task<'_>) -> bool {
    let deploy = &task.config.deploy;
    if !deploy.fast_track
        || task.node.last_error.is_some()
        || !agent_heard_within(
            task.node,
            Utc::now(),
            chrono::Duration::seconds(i64::try_from(deploy.fast_track_timeout).unwrap_or(i64::MAX)),
        )
    {
        return false;
    }
    let power = task.driver.power.clone();
    matches!(power.get_power_state(task).await, Ok(PowerState::On))
}

/// Whether the node's agent heartbeated within `within` of `now`, as
/// Ironic's `agent_is_alive` reads `agent_last_heartbeat`; a node whose
/// agent was forgotten (no `agent_url`) has none.
pub fn agent_heard_within(
    node: &Node,
    now: chrono::DateTime<Utc>,
    within: chrono::Duration,
) -> bool {
    if !node.driver_internal_info.contains_key("agent_url") {
        return false;
    }
    node.driver_internal_info
        .get("agent_last_heartbeat")
        .and_then(Value::as_str)
        .and_then(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .is_some_and(|t| now - t.and_utc() <= within)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, status: &str, step: Option<&str>) -> CommandResult {
        serde_json::from_value(json!({
            "id": "x",
            "command_name": name,
            "command_status": status,
            "command_error": if status == "FAILED" { json!({"type": "DeploymentError", "code": 500, "message": "m", "details": "no space left"}) } else { Value::Null },
            "command_result": step.map(|s| json!({"deploy_result": null, "deploy_step": {"interface": "deploy", "step": s}})),
        }))
        .unwrap()
    }

    fn node_at(step: &str, reboot: bool) -> (Node, ferric_core::JsonObject) {
        let mut node = Node::enroll(
            ferric_core::NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            Utc::now(),
        );
        node.provision_state = S::DeployWait;
        let mut current = json!({"interface": "deploy", "step": step})
            .as_object()
            .cloned()
            .unwrap();
        if reboot {
            current.insert("reboot_requested".into(), json!(true));
        }
        node.deploy_step = current.clone().into();
        (node, current)
    }

    #[test]
    fn command_lists_are_judged_as_ironic_does() {
        let (node, current) = node_at("write_image", false);
        let f = StepFlow::Deploy;
        let get = result("get_deploy_steps", "SUCCEEDED", None);
        assert_eq!(judge(&[], f, &current, &node), AgentProgress::Booted);
        assert_eq!(
            judge(std::slice::from_ref(&get), f, &current, &node),
            AgentProgress::Booted
        );
        let running = result("execute_deploy_step", "RUNNING", None);
        assert_eq!(
            judge(&[get.clone(), running], f, &current, &node),
            AgentProgress::Running
        );
        let done = result("execute_deploy_step", "SUCCEEDED", Some("write_image"));
        assert_eq!(
            judge(&[get.clone(), done.clone()], f, &current, &node),
            AgentProgress::StepDone
        );
        // The last result is of another step: this one was never sent.
        let other = result(
            "execute_deploy_step",
            "SUCCEEDED",
            Some("erase_devices_metadata"),
        );
        assert_eq!(
            judge(&[get.clone(), other], f, &current, &node),
            AgentProgress::Idle
        );
        let out_of_band = result("get_partition_uuids", "SUCCEEDED", None);
        assert_eq!(
            judge(
                &[get.clone(), done.clone(), out_of_band],
                f,
                &current,
                &node
            ),
            AgentProgress::Idle
        );
        let failed = result("execute_deploy_step", "FAILED", Some("write_image"));
        let AgentProgress::StepFailed(msg) = judge(&[get.clone(), failed], f, &current, &node)
        else {
            panic!("not a failure");
        };
        assert_eq!(
            msg,
            format!(
                "Deploy step deploy.write_image failed on node {}. no space left",
                node.uuid
            )
        );
        let (node, current) = node_at("write_image", true);
        assert_eq!(
            judge(&[get, done], f, &current, &node),
            AgentProgress::RebootRequested
        );
    }

    #[test]
    fn cached_steps_take_the_configured_erase_priorities() {
        let (mut node, _) = node_at("x", false);
        node.driver_internal_info.insert(
            "agent_cached_clean_steps".into(),
            json!({"deploy": [
                {"step": "erase_devices", "priority": 10, "interface": "deploy", "reboot_requested": false, "abortable": true},
                {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false},
                {"step": "burnin_cpu", "priority": 0, "interface": "deploy", "reboot_requested": false},
            ]}),
        );
        let steps = cached_steps(&node, StepFlow::Clean, InterfaceKind::Deploy, (0, 98));
        let got: Vec<(&str, i32, bool)> = steps
            .iter()
            .map(|s| (s.step.as_str(), s.priority, s.abortable))
            .collect();
        assert_eq!(
            got,
            vec![
                ("erase_devices", 0, true),
                ("erase_devices_metadata", 98, false),
                ("burnin_cpu", 0, false)
            ]
        );
        assert!(steps
            .iter()
            .all(|s| s.requires_ramdisk && s.flows == vec![StepFlow::Clean]));
        assert!(cached_steps(&node, StepFlow::Deploy, InterfaceKind::Deploy, (0, 0)).is_empty());
    }
}
