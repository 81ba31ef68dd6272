//! The hardware inventory IPA reports (`hardware.list_hardware_info`), with
//! the serialized fields of IPA's `CPU`, `Memory`, `BlockDevice`,
//! `NetworkInterface`, `SystemVendorInfo` and `BootInfo`, and the
//! inspection data around it (`root_disk`, `boot_interface`, ...).
//!
//! IPA serializes every field of these objects, `null` included, so `None`
//! serializes as `null` here too (except `bmc_mac`, which IPA adds only when
//! it found one).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The whole inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// Network interfaces.
    pub interfaces: Vec<NetworkInterface>,
    /// The CPU summary.
    pub cpu: Cpu,
    /// Disks (whole block devices, no partitions).
    pub disks: Vec<BlockDevice>,
    /// Memory.
    pub memory: Memory,
    /// The BMC's IPv4 address, when one was found.
    #[serde(default)]
    pub bmc_address: Option<String>,
    /// The BMC's IPv6 address, when one was found.
    #[serde(default)]
    pub bmc_v6address: Option<String>,
    /// Vendor data from DMI.
    pub system_vendor: SystemVendorInfo,
    /// Boot mode and PXE interface.
    pub boot: BootInfo,
    /// The ramdisk's host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The BMC's MAC address, only when found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_mac: Option<String>,
    /// Fields added by other hardware managers.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `CPU.serialize()`: `frequency` is a string in MHz, as lscpu prints it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// e.g. `Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz`.
    #[serde(default)]
    pub model_name: String,
    /// Maximum (else current) frequency in MHz, e.g. `"3300.0000"`.
    #[serde(default)]
    pub frequency: String,
    /// Logical CPUs.
    #[serde(default)]
    pub count: u64,
    /// e.g. `x86_64`.
    #[serde(default)]
    pub architecture: String,
    /// CPU flags.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Sockets.
    #[serde(default)]
    pub socket_count: Option<u64>,
}

/// `Memory.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Usable bytes (`MemTotal`).
    #[serde(default)]
    pub total: Option<u64>,
    /// Installed MiB; what Ironic takes as `memory_mb`.
    #[serde(default)]
    pub physical_mb: Option<u64>,
}

/// `BlockDevice.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BlockDevice {
    /// Device path, e.g. `/dev/sda` (for Ferric's `--disk FILE`, the file).
    pub name: String,
    /// Model string.
    #[serde(default)]
    pub model: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Spinning disk.
    #[serde(default)]
    pub rotational: bool,
    /// World wide name.
    #[serde(default)]
    pub wwn: Option<String>,
    /// Serial number.
    #[serde(default)]
    pub serial: Option<String>,
    /// Vendor.
    #[serde(default)]
    pub vendor: Option<String>,
    /// WWN with the vendor extension appended.
    #[serde(default)]
    pub wwn_with_extension: Option<String>,
    /// Vendor extension of the WWN.
    #[serde(default)]
    pub wwn_vendor_extension: Option<String>,
    /// SCSI address `host:channel:target:lun`.
    #[serde(default)]
    pub hctl: Option<String>,
    /// `/dev/disk/by-path/...` link to it.
    #[serde(default)]
    pub by_path: Option<String>,
    /// Logical sector size in bytes.
    #[serde(default)]
    pub logical_sectors: Option<u64>,
    /// Physical sector size in bytes.
    #[serde(default)]
    pub physical_sectors: Option<u64>,
    /// Transport: `sata`, `sas`, `nvme`, `usb`, ...
    #[serde(default)]
    pub tran: Option<String>,
}

/// `NetworkInterface.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Kernel name, e.g. `eth0`.
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// First IPv4 address.
    #[serde(default)]
    pub ipv4_address: Option<String>,
    /// First IPv6 address.
    #[serde(default)]
    pub ipv6_address: Option<String>,
    /// Link detected.
    #[serde(default)]
    pub has_carrier: bool,
    /// LLDP TLVs, when collected.
    #[serde(default)]
    pub lldp: Option<Value>,
    /// PCI vendor id, e.g. `0x8086`.
    #[serde(default)]
    pub vendor: Option<String>,
    /// PCI device id.
    #[serde(default)]
    pub product: Option<String>,
    /// InfiniBand DHCP client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// BIOS-given name.
    #[serde(default)]
    pub biosdevname: Option<String>,
    /// Link speed in Mbit/s.
    #[serde(default)]
    pub speed_mbps: Option<u64>,
    /// PCI address, e.g. `0000:00:03.0`.
    #[serde(default)]
    pub pci_address: Option<String>,
    /// Kernel driver.
    #[serde(default)]
    pub driver: Option<String>,
}

/// `SystemFirmware.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemFirmware {
    /// BIOS vendor.
    #[serde(default)]
    pub vendor: String,
    /// BIOS version.
    #[serde(default)]
    pub version: String,
    /// BIOS date.
    #[serde(default)]
    pub build_date: String,
}

