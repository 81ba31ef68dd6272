//! `iscsi.start_iscsi_target`, as IPA's removed iSCSI extension (its name,
//! arguments and result), served by `ferric-iscsi`'s own target instead of
//! tgtd or LIO: the install device (chosen by the root device hints) is
//! exported as LUN 1 of the given IQN on `portal_port` of the command API's
//! listen address (all addresses by default, as IPA). When that port is taken
//! (several simulated machines on one host), a free one is used and the
//! result says which (`iscsi_target_portal_port`, Ferric's). With CHAP
//! credentials only an initiator that proves the secret logs in (Ferric's
//! conductor always sends them); without, the target is open, as IPA's was.
//! A second call replaces the running target. The target ends, flushed,
//! when the agent powers the machine off or reboots it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use ferric_ipa::commands::{StartIscsiTargetParams, OPENSTACK_IQN_PREFIX};
use ferric_ipa::{ErrorKind, RestError};
use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::target::{TargetConfig, TargetServer};
use ferric_iscsi::scsi::{Disk, FileBacking, Identity, LogicalUnits};
use serde_json::{json, Value};

use crate::config::IscsiTargetFlags;

use crate::agent::Agent;
use crate::disk;

/// IPA's default portal port.
pub const DEFAULT_PORTAL_PORT: u16 = 3260;
/// Ironic's LUN for the node's disk.
pub const LUN: u64 = 1;

/// Starts (or restarts) the target; returns IPA's result.
pub async fn start(agent: &Arc<Agent>, params: StartIscsiTargetParams) -> Result<Value, RestError> {
    let iqn = params
        .iqn
        .clone()
        .unwrap_or_else(|| format!("{OPENSTACK_IQN_PREFIX}{}", uuid::Uuid::new_v4()));
    let chap = credentials(
        params.chap_username.as_deref(),
        params.chap_secret.as_ref().map(|s| s.expose()),
        "chap",
    )?;
    let mutual = credentials(
        params.mutual_chap_username.as_deref(),
        params.mutual_chap_secret.as_ref().map(|s| s.expose()),
        "mutual_chap",
    )?;
    if mutual.is_some() && chap.is_none() {
        return Err(invalid(
            "mutual CHAP needs chap_username and chap_secret too",
        ));
    }
    let device = disk::install_device(agent)?;
    let path = disk::writable_path(agent, &device)?;
    // Held from stopping the old target to storing the new one: two calls at
    // once cannot both export the disk, and no target serves it while it is wiped.
    let mut running = agent.iscsi.lock().await;
    if let Some(old) = running.take() {
        if let Err(e) = old.shutdown().await {
            tracing::warn!(error = %e, "the previous iSCSI target stopped with an error");
        }
    }
    if params.wipe_disk_metadata {
        crate::imaging::destroy_metadata(&path).await.map_err(|e| {
            RestError::new(
                ErrorKind::CommandExecution,
                format!("destroying the metadata of {} failed: {e}", device.name),
            )
        })?;
    }
    let port = params.portal_port.unwrap_or(DEFAULT_PORTAL_PORT);
    let listen = SocketAddr::new(agent.config.listen.ip(), port);
    let serial = device.serial.clone().unwrap_or_else(|| device.name.clone());
    let target = TargetSpec {
        path: &path,
        serial: &serial,
        iqn: &iqn,
        lun: LUN,
        block_size: 512,
        read_only: false,
    };
    let server = match serve(&target, listen, chap.clone(), mutual.clone()).await {
        Err(e) if e.address_in_use => {
            let any = SocketAddr::new(listen.ip(), 0);
            tracing::warn!(%listen, "the portal port is taken; the target takes a free one");
            serve(&target, any, chap, mutual).await
        }
        other => other,
    }
    .map_err(|e| RestError::new(ErrorKind::CommandExecution, e.message))?;
    let bound = server.local_addr();
    tracing::info!(%iqn, listen = %bound, device = %device.name, chap = params.chap_secret.is_some(), mutual_chap = params.mutual_chap_secret.is_some(), "iSCSI target started");
    if let Ok(mut standby) = agent.standby.lock() {
        standby.device = Some(device.name.clone());
        standby.partition_image = false;
        standby.partition_uuids = None;
        standby.cached_image_id = None;
    }
    heartbeat_when_sessions_end(agent, &server);
    *running = Some(server);
    Ok(json!({ "iscsi_target_iqn": iqn, "iscsi_target_portal_port": bound.port() }))
}

