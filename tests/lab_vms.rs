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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn missing_tools() -> Vec<&'static str> {
    let mut missing: Vec<&'static str> = ["ip", "ipmitool", "curl", "qemu-system-x86_64"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    if !rustix_is_root() {
        missing.push("root");
    }
    missing
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn skip_unless_ready() -> bool {
    let missing = missing_tools();
    if missing.is_empty() {
        return false;
    }
    if std::env::var("FERRIC_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("lab_vms: missing {missing:?} (FERRIC_REQUIRE_PEERS=1)");
    }
    eprintln!("lab_vms: skipped, missing {missing:?}");
    true
}

fn ferric() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferric"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("run");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab, removed by `ferric lab down` whatever happens.
struct Lab {
    dir: PathBuf,
    netns: String,
    record: Value,
}

impl Lab {
    fn up(dir: &Path, netns: &str) -> Lab {
        run(ferric()
            .args(["lab", "up", "--vms", "1", "--disk-size", "64M", "--subnet", "10.78.0"])
            .arg("--dir")
            .arg(dir)
            .args(["--netns", netns]));
        let record: Value =
            serde_json::from_slice(&std::fs::read(dir.join("lab.json")).unwrap()).unwrap();
        Lab {
            dir: dir.to_path_buf(),
            netns: netns.to_string(),
            record,
        }
    }

    fn vm(&self, key: &str) -> String {
        match &self.record["vms"][0][key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn ipmitool(&self, words: &str) -> String {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns, "ipmitool", "-I", "lanplus", "-H"])
            .arg(self.vm("ipmi_address"))
            .args(["-p", &self.vm("ipmi_port"), "-U", &self.vm("username")])
            .args(["-P", &self.vm("password")])
            .args(words.split(' '));
        run(&mut command)
    }

    fn redfish(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let url = format!("{}{path}", self.record["redfish_url"].as_str().unwrap());
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns, "curl", "-sSf", "-X", method])
            .args(["-u", &format!("{}:{}", self.vm("username"), self.vm("password"))])
            .args(["-H", "Content-Type: application/json"]);
        if let Some(body) = body {
            command.args(["-d", body]);
        }
        run(command.arg(url))
    }

    fn system_path(&self) -> String {
        format!("/redfish/v1/Systems/{}", self.vm("name"))
    }

    fn lab_view(&self) -> Value {
        serde_json::from_str(&self.redfish("GET", "/lab/machines/vm0", None)).unwrap()
    }

    fn serial(&self) -> String {
        let bytes = std::fs::read(self.vm("serial_log")).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits for the serial log to hold `text` after `from` bytes.
    fn wait_serial(&self, from: usize, text: &str) -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            if self.serial().get(from..).is_some_and(|s| s.contains(text)) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("no {text:?} on the serial console: {}", self.serial());
    }

    fn qemu_pid(&self) -> Option<u32> {
        self.lab_view()["qemu_pid"].as_u64().map(|p| p as u32)
    }

    fn qemu_cmdline(&self) -> String {
        let pid = self.qemu_pid().expect("qemu runs");
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        String::from_utf8_lossy(&raw).replace('\0', " ")
    }

    fn down(&self) -> String {
        run(ferric()
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .args(["--netns", &self.netns]))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = ferric()
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .args(["--netns", &self.netns])
            .output();
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, r)| !r.trim_start().starts_with('Z')))
}

#[test]
fn lab_vms_boot_as_their_bmc_says_and_outlive_it() {
    if skip_unless_ready() {
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("lab");
    let netns = format!("ferric-labt-{}", std::process::id());
    let lab = Lab::up(&dir, &netns);
    assert!(lab.ipmitool("power status").contains("off"));

    // A once override to PXE: the NIC boots first, and iPXE runs.
    lab.ipmitool("chassis bootdev pxe");
    lab.ipmitool("power on");
    assert!(lab.ipmitool("power status").contains("on"));
    let cmdline = lab.qemu_cmdline();
    assert!(cmdline.contains("romfile=/usr/lib/ipxe/qemu/pxe-virtio.rom,bootindex=1"), "{cmdline}");
    assert!(cmdline.contains("id=disk0dev,bootindex=2"), "{cmdline}");
    let took = lab.wait_serial(0, "iPXE initialising devices");
    eprintln!("lab_vms: iPXE ran {:.1}s after power on", took.as_secs_f64());
    let view = lab.lab_view();
    assert_eq!(view["last_boot"], "pxe");
    assert_eq!(view["boot_override"]["device"], "none", "a once override is consumed");

    // Redfish: hard off; qemu is gone.
    let pid = lab.qemu_pid().unwrap();
    let reset = format!("{}/Actions/ComputerSystem.Reset", lab.system_path());
    lab.redfish("POST", &reset, Some(r#"{"ResetType": "ForceOff"}"#));
    let system: Value = serde_json::from_str(&lab.redfish("GET", &lab.system_path(), None)).unwrap();
    assert_eq!(system["PowerState"], "Off");
    assert!(!alive(pid), "qemu {pid} still runs after ForceOff");

    // A persistent override to the disk: the (blank) disk is tried first.
    let patch = r#"{"Boot": {"BootSourceOverrideTarget": "Hdd", "BootSourceOverrideEnabled": "Continuous"}}"#;
    lab.redfish("PATCH", &lab.system_path(), Some(patch));
    let from = lab.serial().len();
    lab.redfish("POST", &reset, Some(r#"{"ResetType": "On"}"#));
    let cmdline = lab.qemu_cmdline();
    assert!(cmdline.contains("id=disk0dev,bootindex=1"), "{cmdline}");
    lab.wait_serial(from, "Booting from Hard Disk");
    assert_eq!(lab.lab_view()["boot_override"]["device"], "disk");

    // The BMC crashes: the VM runs on; a new BMC adopts it.
    let qemu = lab.qemu_pid().unwrap();
    let bmc = lab.record["bmc_pid"].as_u64().unwrap() as i32;
    run(Command::new("kill").args(["-9", &bmc.to_string()]));
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(qemu), "the VM died with its BMC");
    let state = dir.join("state");
    let log = std::fs::File::create(dir.join("bmc2.log")).unwrap();
    let mut bmc2 = Command::new("ip")
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
    let start = Instant::now();
    let adopted = loop {
        let text = std::fs::read_to_string(dir.join("bmc2.log")).unwrap_or_default();
        if text.contains("serving IPMI") || start.elapsed() > Duration::from_secs(20) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(adopted.contains("adopted the VM's running qemu"), "{adopted}");
    assert!(lab.ipmitool("power status").contains("on"));
    assert_eq!(lab.qemu_pid(), Some(qemu));

    // Down: the VM, the BMCs, the namespace and the directory are gone.
    let _ = bmc2.kill();
    let _ = bmc2.wait();
    let said = lab.down();
    assert!(said.contains("stopped a VM's qemu"), "{said}");
    assert!(!alive(qemu));
    assert!(!Path::new("/run/netns").join(&netns).exists());
    assert!(!dir.exists());
    assert!(lab.down().contains("nothing to remove"));
}
