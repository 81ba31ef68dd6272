//! The power-state sync: what the BMC says against what Ferric recorded.
//!
//! A mismatch is corrected towards the recorded state when
//! `force_power_state_during_sync` is on (someone pressed the button), else
//! recorded as found. A BMC that keeps failing puts the node in
//! maintenance with fault `power failure`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferric_core::{Ident, Node, NodeUuid, PowerState, ProvisionState as S};
use ferric_db::{NodeFilter, Page};

use crate::error::{ConductorError, Result};
use crate::task::Task;
use crate::Inner;

/// Consecutive failures per node, kept between runs.
#[derive(Default)]
pub(crate) struct PowerSync {
    failures: Mutex<HashMap<NodeUuid, u32>>,
}

/// Nodes the sync leaves alone: waiting on an agent, not yet managed, or
/// in the middle of a power change.
fn skipped(node: &Node) -> bool {
    matches!(
        node.provision_state,
        S::DeployWait | S::CleanWait | S::Enroll | S::AdoptFailed
    ) || node.target_power_state.is_some()
        || node.reservation.is_some()
        || node.maintenance
}

impl PowerSync {
    fn count(&self, uuid: NodeUuid, failed: bool) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            let n = map.entry(uuid).or_insert(0);
            *n += 1;
            *n
        } else {
            map.remove(&uuid);
            0
        }
    }

    pub(crate) async fn run(&self, inner: &Arc<Inner>) -> Result<()> {
        let filter = NodeFilter {
            maintenance: Some(false),
            reserved: Some(false),
            ..NodeFilter::default()
        };
        for node in inner.store.list_nodes(&filter, &Page::default()).await? {
            if skipped(&node) {
                continue;
            }
            if let Err(e) = self.sync_one(inner, node).await {
                tracing::warn!(error = %e, "power sync of a node failed");
            }
        }
        Ok(())
    }

    async fn sync_one(&self, inner: &Arc<Inner>, mut node: Node) -> Result<()> {
        let Ok(driver) = inner.registry.compose(&node) else {
            return Ok(());
        };
        let uuid = node.uuid;
        let reading = {
            let task = ferric_drivers::Task {
                node: &mut node,
                ports: &[],
            };
            if task.node.power_state.is_none() && driver.power.validate(&task).await.is_err() {
                self.count(uuid, false);
                return Ok(());
            }
            driver.power.get_power_state(&task).await
        };
        let actual = match reading {
            Ok(p) if p != PowerState::Error => Some(p),
            _ => None,
        };
        let failures = self.count(uuid, actual.is_none());
        if actual.is_some() && actual == node.power_state {
            return Ok(());
        }
        if actual.is_none() && failures <= inner.config.power_state_sync_max_retries {
            tracing::warn!(node = %uuid, failures, "could not read the power state");
            return Ok(());
        }
        let task = match inner.try_lock(&Ident::Uuid(uuid)).await {
            Ok(t) => t,
            Err(ConductorError::NodeLocked { .. } | ConductorError::NotFound { .. }) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        self.correct(task, actual, failures).await
    }

    async fn correct(
        &self,
        mut task: Task,
        actual: Option<PowerState>,
        failures: u32,
    ) -> Result<()> {
        let recorded = task.node.power_state;
        if failures > task.inner.config.power_state_sync_max_retries {
            give_up(&mut task, actual, recorded);
        } else if recorded.is_none() {
            task.node.power_state = actual;
        } else if let (true, Some(recorded)) =
            (task.inner.config.force_power_state_during_sync, recorded)
        {
            if !task.node.disable_power_off || recorded == PowerState::On {
                tracing::warn!(node = %task.node.uuid, ?actual, %recorded, "power state changed outside Ferric; restoring it");
                let _ = crate::power::node_power_action(&mut task, recorded, None).await?;
            }
        } else {
            task.node.power_state = actual;
        }
        task.release().await.map(drop)
    }
}

fn give_up(task: &mut Task, actual: Option<PowerState>, recorded: Option<PowerState>) {
    let show = |p: Option<PowerState>| p.map_or("None".to_owned(), |p| p.to_string());
    let msg = format!(
        "During sync_power_state, max retries exceeded for node {}, node state {} does not match expected \
         state '{}'. Updating DB state to '{}' Switching node to maintenance mode.",
        task.node.uuid,
        show(actual),
        show(recorded),
        show(actual)
    );
    task.node.power_state = actual;
    task.node.last_error = Some(msg.clone());
    if !task.node.maintenance {
        task.node.maintenance = true;
        task.node.maintenance_reason = Some(msg);
        task.node.fault = Some("power failure".into());
    }
}
