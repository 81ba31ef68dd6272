//! Writing a partition image as IPA's `work_on_disk` does: metadata
//! destroyed, the new table, the EFI system partition formatted, the config
//! drive written, the image streamed into the root partition (through
//! [`crate::write_image`], confined to that partition), the swap signature,
//! the ephemeral file system; then the UUIDs `get_partition_uuids` reports.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::disk::Disk;
use super::fat::{format_fat32, FatOptions};
use super::layout::{self, PartitionImageSpec, PartitionLayout, PartitionRole, PlannedPartition};
use super::probe;
use super::swap::{write_swap, SwapOptions};
use super::table::{partition_index_to_path, PartitionTable};
use super::wholedisk::RangeWriter;
use super::{DiskLabel, PartitionError};
use crate::configdrive::{
    ConfigDriveError, ConfigDriveImage, ConfigDriveSource, MAX_CONFIG_DRIVE_SIZE,
};
use crate::erase::{self, EraseError};
use crate::{ImageError, ImageSource, Progress, Target};

/// IPA's labels for the file systems it makes.
const ESP_LABEL: &str = "efi-part";
const SWAP_LABEL: &str = "swap1";
const EPHEMERAL_LABEL: &str = "ephemeral0";

/// Everything a partition image deploy needs besides the image.
#[derive(Debug, Clone)]
pub struct PartitionDeploySpec {
    /// Sizes and modes; `configdrive_mb` is filled in from the config drive.
    pub layout: PartitionImageSpec,
    /// `instance_info.ephemeral_format`; only FAT (`vfat`, `fat`, `fat32`)
    /// can be made without mkfs tools.
    pub ephemeral_format: Option<String>,
    /// Keep the table and the ephemeral partition's contents (rebuild with
    /// `--preserve-ephemeral`); the existing table must match the layout.
    pub preserve_ephemeral: bool,
    pub configdrive: Option<ConfigDriveSource>,
    /// Logical sector size of the disk.
    pub sector_size: u64,
    /// Memory page size of the deployed machine, for the swap header.
    pub page_size: u64,
}

impl PartitionDeploySpec {
    /// A spec with the given layout and the defaults (512-byte sectors,
    /// 4 KiB pages, no config drive).
    pub fn new(layout: PartitionImageSpec) -> Self {
        PartitionDeploySpec {
            layout,
            ephemeral_format: None,
            preserve_ephemeral: false,
            configdrive: None,
            sector_size: 512,
            page_size: 4096,
        }
    }
}

/// What can go wrong deploying a partition image.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    ConfigDrive(#[from] ConfigDriveError),
    #[error(transparent)]
    Erase(#[from] EraseError),
    #[error("Ephemeral partition cannot be preserved on {}: {detail}", path.display())]
    CannotPreserve { path: PathBuf, detail: String },
    #[error("disk work on {} stopped unexpectedly: {detail}", path.display())]
    Worker { path: PathBuf, detail: String },
}

/// The UUIDs IPA's `get_partition_uuids` returns after a partition image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionUuids {
    /// File system UUID of the root partition (its PARTUUID if none).
    pub root_uuid: String,
    /// FAT serial of the EFI system partition (UEFI only).
    pub efi_system_partition_uuid: Option<String>,
    /// PARTUUID of the PReP boot partition (ppc64 only).
    pub prep_boot_partition_uuid: Option<String>,
    /// True when the node is ppc64 (IPA then reports the PReP key).
    pub ppc64: bool,
    /// The table as written.
    pub layout: PartitionLayout,
}

impl PartitionUuids {
    /// IPA's dict: `root uuid`, `efi system partition uuid`, (`PReP Boot
    /// partition uuid`), and `partitions` mapping roles to device paths of
    /// `device` (e.g. `/dev/sda`).
    pub fn to_ipa_json(&self, device: &str) -> Value {
        let mut partitions = Map::new();
        for p in &self.layout.partitions {
            let path = partition_index_to_path(device, p.number);
            partitions.insert(p.role.ipa_name().to_string(), Value::String(path));
        }
        let mut out = json!({
            "partitions": partitions,
            "root uuid": self.root_uuid,
            "efi system partition uuid": self.efi_system_partition_uuid,
        });
        if self.ppc64 {
            out["PReP Boot partition uuid"] = json!(self.prep_boot_partition_uuid);
        }
        out
    }
}

