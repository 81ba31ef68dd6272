//! Downloads one file over TFTP with Ferric's client and prints
//! `bytes=N seconds=S mib_per_s=R blksize=B windowsize=W tsize=T`.
//!
//!     tftp_get [--blksize N] [--windowsize N] [--tsize] [--timeout-ms N]
//!              [--retries N] HOST:PORT REMOTE OUTPUT
//!
//! Exits 1 with the server's error on failure.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use ferric_netboot::tftp::client::{fetch, ClientOptions};

struct Args {
    server: SocketAddr,
    remote: String,
    output: String,
    options: ClientOptions,
}

fn parse_args() -> Result<Args, String> {
    let mut options = ClientOptions::default();
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("{arg}: {e}");
        match arg.as_str() {
            "--blksize" => options.blksize = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--windowsize" => options.windowsize = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--tsize" => options.tsize = true,
            "--retries" => options.retries = value()?.parse().map_err(|e| bad(&e))?,
            "--timeout-ms" => {
                options.timeout = Duration::from_millis(value()?.parse().map_err(|e| bad(&e))?)
            }
            flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            _ => positional.push(arg),
        }
    }
    let [server, remote, output]: [String; 3] = positional
        .try_into()
        .map_err(|_| "usage: tftp_get [flags] HOST:PORT REMOTE OUTPUT".to_string())?;
    let server = server.parse().map_err(|e| format!("{server}: {e}"))?;
    Ok(Args {
        server,
        remote,
        output,
        options,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tftp_get: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match File::create(&args.output) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("tftp_get: {}: {e}", args.output);
            return ExitCode::FAILURE;
        }
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    match fetch(args.server, &args.remote, &args.options, &mut out) {
        Ok(done) => {
            let seconds = done.elapsed.as_secs_f64();
            let rate = done.bytes as f64 / (1024.0 * 1024.0) / seconds.max(1e-9);
            let tsize = done.tsize.map_or("-".to_string(), |t| t.to_string());
            println!(
                "bytes={} seconds={seconds:.6} mib_per_s={rate:.1} blksize={} windowsize={} tsize={tsize}",
                done.bytes, done.blksize, done.windowsize
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tftp_get: {e}");
            ExitCode::FAILURE
        }
    }
}
