//! Automatic TLS: with Ironic at 1.68 or newer the agent serves HTTPS with
//! a self-signed certificate for its advertised address and sends it as
//! `agent_verify_ca`; a client trusting only that certificate (rustls, and
//! curl with OpenSSL as Ironic's Python would) can call it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_and_sends_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let setup = IronicSetup {
        version: "1.115".into(),
        ..Default::default()
    };
    let (ironic, _agent, _api) = agent_with(setup, dir.path(), &[]).await;
    let beat = ironic.wait_heartbeats(1, Duration::from_secs(5)).await;
    let url = beat["callback_url"].as_str().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let pem = beat["agent_verify_ca"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let heartbeat_version = ironic.recorded.lock().unwrap().heartbeats[0].2.clone();
    assert_eq!(heartbeat_version.as_deref(), Some("1.72"));

    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let status: serde_json::Value = trusted
        .get(format!("{url}/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let list = trusted
        .get(format!("{url}/v1/commands/?agent_token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);

    let untrusted = reqwest::Client::new()
        .get(format!("{url}/v1/status"))
        .send()
        .await;
    assert!(
        untrusted.is_err(),
        "a client without the certificate must refuse"
    );

    let ca = dir.path().join("agent.pem");
    std::fs::write(&ca, pem).unwrap();
    let curl = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&ca)
        .arg(format!("{url}/v1/status"))
        .output()
        .unwrap();
    assert!(
        curl.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&curl.stderr)
    );
    let openssl = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&ca)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&openssl.stdout).contains("IP Address:127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tls_flag_keeps_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let setup = IronicSetup {
        version: "1.115".into(),
        ..Default::default()
    };
    let (ironic, _agent, api) = agent_with(setup, dir.path(), &["--no-tls"]).await;
    let beat = ironic.wait_heartbeats(1, Duration::from_secs(5)).await;
    assert!(beat["callback_url"]
        .as_str()
        .unwrap()
        .starts_with("http://"));
    assert!(beat.get("agent_verify_ca").is_none());
    let (status, _) = api.get("/v1/status").await;
    assert_eq!(status, 200);
}
