//! Writing a partition image as IPA's `work_on_disk` does: metadata
//! destroyed, the new table, the EFI system partition formatted, the config
//! drive written, the image streamed into the root partition (through
//! [`crate::write_image`], confined to that partition), the swap signature,
//! the ephemeral file system; then the UUIDs `get_partition_uuids` reports.
//!
//! The disk is a local path ([`deploy_partition_image`]) or any
//! [`BlockDevice`](crate::BlockDevice) behind a [`SharedDevice`] such as a
//! LUN over iSCSI ([`deploy_partition_image_on`]); both do the same work in
//! the same order, and given the same [`Reproducible`] ids they leave the
//! same bytes.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
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
use crate::writer::SharedDevice;
use crate::{DiskWriter, Fetcher, ImageError, ImageSource, Progress, Target, WriteReport};

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
    /// Fixed ids and clock instead of random ones and the current time.
    pub reproducible: Option<Reproducible>,
}

/// Ids and time for a disk reproducible byte for byte (tests, comparisons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reproducible {
    /// Seeds the GPT GUIDs (or MBR signature), FAT serials and swap UUID.
    pub seed: u64,
    /// Seconds since the Unix epoch, for the FAT volume labels' entries.
    pub timestamp: i64,
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
            reproducible: None,
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

/// Deploys a partition image onto the disk at `disk`; see the module
/// documentation. A URL config drive is fetched first, so a bad one fails
/// before the disk is touched.
pub async fn deploy_partition_image(
    source: &ImageSource,
    disk: &Path,
    spec: &PartitionDeploySpec,
    progress: &Progress,
) -> Result<PartitionUuids, DeployError> {
    let deployed = deploy(source, Place::Path(disk.to_path_buf()), spec, progress).await?;
    Ok(deployed.uuids)
}

/// What [`deploy_partition_image_on`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDeployed {
    pub uuids: PartitionUuids,
    /// The root partition's image, as the pipeline wrote it.
    pub image: WriteReport,
}

/// [`deploy_partition_image`] onto `device`, the root partition's image
/// streamed through a [`DiskWriter`] confined to that partition. The
/// device is only used from blocking threads (a remote device may wait on
/// its runtime there).
pub async fn deploy_partition_image_on(
    source: &ImageSource,
    device: SharedDevice,
    spec: &PartitionDeploySpec,
    progress: &Progress,
) -> Result<PartitionDeployed, DeployError> {
    deploy(source, Place::Device(device), spec, progress).await
}

async fn deploy(
    source: &ImageSource,
    place: Place,
    spec: &PartitionDeploySpec,
    progress: &Progress,
) -> Result<PartitionDeployed, DeployError> {
    let ephemeral_fat = check_ephemeral_format(spec)?;
    let configdrive = resolve_configdrive(spec.configdrive.as_ref()).await?;
    let mut layout_spec = spec.layout.clone();
    layout_spec.configdrive_mb = configdrive.as_ref().map_or(0, ConfigDriveImage::size_mib);
    let ids = Ids::new(spec.reproducible);
    let (prepared, ids) = {
        let (place, spec, drive) = (place.clone(), spec.clone(), configdrive.clone());
        blocking(&place.name(), move || {
            prepare_disk(&place, &spec, &layout_spec, drive.as_ref(), ids)
        })
        .await?
    };
    let root = prepared
        .get(PartitionRole::Root)
        .cloned()
        .ok_or_else(|| PartitionError::InvalidSpec("the layout has no root partition".into()))?;
    let image = place.write_root(source, &root, progress).await?;
    let spec = spec.clone();
    let name = place.name();
    let uuids = blocking(&name, move || {
        finish_disk(&place, &spec, prepared, ephemeral_fat, ids)
    })
    .await?;
    Ok(PartitionDeployed { uuids, image })
}

/// The disk a deploy works on.
#[derive(Debug, Clone)]
enum Place {
    Path(PathBuf),
    Device(SharedDevice),
}

impl Place {
    fn name(&self) -> PathBuf {
        match self {
            Place::Path(path) => path.clone(),
            Place::Device(device) => PathBuf::from(crate::BlockDevice::name(device)),
        }
    }

