//! Times IPMI power-status round trips against a BMC, for the benchmark
//! beside `ipmitool power status` (benches/bmc.py).
//!
//!     power_status HOST PORT USER PASSWORD SUITE COUNT
//!
//! Prints two lines: milliseconds per whole operation (session set-up, Get
//! Chassis Status, Close Session: what one `ipmitool` run does), and per
//! Get Chassis Status inside one open session.

use std::time::{Duration, Instant};

use ferric_ipmi::net::{Client, Target};
use ferric_ipmi::{CipherSuite, Password};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, host, port, user, password, suite, count] = args.as_slice() else {
        return Err("usage: power_status HOST PORT USER PASSWORD SUITE COUNT".into());
    };
    let mut target = Target::new(
        host.clone(),
        user.clone(),
        Password::from(password.as_str()),
    );
    target.port = port.parse()?;
    target.cipher_suite = Some(CipherSuite::from_id(suite.parse()?).ok_or("unknown cipher suite")?);
    let count: u32 = count.parse()?;

    let started = Instant::now();
    for _ in 0..count {
        let mut client = Client::connect(&target).await?;
        client.chassis_status().await?;
        client.close().await?;
    }
    print_per(
        "whole operation (session, status, close)",
        started.elapsed(),
        count,
    );

    let mut client = Client::connect(&target).await?;
    let started = Instant::now();
    for _ in 0..count {
        client.chassis_status().await?;
    }
    print_per("status in an open session", started.elapsed(), count);
    client.close().await?;
    Ok(())
}

fn print_per(what: &str, total: Duration, count: u32) {
    let ms = total.as_secs_f64() * 1000.0 / f64::from(count.max(1));
    println!("{what}: {ms:.3} ms");
}
