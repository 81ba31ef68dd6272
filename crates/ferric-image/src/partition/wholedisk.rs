//! After a whole-disk image is written: IPA's checks and fixes of its
//! table (`_validate_partitioning`, `fix_gpt_partition`) and the config
//! drive partition (`create_config_drive_partition`).
//!
//! The config drive goes to a partition labelled `config-2` when the
//! image has one; otherwise a new partition is added in the last 64 MiB:
//! on GPT as `sgdisk -n 0:-64MB:0` makes it (start aligned down to 1 MiB,
//! end at the last usable sector, Linux data type, unnamed, random GUID),
//! on MBR as `parted mkpart primary fat32 -64MiB -0` makes it (type `0c`),
//! below the 2^32-sector limit on larger disks, refused when the four
//! primary slots are taken.

use std::io::{self, Write};
use std::path::Path;

use super::disk::Disk;
use super::gpt::{self, types};
use super::mbr::{self, MbrEntry};
use super::probe;
use super::table::{PartitionInfo, PartitionTable};
use super::{DiskLabel, PartitionError};
use crate::configdrive::{
    ConfigDriveError, ConfigDriveImage, CONFIG_DRIVE_LABEL, MAX_CONFIG_DRIVE_SIZE,
};
use crate::Target;

const MIB: u64 = 1024 * 1024;

/// IPA's `_validate_partitioning`: the disk must have a readable table
/// with at least one partition; IPA's texts otherwise.
pub fn validate_partitioning(path: &Path) -> Result<PartitionTable, PartitionError> {
    let disk = Disk::open_read_only(path)?;
    validate_disk(&disk)
}

fn validate_disk(disk: &Disk) -> Result<PartitionTable, PartitionError> {
    let table = match disk.read_table() {
        Ok(Some(table)) => table,
        Ok(None) => {
            return Err(PartitionError::NoValidTable(format!(
                "{}: unrecognised disk label",
                disk.path().display()
            )))
        }
        Err(e) => return Err(PartitionError::NoValidTable(e.to_string())),
    };
    if table.partitions.is_empty() {
        return Err(PartitionError::NoPartitions(disk.path().to_path_buf()));
    }
    Ok(table)
}

/// IPA's `fix_gpt_partition`: on a GPT disk whose backup header is not at
/// the end (an image smaller than the disk), moves the backup there as
/// `sgdisk -e` does. Returns whether anything changed.
pub fn fix_gpt_partition(path: &Path) -> Result<bool, PartitionError> {
    fix_gpt(&Disk::open(path)?)
}

fn fix_gpt(disk: &Disk) -> Result<bool, PartitionError> {
    let sector0 = disk.read_up_to(0, 512)?;
    if mbr::parse(&sector0).is_some_and(|m| !m.is_protective()) {
        return Ok(false);
    }
    let Some((gdisk, found)) = disk.find_gpt()? else {
        return Ok(false);
    };
    if !gpt::backup_misplaced(&found, gdisk.sectors()) {
        return Ok(false);
    }
    tracing::info!(disk = %disk.path().display(), "moving the backup GPT to the end of the disk");
    gpt::move_backup_to_end(&gdisk, &found)?;
    gdisk.sync()?;
    Ok(true)
}

/// Where the config drive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDrivePlacement {
    pub label: DiskLabel,
    /// The partition; its offset and length are the target to write.
    pub partition: PartitionInfo,
    /// False when an existing `config-2` partition is reused.
    pub created: bool,
}

impl ConfigDrivePlacement {
    /// Byte offset of the partition.
    pub fn offset(&self) -> u64 {
        self.partition.offset
    }

    /// Length of the partition in bytes.
    pub fn length(&self) -> u64 {
        self.partition.length
    }

    /// The partition as a pipeline [`Target`] on `disk`.
    pub fn target(&self, disk: &Path) -> Target {
        Target {
            path: disk.to_path_buf(),
            offset: self.offset(),
            length: Some(self.length()),
        }
    }
}

