//! Wait states end: a node waiting for a callback that does not come in
//! time fails, as Ironic's `*_callback_timeout` options say.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use ferric_core::{Event, Ident, Node, PowerState, ProvisionState as S};
use ferric_db::NodeFilter;

use crate::config::ConductorConfig;
use crate::error::Result;
use crate::flows;
use crate::task::Task;
use crate::Inner;

/// The `last_error` of a node whose wait has lasted too long at `now`, or
/// `None` if it may wait on. Pure: the clock is an input.
pub(crate) fn expired(node: &Node, now: DateTime<Utc>, cfg: &ConductorConfig) -> Option<String> {
    let (since, timeout) = match node.provision_state {
        S::DeployWait => (node.provision_updated_at, cfg.deploy_callback_timeout),
        S::CleanWait => (node.provision_updated_at, cfg.clean_callback_timeout),
        S::InspectWait => (node.inspection_started_at, cfg.inspect_wait_timeout),
        S::RescueWait => (node.provision_updated_at, cfg.rescue_callback_timeout),
        S::ServiceWait => (node.provision_updated_at, cfg.service_callback_timeout),
        _ => return None,
    };
    if timeout == 0 {
        return None;
    }
    let since = since.unwrap_or(node.created_at);
    if now - since <= Duration::seconds(i64::try_from(timeout).unwrap_or(i64::MAX)) {
        return None;
    }
    let uuid = node.uuid;
    Some(match node.provision_state {
        S::DeployWait => format!("Timeout reached while waiting for callback for node {uuid}"),
        S::CleanWait => format!(
            "Timeout reached while cleaning the node. Please check if the ramdisk responsible for the \
             cleaning is running on the node. Failed on step {}.",
            ferric_core::step_repr(&node.clean_step)
        ),
        S::InspectWait => "Timeout reached while inspecting the node. Please check if the ramdisk \
             responsible for the inspection is running on the node."
            .to_owned(),
        S::RescueWait => format!("Timeout reached while waiting for rescue ramdisk callback for node {uuid}"),
        _ => format!(
            "Timeout reached while servicing the node. Please check if the ramdisk responsible for the \
             servicing is running on the node. Failed on step {}.",
            ferric_core::step_repr(&node.service_step)
        ),
    })
}

/// Fails every unlocked, not-in-maintenance node whose wait has expired.
pub(crate) async fn fail_expired(inner: &Arc<Inner>) -> Result<()> {
    let filter = NodeFilter {
        reserved: Some(false),
        maintenance: Some(false),
        provision_states: Some(
            ferric_core::ProvisionState::ALL
                .iter()
                .copied()
                .filter(|s| s.is_waiting())
                .collect(),
        ),
        ..NodeFilter::default()
    };
    let now = inner.clock.now();
    let mut pages = super::BriefPages::new(inner, filter);
    while let Some(nodes) = pages.next().await? {
        let due: Vec<_> = nodes
            .iter()
            .filter(|n| expired(n, now, &inner.config).is_some())
            .map(|n| n.uuid)
            .collect();
        for uuid in due {
            fail_if_expired(inner, uuid, now).await?;
        }
    }
    Ok(())
}

/// Fails the node if, under its lock, its wait has still expired.
async fn fail_if_expired(
    inner: &Arc<Inner>,
    uuid: ferric_core::NodeUuid,
    now: DateTime<Utc>,
) -> Result<()> {
    {
        let task = match inner.try_lock(&Ident::Uuid(uuid)).await {
            Ok(t) => t,
            Err(
                crate::ConductorError::NodeLocked { .. } | crate::ConductorError::NotFound { .. },
            ) => return Ok(()),
            Err(e) => return Err(e),
        };
        match expired(&task.node, now, &inner.config) {
            Some(msg) => fail_wait(task, msg).await,
            None => task.release_unchanged().await,
        }
    }
}

async fn fail_wait(mut task: Task, msg: String) -> Result<()> {
    tracing::warn!(node = %task.node.uuid, state = %task.node.provision_state, "{msg}");
    match task.node.provision_state {
        S::DeployWait => flows::deploy::fail(task, msg).await,
        S::CleanWait => flows::clean::fail(task, msg).await,
        S::ServiceWait => flows::service::fail(task, msg).await,
        S::InspectWait => {
            if task.driver().is_ok() {
                let _ = task.call("inspect.abort", |d, t| d.inspect.abort(t)).await;
            }
            task.node.last_error = Some(msg);
            task.fire(Event::Fail, None)?;
            task.release().await.map(drop)
        }
        S::RescueWait => {
            let _ = crate::power::node_power_action(&mut task, PowerState::Off, None).await?;
            if task.driver().is_ok() {
                let _ = task
                    .call("rescue.clean_up", |d, t| d.rescue.clean_up(t))
                    .await;
            }
            task.remove_internal("agent_url");
            task.node.last_error = Some(msg);
            task.fire(Event::Fail, None)?;
            task.release().await.map(drop)
        }
        _ => task.release_unchanged().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferric_core::{Interfaces, NodeUuid};

    fn waiting(state: ferric_core::ProvisionState, since: DateTime<Utc>) -> Node {
        let mut node = Node::enroll(
            NodeUuid::new_random(),
            "fake-hardware".into(),
            Interfaces::default(),
            since,
        );
        node.provision_state = state;
        node.provision_updated_at = Some(since);
        node.inspection_started_at = Some(since);
        node
    }

    #[test]
    fn waits_expire_after_their_own_timeout() {
        let cfg = ConductorConfig {
            deploy_callback_timeout: 100,
            clean_callback_timeout: 200,
            inspect_wait_timeout: 300,
            ..ConductorConfig::default()
        };
        let t0 = Utc::now();
        let at = |s: i64| t0 + Duration::seconds(s);
        let deploy = waiting(S::DeployWait, t0);
        assert_eq!(expired(&deploy, at(100), &cfg), None);
        let msg = expired(&deploy, at(101), &cfg).unwrap();
        assert_eq!(
            msg,
            format!(
                "Timeout reached while waiting for callback for node {}",
                deploy.uuid
            )
        );
        let clean = waiting(S::CleanWait, t0);
        assert_eq!(expired(&clean, at(101), &cfg), None);
        assert!(expired(&clean, at(201), &cfg)
            .unwrap()
            .ends_with("Failed on step {}."));
        let inspect = waiting(S::InspectWait, t0);
        assert_eq!(expired(&inspect, at(300), &cfg), None);
        assert!(expired(&inspect, at(301), &cfg).is_some());
        assert_eq!(expired(&waiting(S::Active, t0), at(1_000_000), &cfg), None);
    }

    #[test]
    fn a_zero_timeout_never_expires() {
        let cfg = ConductorConfig {
            rescue_callback_timeout: 0,
            ..ConductorConfig::default()
        };
        let t0 = Utc::now();
        let node = waiting(S::RescueWait, t0);
        assert_eq!(expired(&node, t0 + Duration::days(365), &cfg), None);
    }
}
