//! The conductor's settings, with Ironic's defaults and names.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[conductor]` in the config file. Durations are whole seconds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ConductorConfig {
    /// The name this conductor registers under and writes into
    /// `reservation`; empty means the machine's host name.
    pub host: String,
    /// The API URL a node's agent calls back (lookup, heartbeat), put on
    /// its kernel command line; empty means "derived from the server's
    /// listen address".
    pub api_url: String,
    pub conductor_group: String,
    /// How many flows may run at once.
    pub workers_pool_size: usize,
    /// Attempts to take a busy node's lock before answering 409.
    pub node_locked_retry_attempts: u32,
    pub node_locked_retry_interval: u64,
    /// 0 disables the power-state sync.
    pub sync_power_state_interval: u64,
    pub power_state_sync_max_retries: u32,
    /// BMCs the power-state sync asks at once.
    pub sync_power_state_workers: usize,
    pub force_power_state_during_sync: bool,
    /// How often nodes put in maintenance by failing BMCs are retried; 0
    /// disables it.
    pub power_failure_recovery_interval: u64,
    pub check_provision_state_interval: u64,
    pub deploy_callback_timeout: u64,
    pub clean_callback_timeout: u64,
    pub inspect_wait_timeout: u64,
    pub rescue_callback_timeout: u64,
    pub service_callback_timeout: u64,
    pub heartbeat_interval: u64,
    pub heartbeat_timeout: u64,
    /// Clean nodes on provide and undeploy unless the node says otherwise.
    pub automated_clean: bool,
    pub allow_deleting_available_nodes: bool,
    pub allow_provisioning_in_maintenance: bool,
    /// Longest a `wait` step with `seconds` may hold a worker.
    pub max_conductor_wait_step_seconds: u64,
    pub soft_power_off_timeout: u64,
    /// How long a power change may take to show on the BMC.
    pub power_state_change_timeout: u64,
    /// Longest any one driver call may take (a BMC request, an agent
    /// command); past it the call is abandoned and fails as a timeout, so
    /// no BMC can hold a node's lock longer. Ferric's own option.
    pub driver_call_timeout: u64,
    /// How long `stop` waits for running flows before letting go of their
    /// nodes (Ironic's `graceful_shutdown_timeout`).
    pub graceful_shutdown_timeout: u64,
    /// Keep each node's history of events (API 1.78).
    pub node_history: bool,
    /// The newest events kept per node; 0 keeps them all.
    pub node_history_max_entries: usize,
}

impl Default for ConductorConfig {
    fn default() -> Self {
        ConductorConfig {
            host: String::new(),
            api_url: String::new(),
            conductor_group: String::new(),
            workers_pool_size: 300,
            node_locked_retry_attempts: 3,
            node_locked_retry_interval: 1,
            sync_power_state_interval: 120,
            power_state_sync_max_retries: 3,
            sync_power_state_workers: 8,
            force_power_state_during_sync: true,
            power_failure_recovery_interval: 300,
            check_provision_state_interval: 60,
            deploy_callback_timeout: 1800,
            clean_callback_timeout: 1800,
            inspect_wait_timeout: 1800,
            rescue_callback_timeout: 1800,
            service_callback_timeout: 1800,
            heartbeat_interval: 10,
            heartbeat_timeout: 60,
            automated_clean: true,
            allow_deleting_available_nodes: true,
            allow_provisioning_in_maintenance: true,
            max_conductor_wait_step_seconds: 30,
            soft_power_off_timeout: 600,
            power_state_change_timeout: 30,
            driver_call_timeout: 300,
            graceful_shutdown_timeout: 60,
            node_history: true,
            node_history_max_entries: 300,
        }
    }
}

/// The longest duration any option may ask for: ten years. Beyond it,
/// time arithmetic would overflow.
const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl ConductorConfig {
    /// Checks values that would make the conductor misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.workers_pool_size == 0 {
            return Err("conductor.workers_pool_size must be at least 1".into());
        }
        if self.node_locked_retry_attempts == 0 {
            return Err("conductor.node_locked_retry_attempts must be at least 1".into());
        }
        if self.sync_power_state_workers == 0 {
            return Err("conductor.sync_power_state_workers must be at least 1".into());
        }
        if self.driver_call_timeout == 0 {
            return Err("conductor.driver_call_timeout must be at least 1 second".into());
        }
        if self.check_provision_state_interval == 0 || self.heartbeat_interval == 0 {
            return Err("conductor intervals must be at least 1 second".into());
        }
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err("conductor.heartbeat_timeout must exceed heartbeat_interval".into());
        }
        for (name, seconds) in self.durations() {
            if seconds > MAX_SECONDS {
                return Err(format!(
                    "conductor.{name} must be at most {MAX_SECONDS} seconds (ten years)"
                ));
            }
        }
        Ok(())
    }

    fn durations(&self) -> [(&'static str, u64); 16] {
        [
            (
                "node_locked_retry_interval",
                self.node_locked_retry_interval,
            ),
            ("sync_power_state_interval", self.sync_power_state_interval),
            (
                "power_failure_recovery_interval",
                self.power_failure_recovery_interval,
            ),
            (
                "check_provision_state_interval",
                self.check_provision_state_interval,
            ),
            ("deploy_callback_timeout", self.deploy_callback_timeout),
            ("clean_callback_timeout", self.clean_callback_timeout),
            ("inspect_wait_timeout", self.inspect_wait_timeout),
            ("rescue_callback_timeout", self.rescue_callback_timeout),
            ("service_callback_timeout", self.service_callback_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("heartbeat_timeout", self.heartbeat_timeout),
            (
                "max_conductor_wait_step_seconds",
                self.max_conductor_wait_step_seconds,
            ),
            ("soft_power_off_timeout", self.soft_power_off_timeout),
            (
                "power_state_change_timeout",
                self.power_state_change_timeout,
            ),
            ("driver_call_timeout", self.driver_call_timeout),
            ("graceful_shutdown_timeout", self.graceful_shutdown_timeout),
        ]
    }
}