/// `SystemVendorInfo.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SystemVendorInfo {
    /// e.g. `Standard PC (Q35 + ICH9, 2009)`.
    #[serde(default)]
    pub product_name: String,
    /// System serial number.
    #[serde(default)]
    pub serial_number: String,
    /// e.g. `QEMU`.
    #[serde(default)]
    pub manufacturer: String,
    /// BIOS data.
    #[serde(default)]
    pub firmware: SystemFirmware,
}

/// `BootInfo.serialize()`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BootInfo {
    /// `uefi` when `/sys/firmware/efi` exists, else `bios`.
    pub current_boot_mode: String,
    /// The kernel command line's `BOOTIF` value, as given.
    #[serde(default)]
    pub pxe_interface: Option<String>,
}

/// What IPA posts to the inspection callback (`collect_default` and
/// friends): the inventory plus the root disk it would pick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionData {
    /// The inventory.
    pub inventory: Inventory,
    /// The disk chosen without hints (`guess_root_disk`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_disk: Option<BlockDevice>,
    /// `boot.pxe_interface` again (deprecated field).
    #[serde(default)]
    pub boot_interface: Option<String>,
    /// Collectors and hardware managers used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    /// Base64 of a gzipped tarball of logs (`logs` collector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    /// Data from other collectors.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An inventory as IPA serializes one for a small qemu VM (written from
    /// the `serializable_fields` of hardware.py).
    fn ipa_inventory() -> Value {
        json!({
            "interfaces": [{
                "name": "enp0s3", "mac_address": "52:54:00:12:34:56", "ipv4_address": "10.0.2.15",
                "ipv6_address": "fe80::5054:ff:fe12:3456%enp0s3", "has_carrier": true, "lldp": null,
                "vendor": "0x8086", "product": "0x100e", "client_id": null, "biosdevname": null,
                "speed_mbps": 1000, "pci_address": "0000:00:03.0", "driver": "e1000"
            }],
            "cpu": {"model_name": "QEMU Virtual CPU version 2.5+", "frequency": "2400.000", "count": 2,
                    "architecture": "x86_64", "flags": ["fpu", "vme"], "socket_count": 1},
            "disks": [{
                "name": "/dev/vda", "model": "", "size": 10737418240u64, "rotational": true, "wwn": null,
                "serial": "disk-1", "vendor": "0x1af4", "wwn_with_extension": null, "wwn_vendor_extension": null,
                "hctl": null, "by_path": "/dev/disk/by-path/pci-0000:00:04.0", "logical_sectors": 512,
                "physical_sectors": 512, "tran": null
            }],
            "memory": {"total": 1554006016, "physical_mb": 1536},
            "bmc_address": "0.0.0.0",
            "bmc_v6address": "::/0",
            "system_vendor": {"product_name": "Standard PC (i440FX + PIIX, 1996)", "serial_number": "",
                              "manufacturer": "QEMU", "firmware": {"vendor": "SeaBIOS", "version": "1.16.2-debian-1.16.2-1", "build_date": "04/01/2014"}},
            "boot": {"current_boot_mode": "bios", "pxe_interface": "01-52-54-00-12-34-56"},
            "hostname": "debian"
        })
    }

    #[test]
    fn round_trips_an_ipa_inventory() {
        let inv: Inventory = serde_json::from_value(ipa_inventory()).unwrap();
        assert_eq!(inv.disks[0].size, 10 * 1024 * 1024 * 1024);
        assert_eq!(inv.interfaces[0].speed_mbps, Some(1000));
        assert_eq!(inv.bmc_mac, None);
        assert_eq!(serde_json::to_value(&inv).unwrap(), ipa_inventory());
    }

    #[test]
    fn round_trips_inspection_data() {
        let inventory: Inventory = serde_json::from_value(ipa_inventory()).unwrap();
        let data = json!({
            "inventory": ipa_inventory(),
            "root_disk": ipa_inventory()["disks"][0],
            "boot_interface": "01-52-54-00-12-34-56",
            "configuration": {"collectors": ["default"], "managers": [{"name": "generic_hardware_manager", "version": "1.2"}]}
        });
        let parsed: InspectionData = serde_json::from_value(data.clone()).unwrap();
        assert_eq!(parsed.inventory, inventory);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), data);
    }

    #[test]
    fn keeps_bmc_mac_when_present() {
        let mut value = ipa_inventory();
        value["bmc_mac"] = json!("aa:bb:cc:dd:ee:ff");
        let inv: Inventory = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(inv.bmc_mac.as_deref(), Some("aa:bb:cc:dd:ee:ff"));
        assert_eq!(serde_json::to_value(&inv).unwrap(), value);
    }
}
