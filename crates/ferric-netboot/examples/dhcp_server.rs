//! Runs Ferric's DHCP server from command-line flags (used by the
//! integration tests; also handy by hand).
//!
//! ```text
//! dhcp_server --interface IF --server-ip IP [--mode full|proxy]
//!     [--range FIRST,LAST[,NETMASK]]... [--router IP] [--dns IP]...
//!     [--domain NAME] [--lease-time SECONDS] [--tftp-server IP]
//!     [--hostsdir DIR] [--optsdir DIR] [--leasefile FILE]
//!     [--port 67] [--pxe-port 4011] [--client-port 68]
//!     [--discovery] [--option LINE]...
//! ```
//!
//! Prints `ready ports=...` on stdout once bound, then one `trace ...`
//! line per trace event; logs go to stderr (`RUST_LOG`). Stops on SIGINT
//! or SIGTERM, writing the lease file.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ferric_netboot::dhcp::net::{DhcpServer, ServerSettings};
use ferric_netboot::dhcp::{DhcpConfig, Leases, OptionLine, Pool, Responder};
use ferric_netboot::trace::{Event, TraceSink};

/// Prints every event as one line, for tests to read.
struct PrintTrace;

impl TraceSink for PrintTrace {
    fn record(&self, event: Event) {
        println!("trace {:?} {:?}", event.client, event.kind);
    }
}

#[derive(Default)]
struct Flags {
    settings: ServerSettings,
    proxy: bool,
    server_ip: Option<Ipv4Addr>,
    ranges: Vec<(Ipv4Addr, Ipv4Addr, Ipv4Addr)>,
    router: Option<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
    domain: Option<String>,
    lease_time: Option<u64>,
    tftp_server: Option<Ipv4Addr>,
    port: Option<u16>,
    pxe_port: Option<u16>,
    client_port: Option<u16>,
    discovery: bool,
    options: Vec<OptionLine>,
}

fn parse_range(text: &str) -> Result<(Ipv4Addr, Ipv4Addr, Ipv4Addr), String> {
    let parts: Vec<&str> = text.split(',').collect();
    let address = |s: &str| {
        s.trim()
            .parse::<Ipv4Addr>()
            .map_err(|e| format!("{s}: {e}"))
    };
    match parts[..] {
        [first, last] => Ok((
            address(first)?,
            address(last)?,
            Ipv4Addr::new(255, 255, 255, 0),
        )),
        [first, last, mask] => Ok((address(first)?, address(last)?, address(mask)?)),
        _ => Err(format!("--range {text}: expected FIRST,LAST[,NETMASK]")),
    }
}

fn parse_flags(mut args: impl Iterator<Item = String>) -> Result<Flags, String> {
    let mut flags = Flags::default();
    while let Some(flag) = args.next() {
        if flag == "--discovery" {
            flags.discovery = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let ip = || {
            value
                .parse::<Ipv4Addr>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        let port = || {
            value
                .parse::<u16>()
                .map_err(|e| format!("{flag} {value}: {e}"))
        };
        match flag.as_str() {
            "--interface" => flags.settings.interface = Some(value.clone()),
            "--mode" => flags.proxy = value == "proxy",
            "--server-ip" => flags.server_ip = Some(ip()?),
            "--range" => flags.ranges.push(parse_range(&value)?),
            "--router" => flags.router = Some(ip()?),
            "--dns" => flags.dns.push(ip()?),
            "--domain" => flags.domain = Some(value.clone()),
            "--lease-time" => flags.lease_time = Some(number()?),
            "--tftp-server" => flags.tftp_server = Some(ip()?),
            "--hostsdir" => flags.settings.hosts_dir = Some(PathBuf::from(&value)),
            "--optsdir" => flags.settings.opts_dir = Some(PathBuf::from(&value)),
            "--leasefile" => flags.settings.lease_file = Some(PathBuf::from(&value)),
            "--port" => flags.port = Some(port()?),
            "--pxe-port" => flags.pxe_port = Some(port()?),
            "--client-port" => flags.client_port = Some(port()?),
            "--option" => flags
                .options
                .push(OptionLine::parse(&value).map_err(|e| format!("--option {value}: {e}"))?),
            "--reload-ms" => flags.settings.reload_interval = Duration::from_millis(number()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(flags)
}

fn build_config(flags: &Flags) -> Result<DhcpConfig, String> {
    let server_ip = flags.server_ip.ok_or("--server-ip is required")?;
    let mut config = if flags.proxy {
        DhcpConfig::proxy(server_ip)
    } else {
        let pools = flags
            .ranges
            .iter()
            .map(|&(first, last, netmask)| Pool {
                router: flags.router,
                dns: flags.dns.clone(),
                domain: flags.domain.clone(),
                lease_time: Duration::from_secs(flags.lease_time.unwrap_or(3600)),
                ..Pool::new(first, last, netmask)
            })
            .collect();
        DhcpConfig::full(server_ip, pools)
    };
    config.tftp_server = flags.tftp_server;
    config.discovery = flags.discovery;
    config.options = flags.options.clone();
    config.server_port = flags.port.unwrap_or(config.server_port);
    config.pxe_port = flags.pxe_port.unwrap_or(config.pxe_port);
    config.client_port = flags.client_port.unwrap_or(config.client_port);
    Ok(config)
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(flags: Flags) -> Result<(), String> {
    let config = build_config(&flags)?;
    let responder = Responder::new(config, Leases::new()).map_err(|e| e.to_string())?;
    let server = DhcpServer::bind(flags.settings, responder, Arc::new(PrintTrace))
        .map_err(|e| e.to_string())?;
    let ports = server.local_ports().map_err(|e| e.to_string())?;
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("ready ports={}", ports.join(","));
    server.run(stop_signal()).await.map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = match parse_flags(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(error) => {
            eprintln!("dhcp_server: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dhcp_server: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dhcp_server: {error}");
            ExitCode::FAILURE
        }
    }
}
