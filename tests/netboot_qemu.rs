//! A real machine network-boots through `ferric serve`: a qemu VM (TCG, no
//! KVM) on a bridge in a network namespace this test creates and always
//! removes gets its address and boot file from Ferric's DHCP, the node's
//! iPXE script and the deploy kernel and ramdisk from Ferric's HTTP boot
//! server, and boots them. The "deploy ramdisk" is a tiny initramfs that
//! prints a marker line with the kernel command line to the serial console
//! and powers off (`scripts/netboot-test-assets` builds it and Debian's
//! cloud kernel; the test runs it when they are missing).
//!
//! Which path the VM takes: qemu's NIC option ROMs (`/usr/lib/ipxe/qemu`)
//! are iPXE already, so with them (the BIOS and UEFI tests) the first DHCP
//! request comes from iPXE, Ferric tags it `ipxe` and answers with the
//! node's script URL at once: no TFTP loader is chainloaded. Only OVMF's
//! own PXE client, on a NIC without an option ROM (the third test), asks
//! as a plain PXE client and chainloads `snponly.efi` over TFTP, which
//! then asks again as iPXE. Each test prints the path it saw
//! (`boot path: ...`) and checks it is the expected one.
//!
//! Needs root, `ip`, `curl`, `qemu-system-x86_64`, Debian's `ipxe-qemu` ROMs (and
//! OVMF for UEFI) and the assets; without them it says why and passes,
//! unless `FERRIC_REQUIRE_PEERS=1`. `FERRIC_NETBOOT_ASSETS` overrides the
//! assets' directory (default `target/netboot-assets`);
//! `FERRIC_QEMU_PCAP_DIR=DIR` keeps each VM's packets in `DIR/NAME.pcap`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SERVER_IP: &str = "10.95.0.1";
const MARKER: &str = "FERRIC-NETBOOT-MARKER cmdline:";
/// TCG boots in tens of seconds (20-30 s here, of which about 13 s is
/// iPXE's IPv6 autoconfiguration soliciting a router that is not there);
/// this bounds the whole VM boot.
const BOOT_WAIT: Duration = Duration::from_secs(240);
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// One VM at a time per test process: TCG on a 2-core machine is slow
/// enough without two guests competing.
static ONE_VM: Mutex<()> = Mutex::new(());

/// How the VM boots from the network.
#[derive(Clone, Copy, Debug)]
enum Firmware {
    /// SeaBIOS with qemu's iPXE ROM on the NIC.
    Bios,
    /// OVMF with qemu's iPXE ROM (its EFI driver) on the NIC.
    Uefi,
    /// OVMF's own PXE client (its virtio-net driver, no option ROM): the
    /// one real chainloading case here, TFTP `snponly.efi` then iPXE.
    UefiFirmwarePxe,
}

impl Firmware {
    fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
            Firmware::UefiFirmwarePxe => "uefi-pxe",
        }
    }

    fn boot_mode(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi | Firmware::UefiFirmwarePxe => "uefi",
        }
    }

    fn mac(self) -> &'static str {
        match self {
            Firmware::Bios => "52:54:00:95:00:01",
            Firmware::Uefi => "52:54:00:95:00:02",
            Firmware::UefiFirmwarePxe => "52:54:00:95:00:03",
        }
    }

    /// qemu's iPXE ROM for virtio-net (the `efi-` one holds both images);
    /// empty for none.
    fn rom(self) -> &'static str {
        match self {
            Firmware::Bios => "/usr/lib/ipxe/qemu/pxe-virtio.rom",
            Firmware::Uefi => "/usr/lib/ipxe/qemu/efi-virtio.rom",
            Firmware::UefiFirmwarePxe => "",
        }
    }

    fn uefi(self) -> bool {
        self.boot_mode() == "uefi"
    }

    /// The loader Ferric offers to a non-iPXE PXE client of this kind.
    fn loader(self) -> &'static str {
        if self.uefi() {
            "snponly.efi"
        } else {
            "undionly.kpxe"
        }
    }

    fn needed_files(self) -> Vec<&'static str> {
        let mut files = vec![];
        if !self.rom().is_empty() {
            files.push(self.rom());
        }
        if self.uefi() {
            files.extend([OVMF_CODE, OVMF_VARS]);
        }
        if let Firmware::UefiFirmwarePxe = self {
            files.push("/usr/lib/ipxe/snponly.efi");
        }
        files
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn have(tool: &str) -> bool {
    ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file())
}

struct Assets {
    kernel: PathBuf,
    ramdisk: PathBuf,
}

