//! What the conductor's integration tests share: a conductor on a real
//! SQLite store in a temporary directory, fake hardware, and helpers that
//! wait (boundedly) for a node to settle.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use ferric_conductor::{
    Clock, Conductor, ConductorConfig, ManualClock, ProvisionAction, ProvisionRequest, SystemClock,
};
use ferric_core::{Ident, Interfaces, JsonObject, Node, NodeIdent, NodeUuid, ProvisionState};
use ferric_db::{SqliteStore, Store};
use ferric_drivers::{FakeDelays, Registry};
use serde_json::Value;
use tempfile::TempDir;

/// The host name every test conductor registers under.
pub const HOST: &str = "test-conductor";

/// How long a flow on fake hardware may take before a test gives up.
pub const SETTLE: Duration = Duration::from_secs(5);

pub struct Harness {
    pub conductor: Conductor,
    pub store: Arc<dyn Store>,
    /// Set when the conductor runs on a [`ManualClock`].
    pub manual_clock: Option<Arc<ManualClock>>,
    _dir: TempDir,
}

/// A conductor configuration with a fixed host name, else the defaults.
pub fn config() -> ConductorConfig {
    ConductorConfig {
        host: HOST.into(),
        ..ConductorConfig::default()
    }
}

/// Delays of the fake interfaces from `(kind, seconds)` pairs, e.g.
/// `[("deploy", "2")]`.
pub fn delays(pairs: &[(&str, &str)]) -> FakeDelays {
    let mut d = FakeDelays::default();
    for (kind, value) in pairs {
        let range = value.parse().expect("a delay");
        match *kind {
            "power" => d.power_delay = range,
            "deploy" => d.deploy_delay = range,
            "vendor" => d.vendor_delay = range,
            "bios" => d.bios_delay = range,
            other => panic!("no fake delay for {other}"),
        }
    }
    d
}

/// A fresh temporary directory and the SQLite store in it.
pub async fn open_store() -> (TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("ferric.db"))
        .await
        .expect("the store opens");
    (dir, Arc::new(store))
}

impl Harness {
    /// A conductor with the default configuration on the system clock.
    pub async fn start() -> Harness {
        Harness::start_with(config(), FakeDelays::default()).await
    }

    pub async fn start_with(config: ConductorConfig, delays: FakeDelays) -> Harness {
        let (dir, store) = open_store().await;
        Harness::start_on(dir, store, config, delays, None).await
    }

    /// A conductor whose clock moves only when the test says so.
    pub async fn start_manual(config: ConductorConfig, delays: FakeDelays) -> Harness {
        let (dir, store) = open_store().await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        Harness::start_on(dir, store, config, delays, Some(clock)).await
    }

    /// Starts a conductor on a store the test prepared.
    pub async fn start_on(
        dir: TempDir,
        store: Arc<dyn Store>,
        config: ConductorConfig,
        delays: FakeDelays,
        manual_clock: Option<Arc<ManualClock>>,
    ) -> Harness {
        let clock: Arc<dyn Clock> = match &manual_clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let registry = Arc::new(Registry::builtin(ferric_drivers::DriverConfig {
            fake: delays,
            ..Default::default()
        }));
        Harness::launch(dir, store, config, registry, manual_clock, clock).await
    }

    /// Starts a conductor with the test's own registry (scripted interfaces).
    pub async fn start_with_registry(config: ConductorConfig, registry: Registry) -> Harness {
        let (dir, store) = open_store().await;
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let shared: Arc<dyn Clock> = clock.clone();
        Harness::launch(dir, store, config, Arc::new(registry), Some(clock), shared).await
    }

    async fn launch(
        dir: TempDir,
        store: Arc<dyn Store>,
        config: ConductorConfig,
        registry: Arc<Registry>,
        manual_clock: Option<Arc<ManualClock>>,
        clock: Arc<dyn Clock>,
    ) -> Harness {
        let conductor = Conductor::start(store.clone(), registry, config, clock)
            .await
            .expect("the conductor starts");
        Harness {
            conductor,
            store,
            manual_clock,
            _dir: dir,
        }
    }

    pub fn clock(&self) -> &ManualClock {
        self.manual_clock.as_deref().expect("a manual clock")
    }

    pub async fn node(&self, uuid: NodeUuid) -> Node {
        self.store
            .get_node(&Ident::Uuid(uuid))
            .await
            .expect("the node exists")
    }

    /// Enrolls a fake-hardware node with the default interfaces.
    pub async fn enroll(&self) -> Node {
        self.enroll_node(fake_node()).await
    }

