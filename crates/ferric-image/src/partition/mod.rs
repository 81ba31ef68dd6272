//! Partition tables as IPA handles them, done natively.
//!
//! * Reading MBR and GPT tables ([`read_table`], [`read_partitions`]), with
//!   partition UUIDs as blkid prints them (`1a2b3c4d-01`, GPT PARTUUIDs).
//! * Partition images: the layout IPA's `work_on_disk` / `make_partitions`
//!   make with parted ([`layout`]), written natively, with the EFI system
//!   partition formatted FAT32 ([`fat`]) and a swap signature ([`swap`]).
//! * Whole-disk images with a config drive ([`wholedisk`]): the backup GPT
//!   moved to the disk's end (`sgdisk -e`) and a 64 MiB partition added at
//!   the end, as IPA's `create_config_drive_partition` does.
//! * The UUIDs IPA reports from `get_partition_uuids` ([`probe`] reads file
//!   system UUIDs the way blkid does for the common file systems).
//! * [`deploy`]: the glue writing a partition image through the streaming
//!   pipeline.
//!
//! Everything works on a [`Disk`]: a block device, an image file, or any
//! [`BlockDevice`](crate::BlockDevice) (a LUN over iSCSI) through
//! [`Disk::on_device`]; the functions taking a path have `_on` variants
//! taking a disk (or, to deploy, a device).

pub mod deploy;
pub mod disk;
pub mod fat;
pub mod gpt;
pub mod layout;
pub mod mbr;
pub mod probe;
pub mod swap;
mod table;
pub mod wholedisk;

use std::path::{Path, PathBuf};

pub use disk::Disk;
pub use layout::{
    plan_layout, write_layout, BootMode, PartitionImageSpec, PartitionLayout, PartitionRole,
    PlannedPartition,
};
pub use table::{partition_index_to_path, PartitionInfo, PartitionTable, PartitionType};
pub use wholedisk::{
    create_config_drive_partition, create_config_drive_partition_on, fix_gpt_partition,
    fix_gpt_partition_on, validate_partitioning, validate_partitioning_on, ConfigDrivePlacement,
};

use crate::configdrive::ConfigDriveError;

/// Partition table kinds, named as parted and IPA name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskLabel {
    /// MBR.
    Msdos,
    Gpt,
}

impl DiskLabel {
    /// From `msdos`, `dos`, `mbr` or `gpt` (IPA's `disk_label` capability).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "msdos" | "dos" | "mbr" => Some(DiskLabel::Msdos),
            "gpt" => Some(DiskLabel::Gpt),
            _ => None,
        }
    }

    /// `msdos` or `gpt`.
    pub fn name(self) -> &'static str {
        match self {
            DiskLabel::Msdos => "msdos",
            DiskLabel::Gpt => "gpt",
        }
    }
}

/// What can go wrong with partition tables and the file systems written
/// into partitions.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot {action} {len} bytes at offset {offset} of {} ({size} bytes)",
        path.display()
    )]
    OutOfRange {
        action: &'static str,
        path: PathBuf,
        offset: u64,
        len: u64,
        size: u64,
    },
    /// IPA's text when a written image has no readable table.
    #[error(
        "Unable to find a valid partition table on the disk after writing the image. The image \
         may be corrupted or it uses a different sector size than the device. Error: {0}"
    )]
    NoValidTable(String),
    /// IPA's text when the table holds no partition.
    #[error("No partitions found on the device {} after writing the image.", .0.display())]
    NoPartitions(PathBuf),
    #[error("{table} on {} is corrupt: {detail}", path.display())]
    Corrupt {
        table: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// IPA's text when an MBR has no slot left for the config drive.
    #[error(
        "Config drive cannot be created. Disk ({}) uses MBR partitioning and already has \
         {parts} primary partitions.",
        path.display()
    )]
    MbrFull { path: PathBuf, parts: usize },
    /// IPA's text for two partitions labelled `config-2`.
    #[error(
        "More than one partition with label \"config-2\" exists on device {}: {found}.",
        path.display()
    )]
    DuplicateLabel { path: PathBuf, found: String },
    #[error(
        "no free space for a {needed}-byte config drive partition at the end of {}: {detail}",
        path.display()
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        detail: String,
    },
    #[error("disk {} ({size} bytes) is too small: {detail}", path.display())]
    DiskTooSmall {
        path: PathBuf,
        size: u64,
        detail: String,
    },
    #[error("invalid partition request: {0}")]
    InvalidSpec(String),
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error(transparent)]
    ConfigDrive(#[from] ConfigDriveError),
}

impl PartitionError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        PartitionError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads the partition table of `path` (GPT with 512- or 4096-byte
/// sectors, or MBR with 512-byte sectors); `None` when it has none.
pub fn read_table(path: &Path) -> Result<Option<PartitionTable>, PartitionError> {
    Disk::open_read_only(path)?.read_table()
}

/// The partitions of `path`, for `get_partition_uuids`; fails when the
/// disk has no partition table.
pub fn read_partitions(path: &Path) -> Result<Vec<PartitionInfo>, PartitionError> {
    match read_table(path)? {
        Some(table) => Ok(table.partitions),
        None => Err(PartitionError::NoValidTable(format!(
            "no MBR or GPT partition table on {}",
            path.display()
        ))),
    }
}

/// IPA's `get_disk_identifier`: the 32-bit MBR disk signature at byte
/// 440, as `0x%08x` (what IPA reports as a whole disk's `root uuid`).
pub fn disk_identifier(path: &Path) -> Result<String, PartitionError> {
    disk_identifier_on(&Disk::open_read_only(path)?)
}

/// [`disk_identifier`] of an open disk.
pub fn disk_identifier_on(disk: &Disk) -> Result<String, PartitionError> {
    let raw = disk.read_at(mbr::SIGNATURE_OFFSET as u64, 4)?;
    let value = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    Ok(format!("0x{value:08x}"))
}
