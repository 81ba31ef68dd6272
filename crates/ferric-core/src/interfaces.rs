//! The kinds of driver interface a node is composed of, and the node's
//! chosen implementation name for each.

use serde::{Deserialize, Serialize};

use crate::states::string_enum;

string_enum! {
    /// One kind of driver interface; the string is the prefix of the node
    /// field that names it (`power` → `power_interface`).
    InterfaceKind {
        Bios => "bios",
        Boot => "boot",
        Console => "console",
        Deploy => "deploy",
        Firmware => "firmware",
        Inspect => "inspect",
        Management => "management",
        Network => "network",
        Power => "power",
        Raid => "raid",
        Rescue => "rescue",
        Storage => "storage",
        Vendor => "vendor",
    }
}

string_enum! {
    /// A device a node can be told to boot from (ironic/common/boot_devices.py).
    BootDevice {
        Pxe => "pxe",
        Disk => "disk",
        Cdrom => "cdrom",
        Bios => "bios",
        Safe => "safe",
        Wanboot => "wanboot",
        IscsiBoot => "iscsiboot",
        Floppy => "floppy",
        UefiHttp => "uefihttp",
    }
}

impl InterfaceKind {
    /// The node field naming this interface, e.g. `deploy_interface`.
    pub fn field_name(self) -> &'static str {
        match self {
            InterfaceKind::Bios => "bios_interface",
            InterfaceKind::Boot => "boot_interface",
            InterfaceKind::Console => "console_interface",
            InterfaceKind::Deploy => "deploy_interface",
            InterfaceKind::Firmware => "firmware_interface",
            InterfaceKind::Inspect => "inspect_interface",
            InterfaceKind::Management => "management_interface",
            InterfaceKind::Network => "network_interface",
            InterfaceKind::Power => "power_interface",
            InterfaceKind::Raid => "raid_interface",
            InterfaceKind::Rescue => "rescue_interface",
            InterfaceKind::Storage => "storage_interface",
            InterfaceKind::Vendor => "vendor_interface",
        }
    }

    pub fn from_field_name(field: &str) -> Option<InterfaceKind> {
        let kind = field.strip_suffix("_interface")?;
        kind.parse().ok()
    }

    /// Variants are declared in `ALL` order, so the discriminant is the slot.
    fn index(self) -> usize {
        self as usize
    }
}

/// The implementation name chosen for every interface kind of one node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interfaces([String; 13]);

impl Interfaces {
    pub fn get(&self, kind: InterfaceKind) -> &str {
        &self.0[kind.index()]
    }

    pub fn set(&mut self, kind: InterfaceKind, name: impl Into<String>) {
        self.0[kind.index()] = name.into();
    }

    pub fn iter(&self) -> impl Iterator<Item = (InterfaceKind, &str)> {
        InterfaceKind::ALL.iter().map(move |k| (*k, self.get(*k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_own_slot_and_field() {
        assert_eq!(InterfaceKind::ALL.len(), 13);
        let mut ifaces = Interfaces::default();
        for (i, kind) in InterfaceKind::ALL.iter().enumerate() {
            ifaces.set(*kind, format!("impl{i}"));
            assert_eq!(
                InterfaceKind::from_field_name(kind.field_name()),
                Some(*kind)
            );
        }
        for (i, (_, name)) in ifaces.iter().enumerate() {
            assert_eq!(name, format!("impl{i}"));
        }
        assert_eq!(InterfaceKind::from_field_name("driver"), None);
    }
}
