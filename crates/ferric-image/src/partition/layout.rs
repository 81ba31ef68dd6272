//! The partition layout IPA makes for partition images
//! (`disk_utils.make_partitions` run through parted by `DiskPartitioner`),
//! planned as data and then written natively.
//!
//! Order, as IPA adds them: EFI system partition (UEFI), BIOS boot
//! partition (BIOS on GPT, not ppc64), PReP boot partition (ppc64 BIOS),
//! ephemeral, swap, config drive, and root last so that growroot can
//! extend it. The first starts at 1 MiB; each is exactly its size in MiB
//! and starts where the previous ends. Types and flags are those parted
//! sets: `fat32` + `boot` is the EFI type on GPT and an active `0c` on
//! MBR, `linux-swap` is the swap type, everything else Linux data; GPT
//! entries are named `primary` (parted's `mkpart primary`); on MBR the
//! root partition is active for BIOS boot.

use rand::RngCore;
use uuid::Uuid;

use super::disk::Disk;
use super::gpt::{self, types};
use super::mbr::{self, MbrEntry};
use super::table::{PartitionInfo, PartitionTable, PartitionType};
use super::{DiskLabel, PartitionError};

const MIB: u64 = 1024 * 1024;
/// Largest size accepted for one partition, in MiB (1 EiB).
const MAX_PARTITION_MB: u64 = 1 << 40;
/// IPA's PReP boot partition size.
const PREP_MB: u64 = 8;

/// Firmware boot mode of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootMode {
    #[default]
    Bios,
    Uefi,
}

impl BootMode {
    /// From Ironic's `bios` / `uefi`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "bios" => Some(BootMode::Bios),
            "uefi" => Some(BootMode::Uefi),
            _ => None,
        }
    }
}

/// What a partition is for, with the keys IPA uses in `partitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PartitionRole {
    EfiSystem,
    BiosBoot,
    PrepBoot,
    Ephemeral,
    Swap,
    ConfigDrive,
    Root,
}

impl PartitionRole {
    /// The key of IPA's `partitions` dict.
    pub fn ipa_name(self) -> &'static str {
        match self {
            PartitionRole::EfiSystem => "efi system partition",
            PartitionRole::BiosBoot => "BIOS Boot partition",
            PartitionRole::PrepBoot => "PReP Boot partition",
            PartitionRole::Ephemeral => "ephemeral",
            PartitionRole::Swap => "swap",
            PartitionRole::ConfigDrive => "configdrive",
            PartitionRole::Root => "root",
        }
    }
}

/// The sizes and modes IPA's `work_on_disk` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImageSpec {
    /// Root partition size in MiB (`instance_info.root_mb`); required.
    pub root_mb: u64,
    /// Swap partition size in MiB; 0 for none.
    pub swap_mb: u64,
    /// Ephemeral partition size in MiB; 0 for none.
    pub ephemeral_mb: u64,
    /// Config drive partition size in MiB (IPA: the image's size rounded
    /// up to MiB); 0 for none.
    pub configdrive_mb: u64,
    pub boot_mode: BootMode,
    /// `None`: GPT for UEFI, MBR for BIOS (IPA's default).
    pub disk_label: Option<DiskLabel>,
    /// The node's CPU architecture (`ppc64*` gets a PReP partition).
    pub cpu_arch: String,
    /// IPA's `[disk_utils] efi_system_partition_size`.
    pub efi_system_partition_mb: u64,
    /// IPA's `[disk_utils] bios_boot_partition_size`.
    pub bios_boot_partition_mb: u64,
}

impl Default for PartitionImageSpec {
    fn default() -> Self {
        PartitionImageSpec {
            root_mb: 0,
            swap_mb: 0,
            ephemeral_mb: 0,
            configdrive_mb: 0,
            boot_mode: BootMode::Bios,
            disk_label: None,
            cpu_arch: String::new(),
            efi_system_partition_mb: 550,
            bios_boot_partition_mb: 1,
        }
    }
}

impl PartitionImageSpec {
    /// The table kind: the one asked for, else IPA's default.
    pub fn label(&self) -> DiskLabel {
        self.disk_label.unwrap_or(match self.boot_mode {
            BootMode::Uefi => DiskLabel::Gpt,
            BootMode::Bios => DiskLabel::Msdos,
        })
    }

    fn is_ppc64(&self) -> bool {
        self.cpu_arch.starts_with("ppc64")
    }

