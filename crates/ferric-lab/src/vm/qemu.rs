//! The qemu command line of a lab VM, without I/O: one VM per power-on.
//! qemu starts with the boot order of that boot (`bootindex` on the NIC and
//! the disk), `-no-reboot` turns a guest reboot into qemu's exit (the BMC
//! starts it again with the boot settings of the next boot, as firmware
//! reads them from a real BMC at every boot), and QMP tells why it exited.

use std::path::{Path, PathBuf};

use crate::config::{BootSource, MacAddress};
use crate::machine::{BootMode, Booted};

use super::{Accel, DiskFormat, VmSpec};

/// OVMF's code and its variable store template (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// The files of one VM's qemu, in the lab's run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmFiles {
    pub qmp: PathBuf,
    pub pid: PathBuf,
    pub serial: PathBuf,
    pub log: PathBuf,
    pub uefi_vars: PathBuf,
    /// SeaBIOS's serial console port, as the 2-byte integer it reads.
    pub sercon: PathBuf,
}

impl VmFiles {
    /// `DIR/NAME.qmp`, `.pid`, `.serial.log`, `.qemu.log`, `.OVMF_VARS.fd`,
    /// `.sercon-port`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let file = |suffix: &str| dir.join(format!("{name}.{suffix}"));
        VmFiles {
            qmp: file("qmp"),
            pid: file("pid"),
            serial: file("serial.log"),
            log: file("qemu.log"),
            uefi_vars: file("OVMF_VARS.fd"),
            sercon: file("sercon-port"),
        }
    }
}

/// The serial port SeaBIOS's console goes to (COM1), as the little-endian
/// integer its `etc/sercon-port` file holds.
pub const SERCON_PORT: [u8; 2] = 0x3f8u16.to_le_bytes();

/// What one boot of a VM is started with.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub name: &'a str,
    pub mac: MacAddress,
    pub disk: &'a Path,
    pub vm: &'a VmSpec,
    pub files: &'a VmFiles,
    pub mode: BootMode,
    /// Boot devices in order: the one this boot picked first.
    pub order: Vec<BootSource>,
}

/// The boot devices of a boot: the one picked first, then the rest of the
/// machine's boot order (qemu's firmware goes down the list, as a real
/// machine's would). The lab's VMs have no CD drive.
pub fn boot_devices(picked: Booted, order: &[BootSource]) -> Vec<BootSource> {
    let first = match picked {
        Booted::Pxe => Some(BootSource::Pxe),
        Booted::Disk => Some(BootSource::Disk),
        Booted::Cd | Booted::Bios | Booted::None => None,
    };
    let mut devices: Vec<BootSource> = first.into_iter().collect();
    for source in order {
        if *source != BootSource::Cdrom && !devices.contains(source) {
            devices.push(*source);
        }
    }
    devices
}

