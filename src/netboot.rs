//! The network-boot services `ferric serve` runs beside the API: DHCP,
//! TFTP and HTTP boot, each off by default and each replaceable by an
//! external one (a dnsmasq reading the same host and option files, a TFTP
//! daemon or web server serving the same roots).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferric_netboot::dhcp::net::{DhcpServer, ServerSettings};
use ferric_netboot::dhcp::{DhcpConfig, Leases, Pool, Responder};
use ferric_netboot::tftp::net::{TftpServer, TftpSettings};
use ferric_netboot::trace::Recorder;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// `[dhcp_server]`: Ferric's own DHCP server.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DhcpServerConfig {
    pub enabled: bool,
    /// `full` (hands out addresses from `range`) or `proxy` (only PXE
    /// options, beside a DHCP server that hands out the addresses).
    pub mode: String,
    /// The provisioning network's interface; replies leave through it.
    pub interface: String,
    /// `FIRST,LAST` addresses of the pool (full mode).
    pub range: String,
    /// Of the pool's subnet; empty means /24.
    pub netmask: String,
    pub router: String,
    pub dns_servers: Vec<String>,
    pub domain: String,
    /// Seconds a lease lasts.
    pub lease_time: u64,
    /// This server's address on the provisioning network; empty means the
    /// interface's first IPv4 address.
    pub server_ip: String,
    /// Answer MACs no node has (for discovery and inspection of new
    /// machines).
    pub discovery: bool,
    /// The DHCP server port (67); tests use others.
    pub port: u16,
}

impl Default for DhcpServerConfig {
    fn default() -> Self {
        DhcpServerConfig {
            enabled: false,
            mode: "full".into(),
            interface: String::new(),
            range: String::new(),
            netmask: String::new(),
            router: String::new(),
            dns_servers: Vec::new(),
            domain: String::new(),
            lease_time: 3600,
            server_ip: String::new(),
            discovery: false,
            port: 67,
        }
    }
}

/// `[tftp_server]`: Ferric's own TFTP server, serving `[pxe] tftp_root`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TftpServerConfig {
    pub enabled: bool,
    pub listen: String,
    /// Transfers at once; more are refused with "server busy".
    pub max_transfers: usize,
}

impl Default for TftpServerConfig {
    fn default() -> Self {
        TftpServerConfig {
            enabled: false,
            listen: "0.0.0.0:69".into(),
            max_transfers: 256,
        }
    }
}

/// `[http_server]`: Ferric's own HTTP boot server, serving
/// `[deploy] http_root` at `[deploy] http_url`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    pub enabled: bool,
    pub listen: String,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            enabled: false,
            listen: "0.0.0.0:8080".into(),
        }
    }
}

/// Fills what the configuration left empty from the data directory and
/// the services' addresses, and checks what the services will need.
pub fn resolve(config: &mut Config) -> Result<()> {
    // Absolute: the `pxe` interface writes these paths into boot configs.
    let data = std::path::absolute(&config.data_dir)
        .with_context(|| format!("data directory {}", config.data_dir.display()))?;
    fill_path(&mut config.pxe.tftp_root, &data, "tftpboot");
    fill_path(&mut config.deploy.http_root, &data, "httpboot");
    fill_path(&mut config.dnsmasq.dhcp_hostsdir, &data, "dhcp/hostsdir");
    fill_path(&mut config.dnsmasq.dhcp_optsdir, &data, "dhcp/optsdir");
    fill_path(&mut config.dnsmasq.dhcp_leasefile, &data, "dhcp/leases");
    let server_ip = server_ip(config)?;
    if config.dhcp_server.enabled {
        if server_ip.is_none() {
            bail!("[dhcp_server] needs server_ip or an interface with an IPv4 address");
        }
        if config.dhcp_server.mode == "full" && config.dhcp_server.range.is_empty() {
            bail!("[dhcp_server] mode full needs a range (--dhcp-range FIRST,LAST)");
        }
        if !matches!(config.dhcp_server.mode.as_str(), "full" | "proxy") {
            bail!(
                "[dhcp_server] mode must be full or proxy, not {:?}",
                config.dhcp_server.mode
            );
        }
    }
    if config.pxe.tftp_server.is_empty() {
        let listen = parse_addr(&config.tftp_server.listen, "[tftp_server] listen")?;
        let ip = specific(listen.ip()).or(server_ip.map(IpAddr::V4));
        if let Some(ip) = ip {
            config.pxe.tftp_server = ip.to_string();
        }
    }
    if config.deploy.http_url.is_empty() && config.http_server.enabled {
        let listen = parse_addr(&config.http_server.listen, "[http_server] listen")?;
        let ip = specific(listen.ip()).or(server_ip.map(IpAddr::V4));
        if let Some(ip) = ip {
            config.deploy.http_url = format!("http://{}", SocketAddr::new(ip, listen.port()));
        }
    }
    if config.conductor.api_url.is_empty() {
        config.conductor.api_url = derived_api_url(config, server_ip);
    }
    Ok(())
}

