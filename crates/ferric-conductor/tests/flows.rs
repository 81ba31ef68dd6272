//! Provisioning flows on fake hardware, driven through the public
//! `Conductor` API against a real SQLite store: the whole life of a node,
//! manual cleaning with its reserved `hold` and `wait` steps, deploy holds
//! and servicing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferric_conductor::{ConductorConfig, ProvisionAction};
use ferric_core::{InterfaceKind, Node, PowerState, ProvisionState as S};
use serde_json::{json, Value};

/// `(interface, step)` of each step stored under `key` in
/// `driver_internal_info`.
fn planned(node: &Node, key: &str) -> Vec<(String, String)> {
    let Some(Value::Array(steps)) = node.driver_internal_info.get(key) else {
        panic!(
            "driver_internal_info.{key} is not a list: {:?}",
            node.driver_internal_info.get(key)
        );
    };
    steps
        .iter()
        .map(|s| {
            let field = |f: &str| s.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
            (field("interface"), field("step"))
        })
        .collect()
}

fn pairs(steps: &[(&str, &str)]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|(i, s)| ((*i).to_owned(), (*s).to_owned()))
        .collect()
}

fn is_step(field: &ferric_core::JsonObject, interface: &str, step: &str) -> bool {
    field.get("interface") == Some(&json!(interface)) && field.get("step") == Some(&json!(step))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_hardware_lifecycle() {
    // A vendor delay keeps the automated clean step on screen long enough
    // to see it run.
    let h = Harness::start_with(config(), delays(&[("vendor", "1")])).await;
    let node = h.enroll().await;
    let uuid = node.uuid;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.power_state, None);
    assert_eq!(node.reservation, None);
    assert_eq!(node.interfaces.get(InterfaceKind::Deploy), "fake");
    assert_eq!(node.interfaces.get(InterfaceKind::Vendor), "fake");
    assert_eq!(node.interfaces.get(InterfaceKind::Network), "noop");

    // manage: enroll → verifying → manageable, the power state read.
    h.provision(uuid, "manage", ProvisionAction::Manage).await;
    let node = h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert_eq!(node.last_error, None);
    assert!(node.provision_updated_at.is_some());

    // provide: manageable → cleaning (vendor.log_passthrough) → available.
    h.provision(uuid, "provide", ProvisionAction::Provide).await;
    let cleaning = h
        .wait_until(uuid, SETTLE, "the log_passthrough clean step", |n| {
            n.provision_state == S::Cleaning && is_step(&n.clean_step, "vendor", "log_passthrough")
        })
        .await;
    assert_eq!(cleaning.target_provision_state, Some(S::Available));
    assert_eq!(cleaning.reservation.as_deref(), Some(HOST));
    assert_eq!(cleaning.clean_step.get("priority"), Some(&json!(1)));
    assert_eq!(cleaning.clean_step.get("abortable"), Some(&json!(false)));
    assert_eq!(
        cleaning.driver_internal_info.get("clean_step_index"),
        Some(&json!(0))
    );
    assert_eq!(
        planned(&cleaning, "clean_steps"),
        pairs(&[("vendor", "log_passthrough")])
    );
    let node = h.wait_for_state(uuid, S::Available).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.clean_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("clean_steps"),
        Some(&Value::Null)
    );
    assert_eq!(node.driver_internal_info.get("clean_step_index"), None);
    assert_eq!(node.power_state, Some(PowerState::Off));

    // deploy with a configdrive: available → deploying → active. The
    // instance's project becomes the lessee while it is deployed.
    h.update(uuid, |n| {
        n.instance_info.insert("project_id".into(), json!("proj-1"));
        n.instance_uuid = Some("8f1d3c52-5b0e-4f3c-9a55-1f0c2d9e0a11".into());
    })
    .await;
    let configdrive = json!({"meta_data": {"hostname": "node-1"}, "user_data": "#!/bin/sh\n"});
    h.provision(uuid, "active", deploy(Some(configdrive.clone())))
        .await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.deploy_step.is_empty());
    // The dict became the ISO Ironic builds, gzipped and base64-encoded.
    let stored = node.instance_info["configdrive"]
        .as_str()
        .expect("an encoded image");
    assert!(matches!(
        ferric_image::configdrive::decode(stored),
        Ok(ferric_image::configdrive::ConfigDriveSource::Image(_))
    ));
    assert_ne!(node.instance_info["configdrive"], configdrive);
    assert_eq!(node.instance_info.get("project_id"), Some(&json!("proj-1")));
    assert_eq!(node.lessee.as_deref(), Some("proj-1"));
    assert_eq!(
        node.driver_internal_info.get("automatic_lessee"),
        Some(&json!(true))
    );
    assert_eq!(
        node.driver_internal_info.get("deploy_steps"),
        Some(&Value::Null)
    );
    assert_eq!(node.driver_internal_info.get("user_deploy_steps"), None);
    assert_eq!(node.driver_internal_info.get("deploy_step_index"), None);
    assert_eq!(node.power_state, Some(PowerState::Off));

    // rebuild: active → deploying → active, without an image_source; the
    // new configdrive replaces the old one.
    h.provision(
        uuid,
        "rebuild",
        ProvisionAction::Rebuild {
            configdrive: Some(json!("cmVidWlsdA==")),
            deploy_steps: Vec::new(),
        },
    )
    .await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert_eq!(
        node.instance_info.get("configdrive"),
        Some(&json!("cmVidWlsdA=="))
    );
    assert_eq!(node.lessee.as_deref(), Some("proj-1"));
    assert_eq!(
        node.driver_internal_info.get("deploy_steps"),
        Some(&Value::Null)
    );

    // undeploy: active → deleting → cleaning → available, the instance
    // forgotten before cleaning starts.
    h.provision(uuid, "deleted", ProvisionAction::Undeploy)
        .await;
    let cleaning = h
        .wait_until(uuid, SETTLE, "cleaning after tear down", |n| {
            n.provision_state == S::Cleaning && is_step(&n.clean_step, "vendor", "log_passthrough")
        })
        .await;
    assert_eq!(cleaning.target_provision_state, Some(S::Available));
    assert!(cleaning.instance_info.is_empty());
    let node = h.wait_for_state(uuid, S::Available).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.instance_info.is_empty());
    assert_eq!(node.instance_uuid, None);
    assert_eq!(node.lessee, None);
    assert_eq!(node.driver_internal_info.get("automatic_lessee"), None);
    assert_eq!(
        node.driver_internal_info.get("clean_steps"),
        Some(&Value::Null)
    );
    assert_eq!(
        node.driver_internal_info.get("deploy_steps"),
        Some(&Value::Null)
    );
    assert!(node.clean_step.is_empty());
    assert!(node.deploy_step.is_empty());
    assert_eq!(node.power_state, Some(PowerState::Off));

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_clean_can_be_turned_off_per_node() {
    let h = Harness::start().await;
    let node = h.manageable().await;
    h.update(node.uuid, |n| n.automated_clean = Some(false))
        .await;
    h.provision(node.uuid, "provide", ProvisionAction::Provide)
        .await;
    let node = h.wait_for_state(node.uuid, S::Available).await;
    assert_eq!(node.target_provision_state, None);
    // Cleaning was skipped: no step list was ever stored.
    assert_eq!(node.driver_internal_info.get("clean_steps"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_clean_runs_the_requested_step_and_returns_to_manageable() {
    let h = Harness::start_with(config(), delays(&[("bios", "1")])).await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "bios", "step": "factory_reset"}])),
    )
    .await;
    let running = h
        .wait_until(uuid, SETTLE, "the factory_reset clean step", |n| {
            n.provision_state == S::Cleaning && is_step(&n.clean_step, "bios", "factory_reset")
        })
        .await;
    assert_eq!(running.target_provision_state, Some(S::Manageable));
    assert_eq!(running.clean_step.get("abortable"), Some(&json!(false)));
    assert_eq!(running.clean_step.get("priority"), Some(&json!(0)));
    assert_eq!(running.clean_step.get("args"), Some(&json!({})));
    assert_eq!(
        planned(&running, "clean_steps"),
        pairs(&[("bios", "factory_reset")])
    );
    assert_eq!(
        running.driver_internal_info.get("declarative_cleaning"),
        Some(&json!(true))
    );

    let node = h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(!node.maintenance);
    assert!(node.clean_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("clean_steps"),
        Some(&Value::Null)
    );
    assert_eq!(node.driver_internal_info.get("declarative_cleaning"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_clean_with_an_unknown_step_fails_and_manage_recovers() {
    let h = Harness::start().await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "bios", "step": "no_such_step"}])),
    )
    .await;
    let node = h.wait_for_state(uuid, S::CleanFailed).await;
    assert_eq!(node.target_provision_state, Some(S::Manageable));
    assert_eq!(
        node.last_error.as_deref(),
        Some(
            format!(
                "Cannot clean node {uuid}: node does not support this clean step: \
                 {{'interface': 'bios', 'step': 'no_such_step'}}"
            )
            .as_str()
        )
    );
    // No step was in progress, so the node is not put in maintenance.
    assert!(!node.maintenance);
    assert_eq!(node.fault, None);
    assert!(node.clean_step.is_empty());

    // manage from clean failed is synchronous and keeps last_error.
    h.provision(uuid, "manage", ProvisionAction::Manage).await;
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::Manageable);
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.reservation, None);
    assert!(node
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("Cannot clean node ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_hold_waits_for_unhold_then_runs_the_next_step() {
    let h = Harness::start_with(config(), delays(&[("bios", "1")])).await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([
            {"interface": "deploy", "step": "hold"},
            {"interface": "bios", "step": "factory_reset"}
        ])),
    )
    .await;
    let held = h.wait_for_state(uuid, S::CleanHold).await;
    assert_eq!(held.target_provision_state, Some(S::Manageable));
    assert_eq!(
        held.clean_step,
        obj(json!({"interface": "deploy", "step": "hold"})).into()
    );
    assert_eq!(
        held.driver_internal_info.get("clean_step_index"),
        Some(&json!(0))
    );
    assert_eq!(
        planned(&held, "clean_steps"),
        pairs(&[("deploy", "hold"), ("bios", "factory_reset")])
    );
    assert_eq!(held.last_error, None);

    // Still held a while later: nothing but unhold or abort moves it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.node(uuid).await.provision_state, S::CleanHold);

    h.provision(uuid, "unhold", ProvisionAction::Unhold).await;
    let resumed = h
        .wait_until(uuid, SETTLE, "the step after the hold", |n| {
            n.provision_state == S::Cleaning && is_step(&n.clean_step, "bios", "factory_reset")
        })
        .await;
    assert_eq!(resumed.target_provision_state, Some(S::Manageable));
    assert_eq!(
        resumed.driver_internal_info.get("clean_step_index"),
        Some(&json!(1))
    );
    let node = h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.clean_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("clean_steps"),
        Some(&Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_clean_hold_fails_the_clean() {
    let h = Harness::start().await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "deploy", "step": "hold"}])),
    )
    .await;
    h.wait_for_state(uuid, S::CleanHold).await;

    h.provision(uuid, "abort", ProvisionAction::Abort).await;
    // Abort is synchronous: the node has failed when the call returns.
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::CleanFailed);
    assert_eq!(node.target_provision_state, Some(S::Manageable));
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(
            "By request, the clean operation was aborted during or after the completion of \
             step \"deploy.hold\""
        )
    );
    assert!(!node.maintenance);
    assert!(node.clean_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("clean_steps"),
        Some(&Value::Null)
    );
    assert_eq!(node.driver_internal_info.get("clean_step_index"), None);

    // The node stays failed; nothing resumes the aborted clean.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.node(uuid).await.provision_state, S::CleanFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_from_clean_wait_fails_the_clean() {
    let h = Harness::start().await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "deploy", "step": "wait"}])),
    )
    .await;
    h.wait_for_state(uuid, S::CleanWait).await;
    h.provision(uuid, "abort", ProvisionAction::Abort).await;
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::CleanFailed);
    assert_eq!(node.target_provision_state, Some(S::Manageable));
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(
            "By request, the clean operation was aborted during or after the completion of \
             step \"deploy.wait\""
        )
    );
    assert!(node.clean_step.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_wait_without_seconds_fails_at_the_callback_timeout() {
    let cfg = ConductorConfig {
        clean_callback_timeout: 1,
        check_provision_state_interval: 1,
        ..config()
    };
    let h = Harness::start_manual(cfg, Default::default()).await;
    let uuid = h.manageable().await.uuid;
    h.provision(
        uuid,
        "clean",
        clean(json!([{"interface": "deploy", "step": "wait"}])),
    )
    .await;
    let waiting = h.wait_for_state(uuid, S::CleanWait).await;
    assert_eq!(waiting.target_provision_state, Some(S::Manageable));
    assert_eq!(
        waiting.clean_step,
        obj(json!({"interface": "deploy", "step": "wait"})).into()
    );

    // The periodic check runs every second, but the conductor's clock has
    // not moved: the wait has not expired.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = h.node(uuid).await;
    assert_eq!(still.provision_state, S::CleanWait);
    assert_eq!(still.last_error, None);

    h.clock().advance(chrono::Duration::seconds(2));
    let node = h.wait_for_state(uuid, S::CleanFailed).await;
    let msg = "Timeout reached while cleaning the node. Please check if the ramdisk responsible \
               for the cleaning is running on the node. Failed on step \
               {'interface': 'deploy', 'step': 'wait'}.";
    assert_eq!(node.last_error.as_deref(), Some(msg));
    assert_eq!(node.target_provision_state, Some(S::Manageable));
    // A step was in progress: the node goes to maintenance.
    assert!(node.maintenance);
    assert_eq!(node.fault.as_deref(), Some("clean failure"));
    assert_eq!(node.maintenance_reason.as_deref(), Some(msg));
    assert!(node.clean_step.is_empty());

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_with_seconds_pauses_then_continues() {
    // 600 s asked for, capped to one second by the configuration.
    let cfg = ConductorConfig {
        max_conductor_wait_step_seconds: 1,
        ..config()
    };
    let h = Harness::start_with(cfg, Default::default()).await;
    let uuid = h.manageable().await.uuid;
    let started = Instant::now();
    h.provision(
        uuid,
        "clean",
        clean(json!([
            {"interface": "deploy", "step": "wait", "args": {"seconds": 600}},
            {"interface": "bios", "step": "factory_reset"}
        ])),
    )
    .await;
    let paused = h
        .wait_until(uuid, SETTLE, "clean wait during the pause", |n| {
            n.provision_state == S::CleanWait
        })
        .await;
    assert_eq!(paused.target_provision_state, Some(S::Manageable));
    // The worker keeps the node while it sleeps.
    assert_eq!(paused.reservation.as_deref(), Some(HOST));
    let node = h.wait_for_state(uuid, S::Manageable).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.clean_step.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_hold_waits_for_unhold_then_finishes() {
    let h = Harness::start().await;
    let uuid = h.available().await.uuid;
    h.provision(
        uuid,
        "active",
        ProvisionAction::Deploy {
            configdrive: None,
            deploy_steps: objects(json!([
                {"interface": "deploy", "step": "hold", "priority": 200, "args": {}}
            ])),
        },
    )
    .await;
    let held = h.wait_for_state(uuid, S::DeployHold).await;
    assert_eq!(held.target_provision_state, Some(S::Active));
    assert_eq!(held.deploy_step.get("step"), Some(&json!("hold")));
    assert_eq!(
        planned(&held, "deploy_steps"),
        pairs(&[("deploy", "hold"), ("deploy", "deploy")])
    );

    h.provision(uuid, "unhold", ProvisionAction::Unhold).await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.deploy_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("deploy_steps"),
        Some(&Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_runs_its_steps_on_an_active_node() {
    let h = Harness::start_with(config(), delays(&[("vendor", "1")])).await;
    let uuid = h.active().await.uuid;
    h.provision(
        uuid,
        "service",
        ProvisionAction::Service {
            service_steps: objects(json!([{"interface": "vendor", "step": "log_passthrough"}])),
            disable_ramdisk: None,
        },
    )
    .await;
    let running = h
        .wait_until(uuid, SETTLE, "the log_passthrough service step", |n| {
            n.provision_state == S::Servicing
                && is_step(&n.service_step, "vendor", "log_passthrough")
        })
        .await;
    assert_eq!(running.target_provision_state, Some(S::Active));
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.service_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("service_steps"),
        Some(&Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_hold_can_be_unheld_or_aborted() {
    let h = Harness::start().await;
    let held_step = || ProvisionAction::Service {
        service_steps: objects(json!([
            {"interface": "deploy", "step": "hold"},
            {"interface": "vendor", "step": "log_passthrough"}
        ])),
        disable_ramdisk: None,
    };
    let uuid = h.active().await.uuid;

    h.provision(uuid, "service", held_step()).await;
    let held = h.wait_for_state(uuid, S::ServiceHold).await;
    assert_eq!(held.target_provision_state, Some(S::Active));
    assert_eq!(
        held.service_step,
        obj(json!({"interface": "deploy", "step": "hold"})).into()
    );
    h.provision(uuid, "unhold", ProvisionAction::Unhold).await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(node.service_step.is_empty());

    h.provision(uuid, "service", held_step()).await;
    h.wait_for_state(uuid, S::ServiceHold).await;
    h.provision(uuid, "abort", ProvisionAction::Abort).await;
    // An aborted service returns the node to active, saying why.
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::Active);
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(
            "By request, the service operation was aborted during or after the completion of \
             step \"deploy.hold\""
        )
    );
    assert!(node.service_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("service_steps"),
        Some(&Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_service_waits_fail_at_their_callback_timeouts() {
    let cfg = ConductorConfig {
        deploy_callback_timeout: 1,
        service_callback_timeout: 1,
        check_provision_state_interval: 1,
        ..config()
    };
    let h = Harness::start_manual(cfg, Default::default()).await;
    let wait_step = || json!([{"interface": "deploy", "step": "wait", "priority": 200}]);

    let deploying = h.available().await.uuid;
    h.provision(
        deploying,
        "active",
        ProvisionAction::Deploy {
            configdrive: None,
            deploy_steps: objects(wait_step()),
        },
    )
    .await;
    let node = h.wait_for_state(deploying, S::DeployWait).await;
    assert_eq!(node.target_provision_state, Some(S::Active));
    assert_eq!(node.deploy_step.get("step"), Some(&json!("wait")));

    let servicing = h.active().await.uuid;
    h.provision(
        servicing,
        "service",
        ProvisionAction::Service {
            service_steps: objects(json!([{"interface": "deploy", "step": "wait"}])),
            disable_ramdisk: None,
        },
    )
    .await;
    let node = h.wait_for_state(servicing, S::ServiceWait).await;
    assert_eq!(node.target_provision_state, Some(S::Active));

    h.clock().advance(chrono::Duration::seconds(2));

    let node = h.wait_for_state(deploying, S::DeployFailed).await;
    assert_eq!(node.target_provision_state, Some(S::Active));
    assert_eq!(
        node.last_error.as_deref(),
        Some(format!("Timeout reached while waiting for callback for node {deploying}").as_str())
    );
    assert!(!node.maintenance);
    assert!(node.deploy_step.is_empty());
    assert_eq!(
        node.driver_internal_info.get("deploy_steps"),
        Some(&Value::Null)
    );

    let node = h.wait_for_state(servicing, S::ServiceFailed).await;
    let msg = "Timeout reached while servicing the node. Please check if the ramdisk responsible \
               for the servicing is running on the node. Failed on step \
               {'interface': 'deploy', 'step': 'wait'}.";
    assert_eq!(node.target_provision_state, Some(S::Active));
    assert_eq!(node.last_error.as_deref(), Some(msg));
    assert!(node.maintenance);
    assert_eq!(node.fault.as_deref(), Some("service failure"));
    assert!(node.service_step.is_empty());

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_adopt_rescue_and_unrescue_on_fake_hardware() {
    let h = Harness::start().await;
    let uuid = h.manageable().await.uuid;

    h.provision(uuid, "inspect", ProvisionAction::Inspect).await;
    let node = h.wait_for_state(uuid, S::Manageable).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert_eq!(node.inspection_started_at, None);
    assert!(node.inspection_finished_at.is_some());

    h.provision(uuid, "adopt", ProvisionAction::Adopt).await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);

    h.provision(
        uuid,
        "rescue",
        ProvisionAction::Rescue {
            password: "hunter2".to_owned().into(),
        },
    )
    .await;
    let node = h.wait_for_state(uuid, S::Rescue).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert_eq!(
        node.instance_info.get("rescue_password"),
        Some(&json!("hunter2"))
    );

    h.provision(uuid, "unrescue", ProvisionAction::Unrescue)
        .await;
    let node = h.wait_for_state(uuid, S::Active).await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_a_node_lacks_refuse_with_ironics_text() {
    let h = Harness::start().await;
    let mut node = fake_node();
    node.interfaces.set(InterfaceKind::Inspect, "no-inspect");
    node.interfaces.set(InterfaceKind::Rescue, "no-rescue");
    let uuid = h.enroll_node(node).await.uuid;
    h.provision(uuid, "manage", ProvisionAction::Manage).await;
    h.wait_for_state(uuid, S::Manageable).await;

    let e = match h
        .conductor
        .provision(&ident(uuid), request("inspect", ProvisionAction::Inspect))
        .await
    {
        Ok(()) => panic!("inspect with no-inspect was accepted"),
        Err(e) => e,
    };
    assert!(
        matches!(e, ferric_conductor::ConductorError::Unsupported { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "Driver fake-hardware does not support inspect (disabled or not implemented)."
    );
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::Manageable);
    assert_eq!(node.reservation, None);

    h.provision(uuid, "provide", ProvisionAction::Provide).await;
    h.wait_for_state(uuid, S::Available).await;
    h.provision(uuid, "active", deploy(None)).await;
    h.wait_for_state(uuid, S::Active).await;
    let e = match h
        .conductor
        .provision(
            &ident(uuid),
            request(
                "rescue",
                ProvisionAction::Rescue {
                    password: "hunter2".to_owned().into(),
                },
            ),
        )
        .await
    {
        Ok(()) => panic!("rescue with no-rescue was accepted"),
        Err(e) => e,
    };
    assert_eq!(
        e.to_string(),
        format!(
            "Failed to rescue instance None for node {uuid}: Validation failed: Driver \
             fake-hardware does not support rescue (disabled or not implemented)."
        )
    );
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::Active);
    assert_eq!(node.reservation, None);
    assert_eq!(node.instance_info.get("rescue_password"), None);
}
