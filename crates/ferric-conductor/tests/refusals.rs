//! What the conductor refuses, with Ironic's error kinds and texts, and
//! that a refusal leaves the node as it was and unlocked.

mod common;

use std::time::Duration;

use common::*;
use ferric_conductor::{ConductorConfig, ConductorError, PowerRequest, ProvisionAction};
use ferric_core::{Node, PowerState, ProvisionState as S};
use ferric_db::DbError;

/// The error of a call that must fail.
fn refused<T: std::fmt::Debug>(result: Result<T, ConductorError>) -> ConductorError {
    match result {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}

/// The node has not moved and nobody holds it.
fn untouched(node: &Node, state: S) {
    assert_eq!(node.provision_state, state);
    assert_eq!(node.reservation, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_the_state_does_not_accept_are_invalid_state_requests() {
    let h = Harness::start().await;
    let uuid = h.enroll().await.uuid;
    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("provide", ProvisionAction::Provide))
            .await,
    );
    assert!(
        matches!(e, ConductorError::InvalidStateRequested { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "The requested action \"provide\" can not be performed on node \"{uuid}\" while it \
             is in state \"enroll\"."
        )
    );
    untouched(&h.node(uuid).await, S::Enroll);

    // The action is quoted as the client sent it.
    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("deploy", deploy(None)))
            .await,
    );
    assert_eq!(
        e.to_string(),
        format!(
            "The requested action \"deploy\" can not be performed on node \"{uuid}\" while it \
             is in state \"enroll\"."
        )
    );

    let uuid = h.manageable().await.uuid;
    for (target, action) in [
        ("unhold", ProvisionAction::Unhold),
        ("abort", ProvisionAction::Abort),
        ("deleted", ProvisionAction::Undeploy),
    ] {
        let e = refused(
            h.conductor
                .provision(&ident(uuid), request(target, action))
                .await,
        );
        assert_eq!(
            e.to_string(),
            format!(
                "The requested action \"{target}\" can not be performed on node \"{uuid}\" \
                 while it is in state \"manageable\"."
            )
        );
    }
    untouched(&h.node(uuid).await, S::Manageable);

    let e = refused(
        h.conductor
            .provision(
                &ident(ferric_core::NodeUuid::new_random()),
                request("manage", ProvisionAction::Manage),
            )
            .await,
    );
    assert!(matches!(e, ConductorError::NotFound { kind: "Node", .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioning_a_node_in_maintenance_is_refused() {
    let h = Harness::start().await;
    let uuid = h.available().await.uuid;
    h.update(uuid, |n| {
        n.maintenance = true;
        n.maintenance_reason = Some("disk swap".into());
    })
    .await;
    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("active", deploy(None)))
            .await,
    );
    assert!(
        matches!(e, ConductorError::NodeInMaintenance { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "The provisioning operation can't be performed on node {uuid} because it's in \
             maintenance mode."
        )
    );
    let node = h.node(uuid).await;
    untouched(&node, S::Available);
    assert_eq!(node.target_provision_state, None);

    // Manual cleaning says "cleaning".
    h.provision(uuid, "manage", ProvisionAction::Manage).await;
    let e = refused(
        h.conductor
            .provision(
                &ident(uuid),
                request(
                    "clean",
                    clean(serde_json::json!([{"interface": "bios", "step": "factory_reset"}])),
                ),
            )
            .await,
    );
    assert_eq!(
        e.to_string(),
        format!(
            "The cleaning operation can't be performed on node {uuid} because it's in \
             maintenance mode."
        )
    );
    untouched(&h.node(uuid).await, S::Manageable);

    // Leaving maintenance clears the reason (and any fault).
    h.update(uuid, |n| n.maintenance = false).await;
    let node = h.node(uuid).await;
    assert!(!node.maintenance);
    assert_eq!(node.maintenance_reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployed_node_is_refused_unless_in_maintenance() {
    let h = Harness::start().await;
    let uuid = h.active().await.uuid;
    let e = refused(h.conductor.destroy_node(&ident(uuid)).await);
    assert!(matches!(e, ConductorError::InvalidState(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "Can not delete node \"{uuid}\" while it is in provision state \"active\". Valid \
             provision states to perform deletion are: \"('manageable', 'enroll', 'adopt \
             failed', 'available')\", or set the node into maintenance mode"
        )
    );
    untouched(&h.node(uuid).await, S::Active);

    let instance = "0b2ab0e5-8f4a-4c1e-8d5f-2f3f5a0c9b77";
    h.update(uuid, |n| n.instance_uuid = Some(instance.into()))
        .await;
    let e = refused(h.conductor.destroy_node(&ident(uuid)).await);
    assert!(matches!(e, ConductorError::NodeAssociated { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("Node {uuid} is associated with instance {instance}.")
    );
    untouched(&h.node(uuid).await, S::Active);

    // Maintenance bypasses both the state and the instance checks.
    h.update(uuid, |n| n.maintenance = true).await;
    h.conductor
        .destroy_node(&ident(uuid))
        .await
        .expect("a node in maintenance can be deleted");
    let gone = h.store.get_node(&ident(uuid)).await;
    assert!(
        matches!(gone, Err(DbError::NotFound { kind: "Node", .. })),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_nodes_refuse_undeploy_rebuild_and_delete() {
    let h = Harness::start().await;
    let uuid = h.active().await.uuid;
    h.update(uuid, |n| {
        n.protected = true;
        n.protected_reason = Some("production".into());
    })
    .await;
    let expected = format!("Node {uuid} is protected and cannot be undeployed, rebuilt or deleted");

    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("deleted", ProvisionAction::Undeploy))
            .await,
    );
    assert!(matches!(e, ConductorError::NodeProtected(_)), "{e:?}");
    assert_eq!(e.to_string(), expected);
    untouched(&h.node(uuid).await, S::Active);

    let rebuild = ProvisionAction::Rebuild {
        configdrive: None,
        deploy_steps: Vec::new(),
    };
    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("rebuild", rebuild))
            .await,
    );
    assert!(matches!(e, ConductorError::NodeProtected(_)), "{e:?}");
    assert_eq!(e.to_string(), expected);

    // Maintenance does not lift protection.
    h.update(uuid, |n| n.maintenance = true).await;
    let e = refused(h.conductor.destroy_node(&ident(uuid)).await);
    assert!(matches!(e, ConductorError::NodeProtected(_)), "{e:?}");
    assert_eq!(e.to_string(), expected);

    let node = h.node(uuid).await;
    untouched(&node, S::Active);
    assert!(node.protected);
    assert_eq!(node.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_busy_with_a_flow_answers_node_locked() {
    let cfg = ConductorConfig {
        node_locked_retry_attempts: 1,
        ..config()
    };
    let h = Harness::start_with(cfg, delays(&[("deploy", "2")])).await;
    let uuid = h.available().await.uuid;
    h.provision(uuid, "active", deploy(None)).await;

    // The deploy holds the node for a few seconds (prepare and the deploy
    // step each take two).
    let node = h.node(uuid).await;
    assert_eq!(node.provision_state, S::Deploying);
    assert_eq!(node.target_provision_state, Some(S::Active));
    assert_eq!(node.reservation.as_deref(), Some(HOST));
    let locked = format!(
        "Node {uuid} is locked by host {HOST}, please retry after the current operation is \
         completed."
    );

    // Taking the lock fails at once (one attempt configured) ...
    let e = refused(
        h.conductor
            .change_power_state(
                &ident(uuid),
                PowerRequest {
                    target: PowerState::On,
                    timeout: None,
                },
            )
            .await,
    );
    assert!(matches!(e, ConductorError::NodeLocked { .. }), "{e:?}");
    assert_eq!(e.to_string(), locked);
    let e = refused(
        h.conductor
            .update_node(
                &ident(uuid),
                Box::new(|n: &mut Node| {
                    n.maintenance = true;
                    Ok(())
                }),
                false,
            )
            .await,
    );
    assert_eq!(e.to_string(), locked);
    let e = refused(
        h.conductor
            .set_traits(&ident(uuid), vec!["CUSTOM_GPU".into()])
            .await,
    );
    assert_eq!(e.to_string(), locked);

    // ... and a verb the deploying state does not accept reports the
    // holder instead of the state.
    let e = refused(
        h.conductor
            .provision(&ident(uuid), request("deleted", ProvisionAction::Undeploy))
            .await,
    );
    assert!(matches!(e, ConductorError::NodeLocked { .. }), "{e:?}");
    assert_eq!(e.to_string(), locked);

    // None of it disturbed the deploy.
    let node = h
        .wait_for_state_within(uuid, S::Active, Duration::from_secs(15))
        .await;
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error, None);
    assert!(!node.maintenance);
    assert!(node.traits.is_empty());
    assert_eq!(node.target_power_state, None);

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_worker_pool_answers_no_free_worker_and_says_so_on_the_node() {
    let cfg = ConductorConfig {
        workers_pool_size: 1,
        ..config()
    };
    let h = Harness::start_with(cfg, delays(&[("deploy", "2")])).await;
    let busy = h.available().await.uuid;
    let idle = h.manageable().await.uuid;
    h.provision(busy, "active", deploy(None)).await;

    let no_worker = "Requested action cannot be performed due to lack of free conductor workers.";
    let e = refused(
        h.conductor
            .provision(&ident(idle), request("provide", ProvisionAction::Provide))
            .await,
    );
    assert!(matches!(e, ConductorError::NoFreeWorker), "{e:?}");
    assert_eq!(e.to_string(), no_worker);
    let node = h.node(idle).await;
    untouched(&node, S::Manageable);
    assert_eq!(node.target_provision_state, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some("No free conductor workers available")
    );

    let e = refused(
        h.conductor
            .change_power_state(
                &ident(idle),
                PowerRequest {
                    target: PowerState::On,
                    timeout: None,
                },
            )
            .await,
    );
    assert!(matches!(e, ConductorError::NoFreeWorker), "{e:?}");
    let node = h.node(idle).await;
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert_eq!(node.target_power_state, None);
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some("No free conductor workers available")
    );

    // Once the deploy is done the worker is free again.
    h.wait_for_state_within(busy, S::Active, Duration::from_secs(15))
        .await;
    h.provision(idle, "provide", ProvisionAction::Provide).await;
    let node = h.wait_for_state(idle, S::Available).await;
    assert_eq!(node.last_error, None);
}
