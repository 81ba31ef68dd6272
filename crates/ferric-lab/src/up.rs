//! `ferric lab up` and `ferric lab down`: a lab of qemu VMs on a bridge in
//! a network namespace of its own, each VM with a virtual BMC (IPMI on its
//! own port, Redfish shared), run by a `ferric lab bmc` inside the
//! namespace. Everything the lab makes lives in its directory and its
//! namespace, so `down` removes it all, also after a crash: the BMC, the
//! VMs (by their pid files), the namespace (with its bridge and taps) and
//! the directory.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// `ferric lab up` flags: a stable interface scripts use.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// How many VMs.
    #[arg(long, default_value_t = 1)]
    pub vms: usize,
    /// The lab's directory (machines file, state, disks, logs).
    #[arg(long, default_value = "/var/tmp/ferric-lab")]
    pub dir: PathBuf,
    /// The network namespace.
    #[arg(long, default_value = "ferric-lab")]
    pub netns: String,
    /// The first three octets of the lab's /24; the bridge is .1.
    #[arg(long, default_value = "10.77.0")]
    pub subnet: String,
    /// Memory of each VM, MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_mib: u64,
    /// Size of each VM's disk (sparse raw file).
    #[arg(long, default_value = "4G")]
    pub disk_size: String,
    /// Boot the VMs with UEFI (OVMF) rather than BIOS (SeaBIOS).
    #[arg(long)]
    pub uefi: bool,
    /// qemu's accelerator: TCG by default (it works everywhere); `auto` uses
    /// KVM if a probe VM gets through its firmware and iPXE with it.
    #[arg(long, default_value = "tcg", value_parser = ["auto", "kvm", "tcg"])]
    pub accel: String,
    /// The deploy kernel to put in the printed enrolment.
    #[arg(long)]
    pub deploy_kernel: Option<String>,
    /// The deploy ramdisk to put in the printed enrolment.
    #[arg(long)]
    pub deploy_ramdisk: Option<String>,
}

/// `ferric lab down` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DownArgs {
    /// The lab's directory.
    #[arg(long, default_value = "/var/tmp/ferric-lab")]
    pub dir: PathBuf,
    /// The network namespace to remove when the directory holds no record
    /// (a lab's record names its own).
    #[arg(long)]
    pub netns: Option<String>,
}

/// A lab that could not be brought up or down.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    #[error("{0}")]
    Invalid(String),
    #[error("{command}: {message}")]
    Command { command: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the lab's BMC did not start: {0}")]
    BmcStart(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> UpError + '_ {
    move |source| UpError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `up` made, kept in `DIR/lab.json` for `down` and for scripts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRecord {
    pub netns: String,
    pub bridge: String,
    /// The bridge's address: where the lab's server listens.
    pub host_ip: Ipv4Addr,
    pub bmc_pid: u32,
    pub redfish_url: String,
    /// The VMs' accelerator: `kvm` or `tcg`.
    #[serde(default)]
    pub accel: String,
    /// Where a DHCP server may hand out addresses.
    pub dhcp_range: (Ipv4Addr, Ipv4Addr),
    pub vms: Vec<VmRecord>,
}

/// One VM of the lab and how to enrol it.
#[derive(Clone, Serialize, Deserialize)]
pub struct VmRecord {
    pub name: String,
    pub mac: String,
    pub uuid: String,
    pub ipmi_address: Ipv4Addr,
    pub ipmi_port: u16,
    pub username: String,
    pub password: String,
    pub serial_log: PathBuf,
    pub disk: PathBuf,
}

/// Printed without the password.
impl std::fmt::Debug for VmRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmRecord")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field(
                "ipmi",
                &format_args!("{}:{}", self.ipmi_address, self.ipmi_port),
            )
            .field("username", &self.username)
            .field("password", &"***")
            .finish_non_exhaustive()
    }
}

const BRIDGE: &str = "br0";
const REDFISH_PORT: u16 = 8000;
const IPMI_BASE_PORT: u16 = 6230;