/// The conductor learns that its write is over at its next heartbeat: one is
/// sent when a session ends rather than up to a heartbeat interval later (the
/// short pause lets the conductor record the write's end first: it logs out
/// as soon as the data is flushed).
fn heartbeat_when_sessions_end(agent: &Arc<Agent>, server: &TargetServer) {
    let mut ended = server.sessions_ended();
    let agent = Arc::downgrade(agent);
    tokio::spawn(async move {
        while ended.changed().await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let Some(agent) = agent.upgrade() else { break };
            tracing::info!("an iSCSI session ended: heartbeating now");
            agent.heartbeat_now.notify_one();
        }
    });
}

/// Stops the target, if one runs, flushing the disk.
pub async fn stop(agent: &Agent) {
    let running = agent.iscsi.lock().await.take();
    if let Some(server) = running {
        match server.shutdown().await {
            Ok(()) => tracing::info!("iSCSI target stopped"),
            Err(e) => tracing::warn!(error = %e, "the iSCSI target stopped with an error"),
        }
    }
}

fn invalid(msg: impl Into<String>) -> RestError {
    RestError::new(ErrorKind::InvalidCommandParams, msg.into())
}

fn credentials(
    user: Option<&str>,
    secret: Option<&str>,
    what: &str,
) -> Result<Option<ChapCredentials>, RestError> {
    match (user, secret) {
        (None, None) => Ok(None),
        (Some(user), Some(secret)) => ChapCredentials::new(user, secret.as_bytes())
            .map(Some)
            .map_err(|e| invalid(format!("{what}_secret: {e}"))),
        _ => Err(invalid(format!(
            "{what}_username and {what}_secret go together"
        ))),
    }
}

/// What to export.
pub struct TargetSpec<'a> {
    pub path: &'a Path,
    pub serial: &'a str,
    pub iqn: &'a str,
    pub lun: u64,
    pub block_size: u32,
    pub read_only: bool,
}

/// Why a target did not start.
#[derive(Debug)]
pub struct StartError {
    pub message: String,
    pub address_in_use: bool,
}

/// Exports the disk as `spec.lun` of `spec.iqn` on `listen`.
pub async fn serve(
    spec: &TargetSpec<'_>,
    listen: SocketAddr,
    chap: Option<ChapCredentials>,
    mutual_chap: Option<ChapCredentials>,
) -> Result<TargetServer, StartError> {
    let failed = |what: &str, e: &std::io::Error| StartError {
        message: format!(
            "cannot start the iSCSI target on {listen} for {}: {what}: {e}",
            spec.path.display()
        ),
        address_in_use: e.kind() == std::io::ErrorKind::AddrInUse,
    };
    let backing =
        FileBacking::open(spec.path, spec.read_only).map_err(|e| failed("opening the disk", &e))?;
    let identity = Identity::new(spec.serial);
    let mut luns = LogicalUnits::new();
    luns.add(
        spec.lun,
        Disk::new(backing, identity, spec.block_size, spec.read_only),
    )
    .map_err(|e| StartError {
        message: format!("cannot export LUN {}: {e}", spec.lun),
        address_in_use: false,
    })?;
    let config = TargetConfig {
        chap,
        mutual_chap,
        ..TargetConfig::new(spec.iqn)
    };
    TargetServer::bind(listen, config, luns)
        .await
        .map_err(|e| failed("listening", &e))
}

/// `ferric-agent iscsi-target`: serves until SIGINT or SIGTERM.
pub async fn run_tool(flags: &IscsiTargetFlags, debug: bool) -> anyhow::Result<()> {
    crate::logbuf::init_stderr(debug);
    let chap = match (&flags.chap_user, &flags.chap_secret_file) {
        (Some(user), Some(file)) => {
            let secret = std::fs::read_to_string(file)
                .with_context(|| format!("reading the CHAP secret from {}", file.display()))?;
            let secret = secret.trim_end_matches(['\n', '\r']).as_bytes().to_vec();
            Some(
                ChapCredentials::new(user.as_str(), secret)
                    .map_err(|e| anyhow::anyhow!("the CHAP secret: {e}"))?,
            )
        }
        _ => None,
    };
    let serial = flags
        .disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let spec = TargetSpec {
        path: &flags.disk,
        serial: &serial,
        iqn: &flags.iqn,
        lun: flags.lun,
        block_size: flags.block_size,
        read_only: flags.read_only,
    };
    let server = serve(&spec, flags.listen, chap, None)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    tracing::info!(iqn = %flags.iqn, listen = %server.local_addr(), lun = flags.lun, disk = %flags.disk.display(), "iSCSI target serving");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await?;
    tracing::info!("iSCSI target stopped");
    Ok(())
}
