//! The seams agent-driven work runs on, tested through the public
//! `Conductor` API with a scripted deploy interface standing in for one that
//! drives an agent: heartbeats carry waiting flows on, steps come from the
//! agent once it is up, steps can ask for a reboot or to run again, an
//! abort waits for a step that cannot be cut short, calls are bounded, and
//! what an interface stores mid-call survives.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use ferric_conductor::{ConductorConfig, ProvisionAction};
use ferric_core::{
    BootDevice, Ident, InterfaceKind, JsonObject, Node, NodeUuid, PowerState, ProvisionState as S,
    Secret,
};
use ferric_drivers::{
    AgentProgress, BootDeviceSetting, DeployInterface, DriverError, Heartbeat, Interface,
    ManagementInterface, Outcome, Registry, StepDef, StepFlow, Task,
};
use serde_json::{json, Value};

/// What the scripted interface is told to answer, and what it saw.
#[derive(Default)]
struct Script {
    prepare_cleaning: Option<Outcome>,
    /// Answers to heartbeats, in order; `Running` once they run out.
    progress: VecDeque<AgentProgress>,
    /// Answers to `execute_step`, in order; `Wait` once they run out.
    outcomes: VecDeque<Outcome>,
    executed: Vec<String>,
    refreshed: Vec<StepFlow>,
    /// `prepare` stores a mark on the node, then takes this long.
    prepare_takes: Duration,
}

/// A deploy interface whose answers a test scripts: a stand-in for one
/// that drives an agent.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Script>>);

impl Scripted {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.0.lock().expect("the script")
    }
}

/// The agent's steps, offered once it has reported them.
fn agent_steps(node: &Node, flow: StepFlow) -> Vec<StepDef> {
    let key = format!("agent_cached_{}_steps", flow.as_str());
    if !node.driver_internal_info.contains_key(&key) {
        return Vec::new();
    }
    // As IPA's: automated in cleaning, only on request in a deploy.
    let priority = if flow == StepFlow::Clean { 99 } else { 0 };
    let mut metadata = StepDef::new(
        InterfaceKind::Deploy,
        "erase_devices_metadata",
        priority,
        &[flow],
    );
    metadata.requires_ramdisk = true;
    let mut reboots = StepDef::new(InterfaceKind::Deploy, "reboots_after", 0, &[flow]);
    reboots.reboot_requested = true;
    let mut again = StepDef::new(InterfaceKind::Deploy, "runs_twice", 0, &[flow]);
    again.abortable = true;
    vec![metadata, reboots, again]
}

