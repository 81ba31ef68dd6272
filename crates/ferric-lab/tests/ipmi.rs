//! Debian's `ipmitool -I lanplus` drives the virtual BMC's IPMI ports:
//! power and boot devices over cipher suites 3 and 17, the shared port,
//! privilege checks, packet loss, a lockout and a session limit; and
//! pyghmi's client. Each is skipped, saying why, when its tool is missing
//! (ipmitool; `FERRIC_PYGHMI_PYTHON`, else target/venv/bin/python).

#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::time::Duration;

use common::{machines_file, Bmc, TestMachine};
use serde_json::{json, Value};

fn have_ipmitool() -> bool {
    let found = std::process::Command::new("ipmitool")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipped: ipmitool is not installed (apt-get install ipmitool)");
    }
    found
}

struct Ipmitool {
    port: u16,
    user: &'static str,
    password: &'static str,
    suite: &'static str,
    extra: Vec<&'static str>,
}

impl Ipmitool {
    fn new(port: u16, user: &'static str, password: &'static str, suite: &'static str) -> Self {
        Ipmitool {
            port,
            user,
            password,
            suite,
            extra: Vec::new(),
        }
    }

    /// Runs `ipmitool ... ARGS`; returns success and stdout+stderr.
    async fn run(&self, args: &[&str]) -> (bool, String) {
        let port = self.port.to_string();
        let mut command = tokio::process::Command::new("ipmitool");
        command
            .args([
                "-I",
                "lanplus",
                "-C",
                self.suite,
                "-H",
                "127.0.0.1",
                "-p",
                &port,
            ])
            .args(["-U", self.user, "-P", self.password])
            .args(&self.extra)
            .args(args);
        let out = tokio::time::timeout(Duration::from_secs(120), command.output())
            .await
            .expect("ipmitool hung")
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args).await;
        assert!(ok, "ipmitool {args:?} failed: {text}");
        text
    }
}

fn machine(name: &'static str, mac: &'static str, port: Option<u16>) -> TestMachine {
    let mut m = TestMachine::new(name, mac);
    m.ipmi_port = port;
    m
}

