//! The power-state sync: what the BMC says against what Ferric recorded,
//! as Ironic's `do_sync_power_state` decides it.
//!
//! Every node is read under its lock (a node someone else holds is left
//! for the next run). A mismatch is corrected towards the recorded state
//! when `force_power_state_during_sync` is on (someone pressed the
//! button), else recorded as found. Every failed read and every mismatch
//! counts towards `power_state_sync_max_retries`; past it the node goes to
//! maintenance with fault `power failure`.
//!
//! It scales with the number of nodes: nodes are listed a page at a time,
//! as [`BriefNode`]s (no instance_info, no config drive), at most
//! `sync_power_state_workers` BMCs are asked at once, each read is bounded,
//! and a run stops starting reads once its period is over, so one dead
//! BMC cannot stall the others. Nodes that failed last time go first.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_core::{Ident, NodeUuid, PowerState, ProvisionState as S};
use ferric_db::{BriefNode, DbError, NodeFilter, PowerSyncRecord};
use ferric_drivers::DriverError;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::BriefPages;
use crate::error::{ConductorError, Result};
use crate::task::{call_unlocked, Task};
use crate::Inner;

/// Failed syncs in a row per node, kept between runs (Ironic's
/// `power_state_sync_count`). Nodes that sync fine are not in it.
#[derive(Default)]
pub(crate) struct PowerSync {
    counts: Mutex<HashMap<NodeUuid, u32>>,
}

/// Nodes the sync leaves alone: waiting on an agent, not yet managed, in
/// the middle of a power change, held, or in maintenance.
fn skipped(node: &ferric_core::Node) -> bool {
    skipped_when_held(node) || node.reservation.is_some()
}

impl PowerSync {
    fn count_of(&self, uuid: NodeUuid) -> u32 {
        let map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&uuid).copied().unwrap_or(0)
    }

    fn set_count(&self, uuid: NodeUuid, count: u32) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if count == 0 {
            map.remove(&uuid);
        } else {
            map.insert(uuid, count);
        }
    }

    /// The nodes that failed before, most failures first.
    fn failing_first(&self) -> Vec<NodeUuid> {
        let map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mut failing: Vec<(NodeUuid, u32)> = map.iter().map(|(u, c)| (*u, *c)).collect();
        failing.sort_by_key(|f| std::cmp::Reverse(f.1));
        failing.into_iter().map(|(u, _)| u).collect()
    }

    /// One run over every node, done by `deadline` (reads already started
    /// finish within their own bound).
    pub(crate) async fn run(self: Arc<Self>, inner: Arc<Inner>, deadline: Instant) -> Result<()> {
        let started = Instant::now();
        let mut run = Run {
            sync: self.clone(),
            inner: inner.clone(),
            slots: Arc::new(Semaphore::new(inner.config.sync_power_state_workers)),
            running: JoinSet::new(),
            deadline,
            started: 0,
        };
        let complete = run.start_all(self.failing_first()).await?;
        let count = run.started;
        run.wait_all().await;
        let seconds = started.elapsed().as_secs_f64();
        if complete {
            tracing::debug!(nodes = count, seconds, "power state sync done");
        } else if !inner.shutdown.is_cancelled() {
            tracing::warn!(
                nodes = count,
                seconds,
                "power state sync cut short: the run took its whole period; the nodes not reached wait for \
                 the next run (raise [conductor] sync_power_state_workers or sync_power_state_interval)"
            );
        }
        Ok(())
    }

    /// Ironic's `do_sync_power_state` for one node.
    async fn sync_node(&self, inner: &Arc<Inner>, uuid: NodeUuid, limit: Duration) -> Result<()> {
        let Some(held) = BriefLock::take(inner, uuid).await? else {
            return Ok(());
        };
        if skipped_when_held(held.node()) {
            return held.release().await;
        }
        let Ok(driver) = inner.registry.compose(held.node()) else {
            return held.release().await;
        };
        // A power interface still to be built has no BMC to ask.
        if !driver.power.available() {
            return held.release().await;
        }
        let count = self.count_of(uuid) + 1;
        let recorded = held.node().power_state;
        let mut node = held.node().to_read_only_node();
        let mut ports = Vec::new();
        if recorded.is_none() {
            let valid = call_unlocked(inner, &mut node, &mut ports, "power.validate", |d, t| {
                d.power.validate(t)
            })
            .await;
            if valid.is_err() {
                self.set_count(uuid, 0);
                return held.release().await;
            }
        }
        let read = tokio::time::timeout(
            limit,
            call_unlocked(
                inner,
                &mut node,
                &mut ports,
                "power.get_power_state",
                |d, t| d.power.get_power_state(t),
            ),
        )
        .await
        .unwrap_or_else(|_| {
            Err(DriverError::Timeout {
                operation: "power.get_power_state".into(),
                seconds: limit.as_secs(),
            })
        });
        let read = read_result(read);
        let cfg = &inner.config;
        let rules = Rules {
            max_retries: cfg.power_state_sync_max_retries,
            force: cfg.force_power_state_during_sync && !held.node().disable_power_off,
        };
        let (verdict, next) = decide(recorded, &read, count, rules);
        self.set_count(uuid, next);
        held.apply(verdict, &read, count).await
    }
}

