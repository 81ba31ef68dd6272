//! Provisioning, power and management through the real binary, including
//! a SIGKILL in the middle of a flow and a wait that times out.

mod common;

use std::time::{Duration, Instant};

use common::{faultstring, Server};
use reqwest::Method;
use serde_json::json;

#[test]
fn a_fake_node_goes_round_the_whole_cycle() {
    let s = Server::start("");
    let node = s.create_node("cycle");
    let uuid = node["uuid"].as_str().unwrap();
    let managed = s.provision(uuid, "manage", "manageable");
    assert_eq!(managed["power_state"], "power off");
    let available = s.provision(uuid, "provide", "available");
    assert_eq!(available["target_provision_state"], json!(null));
    assert_eq!(
        available["driver_internal_info"]["clean_steps"],
        json!(null)
    );
    let body = json!({"target": "active", "configdrive": {"user_data": "#cloud-config"}});
    assert_eq!(
        s.put(&format!("/v1/nodes/{uuid}/states/provision"), body),
        202
    );
    let active = s.wait_state(uuid, "active");
    assert_eq!(active["instance_info"]["configdrive"], "******");
    s.provision(uuid, "rebuild", "active");
    let back = s.provision(uuid, "deleted", "available");
    assert_eq!(back["instance_info"], json!({}));

    let (status, body) = s.call(
        Method::PUT,
        &format!("/v1/nodes/{uuid}/states/provision"),
        Some(json!({"target": "provide"})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        faultstring(&body),
        format!("The requested action \"provide\" can not be performed on node \"{uuid}\" while it is in state \"available\".")
    );
}

#[test]
fn power_and_management_work_on_fake_hardware() {
    let s = Server::start("");
    let node = s.create_node("pw");
    let uuid = node["uuid"].as_str().unwrap();
    let states = format!("/v1/nodes/{uuid}/states");
    for (target, expect) in [
        ("power on", "power on"),
        ("rebooting", "power on"),
        ("soft power off", "power off"),
    ] {
        assert_eq!(
            s.put(&format!("{states}/power"), json!({"target": target})),
            202
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let st = s.get(&states);
            if st["power_state"] == expect && st["target_power_state"].is_null() {
                break;
            }
            assert!(Instant::now() < deadline, "power {target}: {st}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let n = s.get(&format!("/v1/nodes/{uuid}"));
    assert!(n["driver_internal_info"]["last_power_state_change"].is_string());
    let (status, body) = s.call(
        Method::PUT,
        &format!("{states}/power"),
        Some(json!({"target": "sideways"})),
    );
    assert_eq!(status, 400);
    assert!(faultstring(&body).starts_with("The requested action \"sideways\""));

    let mgmt = format!("/v1/nodes/{uuid}/management");
    assert_eq!(
        s.put(
            &format!("{mgmt}/boot_device"),
            json!({"boot_device": "pxe", "persistent": true})
        ),
        204
    );
    assert_eq!(
        s.get(&format!("{mgmt}/boot_device")),
        json!({"boot_device": "pxe", "persistent": false})
    );
    let (status, body) = s.call(
        Method::PUT,
        &format!("{mgmt}/boot_device"),
        Some(json!({"boot_device": "disk"})),
    );
    assert_eq!(
        (status, faultstring(&body)),
        (400, "Invalid boot device disk specified.".into())
    );
    assert_eq!(
        s.get(&format!("{mgmt}/boot_device/supported")),
        json!({"supported_boot_devices": ["pxe"]})
    );
    assert_eq!(s.put(&format!("{mgmt}/inject_nmi"), json!({})), 204);

    let v = s.get(&format!("/v1/nodes/{uuid}/validate"));
    assert_eq!(v["power"], json!({"result": true}));
    assert_eq!(v["deploy"], json!({"result": true}));
    assert!(v.get("vendor").is_none());
}

#[test]
fn a_busy_node_answers_409() {
    let s = Server::start(
        "[conductor]\nnode_locked_retry_attempts = 1\n[fake]\ndeploy_delay = \"3\"\n",
    );
    let node = s.create_node("busy");
    let uuid = node["uuid"].as_str().unwrap();
    s.provision(uuid, "manage", "manageable");
    s.provision(uuid, "provide", "available");
    assert_eq!(
        s.put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "active"})
        ),
        202
    );
    let (status, body) = s.call(
        Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([{"op": "add", "path": "/extra/a", "value": 1}])),
    );
    assert_eq!(status, 409, "{body}");
    let (status, body) = s.call(
        Method::PUT,
        &format!("/v1/nodes/{uuid}/states/power"),
        Some(json!({"target": "power on"})),
    );
    assert_eq!(status, 409);
    assert!(faultstring(&body).contains("is locked by host"), "{body}");
    let deploying = s.get(&format!("/v1/nodes/{uuid}"));
    assert_eq!(deploying["provision_state"], "deploying");
    assert!(deploying["reservation"].is_string());
    s.wait_state(uuid, "active");
}