async fn drive_one_machine(bmc: &Bmc, name: &str, tool: &Ipmitool) {
    assert!(tool
        .ok(&["power", "status"])
        .await
        .contains("Chassis Power is off"));
    let info = tool.ok(&["mc", "info"]).await;
    assert!(
        info.contains("IPMI Version") && info.contains("2.0"),
        "{info}"
    );

    tool.ok(&["power", "on"]).await;
    let state = bmc.lab(name).await;
    assert_eq!(state["power"], "on");
    assert_eq!(state["last_boot"], "pxe");
    assert!(state["agent_pid"].is_u64(), "{state}");
    assert!(tool
        .ok(&["power", "status"])
        .await
        .contains("Chassis Power is on"));

    tool.ok(&["chassis", "bootdev", "pxe"]).await;
    let state = bmc.lab(name).await;
    assert_eq!(
        state["boot_override"],
        json!({"device": "pxe", "persistent": false})
    );
    assert_eq!(state["boot_mode"], "legacy");
    tool.ok(&["power", "cycle"]).await;
    let state = bmc.lab(name).await;
    assert_eq!(state["boot_count"], 2);
    assert_eq!(state["last_boot"], "pxe");
    assert_eq!(
        state["boot_override"]["device"], "none",
        "a once override is consumed"
    );

    tool.ok(&["chassis", "bootdev", "disk", "options=persistent,efiboot"])
        .await;
    let state = bmc.lab(name).await;
    assert_eq!(
        state["boot_override"],
        json!({"device": "disk", "persistent": true})
    );
    assert_eq!(state["boot_mode"], "uefi");
    let param = tool.ok(&["chassis", "bootparam", "get", "5"]).await;
    assert!(
        param.contains("Force Boot from default Hard-Drive"),
        "{param}"
    );
    assert!(
        param.contains("Options apply to all future boots"),
        "{param}"
    );
    assert!(param.contains("BIOS EFI boot"), "{param}");

    tool.ok(&["power", "reset"]).await;
    let state = bmc.lab(name).await;
    assert_eq!(state["boot_count"], 3);
    assert_eq!(
        state["last_boot"], "pxe",
        "an unsigned disk falls back to the boot order"
    );
    assert_eq!(state["boot_override"]["device"], "disk", "persistent");

    tool.ok(&["power", "diag"]).await;
    assert_eq!(bmc.lab(name).await["nmi_count"], 1);
    tool.ok(&["power", "off"]).await;
    let state = bmc.lab(name).await;
    assert_eq!(state["power"], "off");
    assert_eq!(state["agent_pid"], Value::Null);
    assert!(tool
        .ok(&["power", "status"])
        .await
        .contains("Chassis Power is off"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_drives_machines_over_suites_3_and_17() {
    if !have_ipmitool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = machines_file(
        dir.path(),
        None,
        &[
            machine("m1", "52:54:00:00:01:01", Some(16501)),
            machine("m2", "52:54:00:00:01:02", Some(16502)),
        ],
    );
    let bmc = Bmc::start(dir.path(), 16500, &file).await;
    drive_one_machine(&bmc, "m1", &Ipmitool::new(16501, "admin", "password", "3")).await;
    drive_one_machine(&bmc, "m2", &Ipmitool::new(16502, "admin", "password", "17")).await;
    assert_eq!(
        bmc.lab("m1").await["boot_count"],
        3,
        "m2's commands did not reach m1"
    );

    // A User-privilege session may look but not touch.
    let mut user = Ipmitool::new(16501, "admin", "password", "3");
    user.extra = vec!["-L", "USER"];
    assert!(user.ok(&["power", "status"]).await.contains("off"));
    let (ok, text) = user.run(&["power", "on"]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("Insufficient privilege"), "{text}");
    assert_eq!(bmc.lab("m1").await["power"], "off");

    let (ok, text) = Ipmitool::new(16501, "admin", "wrong", "3")
        .run(&["power", "status"])
        .await;
    assert!(!ok, "a wrong password is refused: {text}");
    bmc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_port_tells_machines_apart_by_user() {
    if !have_ipmitool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut a = machine("a", "52:54:00:00:02:01", None);
    a.username = "alice";
    let mut b = machine("b", "52:54:00:00:02:02", None);
    b.username = "bob";
    b.password = "secret";
    let file = machines_file(dir.path(), Some(16511), &[a, b]);
    let bmc = Bmc::start(dir.path(), 16510, &file).await;
    let alice = Ipmitool::new(16511, "alice", "password", "17");
    let bob = Ipmitool::new(16511, "bob", "secret", "3");
    alice.ok(&["power", "on"]).await;
    assert_eq!(bmc.lab("a").await["power"], "on");
    assert_eq!(bmc.lab("b").await["power"], "off");
    assert!(bob.ok(&["power", "status"]).await.contains("off"));
    bob.ok(&["chassis", "bootdev", "cdrom"]).await;
    assert_eq!(bmc.lab("b").await["boot_override"]["device"], "cdrom");
    assert_eq!(bmc.lab("a").await["boot_override"]["device"], "none");
    assert!(alice.ok(&["power", "status"]).await.contains("on"));
    let (ok, _) = Ipmitool::new(16511, "bob", "password", "3")
        .run(&["power", "status"])
        .await;
    assert!(!ok, "alice's password does not open bob's machine");
    bmc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_carry_ipmitool_through_packet_loss() {
    if !have_ipmitool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = machine("lossy", "52:54:00:00:03:01", Some(16521));
    m.extra = "[machine.faults]\npacket_loss = 0.3\n";
    let bmc = Bmc::start(dir.path(), 16520, &machines_file(dir.path(), None, &[m])).await;
    let mut tool = Ipmitool::new(16521, "admin", "password", "3");
    tool.extra = vec!["-R", "8", "-N", "1"];
    tool.ok(&["power", "on"]).await;
    assert!(tool
        .ok(&["power", "status"])
        .await
        .contains("Chassis Power is on"));
    tool.ok(&["chassis", "bootdev", "pxe"]).await;
    let state = bmc.lab("lossy").await;
    assert_eq!(
        state["boot_count"], 1,
        "a resent power on boots once: {state}"
    );
    assert_eq!(state["boot_override"]["device"], "pxe");
    bmc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_refuses_the_right_password() {
    if !have_ipmitool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = machines_file(
        dir.path(),
        None,
        &[machine("m1", "52:54:00:00:04:01", Some(16531))],
    );
    let bmc = Bmc::start(dir.path(), 16530, &file).await;
    let right = Ipmitool::new(16531, "admin", "password", "3");
    right.ok(&["power", "status"]).await;
    bmc.set_faults("m1", json!({ "lockout_after": 2, "lockout_seconds": 60 }))
        .await;
    for _ in 0..2 {
        let (ok, text) = Ipmitool::new(16531, "admin", "guess", "17")
            .run(&["power", "status"])
            .await;
        assert!(!ok, "{text}");
    }
    // The wrong password shows as a handshake abandoned after RAKP 2.
    bmc.wait_lab("m1", "locked out", |s| s["locked_out_seconds"].is_u64())
        .await;
    let (ok, text) = right.run(&["power", "status"]).await;
    assert!(
        !ok,
        "the right password is refused while locked out: {text}"
    );
    // Redfish shares the account's lockout.
    let status = bmc
        .redfish(
            reqwest::Method::GET,
            "/redfish/v1/Systems/m1",
            "admin",
            "password",
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
    bmc.set_faults("m1", json!({})).await;
    bmc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_limit_refuses_the_next_session() {
    if !have_ipmitool() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut m = machine("m1", "52:54:00:00:05:01", Some(16541));
    m.extra = "[machine.faults]\nmax_sessions = 1\n";
    let bmc = Bmc::start(dir.path(), 16540, &machines_file(dir.path(), None, &[m])).await;
    // ipmitool's `shell` keeps its session open while it reads commands.
    let mut holder = tokio::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", "16541"])
        .args(["-U", "admin", "-P", "password", "shell"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = holder.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"power status\n")
        .await
        .unwrap();
    bmc.wait_lab("m1", "holding a session", |s| s["ipmi_sessions"] == 1)
        .await;
    let (ok, text) = Ipmitool::new(16541, "admin", "password", "3")
        .run(&["power", "status"])
        .await;
    assert!(!ok, "a second session is refused: {text}");
    drop(stdin);
    holder.kill().await.unwrap();
    bmc.stop().await;
}

fn pyghmi_python() -> Option<std::path::PathBuf> {
    let candidate = std::env::var_os("FERRIC_PYGHMI_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/venv/bin/python").into()
        });
    let found = std::process::Command::new(&candidate)
        .args(["-c", "import pyghmi.ipmi.command"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var_os("FERRIC_REQUIRE_PEERS").is_none(),
            "a peer this test drives is missing (FERRIC_REQUIRE_PEERS is set)"
        );
        eprintln!("skipped: no Python with pyghmi (set FERRIC_PYGHMI_PYTHON or run tests/conformance/run.sh target/venv)");
    }
    found.then_some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyghmi_drives_a_machine() {
    let Some(python) = pyghmi_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = machines_file(
        dir.path(),
        None,
        &[machine("m1", "52:54:00:00:06:01", Some(16551))],
    );
    let bmc = Bmc::start(dir.path(), 16550, &file).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyghmi_walk.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&python)
            .args([script, "16551", "admin", "password"])
            .output(),
    )
    .await
    .expect("pyghmi hung")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("pyghmi walk: ok"),
        "pyghmi walk failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let state = bmc.lab("m1").await;
    assert_eq!(state["power"], "off");
    assert_eq!(state["boot_count"], 1);
    assert_eq!(
        state["boot_override"],
        json!({"device": "pxe", "persistent": true})
    );
    assert_eq!(state["boot_mode"], "uefi");
    bmc.stop().await;
}