/// IPA's `create_config_drive_partition`, all of it: finds or makes the
/// partition and writes `image` into it.
pub fn create_config_drive_partition(
    path: &Path,
    image: &ConfigDriveImage,
) -> Result<ConfigDrivePlacement, PartitionError> {
    let disk = Disk::open(path)?;
    let placement = prepare_config_drive_partition(&disk, image.size())?;
    write_config_drive(&disk, &placement, image)?;
    Ok(placement)
}

/// Finds the `config-2` partition or adds one for an image of
/// `image_size` bytes, fixing the GPT first; writes nothing else.
pub fn prepare_config_drive_partition(
    disk: &Disk,
    image_size: u64,
) -> Result<ConfigDrivePlacement, PartitionError> {
    let table = validate_disk(disk)?;
    let existing = labelled_partition(disk, &table)?;
    if image_size > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge {
            mib: image_size.div_ceil(MIB),
        }
        .into());
    }
    fix_gpt(disk)?;
    if let Some(partition) = existing {
        if partition.length < image_size {
            return Err(PartitionError::NoSpace {
                path: disk.path().to_path_buf(),
                needed: image_size,
                detail: format!(
                    "the existing config-2 partition {} holds only {} bytes",
                    partition.number, partition.length
                ),
            });
        }
        return Ok(ConfigDrivePlacement {
            label: table.label,
            partition,
            created: false,
        });
    }
    let number = match table.label {
        DiskLabel::Gpt => add_gpt_partition(disk)?,
        DiskLabel::Msdos => add_mbr_partition(disk)?,
    };
    let table = validate_disk(disk)?;
    let partition = table
        .partition(number)
        .cloned()
        .ok_or_else(|| PartitionError::Corrupt {
            table: "partition table",
            path: disk.path().to_path_buf(),
            detail: format!("the new partition {number} cannot be read back"),
        })?;
    Ok(ConfigDrivePlacement {
        label: table.label,
        partition,
        created: true,
    })
}

/// IPA's `get_labelled_partition`: the partition whose file system label
/// is `config-2` (any case); two of them is an error.
fn labelled_partition(
    disk: &Disk,
    table: &PartitionTable,
) -> Result<Option<PartitionInfo>, PartitionError> {
    let mut found: Option<PartitionInfo> = None;
    for partition in &table.partitions {
        if partition.offset.saturating_add(partition.length) > disk.size() {
            continue;
        }
        let info = probe::probe_at(disk, partition.offset, partition.length)?;
        let is_config = info
            .and_then(|i| i.label)
            .is_some_and(|l| l.eq_ignore_ascii_case(CONFIG_DRIVE_LABEL));
        if !is_config {
            continue;
        }
        if let Some(first) = &found {
            return Err(PartitionError::DuplicateLabel {
                path: disk.path().to_path_buf(),
                found: format!(
                    "partition {} and partition {}",
                    first.number, partition.number
                ),
            });
        }
        found = Some(partition.clone());
    }
    Ok(found)
}

fn add_gpt_partition(disk: &Disk) -> Result<u32, PartitionError> {
    let (gdisk, found) = disk.find_gpt()?.ok_or_else(|| PartitionError::Corrupt {
        table: "GPT",
        path: disk.path().to_path_buf(),
        detail: "the GPT disappeared while adding the config drive".to_string(),
    })?;
    let ss = gdisk.sector_size();
    let size = MAX_CONFIG_DRIVE_SIZE / ss;
    let align = MIB / ss;
    let header = &found.header;
    // sgdisk -n 0:-64MB:0: start 64 MiB before the last usable sector,
    // aligned down; end at the last usable sector.
    let start = header.last_usable.saturating_sub(size) / align * align;
    let no_space = |detail: String| PartitionError::NoSpace {
        path: disk.path().to_path_buf(),
        needed: MAX_CONFIG_DRIVE_SIZE,
        detail,
    };
    if start < header.first_usable {
        return Err(no_space("the disk is smaller than 64 MiB".to_string()));
    }
    if let Some(e) = found.entries.iter().find(|e| e.last_lba >= start) {
        return Err(no_space(format!(
            "partition {} ends at sector {}, inside the last 64 MiB (from sector {start})",
            e.index + 1,
            e.last_lba
        )));
    }
    let index =
        gpt::free_index(&found).ok_or_else(|| no_space("every GPT entry is in use".to_string()))?;
    let entry = gpt::Entry {
        index,
        type_guid: types::LINUX_DATA,
        unique_guid: uuid::Uuid::new_v4(),
        first_lba: start,
        last_lba: header.last_usable,
        attributes: 0,
        name: String::new(),
    };
    gpt::add_entry(&gdisk, &found, entry)?;
    gdisk.sync()?;
    Ok(index + 1)
}