fn fill_path(path: &mut PathBuf, data: &Path, name: &str) {
    if path.as_os_str().is_empty() {
        *path = data.join(name);
    } else if let Ok(absolute) = std::path::absolute(&*path) {
        *path = absolute;
    }
}

fn parse_addr(text: &str, what: &str) -> Result<SocketAddr> {
    text.parse()
        .with_context(|| format!("{what}: {text:?} is not an ADDRESS:PORT"))
}

fn specific(ip: IpAddr) -> Option<IpAddr> {
    (!ip.is_unspecified()).then_some(ip)
}

/// `[dhcp_server] server_ip`, else the DHCP interface's first IPv4.
fn server_ip(config: &Config) -> Result<Option<Ipv4Addr>> {
    let dhcp = &config.dhcp_server;
    if !dhcp.server_ip.is_empty() {
        let ip = dhcp
            .server_ip
            .parse()
            .with_context(|| format!("[dhcp_server] server_ip {:?}", dhcp.server_ip))?;
        return Ok(Some(ip));
    }
    if dhcp.interface.is_empty() {
        return Ok(None);
    }
    let addrs = if_addrs::get_if_addrs().context("cannot list network interfaces")?;
    Ok(addrs
        .into_iter()
        .filter(|a| a.name == dhcp.interface)
        .find_map(|a| match a.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }))
}

/// Where agents reach the API: the public endpoint, else the agents'
/// listener, else the API's, with a wildcard address replaced by the
/// provisioning address.
fn derived_api_url(config: &Config, server_ip: Option<Ipv4Addr>) -> String {
    if !config.public_endpoint.is_empty() {
        return config.public_endpoint.trim_end_matches('/').to_owned();
    }
    let listen = config.agent_listen.unwrap_or(config.listen);
    let ip = specific(listen.ip())
        .or(server_ip.map(IpAddr::V4))
        .unwrap_or(listen.ip());
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// The boot services that are running, and what they saw.
pub struct Services {
    pub trace: Arc<Recorder>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Services {
    /// Waits for the services to stop (after the token is cancelled).
    pub async fn join(self) {
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a boot service task failed");
            }
        }
    }
}

/// Starts the enabled services; each binds before this returns, so a port
/// in use fails `ferric serve` at once.
pub async fn start(config: &Config, stop: &CancellationToken) -> Result<Services> {
    let trace = Arc::new(Recorder::new(4096, 64));
    let mut tasks = Vec::new();
    let boots =
        config.dhcp_server.enabled || config.http_server.enabled || config.tftp_server.enabled;
    if boots && config.conductor.api_url.contains("://127.") {
        tracing::warn!(
            api_url = %config.conductor.api_url,
            "agents are told to call back a loopback address no machine can reach: \
             set --agent-listen, public_endpoint or [conductor] api_url"
        );
    }
    prepare_roots(config)?;
    if config.http_server.enabled {
        tasks.push(start_http(config, &trace, stop).await?);
    }
    if config.tftp_server.enabled {
        tasks.push(start_tftp(config, &trace, stop).await?);
    }
    if config.dhcp_server.enabled {
        tasks.push(start_dhcp(config, &trace, stop)?);
    }
    Ok(Services { trace, tasks })
}

