//! Start-up recovery: what a conductor killed at any moment left behind.
//!
//! Its own reservations are released; pending power changes are dropped;
//! nodes left in an in-progress state (nobody will resume the work) move to
//! their failed state with `last_error` saying why.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferric_core::states::land;
use ferric_core::{Event, Ident, Node, ProvisionState};
use ferric_db::{AfterSave, DbError, NodeFilter, Page};

use crate::error::Result;
use crate::Inner;

pub(crate) async fn recover_after_restart(inner: &Arc<Inner>) -> Result<()> {
    let host = inner.host.as_str();
    let mine = NodeFilter {
        reserved_by: Some(host.to_owned()),
        ..NodeFilter::default()
    };
    for mut node in inner.store.list_nodes(&mine, &Page::default()).await? {
        if node.target_power_state.take().is_some() {
            node.last_error =
                Some("Pending power operation was aborted due to conductor restart".into());
        }
        recover_interrupted(&mut node, host, inner.clock.now(), agent_window(inner));
        inner
            .store
            .save_node(&node, host, AfterSave::Release)
            .await?;
        tracing::info!(node = %node.uuid, state = %node.provision_state, "released after restart");
    }
    recover_orphans(inner).await
}

/// Frees nodes whose lock holder is gone (a conductor that stopped
/// heartbeating, or a host name that no longer runs), then fails nodes
/// left in an in-progress state with nobody working on them. Run at start
/// and periodically.
pub(crate) async fn recover_orphans(inner: &Arc<Inner>) -> Result<()> {
    let host = inner.host.as_str();
    let now = inner.clock.now();
    let timeout = chrono::Duration::seconds(
        i64::try_from(inner.config.heartbeat_timeout).unwrap_or(i64::MAX),
    );
    let reserved = NodeFilter {
        reserved: Some(true),
        ..NodeFilter::default()
    };
    let mut pages = super::BriefPages::new(inner, reserved);
    while let Some(nodes) = pages.next().await? {
        for node in nodes {
            let Some(holder) = node.reservation.as_deref().filter(|h| *h != host) else {
                continue;
            };
            let alive = match inner.store.get_conductor(holder).await {
                Ok(record) => record.is_alive(now, timeout),
                Err(DbError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            if !alive {
                tracing::warn!(node = %node.uuid, holder, "releasing a lock held by a conductor that is gone");
                inner.store.release_node(node.uuid, holder).await?;
            }
        }
    }
    let stuck = NodeFilter {
        reserved: Some(false),
        provision_states: Some(
            ProvisionState::ALL
                .iter()
                .copied()
                .filter(|s| s.is_in_progress())
                .collect(),
        ),
        ..NodeFilter::default()
    };
    let mut pages = super::BriefPages::new(inner, stuck);
    while let Some(nodes) = pages.next().await? {
        for node in nodes {
            recover_stuck(inner, node.uuid).await?;
        }
    }
    Ok(())
}

/// Moves a node nobody works on out of its in-progress state.
async fn recover_stuck(inner: &Arc<Inner>, uuid: ferric_core::NodeUuid) -> Result<()> {
    let host = inner.host.as_str();
    let mut node = match inner.store.reserve_node(&Ident::Uuid(uuid), host).await {
        Ok(n) => n,
        Err(DbError::NodeLocked { .. } | DbError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    recover_interrupted(&mut node, host, inner.clock.now(), agent_window(inner));
    inner
        .store
        .save_node(&node, host, AfterSave::Release)
        .await?;
    tracing::warn!(node = %node.uuid, state = %node.provision_state, "moved out of an interrupted state");
    Ok(())
}

/// How recent an agent's last heartbeat must be for an interrupted flow to
/// wait for it rather than fail: two heartbeat periods.
fn agent_window(inner: &Inner) -> chrono::Duration {
    let timeout = inner.registry.config().agent.ramdisk_heartbeat_timeout;
    chrono::Duration::seconds(i64::try_from(timeout.saturating_mul(2)).unwrap_or(i64::MAX))
}

/// Moves a node out of an in-progress state its conductor stopped in. A
/// step flow whose agent is alive goes back to waiting for it: the agent's
/// next heartbeat carries it on from the step it was at (the step runs again
/// if the agent never got it). Anything else fails, as in Ironic.
pub(crate) fn recover_interrupted(
    node: &mut Node,
    host: &str,
    now: DateTime<Utc>,
    agent_window: chrono::Duration,
) {
    use ProvisionState as S;
    let resumable = matches!(
        node.provision_state,
        S::Deploying | S::Cleaning | S::Servicing
    ) && ferric_drivers::agent::agent_heard_within(node, now, agent_window);
    if !resumable {
        return fail_interrupted(node, host, now);
    }
    let Ok(landing) = land(
        node.provision_state,
        Event::Wait,
        node.target_provision_state,
    ) else {
        return fail_interrupted(node, host, now);
    };
    tracing::warn!(node = %node.uuid, state = %node.provision_state, "flow interrupted while its agent is alive; waiting for the agent's next heartbeat");
    node.provision_state = landing.state;
    node.target_provision_state = landing.target;
    node.provision_updated_at = Some(now);
    node.driver_internal_info
        .insert("step_interrupted".into(), serde_json::Value::Bool(true));
}

/// Moves a node out of an in-progress state that cannot be resumed.
pub(crate) fn fail_interrupted(node: &mut Node, host: &str, now: DateTime<Utc>) {
    let state = node.provision_state;
    if !state.is_in_progress() {
        return;
    }
    let Ok(landing) = land(state, Event::Fail, None) else {
        return;
    };
    node.last_error = Some(format!(
        "The {state} state can't be resumed by conductor {host}. Moving to fail state."
    ));
    node.provision_state = landing.state;
    node.target_provision_state = landing.target;
    node.provision_updated_at = Some(now);
    if state == ProvisionState::Inspecting {
        node.inspection_started_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_core::{Interfaces, NodeUuid};

    #[test]
    fn a_step_flow_whose_agent_is_alive_waits_for_it_instead_of_failing() {
        use ProvisionState as S;
        let now = Utc::now();
        let window = chrono::Duration::seconds(600);
        let node_in = |state, heartbeat: chrono::DateTime<Utc>| {
            let mut node = Node::enroll(
                NodeUuid::new_random(),
                "fake-hardware".into(),
                Interfaces::default(),
                now,
            );
            node.provision_state = state;
            node.target_provision_state = state.default_target();
            let info = &mut node.driver_internal_info;
            info.insert(
                "agent_url".into(),
                serde_json::json!("http://192.0.2.1:9999"),
            );
            info.insert(
                "agent_last_heartbeat".into(),
                serde_json::json!(ferric_core::naive_timestamp(heartbeat)),
            );
            node
        };
        for (from, to) in [
            (S::Deploying, S::DeployWait),
            (S::Cleaning, S::CleanWait),
            (S::Servicing, S::ServiceWait),
        ] {
            let mut node = node_in(from, now - chrono::Duration::seconds(100));
            let target = node.target_provision_state;
            recover_interrupted(&mut node, "c1", now, window);
            assert_eq!(node.provision_state, to, "{from}");
            assert_eq!(node.target_provision_state, target);
            assert_eq!(node.last_error, None);
            assert_eq!(node.driver_internal_info["step_interrupted"], true);
        }
        // An agent silent for too long, or a flow no agent carries on,
        // fails as before.
        let mut stale = node_in(S::Deploying, now - chrono::Duration::seconds(601));
        recover_interrupted(&mut stale, "c1", now, window);
        assert_eq!(stale.provision_state, S::DeployFailed);
        let mut inspecting = node_in(S::Inspecting, now);
        recover_interrupted(&mut inspecting, "c1", now, window);
        assert_eq!(inspecting.provision_state, S::InspectFailed);
    }

    #[test]
    fn interrupted_states_fail_as_ironic_does() {
        use ProvisionState as S;
        let cases = [
            (S::Deploying, S::DeployFailed, Some(S::Active)),
            (S::Cleaning, S::CleanFailed, Some(S::Available)),
            (S::Verifying, S::Enroll, None),
            (S::Inspecting, S::InspectFailed, Some(S::Manageable)),
            (S::Adopting, S::AdoptFailed, Some(S::Active)),
            (S::Rescuing, S::RescueFailed, Some(S::Rescue)),
            (S::Unrescuing, S::UnrescueFailed, Some(S::Active)),
            (S::Deleting, S::Error, None),
            (S::Servicing, S::ServiceFailed, Some(S::Active)),
        ];
        let now = Utc::now();
        for (from, to, target) in cases {
            let mut node = Node::enroll(
                NodeUuid::new_random(),
                "fake-hardware".into(),
                Interfaces::default(),
                now,
            );
            node.provision_state = from;
            fail_interrupted(&mut node, "c1", now);
            assert_eq!(
                (node.provision_state, node.target_provision_state),
                (to, target),
                "{from}"
            );
            assert_eq!(
                node.last_error.as_deref(),
                Some(
                    format!(
                        "The {from} state can't be resumed by conductor c1. Moving to fail state."
                    )
                    .as_str()
                )
            );
        }
        let mut active = Node::enroll(
            NodeUuid::new_random(),
            "fake-hardware".into(),
            Interfaces::default(),
            now,
        );
        active.provision_state = S::Active;
        fail_interrupted(&mut active, "c1", now);
        assert_eq!(active.provision_state, S::Active);
        assert_eq!(active.last_error, None);
    }
}