#[test]
fn a_kill_mid_deploy_leaves_a_failed_unlocked_node() {
    let mut s = Server::start("[conductor]\nhost = \"c1\"\n[fake]\ndeploy_delay = \"30\"\n");
    let node = s.create_node("killed");
    let uuid = node["uuid"].as_str().unwrap().to_owned();
    s.provision(&uuid, "manage", "manageable");
    s.provision(&uuid, "provide", "available");
    assert_eq!(
        s.put(
            &format!("/v1/nodes/{uuid}/states/provision"),
            json!({"target": "active"})
        ),
        202
    );
    assert_eq!(
        s.get(&format!("/v1/nodes/{uuid}"))["provision_state"],
        "deploying"
    );
    s.restart_after_kill();
    let n = s.get(&format!("/v1/nodes/{uuid}"));
    assert_eq!(n["provision_state"], "deploy failed");
    assert_eq!(n["target_provision_state"], "active");
    assert_eq!(n["reservation"], json!(null));
    assert_eq!(
        n["last_error"],
        "The deploying state can't be resumed by conductor c1. Moving to fail state."
    );
    let conductors = s.get("/v1/conductors");
    assert_eq!(conductors["conductors"][0]["alive"], true);
}

#[test]
fn a_wait_step_times_out_into_clean_failed() {
    let s = Server::start(
        "[conductor]\nclean_callback_timeout = 1\ncheck_provision_state_interval = 1\n",
    );
    let node = s.create_node("waits");
    let uuid = node["uuid"].as_str().unwrap();
    s.provision(uuid, "manage", "manageable");
    let steps =
        json!({"target": "clean", "clean_steps": [{"interface": "deploy", "step": "wait"}]});
    assert_eq!(
        s.put(&format!("/v1/nodes/{uuid}/states/provision"), steps),
        202
    );
    s.wait_state(uuid, "clean wait");
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = loop {
        let n = s.get(&format!("/v1/nodes/{uuid}"));
        if n["provision_state"] == "clean failed" {
            break n;
        }
        assert!(Instant::now() < deadline, "still {}", n["provision_state"]);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(failed["target_provision_state"], "manageable");
    assert!(failed["last_error"]
        .as_str()
        .unwrap()
        .starts_with("Timeout reached while cleaning the node."));
    assert_eq!(failed["maintenance"], true);
    assert_eq!(failed["fault"], "clean failure");
}

#[test]
fn hold_then_unhold_or_abort() {
    let s = Server::start("");
    let node = s.create_node("holds");
    let uuid = node["uuid"].as_str().unwrap();
    s.provision(uuid, "manage", "manageable");
    let provision = format!("/v1/nodes/{uuid}/states/provision");
    let hold = json!({"target": "clean", "clean_steps": [{"interface": "deploy", "step": "hold"}, {"interface": "bios", "step": "factory_reset"}]});
    assert_eq!(s.put(&provision, hold.clone()), 202);
    let held = s.wait_state(uuid, "clean hold");
    assert_eq!(held["target_provision_state"], "manageable");
    assert_eq!(s.put(&provision, json!({"target": "unhold"})), 202);
    s.wait_state(uuid, "manageable");

    assert_eq!(s.put(&provision, hold), 202);
    s.wait_state(uuid, "clean hold");
    assert_eq!(s.put(&provision, json!({"target": "abort"})), 202);
    let aborted = s.wait_state(uuid, "clean failed");
    assert!(aborted["last_error"]
        .as_str()
        .unwrap()
        .starts_with("By request, the clean operation was aborted"));
}
