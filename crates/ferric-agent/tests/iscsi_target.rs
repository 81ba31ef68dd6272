//! `ferric-agent iscsi-target`, the stable interface for scripts, driven as a
//! script would: the built binary exports a file, Debian's libiscsi tools
//! (`iscsi-ls`, `iscsi-inq`) find and query it with and without the right CHAP
//! secret, Ferric's own initiator writes to it, and SIGTERM ends it cleanly.
//!
//! The libiscsi parts are skipped (with a message) when the tools are missing,
//! unless `FERRIC_REQUIRE_PEERS=1`.

#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::initiator::{InitiatorConfig, Session};

const IQN: &str = "iqn.2024-01.dev.ferric:tool-test";
const SECRET: &str = "tool-test-secret-0123";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Tool(Child);

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(disk: &Path, port: u16, secret_file: &Path) -> Tool {
    let child = Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
        .args(["iscsi-target", "--disk"])
        .arg(disk)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--iqn", IQN])
        .args(["--chap-user", "script"])
        .arg("--chap-secret-file")
        .arg(secret_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the target never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    Tool(child)
}

fn libiscsi(tool: &str, args: &[&str]) -> Option<Output> {
    let path = format!("/usr/bin/{tool}");
    if !Path::new(&path).exists() {
        let required = std::env::var("FERRIC_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{path} is missing (apt-get install libiscsi-bin)"
        );
        eprintln!("skipping the {tool} part: {path} is missing");
        return None;
    }
    Some(
        Command::new("timeout")
            .args(["30", &path])
            .args(args)
            .output()
            .unwrap(),
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_script_exports_a_file_with_chap_and_stops_it_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let port = free_port();
    let mut tool = start(&disk, port, &secret_file);

    let good = format!("iscsi://script%{SECRET}@127.0.0.1:{port}");
    if let Some(out) = libiscsi("iscsi-ls", &["-s", &good]) {
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains(&format!("Target:{IQN} Portal:127.0.0.1:{port},1")),
            "{}",
            text(&out)
        );
        assert!(
            text(&out).contains("Lun:1    Type:DIRECT_ACCESS (Size:31M)"),
            "{}",
            text(&out)
        );
    }
    if let Some(out) = libiscsi("iscsi-inq", &[&format!("{good}/{IQN}/1")]) {
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("Vendor:FERRIC"), "{}", text(&out));
    }
    let wrong = format!("iscsi://script%not-the-secret-000@127.0.0.1:{port}/{IQN}/1");
    if let Some(out) = libiscsi("iscsi-inq", &[&wrong]) {
        assert!(
            !out.status.success(),
            "a wrong secret logged in: {}",
            text(&out)
        );
    }
    let anonymous = format!("iscsi://127.0.0.1:{port}/{IQN}/1");
    if let Some(out) = libiscsi("iscsi-inq", &[&anonymous]) {
        assert!(!out.status.success(), "no secret logged in: {}", text(&out));
    }

    write_through_ferric_initiator(port);
    let written = std::fs::read(&disk).unwrap();
    assert_eq!(&written[4096..4096 + 8192], &[0x5a; 8192][..]);

    send_sigterm(&tool.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = tool.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the target");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
}

fn write_through_ferric_initiator(port: u16) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = InitiatorConfig {
            chap: Some(ChapCredentials::new("script", SECRET.as_bytes()).unwrap()),
            ..InitiatorConfig::new("iqn.2024-01.dev.ferric:tool-test-initiator", IQN)
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let session = Session::connect(addr, config).await.unwrap();
        session.submit_write(8, vec![0x5a; 8192]).await.unwrap();
        session.flush().await.unwrap();
        session.logout().await.unwrap();
    });
}

fn send_sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_missing_secret_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferric-agent"))
        .args(["iscsi-target", "--disk"])
        .arg(&disk)
        .args(["--listen", "127.0.0.1:0", "--iqn", IQN, "--chap-user", "u"])
        .args(["--chap-secret-file", "/nonexistent/secret"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading the CHAP secret from /nonexistent/secret"),
        "{err}"
    );
}