    fn disk(&self, sector_size: u64) -> Result<Disk, PartitionError> {
        match self {
            Place::Path(path) => Disk::open_with(path, true, sector_size),
            Place::Device(device) => Disk::on_device(device.clone(), sector_size),
        }
    }

    /// Streams the image into the root partition, and only there.
    async fn write_root(
        &self,
        source: &ImageSource,
        root: &PlannedPartition,
        progress: &Progress,
    ) -> Result<WriteReport, ImageError> {
        let target = Target {
            path: self.name(),
            offset: root.offset,
            length: Some(root.length),
        };
        match self {
            Place::Path(_) => crate::write_image(source, &target, progress).await,
            Place::Device(device) => {
                let writer =
                    DiskWriter::on_device(Box::new(device.clone()), &target, progress.clone())?;
                Fetcher::shared()?
                    .write_image_with(source, writer, progress)
                    .await
            }
        }
    }
}

/// Where the ids of the new table and file systems come from.
struct Ids {
    rng: StdRng,
    timestamp: Option<i64>,
}

impl Ids {
    fn new(reproducible: Option<Reproducible>) -> Self {
        match reproducible {
            Some(r) => Ids {
                rng: StdRng::seed_from_u64(r.seed),
                timestamp: Some(r.timestamp),
            },
            None => Ids {
                rng: StdRng::from_os_rng(),
                timestamp: None,
            },
        }
    }

    fn fat_options(&mut self, label: &str, sector_size: u64, hidden: u32) -> FatOptions {
        let mut options = FatOptions::new(label, sector_size, hidden);
        options.serial = self.rng.next_u32();
        if let Some(timestamp) = self.timestamp {
            options.timestamp = timestamp;
        }
        options
    }
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
    place: &Place,
    spec: &PartitionDeploySpec,
    layout_spec: &PartitionImageSpec,
    configdrive: Option<&ConfigDriveImage>,
    mut ids: Ids,
) -> Result<(PartitionLayout, Ids), DeployError> {
    if !spec.preserve_ephemeral {
        erase::destroy_metadata_on(&place.disk(512)?)?;
    }
    let disk = place.disk(spec.sector_size)?;
    let planned =
        layout::plan_layout_with(layout_spec, disk.size(), spec.sector_size, &mut ids.rng)?;
    let layout = if spec.preserve_ephemeral {
        adopt_existing(&disk, planned)?
    } else {
        layout::write_layout(&disk, &planned)?;
        planned
    };
    if let Some(esp) = layout.get(PartitionRole::EfiSystem) {
        format_fat(&disk, esp, ESP_LABEL, &mut ids)?;
    }
    if let (Some(image), Some(part)) = (configdrive, layout.get(PartitionRole::ConfigDrive)) {
        let mut writer = RangeWriter::new(&disk, part.offset, part.length);
        image.write_to(&mut writer)?;
        writer.finish()?;
        disk.sync()?;
    }
    Ok((layout, ids))
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

fn format_fat(
    disk: &Disk,
    part: &PlannedPartition,
    label: &str,
    ids: &mut Ids,
) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let hidden = u32::try_from(part.offset / ss).unwrap_or(u32::MAX);
    let options = ids.fat_options(label, ss, hidden);
    format_fat32(disk, part.offset, part.length, &options).map(|_| ())
}

/// Swap signature, ephemeral file system, then the UUIDs.
fn finish_disk(
    place: &Place,
    spec: &PartitionDeploySpec,
    layout: PartitionLayout,
    ephemeral_fat: bool,
    mut ids: Ids,
) -> Result<PartitionUuids, DeployError> {
    let disk = place.disk(spec.sector_size)?;
    if let Some(swap) = layout.get(PartitionRole::Swap) {
        let options = SwapOptions {
            page_size: spec.page_size,
            uuid: layout::random_uuid(&mut ids.rng),
            ..SwapOptions::new(SWAP_LABEL)
        };
        write_swap(&disk, swap.offset, swap.length, &options)?;
    }
    if ephemeral_fat {
        if let Some(ephemeral) = layout.get(PartitionRole::Ephemeral) {
            format_fat(&disk, ephemeral, EPHEMERAL_LABEL, &mut ids)?;
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