    /// (role, size in MiB, type, bootable) in IPA's order.
    fn wanted(&self) -> Vec<(PartitionRole, u64, PartitionType, bool)> {
        let label = self.label();
        let gpt = label == DiskLabel::Gpt;
        let kind = |guid, byte| {
            if gpt {
                PartitionType::Gpt(guid)
            } else {
                PartitionType::Mbr(byte)
            }
        };
        let linux = kind(types::LINUX_DATA, mbr::TYPE_LINUX);
        let bios = self.boot_mode == BootMode::Bios;
        let mut out = Vec::new();
        if self.boot_mode == BootMode::Uefi {
            let esp = kind(types::EFI_SYSTEM, mbr::TYPE_FAT32_LBA);
            out.push((
                PartitionRole::EfiSystem,
                self.efi_system_partition_mb,
                esp,
                !gpt,
            ));
        }
        if bios && gpt && !self.is_ppc64() {
            let boot = kind(types::BIOS_BOOT, mbr::TYPE_LINUX);
            out.push((
                PartitionRole::BiosBoot,
                self.bios_boot_partition_mb,
                boot,
                false,
            ));
        }
        if bios && self.is_ppc64() {
            let prep = kind(types::PREP_BOOT, mbr::TYPE_PREP);
            out.push((PartitionRole::PrepBoot, PREP_MB, prep, !gpt));
        }
        if self.ephemeral_mb > 0 {
            out.push((PartitionRole::Ephemeral, self.ephemeral_mb, linux, false));
        }
        if self.swap_mb > 0 {
            let swap = kind(types::LINUX_SWAP, mbr::TYPE_SWAP);
            out.push((PartitionRole::Swap, self.swap_mb, swap, false));
        }
        if self.configdrive_mb > 0 {
            out.push((
                PartitionRole::ConfigDrive,
                self.configdrive_mb,
                linux,
                false,
            ));
        }
        let root_active = bios && !gpt && !self.is_ppc64();
        out.push((PartitionRole::Root, self.root_mb, linux, root_active));
        out
    }

    fn validate(&self) -> Result<(), PartitionError> {
        let invalid = |what: &str| Err(PartitionError::InvalidSpec(what.to_string()));
        if self.root_mb == 0 {
            return invalid("root_mb must be greater than 0");
        }
        for (name, mb) in [
            ("root_mb", self.root_mb),
            ("swap_mb", self.swap_mb),
            ("ephemeral_mb", self.ephemeral_mb),
            ("configdrive_mb", self.configdrive_mb),
            ("efi_system_partition_size", self.efi_system_partition_mb),
            ("bios_boot_partition_size", self.bios_boot_partition_mb),
        ] {
            if mb > MAX_PARTITION_MB {
                return Err(PartitionError::InvalidSpec(format!(
                    "{name} of {mb} MiB is absurd"
                )));
            }
        }
        if self.boot_mode == BootMode::Uefi && self.efi_system_partition_mb == 0 {
            return invalid("efi_system_partition_size must be greater than 0");
        }
        if self.label() == DiskLabel::Gpt
            && self.boot_mode == BootMode::Bios
            && self.bios_boot_partition_mb == 0
        {
            return invalid("bios_boot_partition_size must be greater than 0");
        }
        Ok(())
    }
}

/// One partition of a planned layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    pub number: u32,
    pub role: PartitionRole,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    pub part_type: PartitionType,
    pub bootable: bool,
    /// GPT unique partition GUID (`None` on MBR).
    pub unique_guid: Option<Uuid>,
}

/// A complete layout, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLayout {
    pub label: DiskLabel,
    pub sector_size: u64,
    /// GPT disk GUID (`None` on MBR).
    pub disk_guid: Option<Uuid>,
    /// MBR disk signature (0 on GPT, where the protective MBR has none).
    pub mbr_signature: u32,
    pub partitions: Vec<PlannedPartition>,
}

impl PartitionLayout {
    /// The partition with `role`, if the layout has one.
    pub fn get(&self, role: PartitionRole) -> Option<&PlannedPartition> {
        self.partitions.iter().find(|p| p.role == role)
    }

    /// PARTUUID of `partition` as blkid prints it.
    pub fn part_uuid(&self, partition: &PlannedPartition) -> String {
        match partition.unique_guid {
            Some(guid) => guid.hyphenated().to_string(),
            None => format!("{:08x}-{:02x}", self.mbr_signature, partition.number),
        }
    }

