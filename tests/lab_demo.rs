//! `ferric lab demo`, a stable interface scripts use: from prebuilt assets
//! it brings up a lab, serves, enrols, cleans and deploys one VM, and exits
//! 0 with a JSON report whose phases and deploy timeline are all there and
//! in order; then nothing of it is left. Needs what tests/lab_deploy.rs
//! needs, but the openstack CLI.

#![allow(clippy::unwrap_used)] // a test fails loudly on what it cannot do

mod labkit;

use std::path::Path;

use serde_json::Value;

#[test]
fn the_demo_deploys_one_vm_and_cleans_up() {
    let mut missing = labkit::missing(&["ip", "qemu-system-x86_64"]);
    let assets = match labkit::assets() {
        Ok(assets) => Some(assets),
        Err(why) => {
            missing.push(format!("lab assets: {why}"));
            None
        }
    };
    if labkit::skip("lab_demo", &missing) {
        return;
    }
    let assets = assets.unwrap();
    let temp = tempfile::tempdir().unwrap();
    let netns = format!("ferric-demot-{}", std::process::id());
    let out = labkit::ferric()
        .args([
            "lab", "demo", "--json", "--driver", "redfish", "--subnet", "10.81.0",
        ])
        .args(["--netns", &netns])
        .arg("--dir")
        .arg(temp.path())
        .arg("--assets")
        .arg(&assets.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!("lab_demo: {report}");
    assert!(out.status.success(), "{report}");
    assert_eq!(report["ok"], true);
    for phase in [
        "build",
        "lab up",
        "serve",
        "enrol and manage",
        "cleaning",
        "deploy and boot",
    ] {
        assert!(report["phases"][phase].is_number(), "{phase}: {report}");
    }
    let timeline = report["deploy_timeline"].as_object().unwrap();
    let order = [
        "ramdisk boot (power on)",
        "DHCP (first ACK)",
        "deploy ramdisk fetched",
        "agent lookup",
        "image write started",
        "image written",
        "rebooted into the instance",
        "active",
        "marker on the console",
    ];
    let times: Vec<f64> = order
        .iter()
        .map(|m| {
            timeline[*m]
                .as_f64()
                .unwrap_or_else(|| panic!("{m}: {report}"))
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {report}"
    );
    assert!(
        !Path::new("/run/netns").join(&netns).exists(),
        "the lab's namespace is left"
    );
    assert!(
        !temp.path().join("lab").exists(),
        "the lab's directory is left"
    );
}
