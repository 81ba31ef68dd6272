//! `ferric lab bmc`: the virtual BMC's command line and entry point. It
//! reads the machines file, prepares each machine's disk file, brings the
//! machines back to their saved state, serves Redfish (and the `/lab`
//! endpoints) and IPMI, and on shutdown stops the agents it started.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::ServiceExt;
use tokio::sync::watch;

use crate::agent::{default_agent_bin, AgentLauncher};
use crate::config::{self, ConfigError, MachineSpec};
use crate::firmware::{Firmware, FirmwareError};
use crate::ipmi;
use crate::lab::Lab;
use crate::lab_api::{self, LabApi, SessionCounts};
use crate::redfish::{self, Sessions};
use crate::sim::Machine;
use crate::state::{StateError, StateStore};

/// `ferric lab bmc` flags: a stable interface scripts use.
#[derive(Debug, Clone, clap::Args)]
pub struct BmcArgs {
    /// The machines file (TOML).
    #[arg(long)]
    pub machines: PathBuf,
    /// Where to serve Redfish over HTTP (and the /lab endpoints).
    #[arg(long)]
    pub redfish_listen: Option<std::net::SocketAddr>,
    /// Where power state and boot devices are kept across restarts (and
    /// the agents' logs are written).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The agent binary simulated machines run when they boot PXE
    /// [default: ferric-agent next to this executable, else on PATH].
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
}

/// Why the virtual BMC could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error("machine {machine}: disk {path}: {message}")]
    Disk {
        machine: String,
        path: PathBuf,
        message: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Serves until `shutdown` completes, then stops the machines' agents
/// (their saved state stays, so a restart brings them back).
pub async fn run(
    args: BmcArgs,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), LabError> {
    let file = config::load(&args.machines)?;
    let store = StateStore::new(args.state_dir.clone());
    let launcher = Arc::new(AgentLauncher {
        bin: args.agent_bin.clone().unwrap_or_else(default_agent_bin),
        api_url: file.api_url.clone(),
        log_dir: log_dir(args.state_dir.as_deref())?,
    });
    let firmware = file
        .boot_url
        .clone()
        .map(Firmware::new)
        .transpose()?
        .map(Arc::new);
    tracing::info!(agent = %launcher.bin.display(), logs = %launcher.log_dir.display(), boot_url = ?file.boot_url, "virtual BMC starting");
    let (stop, stopping) = watch::channel(false);
    let mut machines = Vec::new();
    let mut tasks = Vec::new();
    // Everything that can fail, before any machine starts (a VM that
    // started would outlive an early return).
    for spec in &file.machines {
        prepare_disk(spec)?;
        store.load(&spec.name)?;
    }
    for (index, spec) in file.machines.iter().enumerate() {
        let (machine, task) = match &spec.vm {
            Some(_) => crate::vm::start(
                index,
                spec.clone(),
                &launcher.log_dir,
                store.clone(),
                stopping.clone(),
            )?,
            None => Machine::start(
                index,
                spec.clone(),
                store.load(&spec.name)?,
                store.clone(),
                launcher.clone(),
                firmware.clone(),
                stopping.clone(),
            ),
        };
        machines.push(machine);
        tasks.push(task);
    }
    let lab = Arc::new(Lab { machines });
    let result = match serve(&args, &file, lab, stopping).await {
        Ok(listeners) => {
            tasks.extend(listeners);
            shutdown.await;
            tracing::info!("virtual BMC stopping");
            Ok(())
        }
        Err(e) => Err(e),
    };
    stop.send_replace(true);
    for task in tasks {
        let _ = task.await;
    }
    result
}

/// Starts the listeners; returns their tasks.
async fn serve(
    args: &BmcArgs,
    file: &config::MachinesFile,
    lab: Arc<Lab>,
    stopping: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, LabError> {
    let mut tasks = Vec::new();
    let redfish = Arc::new(redfish::Service {
        lab: lab.clone(),
        sessions: Sessions::default(),
    });
    let counts = Arc::new(Counts {
        redfish: redfish.clone(),
        ipmi: Arc::new(ipmi::IpmiSessions::default()),
    });
    if let Some(addr) = args.redfish_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| LabError::Listen { addr, source })?;
        tracing::info!(%addr, "serving Redfish and /lab");
        let api = Arc::new(LabApi {
            lab: lab.clone(),
            sessions: counts.clone(),
        });
        let app = redfish::router(redfish).merge(lab_api::router(api));
        let app = tower_http::normalize_path::NormalizePath::trim_trailing_slash(app);
        let mut stopping = stopping.clone();
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(
                listener,
                ServiceExt::<axum::extract::Request>::into_make_service(app),
            )
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the Redfish listener failed");
            }
        }));
    }
    for port in ipmi::ports(file.ipmi_listen, &lab.machines) {
        let addr = port.addr;
        let socket = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| LabError::Listen { addr, source })?;
        let names: Vec<&str> = port.machines.iter().map(|m| m.name()).collect();
        tracing::info!(%addr, machines = ?names, "serving IPMI");
        tasks.push(tokio::spawn(ipmi::serve(
            socket,
            port,
            counts.ipmi.clone(),
            stopping.clone(),
        )));
    }
    Ok(tasks)
}

/// Session counts for the lab's state view.
struct Counts {
    redfish: Arc<redfish::Service>,
    ipmi: Arc<ipmi::IpmiSessions>,
}

impl SessionCounts for Counts {
    fn redfish_sessions(&self, machine: usize) -> usize {
        self.redfish.sessions.count_for(machine)
    }

    fn ipmi_sessions(&self, machine: usize) -> Option<usize> {
        self.ipmi.of(machine)
    }
}

/// The state directory (created), or a temporary one kept for the logs.
fn log_dir(state_dir: Option<&Path>) -> Result<PathBuf, LabError> {
    match state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| LabError::Io {
                what: format!("cannot create the state directory {}", dir.display()),
                source,
            })?;
            Ok(dir.to_path_buf())
        }
        None => tempfile::Builder::new()
            .prefix("ferric-lab-")
            .tempdir()
            .map(tempfile::TempDir::keep)
            .map_err(|source| LabError::Io {
                what: "cannot create a directory for the agents' logs".into(),
                source,
            }),
    }
}

/// Creates a missing disk file, sparse, at its size; refuses anything that
/// is not a regular file (this lab never touches real disks).
fn prepare_disk(spec: &MachineSpec) -> Result<(), LabError> {
    let fail = |message: String| LabError::Disk {
        machine: spec.name.clone(),
        path: spec.disk.clone(),
        message,
    };
    match std::fs::metadata(&spec.disk) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(fail("exists and is not a regular file".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = spec.disk.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&spec.disk)
                .map_err(|e| fail(e.to_string()))?;
            file.set_len(spec.disk_size)
                .map_err(|e| fail(e.to_string()))?;
            tracing::info!(machine = %spec.name, disk = %spec.disk.display(), size = spec.disk_size, "disk file created");
            Ok(())
        }
        Err(e) => Err(fail(e.to_string())),
    }
}
