//! Start-up recovery: what a conductor that died left in the database is
//! put right when a conductor starts on it.

mod common;

use std::sync::Arc;

use common::*;
use ferric_core::{Ident, Node, PowerState, ProvisionState as S};
use ferric_db::{AfterSave, Store};
use ferric_drivers::{FakeDelays, Registry};

/// Stores a fake-hardware node in `state`, reserved by `holder` if given,
/// as a conductor killed mid-flow would leave it.
async fn left_behind(
    store: &Arc<dyn Store>,
    state: S,
    target: Option<S>,
    holder: Option<&str>,
    change: impl FnOnce(&mut Node),
) -> Node {
    let mut node = fake_node();
    Registry::builtin(ferric_drivers::DriverConfig::default())
        .fill_interfaces(&mut node)
        .expect("fake-hardware interfaces");
    let node = store.create_node(&node).await.expect("node stored");
    let by = holder.unwrap_or("someone-else");
    let mut node = store
        .reserve_node(&Ident::Uuid(node.uuid), by)
        .await
        .expect("node reserved");
    node.provision_state = state;
    node.target_provision_state = target;
    change(&mut node);
    let after = if holder.is_some() {
        AfterSave::KeepLock
    } else {
        AfterSave::Release
    };
    store.save_node(&node, by, after).await.expect("node saved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_fails_the_work_a_dead_conductor_left_behind() {
    let (dir, store) = open_store().await;
    let deploying = left_behind(&store, S::Deploying, Some(S::Active), Some(HOST), |_| {}).await;
    assert_eq!(deploying.reservation.as_deref(), Some(HOST));
    // A manual clean nobody holds: its target falls back to the default.
    let cleaning = left_behind(&store, S::Cleaning, Some(S::Manageable), None, |_| {}).await;
    assert_eq!(cleaning.reservation, None);
    // A power change this host had started on a deployed node.
    let powering = left_behind(&store, S::Active, None, Some(HOST), |n| {
        n.power_state = Some(PowerState::Off);
        n.target_power_state = Some(PowerState::On);
    })
    .await;
    let verifying = left_behind(&store, S::Verifying, Some(S::Manageable), None, |_| {}).await;
    let deleting = left_behind(&store, S::Deleting, Some(S::Available), None, |_| {}).await;
    // A live conductor's node is not ours to touch...
    store
        .register_conductor("other-host", "", &[], chrono::Utc::now())
        .await
        .expect("other conductor registered");
    let theirs = left_behind(
        &store,
        S::Deploying,
        Some(S::Active),
        Some("other-host"),
        |_| {},
    )
    .await;
    // ...but a lock held by a host that runs no conductor is an orphan.
    let orphan = left_behind(
        &store,
        S::Deploying,
        Some(S::Active),
        Some("gone-host"),
        |_| {},
    )
    .await;
    // A node waiting for a callback is left to the timeout checks.
    let waiting = left_behind(&store, S::CleanWait, Some(S::Available), None, |_| {}).await;

    let h = Harness::start_on(dir, store, config(), FakeDelays::default(), None).await;
    let stuck = |state: &str| {
        format!("The {state} state can't be resumed by conductor {HOST}. Moving to fail state.")
    };

    let node = h.node(deploying.uuid).await;
    assert_eq!(node.provision_state, S::DeployFailed);
    assert_eq!(node.target_provision_state, Some(S::Active));
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(stuck("deploying").as_str())
    );

    let node = h.node(cleaning.uuid).await;
    assert_eq!(node.provision_state, S::CleanFailed);
    assert_eq!(node.target_provision_state, Some(S::Available));
    assert_eq!(node.reservation, None);
    assert_eq!(node.last_error.as_deref(), Some(stuck("cleaning").as_str()));
    assert!(!node.maintenance);

    let node = h.node(powering.uuid).await;
    assert_eq!(node.provision_state, S::Active);
    assert_eq!(node.power_state, Some(PowerState::Off));
    assert_eq!(node.target_power_state, None);
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some("Pending power operation was aborted due to conductor restart")
    );

    let node = h.node(verifying.uuid).await;
    assert_eq!(node.provision_state, S::Enroll);
    assert_eq!(node.target_provision_state, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(stuck("verifying").as_str())
    );

    let node = h.node(deleting.uuid).await;
    assert_eq!(node.provision_state, S::Error);
    assert_eq!(node.target_provision_state, None);
    assert_eq!(node.last_error.as_deref(), Some(stuck("deleting").as_str()));

    let node = h.node(theirs.uuid).await;
    assert_eq!(node.provision_state, S::Deploying);
    assert_eq!(node.reservation.as_deref(), Some("other-host"));
    assert_eq!(node.last_error, None);

    let node = h.node(orphan.uuid).await;
    assert_eq!(node.provision_state, S::DeployFailed);
    assert_eq!(node.reservation, None);
    assert_eq!(
        node.last_error.as_deref(),
        Some(stuck("deploying").as_str())
    );

    let node = h.node(waiting.uuid).await;
    assert_eq!(node.provision_state, S::CleanWait);
    assert_eq!(node.last_error, None);

    // The recovered nodes can be worked on again.
    h.provision(deploying.uuid, "active", deploy(None)).await;
    let node = h.wait_for_state(deploying.uuid, S::Active).await;
    assert_eq!(node.last_error, None);

    h.conductor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_registers_the_conductor_and_stop_takes_it_offline() {
    let h = Harness::start().await;
    assert_eq!(h.conductor.host(), HOST);
    let record = h.store.get_conductor(HOST).await.expect("registered");
    assert!(record.online);
    assert_eq!(record.conductor_group, "");
    assert!(
        record.drivers.iter().any(|d| d == "fake-hardware"),
        "{:?}",
        record.drivers
    );
    assert!(h.conductor.is_alive(&record));

    // A node held by a flow when the conductor stops is let go.
    let uuid = h.manageable().await.uuid;
    h.conductor.stop().await;
    let record = h.store.get_conductor(HOST).await.expect("still recorded");
    assert!(!record.online);
    assert!(!h.conductor.is_alive(&record));
    assert_eq!(h.node(uuid).await.reservation, None);

    // A stopped conductor takes no more work.
    let e = match h
        .conductor
        .provision(
            &ident(uuid),
            request("provide", ferric_conductor::ProvisionAction::Provide),
        )
        .await
    {
        Ok(()) => panic!("a stopped conductor accepted work"),
        Err(e) => e,
    };
    assert!(
        matches!(e, ferric_conductor::ConductorError::NoFreeWorker),
        "{e:?}"
    );
}

#[tokio::test]
async fn start_refuses_a_configuration_that_cannot_work() {
    let (dir, store) = open_store().await;
    let cfg = ferric_conductor::ConductorConfig {
        workers_pool_size: 0,
        ..config()
    };
    let registry = Arc::new(Registry::builtin(ferric_drivers::DriverConfig::default()));
    let started = ferric_conductor::Conductor::start(
        store,
        registry,
        cfg,
        Arc::new(ferric_conductor::SystemClock),
    )
    .await;
    match started {
        Ok(_) => panic!("a conductor with no workers started"),
        Err(e) => assert_eq!(
            e.to_string(),
            "conductor.workers_pool_size must be at least 1"
        ),
    }
    drop(dir);
}
