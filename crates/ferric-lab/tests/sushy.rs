//! Python `sushy` (the Redfish client Ironic uses) walks the virtual BMC:
//! sessions and basic auth, power, boot overrides, virtual media, a session
//! limit. Skipped, saying why, when no Python with sushy is found
//! (`FERRIC_SUSHY_PYTHON`, else target/venv/bin/python).

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::PathBuf;

use common::{machines_file, sign_disk, Bmc, TestMachine};

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("FERRIC_SUSHY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/venv/bin/python"
            ))
        });
    let has_sushy = std::process::Command::new(&candidate)
        .args(["-c", "import sushy"])
        .output()
        .is_ok_and(|out| out.status.success());
    has_sushy.then_some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_drives_two_machines() {
    let Some(python) = python() else {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipped: no Python with sushy (set FERRIC_SUSHY_PYTHON or run tests/conformance/run.sh target/venv)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut m2 = TestMachine::new("m2", "52:54:00:00:00:02");
    m2.username = "root";
    m2.password = "calvin";
    let file = machines_file(
        dir.path(),
        None,
        &[TestMachine::new("m1", "52:54:00:00:00:01"), m2],
    );
    sign_disk(&dir.path().join("m2.disk"));
    let bmc = Bmc::start(dir.path(), 16440, &file).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sushy_walk.py");
    let out = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&bmc.url)
        .arg(dir.path().join("argv"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("sushy walk: ok"),
        "sushy walk failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert_eq!(bmc.agent_runs().len(), 2, "two PXE boots of m1, none of m2");
    bmc.stop().await;
}
