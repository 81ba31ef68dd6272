//! Runs Ferric's TFTP server until Ctrl-C, printing `listening on ADDR`
//! once bound and one line per trace event on stderr.
//!
//!     tftp_server --root DIR [--listen 127.0.0.1:6969] [--max-blksize N]
//!                 [--max-windowsize N] [--max-transfers N] [--retries N]
//!                 [--timeout-ms N]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ferric_netboot::tftp::net::{TftpServer, TftpSettings};
use ferric_netboot::trace::{Event, TraceSink};

struct StderrTrace;

impl TraceSink for StderrTrace {
    fn record(&self, event: Event) {
        eprintln!("{:?} {:?}", event.client, event.kind);
    }
}

fn parse_args() -> Result<TftpSettings, String> {
    let mut settings = TftpSettings {
        listen: ([127, 0, 0, 1], 6969).into(),
        ..TftpSettings::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        match flag.as_str() {
            "--root" => settings.root = value()?.into(),
            "--listen" => settings.listen = value()?.parse().map_err(|e| bad(&e))?,
            "--max-blksize" => settings.max_blksize = value()?.parse().map_err(|e| bad(&e))?,
            "--max-windowsize" => {
                settings.max_windowsize = value()?.parse().map_err(|e| bad(&e))?
            }
            "--max-transfers" => settings.max_transfers = value()?.parse().map_err(|e| bad(&e))?,
            "--retries" => settings.retries = value()?.parse().map_err(|e| bad(&e))?,
            "--timeout-ms" => {
                settings.timeout = Duration::from_millis(value()?.parse().map_err(|e| bad(&e))?)
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(settings)
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("tftp_server: {e}");
            return ExitCode::from(2);
        }
    };
    let server = match TftpServer::bind(settings, Arc::new(StderrTrace)).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("tftp_server: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => eprintln!("tftp_server: local address: {e}"),
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match server.run(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tftp_server: {e}");
            ExitCode::FAILURE
        }
    }
}
