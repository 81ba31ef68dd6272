//! The partition table of a disk as one list, whichever kind it is, with
//! the identifiers blkid and lsblk print.

use std::fmt;

use uuid::Uuid;

use super::disk::Disk;
use super::{gpt, mbr, DiskLabel, PartitionError};

/// A partition's type: a GPT type GUID or an MBR type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartitionType {
    Gpt(Uuid),
    Mbr(u8),
}

impl fmt::Display for PartitionType {
    /// As sfdisk prints it: upper-case GUID, or hex byte (`83`, `c`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionType::Gpt(guid) => {
                write!(f, "{}", guid.hyphenated().encode_upper(&mut [0; 36]))
            }
            PartitionType::Mbr(byte) => write!(f, "{byte:x}"),
        }
    }
}

/// One partition of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number as Linux numbers it (`sda3` is 3; MBR logical
    /// partitions start at 5).
    pub number: u32,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// PARTUUID as blkid prints it: a lower-case GUID for GPT,
    /// `<disk signature>-<number>` in hex for MBR.
    pub part_uuid: String,
    pub part_type: PartitionType,
    /// GPT partition name (`None` on MBR).
    pub name: Option<String>,
    /// MBR boot indicator, or GPT attribute bit 2 (legacy BIOS bootable).
    pub bootable: bool,
}

/// A disk's partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTable {
    pub label: DiskLabel,
    /// Logical sector size the table is laid out in.
    pub sector_size: u64,
    /// PTUUID as lsblk prints it: the GPT disk GUID, or the MBR signature
    /// as 8 hex digits.
    pub disk_id: String,
    pub partitions: Vec<PartitionInfo>,
}

impl PartitionTable {
    /// The partition numbered `number`.
    pub fn partition(&self, number: u32) -> Option<&PartitionInfo> {
        self.partitions.iter().find(|p| p.number == number)
    }
}

impl Disk {
    /// Reads this disk's table: GPT (trying 512- and 4096-byte sectors)
    /// behind a protective MBR or no MBR at all, else MBR.
    pub fn read_table(&self) -> Result<Option<PartitionTable>, PartitionError> {
        let sector0 = self.read_up_to(0, 512)?;
        let parsed = mbr::parse(&sector0);
        match &parsed {
            Some(m) if !m.is_protective() => return self.mbr_table(m).map(Some),
            _ => {}
        }
        match self.find_gpt()? {
            Some((disk, gpt)) => Ok(Some(gpt_table(&disk, &gpt))),
            None => match parsed {
                // A protective MBR with no GPT behind it.
                Some(_) => Err(PartitionError::Corrupt {
                    table: "GPT",
                    path: self.path().to_path_buf(),
                    detail: "protective MBR found but no GPT header".to_string(),
                }),
                None => Ok(None),
            },
        }
    }

