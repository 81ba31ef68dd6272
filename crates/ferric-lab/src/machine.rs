//! A machine as its BMC sees it, without I/O: power, the boot override and
//! boot mode, virtual media, and what a boot picks. Power on, reset and
//! cycle are boots: the override first (a once override is consumed at that
//! boot, as on real hardware), then the boot order; a disk boots only if it
//! holds a boot signature, a CD only if media is inserted.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::BootSource;

/// Power as the BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    On,
    #[default]
    Off,
}

/// A boot override's device (IPMI's boot device selector, Redfish's
/// BootSourceOverrideTarget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootDevice {
    /// No override.
    #[default]
    None,
    Pxe,
    Disk,
    Cdrom,
    /// Firmware setup.
    Bios,
}

/// Firmware boot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    #[default]
    Uefi,
    Legacy,
}

/// The boot override: a device for the next boot (once) or every boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootOverride {
    pub device: BootDevice,
    pub persistent: bool,
}

impl BootOverride {
    /// No override.
    pub const NONE: BootOverride = BootOverride {
        device: BootDevice::None,
        persistent: false,
    };

    /// Whether an override is set.
    pub fn is_set(&self) -> bool {
        self.device != BootDevice::None
    }
}

/// What a boot started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Booted {
    /// Nothing bootable was found (or it never booted).
    #[default]
    None,
    /// The network: the agent.
    Pxe,
    /// The disk: the installed OS.
    Disk,
    /// The virtual CD (logged; runs nothing).
    Cd,
    /// Firmware setup (runs nothing).
    Bios,
}

/// The virtual CD drive.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Media {
    pub image: Option<String>,
    pub inserted: bool,
    pub write_protected: bool,
}

/// What a network boot that followed the boot config loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loaded {
    /// Still fetching the config, the kernel or the initrds.
    #[default]
    Loading,
    /// A kernel with `ipa-api-url=` and no `root=`: the agent's ramdisk
    /// (the agent runs).
    Agent,
    /// A kernel with `root=`: a netbooted instance (its OS runs).
    Instance,
    /// `sanboot`: the local disk.
    Disk,
    /// Nothing: the firmware went on to the next boot device.
    Failed,
}

/// The last network boot that followed the boot config at `boot_url`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BootConfig {
    pub loaded: Loaded,
    /// The config fetched (`.../pxelinux.cfg/MAC`).
    pub config_url: String,
    /// The kernel's URL, once the script named one (resolved).
    pub kernel: Option<String>,
    /// The initrds' URLs (resolved).
    pub initrds: Vec<String>,
    /// The kernel's command line.
    pub cmdline: Option<String>,
    /// Bytes downloaded.
    pub kernel_bytes: Option<u64>,
    pub initrd_bytes: Option<u64>,
    /// Why the network boot failed.
    pub error: Option<String>,
}

impl BootConfig {
    /// A network boot starting from `config_url`.
    pub fn loading(config_url: String) -> Self {
        BootConfig {
            config_url,
            ..BootConfig::default()
        }
    }

    /// Marks it failed.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.loaded = Loaded::Failed;
        self.error = Some(why.into());
    }
}

/// Everything about a machine that its BMC keeps (and that is persisted).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MachineState {
    pub power: Power,
    pub boot_override: BootOverride,
    pub boot_mode: BootMode,
    pub boot_count: u64,
    pub last_boot: Booted,
    pub nmi_count: u64,
    pub media: Media,
    /// What the last boot's network boot loaded (only with a `boot_url`
    /// and a boot that picked PXE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_boot_config: Option<BootConfig>,
}

impl MachineState {
    /// Boots (power on, reset, cycle): picks what to boot, consumes a once
    /// override, counts the boot. Returns what booted.
    pub fn boot(&mut self, order: &[BootSource], disk_bootable: bool) -> Booted {
        let booted = choose_boot(
            self.boot_override,
            order,
            disk_bootable,
            self.media.inserted,
        );
        if !self.boot_override.persistent {
            self.boot_override = BootOverride::NONE;
        }
        self.power = Power::On;
        self.boot_count = self.boot_count.saturating_add(1);
        self.last_boot = booted;
        self.last_boot_config = None;
        booted
    }

