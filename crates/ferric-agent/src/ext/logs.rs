//! `log.collect_system_logs`: `{"system_logs": base64 of a gzipped tar}`
//! holding the agent's own log (`ferric-agent.log`) and what it can read of
//! the kernel log (`dmesg`, from /dev/kmsg read without blocking).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use ferric_ipa::{ErrorKind, RestError};
use serde_json::{json, Value};

use crate::agent::Agent;

/// Most kernel log read.
const KMSG_CAP: usize = 1024 * 1024;

/// The command's result.
pub async fn collect(agent: &Agent) -> Result<Value, RestError> {
    let own = agent.log.contents();
    let kmsg_path = agent.roots.dev.join("kmsg");
    let kernel = tokio::task::spawn_blocking(move || read_kmsg(&kmsg_path))
        .await
        .unwrap_or_else(|e| format!("kernel log unavailable: {e}\n").into_bytes());
    let archive = tar_gz(&[("ferric-agent.log", &own), ("dmesg", &kernel)]).map_err(|e| {
        RestError::new(
            ErrorKind::CommandExecution,
            format!("cannot pack the logs: {e}"),
        )
    })?;
    Ok(json!({"system_logs": base64::engine::general_purpose::STANDARD.encode(archive)}))
}

/// Reads /dev/kmsg records until none is left (or a regular file to its
/// end), capped; an unreadable log becomes a one-line explanation.
fn read_kmsg(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            return format!(
                "kernel log unavailable: cannot open {}: {e}\n",
                path.display()
            )
            .into_bytes()
        }
    };
    let mut out = Vec::new();
    let mut record = vec![0u8; 8192];
    while out.len() < KMSG_CAP {
        match file.read(&mut record) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&record[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // A record overwritten while reading: skip to the next one.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PIPE.raw_os_error()) => continue,
            Err(e) => {
                out.extend_from_slice(format!("kernel log read stopped: {e}\n").as_bytes());
                break;
            }
        }
    }
    out
}

/// A gzipped ustar archive of `(name, contents)` regular files.
pub fn tar_gz(files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for (name, data) in files {
        gz.write_all(&ustar_header(name, data.len() as u64, mtime))?;
        gz.write_all(data)?;
        let pad = (512 - data.len() % 512) % 512;
        gz.write_all(&vec![0u8; pad])?;
    }
    gz.write_all(&[0u8; 1024])?;
    gz.finish()
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

fn ustar_header(name: &str, size: u64, mtime: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let name = name.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let digits = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(digits.as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_reads_back_with_the_real_tool() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tar_gz(&[
            ("ferric-agent.log", b"hello\n"),
            ("dmesg", &vec![b'k'; 1000]),
        ])
        .unwrap();
        let path = dir.path().join("logs.tar.gz");
        std::fs::write(&path, archive).unwrap();
        let out = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(dir.path().join("ferric-agent.log")).unwrap(),
            b"hello\n"
        );
        assert_eq!(std::fs::read(dir.path().join("dmesg")).unwrap().len(), 1000);
    }

    #[test]
    fn kmsg_from_a_file_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kmsg");
        std::fs::write(&path, "6,1,100,-;Linux version 6.1\n").unwrap();
        assert_eq!(read_kmsg(&path), b"6,1,100,-;Linux version 6.1\n");
        let missing = String::from_utf8(read_kmsg(&dir.path().join("none"))).unwrap();
        assert!(missing.starts_with("kernel log unavailable"));
    }
}
