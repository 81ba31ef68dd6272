//! `ferric serve`'s settings: one TOML file, every option also settable by
//! an environment variable, every field defaulted.
//!
//! Precedence: command-line flags, then `FERRIC_*` environment variables,
//! then the file, then the defaults. A nested option `[conductor] host` is
//! `FERRIC_CONDUCTOR__HOST` in the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferric_conductor::ConductorConfig;
use ferric_drivers::ipmi::IpmiConfig;
use ferric_drivers::pxe::{DhcpProviderConfig, DnsmasqConfig, PxeConfig};
use ferric_drivers::redfish::RedfishConfig;
use ferric_drivers::{
    AgentConfig, DeployConfig, DriverConfig, FakeDelays, InspectorConfig, IscsiConfig,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub listen: SocketAddr,
    /// A second address serving only the agents' endpoints; none by
    /// default.
    pub agent_listen: Option<SocketAddr>,
    /// Where the SQLite database lives; created on first run.
    pub data_dir: PathBuf,
    /// Base URL of links in API answers; empty means "as the client called".
    pub public_endpoint: String,
    /// Log filter, e.g. `info` or `ferric_conductor=debug,info`.
    pub log: String,
    pub conductor: ConductorConfig,
    /// How the conductor talks to agents (Ironic's `[agent]`).
    pub agent: AgentConfig,
    /// Deploying and cleaning through the agent (Ironic's `[deploy]`).
    pub deploy: DeployConfig,
    /// The `iscsi` deploy interface (Ironic's `[iscsi]`, and Ferric's limits).
    pub iscsi: IscsiConfig,
    /// In-band inspection (Ironic's `[inspector]`).
    pub inspector: InspectorConfig,
    /// The native IPMI client (Ironic's `[ipmi]`).
    pub ipmi: IpmiConfig,
    /// The Redfish client (Ironic's `[redfish]`).
    pub redfish: RedfishConfig,
    /// Delays of the `fake` interfaces (Ironic's `[fake]`).
    pub fake: FakeDelays,
    /// Boot files and configs of the `pxe` and `ipxe` interfaces (Ironic's
    /// `[pxe]`).
    pub pxe: PxeConfig,
    /// Who answers DHCP with boot options (Ironic's `[dhcp]`).
    pub dhcp: DhcpProviderConfig,
    /// Where the `dnsmasq` provider writes (Ironic's `[dnsmasq]`).
    pub dnsmasq: DnsmasqConfig,
    /// Ferric's own DHCP server.
    pub dhcp_server: crate::netboot::DhcpServerConfig,
    /// Ferric's own TFTP server.
    pub tftp_server: crate::netboot::TftpServerConfig,
    /// Ferric's own HTTP boot server.
    pub http_server: crate::netboot::HttpServerConfig,
}

impl Config {
    /// What the driver interfaces read.
    pub fn drivers(&self) -> DriverConfig {
        DriverConfig {
            agent: self.agent.clone(),
            deploy: self.deploy.clone(),
            iscsi: self.iscsi.clone(),
            inspector: self.inspector.clone(),
            ipmi: self.ipmi.clone(),
            redfish: self.redfish.clone(),
            pxe: self.pxe.clone(),
            dhcp: self.dhcp.clone(),
            dnsmasq: self.dnsmasq.clone(),
            fake: self.fake,
            api_url: self.conductor.api_url.clone(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 6385)),
            agent_listen: None,
            data_dir: default_data_dir(),
            public_endpoint: String::new(),
            log: "info".into(),
            conductor: ConductorConfig::default(),
            agent: AgentConfig::default(),
            deploy: DeployConfig::default(),
            iscsi: IscsiConfig::default(),
            inspector: InspectorConfig::default(),
            ipmi: IpmiConfig::default(),
            redfish: RedfishConfig::default(),
            fake: FakeDelays::default(),
            pxe: PxeConfig::default(),
            dhcp: DhcpProviderConfig::default(),
            dnsmasq: DnsmasqConfig::default(),
            dhcp_server: Default::default(),
            tftp_server: Default::default(),
            http_server: Default::default(),
        }
    }
}

