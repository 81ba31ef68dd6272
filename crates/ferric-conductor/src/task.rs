//! A task: a node held under its exclusive lock, with its driver.
//!
//! Only a task changes a node's provision state, and it does so through
//! [`Task::fire`], which asks the state machine table. A task that is
//! dropped while still holding its lock (a panic, a storage error) hands
//! the node to [`crate::Inner::abandon`], which fails it out of any
//! in-progress state and releases it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use ferric_core::states::{self, Landing};
use ferric_core::{BiosSetting, Event, InterfaceKind, Node, NodeIdent, Port, ProvisionState};
use ferric_db::{AfterSave, DbError, PortFilter};
use ferric_drivers::{bounded, Driver, DriverError, Persist, TaskParts};

use crate::error::{ConductorError, Result};
use crate::Inner;

pub(crate) struct Task {
    pub(crate) inner: Arc<Inner>,
    pub(crate) node: Node,
    pub(crate) ports: Vec<Port>,
    held: bool,
    /// `last_error` as stored: a new error goes to the node's history when
    /// it is stored.
    stored_error: Option<String>,
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
        let stored_error = node.last_error.clone();
        let mut task = Task {
            inner,
            node,
            ports: Vec::new(),
            held: true,
            stored_error,
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

    /// Runs one driver call under the conductor's call timeout.
    pub(crate) async fn call<T, F>(&mut self, operation: &str, f: F) -> Result<T, DriverError>
    where
        F: for<'t> FnOnce(&'t Driver, &'t mut ferric_drivers::Task<'t>) -> DriverCall<'t, T>,
    {
        let limit = self.inner.call_timeout();
        self.call_within(operation, limit, f).await
    }

    /// Runs one driver call that may take up to `limit`.
    pub(crate) async fn call_within<T, F>(
        &mut self,
        operation: &str,
        limit: Duration,
        f: F,
    ) -> Result<T, DriverError>
    where
        F: for<'t> FnOnce(&'t Driver, &'t mut ferric_drivers::Task<'t>) -> DriverCall<'t, T>,
    {
        let persist = Locked {
            inner: self.inner.clone(),
            node: self.node.uuid,
        };
        let inner = self.inner.clone();
        let call = Call {
            inner: &inner,
            persist: &persist,
            operation,
            limit,
        };
        call.run(&mut self.node, &mut self.ports, f).await
    }

    /// Validates one of the node's interfaces.
    pub(crate) async fn validate(&mut self, kind: InterfaceKind) -> Result<(), DriverError> {
        let operation = format!("{kind}.validate");
        self.call(&operation, |d, t| d.interface(kind).validate(t))
            .await
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
        self.record_new_error().await;
        Ok(())
    }

    /// A `last_error` just stored is an event of the node's history.
    async fn record_new_error(&mut self) {
        if self.node.last_error.is_some() && self.node.last_error != self.stored_error {
            if let Some(error) = &self.node.last_error {
                let kind = activity(self.node.provision_state);
                self.inner
                    .record_history(&self.node, ferric_core::Severity::Error, kind, error)
                    .await;
            }
        }
        self.stored_error = self.node.last_error.clone();
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
                self.node = stored.clone();
                self.record_new_error().await;
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

/// One driver call: who stores what it keeps, and how long it may take.
pub(crate) struct Call<'c> {
    pub(crate) inner: &'c Arc<Inner>,
    pub(crate) persist: &'c dyn Persist,
    pub(crate) operation: &'c str,
    pub(crate) limit: Duration,
}

impl Call<'_> {
    /// Composes the node's driver and runs `f` on it before the deadline.
    pub(crate) async fn run<T, F>(
        self,
        node: &mut Node,
        ports: &mut Vec<Port>,
        f: F,
    ) -> Result<T, DriverError>
    where
        F: for<'t> FnOnce(&'t Driver, &'t mut ferric_drivers::Task<'t>) -> DriverCall<'t, T>,
    {
        let driver = self
            .inner
            .registry
            .compose(node)
            .map_err(|e| DriverError::InvalidParameter(e.to_string()))?;
        let config = self.inner.registry.config().clone();
        let cancel = self.inner.shutdown.clone();
        let deadline = tokio::time::Instant::now() + self.limit;
        let mut dtask = ferric_drivers::Task::new(TaskParts {
            node,
            ports,
            driver: &driver,
            config: &config,
            deadline,
            cancel: &cancel,
            persist: self.persist,
        });
        bounded(deadline, self.operation, f(&driver, &mut dtask)).await
    }
}

/// A driver call made without the node's lock: validation, a power read.
/// Nothing it does can be stored.
pub(crate) async fn call_unlocked<T, F>(
    inner: &Arc<Inner>,
    node: &mut Node,
    ports: &mut Vec<Port>,
    operation: &str,
    f: F,
) -> Result<T, DriverError>
where
    F: for<'t> FnOnce(&'t Driver, &'t mut ferric_drivers::Task<'t>) -> DriverCall<'t, T>,
{
    let call = Call {
        inner,
        persist: &ReadOnly,
        operation,
        limit: inner.call_timeout(),
    };
    call.run(node, ports, f).await
}

