//! `ferric`: bare-metal provisioning with an Ironic-compatible API.
//!
//! `ferric serve` runs the API and the conductor in one process on its
//! embedded defaults: SQLite in a data directory, listening on
//! 127.0.0.1:6385.

mod boot_trace;
mod config;
mod data_dir;
mod lab;
mod lab_demo;
mod netboot;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ferric_api::AppState;
use ferric_conductor::{Conductor, SystemClock};
use ferric_db::{SqliteStore, Store};
use ferric_drivers::Registry;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "ferric",
    version,
    about = "Bare-metal provisioning, Ironic-compatible"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API and the conductor.
    Serve(ServeArgs),
    /// A lab of machines: virtual BMCs and simulated machines.
    #[command(subcommand)]
    Lab(LabCommand),
    /// What the network-boot services did for a machine.
    #[command(subcommand)]
    Boot(BootCommand),
    /// The deploy ramdisk.
    #[command(subcommand)]
    Ramdisk(RamdiskCommand),
}

#[derive(Subcommand)]
enum RamdiskCommand {
    /// Build the deploy kernel and ramdisk (ferric-agent on Debian's cloud
    /// kernel) from Debian's packages.
    Build(ferric_lab::build::ramdisk::RamdiskArgs),
}

#[derive(Subcommand)]
enum BootCommand {
    /// The last DHCP, TFTP and HTTP exchanges of a MAC address, from a
    /// running `ferric serve`: where did its network boot stop?
    Trace(boot_trace::TraceArgs),
}

#[derive(Subcommand)]
enum LabCommand {
    /// Serve IPMI and Redfish for the machines of a machines file.
    Bmc(ferric_lab::bmc::BmcArgs),
    /// Start a lab of qemu VMs with virtual BMCs in a network namespace.
    Up(ferric_lab::up::UpArgs),
    /// Remove everything `lab up` made.
    Down(ferric_lab::up::DownArgs),
    /// The seed flow for one VM from nothing: build, lab up, serve, enrol,
    /// clean, deploy, check the image's marker, clean up.
    Demo(lab_demo::DemoArgs),
    /// Build the lab's test user images (whole-disk raw and qcow2, a
    /// partition image with its kernel and initrd) from Debian's packages.
    Images(ferric_lab::build::images::ImagesArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:6385].
    #[arg(long, env = "FERRIC_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Directory for the database; created if missing.
    #[arg(long, env = "FERRIC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML configuration file.
    #[arg(long, env = "FERRIC_CONFIG")]
    config: Option<PathBuf>,
    /// Also serve the agents' endpoints (lookup, heartbeat, inspection
    /// data) on this address of their own, e.g. on the provisioning
    /// network.
    #[arg(long, env = "FERRIC_AGENT_LISTEN")]
    agent_listen: Option<std::net::SocketAddr>,
    /// Serve DHCP on this interface (the provisioning network).
    #[arg(long, value_name = "IFACE")]
    dhcp_interface: Option<String>,
    /// The address pool of full-mode DHCP.
    #[arg(long, value_name = "FIRST,LAST")]
    dhcp_range: Option<String>,
    /// `full`: hand out addresses; `proxy`: PXE options only, beside
    /// another DHCP server.
    #[arg(long, value_name = "full|proxy")]
    dhcp_mode: Option<String>,
    /// Serve TFTP on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    tftp_listen: Option<String>,
    /// The directory TFTP serves (and the `pxe` interface writes into).
    #[arg(long, value_name = "DIR")]
    tftp_root: Option<PathBuf>,
    /// Serve HTTP boot files on this address.
    #[arg(long, value_name = "ADDR:PORT")]
    http_listen: Option<String>,
}

