//! Drives the pipeline for measurements (release build):
//!   stream_bench write URL TARGET [SHA256]   download, verify, write; prints the report
//!   stream_bench sha256 FILE                  hashes a file the way the pipeline does
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::time::Instant;

use ferric_image::checksum::Hasher;
use ferric_image::{Algorithm, ExpectedChecksum, ImageSource, Progress, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    match args.first().map(String::as_str) {
        Some("write") if args.len() >= 3 => {
            let checksum = args.get(3).map(|hex| ExpectedChecksum::Hash {
                algorithm: Algorithm::Sha256,
                hex: hex.clone(),
            });
            let source = ImageSource {
                urls: vec![args[1].clone()],
                checksum,
                disk_format: None,
            };
            let report =
                ferric_image::write_image(&source, &Target::whole(&args[2]), &Progress::default())
                    .await?;
            println!("{report:?}");
        }
        Some("sha256") if args.len() == 2 => {
            let mut file = std::fs::File::open(&args[1])?;
            let mut hasher = Hasher::new(Algorithm::Sha256);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            println!("{}", hasher.finish_hex());
        }
        _ => return Err("usage: stream_bench write URL TARGET [SHA256] | sha256 FILE".into()),
    }
    eprintln!("elapsed: {:.3} s", started.elapsed().as_secs_f64());
    Ok(())
}