fn prepare_roots(config: &Config) -> Result<()> {
    for dir in [
        &config.pxe.tftp_root,
        &config.deploy.http_root,
        &config.dnsmasq.dhcp_hostsdir,
        &config.dnsmasq.dhcp_optsdir,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if config.tftp_server.enabled {
        copy_loaders(&config.pxe.loader_dirs, &config.pxe.tftp_root, TFTP_LOADERS);
    }
    if config.http_server.enabled {
        copy_loaders(
            &config.pxe.loader_dirs,
            &config.deploy.http_root,
            HTTP_LOADERS,
        );
    }
    Ok(())
}

/// First-stage loaders nodes fetch over TFTP: iPXE's (Debian `ipxe`) and
/// PXELINUX's (Debian `pxelinux`, `syslinux-common`).
const TFTP_LOADERS: &[&str] = &[
    "undionly.kpxe",
    "ipxe.efi",
    "snponly.efi",
    "pxelinux.0",
    "ldlinux.c32",
];

/// Loaders UEFI HTTP boot clients fetch.
const HTTP_LOADERS: &[&str] = &["ipxe.efi", "snponly.efi"];

/// Copies each loader found in `dirs` into `root` unless the same size is
/// there already; a missing one is logged, not fatal (an operator may use
/// other loaders).
fn copy_loaders(dirs: &[PathBuf], root: &Path, names: &[&str]) {
    for name in names {
        let Some(source) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) else {
            tracing::info!(loader = name, "boot loader not found in [pxe] loader_dirs");
            continue;
        };
        let dest = root.join(name);
        let same = match (std::fs::metadata(&source), std::fs::metadata(&dest)) {
            (Ok(a), Ok(b)) => a.len() == b.len(),
            _ => false,
        };
        if same {
            continue;
        }
        match std::fs::copy(&source, &dest) {
            Ok(_) => tracing::info!(loader = name, from = %source.display(), "boot loader copied"),
            Err(e) => tracing::warn!(loader = name, error = %e, "cannot copy boot loader"),
        }
    }
}

async fn start_http(
    config: &Config,
    trace: &Arc<Recorder>,
    stop: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let addr = parse_addr(&config.http_server.listen, "[http_server] listen")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for HTTP boot on {addr}"))?;
    let local = listener.local_addr().context("no local address")?;
    tracing::info!(listen = %local, root = %config.deploy.http_root.display(), "serving HTTP boot");
    let root = config.deploy.http_root.clone();
    let sink: Arc<dyn ferric_netboot::trace::TraceSink> = trace.clone();
    let stop = stop.clone();
    Ok(tokio::spawn(async move {
        let shutdown = async move { stop.cancelled().await };
        if let Err(e) = ferric_netboot::http::serve(listener, root, sink, shutdown).await {
            tracing::error!(error = %e, "the HTTP boot server failed");
        }
    }))
}

/// `[dhcp_server]` as the DHCP responder's configuration.
fn dhcp_config(config: &Config) -> Result<DhcpConfig> {
    let dhcp = &config.dhcp_server;
    let server_ip = server_ip(config)?
        .context("[dhcp_server] needs server_ip or an interface with an IPv4 address")?;
    let mut out = match dhcp.mode.as_str() {
        "proxy" => DhcpConfig::proxy(server_ip),
        _ => DhcpConfig::full(server_ip, vec![pool(dhcp)?]),
    };
    out.server_port = dhcp.port;
    out.discovery = dhcp.discovery;
    if let Ok(tftp) = config.pxe.tftp_server.parse::<Ipv4Addr>() {
        out.tftp_server = Some(tftp);
    }
    Ok(out)
}

fn pool(dhcp: &DhcpServerConfig) -> Result<Pool> {
    let address = |text: &str, what: &str| -> Result<Ipv4Addr> {
        text.trim()
            .parse()
            .with_context(|| format!("[dhcp_server] {what}: {text:?} is not an IPv4 address"))
    };
    let (first, last) = dhcp
        .range
        .split_once(',')
        .with_context(|| format!("[dhcp_server] range {:?} is not FIRST,LAST", dhcp.range))?;
    let netmask = match dhcp.netmask.as_str() {
        "" => Ipv4Addr::new(255, 255, 255, 0),
        mask => address(mask, "netmask")?,
    };
    let mut pool = Pool::new(address(first, "range")?, address(last, "range")?, netmask);
    if !dhcp.router.is_empty() {
        pool.router = Some(address(&dhcp.router, "router")?);
    }
    pool.dns = dhcp
        .dns_servers
        .iter()
        .map(|d| address(d, "dns_servers"))
        .collect::<Result<_>>()?;
    pool.domain = Some(dhcp.domain.clone()).filter(|d| !d.is_empty());
    pool.lease_time = std::time::Duration::from_secs(dhcp.lease_time);
    Ok(pool)
}