/// Re-checked once the lock is held: the listing may be stale.
fn skipped_when_held(node: &ferric_core::Node) -> bool {
    matches!(
        node.provision_state,
        S::DeployWait | S::CleanWait | S::Enroll | S::AdoptFailed
    ) || node.target_power_state.is_some()
        || node.maintenance
}

/// One run's reads in flight.
struct Run {
    sync: Arc<PowerSync>,
    inner: Arc<Inner>,
    slots: Arc<Semaphore>,
    running: JoinSet<()>,
    deadline: Instant,
    started: usize,
}

impl Run {
    /// Starts syncing `uuid` once a worker is free; false if the run's
    /// time is up.
    async fn start(&mut self, uuid: NodeUuid) -> bool {
        let slot = tokio::select! {
            slot = self.slots.clone().acquire_owned() => slot,
            () = tokio::time::sleep_until(self.deadline) => return false,
            () = self.inner.shutdown.cancelled() => return false,
        };
        let Ok(slot) = slot else {
            return false;
        };
        while self.running.try_join_next().is_some() {}
        let limit = self.inner.call_timeout().min(crate::config::secs(
            self.inner.config.sync_power_state_interval,
        ));
        let (sync, inner) = (self.sync.clone(), self.inner.clone());
        self.running.spawn(async move {
            let _slot = slot;
            if let Err(e) = sync.sync_node(&inner, uuid, limit).await {
                tracing::warn!(node = %uuid, error = %e, "power sync of a node failed");
            }
        });
        self.started += 1;
        true
    }

    async fn wait_all(&mut self) {
        while self.running.join_next().await.is_some() {}
    }

