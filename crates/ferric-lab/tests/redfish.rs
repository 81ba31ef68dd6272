//! The virtual BMC's Redfish and `/lab` endpoints over HTTP, with the
//! simulated machines' agents (a shell stand-in) started and stopped.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{alive, machines_file, sign_disk, Bmc, TestMachine};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const M1_MAC: &str = "52:54:00:00:00:01";
const M2_MAC: &str = "52:54:00:00:00:02";

fn two_machines(dir: &std::path::Path) -> String {
    let mut m2 = TestMachine::new("m2", M2_MAC);
    m2.username = "root";
    m2.password = "calvin";
    machines_file(dir, None, &[TestMachine::new("m1", M1_MAC), m2])
}

async fn get_json(bmc: &Bmc, path: &str, user: &str, password: &str) -> (StatusCode, Value) {
    let answer = bmc
        .redfish(Method::GET, path, user, password)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn reset(bmc: &Bmc, system: &str, reset_type: &str) -> StatusCode {
    bmc.redfish(
        Method::POST,
        &format!("/redfish/v1/Systems/{system}/Actions/ComputerSystem.Reset"),
        "admin",
        "password",
    )
    .json(&json!({ "ResetType": reset_type }))
    .send()
    .await
    .unwrap()
    .status()
}

#[tokio::test]
async fn the_service_root_is_open_and_the_rest_needs_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16400, &two_machines(dir.path())).await;
    let root: Value = bmc
        .client
        .get(format!("{}/redfish/v1/", bmc.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");
    assert_eq!(
        root["Links"]["Sessions"]["@odata.id"],
        "/redfish/v1/SessionService/Sessions"
    );
    let anonymous = bmc
        .client
        .get(format!("{}/redfish/v1/Systems", bmc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(
        body["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.8.NoValidSession"
    );
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems", "admin", "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Each account opens its own machine only.
    let (status, systems) = get_json(&bmc, "/redfish/v1/Systems", "admin", "password").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        systems["Members"],
        json!([{ "@odata.id": "/redfish/v1/Systems/m1" }])
    );
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m2", "admin", "password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m2", "root", "calvin").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get_json(&bmc, "/redfish/v1/Systems/nope", "root", "calvin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"].is_string());
    bmc.stop().await;
}

#[tokio::test]
async fn the_system_shows_its_state_and_refuses_bad_changes() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16401, &two_machines(dir.path())).await;
    let answer = bmc
        .redfish(Method::GET, "/redfish/v1/Systems/m1/", "admin", "password")
        .send()
        .await
        .unwrap();
    let etag = answer.headers()["etag"].to_str().unwrap().to_string();
    let system: Value = answer.json().await.unwrap();
    assert_eq!(
        system["@odata.type"],
        "#ComputerSystem.v1_13_0.ComputerSystem"
    );
    assert_eq!(system["Id"], "m1");
    assert_eq!(system["PowerState"], "Off");
    assert_eq!(system["@odata.etag"], etag);
    assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    assert_eq!(
        system["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"],
        json!([
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "Nmi",
            "PowerCycle"
        ])
    );
    assert_eq!(
        system["Links"]["ManagedBy"][0]["@odata.id"],
        "/redfish/v1/Managers/m1"
    );
    let uuid = system["UUID"].as_str().unwrap().to_string();
    let (_, nic) = get_json(
        &bmc,
        "/redfish/v1/Systems/m1/EthernetInterfaces/nic0",
        "admin",
        "password",
    )
    .await;
    assert_eq!(nic["MACAddress"], M1_MAC);

    let patch = |body: Value, if_match: Option<&str>| {
        let mut request = bmc
            .redfish(Method::PATCH, "/redfish/v1/Systems/m1", "admin", "password")
            .json(&body);
        if let Some(tag) = if_match {
            request = request.header("If-Match", tag);
        }
        request.send()
    };
    let bad = patch(
        json!({"Boot": {"BootSourceOverrideTarget": "Floppy"}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(
        body["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.8.PropertyValueNotInList"
    );
    let stale = patch(
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe"}}),
        Some("W/\"0\""),
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let good = patch(
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideMode": "Legacy"}}),
        Some(&etag),
    )
    .await
    .unwrap();
    assert_eq!(good.status(), StatusCode::NO_CONTENT);
    let (_, system) = get_json(&bmc, "/redfish/v1/Systems/m1", "admin", "password").await;
    assert_eq!(system["Boot"]["BootSourceOverrideTarget"], "Pxe");
    assert_eq!(system["Boot"]["BootSourceOverrideEnabled"], "Continuous");
    assert_eq!(system["Boot"]["BootSourceOverrideMode"], "Legacy");
    assert_ne!(system["@odata.etag"], etag.as_str());
    assert_eq!(system["UUID"], uuid.as_str());

    let unsupported = reset(&bmc, "m1", "PushPowerButton").await;
    assert_eq!(unsupported, StatusCode::BAD_REQUEST);
    let missing = bmc
        .redfish(
            Method::POST,
            "/redfish/v1/Systems/m1/Actions/ComputerSystem.Reset",
            "admin",
            "password",
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        reset(&bmc, "m1", "Nmi").await,
        StatusCode::CONFLICT,
        "NMI while off"
    );
    assert_eq!(bmc.lab("m1").await["power"], "off");
    bmc.stop().await;
}

#[tokio::test]
async fn power_on_boots_pxe_into_the_agent_and_off_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16402, &two_machines(dir.path())).await;
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "on");
    assert_eq!(
        state["last_boot"], "pxe",
        "blank disk: the boot order's pxe"
    );
    assert_eq!(state["boot_count"], 1);
    let pid = state["agent_pid"].as_u64().expect("an agent pid");
    assert!(alive(pid));
    let runs = bmc.wait_agent_runs(1).await;
    let listen = state["agent_listen"].as_str().unwrap();
    assert_eq!(
        runs[0],
        format!(
            "--api-url http://127.0.0.1:1 --disk {}/m1.disk --mac {M1_MAC} --listen {listen}",
            dir.path().display()
        )
    );
    assert!(std::fs::read_to_string(dir.path().join("m1.agent.log"))
        .unwrap()
        .contains("ferric-lab: starting"));
    // On again changes nothing.
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    assert_eq!(bmc.lab("m1").await["boot_count"], 1);
    assert_eq!(reset(&bmc, "m1", "Nmi").await, StatusCode::NO_CONTENT);
    assert_eq!(bmc.lab("m1").await["nmi_count"], 1);

    let started = Instant::now();
    assert_eq!(reset(&bmc, "m1", "ForceOff").await, StatusCode::NO_CONTENT);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a hard off is at once"
    );
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "off");
    assert_eq!(state["agent_pid"], Value::Null);
    assert!(!alive(pid), "the agent was killed");

    // A soft off: SIGTERM ends the stand-in (it sleeps), well within 2 s.
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let pid = bmc.lab("m1").await["agent_pid"].as_u64().unwrap();
    assert_eq!(
        reset(&bmc, "m1", "GracefulShutdown").await,
        StatusCode::NO_CONTENT
    );
    assert!(!alive(pid));
    assert_eq!(bmc.lab("m1").await["power"], "off");
    // m2 was never touched.
    assert_eq!(bmc.lab("m2").await["boot_count"], 0);
    bmc.stop().await;
}

#[tokio::test]
async fn agent_exit_codes_power_off_or_reboot() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16403, &two_machines(dir.path())).await;
    // Exit 0: the OS powered the machine off.
    bmc.next_agent_exits(M1_MAC, 0);
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = bmc.wait_lab("m1", "off", |s| s["power"] == "off").await;
    assert_eq!(state["boot_count"], 1);
    assert_eq!(state["agent_pid"], Value::Null);

    // Exit 10: a reboot; with an image on the disk (and the once PXE
    // override consumed) it boots the disk.
    let answer = bmc
        .redfish(Method::PATCH, "/redfish/v1/Systems/m1", "admin", "password")
        .json(&json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    sign_disk(&dir.path().join("m1.disk"));
    bmc.next_agent_exits(M1_MAC, 10);
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = bmc
        .wait_lab("m1", "rebooted", |s| s["boot_count"] == 3)
        .await;
    assert_eq!(state["power"], "on");
    assert_eq!(state["last_boot"], "disk");
    assert_eq!(state["agent_pid"], Value::Null);

    // Another code: the machine hangs, powered on.
    std::fs::write(dir.path().join("m1.disk"), vec![0u8; 1024]).unwrap();
    bmc.next_agent_exits(M1_MAC, 3);
    assert_eq!(
        reset(&bmc, "m1", "ForceRestart").await,
        StatusCode::NO_CONTENT
    );
    let state = bmc
        .wait_lab("m1", "hung", |s| s["agent_error"].as_str().is_some())
        .await;
    assert_eq!(state["power"], "on");
    assert_eq!(state["boot_count"], 4);
    assert_eq!(state["agent_error"], "the agent exited with code 3");
    bmc.stop().await;
}