/// Deploys a partition image onto `disk`; see the module documentation.
/// A URL config drive is fetched first, so a bad one fails before the
/// disk is touched.
pub async fn deploy_partition_image(
    source: &ImageSource,
    disk: &Path,
    spec: &PartitionDeploySpec,
    progress: &Progress,
) -> Result<PartitionUuids, DeployError> {
    let ephemeral_fat = check_ephemeral_format(spec)?;
    let configdrive = resolve_configdrive(spec.configdrive.as_ref()).await?;
    let mut layout_spec = spec.layout.clone();
    layout_spec.configdrive_mb = configdrive.as_ref().map_or(0, ConfigDriveImage::size_mib);
    let prepared = {
        let (path, spec, drive) = (disk.to_path_buf(), spec.clone(), configdrive.clone());
        blocking(disk, move || {
            prepare_disk(&path, &spec, &layout_spec, drive.as_ref())
        })
        .await?
    };
    let root = prepared
        .get(PartitionRole::Root)
        .cloned()
        .ok_or_else(|| PartitionError::InvalidSpec("the layout has no root partition".into()))?;
    let target = Target {
        path: disk.to_path_buf(),
        offset: root.offset,
        length: Some(root.length),
    };
    crate::write_image(source, &target, progress).await?;
    let (path, spec) = (disk.to_path_buf(), spec.clone());
    blocking(disk, move || {
        finish_disk(&path, &spec, prepared, ephemeral_fat)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    disk: &Path,
    work: impl FnOnce() -> Result<T, DeployError> + Send + 'static,
) -> Result<T, DeployError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DeployError::Worker {
            path: disk.to_path_buf(),
            detail: e.to_string(),
        })?
}

/// Whether the ephemeral partition gets a FAT file system; an error for a
/// format that cannot be made natively.
fn check_ephemeral_format(spec: &PartitionDeploySpec) -> Result<bool, DeployError> {
    if spec.layout.ephemeral_mb == 0 || spec.preserve_ephemeral {
        return Ok(false);
    }
    match spec
        .ephemeral_format
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("") => Err(PartitionError::InvalidSpec(
            "an ephemeral partition needs an ephemeral_format".to_string(),
        )
        .into()),
        Some("vfat" | "fat" | "fat32") => Ok(true),
        Some(other) => Err(PartitionError::Unsupported(format!(
            "ephemeral_format {other:?} (only vfat can be made without mkfs tools)"
        ))
        .into()),
    }
}

async fn resolve_configdrive(
    source: Option<&ConfigDriveSource>,
) -> Result<Option<ConfigDriveImage>, DeployError> {
    match source {
        None => Ok(None),
        Some(ConfigDriveSource::Image(image)) => Ok(Some(image.clone())),
        Some(ConfigDriveSource::Url(url)) => {
            // Room for base64 of the largest gzip allowed.
            let max = MAX_CONFIG_DRIVE_SIZE / 3 * 4 + 1024 * 1024;
            let bytes = crate::fetch_bytes(url, max).await?;
            Ok(Some(ConfigDriveImage::from_downloaded(bytes)?))
        }
    }
}

/// Table, EFI system partition and config drive: everything before the
/// image.
fn prepare_disk(
    path: &Path,
    spec: &PartitionDeploySpec,
    layout_spec: &PartitionImageSpec,
    configdrive: Option<&ConfigDriveImage>,
) -> Result<PartitionLayout, DeployError> {
    if !spec.preserve_ephemeral {
        erase::destroy_metadata(path)?;
    }
    let disk = Disk::open_with(path, true, spec.sector_size)?;
    let planned = layout::plan_layout(layout_spec, disk.size(), spec.sector_size)?;
    let layout = if spec.preserve_ephemeral {
        adopt_existing(&disk, planned)?
    } else {
        layout::write_layout(&disk, &planned)?;
        planned
    };
    if let Some(esp) = layout.get(PartitionRole::EfiSystem) {
        format_fat(&disk, esp, ESP_LABEL)?;
    }
    if let (Some(image), Some(part)) = (configdrive, layout.get(PartitionRole::ConfigDrive)) {
        let mut writer = RangeWriter {
            disk: &disk,
            pos: part.offset,
            end: part.offset + part.length,
        };
        image.write_to(&mut writer)?;
        disk.sync()?;
    }
    Ok(layout)
}

/// With `preserve_ephemeral` the table is not rewritten (IPA's
/// `commit=False`): the planned partitions must be the ones on disk, whose
/// ids are then the ones reported.
fn adopt_existing(disk: &Disk, planned: PartitionLayout) -> Result<PartitionLayout, DeployError> {
    let cannot = |detail: String| DeployError::CannotPreserve {
        path: disk.path().to_path_buf(),
        detail,
    };
    let table = disk
        .read_table()?
        .ok_or_else(|| cannot("the disk has no partition table".to_string()))?;
    check_same_layout(&table, &planned).map_err(cannot)?;
    let mut layout = planned;
    match table.label {
        DiskLabel::Gpt => {
            layout.disk_guid = table.disk_id.parse().ok();
            for p in &mut layout.partitions {
                p.unique_guid = table
                    .partition(p.number)
                    .and_then(|e| e.part_uuid.parse().ok());
            }
        }
        DiskLabel::Msdos => {
            layout.mbr_signature = u32::from_str_radix(&table.disk_id, 16).unwrap_or(0);
        }
    }
    Ok(layout)
}