/// Brings the lab up; the BMC keeps running in the background. The
/// record (`DIR/lab.json`) is written before anything is made and again
/// once the BMC runs, so `down` finds whatever a failed or interrupted `up`
/// left; an error removes what was made.
pub fn up(args: &UpArgs) -> Result<LabRecord, UpError> {
    check_up_args(args)?;
    let host_ip = subnet_host(&args.subnet, 1)?;
    let dhcp_range = (
        subnet_host(&args.subnet, 100)?,
        subnet_host(&args.subnet, 199)?,
    );
    if args.dir.join("lab.json").exists() {
        return Err(UpError::Invalid(format!(
            "a lab is already up in {} (ferric lab down --dir {} first)",
            args.dir.display(),
            args.dir.display()
        )));
    }
    let state_dir = args.dir.join("state");
    make_private_dir(&args.dir)?;
    make_private_dir(&state_dir)?;
    let mut record = LabRecord {
        netns: args.netns.clone(),
        bridge: BRIDGE.into(),
        host_ip,
        bmc_pid: 0,
        redfish_url: format!("http://{host_ip}:{REDFISH_PORT}"),
        accel: resolve_accel(&args.accel),
        dhcp_range,
        vms: vm_records(args, host_ip),
    };
    write_record(&args.dir, &record)?;
    let made = (|| {
        make_network(&args.netns, host_ip, args.vms)?;
        let machines = args.dir.join("machines.toml");
        let text = machines_file(args, host_ip, &record.vms, &record.accel);
        write_private(&machines, text.as_bytes())?;
        start_bmc(args, &machines, &state_dir, host_ip, &mut record)
    })();
    if let Err(e) = made {
        let _ = down(&DownArgs {
            dir: args.dir.clone(),
            netns: Some(args.netns.clone()),
        });
        return Err(e);
    }
    Ok(record)
}

fn write_record(dir: &Path, record: &LabRecord) -> Result<(), UpError> {
    let json = serde_json::to_vec_pretty(record).unwrap_or_default();
    write_private(&dir.join("lab.json"), &json)
}

/// A directory only its owner can read (it holds the BMC password).
fn make_private_dir(dir: &Path) -> Result<(), UpError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Writes a file only its owner can read (it holds the BMC password).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), UpError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(bytes).map_err(io_error(path))
}

fn check_up_args(args: &UpArgs) -> Result<(), UpError> {
    if args.vms == 0 || args.vms > 32 {
        return Err(UpError::Invalid("--vms must be 1 to 32".into()));
    }
    let netns_ok = !args.netns.is_empty()
        && args.netns.len() <= 32
        && args
            .netns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !netns_ok {
        return Err(UpError::Invalid(
            "--netns must be 1 to 32 of a-z, 0-9, '-', '_'".into(),
        ));
    }
    Ok(())
}

/// `A.B.C` and a host number: `A.B.C.host`.
fn subnet_host(subnet: &str, host: u8) -> Result<Ipv4Addr, UpError> {
    format!("{subnet}.{host}").parse().map_err(|_| {
        UpError::Invalid(format!(
            "--subnet {subnet:?} is not three octets like 10.77.0"
        ))
    })
}

/// The namespace, its loopback, the bridge with the host address and one
/// tap per VM.
fn make_network(netns: &str, host_ip: Ipv4Addr, vms: usize) -> Result<(), UpError> {
    ip(&["netns", "add", netns])?;
    let made = (|| {
        ip(&["-n", netns, "link", "set", "lo", "up"])?;
        ip(&["-n", netns, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{host_ip}/24"),
            "dev",
            BRIDGE,
        ])?;
        ip(&["-n", netns, "link", "set", BRIDGE, "up"])?;
        for index in 0..vms {
            let tap = tap_name(index);
            ip(&["-n", netns, "tuntap", "add", "dev", &tap, "mode", "tap"])?;
            ip(&["-n", netns, "link", "set", &tap, "master", BRIDGE, "up"])?;
        }
        Ok(())
    })();
    if made.is_err() {
        let _ = remove_netns(netns);
    }
    made
}

