//! The drivers' settings: Ironic's `[agent]`, `[deploy]` and `[fake]`
//! options, with Ironic's names. Every field has a default.

use serde::{Deserialize, Serialize};

use crate::fake::FakeDelays;

/// Everything the interfaces read from the configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DriverConfig {
    pub agent: AgentConfig,
    pub deploy: DeployConfig,
    pub iscsi: IscsiConfig,
    pub inspector: InspectorConfig,
    pub ipmi: crate::ipmi::IpmiConfig,
    pub redfish: crate::redfish::RedfishConfig,
    pub pxe: crate::pxe::PxeConfig,
    pub dhcp: crate::pxe::DhcpProviderConfig,
    pub dnsmasq: crate::pxe::DnsmasqConfig,
    pub fake: FakeDelays,
    /// The API URL agents are told to call back (Ironic's
    /// `[conductor] api_url`), set by the server.
    #[serde(skip)]
    pub api_url: String,
}

/// `[inspector]`: in-band inspection through the agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct InspectorConfig {
    /// Which NICs of the inventory become ports: `pxe` (the one the
    /// ramdisk booted from), `active` (those with an address), `all`, or
    /// `disabled`.
    pub add_ports: crate::agent::inspect::AddPorts,
}

impl Default for InspectorConfig {
    fn default() -> Self {
        InspectorConfig {
            add_ports: crate::agent::inspect::AddPorts::Pxe,
        }
    }
}

/// `[agent]`: how the conductor talks to a node's agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Seconds one HTTP call to an agent may take.
    pub command_timeout: u64,
    /// Attempts at a call whose connection failed.
    pub max_command_attempts: u32,
    /// After the agent powers the node off at the end of a deploy, how
    /// often and how far apart the power state is read before the power
    /// interface forces it off.
    pub post_deploy_get_power_state_retries: u32,
    pub post_deploy_get_power_state_retry_interval: u64,
    /// Refuse agents whose callback URL is not `https://`. Ironic's
    /// default is true; Ferric's is false until its agent serves TLS by
    /// default.
    pub require_tls: bool,
    /// Ask the agent to write raw images while they download.
    pub stream_raw_images: bool,
    /// The agent heartbeats every 0.3 to 0.6 of this many seconds; told to
    /// it at lookup (Ironic's `[api] ramdisk_heartbeat_timeout`).
    pub ramdisk_heartbeat_timeout: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            command_timeout: 60,
            max_command_attempts: 3,
            post_deploy_get_power_state_retries: 6,
            post_deploy_get_power_state_retry_interval: 5,
            require_tls: false,
            stream_raw_images: true,
            ramdisk_heartbeat_timeout: 300,
        }
    }
}

/// `[iscsi]`: the `iscsi` deploy interface. Ironic's `portal_port`; the rest
/// is Ferric's: Ironic ran `iscsiadm` and `dd` and had no limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct IscsiConfig {
    /// The TCP port the agent's target listens on.
    pub portal_port: u16,
    /// iSCSI deploys writing at once on this conductor; the others wait
    /// their turn (each holds `queue_depth` writes of up to 2 MiB).
    pub max_concurrent_deploys: usize,
    /// WRITE commands in flight per deploy.
    pub queue_depth: usize,
    /// The target proves itself to the conductor too (mutual CHAP).
    pub mutual_chap: bool,
    /// Seconds to connect and log in, and for any one SCSI command.
    pub login_timeout: u64,
    pub command_timeout: u64,
}

impl Default for IscsiConfig {
    fn default() -> Self {
        IscsiConfig {
            portal_port: 3260,
            max_concurrent_deploys: 4,
            queue_depth: 8,
            mutual_chap: true,
            login_timeout: 30,
            command_timeout: 120,
        }
    }
}

/// `[deploy]`: deploying and cleaning through the agent.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Keep a booted agent between cleaning and deploying, so the deploy
    /// skips the reboot into the ramdisk.
    pub fast_track: bool,
    /// How recent the agent's last heartbeat must be for fast track.
    pub fast_track_timeout: u64,
    /// Priority of the agent's `erase_devices` in automated cleaning; 0
    /// leaves it out. Ironic takes the agent's (10) when unset: a full
    /// shred of every disk on every cleaning. Ferric's default erases
    /// only metadata.
    pub erase_devices_priority: i32,
    /// Priority of the agent's `erase_devices_metadata` in automated
    /// cleaning; 0 leaves it out.
    pub erase_devices_metadata_priority: i32,
    /// Base URL of the HTTP server that serves `http_root` (iPXE scripts,
    /// kernels and ramdisks of the `ipxe` interface).
    pub http_url: String,
    /// The directory that server serves.
    pub http_root: std::path::PathBuf,
    /// Passes of random data `erase_devices` writes.
    pub shred_random_overwrite_iterations: u32,
    /// Whether `erase_devices` ends with a pass of zeros.
    pub shred_final_overwrite_with_zeros: bool,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            fast_track: false,
            fast_track_timeout: 300,
            erase_devices_priority: 0,
            erase_devices_metadata_priority: 99,
            http_url: String::new(),
            http_root: std::path::PathBuf::new(),
            shred_random_overwrite_iterations: 1,
            shred_final_overwrite_with_zeros: true,
        }
    }
}
