//! The machine's inventory as IPA reports it, read from /proc, /sys and
//! /dev — or from fake trees given with `--proc-root`, `--sys-root` and
//! `--dev-root`, so everything runs unprivileged in tests. Nothing here
//! opens a device: only sysfs/procfs text files and symlinks are read.

mod cpu;
mod disks;
mod net;

use std::path::{Path, PathBuf};

use ferric_ipa::inventory::{BootInfo, Inventory, SystemFirmware, SystemVendorInfo};
use serde_json::Map;

pub use disks::{disk_files, list_disks};
pub use net::{list_interfaces, lookup_macs};

/// Where /proc, /sys and /dev are.
#[derive(Debug, Clone)]
pub struct Roots {
    /// /proc.
    pub proc: PathBuf,
    /// /sys.
    pub sys: PathBuf,
    /// /dev.
    pub dev: PathBuf,
}

impl Roots {
    /// The real trees.
    pub fn system() -> Self {
        Self {
            proc: "/proc".into(),
            sys: "/sys".into(),
            dev: "/dev".into(),
        }
    }
}

/// Reads a small text file, trimmed; `None` when it cannot be read.
pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_owned())
}

/// Like [`read_trimmed`], but empty text counts as absent.
pub(crate) fn read_value(path: &Path) -> Option<String> {
    read_trimmed(path).filter(|s| !s.is_empty())
}

/// The base name a symlink points to (`device/driver` → `e1000`).
pub(crate) fn link_name(path: &Path) -> Option<String> {
    let target = std::fs::read_link(path).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Everything IPA's `list_hardware_info` reports. With disk files, the
/// disks are those files.
pub fn collect(roots: &Roots, disk_files_given: &[PathBuf], bootif: Option<&str>) -> Inventory {
    let disks = if disk_files_given.is_empty() {
        list_disks(roots)
    } else {
        disk_files(disk_files_given)
    };
    Inventory {
        interfaces: list_interfaces(roots),
        cpu: cpu::read_cpu(roots),
        disks,
        memory: cpu::read_memory(roots),
        bmc_address: None,
        bmc_v6address: None,
        system_vendor: system_vendor(&roots.sys),
        boot: boot_info(&roots.sys, bootif),
        hostname: read_value(&roots.proc.join("sys/kernel/hostname")),
        bmc_mac: None,
        extra: Map::new(),
    }
}

/// The inventory the agent reports: [`collect`], except that a machine
/// simulated with `--mac` has exactly those NICs (named `sim0`, `sim1`,
/// ...; the first is the one it booted from), not the host's.
pub fn collect_for(roots: &Roots, config: &crate::config::Config) -> Inventory {
    let mut inventory = collect(roots, &config.disk_files, config.bootif.as_deref());
    if !config.macs.is_empty() {
        inventory.interfaces = config
            .macs
            .iter()
            .enumerate()
            .map(|(i, mac)| ferric_ipa::inventory::NetworkInterface {
                name: format!("sim{i}"),
                mac_address: Some(mac.to_string()),
                ipv4_address: None,
                ipv6_address: None,
                has_carrier: true,
                lldp: None,
                vendor: None,
                product: None,
                client_id: None,
                biosdevname: None,
                speed_mbps: None,
                pci_address: None,
                driver: None,
            })
            .collect();
        if inventory.boot.pxe_interface.is_none() {
            inventory.boot.pxe_interface = config.macs.first().map(|m| m.to_string());
        }
    }
    inventory
}

/// DMI data from /sys/class/dmi/id, as IPA takes it from lshw.
pub fn system_vendor(sys: &Path) -> SystemVendorInfo {
    let dmi = sys.join("class/dmi/id");
    let field = |name: &str| read_trimmed(&dmi.join(name)).unwrap_or_default();
    SystemVendorInfo {
        product_name: field("product_name"),
        serial_number: field("product_serial"),
        manufacturer: field("sys_vendor"),
        firmware: SystemFirmware {
            vendor: field("bios_vendor"),
            version: field("bios_version"),
            build_date: field("bios_date"),
        },
    }
}

/// `uefi` when /sys/firmware/efi exists, else `bios`; the PXE interface is
/// the kernel's `BOOTIF` as given.
pub fn boot_info(sys: &Path, bootif: Option<&str>) -> BootInfo {
    let mode = if sys.join("firmware/efi").is_dir() {
        "uefi"
    } else {
        "bios"
    };
    BootInfo {
        current_boot_mode: mode.to_owned(),
        pxe_interface: bootif.map(str::to_owned),
    }
}

#[cfg(test)]
pub(crate) mod testtree {
    //! Builds small fake /proc, /sys, /dev trees in a temp dir.
    use std::path::Path;

    pub fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    pub fn link(root: &Path, rel: &str, target: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testtree::write;
    use super::*;

    #[test]
    fn reads_vendor_and_boot_mode() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path();
        write(
            sys,
            "class/dmi/id/product_name",
            "Standard PC (Q35 + ICH9, 2009)\n",
        );
        write(sys, "class/dmi/id/sys_vendor", "QEMU\n");
        write(sys, "class/dmi/id/bios_vendor", "SeaBIOS\n");
        write(sys, "class/dmi/id/bios_version", "1.16.2\n");
        write(sys, "class/dmi/id/bios_date", "04/01/2014\n");
        let v = system_vendor(sys);
        assert_eq!(v.manufacturer, "QEMU");
        assert_eq!(v.serial_number, "");
        assert_eq!(v.firmware.build_date, "04/01/2014");
        assert_eq!(boot_info(sys, None).current_boot_mode, "bios");
        std::fs::create_dir_all(sys.join("firmware/efi")).unwrap();
        let boot = boot_info(sys, Some("01-52-54-00-12-34-56"));
        assert_eq!(boot.current_boot_mode, "uefi");
        assert_eq!(boot.pxe_interface.as_deref(), Some("01-52-54-00-12-34-56"));
    }
}
