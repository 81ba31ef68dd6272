//! `ferric-agent`: the deploy ramdisk's agent, speaking
//! ironic-python-agent's protocol ([`ferric_ipa`]) to Ironic or Ferric.
//!
//! Its life, as IPA's: read the configuration (kernel command line +
//! flags, [`config`]), find the node by `lookup` with the machine's MACs
//! ([`ironic`]), serve the command API ([`server`], commands in [`ext`],
//! TLS in [`tls`]) and heartbeat ([`heartbeat`]) until `standby.power_off`.
//! Images are written with `ferric-image` ([`imaging`]) onto the disk the
//! root device hints choose ([`disk`]); the inventory is read from (fake-
//! able) /proc, /sys and /dev trees ([`inventory`]).
//!
//! Architecture invariant: imports only `ferric-ipa`, `ferric-image` and
//! `ferric-iscsi`.

pub mod agent;
pub mod config;
pub mod disk;
pub mod executor;
pub mod ext;
pub mod fuzzing;
pub mod heartbeat;
pub mod imaging;
pub mod inventory;
pub mod ironic;
pub mod logbuf;
pub mod server;
pub mod tls;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::agent::{supports_auto_tls, Agent, VERSION};
use crate::config::{Config, Flags};
use crate::heartbeat::Advertised;

/// The fuzzable command parser: request body + query string → typed
/// command (or the fault the API answers). See [`ferric_ipa::commands`].
pub fn parse_command(
    query: &str,
    body: &[u8],
) -> Result<ferric_ipa::commands::RunCommand, ferric_ipa::AgentFault> {
    ferric_ipa::commands::parse_run_command(query, body)
}

/// Runs the agent until a command ends it; returns the command's kind of
/// shutdown (none when interrupted or only printing the inventory).
pub async fn run(flags: Flags) -> anyhow::Result<Option<agent::Shutdown>> {
    if let Some(config::Tool::IscsiTarget(tool)) = &flags.tool {
        ext::iscsi::run_tool(tool, flags.debug).await?;
        return Ok(None);
    }
    let config = Config::load(&flags)?;
    let log = logbuf::LogBuffer::default();
    logbuf::init(&log, config.debug);
    if flags.print_inventory {
        let roots = inventory::Roots {
            proc: config.proc_root.clone(),
            sys: config.sys_root.clone(),
            dev: config.dev_root.clone(),
        };
        let inv = inventory::collect_for(&roots, &config);
        println!("{}", serde_json::to_string_pretty(&inv)?);
        return Ok(None);
    }
    tracing::info!(version = VERSION, "starting ferric-agent");
    let agent = Agent::new(config, log)?;
    lookup(&agent).await?;
    let listener = bind(agent.config.listen).await?;
    let port = listener.local_addr()?.port();
    let host = advertise_host(&agent).await?;
    let tls = auto_tls(&agent, &host).await?;
    let advertise_port = agent.config.advertise_port.unwrap_or(port);
    let callback_url = ferric_ipa::heartbeat::callback_url(tls.is_some(), &host, advertise_port);
    tracing::info!(%callback_url, listen = %listener.local_addr()?, "serving the command API");
    let advertised = Advertised {
        callback_url,
        verify_ca: tls.as_ref().map(|t| t.cert_pem.clone()),
    };
    let server = tokio::spawn(server::serve(
        listener,
        server::router(agent.clone()),
        tls.map(|t| t.server_config),
        agent.clone(),
    ));
    if agent.ironic.is_some() {
        tokio::spawn(heartbeat::run(agent.clone(), advertised));
    }
    let mut shutdown = agent.shutdown.subscribe();
    tokio::select! {
        _ = shutdown.wait_for(Option::is_some) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
    }
    server.abort();
    ext::iscsi::stop(&agent).await;
    tracing::info!("ferric-agent stopped");
    let kind = *shutdown.borrow();
    Ok(kind)
}

async fn lookup(agent: &Arc<Agent>) -> anyhow::Result<()> {
    let Some(client) = agent.ironic.as_ref() else {
        tracing::warn!("no ipa-api-url given: no lookup, no heartbeats");
        return Ok(());
    };
    let mut query = agent.lookup_query();
    query.node_uuid = inspect(agent, client).await;
    if query.addresses.is_empty() {
        tracing::warn!("no interface with a MAC address found: lookup will probably fail");
    }
    let answer = client
        .lookup(
            &query,
            agent.config.lookup_timeout,
            agent.config.lookup_interval,
        )
        .await
        .context("Error getting configuration from Ironic")?;
    agent.process_lookup(answer).map_err(anyhow::Error::msg)
}

/// IPA's `inspector.inspect`: the inventory is posted before lookup; if a
/// node waits for it, its UUID comes back and lookup asks for that node.
async fn inspect(agent: &Arc<Agent>, client: &ironic::IronicClient) -> Option<String> {
    let inventory = inventory::collect_for(&agent.roots, &agent.config);
    let root_disk = ferric_ipa::hints::guess_root_disk(&inventory.disks, 4 << 30)
        .ok()
        .cloned();
    let data = serde_json::json!({
        "inventory": inventory,
        "root_disk": root_disk,
        "boot_interface": agent.config.bootif,
        "error": null,
    });
    match client
        .continue_inspection(agent.config.inspection_callback_url.as_deref(), &data)
        .await
    {
        Ok(uuid) => {
            if let Some(u) = &uuid {
                tracing::info!(node = %u, "inventory posted for inspection");
            }
            uuid
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not post the inventory; proceeding with lookup");
            None
        }
    }
}

/// Binds the listener; the IPv6 wildcard falls back to IPv4's.
async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            tracing::warn!(error = %e, "cannot listen on [::], trying 0.0.0.0");
            let v4 = SocketAddr::new(IpAddr::from([0, 0, 0, 0]), addr.port());
            TcpListener::bind(v4)
                .await
                .with_context(|| format!("cannot listen on {v4}"))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on {addr}")),
    }
}

/// `--advertise-host`, else the route source towards the API, else the
/// listen address when it is a specific one (IPA's `LookupAgentIPError`
/// otherwise).
async fn advertise_host(agent: &Agent) -> anyhow::Result<String> {
    if let Some(host) = &agent.config.advertise_host {
        return Ok(host.clone());
    }
    for url in &agent.config.api_urls {
        if let Some(ip) = agent::route_source(url).await {
            return Ok(ip.to_string());
        }
    }
    let listen = agent.config.listen.ip();
    if listen.is_unspecified() {
        anyhow::bail!("Error finding IP for Ironic Agent: Agent could not find a valid IP address (give --advertise-host)");
    }
    Ok(listen.to_string())
}

async fn auto_tls(agent: &Agent, host: &str) -> anyhow::Result<Option<tls::AutoTls>> {
    let Some(client) = agent.ironic.as_ref() else {
        return Ok(None);
    };
    if !agent.config.auto_tls {
        return Ok(None);
    }
    let version = client.api_version().await;
    if !supports_auto_tls(version) {
        tracing::warn!(%version, "Ironic does not support automated TLS");
        return Ok(None);
    }
    let tls13_only = agent
        .lookup_config()
        .and_then(|c| c.tls_min_version)
        .as_deref()
        == Some("1.3");
    let hostname =
        inventory::read_value(&agent.roots.proc.join("sys/kernel/hostname")).unwrap_or_default();
    let generated = tls::generate(host, &hostname, tls13_only)?;
    tracing::info!(host, "generated a TLS certificate for the command API");
    Ok(Some(generated))
}