impl ServeArgs {
    /// Flags win over the file and the environment; naming a service's
    /// interface or address switches it on.
    fn apply(self, config: &mut config::Config) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(addr) = self.agent_listen {
            config.agent_listen = Some(addr);
        }
        if let Some(iface) = self.dhcp_interface {
            config.dhcp_server.enabled = true;
            config.dhcp_server.interface = iface;
        }
        if let Some(range) = self.dhcp_range {
            config.dhcp_server.range = range;
        }
        if let Some(mode) = self.dhcp_mode {
            config.dhcp_server.mode = mode;
        }
        if let Some(listen) = self.tftp_listen {
            config.tftp_server.enabled = true;
            config.tftp_server.listen = listen;
        }
        if let Some(root) = self.tftp_root {
            config.pxe.tftp_root = root;
        }
        if let Some(listen) = self.http_listen {
            config.http_server.enabled = true;
            config.http_server.listen = listen;
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Lab(LabCommand::Bmc(args)) => lab_bmc(args),
        Command::Lab(LabCommand::Up(args)) => lab::up(args),
        Command::Lab(LabCommand::Down(args)) => lab::down(args),
        Command::Lab(LabCommand::Demo(args)) => {
            if !lab_demo::run(args)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Lab(LabCommand::Images(args)) => {
            ferric_lab::build::images::run(args).context("ferric lab images")
        }
        Command::Boot(BootCommand::Trace(args)) => boot_trace::run(args),
        Command::Ramdisk(RamdiskCommand::Build(args)) => {
            ferric_lab::build::ramdisk::run(args).context("ferric ramdisk build")
        }
    }
}

fn lab_bmc(args: ferric_lab::bmc::BmcArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(ferric_lab::bmc::run(args, shutdown_signal()))
        .context("the virtual BMC failed")
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut config = config::load(args.config.as_deref(), std::env::vars())?;
    args.apply(&mut config);
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log))
        .context("invalid log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(config))
}

async fn run(mut config: config::Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().context("no local address")?;
    let agents = match config.agent_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for agents on {addr}"))?,
        ),
        None => None,
    };
    // Port 0 was given a real port only now: the agents' URL says which.
    config.listen = local;
    if let Some(agents) = &agents {
        config.agent_listen = Some(agents.local_addr().context("no local address")?);
    }
    netboot::resolve(&mut config)?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let lock = data_dir::DataDirLock::acquire(&config.data_dir)?;
    tracing::debug!(lock = %lock.path().display(), "data directory locked");
    let db_path = config.data_dir.join("ferric.sqlite");
    let store = SqliteStore::open(&db_path)
        .await
        .with_context(|| format!("cannot open database {}", db_path.display()))?;
    let store: Arc<dyn Store> = Arc::new(store);
    let registry = Arc::new(Registry::builtin(config.drivers()));
    let conductor = Conductor::start(
        store,
        registry,
        config.conductor.clone(),
        Arc::new(SystemClock),
    )
    .await
    .context("cannot start the conductor")?;
    tracing::info!(listen = %local, data_dir = %config.data_dir.display(), "ferric is serving");
    let state = AppState {
        conductor: conductor.clone(),
        public_endpoint: Some(config.public_endpoint.clone()).filter(|s| !s.is_empty()),
    };
    println!("ferric listening on http://{local}");
    let stop = tokio_util::sync::CancellationToken::new();
    let boot = netboot::start(&config, &stop).await?;
    let agent_server = agents.map(|l| {
        if let Ok(a) = l.local_addr() {
            tracing::info!(listen = %a, "serving the agents' endpoints");
            println!("ferric serving agents on http://{a}");
        }
        let stop = stop.clone();
        let router = ferric_api::ramdisk_router(state.clone());
        tokio::spawn(async move {
            axum::serve(l, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    });
    let api_stop = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        api_stop.cancel();
    });
    let api_done = stop.clone();
    let app = ferric_api::router(state).merge(boot_trace::router(boot.trace.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { api_done.cancelled().await })
        .await
        .context("server failed")?;
    if let Some(server) = agent_server {
        match server.await {
            Ok(result) => result.context("the agents' server failed")?,
            Err(e) => tracing::warn!(error = %e, "the agents' server task failed"),
        }
    }
    tracing::info!("shutting down");
    boot.join().await;
    conductor.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