    /// The layout as the table [`super::read_table`] will read back.
    pub fn to_table(&self) -> PartitionTable {
        PartitionTable {
            label: self.label,
            sector_size: self.sector_size,
            disk_id: match self.disk_guid {
                Some(guid) => guid.hyphenated().to_string(),
                None => format!("{:08x}", self.mbr_signature),
            },
            partitions: self
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    number: p.number,
                    offset: p.offset,
                    length: p.length,
                    part_uuid: self.part_uuid(p),
                    part_type: p.part_type,
                    name: (self.label == DiskLabel::Gpt).then(|| "primary".to_string()),
                    bootable: p.bootable,
                })
                .collect(),
        }
    }
}

/// Plans the layout for a disk of `disk_size` bytes with random ids.
pub fn plan_layout(
    spec: &PartitionImageSpec,
    disk_size: u64,
    sector_size: u64,
) -> Result<PartitionLayout, PartitionError> {
    plan_layout_with(spec, disk_size, sector_size, &mut rand::rng())
}

/// Plans the layout, drawing ids from `rng` (tests pass a seeded one).
pub fn plan_layout_with(
    spec: &PartitionImageSpec,
    disk_size: u64,
    sector_size: u64,
    rng: &mut dyn RngCore,
) -> Result<PartitionLayout, PartitionError> {
    spec.validate()?;
    let label = spec.label();
    let wanted = spec.wanted();
    if label == DiskLabel::Msdos && wanted.len() > 4 {
        let roles: Vec<&str> = wanted.iter().map(|w| w.0.ipa_name()).collect();
        return Err(PartitionError::InvalidSpec(format!(
            "an MBR holds at most 4 primary partitions; this layout needs {} ({})",
            wanted.len(),
            roles.join(", ")
        )));
    }
    let gpt = label == DiskLabel::Gpt;
    let mut offset = MIB;
    let mut partitions = Vec::with_capacity(wanted.len());
    for (i, (role, mb, part_type, bootable)) in wanted.into_iter().enumerate() {
        let length = mb * MIB;
        partitions.push(PlannedPartition {
            number: i as u32 + 1,
            role,
            offset,
            length,
            part_type,
            bootable,
            unique_guid: gpt.then(|| random_uuid(rng)),
        });
        offset += length;
    }
    check_fits(label, offset, disk_size, sector_size)?;
    Ok(PartitionLayout {
        label,
        sector_size,
        disk_guid: gpt.then(|| random_uuid(rng)),
        mbr_signature: if gpt { 0 } else { random_signature(rng) },
        partitions,
    })
}

fn check_fits(label: DiskLabel, end: u64, disk_size: u64, ss: u64) -> Result<(), PartitionError> {
    let sectors = disk_size / ss;
    let (limit, what) = match label {
        DiskLabel::Gpt => (
            gpt::usable_end(sectors, ss) * ss,
            "the end of the GPT usable area",
        ),
        DiskLabel::Msdos => (
            (sectors * ss).min((1u64 << 32) * ss),
            "the end of the disk or the 2^32-sector MBR limit",
        ),
    };
    if end > limit {
        return Err(PartitionError::DiskTooSmall {
            path: Default::default(),
            size: disk_size,
            detail: format!("the partitions end at byte {end}, past {what} (byte {limit})"),
        });
    }
    Ok(())
}

/// A random version 4 UUID.
pub(crate) fn random_uuid(rng: &mut dyn RngCore) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn random_signature(rng: &mut dyn RngCore) -> u32 {
    loop {
        let value = rng.next_u32();
        if value != 0 {
            return value;
        }
    }
}

/// Writes `layout` as the disk's partition table (a fresh table: whatever
/// table was there is replaced), clearing the gap before the first
/// partition.
pub fn write_layout(disk: &Disk, layout: &PartitionLayout) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    if layout.sector_size != ss {
        return Err(PartitionError::InvalidSpec(format!(
            "layout planned for {}-byte sectors, disk has {ss}-byte sectors",
            layout.sector_size
        )));
    }
    let end = layout.partitions.last().map_or(0, |p| p.offset + p.length);
    check_fits(layout.label, end, disk.size(), ss).map_err(|e| with_path(e, disk))?;
    let first = layout.partitions.first().map_or(MIB, |p| p.offset);
    match layout.label {
        DiskLabel::Gpt => write_gpt(disk, layout)?,
        DiskLabel::Msdos => write_mbr(disk, layout)?,
    }
    // Stale boot loaders or GPT headers in the gap would be found later.
    let gap_start = if layout.label == DiskLabel::Gpt {
        gpt::first_usable(ss) * ss
    } else {
        ss
    };
    if first > gap_start {
        disk.zero(gap_start, first - gap_start)?;
    }
    if layout.label == DiskLabel::Msdos {
        clear_stale_backup_gpt(disk, end)?;
    }
    disk.sync()
}

