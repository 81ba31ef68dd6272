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
use crate::task::{call_unlocked, Task};
use crate::Inner;
use ferric_core::InterfaceKind;

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
        // A power interface still to be built has no BMC to ask.
        if !driver.power.available() {
            return Ok(());
        }
        let uuid = node.uuid;
        let mut ports = Vec::new();
        if node.power_state.is_none() {
            let valid = call_unlocked(inner, &mut node, &mut ports, "power.validate", |d, t| {
                d.power.validate(t)
            })
            .await;
            if valid.is_err() {
                self.count(uuid, false);
                return Ok(());
            }
        }
        let read = call_unlocked(
            inner,
            &mut node,
            &mut ports,
            "power.get_power_state",
            |d, t| d.power.get_power_state(t),
        )
        .await;
        let actual = known(read);
        let failures = self.count(uuid, actual.is_none());
        let cfg = &inner.config;
        if decide(
            node.power_state,
            actual,
            failures,
            node.disable_power_off,
            cfg,
        ) == Sync::Nothing
        {
            if actual.is_none() {
                tracing::warn!(node = %uuid, failures, "could not read the power state");
            }
            return Ok(());
        }
        let mut task = match inner.try_lock(&Ident::Uuid(uuid)).await {
            Ok(t) => t,
            Err(ConductorError::NodeLocked { .. } | ConductorError::NotFound { .. }) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        // Read again under the lock: a power change may have landed since.
        let actual = known(read_power(&mut task).await).or(actual);
        let recorded = task.node.power_state;
        match decide(recorded, actual, failures, task.node.disable_power_off, cfg) {
            Sync::Nothing => {}
            Sync::Record => task.node.power_state = actual,
            Sync::GiveUp => give_up(&mut task, actual, recorded),
            Sync::Restore(target) => {
                tracing::warn!(node = %uuid, ?actual, %target, "power state changed outside Ferric; restoring it");
                let _ = crate::power::node_power_action(&mut task, target, None).await?;
            }
        }
        task.release().await.map(drop)
    }
}

/// Takes nodes out of maintenance once the BMC that failed the sync answers
/// again (Ironic's power-failure recovery).
pub(crate) async fn recover_power_failures(inner: &Arc<Inner>) -> Result<()> {
    let filter = NodeFilter {
        maintenance: Some(true),
        reserved: Some(false),
        fault: Some("power failure".into()),
        ..NodeFilter::default()
    };
    for node in inner.store.list_nodes(&filter, &Page::default()).await? {
        if node.provision_state == S::Enroll || node.target_power_state.is_some() {
            continue;
        }
        let mut task = match inner.try_lock(&Ident::Uuid(node.uuid)).await {
            Ok(t) => t,
            Err(ConductorError::NodeLocked { .. } | ConductorError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let answer = match task.validate(InterfaceKind::Power).await {
            Ok(()) => known(read_power(&mut task).await),
            Err(_) => None,
        };
        let Some(power) = answer.filter(|_| task.node.fault.as_deref() == Some("power failure"))
        else {
            task.release_unchanged().await?;
            continue;
        };
        tracing::info!(node = %task.node.uuid, %power, "the BMC answers again; leaving maintenance");
        task.node.power_state = Some(power);
        task.node.maintenance = false;
        task.node.maintenance_reason = None;
        task.node.fault = None;
        task.release().await?;
    }
    Ok(())
}

async fn read_power(task: &mut Task) -> Result<PowerState, ferric_drivers::DriverError> {
    task.call("power.get_power_state", |d, t| d.power.get_power_state(t))
        .await
}

/// The BMC's answer, or `None` if it could not say.
fn known(read: Result<PowerState, ferric_drivers::DriverError>) -> Option<PowerState> {
    match read {
        Ok(p) if p != PowerState::Error => Some(p),
        _ => None,
    }
}

/// What the sync does about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    Nothing,
    /// Store what the BMC says.
    Record,
    /// Put the hardware back to the recorded state.
    Restore(PowerState),
    /// The BMC keeps failing: maintenance, fault `power failure`.
    GiveUp,
}

/// Ironic's decision, as a pure function of what was recorded, what the
/// BMC said (`None`: it could not be read) and how often reading failed.
fn decide(
    recorded: Option<PowerState>,
    actual: Option<PowerState>,
    failures: u32,
    disable_power_off: bool,
    cfg: &crate::ConductorConfig,
) -> Sync {
    if failures > cfg.power_state_sync_max_retries {
        return Sync::GiveUp;
    }
    let Some(actual) = actual else {
        return Sync::Nothing;
    };
    match recorded {
        Some(r) if r == actual => Sync::Nothing,
        Some(r) if cfg.force_power_state_during_sync && !disable_power_off => Sync::Restore(r),
        _ => Sync::Record,
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

#[cfg(test)]
mod tests {
    use super::*;
    use PowerState::{Off, On};

    #[test]
    fn the_sync_decides_as_ironic_does() {
        let cfg = crate::ConductorConfig::default();
        assert_eq!(decide(Some(On), Some(On), 0, false, &cfg), Sync::Nothing);
        assert_eq!(decide(None, Some(Off), 0, false, &cfg), Sync::Record);
        assert_eq!(
            decide(Some(On), Some(Off), 0, false, &cfg),
            Sync::Restore(On)
        );
        assert_eq!(decide(Some(On), Some(Off), 0, true, &cfg), Sync::Record);
        let lenient = crate::ConductorConfig {
            force_power_state_during_sync: false,
            ..cfg.clone()
        };
        assert_eq!(
            decide(Some(On), Some(Off), 0, false, &lenient),
            Sync::Record
        );
        assert_eq!(decide(Some(On), None, 3, false, &cfg), Sync::Nothing);
        assert_eq!(decide(Some(On), None, 4, false, &cfg), Sync::GiveUp);
    }
}
