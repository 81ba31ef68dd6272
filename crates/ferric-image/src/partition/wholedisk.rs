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
    validate_partitioning_on(&disk)
}

/// [`validate_partitioning`] on an open disk.
pub fn validate_partitioning_on(disk: &Disk) -> Result<PartitionTable, PartitionError> {
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
    fix_gpt_partition_on(&Disk::open(path)?)
}

/// [`fix_gpt_partition`] on an open disk.
pub fn fix_gpt_partition_on(disk: &Disk) -> Result<bool, PartitionError> {
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
    create_config_drive_partition_on(&Disk::open(path)?, image)
}

/// [`create_config_drive_partition`] on an open disk (a remote one
/// included).
pub fn create_config_drive_partition_on(
    disk: &Disk,
    image: &ConfigDriveImage,
) -> Result<ConfigDrivePlacement, PartitionError> {
    let placement = prepare_config_drive_partition(disk, image.size())?;
    write_config_drive(disk, &placement, image)?;
    Ok(placement)
}

/// Finds the `config-2` partition or adds one for an image of
/// `image_size` bytes, fixing the GPT first; writes nothing else.
pub fn prepare_config_drive_partition(
    disk: &Disk,
    image_size: u64,
) -> Result<ConfigDrivePlacement, PartitionError> {
    let table = validate_partitioning_on(disk)?;
    let existing = labelled_partition(disk, &table)?;
    if image_size > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge {
            mib: image_size.div_ceil(MIB),
        }
        .into());
    }
    fix_gpt_partition_on(disk)?;
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
    let table = validate_partitioning_on(disk)?;
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
    let mut writer = RangeWriter::new(disk, placement.offset(), placement.length());
    image.write_to(&mut writer)?;
    writer.finish()?;
    disk.sync()
}

/// What a [`RangeWriter`] gathers before writing.
const RANGE_CHUNK: usize = 1024 * 1024;

/// A `Write` into `length` bytes of a disk from `offset`, gathered into
/// pieces of [`RANGE_CHUNK`] bytes: an inflating reader writes odd sizes,
/// and each odd-sized write to a remote disk would cost a read of its
/// blocks. [`RangeWriter::finish`] writes the last piece.
pub(crate) struct RangeWriter<'a> {
    disk: &'a Disk,
    /// Where `buf` goes.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
}

impl<'a> RangeWriter<'a> {
    pub(crate) fn new(disk: &'a Disk, offset: u64, length: u64) -> Self {
        RangeWriter {
            disk,
            pos: offset,
            end: offset.saturating_add(length),
            buf: Vec::new(),
        }
    }

    fn write_out(&mut self) -> Result<(), PartitionError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.disk.write_at(self.pos, &self.buf)?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is left.
    pub(crate) fn finish(mut self) -> Result<(), PartitionError> {
        self.write_out()
    }
}

impl Write for RangeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.end - self.pos - self.buf.len() as u64;
        if buf.len() as u64 > room {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "past the end of the partition",
            ));
        }
        if self.buf.capacity() == 0 {
            self.buf
                .reserve_exact(room.min(RANGE_CHUNK as u64) as usize);
        }
        let take = (RANGE_CHUNK - self.buf.len()).min(buf.len());
        self.buf.extend_from_slice(&buf[..take]);
        if self.buf.len() == RANGE_CHUNK {
            self.write_out()
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::writer::SharedDevice;
    use crate::BlockDevice;

    /// A device in memory that records where each write went.
    struct Recorder {
        data: Vec<u8>,
        writes: Arc<Mutex<Vec<(u64, usize)>>>,
    }

    impl BlockDevice for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }

        fn size(&self) -> u64 {
            self.data.len() as u64
        }

        fn read_at(&mut self, buf: &mut [u8], offset: u64) -> Result<(), String> {
            let at = offset as usize;
            buf.copy_from_slice(&self.data[at..at + buf.len()]);
            Ok(())
        }

        fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), String> {
            let at = offset as usize;
            self.data[at..at + bytes.len()].copy_from_slice(bytes);
            self.writes.lock().unwrap().push((offset, bytes.len()));
            Ok(())
        }

        fn zero_all(&mut self) -> Result<bool, String> {
            Ok(false)
        }

        fn sync(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn odd_sized_writes_reach_the_disk_in_whole_chunks() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let device = Recorder {
            data: vec![0u8; 4 * RANGE_CHUNK],
            writes: writes.clone(),
        };
        let disk = Disk::on_device(SharedDevice::new(Box::new(device)), 512).unwrap();
        let length = 3 * RANGE_CHUNK as u64;
        let mut writer = RangeWriter::new(&disk, 4096, length);
        let data: Vec<u8> = (0..2 * RANGE_CHUNK + 4099)
            .map(|i| (i % 241) as u8)
            .collect();
        for piece in data.chunks(32_771) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap();
        let chunk = RANGE_CHUNK as u64;
        assert_eq!(
            *writes.lock().unwrap(),
            [
                (4096, RANGE_CHUNK),
                (4096 + chunk, RANGE_CHUNK),
                (4096 + 2 * chunk, 4099)
            ]
        );
        assert_eq!(disk.read_at(4096, data.len()).unwrap(), data);

        let mut full = RangeWriter::new(&disk, 0, 10);
        full.write_all(&[1; 10]).unwrap();
        let err = full.write_all(&[1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }

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
