//! The agent's shared state and its life: inventory, version discovery,
//! lookup, then the command API and the heartbeater until a command ends
//! the process (`standby.power_off`: exit 0, `standby.run_image`: exit 10)
//! or the lookup fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferric_ipa::{AgentToken, ApiVersion, LookupConfig, LookupQuery, Node, PartitionUuids};
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::executor::CommandStore;
use crate::inventory::{self, Roots};
use crate::ironic::{ClientOptions, IronicClient};
use crate::logbuf::LogBuffer;

/// The agent's version as reported in heartbeats and `/v1/status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the process is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `standby.power_off`.
    PowerOff,
    /// `standby.run_image`.
    Reboot,
}

impl Shutdown {
    /// The process's exit code when a disk file stands in for the machine
    /// (`--power-off-mode exit`): 0 for power off, 10 for a reboot, so a
    /// simulated machine's BMC (`ferric lab bmc`) knows which it was.
    pub fn exit_code(self) -> u8 {
        match self {
            Shutdown::PowerOff => 0,
            Shutdown::Reboot => 10,
        }
    }
}

/// What `standby.prepare_image` left behind.
#[derive(Debug, Clone, Default)]
pub struct StandbyState {
    /// The last image id written.
    pub cached_image_id: Option<String>,
    /// `get_partition_uuids`' answer (`None` before any write).
    pub partition_uuids: Option<PartitionUuids>,
    /// The image written was a partition image.
    pub partition_image: bool,
    /// The device written.
    pub device: Option<String>,
}

/// State shared by the API handlers, the commands and the heartbeater.
pub struct Agent {
    /// Merged configuration.
    pub config: Config,
    /// Where /proc, /sys, /dev are.
    pub roots: Roots,
    /// When the agent started (seconds since the epoch).
    pub started_at: f64,
    /// The token from lookup (or the pre-shared one).
    token: RwLock<Option<AgentToken>>,
    /// The node, from lookup and refreshed by step commands.
    node: RwLock<Option<Node>>,
    /// The lookup answer's config.
    lookup_config: RwLock<Option<LookupConfig>>,
    /// The command records.
    pub commands: CommandStore,
    /// Wakes the heartbeater early (an asynchronous command ended).
    pub heartbeat_now: Notify,
    /// Set when a command ends the process.
    pub shutdown: watch::Sender<Option<Shutdown>>,
    /// Image state.
    pub standby: Mutex<StandbyState>,
    /// The agent's own log, for `log.collect_system_logs`.
    pub log: LogBuffer,
    /// The Ironic client, when an API URL is configured.
    pub ironic: Option<IronicClient>,
    /// The command API is served over TLS.
    pub serving_tls: std::sync::atomic::AtomicBool,
    /// The iSCSI target `iscsi.start_iscsi_target` started, while it runs.
    pub iscsi: tokio::sync::Mutex<Option<ferric_iscsi::net::target::TargetServer>>,
}

impl Agent {
    /// Builds the agent from its configuration.
    pub fn new(config: Config, log: LogBuffer) -> Result<Arc<Self>, crate::ironic::IronicError> {
        let roots = Roots {
            proc: config.proc_root.clone(),
            sys: config.sys_root.clone(),
            dev: config.dev_root.clone(),
        };
        let ironic = if config.api_urls.is_empty() {
            None
        } else {
            Some(IronicClient::new(ClientOptions {
                urls: config.api_urls.clone(),
                insecure: config.insecure,
                global_request_id: config.global_request_id.clone(),
                forced_version: config.ironic_api_version,
            })?)
        };
        let token = config.agent_token.clone().map(AgentToken::new);
        Ok(Arc::new(Self {
            started_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            roots,
            config,
            token: RwLock::new(token),
            node: RwLock::new(None),
            lookup_config: RwLock::new(None),
            commands: CommandStore::default(),
            heartbeat_now: Notify::new(),
            shutdown: watch::channel(None).0,
            standby: Mutex::new(StandbyState::default()),
            log,
            ironic,
            serving_tls: std::sync::atomic::AtomicBool::new(false),
            iscsi: tokio::sync::Mutex::new(None),
        }))
    }

