//! The deploy ramdisk boots for real: `ferric ramdisk build`'s kernel and
//! initramfs under qemu (TCG), with user-mode networking (qemu's DHCP;
//! 10.0.2.2 is the host's loopback), a sparse virtio-blk disk and a
//! virtio-rng. A small HTTP server here stands in for Ironic's API: it
//! serves the version documents, records the inventory the agent posts for
//! inspection and the lookups (404 at first, so the agent keeps trying).
//! Once a lookup with the VM's MAC arrived, lookup succeeds, the agent
//! heartbeats, and a command sent to its command API (forwarded by qemu)
//! must really shut the VM down, qemu (`-no-reboot`) exiting: first
//! `standby.power_off` under SeaBIOS with PXELINUX's `BOOTIF=01-...`, then
//! `standby.run_image` (a reboot) under OVMF with iPXE's `BOOTIF=MAC`.
//!
//! Needs a static agent: `FERRIC_STATIC_AGENT`, else
//! `target/x86_64-unknown-linux-gnu/release/ferric-agent` (see
//! `ramdisk::STATIC_AGENT_HINT`), qemu-system-x86_64, and apt-get/dpkg-deb
//! for the kernel and busybox packages. `FERRIC_RAMDISK_OUT=DIR` keeps the
//! ramdisk and the serial log there.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use ferric_lab::build::debian::{default_cache_dir, Packages};
use ferric_lab::build::ramdisk::{self, RamdiskSpec};
use serde_json::{json, Value};

const BOOT_MAC: &str = "52:54:00:12:ab:cd";
const OTHER_MAC: &str = "52:54:00:12:34:01";
const NODE: &str = "0f4b8c7e-5d1a-4c51-9a44-2b7f1a6d9e10";
const TOKEN: &str = "ramdisk-test-token-0123456789abcdefghijklmnopq";
const DISK_SIZE: u64 = 2 << 30;
const LOOKUP_DEADLINE: Duration = Duration::from_secs(240);