fn tap_name(index: usize) -> String {
    format!("tap{index}")
}

fn ip(args: &[&str]) -> Result<(), UpError> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| UpError::Command {
            command: format!("ip {}", args.join(" ")),
            message: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(UpError::Command {
        command: format!("ip {}", args.join(" ")),
        message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

fn vm_records(args: &UpArgs, host_ip: Ipv4Addr) -> Vec<VmRecord> {
    let password = random_password();
    (0..args.vms)
        .map(|index| {
            let name = format!("vm{index}");
            VmRecord {
                mac: format!("52:54:00:77:00:{index:02x}"),
                uuid: crate::machine::stable_uuid(&name).to_string(),
                ipmi_address: host_ip,
                ipmi_port: IPMI_BASE_PORT + index as u16,
                username: "admin".into(),
                password: password.clone(),
                serial_log: args.dir.join("state").join(format!("{name}.serial.log")),
                disk: args.dir.join(format!("{name}.disk")),
                name,
            }
        })
        .collect()
}

fn random_password() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..16)
        .map(|_| char::from(b"abcdefghijkmnpqrstuvwxyz23456789"[rng.random_range(0..32)]))
        .collect()
}

/// The machines file of the lab's BMC.
fn machines_file(args: &UpArgs, host_ip: Ipv4Addr, vms: &[VmRecord], accel: &str) -> String {
    let mut text = format!("api_url = \"http://{host_ip}:6385\"\n");
    let mode = if args.uefi { "uefi" } else { "legacy" };
    for (index, vm) in vms.iter().enumerate() {
        text.push_str(&format!(
            "\n[[machine]]\nname = \"{}\"\nmac = \"{}\"\ndisk = {:?}\ndisk_size = {:?}\n\
             ipmi_listen = \"{}:{}\"\nusername = \"{}\"\npassword = \"{}\"\nboot_order = [\"disk\", \"pxe\"]\n\
             [machine.vm]\ntap = \"{}\"\nmemory_mib = {}\nboot_mode = \"{mode}\"\naccel = \"{accel}\"\n",
            vm.name,
            vm.mac,
            vm.disk.display().to_string(),
            args.disk_size,
            vm.ipmi_address,
            vm.ipmi_port,
            vm.username,
            vm.password,
            tap_name(index),
            args.memory_mib,
        ));
    }
    text
}

/// `kvm` or `tcg`; `auto` is `kvm` only if a probe VM runs its firmware and
/// the NIC's iPXE ROM with KVM (a /dev/kvm can be there and fail at the
/// first vCPU, or later, in real-mode code KVM cannot emulate).
fn resolve_accel(wanted: &str) -> String {
    match wanted {
        "kvm" => "kvm".into(),
        "auto" if kvm_usable() => "kvm".into(),
        _ => "tcg".into(),
    }
}

/// How long the probe VM may take to reach iPXE's prompt, and how long it
/// must then keep running.
const KVM_PROBE_PROMPT: Duration = Duration::from_secs(15);
const KVM_PROBE_AFTER: Duration = Duration::from_secs(4);

/// Boots a VM as the lab's are (q35, SeaBIOS with its serial console, a
/// virtio NIC with Debian's iPXE ROM, on a restricted user network: nothing
/// leaves it) with KVM: usable if iPXE reaches its prompt in time and the VM
/// still runs a few seconds later. Seen here: KVM that starts a VM but stalls
/// in iPXE's real-mode code, or stops with an emulation failure after it.
fn kvm_usable() -> bool {
    let openable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let rom = Path::new("/usr/lib/ipxe/qemu/pxe-virtio.rom");
    if !openable || !rom.exists() {
        return false;
    }
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let (serial, sercon) = (dir.path().join("serial"), dir.path().join("sercon"));
    if std::fs::write(&sercon, 0x3f8u16.to_le_bytes()).is_err() {
        return false;
    }
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "kvm", "-machine", "q35", "-cpu", "max", "-m", "256",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
            "stdio",
            "-boot",
            "n",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-fw_cfg")
        .arg(format!("name=etc/sercon-port,file={}", sercon.display()))
        .args(["-netdev", "user,id=probe,restrict=on", "-device"])
        .arg(format!(
            "virtio-net-pci,disable-legacy=on,netdev=probe,romfile={}",
            rom.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    let prompted = wait_for_text(
        &serial,
        "Press Ctrl-B for the iPXE command line",
        KVM_PROBE_PROMPT,
    );
    if prompted {
        std::thread::sleep(KVM_PROBE_AFTER);
    }
    let running = prompted && qmp_says_running(&mut child);
    let _ = child.kill();
    let _ = child.wait();
    running
}

fn wait_for_text(path: &Path, text: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let seen = std::fs::read(path).unwrap_or_default();
        if String::from_utf8_lossy(&seen).contains(text) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Asks the probe's QMP for its status and quits it; true if it was running.
fn qmp_says_running(child: &mut std::process::Child) -> bool {
    use std::io::{Read, Write};
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(
            b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"query-status\"}\n{\"execute\": \"quit\"}\n",
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        if matches!(child.try_wait(), Ok(Some(_))) {
            let _ = out.read_to_string(&mut said);
        }
    }
    said.contains("\"status\": \"running\"")
}

/// Starts `ferric lab bmc` in the namespace, in its own session, and waits
/// until it serves (its log says so) or fails.
fn start_bmc(
    args: &UpArgs,
    machines: &Path,
    state_dir: &Path,
    host_ip: Ipv4Addr,
    record: &mut LabRecord,
) -> Result<(), UpError> {
    let exe = std::env::current_exe().map_err(io_error(Path::new("/proc/self/exe")))?;
    let log_path = args.dir.join("bmc.log");
    let log = std::fs::File::create(&log_path).map_err(io_error(&log_path))?;
    let log_err = log.try_clone().map_err(io_error(&log_path))?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new("ip")
            .args(["netns", "exec", &args.netns])
            .arg(&exe)
            .args(["lab", "bmc", "--machines"])
            .arg(machines)
            .arg("--state-dir")
            .arg(state_dir)
            .args(["--redfish-listen", &format!("{host_ip}:{REDFISH_PORT}")])
            // Readiness is read from its log.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| UpError::BmcStart(e.to_string()))?
    };
    record.bmc_pid = child.id();
    write_record(&args.dir, record)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("serving Redfish") && text.matches("serving IPMI").count() >= args.vms {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(UpError::BmcStart(format!(
                "it exited ({status}): {}",
                tail(&text)
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return Err(UpError::BmcStart(format!(
                "not serving after 20 s: {}",
                tail(&text)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// The commands that enrol the lab's VMs with the openstack CLI, run in
/// the lab's namespace.
pub fn enrolment(record: &LabRecord, driver: &str, kernel: &str, ramdisk: &str) -> Vec<String> {
    let exec = format!("ip netns exec {}", sh_quote(&record.netns));
    let info =
        |key: &str, value: &str| format!("--driver-info {}", sh_quote(&format!("{key}={value}")));
    let mut lines = Vec::new();
    for vm in &record.vms {
        let system = format!("/redfish/v1/Systems/{}", vm.name);
        let port = vm.ipmi_port.to_string();
        let address = vm.ipmi_address.to_string();
        let fields: [(&str, &str); 4] = match driver {
            "redfish" => [
                ("redfish_address", &record.redfish_url),
                ("redfish_system_id", &system),
                ("redfish_username", &vm.username),
                ("redfish_password", &vm.password),
            ],
            _ => [
                ("ipmi_address", &address),
                ("ipmi_port", &port),
                ("ipmi_username", &vm.username),
                ("ipmi_password", &vm.password),
            ],
        };
        let mut bmc: Vec<String> = fields.iter().map(|(k, v)| info(k, v)).collect();
        bmc.push(info("deploy_kernel", kernel));
        bmc.push(info("deploy_ramdisk", ramdisk));
        let driver = if driver == "redfish" {
            "redfish"
        } else {
            "ipmi"
        };
        lines.push(format!(
            "{exec} openstack baremetal node create --name {} --driver {driver} {}",
            vm.name,
            bmc.join(" ")
        ));
        lines.push(format!(
            "{exec} openstack baremetal port create {} --node \"$({exec} openstack baremetal node show {} -f value -c uuid)\"",
            vm.mac, vm.name
        ));
    }
    lines
}

/// `'text'` for a POSIX shell.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Removes the lab: the BMC, every VM it started (by pid file), every
/// other process left in its namespace, the namespace (with its bridge and
/// taps), and the files `up` wrote (the directory too, if nothing else is
/// in it). Without a record in the directory, only `--netns` is removed.
/// Succeeds when nothing is left.
pub fn down(args: &DownArgs) -> Result<Vec<String>, UpError> {
    let mut done = Vec::new();
    let record = read_record(&args.dir);
    let netns = record
        .as_ref()
        .map(|r| r.netns.clone())
        .or_else(|| args.netns.clone());
    let machines = args.dir.join("machines.toml").display().to_string();
    if let Some(record) = &record {
        if stop_process(record.bmc_pid, &machines, Duration::from_secs(15)) {
            done.push(format!("stopped the BMC (pid {})", record.bmc_pid));
        }
    }
    let state_dir = args.dir.join("state");
    for (pid, qmp) in vm_pids(&state_dir) {
        if stop_process(pid, &qmp, Duration::from_secs(5)) {
            done.push(format!("stopped a VM's qemu (pid {pid})"));
        }
    }
    if let Some(netns) = netns.filter(|n| netns_exists(n)) {
        for pid in netns_pids(&netns) {
            if stop_process(pid, "", Duration::from_secs(5)) {
                done.push(format!("stopped pid {pid}, left in the namespace {netns}"));
            }
        }
        remove_netns(&netns)?;
        done.push(format!("removed the network namespace {netns}"));
    }
    if let Some(record) = &record {
        remove_lab_files(&args.dir, record)?;
        done.push(format!("removed the lab's files in {}", args.dir.display()));
    }
    Ok(done)
}

/// The files `up` and the BMC wrote, then the directory if it is empty.
fn remove_lab_files(dir: &Path, record: &LabRecord) -> Result<(), UpError> {
    let state = dir.join("state");
    if state.exists() {
        std::fs::remove_dir_all(&state).map_err(io_error(&state))?;
    }
    let mut files: Vec<PathBuf> = record.vms.iter().map(|vm| vm.disk.clone()).collect();
    for name in [
        "machines.toml",
        "bmc.log",
        "enrol-ipmi.sh",
        "enrol-redfish.sh",
        "lab.json",
    ] {
        files.push(dir.join(name));
    }
    for file in files {
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(&file)(e));
            }
            _ => {}
        }
    }
    // Not empty: something else lives there, and stays.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// The processes in a network namespace.
fn netns_pids(netns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                // A caller inside the namespace (`ferric lab demo`) stays.
                .filter(|pid| *pid != std::process::id())
                .collect()
        })
        .unwrap_or_default()
}

fn read_record(dir: &Path) -> Option<LabRecord> {
    let text = std::fs::read(dir.join("lab.json")).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The pids in the state directory's `*.pid` files (qemu's `-pidfile`),
/// each with its VM's QMP socket path, which that qemu's command line holds.
fn vm_pids(state_dir: &Path) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .filter_map(|p| {
            let pid = std::fs::read_to_string(&p).ok()?.trim().parse().ok()?;
            Some((pid, p.with_extension("qmp").display().to_string()))
        })
        .collect()
}

/// SIGTERM, then SIGKILL after `grace`, to a process whose command line
/// still contains `marker` (a path of this lab's, so a pid that was reused
/// is left alone). Whether it was running.
fn stop_process(pid: u32, marker: &str, grace: Duration) -> bool {
    let is_ours = || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
    };
    let Some(handle) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    if !is_ours() {
        return false;
    }
    let _ = rustix::process::kill_process(handle, rustix::process::Signal::TERM);
    let deadline = Instant::now() + grace;
    while is_ours() && !is_zombie(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if is_ours() && !is_zombie(pid) {
        let _ = rustix::process::kill_process(handle, rustix::process::Signal::KILL);
    }
    true
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Moves the calling thread into the lab's network namespace: its sockets,
/// and the processes it starts, are on the lab's network from then on.
pub fn enter_netns(netns: &str) -> Result<(), UpError> {
    let path = Path::new("/run/netns").join(netns);
    let file = std::fs::File::open(&path).map_err(io_error(&path))?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&file),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| UpError::Command {
        command: format!("setns({})", path.display()),
        message: e.to_string(),
    })
}

fn netns_exists(netns: &str) -> bool {
    Path::new("/run/netns").join(netns).exists()
}

fn remove_netns(netns: &str) -> Result<(), UpError> {
    ip(&["netns", "del", netns])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> UpArgs {
        UpArgs {
            vms: 2,
            dir: PathBuf::from("/var/tmp/lab-t"),
            netns: "lab-t".into(),
            subnet: "10.77.0".into(),
            memory_mib: 512,
            disk_size: "4G".into(),
            uefi: true,
            accel: "tcg".into(),
            deploy_kernel: None,
            deploy_ramdisk: None,
        }
    }

    #[test]
    fn the_machines_file_parses_and_has_one_vm_per_tap() {
        let a = args();
        let host = subnet_host(&a.subnet, 1).unwrap();
        let vms = vm_records(&a, host);
        let text = machines_file(&a, host, &vms, "tcg");
        let file = crate::config::parse(&text).unwrap();
        assert_eq!(file.machines.len(), 2);
        let vm1 = file.machines[1].vm.as_ref().unwrap();
        assert_eq!(vm1.tap, "tap1");
        assert_eq!(vm1.boot_mode, Some(crate::machine::BootMode::Uefi));
        assert_eq!(file.machines[1].ipmi_listen.unwrap().port(), 6231);
        assert_eq!(file.machines[0].disk_size, 4 << 30);
    }

    #[test]
    fn bad_arguments_are_refused() {
        let mut a = args();
        a.vms = 0;
        assert!(check_up_args(&a).is_err());
        let mut a = args();
        a.netns = "bad/name".into();
        assert!(check_up_args(&a).is_err());
        assert!(subnet_host("10.77", 1).is_err());
        assert!(subnet_host("10.77.300", 1).is_err());
    }

    #[test]
    fn the_enrolment_names_the_driver_and_the_ramdisk() {
        let a = args();
        let host = subnet_host(&a.subnet, 1).unwrap();
        let record = LabRecord {
            netns: a.netns.clone(),
            bridge: BRIDGE.into(),
            host_ip: host,
            bmc_pid: 1,
            redfish_url: format!("http://{host}:8000"),
            accel: "tcg".into(),
            dhcp_range: (host, host),
            vms: vm_records(&a, host),
        };
        let lines = enrolment(&record, "redfish", "file:///k", "file:///r");
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(
            "ip netns exec 'lab-t' openstack baremetal node create --name vm0 --driver redfish"
        ));
        assert!(lines[0].contains("'redfish_system_id=/redfish/v1/Systems/vm0' "));
        assert!(lines[0].contains("'deploy_ramdisk=file:///r'"));
        assert!(!format!("{:?}", record.vms[0]).contains(&record.vms[0].password));
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert!(lines[1].contains(
            "port create 52:54:00:77:00:00 --node \"$(ip netns exec 'lab-t' openstack baremetal node show vm0 -f value -c uuid)\""
        ));
    }
}
