//! The conductor: it owns node locks, runs provisioning flows on a bounded
//! worker pool, and keeps nodes honest with periodic tasks.
//!
//! Architecture invariants:
//! - Only the conductor writes a node's provision state, always through
//!   [`task::Task::fire`] and the state machine table of `ferric-core`, and
//!   always while holding the node's reservation.
//! - Every state change is one storage transaction; a flow that stops
//!   half-way leaves the node in an in-progress state that start-up
//!   recovery (or [`Inner::abandon`]) moves to its failed state.
//! - Callers get typed commands ([`Conductor`]'s methods) and typed errors;
//!   nothing here knows HTTP.

mod actions;
mod agent;
mod clock;
mod config;
mod error;
mod flows;
mod hardware;
mod management;
mod nodes;
mod periodic;
mod power;
mod task;
// Node actions: console, vendor passthru, RAID.
mod console;
mod raid;
mod vendor;
mod volumes;

use std::sync::Arc;

use chrono::Duration;
use ferric_core::{ConductorRecord, NodeUuid};
use ferric_db::Store;
use ferric_drivers::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use actions::{ProvisionAction, ProvisionRequest};
pub use agent::LookupAnswer;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ConductorConfig;
pub use error::{ConductorError, Result};
pub use management::{InterfaceValidation, ValidationResult};
pub use nodes::{Change, ChildChange};
pub use power::PowerRequest;
pub use vendor::{PassthruAnswer, PassthruCall};

/// Shared state of one running conductor.
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: ConductorConfig,
    pub(crate) host: String,
    pub(crate) clock: Arc<dyn Clock>,
    workers: Arc<Semaphore>,
    tracker: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

/// A running conductor. Cheap to clone; all clones drive the same one.
#[derive(Clone)]
pub struct Conductor {
    inner: Arc<Inner>,
}

impl Conductor {
    /// Registers the conductor, recovers what a previous run of this host
    /// left behind, and starts the periodic tasks.
    pub async fn start(
        store: Arc<dyn Store>,
        registry: Arc<Registry>,
        config: ConductorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Conductor> {
        config.validate().map_err(ConductorError::Invalid)?;
        let host = if config.host.is_empty() {
            system_host_name()
        } else {
            config.host.clone()
        };
        let inner = Arc::new(Inner {
            workers: Arc::new(Semaphore::new(config.workers_pool_size)),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            store,
            registry,
            config,
            host,
            clock,
        });
        periodic::recovery::recover_after_restart(&inner).await?;
        let drivers: Vec<String> = inner
            .registry
            .available_hardware_types()
            .map(|t| t.name.to_owned())
            .collect();
        inner
            .store
            .register_conductor(
                &inner.host,
                &inner.config.conductor_group,
                &drivers,
                inner.clock.now(),
            )
            .await?;
        periodic::spawn_all(&inner);
        tracing::info!(host = %inner.host, "conductor started");
        Ok(Conductor { inner })
    }

    /// Stops taking work, waits a bounded time for running flows, releases
    /// locks and marks the conductor offline. A flow still running then
    /// loses its lock: its writes are refused, and the next start (or
    /// another conductor) moves its node out of the state it was in.
    pub async fn stop(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let grace = config::secs(self.inner.config.graceful_shutdown_timeout);
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                flows = self.inner.tracker.len(),
                "flows still running after the graceful shutdown timeout; releasing their nodes"
            );
        }
        if let Err(e) = self
            .inner
            .store
            .release_all_reservations(&self.inner.host)
            .await
        {
            tracing::warn!(error = %e, "could not release reservations at shutdown");
        }
        if let Err(e) = self
            .inner
            .store
            .unregister_conductor(&self.inner.host)
            .await
        {
            tracing::warn!(error = %e, "could not mark the conductor offline");
        }
    }

    pub fn host(&self) -> &str {
        &self.inner.host
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn config(&self) -> &ConductorConfig {
        &self.inner.config
    }

    /// Whether a conductor record counts as alive now.
    pub fn is_alive(&self, record: &ConductorRecord) -> bool {
        let timeout = Duration::seconds(
            i64::try_from(self.inner.config.heartbeat_timeout).unwrap_or(i64::MAX),
        );
        record.is_alive(self.inner.clock.now(), timeout)
    }
}

impl Inner {
    /// Adds an event to the node's history, if history is kept; a failure
    /// to store it is logged, never fatal to the work at hand.
    pub(crate) async fn record_history(
        &self,
        node: &ferric_core::Node,
        severity: ferric_core::Severity,
        event_type: &str,
        event: &str,
    ) {
        if !self.config.node_history {
            return;
        }
        let entry = ferric_core::HistoryEvent::of(
            node,
            severity,
            event_type,
            event,
            &self.host,
            self.clock.now(),
        );
        if let Err(e) = self
            .store
            .add_history(&entry, self.config.node_history_max_entries)
            .await
        {
            tracing::warn!(node = %node.uuid, error = %e, "could not record a history event");
        }
    }

    /// How long one driver call may take.
    pub(crate) fn call_timeout(&self) -> std::time::Duration {
        config::secs(self.config.driver_call_timeout)
    }

    /// A worker slot, or 503 when all are busy.
    pub(crate) fn worker_slot(&self) -> Result<OwnedSemaphorePermit> {
        if self.shutdown.is_cancelled() {
            return Err(ConductorError::NoFreeWorker);
        }
        self.workers
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConductorError::NoFreeWorker)
    }

    /// Runs a flow on the worker pool; it holds `slot` until it ends.
    pub(crate) fn spawn_flow<F>(
        self: &Arc<Self>,
        slot: OwnedSemaphorePermit,
        what: &'static str,
        flow: F,
    ) where
        F: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.tracker.spawn(async move {
            let _slot = slot;
            if let Err(e) = flow.await {
                tracing::error!(flow = what, error = %e, "flow stopped on an error");
            }
        });
    }

    /// Fails a node whose flow stopped without releasing it (a panic, a
    /// storage error), drops a power change it left pending, and releases
    /// it. Nodes in a stable or waiting state are only released.
    pub(crate) async fn abandon(self: &Arc<Self>, uuid: NodeUuid) {
        let result = async {
            let node = self.store.get_node(&ferric_core::Ident::Uuid(uuid)).await?;
            if node.reservation.as_deref() != Some(self.host.as_str()) {
                return Ok(());
            }
            let mut node = node;
            let pending_power = node.target_power_state.take().is_some();
            if pending_power {
                node.last_error =
                    Some("Pending power operation was aborted: its worker stopped".into());
            }
            let in_progress = node.provision_state.is_in_progress();
            if in_progress {
                periodic::recovery::fail_interrupted(&mut node, &self.host, self.clock.now());
            }
            if pending_power || in_progress {
                self.store
                    .save_node(&node, &self.host, ferric_db::AfterSave::Release)
                    .await?;
            } else {
                self.store.release_node(uuid, &self.host).await?;
            }
            Ok::<(), ConductorError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(node = %uuid, error = %e, "could not release an abandoned node; restart recovers it");
        }
    }
}

fn system_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
