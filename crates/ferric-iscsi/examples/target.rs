//! A small iSCSI target for manual tests: serves one file (or block device) as a disk.
//!
//! ```text
//! cargo run -p ferric-iscsi --example target -- --disk FILE --listen 127.0.0.1:3261 \
//!     --iqn iqn.2024-01.org.ferric:test [--lun 1] [--block-size 512] [--read-only] \
//!     [--chap-user U --chap-secret S]
//! ```
//!
//! Type `quit` on standard input to stop it cleanly (flushing the disk); Ctrl-C works
//! too (the writes are already in the file, only the final flush is skipped).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::target::{TargetConfig, TargetServer};
use ferric_iscsi::scsi::{Disk, FileBacking, Identity, LogicalUnits};

const USAGE: &str = "usage: target --disk FILE --listen ADDR:PORT --iqn IQN [--lun N] \
[--block-size 512|4096] [--read-only] [--chap-user USER --chap-secret SECRET]";

#[derive(Debug)]
struct Args {
    disk: PathBuf,
    listen: SocketAddr,
    iqn: String,
    lun: u64,
    block_size: u32,
    read_only: bool,
    chap: Option<(String, String)>,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut disk, mut listen, mut iqn) = (None, None, None);
    let (mut lun, mut block_size, mut read_only) = (1u64, 512u32, false);
    let (mut user, mut secret) = (None, None);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--disk" => disk = Some(PathBuf::from(value()?)),
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v}: {e}"))?);
            }
            "--iqn" => iqn = Some(value()?),
            "--lun" => {
                let v = value()?;
                lun = v.parse().map_err(|e| format!("--lun {v}: {e}"))?;
            }
            "--block-size" => {
                let v = value()?;
                block_size = v.parse().map_err(|e| format!("--block-size {v}: {e}"))?;
            }
            "--read-only" => read_only = true,
            "--chap-user" => user = Some(value()?),
            "--chap-secret" => secret = Some(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let chap = match (user, secret) {
        (Some(u), Some(s)) => Some((u, s)),
        (None, None) => None,
        _ => return Err("--chap-user and --chap-secret go together".into()),
    };
    Ok(Args {
        disk: disk.ok_or(format!("--disk is required\n{USAGE}"))?,
        listen: listen.ok_or(format!("--listen is required\n{USAGE}"))?,
        iqn: iqn.ok_or(format!("--iqn is required\n{USAGE}"))?,
        lun,
        block_size,
        read_only,
        chap,
    })
}

async fn run(args: Args) -> Result<(), String> {
    let backing = FileBacking::open(&args.disk, args.read_only)
        .map_err(|e| format!("{}: {e}", args.disk.display()))?;
    let serial = format!("ferric-{}", std::process::id());
    let disk = Disk::new(
        backing,
        Identity::new(&serial),
        args.block_size,
        args.read_only,
    );
    let blocks = disk.blocks();
    let mut luns = LogicalUnits::new();
    luns.add(args.lun, disk).map_err(|e| e.to_string())?;
    let mut config = TargetConfig::new(args.iqn.clone());
    if let Some((user, secret)) = args.chap {
        config.chap = Some(ChapCredentials::new(user, secret).map_err(|e| e.to_string())?);
    }
    let server = TargetServer::bind(args.listen, config, luns)
        .await
        .map_err(|e| format!("listen on {}: {e}", args.listen))?;
    println!(
        "serving {} ({blocks} blocks of {}) as iscsi://{}/{}/{}",
        args.disk.display(),
        args.block_size,
        server.local_addr(),
        args.iqn,
        args.lun
    );
    println!("type 'quit' to stop");
    let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
            if line.trim() == "quit" {
                let _ = quit_tx.send(());
                return;
            }
            line.clear();
        }
        // Standard input closed: keep serving until the process is killed.
        std::mem::forget(quit_tx);
    });
    let _ = quit_rx.await;
    server
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