/// The kernel and initramfs, built by the assets script when missing.
fn assets() -> Result<Assets, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("FERRIC_NETBOOT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/netboot-assets"));
    let found = Assets {
        kernel: dir.join("vmlinuz"),
        ramdisk: dir.join("initramfs.gz"),
    };
    if found.kernel.is_file() && found.ramdisk.is_file() {
        return Ok(found);
    }
    let out = Command::new(root.join("scripts/netboot-test-assets"))
        .arg(&dir)
        .output()
        .map_err(|e| format!("assets (cannot run scripts/netboot-test-assets: {e})"))?;
    if !out.status.success() {
        return Err(format!(
            "assets (scripts/netboot-test-assets failed: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(found)
}

/// What the test needs, or why it is skipped (a failure with
/// `FERRIC_REQUIRE_PEERS=1`).
fn ready(firmware: Firmware) -> Option<Assets> {
    let mut missing: Vec<String> = ["ip", "curl", "qemu-system-x86_64"]
        .into_iter()
        .filter(|t| !have(t))
        .map(String::from)
        .collect();
    missing.extend(
        firmware
            .needed_files()
            .into_iter()
            .filter(|f| !Path::new(f).is_file())
            .map(String::from),
    );
    if !is_root() {
        missing.push("root".into());
    }
    let assets = if missing.is_empty() {
        assets().map_err(|why| missing.push(why)).ok()
    } else {
        None
    };
    if missing.is_empty() {
        return assets;
    }
    let reason = format!(
        "netboot_qemu[{}]: skipped, missing {}",
        firmware.name(),
        missing.join(", ")
    );
    assert!(
        std::env::var("FERRIC_REQUIRE_PEERS").as_deref() != Ok("1"),
        "{reason} (FERRIC_REQUIRE_PEERS=1)"
    );
    eprintln!("{reason}");
    None
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("spawn");
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh(args: &[&str]) -> String {
    run(Command::new(args[0]).args(&args[1..]))
}

/// A namespace with the provisioning network: bridge `br0` holding the
/// server's address and the VM's tap device `tap0`; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(firmware: Firmware) -> Netns {
        let ns = Netns {
            name: format!("ferric-qemu-{}-{}", firmware.name(), std::process::id()),
        };
        sh(&["ip", "netns", "add", &ns.name]);
        ns.ip("link add br0 type bridge forward_delay 0");
        ns.ip("tuntap add tap0 mode tap");
        ns.ip("link set tap0 master br0");
        ns.ip(&format!("addr add {SERVER_IP}/24 dev br0"));
        for dev in ["lo", "br0", "tap0"] {
            ns.ip(&format!("link set {dev} up"));
        }
        ns
    }

    /// `ip -n NAMESPACE` with these words.
    fn ip(&self, words: &str) {
        let mut args = vec!["ip", "-n", &self.name];
        args.extend(words.split_whitespace());
        sh(&args);
    }

    /// `args` run inside the namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }

    fn exec(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed on drop (the server, the VM).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ferric serve` in the namespace with DHCP on the bridge, TFTP and HTTP
/// boot on the server's address, and the API on the namespace's loopback.
fn serve(ns: &Netns, dir: &Path) -> Killed {
    let config = dir.join("ferric.toml");
    // console=ttyS0: the marker must reach the serial log; panic=-1 with
    // qemu's -no-reboot ends a VM whose kernel panics at once.
    std::fs::write(
        &config,
        "[pxe]\nkernel_append_params = \"console=ttyS0 panic=-1\"\n",
    )
    .expect("config");
    let ferric = env!("CARGO_BIN_EXE_ferric");
    let mut command = ns.command(&[ferric, "serve", "--listen", "127.0.0.1:6385"]);
    command
        // Where the agent calls back: on the provisioning network.
        .args(["--agent-listen", "10.95.0.1:6385"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args([
            "--dhcp-interface",
            "br0",
            "--dhcp-range",
            "10.95.0.100,10.95.0.150",
        ])
        .args(["--tftp-listen", &format!("{SERVER_IP}:69")])
        .args(["--http-listen", &format!("{SERVER_IP}:8080")])
        .env("FERRIC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = command.spawn().expect("ferric serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Killed(child);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // Drains the server's output (its log goes to stdout) for the whole
    // test, so that it never writes into a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ferric listening on") {
                let _ = ready_tx.send(());
            }
            eprintln!("serve: {line}");
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("ferric serve did not start");
    server
}

fn api(ns: &Netns, method: &str, path: &str, body: Option<Value>) -> Value {
    let url = format!("http://127.0.0.1:6385{path}");
    let mut args = vec![
        "curl",
        "-sf",
        "-X",
        method,
        "-H",
        "X-OpenStack-Ironic-API-Version: 1.115",
        "-H",
        "Content-Type: application/json",
    ];
    let text = body.map(|b| b.to_string());
    if let Some(text) = &text {
        args.extend(["-d", text.as_str()]);
    }
    args.push(&url);
    let out = ns.exec(&args);
    if out.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out).expect("json")
    }
}

fn wait_state(ns: &Netns, node: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = api(ns, "GET", &format!("/v1/nodes/{node}"), None);
        if n["provision_state"] == state && n["reservation"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "stuck: {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Enrols the VM as a fake-hardware node booting with iPXE, and starts
/// cleaning: at `clean wait` its DHCP options and iPXE script are in place.
/// Fake power does not start the VM; the test does.
fn enrol(ns: &Netns, firmware: Firmware, assets: &Assets) -> String {
    let node = api(
        ns,
        "POST",
        "/v1/nodes",
        Some(json!({
            "name": format!("qemu-{}", firmware.name()),
            "driver": "fake-hardware", "boot_interface": "ipxe", "deploy_interface": "direct",
            "power_interface": "fake", "management_interface": "fake",
            "properties": {"capabilities": format!("boot_mode:{}", firmware.boot_mode())},
            "driver_info": {"deploy_kernel": assets.kernel.display().to_string(),
                            "deploy_ramdisk": assets.ramdisk.display().to_string()},
        })),
    );
    let uuid = node["uuid"].as_str().expect("uuid").to_owned();
    api(
        ns,
        "POST",
        "/v1/ports",
        Some(json!({"address": firmware.mac(), "node_uuid": uuid})),
    );
    for (verb, state) in [("manage", "manageable"), ("provide", "clean wait")] {
        api(
            ns,
            "PUT",
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(json!({"target": verb})),
        );
        wait_state(ns, &uuid, state);
    }
    uuid
}

struct Vm {
    process: Killed,
    serial: PathBuf,
}

impl Vm {
    /// The VM on `tap0`, network boot first, serial console into a file.
    fn start(ns: &Netns, firmware: Firmware, dir: &Path) -> Vm {
        let serial = dir.join("serial.log");
        // disable-legacy=on: on q35's root bus virtio-net-pci is otherwise
        // transitional (1af4:1000), while Debian's ROMs say 1af4:1041, and
        // qemu patches the IDs only of its default ROM: SeaBIOS would skip
        // a ROM given with romfile= and find no bootable device.
        let mut nic = format!(
            "virtio-net-pci,disable-legacy=on,netdev=n0,mac={},bootindex=1",
            firmware.mac()
        );
        // romfile= with nothing leaves the NIC without an option ROM.
        nic.push_str(&format!(",romfile={}", firmware.rom()));
        let mut command = ns.command(&["qemu-system-x86_64"]);
        command
            // TCG: /dev/kvm may be missing or unusable (it is on the
            // machine this was written on), and the result must not depend
            // on it.
            .args("-accel tcg -machine q35 -m 256 -nographic -monitor none".split(' '))
            .args("-no-reboot -boot n".split(' '))
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"])
            .args(["-device", &nic]);
        // For debugging a boot: the VM's packets, as qemu sees them.
        if let Some(pcaps) = std::env::var_os("FERRIC_QEMU_PCAP_DIR") {
            let file = Path::new(&pcaps).join(format!("{}.pcap", firmware.name()));
            command.arg("-object").arg(format!(
                "filter-dump,id=dump0,netdev=n0,file={}",
                file.display()
            ));
        }
        if firmware.uefi() {
            let vars = dir.join("OVMF_VARS_4M.fd");
            std::fs::copy(OVMF_VARS, &vars).expect("copy OVMF vars");
            command
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"))
                .arg("-drive")
                .arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu");
        Vm {
            process: Killed(child),
            serial,
        }
    }

    fn serial_text(&self) -> String {
        std::fs::read(&self.serial)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The marker line, or why there is none: the VM stopped, or time ran
    /// out.
    fn wait_for_marker(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + BOOT_WAIT;
        loop {
            let text = self.serial_text();
            if let Some(line) = text.lines().find(|l| l.starts_with(MARKER)) {
                return Ok(line.trim_end().to_owned());
            }
            if let Ok(Some(status)) = self.process.0.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.process.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                return Err(format!(
                    "qemu exited ({status}) without the marker: {stderr}"
                ));
            }
            if text.contains("No bootable device") {
                return Err("the firmware gave up: \"No bootable device\"".into());
            }
            if Instant::now() > deadline {
                return Err(format!("no marker after {BOOT_WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Whether the guest powered itself off within `wait`.
    fn powers_off_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.0.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// The last lines of the serial log, without the firmware's terminal
    /// escapes and spinner backspaces.
    fn serial_tail(&self, lines: usize) -> String {
        let text = readable(&self.serial_text());
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// `text` without ANSI escape sequences and backspaces, carriage returns
/// as line ends.
fn readable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\u{8}' => {
                out.pop();
            }
            '\r' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

fn boot_trace(ns: &Netns, mac: &str) -> String {
    let ferric = env!("CARGO_BIN_EXE_ferric");
    let out = ns
        .command(&[
            ferric,
            "boot",
            "trace",
            mac,
            "--url",
            "http://127.0.0.1:6385",
        ])
        .output();
    match out {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("cannot run ferric boot trace: {e}"),
    }
}

/// What the failure message carries, so that it says where the boot
/// stopped.
fn evidence(vm: &Vm, ns: &Netns, mac: &str) -> String {
    format!(
        "\n--- serial log, last lines ---\n{}\n--- ferric boot trace {mac} ---\n{}",
        vm.serial_tail(60),
        boot_trace(ns, mac)
    )
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("asset").len()
}

fn boots_through_ferric(firmware: Firmware) {
    let Some(assets) = ready(firmware) else {
        return;
    };
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let ns = Netns::new(firmware);
    let dir = tempfile::tempdir().expect("dir");
    let _server = serve(&ns, dir.path());
    let uuid = enrol(&ns, firmware, &assets);
    let mac = firmware.mac();

    let mut vm = Vm::start(&ns, firmware, dir.path());
    let vm_started = Instant::now();
    let marker = match vm.wait_for_marker() {
        Ok(line) => line,
        Err(why) => panic!("{why}{}", evidence(&vm, &ns, mac)),
    };
    let booted_in = vm_started.elapsed();
    let powered_off = vm.powers_off_within(Duration::from_secs(30));
    let context = evidence(&vm, &ns, mac);

    assert!(
        marker.contains(&format!("BOOTIF={mac}")),
        "no BOOTIF={mac} in {marker:?}{context}"
    );
    assert!(
        marker.contains("ipa-api-url=http://10.95.0.1:6385"),
        "no ipa-api-url on the provisioning network in {marker:?}{context}"
    );
    for param in ["console=ttyS0", "initrd=deploy_ramdisk"] {
        assert!(marker.contains(param), "no {param} in {marker:?}{context}");
    }

    let trace = boot_trace(&ns, mac);
    for step in [
        "DHCP DISCOVER received".to_owned(),
        "DHCP ACK of ".to_owned(),
        // The iPXE script Ferric wrote and the files it names.
        format!("http /{uuid}/config served"),
        format!(
            "http /{uuid}/deploy_kernel served, {} bytes",
            size(&assets.kernel)
        ),
        format!(
            "http /{uuid}/deploy_ramdisk served, {} bytes",
            size(&assets.ramdisk)
        ),
    ] {
        assert!(trace.contains(&step), "no {step:?} in the trace{context}");
    }
    assert!(
        !trace.contains(" failed "),
        "a failure in the trace{context}"
    );
    let chainloaded = trace.contains(&format!("tftp {} served", firmware.loader()));
    let path = if chainloaded {
        format!(
            "firmware PXE -> TFTP {} -> iPXE -> HTTP script",
            firmware.loader()
        )
    } else {
        "the ROM's iPXE asked for the script at once (no TFTP loader)".to_owned()
    };
    let expected = matches!(firmware, Firmware::UefiFirmwarePxe);
    assert_eq!(chainloaded, expected, "boot path: {path}{context}");
    eprintln!(
        "netboot_qemu[{}]: boot path: {path}; VM booted to the marker in {:.1}s, \
         powered off: {powered_off}, whole test {:.1}s\n{marker}\n{trace}\n\
         --- serial log ---\n{}",
        firmware.name(),
        booted_in.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        readable(&vm.serial_text()),
    );
}

#[test]
fn a_bios_vm_network_boots_the_deploy_ramdisk_through_ferric() {
    boots_through_ferric(Firmware::Bios);
}

#[test]
fn a_uefi_vm_network_boots_the_deploy_ramdisk_through_ferric() {
    boots_through_ferric(Firmware::Uefi);
}

#[test]
fn a_uefi_vm_without_an_ipxe_rom_chainloads_ipxe_over_tftp() {
    boots_through_ferric(Firmware::UefiFirmwarePxe);
}
