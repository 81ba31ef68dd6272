//! A task: a node held under its exclusive lock, with its driver.
//!
//! Only a task changes a node's provision state, and it does so through
//! [`Task::fire`], which asks the state machine table. A task that is
//! dropped while still holding its lock (a panic, a storage error) hands
//! the node to [`crate::Inner::abandon`], which fails it out of any
//! in-progress state and releases it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ferric_core::states::{self, Landing};
use ferric_core::{Event, Node, NodeIdent, Port, ProvisionState};
use ferric_db::{AfterSave, DbError, PortFilter};
use ferric_drivers::Driver;

use crate::error::{ConductorError, Result};
use crate::Inner;

pub(crate) struct Task {
    pub(crate) inner: Arc<Inner>,
    pub(crate) node: Node,
    pub(crate) ports: Vec<Port>,
    held: bool,
}

impl Inner {
    /// Takes the node's exclusive lock, retrying a busy node as configured.
    pub(crate) async fn lock(self: &Arc<Self>, ident: &NodeIdent) -> Result<Task> {
        let attempts = self.config.node_locked_retry_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.store.reserve_node(ident, &self.host).await {
                Ok(node) => return Task::held(self.clone(), node).await,
                Err(DbError::NodeLocked { .. }) if attempt < attempts => {
                    attempt += 1;
                    tokio::time::sleep(crate::config::secs(self.config.node_locked_retry_interval))
                        .await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes the lock once, without waiting.
    pub(crate) async fn try_lock(self: &Arc<Self>, ident: &NodeIdent) -> Result<Task> {
        let node = self.store.reserve_node(ident, &self.host).await?;
        Task::held(self.clone(), node).await
    }
}

impl Task {
    async fn held(inner: Arc<Inner>, node: Node) -> Result<Task> {
        let mut task = Task {
            inner,
            node,
            ports: Vec::new(),
            held: true,
        };
        let filter = PortFilter {
            node_uuid: Some(task.node.uuid),
            ..PortFilter::default()
        };
        task.ports = task
            .inner
            .store
            .list_ports(&filter, &Default::default())
            .await?;
        Ok(task)
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The node's driver, composed from its interface names.
    pub(crate) fn driver(&self) -> Result<Driver> {
        Ok(self.inner.registry.compose(&self.node)?)
    }

    /// What a driver interface works on.
    pub(crate) fn dtask(&mut self) -> ferric_drivers::Task<'_> {
        ferric_drivers::Task {
            node: &mut self.node,
            ports: &self.ports,
        }
    }

    /// Moves the node (in memory) by `event`, as the state machine table
    /// says; `save` or `release` makes it durable in one transaction.
    pub(crate) fn fire(
        &mut self,
        event: Event,
        explicit_target: Option<ProvisionState>,
    ) -> Result<()> {
        let from = self.node.provision_state;
        let Landing { state, target } =
            states::land(from, event, explicit_target).map_err(|e| {
                ConductorError::InvalidStateRequested {
                    action: e.event.to_string(),
                    node: self.node.uuid.to_string(),
                    state: e.state.to_string(),
                }
            })?;
        let now = self.now();
        self.node.provision_state = state;
        self.node.target_provision_state = target;
        self.node.provision_updated_at = Some(now);
        record_inspection_times(&mut self.node, from, state, now);
        tracing::debug!(node = %self.node.uuid, %from, %event, to = %state, "provision state change");
        Ok(())
    }

    /// Writes the node, keeping the lock.
    pub(crate) async fn save(&mut self) -> Result<()> {
        let stored = self
            .inner
            .store
            .save_node(&self.node, &self.inner.host, AfterSave::KeepLock)
            .await?;
        self.node = stored;
        Ok(())
    }

    /// Writes the node and lets go of its lock, in one transaction. If the
    /// write is refused (a duplicate name, say), the stored node is
    /// unchanged and the lock is let go of all the same.
    pub(crate) async fn release(mut self) -> Result<Node> {
        let saved = self
            .inner
            .store
            .save_node(&self.node, &self.inner.host, AfterSave::Release)
            .await;
        match saved {
            Ok(stored) => {
                self.held = false;
                Ok(stored)
            }
            Err(e) => {
                if let ferric_db::DbError::Duplicate { .. } | ferric_db::DbError::Reference(_) = e {
                    self.release_unchanged().await?;
                }
                Err(e.into())
            }
        }
    }

    /// Lets go of the lock without writing the in-memory node.
    pub(crate) async fn release_unchanged(mut self) -> Result<()> {
        self.inner
            .store
            .release_node(self.node.uuid, &self.inner.host)
            .await?;
        self.held = false;
        Ok(())
    }

    /// Deletes the node (and its ports); the lock goes with it.
    pub(crate) async fn delete_node(mut self) -> Result<()> {
        self.inner
            .store
            .delete_node(self.node.uuid, &self.inner.host)
            .await?;
        self.held = false;
        Ok(())
    }

    /// The node's `driver_internal_info` entry `key`.
    pub(crate) fn internal(&self, key: &str) -> Option<&serde_json::Value> {
        self.node.driver_internal_info.get(key)
    }

    pub(crate) fn set_internal(&mut self, key: &str, value: serde_json::Value) {
        self.node.driver_internal_info.insert(key.to_owned(), value);
    }

    pub(crate) fn remove_internal(&mut self, key: &str) {
        self.node.driver_internal_info.remove(key);
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let inner = self.inner.clone();
        let uuid = self.node.uuid;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move { inner.abandon(uuid).await });
            }
            Err(_) => {
                tracing::error!(node = %uuid, "task dropped outside a runtime; the lock stays until restart")
            }
        }
    }
}

/// Ironic stamps inspection start and end on the node.
fn record_inspection_times(
    node: &mut Node,
    from: ProvisionState,
    to: ProvisionState,
    now: DateTime<Utc>,
) {
    use ProvisionState as S;
    let inspecting = matches!(from, S::Inspecting | S::InspectWait);
    match to {
        S::Inspecting if !inspecting => {
            node.inspection_started_at = Some(now);
            node.inspection_finished_at = None;
        }
        S::Manageable if inspecting => {
            node.inspection_finished_at = Some(now);
            node.inspection_started_at = None;
        }
        S::InspectFailed if inspecting => node.inspection_started_at = None,
        _ => {}
    }
}