fn start_dhcp(
    config: &Config,
    trace: &Arc<Recorder>,
    stop: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let responder = Responder::new(dhcp_config(config)?, Leases::default())
        .map_err(|e| anyhow::anyhow!("invalid [dhcp_server] configuration: {e}"))?;
    let settings = ServerSettings {
        interface: Some(config.dhcp_server.interface.clone()).filter(|i| !i.is_empty()),
        hosts_dir: Some(config.dnsmasq.dhcp_hostsdir.clone()),
        opts_dir: Some(config.dnsmasq.dhcp_optsdir.clone()),
        lease_file: Some(config.dnsmasq.dhcp_leasefile.clone()),
        ..ServerSettings::default()
    };
    let sink: Arc<dyn ferric_netboot::trace::TraceSink> = trace.clone();
    let server = DhcpServer::bind(settings, responder, sink)
        .map_err(|e| anyhow::anyhow!("cannot start the DHCP server: {e}"))?;
    tracing::info!(
        mode = %config.dhcp_server.mode,
        interface = %config.dhcp_server.interface,
        "serving DHCP"
    );
    let stop = stop.clone();
    Ok(tokio::spawn(async move {
        if let Err(e) = server.run(async move { stop.cancelled().await }).await {
            tracing::error!(error = %e, "the DHCP server failed");
        }
    }))
}

async fn start_tftp(
    config: &Config,
    trace: &Arc<Recorder>,
    stop: &CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let settings = TftpSettings {
        root: config.pxe.tftp_root.clone(),
        listen: parse_addr(&config.tftp_server.listen, "[tftp_server] listen")?,
        max_transfers: config.tftp_server.max_transfers,
        ..TftpSettings::default()
    };
    let sink: Arc<dyn ferric_netboot::trace::TraceSink> = trace.clone();
    let server = TftpServer::bind(settings, sink)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the TFTP server: {e}"))?;
    let local = server.local_addr().context("no local address")?;
    tracing::info!(listen = %local, root = %config.pxe.tftp_root.display(), "serving TFTP");
    let stop = stop.clone();
    Ok(tokio::spawn(async move {
        if let Err(e) = server.run(async move { stop.cancelled().await }).await {
            tracing::error!(error = %e, "the TFTP server failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_absolute_and_urls_follow_the_listen_addresses() {
        let mut config = Config {
            data_dir: PathBuf::from("relative-data"),
            ..Config::default()
        };
        config.http_server.enabled = true;
        config.http_server.listen = "10.1.0.1:8080".into();
        config.tftp_server.listen = "10.1.0.1:69".into();
        config.agent_listen = Some("10.1.0.1:6385".parse().expect("addr"));
        resolve(&mut config).expect("resolve");
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(config.pxe.tftp_root, cwd.join("relative-data/tftpboot"));
        assert_eq!(config.deploy.http_root, cwd.join("relative-data/httpboot"));
        assert_eq!(config.deploy.http_url, "http://10.1.0.1:8080");
        assert_eq!(config.pxe.tftp_server, "10.1.0.1");
        assert_eq!(config.conductor.api_url, "http://10.1.0.1:6385");
    }

    #[test]
    fn full_mode_dhcp_needs_a_range_and_an_address() {
        let mut config = Config::default();
        config.dhcp_server.enabled = true;
        let err = resolve(&mut config).expect_err("no address");
        assert!(err.to_string().contains("server_ip"), "{err}");
        config.dhcp_server.server_ip = "10.1.0.1".into();
        let err = resolve(&mut config).expect_err("no range");
        assert!(err.to_string().contains("--dhcp-range"), "{err}");
        config.dhcp_server.range = "10.1.0.10,10.1.0.20".into();
        config.dhcp_server.mode = "sideways".into();
        let err = resolve(&mut config).expect_err("bad mode");
        assert!(err.to_string().contains("full or proxy"), "{err}");
    }
}