    /// The GPT and the sector size it was found with.
    pub(crate) fn find_gpt(&self) -> Result<Option<(Disk, gpt::Gpt)>, PartitionError> {
        let mut first_error = None;
        let other = if self.sector_size() == 512 { 4096 } else { 512 };
        for size in [self.sector_size(), other] {
            let disk = self.with_sector_size(size)?;
            match gpt::read(&disk) {
                Ok(Some(found)) => return Ok(Some((disk, found))),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }

    fn mbr_table(&self, table: &mbr::Mbr) -> Result<PartitionTable, PartitionError> {
        let ss = self.sector_size();
        let id = |number: u32| format!("{:08x}-{number:02x}", table.signature);
        let info = |number: u32, entry: &mbr::MbrEntry, start: u64| PartitionInfo {
            number,
            offset: start * ss,
            length: u64::from(entry.count) * ss,
            part_uuid: id(number),
            part_type: PartitionType::Mbr(entry.kind),
            name: None,
            bootable: entry.status == 0x80,
        };
        let mut partitions = Vec::new();
        for (slot, entry) in table.entries.iter().enumerate() {
            if entry.is_used() {
                partitions.push(info(slot as u32 + 1, entry, u64::from(entry.start)));
            }
        }
        for entry in table
            .entries
            .iter()
            .filter(|e| e.is_used() && mbr::is_extended(e.kind))
        {
            for logical in mbr::read_logicals(self, entry)? {
                partitions.push(info(logical.number, &logical.entry, logical.start));
            }
        }
        Ok(PartitionTable {
            label: DiskLabel::Msdos,
            sector_size: ss,
            disk_id: format!("{:08x}", table.signature),
            partitions,
        })
    }
}

fn gpt_table(disk: &Disk, found: &gpt::Gpt) -> PartitionTable {
    let ss = disk.sector_size();
    let mut partitions: Vec<PartitionInfo> = found
        .entries
        .iter()
        .map(|e| PartitionInfo {
            number: e.index + 1,
            offset: e.first_lba * ss,
            length: (e.last_lba - e.first_lba + 1) * ss,
            part_uuid: e.unique_guid.hyphenated().to_string(),
            part_type: PartitionType::Gpt(e.type_guid),
            name: Some(e.name.clone()),
            bootable: e.attributes & 4 != 0,
        })
        .collect();
    partitions.sort_by_key(|p| p.number);
    PartitionTable {
        label: DiskLabel::Gpt,
        sector_size: ss,
        disk_id: found.header.disk_guid.hyphenated().to_string(),
        partitions,
    }
}

/// IPA's `partition_index_to_path`: `/dev/sda` + 1 is `/dev/sda1`,
/// `/dev/nvme0n1` + 1 is `/dev/nvme0n1p1`, iSCSI paths get `-part1`.
pub fn partition_index_to_path(device: &str, index: u32) -> String {
    if device.contains("iqn.2008-10.org.openstack:") {
        format!("{device}-part{index}")
    } else if device.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{device}p{index}")
    } else {
        format!("{device}{index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths_follow_ipa() {
        assert_eq!(partition_index_to_path("/dev/sda", 1), "/dev/sda1");
        assert_eq!(partition_index_to_path("/dev/nvme0n1", 2), "/dev/nvme0n1p2");
        assert_eq!(
            partition_index_to_path(
                "/dev/disk/by-path/ip-1:3260-iscsi-iqn.2008-10.org.openstack:x-lun-1",
                3
            ),
            "/dev/disk/by-path/ip-1:3260-iscsi-iqn.2008-10.org.openstack:x-lun-1-part3"
        );
    }

    /// Valid GPT and MBR disks, damaged at random (table areas, EBRs,
    /// truncation, growth): every reader and fixer must answer, never
    /// panic. Only the first and last 64 KiB of each disk hold data.
    #[test]
    fn readers_survive_damaged_and_truncated_disks() {
        use crate::partition::layout::{plan_layout_with, write_layout, PartitionImageSpec};
        use crate::partition::{wholedisk, BootMode, DiskLabel};
        use rand::{Rng, SeedableRng};
        use std::os::unix::fs::FileExt;
        const LEN: u64 = 6 << 20;
        const EDGE: usize = 64 * 1024;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut seeds = Vec::new();
        for (label, sector) in [
            (DiskLabel::Gpt, 512),
            (DiskLabel::Msdos, 512),
            (DiskLabel::Gpt, 4096),
        ] {
            let _ = std::fs::remove_file(&path);
            std::fs::File::create(&path).unwrap().set_len(LEN).unwrap();
            let disk = Disk::open_with(&path, true, sector).unwrap();
            let spec = PartitionImageSpec {
                root_mb: 2,
                swap_mb: 1,
                boot_mode: BootMode::Uefi,
                efi_system_partition_mb: 1,
                disk_label: Some(label),
                ..Default::default()
            };
            let layout = plan_layout_with(&spec, disk.size(), sector, &mut rng).unwrap();
            write_layout(&disk, &layout).unwrap();
            let head = disk.read_at(0, EDGE).unwrap();
            let tail = disk.read_at(LEN - EDGE as u64, EDGE).unwrap();
            seeds.push((head, tail));
        }
        // An MBR with an extended partition in the gap before 1 MiB whose
        // EBR chain loops back on itself.
        let mut ext = seeds[1].clone();
        ext.0[446 + 48..446 + 64]
            .copy_from_slice(&[0, 0, 0, 0, 5, 0, 0, 0, 0x40, 0, 0, 0, 0x40, 0, 0, 0]);
        let ebr = 0x40 * 512;
        ext.0[ebr + 446..ebr + 462]
            .copy_from_slice(&[0, 0, 0, 0, 0x83, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0]);
        ext.0[ebr + 462..ebr + 478]
            .copy_from_slice(&[0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0]);
        ext.0[ebr + 510] = 0x55;
        ext.0[ebr + 511] = 0xaa;
        seeds.push(ext);
        for round in 0..300 {
            let (mut head, mut tail) = seeds[round % seeds.len()].clone();
            for _ in 0..rng.random_range(1..24) {
                let area = if rng.random_bool(0.6) {
                    &mut head
                } else {
                    &mut tail
                };
                let at = rng.random_range(0..EDGE);
                area[at] = rng.random();
            }
            let len = if rng.random_bool(0.2) {
                rng.random_range(0..LEN)
            } else {
                LEN
            };
            let _ = std::fs::remove_file(&path);
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(len).unwrap();
            let head_len = (len as usize).min(EDGE);
            file.write_all_at(&head[..head_len], 0).unwrap();
            if len >= 2 * EDGE as u64 {
                file.write_all_at(&tail, len - EDGE as u64).unwrap();
            }
            let disk = Disk::open(&path).unwrap();
            let _ = disk.read_table();
            let _ = crate::partition::read_partitions(&path);
            let _ = wholedisk::validate_partitioning(&path);
            let _ = wholedisk::fix_gpt_partition(&path);
            if rng.random_bool(0.3) {
                // A whole-disk image on a bigger disk.
                file.set_len(len + 3 * 1024 * 1024).unwrap();
                let disk = Disk::open(&path).unwrap();
                let _ = wholedisk::prepare_config_drive_partition(&disk, 1000);
            }
        }
    }

    #[test]
    fn types_print_as_sfdisk_does() {
        assert_eq!(PartitionType::Mbr(0x0c).to_string(), "c");
        assert_eq!(PartitionType::Mbr(0x83).to_string(), "83");
        assert_eq!(
            PartitionType::Gpt(gpt::types::EFI_SYSTEM).to_string(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
    }
}
