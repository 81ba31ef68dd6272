//! The HTTP boot server against curl: whole files, ranges, HEAD, and paths
//! that try to leave the root.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ferric_netboot::trace::{EventKind, Recorder};

struct Running {
    addr: SocketAddr,
    trace: Arc<Recorder>,
    _root: tempfile::TempDir,
    _outside: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _runtime: tokio::runtime::Runtime,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start() -> Running {
    let root = tempfile::tempdir().expect("root");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::create_dir(root.path().join("node")).expect("dir");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.path().join("node/kernel"), &data).expect("kernel");
    std::fs::write(root.path().join("node/config"), "#!ipxe\nboot\n").expect("config");
    std::fs::write(outside.path().join("secret"), "secret").expect("secret");
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("escape"))
        .expect("symlink");
    std::os::unix::fs::symlink("node/kernel", root.path().join("kernel-link")).expect("link");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let trace = Arc::new(Recorder::new(16, 64));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served_root = root.path().to_owned();
    let sink = trace.clone();
    runtime.spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        ferric_netboot::http::serve(listener, served_root, sink, shutdown).await
    });
    Running {
        addr,
        trace,
        _root: root,
        _outside: outside,
        stop: Some(stop),
        _runtime: runtime,
    }
}

/// Runs curl, returning (HTTP status, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--path-as-is", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    let text = out.stdout;
    let split = text.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = std::str::from_utf8(&text[split + 1..])
        .expect("utf8")
        .parse()
        .expect("status");
    (status, text[..split].to_vec())
}

#[test]
fn serves_whole_files_ranges_and_heads() {
    let server = start();
    let base = format!("http://{}", server.addr);
    let want: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = curl(&[&format!("{base}/node/kernel")]);
    assert_eq!((status, body.len()), (200, want.len()));
    assert!(body == want, "whole file differs");
    let (status, body) = curl(&["-r", "1000-1999", &format!("{base}/node/kernel")]);
    assert_eq!(status, 206);
    assert!(body == want[1000..2000], "range differs");
    let (status, body) = curl(&["-r", "-10", &format!("{base}/kernel-link")]);
    assert_eq!(status, 206, "suffix range through a link inside the root");
    assert!(body == want[want.len() - 10..]);
    let (status, _) = curl(&["-r", "5000000-", &format!("{base}/node/kernel")]);
    assert_eq!(status, 416);
    let (status, body) = curl(&["-I", &format!("{base}/node/config")]);
    assert_eq!(status, 200);
    let head = String::from_utf8_lossy(&body).to_ascii_lowercase();
    assert!(head.contains("content-length: 12"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    let (status, body) = curl(&[&format!("{base}/node/config")]);
    assert_eq!(
        (status, body.as_slice()),
        (200, b"#!ipxe\nboot\n".as_slice())
    );

    let served: Vec<EventKind> = server
        .trace
        .unattributed()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(served.contains(&EventKind::FileServed {
        protocol: "http",
        path: "/node/kernel".into(),
        bytes: 3_000_000
    }));
    assert!(served.contains(&EventKind::FileServed {
        protocol: "http",
        path: "/node/kernel (bytes 1000-1999)".into(),
        bytes: 1000
    }));
}

#[test]
fn nothing_outside_the_root_is_served() {
    let server = start();
    let base = format!("http://{}", server.addr);
    for path in [
        "/../secret",
        "/node/../../secret",
        "/%2e%2e/secret",
        "/escape",
        "/node",
        "/",
        "/missing",
    ] {
        let (status, body) = curl(&[&format!("{base}{path}")]);
        assert_eq!(status, 404, "{path}");
        assert!(!String::from_utf8_lossy(&body).contains("secret"), "{path}");
    }
    let (status, _) = curl(&["-X", "PUT", "-d", "x", &format!("{base}/node/config")]);
    assert_eq!(status, 405);
    let failures = server
        .trace
        .unattributed()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::FileFailed { .. }))
        .count();
    assert_eq!(failures, 8, "each refusal is traced");
}
