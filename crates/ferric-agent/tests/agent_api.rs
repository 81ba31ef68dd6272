//! The agent binary against a fake Ironic: lookup retries, heartbeats,
//! token checks, command API semantics, power off.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_is_retried_while_the_api_is_down_then_heartbeats_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_fake_root(&root);
    // Reserve a port, free it, and start the API there only later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let args = base_args(&url, &root);
    let agent = AgentProcess::spawn(dir.path(), &args);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let setup = IronicSetup {
        failing_lookups: 2,
        ..Default::default()
    };
    let ironic = FakeIronic::start_on(format!("127.0.0.1:{port}").parse().unwrap(), setup).await;
    let first = ironic.wait_heartbeats(1, Duration::from_secs(20)).await;
    let log = agent.log_text();
    assert!(log.contains("cannot reach the Ironic API"), "{log}");
    let lookups = ironic.recorded.lock().unwrap().lookups.clone();
    assert!(lookups.len() >= 3, "404s retried: {}", lookups.len());
    assert!(
        lookups[0]
            .1
            .contains("addresses=52%3A54%3A00%3A12%3A34%3A56"),
        "{}",
        lookups[0].1
    );
    assert_eq!(lookups[0].2.as_deref(), Some("1.62"));
    let callback = first["callback_url"].as_str().unwrap();
    assert!(
        callback.starts_with("http://127.0.0.1:") && !callback.ends_with(":0"),
        "{callback}"
    );
    assert_eq!(first["agent_token"], TOKEN);
    assert_eq!(first["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(first.get("agent_verify_ca").is_none());
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    // The API is reachable at the advertised URL.
    let (status, body) = AgentApi::new(callback).get("/v1/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_gives_up_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_fake_root(&root);
    let mut args = base_args("http://127.0.0.1:1", &root);
    let at = args.iter().position(|a| a == "--lookup-timeout").unwrap();
    args[at + 1] = "1".into();
    let mut agent = AgentProcess::spawn(dir.path(), &args);
    let status = agent
        .wait_exit(Duration::from_secs(15))
        .expect("agent still running");
    assert!(!status.success());
    assert!(
        agent
            .log_text()
            .contains("Error getting configuration from Ironic"),
        "{}",
        agent.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_repeat_within_the_jittered_interval() {
    let dir = tempfile::tempdir().unwrap();
    let setup = IronicSetup {
        heartbeat_timeout: 1,
        ..Default::default()
    };
    let (ironic, _agent, _api) = agent_with(setup, dir.path(), &[]).await;
    ironic.wait_heartbeats(3, Duration::from_secs(10)).await;
    let times: Vec<_> = ironic
        .recorded
        .lock()
        .unwrap()
        .heartbeats
        .iter()
        .map(|h| h.0)
        .collect();
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(250) && gap <= Duration::from_millis(900),
            "{gap:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_heartbeats_are_retried_with_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let setup = IronicSetup {
        failing_heartbeats: 2,
        ..Default::default()
    };
    let (ironic, agent, _api) = agent_with(setup, dir.path(), &[]).await;
    ironic.wait_heartbeats(3, Duration::from_secs(10)).await;
    let times: Vec<_> = ironic
        .recorded
        .lock()
        .unwrap()
        .heartbeats
        .iter()
        .map(|h| h.0)
        .collect();
    for pair in times[..3].windows(2) {
        // 1–2 × the minimum interval (0.3 s here).
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(280) && gap <= Duration::from_millis(800),
            "{gap:?}"
        );
    }
    assert!(agent.log_text().contains("heartbeat failed"));
    // Accepted now: the next one waits 0.3–0.6 × 300 s.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(ironic.heartbeats().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, _agent, api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    for query in ["", "?agent_token=wrong", "?agent_token="] {
        let (status, body) = api.get(&format!("/v1/commands/{query}")).await;
        assert_eq!(status, 401, "{query}");
        assert_eq!(
            body,
            json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."})
        );
    }
    let resp = api
        .http
        .post(format!(
            "{}/v1/commands/?wait=true&agent_token=nope",
            api.base
        ))
        .json(&json!({"name": "standby.sync", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, list) = api.get(&format!("/v1/commands/?agent_token={TOKEN}")).await;
    assert_eq!(status, 200);
    assert_eq!(list, json!({"commands": []}));
    let (status, _) = api.get(&format!("/commands/?agent_token={TOKEN}")).await;
    assert_eq!(status, 200, "routes work without /v1 too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_unknown_commands_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, _agent, api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    let (status, clean) = api.run("clean.get_clean_steps", node_params(), true).await;
    assert_eq!(status, 200);
    assert_eq!(clean["command_status"], "SUCCEEDED");
    assert_eq!(clean["command_name"], "get_clean_steps");
    let steps = &clean["command_result"]["clean_steps"]["FerricHardwareManager"];
    assert_eq!(steps.as_array().unwrap().len(), 2);
    assert_eq!(
        clean["command_result"]["hardware_manager_version"],
        json!({"ferric_hardware_manager": "1.0"})
    );
    let (_, deploy) = api
        .run("deploy.get_deploy_steps", node_params(), true)
        .await;
    assert!(
        deploy["command_result"]["deploy_steps"]["FerricHardwareManager"]
            .to_string()
            .contains("write_image")
    );

    let (status, body) = api.run("nope.power_off", json!({}), true).await;
    assert_eq!(
        (status, body["faultstring"].as_str().unwrap()),
        (404, "Not found: Extension with id nope not found.")
    );
    let (status, body) = api.run("standby.dance", json!({}), true).await;
    assert_eq!(
        (status, body["faultstring"].as_str().unwrap()),
        (400, "Invalid command: Unknown command: dance")
    );
    let (status, body) = api.run("nodot", json!({}), true).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["faultstring"],
        "Invalid command: Command name must be of the form <extension>.<name>"
    );
    let (status, body) = api.run("clean.get_clean_steps", json!({}), true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["faultstring"]
        .as_str()
        .unwrap()
        .starts_with("Invalid command parameters"));
    let resp = api
        .http
        .post(format!("{}/v1/commands/?agent_token={TOKEN}", api.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = api
        .http
        .post(format!("{}/v1/commands/?agent_token={TOKEN}", api.base))
        .body(r#"{"name": "standby.sync"}"#)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body["faultstring"],
        "400 Bad Request: Missing or invalid name or params"
    );
    let (status, body) = api
        .get(&format!("/v1/commands/no-such-id?agent_token={TOKEN}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["faultstring"],
        "Not found: Command Result with id no-such-id not found."
    );
    let (status, body) = api.get("/v1/nothing").await;
    assert_eq!(status, 404);
    assert_eq!(body["faultcode"], "Client");
    let resp = api
        .http
        .delete(format!("{}/v1/status", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);

    // A step this agent does not have fails the command, as IPA does.
    let mut params = node_params();
    params["step"] = json!({"step": "burnin_cpu", "interface": "deploy"});
    let (_, started) = api.run("clean.execute_clean_step", params, true).await;
    assert_eq!(started["command_status"], "FAILED");
    assert_eq!(
        started["command_error"]["type"],
        "HardwareManagerMethodNotFound"
    );
    // A changed hardware manager version is a version mismatch.
    let mut params = node_params();
    params["step"] = json!({"step": "erase_devices_metadata", "interface": "deploy"});
    params["clean_version"] = json!({"generic_hardware_manager": "1.2"});
    let (_, mismatch) = api.run("clean.execute_clean_step", params, true).await;
    assert_eq!(mismatch["command_status"], "CLEAN_VERSION_MISMATCH");
    assert_eq!(mismatch["command_error"]["code"], 409);

    let (status, list) = api.get(&format!("/v1/commands/?agent_token={TOKEN}")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "get_clean_steps",
            "get_deploy_steps",
            "execute_clean_step",
            "execute_clean_step"
        ]
    );
    let (_, uuids) = api
        .run("standby.get_partition_uuids", json!({}), true)
        .await;
    assert_eq!(uuids["command_result"], json!({}));
    let (_, synced) = api.run("standby.sync", json!({}), true).await;
    assert_eq!(synced["command_status"], "SUCCEEDED");
    assert_eq!(synced["command_result"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collects_logs_as_a_base64_gzipped_tarball() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, _agent, api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    let (_, result) = api.run("log.collect_system_logs", json!({}), true).await;
    assert_eq!(result["command_status"], "SUCCEEDED");
    use base64::Engine;
    let tarball = base64::engine::general_purpose::STANDARD
        .decode(result["command_result"]["system_logs"].as_str().unwrap())
        .unwrap();
    let out = dir.path().join("logs");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(dir.path().join("logs.tgz"), tarball).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(dir.path().join("logs.tgz"))
        .arg("-C")
        .arg(&out)
        .output()
        .unwrap();
    assert!(tar.status.success());
    let own = std::fs::read_to_string(out.join("ferric-agent.log")).unwrap();
    assert!(own.contains("lookup succeeded"), "{own}");
    assert!(!own.contains(TOKEN));
    let kernel = std::fs::read_to_string(out.join("dmesg")).unwrap();
    assert!(kernel.contains("Linux version 6.1.0 (fake)"), "{kernel}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_off_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, mut agent, api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    let (status, body) = api.run("standby.power_off", json!({}), false).await;
    assert_eq!(status, 200);
    assert_eq!(body["command_name"], "power_off");
    let exit = agent
        .wait_exit(Duration::from_secs(10))
        .expect("agent did not end");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_image_ends_the_process_with_code_10() {
    let dir = tempfile::tempdir().unwrap();
    let (_ironic, mut agent, api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    let (status, body) = api.run("standby.run_image", json!({}), false).await;
    assert_eq!(status, 200);
    assert_eq!(body["command_name"], "run_image");
    let exit = agent
        .wait_exit(Duration::from_secs(10))
        .expect("agent did not end");
    assert_eq!(exit.code(), Some(10), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_to_first_lookup_is_quick() {
    let dir = tempfile::tempdir().unwrap();
    let (ironic, agent, _api) = agent_with(IronicSetup::default(), dir.path(), &[]).await;
    let first = ironic.recorded.lock().unwrap().lookups[0].0;
    let elapsed = first - agent.started;
    eprintln!("start to first lookup: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}
