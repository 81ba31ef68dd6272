//! `ferric-agent`: the deploy ramdisk's agent (see the library's docs).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = ferric_agent::config::Flags::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferric-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ferric_agent::run(flags)) {
        Ok(Some(kind)) => ExitCode::from(kind.exit_code()),
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferric-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}