fn require_peers() -> bool {
    std::env::var("FERRIC_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) {
    assert!(!require_peers(), "FERRIC_REQUIRE_PEERS=1 but {why}");
    eprintln!("skipped: {why}");
}

fn static_agent() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FERRIC_STATIC_AGENT") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join("target/x86_64-unknown-linux-gnu/release/ferric-agent");
    path.is_file().then_some(path)
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// What the stand-in API saw.
#[derive(Default)]
struct Seen {
    /// Each lookup's query string, with when it arrived.
    lookups: Vec<(Instant, String)>,
    inventories: Vec<Value>,
    heartbeats: Vec<Value>,
    /// Whether lookup now finds the node.
    lookup_succeeds: bool,
}

type Shared = Arc<Mutex<Seen>>;

fn version_document() -> Value {
    let v1 = json!({
        "id": "v1",
        "links": [{"href": "http://10.0.2.2/v1/", "rel": "self"}],
        "status": "CURRENT",
        "min_version": "1.1",
        "version": "1.93",
    });
    json!({
        "name": "OpenStack Ironic API",
        "description": "stand-in for the ramdisk test",
        "default_version": v1,
        "versions": [v1],
    })
}

async fn lookup(
    State(seen): State<Shared>,
    RawQuery(query): RawQuery,
) -> (StatusCode, Json<Value>) {
    let mut seen = seen.lock().unwrap();
    seen.lookups
        .push((Instant::now(), query.unwrap_or_default()));
    if !seen.lookup_succeeds {
        let error = json!({"error_message": "{\"faultstring\": \"Resource could not be found.\"}"});
        return (StatusCode::NOT_FOUND, Json(error));
    }
    let answer = json!({
        "node": {"uuid": NODE, "properties": {}, "instance_info": {}, "driver_internal_info": {}},
        "config": {"heartbeat_timeout": 300, "agent_token": TOKEN, "agent_token_required": true},
    });
    (StatusCode::OK, Json(answer))
}

async fn inspection(State(seen): State<Shared>, Json(body): Json<Value>) -> StatusCode {
    seen.lock().unwrap().inventories.push(body);
    StatusCode::NOT_FOUND
}

async fn heartbeat(
    State(seen): State<Shared>,
    UrlPath(node): UrlPath<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    assert_eq!(node, NODE);
    seen.lock().unwrap().heartbeats.push(body);
    StatusCode::ACCEPTED
}

async fn start_api() -> (u16, Shared, tokio::task::JoinHandle<()>) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/", get(|| async { Json(version_document()) }))
        .route("/v1", get(|| async { Json(version_document()) }))
        .route("/v1/", get(|| async { Json(version_document()) }))
        .route("/v1/lookup", get(lookup))
        .route("/v1/continue_inspection", post(inspection))
        .route("/v1/heartbeat/{node}", post(heartbeat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, seen, task)
}

/// qemu (under `timeout`), stopped on drop: SIGTERM to `timeout` reaches
/// qemu; SIGKILL if that is not enough.
struct Qemu {
    child: Child,
    serial: PathBuf,
    started: Instant,
}

impl Qemu {
    fn serial_log(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        for _ in 0..50 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One boot of the ramdisk, and how it is to end.
struct Case {
    name: &'static str,
    /// BOOTIF as the kernel command line gives it.
    bootif: String,
    /// Boot with OVMF (UEFI) rather than SeaBIOS.
    uefi: bool,
    /// The agent command that ends the boot.
    command: &'static str,
    /// What the kernel prints as the machine goes down.
    kernel_says: &'static str,
    /// What the wrapper on the PATH prints.
    ramdisk_says: &'static str,
}

struct Boot<'a> {
    kernel: &'a Path,
    initramfs: &'a Path,
    dir: &'a Path,
    api_port: u16,
    agent_port: u16,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

fn start_qemu(case: &Case, boot: &Boot) -> Qemu {
    let append = format!(
        "console=ttyS0 ipa-api-url=http://10.0.2.2:{} BOOTIF={} ipa-enable-auto-tls=0",
        boot.api_port, case.bootif
    );
    let boot_netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{}-:9999", boot.agent_port);
    let disk = boot.dir.join(format!("{}-disk.raw", case.name));
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let serial = boot.dir.join(format!("{}-serial.log", case.name));
    let mut command = Command::new("timeout");
    command
        .args(["--kill-after=10", "600", "qemu-system-x86_64"])
        .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-nographic"])
        .args(["-monitor", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(boot.kernel)
        .arg("-initrd")
        .arg(boot.initramfs)
        .args(["-append", &append])
        // A first NIC that is not BOOTIF's: /init must pick the second.
        .args(["-netdev", "user,id=n1,restrict=on"])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n1,mac={OTHER_MAC}"),
        ])
        .args(["-netdev", &boot_netdev])
        .args([
            "-device",
            &format!("virtio-net-pci,netdev=n0,mac={BOOT_MAC}"),
        ])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", disk.display()))
        .args(["-device", "virtio-rng-pci"]);
    if case.uefi {
        let vars = boot.dir.join(format!("{}-vars.fd", case.name));
        std::fs::copy(OVMF_VARS, &vars).unwrap();
        command
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
            .arg("-drive")
            .arg(format!("if=pflash,format=raw,file={}", vars.display()));
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Qemu {
        child,
        serial,
        started: Instant::now(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn build_ramdisk(agent: &Path, out: &Path) -> ramdisk::Ramdisk {
    let started = Instant::now();
    let spec = RamdiskSpec::new(agent, out);
    let built = ramdisk::build(&spec, &Packages::new(default_cache_dir())).unwrap();
    eprintln!(
        "built in {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        ramdisk::summary(&built)
    );
    assert_eq!(
        std::fs::metadata(&built.kernel).unwrap().len(),
        built.kernel_size
    );
    assert_eq!(
        std::fs::metadata(&built.initramfs).unwrap().len(),
        built.initramfs_size
    );
    built
}

/// Polls `check` every 500 ms until it gives a value or `limit` passes;
/// qemu exiting first is a failure.
async fn wait_for<T>(
    qemu: &mut Qemu,
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if let Some(status) = qemu.exited() {
            panic!(
                "qemu exited ({status}) before {what}; serial log:\n{}",
                qemu.serial_log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {limit:?}; serial log:\n{}",
            qemu.serial_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The `addresses` of a lookup query string, percent-decoded.
fn lookup_addresses(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("addresses="))
        .flat_map(|list| {
            let list = list.replace("%3A", ":").replace("%3a", ":");
            list.replace("%2C", ",")
                .replace("%2c", ",")
                .split(',')
                .map(|a| a.to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn assert_inventory_has_the_disk(inventory: &Value) {
    let disks = inventory["inventory"]["disks"].as_array().unwrap();
    let vda = disks
        .iter()
        .find(|d| d["name"] == "/dev/vda")
        .unwrap_or_else(|| panic!("no /dev/vda in {disks:?}"));
    assert_eq!(vda["size"], DISK_SIZE, "{vda}");
    let macs: Vec<&str> = inventory["inventory"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["mac_address"].as_str())
        .collect();
    assert!(macs.contains(&BOOT_MAC), "{macs:?}");
}

async fn send_command(agent_port: u16, command: &str) -> reqwest::StatusCode {
    let url = format!("http://127.0.0.1:{agent_port}/v1/commands/?wait=true&agent_token={TOKEN}");
    let body = json!({"name": command, "params": {}});
    let answer = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    answer.status()
}

/// Boots the ramdisk, waits for the lookup (then lets it succeed) and the
/// first heartbeat, sends the case's command and waits for qemu to end.
async fn boot(case: &Case, built: &ramdisk::Ramdisk, dir: &Path) {
    let (api_port, seen, api) = start_api().await;
    let agent_port = free_port();
    let boot = Boot {
        kernel: &built.kernel,
        initramfs: &built.initramfs,
        dir,
        api_port,
        agent_port,
    };
    let mut qemu = start_qemu(case, &boot);
    let started = qemu.started;
    let arrived = wait_for(
        &mut qemu,
        LOOKUP_DEADLINE,
        "lookup with the VM's MAC",
        || {
            let mut seen = seen.lock().unwrap();
            let found = seen
                .lookups
                .iter()
                .find(|(_, q)| lookup_addresses(q).iter().any(|a| a == BOOT_MAC))
                .map(|(at, q)| (*at, q.clone()));
            if found.is_some() {
                seen.lookup_succeeds = true;
            }
            found
        },
    )
    .await;
    eprintln!(
        "{}: qemu start to lookup: {:.1} s ({})",
        case.name,
        arrived.0.duration_since(started).as_secs_f64(),
        arrived.1
    );
    let log = qemu.serial_log();
    let picked = format!(
        "ferric-ramdisk: BOOTIF={}: configuring eth1 with DHCP",
        case.bootif
    );
    assert!(log.contains(&picked), "no {picked:?} in:\n{log}");
    if case.uefi {
        assert!(
            log.contains("/sys/firmware/efi/efivars"),
            "efivarfs not mounted:\n{log}"
        );
    }

    let inventory = seen.lock().unwrap().inventories.first().cloned();
    match inventory {
        Some(inventory) => assert_inventory_has_the_disk(&inventory),
        None => eprintln!("{}: no inventory posted before lookup", case.name),
    }

    let heartbeat = wait_for(&mut qemu, Duration::from_secs(120), "heartbeat", || {
        seen.lock().unwrap().heartbeats.first().cloned()
    })
    .await;
    assert_eq!(heartbeat["agent_token"], TOKEN, "{heartbeat}");
    eprintln!(
        "{}: qemu start to first heartbeat: {:.1} s",
        case.name,
        started.elapsed().as_secs_f64()
    );

    let status = send_command(agent_port, case.command).await;
    assert!(status.is_success(), "{} answered {status}", case.command);
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(60);
    let exit = loop {
        if let Some(status) = qemu.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "qemu still running 60 s after {}; serial log:\n{}",
            case.command,
            qemu.serial_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "{}: {} to qemu exit: {:.1} s ({exit})",
        case.name,
        case.command,
        asked.elapsed().as_secs_f64()
    );
    assert!(exit.success(), "qemu (under timeout) ended with {exit}");
    let log = qemu.serial_log();
    assert!(
        log.contains(case.ramdisk_says),
        "no {:?} in:\n{log}",
        case.ramdisk_says
    );
    assert!(
        log.contains(case.kernel_says),
        "no {:?} in:\n{log}",
        case.kernel_says
    );
    api.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ramdisk_boots_looks_up_and_shuts_the_machine_down() {
    let Some(agent) = static_agent() else {
        return skip("no static agent (FERRIC_STATIC_AGENT or target/x86_64-unknown-linux-gnu/release/ferric-agent)");
    };
    for tool in ["qemu-system-x86_64", "timeout", "apt-get", "dpkg-deb"] {
        if !have(tool) {
            return skip(&format!("no {tool}"));
        }
    }
    let temp = tempfile::tempdir().unwrap();
    let out = std::env::var_os("FERRIC_RAMDISK_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let built = build_ramdisk(&agent, &out);
    assert!(
        built.kernel_size + built.initramfs_size <= 40 << 20,
        "over 40 MiB"
    );
    for module in ramdisk::REQUIRED_MODULES {
        assert!(
            built.boot_modules.iter().any(|m| m == module),
            "{module} not loaded at boot"
        );
    }

    let bios = Case {
        name: "bios-poweroff",
        bootif: format!("01-{}", BOOT_MAC.replace(':', "-")),
        uefi: false,
        command: "standby.power_off",
        kernel_says: "reboot: Power down",
        ramdisk_says: "ferric-ramdisk: poweroff now",
    };
    boot(&bios, &built, &out).await;

    if !Path::new(OVMF_CODE).is_file() || !Path::new(OVMF_VARS).is_file() {
        return skip("no OVMF for the UEFI boot");
    }
    let uefi = Case {
        name: "uefi-reboot",
        bootif: BOOT_MAC.to_uppercase(),
        uefi: true,
        command: "standby.run_image",
        kernel_says: "reboot: Restarting system",
        ramdisk_says: "ferric-ramdisk: reboot now",
    };
    boot(&uefi, &built, &out).await;
}