fn with_path(error: PartitionError, disk: &Disk) -> PartitionError {
    match error {
        PartitionError::DiskTooSmall { size, detail, .. } => PartitionError::DiskTooSmall {
            path: disk.path().to_path_buf(),
            size,
            detail,
        },
        other => other,
    }
}

fn write_gpt(disk: &Disk, layout: &PartitionLayout) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let guid = layout.disk_guid.unwrap_or_default();
    let (primary, backup) = gpt::fresh_headers(disk.sectors(), ss, guid);
    let entries: Vec<gpt::Entry> = layout
        .partitions
        .iter()
        .map(|p| gpt::Entry {
            index: p.number - 1,
            type_guid: match p.part_type {
                PartitionType::Gpt(t) => t,
                PartitionType::Mbr(_) => types::LINUX_DATA,
            },
            unique_guid: p.unique_guid.unwrap_or_default(),
            first_lba: p.offset / ss,
            last_lba: (p.offset + p.length) / ss - 1,
            attributes: 0,
            name: "primary".to_string(),
        })
        .collect();
    gpt::write_table(disk, &primary, &backup, &entries)
}

fn write_mbr(disk: &Disk, layout: &PartitionLayout) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let mut entries = [MbrEntry::default(); 4];
    for (slot, p) in layout.partitions.iter().enumerate().take(4) {
        entries[slot] = MbrEntry {
            status: if p.bootable { 0x80 } else { 0 },
            kind: match p.part_type {
                PartitionType::Mbr(k) => k,
                PartitionType::Gpt(_) => mbr::TYPE_LINUX,
            },
            start: (p.offset / ss) as u32,
            count: (p.length / ss) as u32,
        };
    }
    mbr::write_fresh(disk, layout.mbr_signature, &entries)?;
    // parted's mklabel msdos also drops a GPT header at sector 1.
    disk.zero(ss, ss)
}

