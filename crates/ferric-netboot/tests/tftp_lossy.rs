//! Transfers through a relay that drops and duplicates datagrams in both
//! directions (deterministically), on 127.0.0.1: windows with gaps, lost
//! ACKs and retransmissions must still deliver identical bytes.
//!
//! The relay gives the client one address to talk to and forwards to the
//! server's listening port, then to the transfer's TID.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferric_netboot::tftp::client::{fetch, ClientOptions};
use ferric_netboot::tftp::net::{TftpServer, TftpSettings};
use ferric_netboot::trace::NoTrace;
use tokio::net::UdpSocket;
use tokio::process::Command;

#[derive(Default)]
struct Counts {
    dropped: AtomicU64,
    duplicated: AtomicU64,
    forwarded: AtomicU64,
}

/// Drops about `drop_per_mille`/1000 and duplicates about a third as many
/// of the datagrams after the first request, in both directions.
struct Relay {
    addr: SocketAddr,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(server: SocketAddr, drop_per_mille: u64, seed: u64) -> Relay {
        let client_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server_side = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = client_side.local_addr().unwrap();
        let counts = Arc::new(Counts::default());
        let task_counts = counts.clone();
        let task = tokio::spawn(async move {
            let mut rng = seed | 1;
            let mut client: Option<SocketAddr> = None;
            let mut tid: Option<SocketAddr> = None;
            let (mut a, mut b) = (vec![0u8; 70000], vec![0u8; 70000]);
            loop {
                let (bytes, to, via) = tokio::select! {
                    Ok((n, from)) = client_side.recv_from(&mut a) => {
                        client = Some(from);
                        (&a[..n], tid.unwrap_or(server), &server_side)
                    }
                    Ok((n, from)) = server_side.recv_from(&mut b) => {
                        tid = Some(from);
                        let Some(client) = client else { continue };
                        (&b[..n], client, &client_side)
                    }
                };
                let roll = next(&mut rng) % 1000;
                let first_request = tid.is_none();
                if !first_request && roll < drop_per_mille {
                    task_counts.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let _ = via.send_to(bytes, to).await;
                task_counts.forwarded.fetch_add(1, Ordering::Relaxed);
                if !first_request && roll >= 1000 - drop_per_mille / 3 {
                    task_counts.duplicated.fetch_add(1, Ordering::Relaxed);
                    let _ = via.send_to(bytes, to).await;
                }
            }
        });
        Relay { addr, counts, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

fn content(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def1u64;
    (0..len).map(|_| next(&mut x) as u8).collect()
}

async fn start_server(root: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let settings = TftpSettings {
        root: root.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        timeout: Duration::from_millis(100),
        // curl asks for timeout=6 (seconds per loss): refusing it keeps
        // the server's 100 ms.
        client_timeouts: 1..=1,
        retries: 20,
        max_windowsize: 64,
        ..TftpSettings::default()
    };
    let server = TftpServer::bind(settings, Arc::new(NoTrace)).await.unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_survive_loss_and_duplicates() {
    let root = tempfile::tempdir().unwrap();
    let data = content(2 * 1024 * 1024 + 321);
    std::fs::write(root.path().join("f"), &data).unwrap();
    let (server, _stop) = start_server(root.path()).await;
    for (seed, windowsize) in [(1u64, 16u16), (2, 8), (3, 64)] {
        let relay = Relay::start(server, 50, seed).await;
        let addr = relay.addr;
        let options = ClientOptions {
            blksize: Some(1468),
            windowsize: Some(windowsize),
            tsize: true,
            timeout: Duration::from_millis(100),
            retries: 20,
        };
        let got = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            fetch(addr, "f", &options, &mut out).map(|_| out)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "content differs at windowsize {windowsize}");
        let dropped = relay.counts.dropped.load(Ordering::Relaxed);
        let duplicated = relay.counts.duplicated.load(Ordering::Relaxed);
        assert!(dropped > 10, "the relay dropped only {dropped}");
        eprintln!("windowsize {windowsize}: {dropped} dropped, {duplicated} duplicated");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_step_curl_survives_loss() {
    let have_curl = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("curl").is_file()));
    if !have_curl {
        assert_ne!(
            std::env::var("FERRIC_REQUIRE_PEERS").as_deref(),
            Ok("1"),
            "curl is required"
        );
        eprintln!("SKIPPED: curl is not installed");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let data = content(300_001);
    std::fs::write(root.path().join("f"), &data).unwrap();
    let (server, _stop) = start_server(root.path()).await;
    let relay = Relay::start(server, 50, 4).await;
    let out = root.path().join("out");
    let run = Command::new("curl")
        .args([
            "-s",
            "-S",
            &format!("tftp://{}/f", relay.addr),
            "--tftp-blksize",
            "1468",
            "-o",
        ])
        .arg(&out)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(std::fs::read(&out).unwrap() == data, "curl's copy differs");
    assert!(relay.counts.dropped.load(Ordering::Relaxed) > 5);
}