/// What a driver call returns: the boxed future of an `async_trait` method.
pub(crate) type DriverCall<'t, T> =
    Pin<Box<dyn Future<Output = Result<T, DriverError>> + Send + 't>>;

/// Saves what an interface asks to keep mid-call, under the lock the task
/// holds.
struct Locked {
    inner: Arc<Inner>,
    node: ferric_core::NodeUuid,
}

fn store_failed(what: &str, e: DbError) -> DriverError {
    DriverError::failed_by(format!("could not store {what}"), e)
}

#[async_trait]
impl Persist for Locked {
    async fn save_node(&self, node: &Node) -> Result<Node, DriverError> {
        self.inner
            .store
            .save_node(node, &self.inner.host, AfterSave::KeepLock)
            .await
            .map_err(|e| store_failed("the node's progress", e))
    }

    async fn create_port(&self, port: &Port) -> Result<Port, DriverError> {
        if port.node_uuid != self.node {
            return Err(DriverError::failed(
                "a port can only be added to the node being worked on",
            ));
        }
        self.inner
            .store
            .create_port(port)
            .await
            .map_err(|e| store_failed("a new port", e))
    }

    async fn record_event(&self, node: &Node, event_type: &str, event: &str) {
        self.inner
            .record_history(node, ferric_core::Severity::Info, event_type, event)
            .await;
    }

    async fn save_port(&self, port: &Port) -> Result<Port, DriverError> {
        if port.node_uuid != self.node {
            return Err(DriverError::failed("a port can only be moved by the API"));
        }
        self.inner
            .store
            .save_port(port)
            .await
            .map_err(|e| store_failed("a port", e))
    }
    async fn bios_settings(&self, node: &Node) -> Result<Vec<BiosSetting>, DriverError> {
        self.inner
            .store
            .list_bios_settings(node.uuid)
            .await
            .map_err(|e| store_failed("the BIOS settings", e))
    }

    async fn replace_bios_settings(
        &self,
        node: &Node,
        settings: &[BiosSetting],
    ) -> Result<(), DriverError> {
        if node.uuid != self.node {
            return Err(DriverError::failed(
                "BIOS settings can only be stored for the node being worked on",
            ));
        }
        self.inner
            .store
            .replace_bios_settings(node.uuid, settings, self.inner.clock.now())
            .await
            .map_err(|e| store_failed("the BIOS settings", e))
    }
}

/// For calls made without the node's lock (validation, a power read):
/// nothing may be stored.
struct ReadOnly;

#[async_trait]
impl Persist for ReadOnly {
    async fn save_node(&self, _node: &Node) -> Result<Node, DriverError> {
        Err(DriverError::failed(
            "nothing can be stored without the node's lock",
        ))
    }
    async fn create_port(&self, _port: &Port) -> Result<Port, DriverError> {
        Err(DriverError::failed(
            "nothing can be stored without the node's lock",
        ))
    }
    async fn save_port(&self, _port: &Port) -> Result<Port, DriverError> {
        Err(DriverError::failed(
            "nothing can be stored without the node's lock",
        ))
    }
    async fn record_event(&self, node: &Node, event_type: &str, event: &str) {
        tracing::info!(node = %node.uuid, event_type, event, "not recorded: no lock");
    }
    async fn bios_settings(&self, _node: &Node) -> Result<Vec<BiosSetting>, DriverError> {
        Err(DriverError::failed(
            "nothing can be read through storage without the node's lock",
        ))
    }
    async fn replace_bios_settings(
        &self,
        _node: &Node,
        _settings: &[BiosSetting],
    ) -> Result<(), DriverError> {
        Err(DriverError::failed(
            "nothing can be stored without the node's lock",
        ))
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

/// The activity a provision state belongs to, as Ironic's history events
/// name it (`states.INTROSPECTION`, `states.UNPROVISION`, ...).
pub(crate) fn activity(state: ProvisionState) -> &'static str {
    use ProvisionState as S;
    match state {
        S::Deploying | S::DeployWait | S::DeployHold | S::DeployFailed | S::Active => "deploying",
        S::Cleaning | S::CleanWait | S::CleanHold | S::CleanFailed => "cleaning",
        S::Inspecting | S::InspectWait | S::InspectFailed => "introspection",
        S::Servicing | S::ServiceWait | S::ServiceHold | S::ServiceFailed => "servicing",
        S::Rescuing
        | S::RescueWait
        | S::RescueFailed
        | S::Rescue
        | S::Unrescuing
        | S::UnrescueFailed => "rescuing",
        S::Deleting => "undeploying",
        S::Verifying => "verifying",
        S::Adopting | S::AdoptFailed => "adopting",
        _ => "provisioning",
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