fn check_same_layout(table: &PartitionTable, planned: &PartitionLayout) -> Result<(), String> {
    if table.label != planned.label {
        return Err(format!(
            "the disk has a {} table, the layout needs {}",
            table.label.name(),
            planned.label.name()
        ));
    }
    for p in &planned.partitions {
        match table.partition(p.number) {
            Some(e) if e.offset == p.offset && e.length == p.length => {}
            Some(e) => {
                return Err(format!(
                    "partition {} ({}) is {} bytes at {}, the layout needs {} bytes at {}",
                    p.number,
                    p.role.ipa_name(),
                    e.length,
                    e.offset,
                    p.length,
                    p.offset
                ))
            }
            None => {
                return Err(format!(
                    "partition {} ({}) is missing",
                    p.number,
                    p.role.ipa_name()
                ))
            }
        }
    }
    Ok(())
}

fn format_fat(disk: &Disk, part: &PlannedPartition, label: &str) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let hidden = u32::try_from(part.offset / ss).unwrap_or(u32::MAX);
    let options = FatOptions::new(label, ss, hidden);
    format_fat32(disk, part.offset, part.length, &options).map(|_| ())
}

/// Swap signature, ephemeral file system, then the UUIDs.
fn finish_disk(
    path: &Path,
    spec: &PartitionDeploySpec,
    layout: PartitionLayout,
    ephemeral_fat: bool,
) -> Result<PartitionUuids, DeployError> {
    let disk = Disk::open_with(path, true, spec.sector_size)?;
    if let Some(swap) = layout.get(PartitionRole::Swap) {
        let options = SwapOptions {
            page_size: spec.page_size,
            ..SwapOptions::new(SWAP_LABEL)
        };
        write_swap(&disk, swap.offset, swap.length, &options)?;
    }
    if ephemeral_fat {
        if let Some(ephemeral) = layout.get(PartitionRole::Ephemeral) {
            format_fat(&disk, ephemeral, EPHEMERAL_LABEL)?;
        }
    }
    let uuid_of = |role| -> Result<Option<String>, PartitionError> {
        let Some(p) = layout.get(role) else {
            return Ok(None);
        };
        let fs = probe::probe_at(&disk, p.offset, p.length)?;
        Ok(Some(
            fs.and_then(|f| f.uuid)
                .unwrap_or_else(|| layout.part_uuid(p)),
        ))
    };
    Ok(PartitionUuids {
        root_uuid: uuid_of(PartitionRole::Root)?.unwrap_or_default(),
        efi_system_partition_uuid: uuid_of(PartitionRole::EfiSystem)?,
        prep_boot_partition_uuid: uuid_of(PartitionRole::PrepBoot)?,
        ppc64: spec.layout.cpu_arch.starts_with("ppc"),
        layout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::BootMode;

    fn spec(ephemeral_mb: u64, format: Option<&str>) -> PartitionDeploySpec {
        let mut s = PartitionDeploySpec::new(PartitionImageSpec {
            root_mb: 10,
            ephemeral_mb,
            ..Default::default()
        });
        s.ephemeral_format = format.map(str::to_string);
        s
    }

    #[test]
    fn only_fat_ephemeral_file_systems_are_made() {
        assert!(!check_ephemeral_format(&spec(0, Some("ext4"))).unwrap());
        assert!(check_ephemeral_format(&spec(10, Some("vfat"))).unwrap());
        let err = check_ephemeral_format(&spec(10, Some("ext4"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ephemeral_format \"ext4\" (only vfat can be made without mkfs tools) is not supported"
        );
        assert!(check_ephemeral_format(&spec(10, None)).is_err());
        let mut preserved = spec(10, Some("ext4"));
        preserved.preserve_ephemeral = true;
        assert!(!check_ephemeral_format(&preserved).unwrap());
    }

    #[test]
    fn ipa_json_has_ipas_keys() {
        let layout_spec = PartitionImageSpec {
            root_mb: 10,
            swap_mb: 10,
            boot_mode: BootMode::Uefi,
            ..Default::default()
        };
        let layout = layout::plan_layout(&layout_spec, 1 << 30, 512).unwrap();
        let uuids = PartitionUuids {
            root_uuid: "r".into(),
            efi_system_partition_uuid: Some("ABCD-1234".into()),
            prep_boot_partition_uuid: None,
            ppc64: false,
            layout,
        };
        assert_eq!(
            uuids.to_ipa_json("/dev/nvme0n1"),
            json!({
                "partitions": {
                    "efi system partition": "/dev/nvme0n1p1",
                    "swap": "/dev/nvme0n1p2",
                    "root": "/dev/nvme0n1p3",
                },
                "root uuid": "r",
                "efi system partition uuid": "ABCD-1234",
            })
        );
    }
}