    /// After a failed network boot the firmware goes on with the boot
    /// order's entries that are not the network; returns what booted.
    pub fn network_boot_failed(&mut self, order: &[BootSource], disk_bootable: bool) -> Booted {
        let not_network: Vec<BootSource> = order
            .iter()
            .copied()
            .filter(|source| *source != BootSource::Pxe)
            .collect();
        let booted = choose_boot(
            BootOverride::NONE,
            &not_network,
            disk_bootable,
            self.media.inserted,
        );
        self.last_boot = booted;
        booted
    }

    /// A weak entity tag that changes whenever the state does.
    pub fn etag(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("W/\"{:016x}\"", fnv1a(&bytes))
    }
}

/// The override's device first, then the boot order; the first that can
/// boot wins.
pub fn choose_boot(
    boot_override: BootOverride,
    order: &[BootSource],
    disk_bootable: bool,
    media_inserted: bool,
) -> Booted {
    let from_override = match boot_override.device {
        BootDevice::None => None,
        BootDevice::Bios => Some(Booted::Bios),
        BootDevice::Pxe => Some(Booted::Pxe),
        BootDevice::Disk => disk_bootable.then_some(Booted::Disk),
        BootDevice::Cdrom => media_inserted.then_some(Booted::Cd),
    };
    from_override
        .or_else(|| {
            order.iter().find_map(|source| match source {
                BootSource::Pxe => Some(Booted::Pxe),
                BootSource::Disk => disk_bootable.then_some(Booted::Disk),
                BootSource::Cdrom => media_inserted.then_some(Booted::Cd),
            })
        })
        .unwrap_or(Booted::None)
}