/// `/var/lib/ferric` for root, else the user's data directory.
fn default_data_dir() -> PathBuf {
    if running_as_root() {
        return PathBuf::from("/var/lib/ferric");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("ferric");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/ferric"),
        None => PathBuf::from("ferric-data"),
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

const ENV_PREFIX: &str = "FERRIC_";

/// Reads the configuration: the file (if any), then the environment.
pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Config> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            text.parse::<toml::Table>()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?
        }
        None => toml::Table::new(),
    };
    let defaults =
        toml::Table::try_from(Config::default()).context("cannot describe the defaults")?;
    for (key, value) in env {
        let Some(name) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let path = name.to_ascii_lowercase();
        // Only variables naming an option count: FERRIC_CONFIG and the
        // variables of other tools are not options.
        let Some(default) = lookup(&defaults, &path) else {
            continue;
        };
        let typed =
            typed(&value, default).with_context(|| format!("environment variable {key}"))?;
        set_path(&mut table, &path, typed)
            .with_context(|| format!("environment variable {key}"))?;
    }
    let config: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            let place = file
                .map(|p| format!(" in {}", p.display()))
                .unwrap_or_default();
            anyhow::anyhow!("invalid configuration{place}: {}", e.message())
        })?;
    config
        .conductor
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(config)
}

/// The default value of option `a__b`, if there is such an option.
fn lookup<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split("__");
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    (!value.is_table()).then_some(value)
}

/// Sets `a__b` to `value` in the table.
fn set_path(table: &mut toml::Table, path: &str, value: toml::Value) -> Result<()> {
    let mut parts: Vec<&str> = path.split("__").collect();
    let Some(last) = parts.pop() else {
        bail!("empty option name");
    };
    let mut current = table;
    for part in parts {
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("{part} is not a section"),
        };
    }
    current.insert(last.to_owned(), value);
    Ok(())
}

/// The variable's text as the option's type (that of its default).
fn typed(value: &str, default: &toml::Value) -> Result<toml::Value> {
    Ok(match default {
        toml::Value::Integer(_) => toml::Value::Integer(
            value
                .trim()
                .parse()
                .with_context(|| format!("{value:?} is not a whole number"))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            value
                .trim()
                .parse()
                .with_context(|| format!("{value:?} is not true or false"))?,
        ),
        toml::Value::Array(_) => toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| toml::Value::String(v.to_owned()))
                .collect(),
        ),
        _ => toml::Value::String(value.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load(None, env(&[])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6385".parse().unwrap());
        assert_eq!(c.conductor.deploy_callback_timeout, 1800);
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferric.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\n[conductor]\nhost = \"from-file\"\n[fake]\ndeploy_delay = \"2\"\n").unwrap();
        let c = load(
            Some(&path),
            env(&[
                ("FERRIC_CONDUCTOR__HOST", "1234"),
                ("FERRIC_CONDUCTOR__WORKERS_POOL_SIZE", "7"),
                ("FERRIC_BIN", "/not/an/option"),
                ("HOME", "/x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.conductor.host, "1234");
        assert_eq!(c.conductor.workers_pool_size, 7);
        assert_eq!(c.fake.deploy_delay.earliest, 2);
        let c = load(
            None,
            env(&[
                ("FERRIC_FAKE__DEPLOY_DELAY", "5"),
                ("FERRIC_FAKE__POWER_DELAY", "1,3"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.fake.deploy_delay.earliest, c.fake.deploy_delay.latest),
            (5, 5)
        );
        assert_eq!(
            (c.fake.power_delay.earliest, c.fake.power_delay.latest),
            (1, 3)
        );
    }

    #[test]
    fn bad_options_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferric.toml");
        std::fs::write(&path, "[conductor]\nno_such_option = 1\n").unwrap();
        let err = load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            err.contains("no_such_option") && err.contains("ferric.toml"),
            "{err}"
        );
        let err = load(None, env(&[("FERRIC_LISTEN", "not an address")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid configuration"), "{err}");
        let err = load(None, env(&[("FERRIC_CONDUCTOR__WORKERS_POOL_SIZE", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("workers_pool_size"), "{err}");
    }
}