#[async_trait]
impl Interface for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Deploy
    }
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    fn steps(&self, node: &Node) -> Vec<StepDef> {
        let mut steps = vec![
            StepDef::new(InterfaceKind::Deploy, "deploy", 100, &[StepFlow::Deploy]),
            StepDef::new(
                InterfaceKind::Deploy,
                "write_image",
                80,
                &[StepFlow::Deploy],
            ),
        ];
        steps.extend(agent_steps(node, StepFlow::Clean));
        steps.extend(agent_steps(node, StepFlow::Deploy));
        steps
    }
    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        _args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        let outcome = {
            let mut s = self.script();
            s.executed.push(step.to_owned());
            s.outcomes.pop_front().unwrap_or(Outcome::Wait)
        };
        if outcome == Outcome::RerunAfterReboot {
            ferric_drivers::power_action(task, PowerState::Rebooting).await?;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl DeployInterface for Scripted {
    async fn prepare(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let takes = self.script().prepare_takes;
        task.node
            .driver_internal_info
            .insert("prepare_started".into(), json!(true));
        task.checkpoint().await?;
        tokio::time::sleep(takes).await;
        Ok(())
    }
    async fn tear_down(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    async fn clean_up(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    async fn take_over(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    async fn prepare_cleaning(&self, _task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        Ok(self
            .script()
            .prepare_cleaning
            .clone()
            .unwrap_or(Outcome::Wait))
    }
    async fn tear_down_cleaning(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
    async fn refresh_steps(&self, task: &mut Task<'_>, flow: StepFlow) -> Result<(), DriverError> {
        self.script().refreshed.push(flow);
        let key = format!("agent_cached_{}_steps", flow.as_str());
        task.node.driver_internal_info.insert(key, json!({}));
        Ok(())
    }
    async fn heartbeat(
        &self,
        _task: &mut Task<'_>,
        _flow: StepFlow,
    ) -> Result<AgentProgress, DriverError> {
        Ok(self
            .script()
            .progress
            .pop_front()
            .unwrap_or(AgentProgress::Running))
    }
}

/// A management interface that remembers the boot device on the node.
struct Remembering;

#[async_trait]
impl Interface for Remembering {
    fn name(&self) -> &'static str {
        "remembering"
    }
    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Management
    }
    async fn validate(&self, _task: &Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

#[async_trait]
impl ManagementInterface for Remembering {
    fn supported_boot_devices(&self) -> Vec<BootDevice> {
        vec![BootDevice::Pxe, BootDevice::Disk]
    }
    async fn set_boot_device(
        &self,
        task: &mut Task<'_>,
        device: BootDevice,
        _persistent: bool,
    ) -> Result<(), DriverError> {
        task.node
            .driver_internal_info
            .insert("remembered_boot_device".into(), json!(device.to_string()));
        Ok(())
    }
    async fn get_boot_device(&self, _task: &Task<'_>) -> Result<BootDeviceSetting, DriverError> {
        Ok(BootDeviceSetting {
            boot_device: None,
            persistent: None,
        })
    }
    async fn inject_nmi(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }
}

struct Rig {
    h: Harness,
    script: Scripted,
}

async fn rig(config: ConductorConfig) -> Rig {
    let script = Scripted::default();
    let mut registry = Registry::builtin(ferric_drivers::DriverConfig::default());
    registry.register_deploy("scripted", Arc::new(script.clone()));
    registry.register_management("remembering", Arc::new(Remembering));
    let h = Harness::start_with_registry(config, registry).await;
    Rig { h, script }
}

impl Rig {
    async fn node(&self) -> Node {
        let mut node = fake_node();
        node.interfaces.set(InterfaceKind::Deploy, "scripted");
        node.interfaces
            .set(InterfaceKind::Management, "remembering");
        self.h.enroll_node(node).await
    }

    async fn manageable(&self) -> NodeUuid {
        let node = self.node().await;
        self.h
            .provision(node.uuid, "manage", ProvisionAction::Manage)
            .await;
        self.h.wait_for_state(node.uuid, S::Manageable).await;
        node.uuid
    }

    /// A node cleaned without an agent (nothing to wait for), available.
    async fn available(&self) -> NodeUuid {
        let uuid = self.manageable().await;
        self.script().prepare_cleaning = Some(Outcome::Done);
        self.h
            .provision(uuid, "provide", ProvisionAction::Provide)
            .await;
        self.h.wait_for_state(uuid, S::Available).await;
        uuid
    }

    /// The agent's one-time token, as a lookup hands it out.
    async fn token(&self, uuid: NodeUuid) -> Secret<String> {
        let answer = self
            .h
            .conductor
            .node_with_token(uuid)
            .await
            .expect("a token");
        answer.token.expect("a token")
    }

    async fn beat(&self, uuid: NodeUuid, token: &Secret<String>) {
        self.h
            .conductor
            .heartbeat(&Ident::Uuid(uuid), Some(token), heartbeat())
            .await
            .expect("the heartbeat is accepted");
    }

    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.script()
    }
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        callback_url: "http://192.0.2.10:9999".into(),
        agent_version: Some("13.0.0".into()),
        agent_verify_ca: None,
        agent_status: None,
        agent_status_message: None,
    }
}

fn step_name(step: &ferric_core::Fields) -> Option<&str> {
    step.get("step").and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_cleaning_waiting_for_its_agent_keeps_the_users_steps() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "deploy", "step": "erase_devices_metadata"}])),
    )
    .await;
    // prepare_cleaning booted the agent: the node waits with no step yet,
    // and the user's steps are stored, not lost.
    let waiting = r.h.wait_for_state(uuid, S::CleanWait).await;
    assert!(waiting.clean_step.is_empty());
    assert_eq!(
        waiting.driver_internal_info["clean_steps"][0]["step"],
        "erase_devices_metadata"
    );
    // The agent is up: its steps are refreshed, the user's step is checked
    // against them and runs (on the agent: the node waits again).
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    let running =
        r.h.wait_until(uuid, SETTLE, "the agent step", |n| {
            n.provision_state == S::CleanWait && n.reservation.is_none() && !n.clean_step.is_empty()
        })
        .await;
    assert_eq!(
        step_name(&running.clean_step),
        Some("erase_devices_metadata")
    );
    assert_eq!(r.script().refreshed, vec![StepFlow::Clean]);
    assert_eq!(r.script().executed, vec!["erase_devices_metadata"]);
    // The agent says it is done: cleaning ends where manual cleaning ends.
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    let done = r.h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(done.last_error, None);
    assert_eq!(r.script().executed, vec!["erase_devices_metadata"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_cleaning_runs_the_steps_the_agent_offers() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(uuid, "provide", ProvisionAction::Provide)
        .await;
    r.h.wait_for_state(uuid, S::CleanWait).await;
    let token = r.token(uuid).await;
    r.script().progress.extend([AgentProgress::Booted]);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "the agent's automated step", |n| {
        n.reservation.is_none() && step_name(&n.clean_step) == Some("erase_devices_metadata")
    })
    .await;
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_for_state(uuid, S::Available).await;
    // Steps of priority 0 are not automated.
    assert_eq!(r.script().executed, vec!["erase_devices_metadata"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_check_the_token_and_restart_the_wait() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(uuid, "provide", ProvisionAction::Provide)
        .await;
    let before = r.h.wait_for_state(uuid, S::CleanWait).await;
    let token = r.token(uuid).await;
    assert_eq!(token.expose().len(), 43);
    // A token is handed out once.
    assert_eq!(r.token(uuid).await.expose(), "******");
    let refuse = |t: Option<&Secret<String>>| {
        let c = r.h.conductor.clone();
        let t = t.cloned();
        async move {
            c.heartbeat(&Ident::Uuid(uuid), t.as_ref(), heartbeat())
                .await
                .expect_err("refused")
                .to_string()
        }
    };
    assert_eq!(
        refuse(Some(&Secret::new("nope".to_owned()))).await,
        "Invalid or missing agent token received."
    );
    assert_eq!(
        refuse(None).await,
        "Agent token is required for heartbeat processing."
    );
    r.h.clock().advance(chrono::Duration::seconds(600));
    r.beat(uuid, &token).await;
    let after = r.h.wait_for_state(uuid, S::CleanWait).await;
    assert!(after.provision_updated_at > before.provision_updated_at);
    assert_eq!(
        after.driver_internal_info["agent_url"],
        "http://192.0.2.10:9999"
    );
    assert_eq!(after.driver_internal_info["agent_version"], "13.0.0");
    // A new address for the same agent is refused.
    let mut moved = heartbeat();
    moved.callback_url = "http://192.0.2.99:9999".into();
    let err =
        r.h.conductor
            .heartbeat(&Ident::Uuid(uuid), Some(&token), moved)
            .await
            .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "Detected change in ramdisk provided \"callback_url\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_during_a_step_that_cannot_be_cut_waits_for_it_to_end() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(
        uuid,
        "clean",
        clean(json!([
            {"interface": "deploy", "step": "erase_devices_metadata"},
            {"interface": "deploy", "step": "runs_twice"},
        ])),
    )
    .await;
    r.h.wait_for_state(uuid, S::CleanWait).await;
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "the first step", |n| {
        n.reservation.is_none() && step_name(&n.clean_step) == Some("erase_devices_metadata")
    })
    .await;
    r.h.provision(uuid, "abort", ProvisionAction::Abort).await;
    let marked = r.h.wait_for_state(uuid, S::CleanWait).await;
    assert_eq!(marked.clean_step.get("abort_after"), Some(&json!(true)));
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    let aborted = r.h.wait_for_state(uuid, S::CleanFailed).await;
    assert_eq!(
        aborted.last_error.as_deref(),
        Some(
            "By request, the clean operation was aborted during or after the completion of step \
             \"deploy.erase_devices_metadata\""
        )
    );
    assert_eq!(r.script().executed, vec!["erase_devices_metadata"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_can_ask_for_a_reboot_or_to_run_again_after_one() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(
        uuid,
        "clean",
        clean(json!([
            {"interface": "deploy", "step": "runs_twice"},
            {"interface": "deploy", "step": "reboots_after"},
            {"interface": "deploy", "step": "erase_devices_metadata"},
        ])),
    )
    .await;
    r.h.wait_for_state(uuid, S::CleanWait).await;
    let token = r.token(uuid).await;
    // runs_twice restarts the machine and must run again once it is back.
    r.script().outcomes.push_back(Outcome::RerunAfterReboot);
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    let first =
        r.h.wait_until(uuid, SETTLE, "runs_twice asking to run again", |n| {
            n.reservation.is_none()
                && n.driver_internal_info.get("skip_current_clean_step") == Some(&json!(false))
        })
        .await;
    assert_eq!(step_name(&first.clean_step), Some("runs_twice"));
    // The machine is back: a new agent, a new token.
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "runs_twice running again", |n| {
        n.reservation.is_none()
            && !n
                .driver_internal_info
                .contains_key("skip_current_clean_step")
    })
    .await;
    assert_eq!(r.script().executed, vec!["runs_twice", "runs_twice"]);
    // Done; reboots_after runs and asks for a reboot once done.
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "reboots_after", |n| {
        n.reservation.is_none() && step_name(&n.clean_step) == Some("reboots_after")
    })
    .await;
    r.script()
        .progress
        .push_back(AgentProgress::RebootRequested);
    r.beat(uuid, &token).await;
    let rebooting =
        r.h.wait_until(uuid, SETTLE, "the reboot", |n| {
            n.reservation.is_none() && n.driver_internal_info.contains_key("cleaning_reboot")
        })
        .await;
    // The reboot forgot the old agent.
    assert!(!rebooting.driver_internal_info.contains_key("agent_url"));
    assert!(!rebooting
        .driver_internal_info
        .contains_key("agent_secret_token"));
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "the last step", |n| {
        n.reservation.is_none() && step_name(&n.clean_step) == Some("erase_devices_metadata")
    })
    .await;
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(
        r.script().executed,
        vec![
            "runs_twice",
            "runs_twice",
            "reboots_after",
            "erase_devices_metadata"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_agent_step_fails_the_flow_with_its_message() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.provision(uuid, "provide", ProvisionAction::Provide)
        .await;
    r.h.wait_for_state(uuid, S::CleanWait).await;
    let token = r.token(uuid).await;
    r.script().progress.extend([
        AgentProgress::Booted,
        AgentProgress::StepFailed("the disk is on fire".into()),
    ]);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "the agent step", |n| {
        n.reservation.is_none() && !n.clean_step.is_empty()
    })
    .await;
    r.beat(uuid, &token).await;
    let failed = r.h.wait_for_state(uuid, S::CleanFailed).await;
    assert_eq!(failed.last_error.as_deref(), Some("the disk is on fire"));
    assert!(failed.maintenance);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_step_only_the_agent_offers_runs_once_the_agent_is_up() {
    let r = rig(config()).await;
    let uuid = r.available().await;
    let steps = objects(json!([
        {"interface": "deploy", "step": "erase_devices_metadata", "priority": 90}
    ]));
    r.h.provision(
        uuid,
        "active",
        ProvisionAction::Deploy {
            configdrive: None,
            deploy_steps: steps,
        },
    )
    .await;
    r.h.wait_for_state(uuid, S::DeployWait).await;
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    let planned =
        r.h.wait_until(uuid, SETTLE, "the agent's step", |n| {
            n.reservation.is_none() && step_name(&n.deploy_step) == Some("erase_devices_metadata")
        })
        .await;
    let names: Vec<&str> = planned.driver_internal_info["deploy_steps"]
        .as_array()
        .expect("a plan")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        names,
        vec!["deploy", "erase_devices_metadata", "write_image"]
    );
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "write_image", |n| {
        n.reservation.is_none() && step_name(&n.deploy_step) == Some("write_image")
    })
    .await;
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_for_state(uuid, S::Active).await;
    assert_eq!(
        r.script().executed,
        vec!["deploy", "erase_devices_metadata", "write_image"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_goes_on_at_the_agents_first_heartbeat() {
    let r = rig(config()).await;
    let uuid = r.available().await;
    r.h.provision(uuid, "active", deploy(None)).await;
    let booting = r.h.wait_for_state(uuid, S::DeployWait).await;
    assert_eq!(step_name(&booting.deploy_step), Some("deploy"));
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    let writing =
        r.h.wait_until(uuid, SETTLE, "write_image", |n| {
            n.reservation.is_none() && step_name(&n.deploy_step) == Some("write_image")
        })
        .await;
    assert_eq!(writing.driver_internal_info["steps_validated"], true);
    assert_eq!(r.script().refreshed, vec![StepFlow::Deploy]);
    r.script().progress.push_back(AgentProgress::StepDone);
    r.beat(uuid, &token).await;
    r.h.wait_for_state(uuid, S::Active).await;
    assert_eq!(r.script().executed, vec!["deploy", "write_image"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_call_past_its_timeout_fails_and_lets_go_of_the_node() {
    let r = rig(ConductorConfig {
        driver_call_timeout: 1,
        ..config()
    })
    .await;
    let uuid = r.available().await;
    r.script().prepare_takes = Duration::from_secs(30);
    r.h.provision(uuid, "active", deploy(None)).await;
    // What prepare stored before it hung is already in the database.
    r.h.wait_until(uuid, SETTLE, "the checkpoint", |n| {
        n.driver_internal_info.get("prepare_started") == Some(&json!(true))
    })
    .await;
    let failed = r.h.wait_for_state(uuid, S::DeployFailed).await;
    assert_eq!(
        failed.last_error.as_deref(),
        Some("Failed to prepare to deploy: deploy.prepare did not finish within 1 seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_waits_a_bounded_time_for_flows() {
    let r = rig(ConductorConfig {
        graceful_shutdown_timeout: 1,
        ..config()
    })
    .await;
    let uuid = r.available().await;
    r.script().prepare_takes = Duration::from_secs(120);
    r.h.provision(uuid, "active", deploy(None)).await;
    r.h.wait_until(uuid, SETTLE, "the deploy under way", |n| {
        n.driver_internal_info.get("prepare_started") == Some(&json!(true))
    })
    .await;
    let started = std::time::Instant::now();
    r.h.conductor.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let node = r.h.node(uuid).await;
    assert_eq!(node.reservation, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_calls_keep_what_the_interface_wrote() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.h.conductor
        .set_boot_device(&Ident::Uuid(uuid), BootDevice::Disk, true)
        .await
        .expect("set");
    let node = r.h.node(uuid).await;
    assert_eq!(node.driver_internal_info["remembered_boot_device"], "disk");
    assert_eq!(node.reservation, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_arguments_are_masked_in_last_error() {
    let r = rig(config()).await;
    let uuid = r.manageable().await;
    r.script().prepare_cleaning = Some(Outcome::Done);
    let err = r
        .h
        .conductor
        .provision(
            &Ident::Uuid(uuid),
            request(
                "clean",
                clean(json!([{"interface": "deploy", "step": "nope", "args": {"password": "hunter2"}}])),
            ),
        )
        .await;
    assert!(err.is_ok(), "{err:?}");
    let failed = r.h.wait_for_state(uuid, S::CleanFailed).await;
    let last = failed.last_error.unwrap_or_default();
    assert!(!last.contains("hunter2"), "{last}");
    assert!(last.contains("'password': '******'"), "{last}");
    // And no node prints its secrets.
    let mut n = r.h.node(uuid).await;
    n.driver_info
        .insert("ipmi_password".into(), json!("hunter2"));
    assert!(!format!("{n:?}").contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conductor_killed_mid_step_picks_the_flow_up_at_the_agents_next_heartbeat() {
    killed_mid_step(AgentProgress::Idle).await;
}

/// The agent's only command was reading its steps: it looks freshly booted,
/// yet the step must run, not be skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_never_handed_over_runs_even_if_the_agent_looks_fresh() {
    killed_mid_step(AgentProgress::Booted).await;
}

async fn killed_mid_step(after_restart: AgentProgress) {
    let r = rig(config()).await;
    let uuid = r.available().await;
    r.h.provision(uuid, "active", deploy(None)).await;
    r.h.wait_for_state(uuid, S::DeployWait).await;
    let token = r.token(uuid).await;
    r.script().progress.push_back(AgentProgress::Booted);
    r.beat(uuid, &token).await;
    r.h.wait_until(uuid, SETTLE, "write_image", |n| {
        n.reservation.is_none() && step_name(&n.deploy_step) == Some("write_image")
    })
    .await;
    // The conductor dies after storing the step and before the agent got
    // it: the node is left in `deploying`, locked by the dead conductor.
    r.h.conductor.stop().await;
    let mut node =
        r.h.store
            .reserve_node(&Ident::Uuid(uuid), HOST)
            .await
            .expect("lock");
    node.provision_state = S::Deploying;
    r.h.store
        .save_node(&node, HOST, ferric_db::AfterSave::KeepLock)
        .await
        .expect("save");
    let mut registry = Registry::builtin(ferric_drivers::DriverConfig::default());
    registry.register_deploy("scripted", Arc::new(r.script.clone()));
    registry.register_management("remembering", Arc::new(Remembering));
    let clock: Arc<dyn ferric_conductor::Clock> = r.h.manual_clock.clone().expect("clock");
    let conductor =
        ferric_conductor::Conductor::start(r.h.store.clone(), Arc::new(registry), config(), clock)
            .await
            .expect("the conductor starts again");
    let waiting = r.h.wait_for_state(uuid, S::DeployWait).await;
    assert_eq!(waiting.last_error, None);
    // The agent heartbeats, running nothing: the step runs again.
    r.script().progress.push_back(after_restart);
    conductor
        .heartbeat(&Ident::Uuid(uuid), Some(&token), heartbeat())
        .await
        .expect("heartbeat");
    r.h.wait_until(uuid, SETTLE, "write_image again", |n| {
        n.reservation.is_none() && !n.driver_internal_info.contains_key("step_interrupted")
    })
    .await;
    assert_eq!(
        r.script().executed,
        vec!["deploy", "write_image", "write_image"]
    );
    r.script().progress.push_back(AgentProgress::StepDone);
    conductor
        .heartbeat(&Ident::Uuid(uuid), Some(&token), heartbeat())
        .await
        .expect("heartbeat");
    r.h.wait_for_state(uuid, S::Active).await;
}