    /// IPA's `validate_agent_token`: false without a presented token or
    /// without one of our own.
    pub fn token_is_valid(&self, presented: Option<&str>) -> bool {
        let ours = self.token.read().unwrap_or_else(|p| p.into_inner());
        match (ours.as_ref(), presented) {
            (Some(ours), Some(theirs)) if !theirs.is_empty() => ours.matches(theirs),
            _ => false,
        }
    }

    /// The token, for heartbeats.
    pub fn token(&self) -> Option<AgentToken> {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The cached node.
    pub fn node(&self) -> Option<Node> {
        self.node.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// IPA's `hardware.cache_node`.
    pub fn cache_node(&self, node: Node) {
        *self.node.write().unwrap_or_else(|p| p.into_inner()) = Some(node);
    }

    /// `agent_md5_checksum_enable` from lookup (IPA's default: allowed).
    pub fn md5_enabled(&self) -> bool {
        let config = self.lookup_config.read().unwrap_or_else(|p| p.into_inner());
        config
            .as_ref()
            .and_then(|c| c.agent_md5_checksum_enable)
            .unwrap_or(true)
    }

    /// The lookup config.
    pub fn lookup_config(&self) -> Option<LookupConfig> {
        self.lookup_config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records a lookup answer as IPA's `process_lookup_data`: the node,
    /// the config and the token (kept only in memory; a masked or short
    /// token is not recorded).
    pub fn process_lookup(&self, answer: ferric_ipa::LookupResponse) -> Result<(), String> {
        tracing::info!(node = %answer.node.uuid, "lookup succeeded");
        if let Some(token) = &answer.config.agent_token {
            if token.is_usable() {
                *self.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
            } else if token.is_masked() {
                tracing::warn!("the agent token was already retrieved by an earlier lookup");
                if self.token().is_none() {
                    return Err("Ironic handed out the agent token to an earlier lookup and this agent has none: \
                                refusing to run (an agent restarted outside of Ironic's control?)"
                        .into());
                }
            } else {
                tracing::warn!("an invalid (short) agent token was received and ignored");
            }
        }
        *self
            .lookup_config
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Some(answer.config);
        self.cache_node(answer.node);
        Ok(())
    }

    /// Asks the process to end after `delay` (lets the answer flush).
    pub fn request_shutdown(self: &Arc<Self>, kind: Shutdown, delay: Duration) {
        let agent = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            agent.shutdown.send_replace(Some(kind));
        });
    }

    /// The lookup query: --mac values, else the interfaces' MACs.
    pub fn lookup_query(&self) -> LookupQuery {
        let addresses = if self.config.macs.is_empty() {
            inventory::lookup_macs(&inventory::list_interfaces(&self.roots))
        } else {
            self.config.macs.clone()
        };
        LookupQuery {
            addresses,
            node_uuid: None,
        }
    }
}

/// The source address the kernel would use towards the first API URL: a
/// connected UDP socket's local address (no packet is sent).
pub async fn route_source(api_url: &str) -> Option<std::net::IpAddr> {
    let rest = api_url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !h.ends_with(':') && p.parse::<u16>().is_ok() && !authority.ends_with(']')
    });
    let target = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr: SocketAddr = tokio::net::lookup_host(target).await.ok()?.next()?;
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
    socket.connect(addr).await.ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// True when Ironic supports the agent serving TLS.
pub fn supports_auto_tls(version: ApiVersion) -> bool {
    version >= ApiVersion::AGENT_VERIFY_CA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn route_source_of_loopback_is_loopback() {
        let ip = route_source("http://127.0.0.1:6385/").await.unwrap();
        assert!(ip.is_loopback());
        assert!(route_source("http://127.0.0.1")
            .await
            .unwrap()
            .is_loopback());
        assert_eq!(route_source("not a url").await, None);
    }
}