    pub async fn enroll_node(&self, node: Node) -> Node {
        let node = self
            .conductor
            .create_node(node)
            .await
            .expect("the node is enrolled");
        assert_eq!(node.provision_state, ProvisionState::Enroll);
        node
    }

    /// Sends a provisioning verb that must be accepted.
    pub async fn provision(&self, uuid: NodeUuid, target: &str, action: ProvisionAction) {
        self.conductor
            .provision(&ident(uuid), request(target, action))
            .await
            .unwrap_or_else(|e| panic!("{target} on {uuid} was refused: {e}"));
    }

    /// Polls the store until `done` holds for the node, for at most
    /// `within`; then panics showing where the node is.
    pub async fn wait_until(
        &self,
        uuid: NodeUuid,
        within: Duration,
        what: &str,
        done: impl Fn(&Node) -> bool,
    ) -> Node {
        let deadline = Instant::now() + within;
        loop {
            let node = self.node(uuid).await;
            if done(&node) {
                return node;
            }
            if Instant::now() > deadline {
                panic!(
                    "node {uuid} did not reach {what} within {within:?}: provision_state {:?}, \
                     target {:?}, power_state {:?}, target_power_state {:?}, reservation {:?}, \
                     last_error {:?}",
                    node.provision_state.as_str(),
                    node.target_provision_state.map(|s| s.as_str()),
                    node.power_state.map(|s| s.as_str()),
                    node.target_power_state.map(|s| s.as_str()),
                    node.reservation,
                    node.last_error
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the node is in `state` and its flow has let go of it.
    pub async fn wait_for_state(&self, uuid: NodeUuid, state: ProvisionState) -> Node {
        self.wait_for_state_within(uuid, state, SETTLE).await
    }

    pub async fn wait_for_state_within(
        &self,
        uuid: NodeUuid,
        state: ProvisionState,
        within: Duration,
    ) -> Node {
        self.wait_until(uuid, within, state.as_str(), |n| {
            n.provision_state == state && n.reservation.is_none()
        })
        .await
    }

    /// Waits until no power change is pending and the node is unlocked.
    pub async fn wait_for_power_settled(&self, uuid: NodeUuid) -> Node {
        self.wait_until(uuid, SETTLE, "a settled power state", |n| {
            n.target_power_state.is_none() && n.reservation.is_none()
        })
        .await
    }

    /// enroll → manage → manageable.
    pub async fn manageable(&self) -> Node {
        let node = self.enroll().await;
        self.provision(node.uuid, "manage", ProvisionAction::Manage)
            .await;
        self.wait_for_state(node.uuid, ProvisionState::Manageable)
            .await
    }

    /// enroll → manage → provide → available.
    pub async fn available(&self) -> Node {
        let node = self.manageable().await;
        self.provision(node.uuid, "provide", ProvisionAction::Provide)
            .await;
        self.wait_for_state(node.uuid, ProvisionState::Available)
            .await
    }

    /// enroll → ... → deploy → active.
    pub async fn active(&self) -> Node {
        let node = self.available().await;
        self.provision(node.uuid, "active", deploy(None)).await;
        self.wait_for_state(node.uuid, ProvisionState::Active).await
    }

    /// Applies a change to the node through the conductor.
    pub async fn update(&self, uuid: NodeUuid, change: impl FnOnce(&mut Node) + Send + 'static) {
        self.conductor
            .update_node(
                &ident(uuid),
                Box::new(move |n: &mut Node| {
                    change(n);
                    Ok(())
                }),
                false,
            )
            .await
            .expect("the update is accepted");
    }
}

/// A fake-hardware node with every interface left to the defaults.
pub fn fake_node() -> Node {
    Node::enroll(
        NodeUuid::new_random(),
        "fake-hardware".into(),
        Interfaces::default(),
        Utc::now(),
    )
}

pub fn ident(uuid: NodeUuid) -> NodeIdent {
    Ident::Uuid(uuid)
}

pub fn request(target: &str, action: ProvisionAction) -> ProvisionRequest {
    ProvisionRequest {
        target: target.into(),
        action,
    }
}

pub fn deploy(configdrive: Option<Value>) -> ProvisionAction {
    ProvisionAction::Deploy {
        configdrive,
        deploy_steps: Vec::new(),
    }
}

pub fn clean(steps: Value) -> ProvisionAction {
    ProvisionAction::Clean {
        clean_steps: objects(steps),
        disable_ramdisk: None,
    }
}

/// A JSON array of objects as the step lists the verbs carry.
pub fn objects(v: Value) -> Vec<JsonObject> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Object(o) => o,
                other => panic!("not a step object: {other}"),
            })
            .collect(),
        other => panic!("not a list of steps: {other}"),
    }
}

pub fn obj(v: Value) -> JsonObject {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}