/// Whether a disk file holds a boot signature: 0x55AA at offset 510 (MBR)
/// or a GPT header ("EFI PART") at 512. A missing or short file does not.
pub fn disk_has_boot_signature(path: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(520);
    match std::fs::File::open(path) {
        Ok(file) => {
            file.take(520).read_to_end(&mut head)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let mbr = head.get(510..512) == Some(&[0x55, 0xAA][..]);
    let gpt = head.get(512..520) == Some(&b"EFI PART"[..]);
    Ok(mbr || gpt)
}

/// FNV-1a, 64 bits: a stable hash for entity tags and UUIDs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A UUID that stays the same for a machine name, run after run.
pub fn stable_uuid(name: &str) -> uuid::Uuid {
    let high = fnv1a(format!("ferric-lab/system/{name}").as_bytes());
    let low = fnv1a(format!("{name}/ferric-lab/system").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK_THEN_PXE: &[BootSource] = &[BootSource::Disk, BootSource::Pxe];

    fn with_override(device: BootDevice, persistent: bool) -> MachineState {
        MachineState {
            boot_override: BootOverride { device, persistent },
            ..MachineState::default()
        }
    }

    #[test]
    fn boot_order_skips_an_unsigned_disk() {
        let mut m = MachineState::default();
        assert_eq!(m.boot(DISK_THEN_PXE, false), Booted::Pxe);
        assert_eq!(m.boot(DISK_THEN_PXE, true), Booted::Disk);
        assert_eq!(m.boot_count, 2);
        assert_eq!(m.power, Power::On);
        assert_eq!(m.last_boot, Booted::Disk);
    }

    #[test]
    fn nothing_bootable_boots_nothing() {
        let mut m = MachineState::default();
        assert_eq!(m.boot(&[BootSource::Disk], false), Booted::None);
        assert_eq!(m.power, Power::On);
        assert_eq!(m.boot(&[BootSource::Cdrom], false), Booted::None);
    }

    #[test]
    fn a_once_override_is_consumed_at_that_boot() {
        let mut m = with_override(BootDevice::Pxe, false);
        assert_eq!(m.boot(DISK_THEN_PXE, true), Booted::Pxe);
        assert_eq!(m.boot_override, BootOverride::NONE);
        assert_eq!(m.boot(DISK_THEN_PXE, true), Booted::Disk);
    }

    #[test]
    fn a_persistent_override_stays() {
        let mut m = with_override(BootDevice::Pxe, true);
        for _ in 0..3 {
            assert_eq!(m.boot(DISK_THEN_PXE, true), Booted::Pxe);
        }
        assert_eq!(m.boot_override.device, BootDevice::Pxe);
    }

    #[test]
    fn an_override_that_cannot_boot_falls_back_to_the_order() {
        let mut m = with_override(BootDevice::Disk, false);
        assert_eq!(m.boot(&[BootSource::Pxe], false), Booted::Pxe);
        assert_eq!(m.boot_override, BootOverride::NONE, "consumed all the same");
        let mut cd = with_override(BootDevice::Cdrom, true);
        assert_eq!(cd.boot(DISK_THEN_PXE, true), Booted::Disk);
        cd.media.inserted = true;
        assert_eq!(cd.boot(DISK_THEN_PXE, true), Booted::Cd);
        let mut bios = with_override(BootDevice::Bios, false);
        assert_eq!(bios.boot(DISK_THEN_PXE, true), Booted::Bios);
    }

    #[test]
    fn a_failed_network_boot_goes_on_without_the_network() {
        let order = [BootSource::Pxe, BootSource::Cdrom, BootSource::Disk];
        let mut m = with_override(BootDevice::Pxe, true);
        assert_eq!(m.boot(&order, true), Booted::Pxe);
        m.last_boot_config = Some(BootConfig::loading("http://h/c".into()));
        assert_eq!(m.network_boot_failed(&order, true), Booted::Disk);
        assert_eq!(m.last_boot, Booted::Disk);
        m.media.inserted = true;
        assert_eq!(m.network_boot_failed(&order, true), Booted::Cd);
        m.media.inserted = false;
        assert_eq!(m.network_boot_failed(&order, false), Booted::None);
        assert_eq!(m.boot_count, 1, "not a boot of its own");
        assert!(m.last_boot_config.is_some());
        m.boot(&order, true);
        assert_eq!(m.last_boot_config, None, "a new boot forgets it");
    }

    #[test]
    fn without_a_boot_config_the_saved_state_is_as_before() {
        let text = serde_json::to_string(&MachineState::default()).unwrap();
        assert!(!text.contains("last_boot_config"), "{text}");
        let mut m = MachineState::default();
        let mut config = BootConfig::loading("http://h/c".into());
        config.fail("404");
        m.last_boot_config = Some(config);
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"loaded\":\"failed\""), "{text}");
        assert_eq!(serde_json::from_str::<MachineState>(&text).unwrap(), m);
    }

    #[test]
    fn the_etag_follows_the_state() {
        let mut m = MachineState::default();
        let before = m.etag();
        assert_eq!(before, MachineState::default().etag());
        m.boot_override.device = BootDevice::Pxe;
        assert_ne!(m.etag(), before);
        assert!(m.etag().starts_with("W/\""));
    }

    #[test]
    fn uuids_are_stable_and_distinct() {
        assert_eq!(stable_uuid("m1"), stable_uuid("m1"));
        assert_ne!(stable_uuid("m1"), stable_uuid("m2"));
        assert_eq!(stable_uuid("m1").get_version_num(), 8);
    }

    #[test]
    fn boot_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        assert!(!disk_has_boot_signature(&path).unwrap(), "missing file");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        assert!(!disk_has_boot_signature(&path).unwrap(), "blank disk");
        let mut mbr = vec![0u8; 4096];
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        std::fs::write(&path, &mbr).unwrap();
        assert!(disk_has_boot_signature(&path).unwrap());
        let mut gpt = vec![0u8; 1024];
        gpt[512..520].copy_from_slice(b"EFI PART");
        std::fs::write(&path, &gpt).unwrap();
        assert!(disk_has_boot_signature(&path).unwrap());
        std::fs::write(&path, [0x55u8; 100]).unwrap();
        assert!(!disk_has_boot_signature(&path).unwrap(), "short file");
    }
}