    /// Starts a read of every node due, those that failed before first;
    /// false if the run's time ran out first.
    async fn start_all(&mut self, failing: Vec<NodeUuid>) -> Result<bool> {
        for uuid in &failing {
            if !self.start(*uuid).await {
                return Ok(false);
            }
        }
        let failing: HashSet<NodeUuid> = failing.into_iter().collect();
        let filter = NodeFilter {
            maintenance: Some(false),
            reserved: Some(false),
            ..NodeFilter::default()
        };
        let inner = self.inner.clone();
        let mut pages = BriefPages::new(&inner, filter);
        while let Some(nodes) = pages.next().await? {
            let due: Vec<NodeUuid> = nodes
                .iter()
                .filter(|n| !skipped(n.node()) && !failing.contains(&n.uuid))
                .map(|n| n.uuid)
                .collect();
            drop(nodes);
            for uuid in due {
                if !self.start(uuid).await {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

/// A node held by the sync, read brief. Dropped without being let go of
/// (a panic, a cancelled run), it is released in the background.
struct BriefLock {
    inner: Arc<Inner>,
    node: Option<BriefNode>,
}

impl BriefLock {
    /// Takes the node's lock; `None` if someone holds it or it is gone.
    async fn take(inner: &Arc<Inner>, uuid: NodeUuid) -> Result<Option<BriefLock>> {
        match inner.store.reserve_node_brief(uuid, &inner.host).await {
            Ok(node) => Ok(Some(BriefLock {
                inner: inner.clone(),
                node: Some(node),
            })),
            Err(DbError::NodeLocked { .. } | DbError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn node(&self) -> &BriefNode {
        self.node
            .as_ref()
            .unwrap_or_else(|| unreachable!("a BriefLock holds its node until it is let go of"))
    }

    fn record(&self) -> PowerSyncRecord {
        let node = self.node();
        PowerSyncRecord {
            power_state: node.power_state,
            maintenance: node.maintenance,
            maintenance_reason: node.maintenance_reason.clone(),
            fault: node.fault.clone(),
            last_error: node.last_error.clone(),
        }
    }

    async fn release(mut self) -> Result<()> {
        if let Some(node) = self.node.take() {
            self.inner
                .store
                .release_node(node.uuid, &self.inner.host)
                .await?;
        }
        Ok(())
    }

    async fn save(mut self, record: PowerSyncRecord) -> Result<()> {
        if let Some(node) = self.node.take() {
            self.inner
                .store
                .save_power_sync(node.uuid, &self.inner.host, &record)
                .await?;
        }
        Ok(())
    }

    /// Carries out the verdict on the held node.
    async fn apply(self, verdict: Verdict, read: &Read, attempt: u32) -> Result<()> {
        let uuid = self.node().uuid;
        let cfg = &self.inner.config;
        match verdict {
            Verdict::Matches if cfg.node_history && self.node().last_error.is_some() => {
                tracing::info!(node = %uuid, "clearing last_error after a confirmed power state match");
                let record = PowerSyncRecord {
                    last_error: None,
                    ..self.record()
                };
                self.save(record).await
            }
            Verdict::Matches => self.release().await,
            Verdict::Record(actual) => {
                let recorded = self.node().power_state;
                tracing::warn!(node = %uuid, ?recorded, %actual, "power state differs from the recorded one; recording it");
                let mut record = self.record();
                record.power_state = Some(actual);
                if recorded.is_none() && cfg.node_history {
                    record.last_error = None;
                }
                self.save(record).await
            }
            Verdict::ReadFailed => {
                let error = read.as_ref().err().map(String::as_str).unwrap_or_default();
                tracing::warn!(node = %uuid, attempt, retries = cfg.power_state_sync_max_retries, error, "could not read the power state");
                self.release().await
            }
            Verdict::GiveUp(actual) => self.give_up(actual, read.as_ref().err()).await,
            Verdict::Restore(target) => {
                let inner = self.inner.clone();
                self.release().await?;
                restore(&inner, uuid, target, attempt).await
            }
        }
    }

    /// Ironic's `handle_sync_power_state_max_retries_exceeded`.
    async fn give_up(self, actual: Option<PowerState>, error: Option<&String>) -> Result<()> {
        let node = self.node().to_read_only_node();
        let mut msg = max_retries_message(node.uuid, actual, node.power_state);
        if let Some(error) = error {
            msg.push_str(&format!(" Error: {error}"));
        }
        tracing::error!(node = %node.uuid, "{msg}");
        let mut record = self.record();
        record.power_state = actual;
        record.last_error = Some(msg.clone());
        if !node.maintenance {
            record.maintenance = true;
            record.maintenance_reason = Some(msg.clone());
            record.fault = Some("power failure".into());
        }
        let inner = self.inner.clone();
        self.save(record).await?;
        inner
            .record_history(&node, ferric_core::Severity::Error, "monitoring", &msg)
            .await;
        Ok(())
    }
}

impl Drop for BriefLock {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        runtime.spawn(async move {
            if let Err(e) = inner.store.release_node(node.uuid, &inner.host).await {
                tracing::warn!(node = %node.uuid, error = %e, "could not release a node after the power sync");
            }
        });
    }
}

/// Puts the hardware back to the recorded state, under the node's full
/// lock, if it still differs.
async fn restore(
    inner: &Arc<Inner>,
    uuid: NodeUuid,
    target: PowerState,
    attempt: u32,
) -> Result<()> {
    let mut task = match inner.try_lock(&Ident::Uuid(uuid)).await {
        Ok(t) => t,
        Err(ConductorError::NodeLocked { .. } | ConductorError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let actual = read_result(read_power(&mut task).await);
    if skipped_when_held(&task.node)
        || task.node.power_state != Some(target)
        || actual.as_ref().ok() == Some(&target)
    {
        return task.release_unchanged().await;
    }
    tracing::warn!(node = %uuid, ?actual, %target, "power state changed outside Ferric; changing the hardware back");
    if let Err(e) = crate::power::node_power_action(&mut task, target, None).await {
        tracing::error!(node = %uuid, %target, attempt, retries = inner.config.power_state_sync_max_retries, error = %e, "could not change the power state back");
    }
    task.release().await.map(drop)
}

/// Takes nodes out of maintenance once the BMC that failed the sync answers
/// again (Ironic's power-failure recovery). Pages through brief nodes.
pub(crate) async fn recover_power_failures(inner: &Arc<Inner>) -> Result<()> {
    let filter = NodeFilter {
        maintenance: Some(true),
        reserved: Some(false),
        fault: Some("power failure".into()),
        ..NodeFilter::default()
    };
    let mut pages = BriefPages::new(inner, filter);
    while let Some(nodes) = pages.next().await? {
        for node in nodes {
            if node.provision_state != S::Enroll && node.target_power_state.is_none() {
                recover_one(inner, node.uuid).await?;
            }
        }
    }
    Ok(())
}

async fn recover_one(inner: &Arc<Inner>, uuid: NodeUuid) -> Result<()> {
    let Some(held) = BriefLock::take(inner, uuid).await? else {
        return Ok(());
    };
    if held.node().fault.as_deref() != Some("power failure") {
        return held.release().await;
    }
    let mut node = held.node().to_read_only_node();
    let mut ports = Vec::new();
    let valid = call_unlocked(inner, &mut node, &mut ports, "power.validate", |d, t| {
        d.power.validate(t)
    })
    .await;
    let read = match valid {
        Ok(()) => {
            call_unlocked(
                inner,
                &mut node,
                &mut ports,
                "power.get_power_state",
                |d, t| d.power.get_power_state(t),
            )
            .await
        }
        Err(e) => Err(e),
    };
    let Ok(power) = read_result(read) else {
        return held.release().await;
    };
    tracing::info!(node = %uuid, %power, "the BMC answers again; leaving maintenance");
    let record = PowerSyncRecord {
        power_state: Some(power),
        maintenance: false,
        maintenance_reason: None,
        fault: None,
        ..held.record()
    };
    held.save(record).await
}

async fn read_power(task: &mut Task) -> Result<PowerState, DriverError> {
    task.call("power.get_power_state", |d, t| d.power.get_power_state(t))
        .await
}

/// What reading the BMC gave: a power state, or why there is none.
type Read = std::result::Result<PowerState, String>;

/// A driver's answer; `error` counts as a failed read, as in Ironic.
fn read_result(read: std::result::Result<PowerState, DriverError>) -> Read {
    match read {
        Ok(PowerState::Error) => {
            Err("Power driver returned ERROR state while trying to sync power state.".into())
        }
        Ok(p) => Ok(p),
        Err(e) => Err(e.to_string()),
    }
}

/// What the sync does about one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The hardware agrees with the record.
    Matches,
    /// Store what the BMC says.
    Record(PowerState),
    /// The BMC could not be read; try again next run.
    ReadFailed,
    /// Put the hardware back to the recorded state.
    Restore(PowerState),
    /// Too many failures: record what is known, maintenance, fault
    /// `power failure`.
    GiveUp(Option<PowerState>),
}

#[derive(Debug, Clone, Copy)]
struct Rules {
    max_retries: u32,
    /// Change the hardware back on a mismatch.
    force: bool,
}

/// Ironic's decision, as a pure function of what was recorded, what the
/// BMC said and which attempt this is (1 after a clean run); returns the
/// verdict and the count to keep.
fn decide(recorded: Option<PowerState>, read: &Read, attempt: u32, rules: Rules) -> (Verdict, u32) {
    let Ok(actual) = read else {
        if attempt > rules.max_retries {
            return (Verdict::GiveUp(None), attempt);
        }
        return (Verdict::ReadFailed, attempt);
    };
    match recorded {
        Some(r) if r == *actual => (Verdict::Matches, 0),
        None => (Verdict::Record(*actual), 0),
        Some(_) if attempt > rules.max_retries => (Verdict::GiveUp(Some(*actual)), attempt),
        Some(r) if rules.force => (Verdict::Restore(r), attempt),
        Some(_) => (Verdict::Record(*actual), attempt),
    }
}

fn max_retries_message(
    uuid: NodeUuid,
    actual: Option<PowerState>,
    recorded: Option<PowerState>,
) -> String {
    let show = |p: Option<PowerState>| p.map_or("None".to_owned(), |p| p.to_string());
    format!(
        "During sync_power_state, max retries exceeded for node {uuid}, node state {} does not match expected \
         state '{}'. Updating DB state to '{}' Switching node to maintenance mode.",
        show(actual),
        show(recorded),
        show(actual)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use PowerState::{Off, On};

    const FORCE: Rules = Rules {
        max_retries: 3,
        force: true,
    };
    const LENIENT: Rules = Rules {
        max_retries: 3,
        force: false,
    };

    #[test]
    fn the_sync_decides_as_ironic_does() {
        assert_eq!(decide(Some(On), &Ok(On), 1, FORCE), (Verdict::Matches, 0));
        assert_eq!(decide(None, &Ok(Off), 1, FORCE), (Verdict::Record(Off), 0));
        assert_eq!(
            decide(Some(On), &Ok(Off), 1, FORCE),
            (Verdict::Restore(On), 1)
        );
        assert_eq!(
            decide(Some(On), &Ok(Off), 1, LENIENT),
            (Verdict::Record(Off), 1)
        );
        let failed: Read = Err("no answer".into());
        assert_eq!(
            decide(Some(On), &failed, 3, FORCE),
            (Verdict::ReadFailed, 3)
        );
        assert_eq!(
            decide(Some(On), &failed, 4, FORCE),
            (Verdict::GiveUp(None), 4)
        );
    }

    #[test]
    fn mismatches_count_towards_maintenance_too() {
        // A node whose power keeps flipping back is restored three times,
        // then given up on, as Ironic does.
        let mut count = 0;
        let mut verdicts = Vec::new();
        for _ in 0..4 {
            let (v, next) = decide(Some(On), &Ok(Off), count + 1, FORCE);
            verdicts.push(v);
            count = next;
        }
        assert_eq!(
            verdicts,
            vec![
                Verdict::Restore(On),
                Verdict::Restore(On),
                Verdict::Restore(On),
                Verdict::GiveUp(Some(Off))
            ]
        );
        // One good read clears the count.
        assert_eq!(decide(Some(On), &Ok(On), count + 1, FORCE).1, 0);
    }

    #[test]
    fn an_error_state_is_a_failed_read() {
        assert!(read_result(Ok(PowerState::Error)).is_err());
        assert_eq!(read_result(Ok(On)), Ok(On));
    }
}