fn add_mbr_partition(disk: &Disk) -> Result<u32, PartitionError> {
    let sector0 = disk.read_at(0, 512)?;
    let table = mbr::parse(&sector0).ok_or_else(|| PartitionError::Corrupt {
        table: "MBR",
        path: disk.path().to_path_buf(),
        detail: "the MBR disappeared while adding the config drive".to_string(),
    })?;
    let parts = table.primary_count();
    if parts > 3 {
        return Err(PartitionError::MbrFull {
            path: disk.path().to_path_buf(),
            parts,
        });
    }
    let (start, end) = mbr_config_drive_range(disk.sectors(), disk.sector_size());
    let overlapping = table
        .entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.is_used() && u64::from(e.start) + u64::from(e.count) > start);
    if let Some((slot, e)) = overlapping {
        return Err(PartitionError::NoSpace {
            path: disk.path().to_path_buf(),
            needed: MAX_CONFIG_DRIVE_SIZE,
            detail: format!(
                "partition {} ends at sector {}, past sector {start} where the config drive \
                 would start",
                slot + 1,
                u64::from(e.start) + u64::from(e.count) - 1
            ),
        });
    }
    let slot = table.entries.iter().position(|e| !e.is_used()).unwrap_or(3);
    let entry = MbrEntry {
        status: 0,
        kind: mbr::TYPE_FAT32_LBA,
        start: start as u32,
        count: (end - start) as u32,
    };
    mbr::set_entry(disk, slot, &entry)?;
    disk.sync()?;
    Ok(slot as u32 + 1)
}

/// (first sector, one past the last) of the MBR config drive partition.
fn mbr_config_drive_range(sectors: u64, ss: u64) -> (u64, u64) {
    let size = MAX_CONFIG_DRIVE_SIZE / ss;
    let align = MIB / ss;
    let limit = 1u64 << 32;
    if sectors > limit {
        // IPA: a small partition just below the MBR's 2 TiB limit.
        let end = limit - align;
        (end - size, end)
    } else {
        (sectors.saturating_sub(size) / align * align, sectors)
    }
}

/// Writes the inflated `image` at the start of the placement's partition.
pub fn write_config_drive(
    disk: &Disk,
    placement: &ConfigDrivePlacement,
    image: &ConfigDriveImage,
) -> Result<(), PartitionError> {
    if image.size() > placement.length() {
        return Err(PartitionError::NoSpace {
            path: disk.path().to_path_buf(),
            needed: image.size(),
            detail: format!("partition {} is too small", placement.partition.number),
        });
    }
    let mut writer = RangeWriter {
        disk,
        pos: placement.offset(),
        end: placement.offset() + placement.length(),
    };
    image.write_to(&mut writer)?;
    disk.sync()
}

/// A `Write` into `[pos, end)` of a disk.
pub(crate) struct RangeWriter<'a> {
    pub(crate) disk: &'a Disk,
    pub(crate) pos: u64,
    pub(crate) end: u64,
}

impl Write for RangeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos + buf.len() as u64 > self.end {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "past the end of the partition",
            ));
        }
        self.disk
            .write_at(self.pos, buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_range_is_the_last_64_mib_or_below_two_tib() {
        let sectors = 4 * 1024 * 1024; // 2 GiB
        assert_eq!(
            mbr_config_drive_range(sectors, 512),
            (sectors - 131_072, sectors)
        );
        let odd = 3_906_250; // not MiB-aligned
        let (start, end) = mbr_config_drive_range(odd, 512);
        assert_eq!((start % 2048, end), (0, odd));
        assert!(end - start >= 131_072);
        let (start, end) = mbr_config_drive_range(6 << 31, 512);
        assert_eq!(end, (1 << 32) - 2048);
        assert_eq!(end - start, 131_072);
    }
}