/// A backup GPT header left at the disk's end would make tools see a
/// damaged GPT; clear it when no partition covers that sector.
fn clear_stale_backup_gpt(disk: &Disk, partitions_end: u64) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let last = disk.size() / ss * ss - ss;
    if last >= partitions_end && last >= ss {
        let sector = disk.read_at(last, ss as usize)?;
        if sector.starts_with(gpt::SIGNATURE) {
            disk.zero(last, ss)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    const GIB: u64 = 1024 * MIB;

    fn plan(spec: &PartitionImageSpec) -> Result<PartitionLayout, PartitionError> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        plan_layout_with(spec, 8 * GIB, 512, &mut rng)
    }

    fn roles(layout: &PartitionLayout) -> Vec<(PartitionRole, u64, u64)> {
        layout
            .partitions
            .iter()
            .map(|p| (p.role, p.offset / MIB, p.length / MIB))
            .collect()
    }

    #[test]
    fn uefi_layout_matches_ipa_order() {
        let spec = PartitionImageSpec {
            root_mb: 1024,
            swap_mb: 512,
            ephemeral_mb: 256,
            configdrive_mb: 1,
            boot_mode: BootMode::Uefi,
            ..Default::default()
        };
        let layout = plan(&spec).unwrap();
        assert_eq!(layout.label, DiskLabel::Gpt);
        use PartitionRole::*;
        assert_eq!(
            roles(&layout),
            [
                (EfiSystem, 1, 550),
                (Ephemeral, 551, 256),
                (Swap, 807, 512),
                (ConfigDrive, 1319, 1),
                (Root, 1320, 1024)
            ]
        );
        assert_eq!(
            layout.partitions[0].part_type,
            PartitionType::Gpt(types::EFI_SYSTEM)
        );
        assert_eq!(
            layout.partitions[2].part_type,
            PartitionType::Gpt(types::LINUX_SWAP)
        );
        assert!(layout
            .partitions
            .iter()
            .all(|p| p.unique_guid.is_some() && !p.bootable));
    }

    #[test]
    fn bios_msdos_marks_root_active() {
        let spec = PartitionImageSpec {
            root_mb: 100,
            swap_mb: 10,
            ..Default::default()
        };
        let layout = plan(&spec).unwrap();
        assert_eq!(layout.label, DiskLabel::Msdos);
        assert_ne!(layout.mbr_signature, 0);
        let root = layout.get(PartitionRole::Root).unwrap();
        assert!(root.bootable);
        assert_eq!(root.number, 2);
        assert_eq!(
            layout.part_uuid(root),
            format!("{:08x}-02", layout.mbr_signature)
        );
        assert_eq!(layout.partitions[0].part_type, PartitionType::Mbr(0x82));
    }

    #[test]
    fn bios_gpt_gets_a_bios_boot_partition_but_ppc64_gets_prep() {
        let spec = PartitionImageSpec {
            root_mb: 100,
            disk_label: Some(DiskLabel::Gpt),
            ..Default::default()
        };
        let layout = plan(&spec).unwrap();
        assert_eq!(layout.partitions[0].role, PartitionRole::BiosBoot);
        assert_eq!(layout.partitions[0].length, MIB);
        assert_eq!(
            layout.partitions[0].part_type,
            PartitionType::Gpt(types::BIOS_BOOT)
        );
        let ppc = PartitionImageSpec {
            cpu_arch: "ppc64le".into(),
            ..spec.clone()
        };
        let layout = plan(&ppc).unwrap();
        assert_eq!(layout.partitions[0].role, PartitionRole::PrepBoot);
        assert_eq!(layout.partitions[0].length, 8 * MIB);
        let ppc_mbr = PartitionImageSpec {
            disk_label: None,
            ..ppc
        };
        let layout = plan(&ppc_mbr).unwrap();
        assert_eq!(layout.partitions[0].part_type, PartitionType::Mbr(0x41));
        assert!(layout.partitions[0].bootable);
        assert!(!layout.get(PartitionRole::Root).unwrap().bootable);
    }

    #[test]
    fn uefi_on_msdos_has_an_active_fat32_esp() {
        let spec = PartitionImageSpec {
            root_mb: 100,
            boot_mode: BootMode::Uefi,
            disk_label: Some(DiskLabel::Msdos),
            ..Default::default()
        };
        let layout = plan(&spec).unwrap();
        let esp = &layout.partitions[0];
        assert_eq!(
            (esp.part_type, esp.bootable),
            (PartitionType::Mbr(0x0c), true)
        );
        assert!(!layout.get(PartitionRole::Root).unwrap().bootable);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(plan(&PartitionImageSpec::default()).is_err());
        let five = PartitionImageSpec {
            root_mb: 10,
            swap_mb: 10,
            ephemeral_mb: 10,
            configdrive_mb: 1,
            boot_mode: BootMode::Uefi,
            disk_label: Some(DiskLabel::Msdos),
            ..Default::default()
        };
        let err = plan(&five).unwrap_err();
        assert!(err.to_string().contains("at most 4 primary"), "{err}");
        let huge = PartitionImageSpec {
            root_mb: u64::MAX,
            ..Default::default()
        };
        assert!(plan(&huge).is_err());
        let big = PartitionImageSpec {
            root_mb: 8 * 1024,
            ..Default::default()
        };
        assert!(matches!(
            plan(&big),
            Err(PartitionError::DiskTooSmall { .. })
        ));
        // The GPT backup needs the last 33 sectors.
        let exact = PartitionImageSpec {
            root_mb: 8 * 1024 - 2,
            boot_mode: BootMode::Uefi,
            efi_system_partition_mb: 1,
            ..Default::default()
        };
        assert!(matches!(
            plan(&exact),
            Err(PartitionError::DiskTooSmall { .. })
        ));
        let fits_gpt = PartitionImageSpec {
            root_mb: 8 * 1024 - 3,
            ..exact
        };
        assert!(plan(&fits_gpt).is_ok());
        let fits_mbr = PartitionImageSpec {
            root_mb: 8 * 1024 - 1,
            ..Default::default()
        };
        assert!(plan(&fits_mbr).is_ok());
    }

    #[test]
    fn mbr_cannot_address_past_two_tib() {
        let spec = PartitionImageSpec {
            root_mb: 3 * 1024 * 1024,
            ..Default::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let err = plan_layout_with(&spec, 4 * 1024 * GIB, 512, &mut rng).unwrap_err();
        assert!(err.to_string().contains("MBR limit"), "{err}");
        let gpt = PartitionImageSpec {
            disk_label: Some(DiskLabel::Gpt),
            ..spec
        };
        assert!(plan_layout_with(&gpt, 4 * 1024 * GIB, 512, &mut rng).is_ok());
    }
}