#[tokio::test]
async fn a_once_override_is_consumed_and_cd_boots_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16404, &two_machines(dir.path())).await;
    sign_disk(&dir.path().join("m2.disk"));
    let patch = |body: Value| {
        bmc.redfish(Method::PATCH, "/redfish/v1/Systems/m2", "root", "calvin")
            .json(&body)
            .send()
    };
    let status = patch(
        json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
    )
    .await
    .unwrap()
    .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let on = |reset_type: &'static str| {
        bmc.redfish(
            Method::POST,
            "/redfish/v1/Systems/m2/Actions/ComputerSystem.Reset",
            "root",
            "calvin",
        )
        .json(&json!({ "ResetType": reset_type }))
        .send()
    };
    assert_eq!(on("On").await.unwrap().status(), StatusCode::NO_CONTENT);
    let state = bmc.lab("m2").await;
    assert_eq!(state["last_boot"], "pxe");
    assert_eq!(state["boot_override"]["device"], "none", "consumed");
    assert_eq!(
        on("PowerCycle").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let state = bmc.lab("m2").await;
    assert_eq!(state["last_boot"], "disk");
    assert_eq!(state["agent_pid"], Value::Null);

    // Virtual media, through the manager; boot override Cd boots it.
    let (_, manager) = get_json(&bmc, "/redfish/v1/Managers/m2", "root", "calvin").await;
    let media_path = manager["VirtualMedia"]["@odata.id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, media) = get_json(&bmc, &format!("{media_path}/Cd"), "root", "calvin").await;
    assert_eq!(media["Inserted"], false);
    let insert = media["Actions"]["#VirtualMedia.InsertMedia"]["target"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = bmc
        .redfish(Method::POST, &insert, "root", "calvin")
        .json(&json!({ "Image": "http://images.test/boot.iso" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let (_, media) = get_json(&bmc, &format!("{media_path}/Cd"), "root", "calvin").await;
    assert_eq!(media["Inserted"], true);
    assert_eq!(media["Image"], "http://images.test/boot.iso");
    patch(json!({"Boot": {"BootSourceOverrideTarget": "Cd"}}))
        .await
        .unwrap();
    assert_eq!(
        on("ForceRestart").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let state = bmc.lab("m2").await;
    assert_eq!(state["last_boot"], "cd");
    assert_eq!(state["agent_pid"], Value::Null);
    let eject = media["Actions"]["#VirtualMedia.EjectMedia"]["target"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = bmc
        .redfish(Method::POST, &eject, "root", "calvin")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(bmc.lab("m2").await["virtual_media"]["inserted"], false);
    bmc.stop().await;
}

#[tokio::test]
async fn sessions_are_created_listed_deleted_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16405, &two_machines(dir.path())).await;
    let create = |password: &'static str| {
        bmc.client
            .post(format!("{}/redfish/v1/SessionService/Sessions", bmc.url))
            .json(&json!({ "UserName": "admin", "Password": password }))
            .send()
    };
    let refused = create("nope").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let made = create("password").await.unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let token = made.headers()["x-auth-token"].to_str().unwrap().to_string();
    let location = made.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/redfish/v1/SessionService/Sessions/"),
        "{location}"
    );
    let with_token = |method: Method, path: &str| {
        bmc.client
            .request(method, format!("{}{path}", bmc.url))
            .header("X-Auth-Token", &token)
            .send()
    };
    let systems: Value = with_token(Method::GET, "/redfish/v1/Systems")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(systems["Members@odata.count"], 1);
    let list: Value = with_token(Method::GET, "/redfish/v1/SessionService/Sessions")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["Members"], json!([{ "@odata.id": location }]));
    assert_eq!(bmc.lab("m1").await["redfish_sessions"], 1);

    bmc.set_faults("m1", json!({ "max_sessions": 2 })).await;
    assert_eq!(
        create("password").await.unwrap().status(),
        StatusCode::CREATED
    );
    let over = create("password").await.unwrap();
    assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = over.json().await.unwrap();
    assert_eq!(
        body["error"]["@Message.ExtendedInfo"][0]["MessageId"],
        "Base.1.8.SessionLimitExceeded"
    );
    assert_eq!(
        with_token(Method::DELETE, &location)
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    let gone = with_token(Method::GET, "/redfish/v1/Systems")
        .await
        .unwrap();
    assert_eq!(
        gone.status(),
        StatusCode::UNAUTHORIZED,
        "the token died with its session"
    );
    assert_eq!(bmc.lab("m1").await["redfish_sessions"], 1);
    assert_eq!(
        create("password").await.unwrap().status(),
        StatusCode::CREATED
    );
    bmc.stop().await;
}

#[tokio::test]
async fn faults_lose_delay_and_lock_out() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16406, &two_machines(dir.path())).await;
    let faults: Value = bmc
        .client
        .get(format!("{}/lab/machines/m1/faults", bmc.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["packet_loss"], 0.0);
    let bad = bmc
        .client
        .put(format!("{}/lab/machines/m1/faults", bmc.url))
        .json(&json!({ "packet_loss": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("packet_loss"));
    let unknown = bmc
        .client
        .put(format!("{}/lab/machines/m1/faults", bmc.url))
        .json(&json!({ "jitter": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    assert!(unknown.text().await.unwrap().contains("jitter"));

    bmc.set_faults("m1", json!({ "packet_loss": 1.0 })).await;
    for _ in 0..5 {
        let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m1", "admin", "password").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m2", "root", "calvin").await;
    assert_eq!(status, StatusCode::OK, "only m1 is lossy");

    bmc.set_faults("m1", json!({ "delay_ms": 400 })).await;
    let started = Instant::now();
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m1", "admin", "password").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    bmc.set_faults("m1", json!({ "lockout_after": 3, "lockout_seconds": 60 }))
        .await;
    for _ in 0..3 {
        let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m1", "admin", "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m1", "admin", "password").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the right password is refused while locked"
    );
    let state = bmc.lab("m1").await;
    assert!(
        state["locked_out_seconds"].as_u64().unwrap() > 50,
        "{state}"
    );
    let (status, _) = get_json(&bmc, "/redfish/v1/Systems/m2", "root", "calvin").await;
    assert_eq!(status, StatusCode::OK, "m2 is not locked");
    bmc.stop().await;
}

#[tokio::test]
async fn state_survives_a_restart_and_the_agent_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = two_machines(dir.path());
    let bmc = Bmc::start(dir.path(), 16407, &file).await;
    let persistent = json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Continuous"}});
    let answer = bmc
        .redfish(Method::PATCH, "/redfish/v1/Systems/m1", "admin", "password")
        .json(&persistent)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let first = bmc.lab("m1").await["agent_pid"].as_u64().unwrap();
    bmc.wait_agent_runs(1).await;
    bmc.stop().await;
    assert!(!alive(first), "stopping the BMC stops its agents");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("m1.json")).unwrap()).unwrap();
    assert_eq!(saved["power"], "on");

    let bmc = Bmc::start(dir.path(), 16407, &file).await;
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "on");
    assert_eq!(state["boot_count"], 1, "a BMC restart is not a boot");
    assert_eq!(state["boot_override"]["device"], "pxe");
    assert_eq!(state["boot_override"]["persistent"], true);
    let again = state["agent_pid"].as_u64().expect("agent started again");
    assert_ne!(again, first);
    bmc.wait_agent_runs(2).await;
    assert_eq!(bmc.lab("m2").await["power"], "off");
    bmc.stop().await;
}

#[tokio::test]
async fn a_soft_off_kills_an_agent_that_ignores_sigterm_after_2_s() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16408, &two_machines(dir.path())).await;
    bmc.agents_ignore_sigterm(M1_MAC);
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    bmc.wait_agent_runs(1).await;
    let pid = bmc.lab("m1").await["agent_pid"].as_u64().unwrap();
    let started = Instant::now();
    assert_eq!(
        reset(&bmc, "m1", "GracefulShutdown").await,
        StatusCode::NO_CONTENT
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "SIGKILL came early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!alive(pid));
    assert_eq!(bmc.lab("m1").await["power"], "off");
    bmc.stop().await;
}

#[tokio::test]
async fn an_agent_that_cannot_start_leaves_the_machine_hanging_in_pxe() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = Bmc::start(dir.path(), 16409, &two_machines(dir.path())).await;
    std::fs::remove_file(dir.path().join("fake-agent.sh")).unwrap();
    assert_eq!(reset(&bmc, "m1", "On").await, StatusCode::NO_CONTENT);
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "on");
    assert_eq!(state["last_boot"], "pxe");
    assert_eq!(state["agent_pid"], Value::Null);
    let error = state["agent_error"].as_str().unwrap();
    assert!(error.contains("fake-agent.sh"), "{error}");
    bmc.stop().await;
}
