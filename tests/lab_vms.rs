//! `ferric lab up` makes qemu VMs with virtual BMCs in a network namespace,
//! driven here by peers nobody here wrote: ipmitool (IPMI v2.0) and curl
//! (Redfish). No OS is deployed: the VMs' firmware (SeaBIOS, whose serial
//! console carries iPXE's output) shows what each boot tried, and qemu's
//! command line shows the boot order the BMC gave it. Then the BMC is
//! killed: its VMs keep running, a new BMC adopts them, and `ferric lab
//! down` removes everything.
//!
//! Needs root, `ip`, `ipmitool`, `curl` and `qemu-system-x86_64`; skipped
//! without them unless FERRIC_REQUIRE_PEERS=1.

#![allow(clippy::unwrap_used)] // a test fails loudly on what it cannot do

mod labkit;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use labkit::{alive, run, Lab};
use serde_json::Value;

fn qemu_pid(lab: &Lab) -> Option<u32> {
    lab.machine(0)["qemu_pid"].as_u64().map(|p| p as u32)
}

fn qemu_cmdline(lab: &Lab) -> String {
    let pid = qemu_pid(lab).expect("qemu runs");
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

#[test]
fn lab_vms_boot_as_their_bmc_says_and_outlive_it() {
    let missing = labkit::missing(&["ip", "ipmitool", "curl", "qemu-system-x86_64"]);
    if labkit::skip("lab_vms", &missing) {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("lab");
    let netns = format!("ferric-labt-{}", std::process::id());
    let lab = Lab::up(
        &dir,
        &netns,
        "10.78.0",
        &["--vms", "1", "--disk-size", "64M"],
    );
    assert!(lab.ipmitool(0, "power status").contains("off"));

    // A once override to PXE: the NIC boots first, and iPXE runs.
    lab.ipmitool(0, "chassis bootdev pxe");
    lab.ipmitool(0, "power on");
    assert!(lab.ipmitool(0, "power status").contains("on"));
    let cmdline = qemu_cmdline(&lab);
    assert!(
        cmdline.contains("romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom,bootindex=1"),
        "{cmdline}"
    );
    assert!(cmdline.contains("id=disk0dev,bootindex=2"), "{cmdline}");
    let took = lab.wait_serial(0, 0, "iPXE initialising devices", Duration::from_secs(120));
    eprintln!(
        "lab_vms: iPXE ran {:.1}s after power on",
        took.as_secs_f64()
    );
    let view = lab.machine(0);
    assert_eq!(view["last_boot"], "pxe");
    assert_eq!(
        view["boot_override"]["device"], "none",
        "a once override is consumed"
    );

    // Redfish: hard off; qemu is gone.
    let system = format!("/redfish/v1/Systems/{}", lab.vm(0, "name"));
    let pid = qemu_pid(&lab).unwrap();
    let reset = format!("{system}/Actions/ComputerSystem.Reset");
    lab.redfish("POST", &reset, Some(r#"{"ResetType": "ForceOff"}"#));
    let state: Value = serde_json::from_str(&lab.redfish("GET", &system, None)).unwrap();
    assert_eq!(state["PowerState"], "Off");
    assert!(!alive(pid), "qemu {pid} still runs after ForceOff");

    // A persistent override to the disk: the (blank) disk is tried first.
    let patch = r#"{"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous"}}"#;
    lab.redfish("PATCH", &system, Some(patch));
    let from = lab.serial(0).len();
    lab.redfish("POST", &reset, Some(r#"{"ResetType": "On"}"#));
    let cmdline = qemu_cmdline(&lab);
    assert!(cmdline.contains("id=disk0dev,bootindex=1"), "{cmdline}");
    lab.wait_serial(0, from, "Booting from Hard Disk", Duration::from_secs(120));
    assert_eq!(lab.machine(0)["boot_override"]["device"], "disk");

    // The BMC crashes: the VM runs on; a new BMC adopts it.
    let qemu = qemu_pid(&lab).unwrap();
    let bmc = lab.record["bmc_pid"].as_u64().unwrap() as i32;
    run(Command::new("kill").args(["-9", &bmc.to_string()]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(qemu), "the VM died with its BMC");
    let state = dir.join("state");
    let log = std::fs::File::create(temp.path().join("bmc2.log")).unwrap();
    let bmc2 = Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(env!("CARGO_BIN_EXE_ferric"))
        .args(["lab", "bmc", "--machines"])
        .arg(dir.join("machines.toml"))
        .arg("--state-dir")
        .arg(&state)
        .args(["--redfish-listen", "10.78.0.1:8000"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let bmc2 = labkit::Killed(bmc2);
    let start = Instant::now();
    let adopted = loop {
        let text = std::fs::read_to_string(temp.path().join("bmc2.log")).unwrap_or_default();
        if text.contains("serving IPMI") || start.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        adopted.contains("adopted the VM's running qemu"),
        "{adopted}"
    );
    assert!(lab.ipmitool(0, "power status").contains("on"));
    assert_eq!(qemu_pid(&lab), Some(qemu));

    // Down: the VM, the BMCs, the namespace and the directory are gone.
    drop(bmc2);
    let said = lab.down();
    assert!(said.contains("stopped a VM's qemu"), "{said}");
    assert!(!alive(qemu));
    assert!(!Path::new("/run/netns").join(&netns).exists());
    assert!(!dir.exists());
    assert!(lab.down().contains("nothing to remove"));
}