/// A path inside a qemu option string: qemu reads `,,` as a comma.
fn opt(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// qemu's arguments (without the program).
pub fn arguments(launch: &Launch<'_>) -> Vec<String> {
    let vm = launch.vm;
    let files = launch.files;
    let index_of = |source: BootSource| {
        launch
            .order
            .iter()
            .position(|s| *s == source)
            .map(|at| format!(",bootindex={}", at + 1))
            .unwrap_or_default()
    };
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    push(&[
        "-name",
        &format!("{},process=ferric-lab-{}", launch.name, launch.name),
    ]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    match vm.accel {
        Accel::Tcg => push(&["-accel", "tcg"]),
        Accel::Kvm => push(&["-accel", "kvm"]),
        Accel::Auto => push(&["-accel", "kvm", "-accel", "tcg"]),
    }
    push(&[
        "-machine",
        "q35",
        "-cpu",
        "max",
        "-m",
        &vm.memory_mib.to_string(),
    ]);
    push(&["-smp", &vm.cpus.to_string()]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", opt(&files.qmp)),
    ]);
    push(&["-pidfile", &files.pid.display().to_string()]);
    push(&[
        "-chardev",
        &format!("file,id=serial0,path={},append=on", opt(&files.serial)),
        "-serial",
        "chardev:serial0",
    ]);
    // SeaBIOS prints to the serial port too (its "sercon"), with what the
    // NIC's iPXE prints: a serial log shows where a network boot stopped.
    if launch.mode == BootMode::Legacy {
        push(&[
            "-fw_cfg",
            &format!("name=etc/sercon-port,file={}", opt(&files.sercon)),
        ]);
    }
    if launch.mode == BootMode::Uefi {
        push(&[
            "-drive",
            &format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"),
            "-drive",
            &format!("if=pflash,format=raw,file={}", opt(&files.uefi_vars)),
        ]);
    }
    let format = match vm.disk_format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    push(&[
        "-drive",
        &format!(
            "file={},if=none,id=disk0,format={format},cache=unsafe,discard=unmap",
            opt(launch.disk)
        ),
        "-device",
        &format!(
            "virtio-blk-pci,drive=disk0,id=disk0dev{}",
            index_of(BootSource::Disk)
        ),
    ]);
    // disable-legacy=on: Debian's iPXE ROMs carry the modern virtio-net id
    // (1af4:1041); a transitional NIC would not match them and SeaBIOS would
    // find no network boot.
    let rom = match launch.mode {
        BootMode::Legacy => "/usr/lib/ipxe/qemu/pxe-virtio.rom",
        BootMode::Uefi => "/usr/lib/ipxe/qemu/efi-virtio.rom",
    };
    push(&[
        "-netdev",
        &format!("tap,id=net0,ifname={},script=no,downscript=no", vm.tap),
        "-device",
        &format!(
            "virtio-net-pci,disable-legacy=on,netdev=net0,id=nic0,mac={},romfile={rom}{}",
            launch.mac,
            index_of(BootSource::Pxe)
        ),
    ]);
    push(&["-device", "virtio-rng-pci"]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            tap: "ferric-tap0".into(),
            ..VmSpec::default()
        }
    }

    #[test]
    fn the_picked_device_goes_first_then_the_order() {
        let order = [BootSource::Disk, BootSource::Pxe];
        assert_eq!(
            boot_devices(Booted::Pxe, &order),
            vec![BootSource::Pxe, BootSource::Disk]
        );
        assert_eq!(boot_devices(Booted::Disk, &order), order.to_vec());
        assert_eq!(boot_devices(Booted::None, &order), order.to_vec());
        assert_eq!(
            boot_devices(Booted::Cd, &[BootSource::Cdrom, BootSource::Pxe]),
            vec![BootSource::Pxe]
        );
    }

    #[test]
    fn a_network_boot_under_uefi() {
        let vm = spec();
        let files = VmFiles::new(Path::new("/run/lab"), "vm0");
        let launch = Launch {
            name: "vm0",
            mac: MacAddress::parse("52:54:00:00:00:01").unwrap(),
            disk: Path::new("/run/lab/vm0.disk"),
            vm: &vm,
            files: &files,
            mode: BootMode::Uefi,
            order: vec![BootSource::Pxe, BootSource::Disk],
        };
        let line = arguments(&launch).join(" ");
        assert!(line.contains("-no-reboot"), "{line}");
        assert!(
            line.contains("-qmp unix:/run/lab/vm0.qmp,server=on,wait=off"),
            "{line}"
        );
        assert!(
            line.contains("if=pflash,format=raw,file=/run/lab/vm0.OVMF_VARS.fd"),
            "{line}"
        );
        assert!(
            line.contains(
                "mac=52:54:00:00:00:01,romfile=/usr/lib/ipxe/qemu/efi-virtio.rom,bootindex=1"
            ),
            "{line}"
        );
        assert!(line.contains("id=disk0dev,bootindex=2"), "{line}");
        assert!(line.contains("-accel tcg -machine q35"), "{line}");
        assert!(line.contains("-m 512"), "{line}");
    }

    #[test]
    fn commas_in_paths_cannot_add_options() {
        let vm = spec();
        let files = VmFiles::new(Path::new("/run/a,b"), "vm0");
        let launch = Launch {
            name: "vm0",
            mac: MacAddress::parse("52:54:00:00:00:01").unwrap(),
            disk: Path::new("/x.img,snapshot=on"),
            vm: &vm,
            files: &files,
            mode: BootMode::Legacy,
            order: vec![BootSource::Disk],
        };
        let args = arguments(&launch);
        let line = args.join(" ");
        assert!(line.contains("file=/x.img,,snapshot=on,if=none"), "{line}");
        assert!(line.contains("unix:/run/a,,b/vm0.qmp,server=on"), "{line}");
        assert!(args.contains(&"/run/a,b/vm0.pid".to_string()), "{line}");
    }

    #[test]
    fn a_disk_boot_under_bios_has_no_firmware_drives() {
        let vm = VmSpec {
            disk_format: DiskFormat::Qcow2,
            accel: Accel::Auto,
            ..spec()
        };
        let files = VmFiles::new(Path::new("/d"), "vm1");
        let launch = Launch {
            name: "vm1",
            mac: MacAddress::parse("52:54:00:00:00:02").unwrap(),
            disk: Path::new("/d/vm1.qcow2"),
            vm: &vm,
            files: &files,
            mode: BootMode::Legacy,
            order: vec![BootSource::Disk],
        };
        let line = arguments(&launch).join(" ");
        assert!(!line.contains("pflash"), "{line}");
        assert!(line.contains("-accel kvm -accel tcg -machine"), "{line}");
        assert!(line.contains("format=qcow2"), "{line}");
        assert!(!line.contains("pxe-virtio.rom,bootindex"), "{line}");
        assert!(line.contains("id=disk0dev,bootindex=1"), "{line}");
    }
}
