//! Writes a file onto an iSCSI target's LUN from LBA 0, flushes, logs out and prints the
//! throughput: for manual tests and benchmarks of the initiator.
//!
//! ```text
//! cargo run --release -p ferric-iscsi --example iscsi-write -- \
//!     --portal 127.0.0.1:3260 --iqn IQN --lun 1 --file IMAGE \
//!     [--chap-user U --chap-secret S] [--queue-depth N] [--write-size BYTES] \
//!     [--initiator IQN]
//! ```
//!
//! The last write is padded with zeros to a whole block.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::initiator::{InitiatorConfig, Session};

struct Args {
    portal: SocketAddr,
    iqn: String,
    lun: u64,
    file: PathBuf,
    chap: Option<(String, String)>,
    queue_depth: usize,
    write_size: usize,
    initiator: String,
}

const USAGE: &str = "usage: iscsi-write --portal HOST:PORT --iqn IQN [--lun N] --file IMAGE \
[--chap-user U --chap-secret S] [--queue-depth N] [--write-size BYTES] [--initiator IQN]";

fn parse_args() -> Result<Args, String> {
    let mut portal = None;
    let mut iqn = None;
    let mut lun = 1;
    let mut file = None;
    let (mut user, mut secret) = (None, None);
    let mut queue_depth = 8;
    let mut write_size = 1 << 20;
    let mut initiator = "iqn.2024-01.org.ferric:iscsi-write".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--portal" => portal = Some(value()?.parse().map_err(|e| format!("--portal: {e}"))?),
            "--iqn" => iqn = Some(value()?),
            "--lun" => lun = value()?.parse().map_err(|e| format!("--lun: {e}"))?,
            "--file" => file = Some(PathBuf::from(value()?)),
            "--chap-user" => user = Some(value()?),
            "--chap-secret" => secret = Some(value()?),
            "--queue-depth" => {
                queue_depth = value()?
                    .parse()
                    .map_err(|e| format!("--queue-depth: {e}"))?
            }
            "--write-size" => {
                write_size = value()?.parse().map_err(|e| format!("--write-size: {e}"))?
            }
            "--initiator" => initiator = value()?,
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let chap = match (user, secret) {
        (Some(u), Some(s)) => Some((u, s)),
        (None, None) => None,
        _ => return Err("--chap-user and --chap-secret go together".into()),
    };
    Ok(Args {
        portal: portal.ok_or(USAGE)?,
        iqn: iqn.ok_or(USAGE)?,
        lun,
        file: file.ok_or(USAGE)?,
        chap,
        queue_depth,
        write_size,
        initiator,
    })
}

/// Fills `buf` from `file` as far as it goes; returns the bytes read.
fn fill(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

async fn run(args: Args) -> Result<(), String> {
    let mut config = InitiatorConfig::new(args.initiator.clone(), args.iqn.clone());
    config.lun = args.lun;
    config.queue_depth = args.queue_depth;
    if let Some((user, secret)) = &args.chap {
        let credentials = ChapCredentials::new(user.clone(), secret.as_bytes().to_vec())
            .map_err(|e| format!("CHAP: {e}"))?;
        config.chap = Some(credentials);
    }
    let mut file =
        std::fs::File::open(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let session = Session::connect(args.portal, config)
        .await
        .map_err(|e| e.to_string())?;
    let capacity = session.read_capacity().await.map_err(|e| e.to_string())?;
    let block = capacity.block_size as usize;
    let write_size = args.write_size.max(block) / block * block;
    println!(
        "{}: {} blocks of {block} bytes ({} MiB), thin: {}, zeros after unmap: {}",
        args.iqn,
        capacity.blocks,
        capacity.bytes() >> 20,
        capacity.thin,
        capacity.reads_zeros
    );

    let started = Instant::now();
    let mut lba = 0u64;
    let mut written = 0u64;
    loop {
        let mut buf = vec![0u8; write_size];
        let n = fill(&mut file, &mut buf).map_err(|e| format!("reading the image: {e}"))?;
        if n == 0 {
            break;
        }
        buf.truncate(n.div_ceil(block) * block);
        let blocks = (buf.len() / block) as u64;
        written += buf.len() as u64;
        session
            .submit_write(lba, buf)
            .await
            .map_err(|e| e.to_string())?;
        lba += blocks;
        if n < write_size {
            break;
        }
    }
    let submitted = started.elapsed();
    session.flush().await.map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    session.logout().await.map_err(|e| e.to_string())?;
    let mib = written as f64 / f64::from(1 << 20);
    println!(
        "wrote {mib:.1} MiB in {:.2} s: {:.1} MiB/s (queue depth {}, writes of {write_size} bytes; \
         the flush took {:.2} s)",
        elapsed.as_secs_f64(),
        mib / elapsed.as_secs_f64(),
        args.queue_depth,
        (elapsed - submitted).as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iscsi-write: {e}");
            ExitCode::FAILURE
        }
    }
}
