//! The agent's use of `ferric-image`, in one place: writing images,
//! partition table checks, config drives and disk erasure, each failure
//! turned into the IPA error kind Ironic expects. Blocking disk work runs
//! on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferric_image::configdrive::{self, ConfigDriveImage, ConfigDriveSource, MAX_CONFIG_DRIVE_SIZE};
use ferric_image::{ExpectedChecksum, ImageSource, Progress, Target, WriteReport};
use ferric_ipa::{ErrorKind, ImageInfo, RestError};
use serde_json::{json, Value};

use crate::executor::ProgressReader;

/// Progress of an image write as the running command shows it.
pub fn progress_reader(progress: &Progress) -> ProgressReader {
    let progress = progress.clone();
    Arc::new(move || {
        let s = progress.snapshot();
        json!({
            "bytes_downloaded": s.downloaded,
            "download_total": s.download_total,
            "bytes_written": s.written,
            "bytes_total": s.image_size,
        })
    })
}

fn download_error(info: &ImageInfo, error: impl std::fmt::Display) -> RestError {
    RestError::new(
        ErrorKind::ImageDownload,
        format!("Download of image {} failed: {error}", info.id),
    )
}

/// The pipeline's source for `info`, with Ironic's checksum precedence;
/// md5 is refused when lookup said `agent_md5_checksum_enable: false`.
pub fn image_source(info: &ImageInfo, md5_enabled: bool) -> Result<ImageSource, RestError> {
    let checksum = ExpectedChecksum::from_image_info(
        info.checksum.as_deref(),
        info.os_hash_algo.as_deref(),
        info.os_hash_value.as_deref(),
    )
    .map_err(|e| RestError::new(ErrorKind::InvalidCommandParams, e.to_string()))?;
    if !md5_enabled
        && checksum.as_ref().and_then(ExpectedChecksum::algorithm)
            == Some(ferric_image::Algorithm::Md5)
    {
        return Err(RestError::new(
            ErrorKind::ImageChecksum,
            "MD5 support is disabled, and support will be removed in a 2024 version of Ironic.",
        ));
    }
    Ok(ImageSource {
        urls: info.urls.clone(),
        checksum,
        disk_format: info.disk_format.clone(),
    })
}

/// Streams a whole-disk image onto `path`, then moves a misplaced backup
/// GPT to the disk's end (IPA's `fix_gpt_partition`).
pub async fn write_whole_disk(
    info: &ImageInfo,
    md5_enabled: bool,
    path: &Path,
    progress: &Progress,
) -> Result<WriteReport, RestError> {
    let source = image_source(info, md5_enabled)?;
    let target = Target::whole(path);
    let report = ferric_image::write_image(&source, &target, progress)
        .await
        .map_err(|e| match e {
            ferric_image::ImageError::ChecksumMismatch { .. } => RestError::new(
                ErrorKind::ImageChecksum,
                format!(
                    "Image failed to verify against checksum. image ID: {}; {e}",
                    info.id
                ),
            ),
            ferric_image::ImageError::Target { .. }
            | ferric_image::ImageError::ImageTooLarge(_) => RestError::new(
                ErrorKind::ImageWrite,
                format!("Writing image to device {} failed: {e}", path.display()),
            ),
            ferric_image::ImageError::Format(_) | ferric_image::ImageError::Qcow2(_) => {
                RestError::new(ErrorKind::InvalidImage, e.to_string())
            }
            other => download_error(info, other),
        })?;
    let fix_path = path.to_path_buf();
    blocking(move || ferric_image::partition::fix_gpt_partition(&fix_path))
        .await?
        .map_err(|e| tracing::warn!(error = %e, "could not fix the GPT after writing"))
        .ok();
    Ok(report)
}

/// IPA's `_validate_partitioning`: the written disk must have partitions.
pub async fn validate_partitioning(path: &Path, device_name: &str) -> Result<usize, RestError> {
    let path = path.to_path_buf();
    let name = device_name.to_owned();
    blocking(move || {
        ferric_image::partition::validate_partitioning(&path)
            .map(|t| t.partitions.len())
            .map_err(|e| match e {
                ferric_image::partition::PartitionError::NoPartitions(_) => RestError::new(
                    ErrorKind::Deployment,
                    format!("No partitions found on the device {name} after writing the image."),
                ),
                other => RestError::new(
                    ErrorKind::Deployment,
                    format!(
                        "Unable to find a valid partition table on the disk after writing the image. The image may be corrupted or it uses a different sector size than the device. Error: {other}"
                    ),
                ),
            })
    })
    .await?
}

/// Decodes (or downloads) a config drive as IPA's `get_configdrive`.
pub async fn config_drive(value: &str) -> Result<ConfigDriveImage, RestError> {
    let fail = |e: &dyn std::fmt::Display| {
        RestError::new(
            ErrorKind::Deployment,
            format!("Failed to create config drive: {e}"),
        )
    };
    match configdrive::decode(value).map_err(|e| fail(&e))? {
        ConfigDriveSource::Image(image) => Ok(image),
        ConfigDriveSource::Url(url) => {
            let bytes = ferric_image::fetch_bytes(&url, MAX_CONFIG_DRIVE_SIZE * 2)
                .await
                .map_err(|e| fail(&e))?;
            ConfigDriveImage::from_downloaded(bytes).map_err(|e| fail(&e))
        }
    }
}

/// IPA's `create_config_drive_partition` for whole-disk images.
pub async fn write_config_drive_partition(
    path: &Path,
    image: ConfigDriveImage,
) -> Result<(), RestError> {
    let path = path.to_path_buf();
    blocking(move || {
        ferric_image::partition::create_config_drive_partition(&path, &image)
            .map(|_| ())
            .map_err(|e| {
                RestError::new(
                    ErrorKind::Deployment,
                    format!("Failed to create config drive: {e}"),
                )
            })
    })
    .await?
}

/// Writes a partition image as IPA's `work_on_disk` (table, root, swap,
/// ephemeral, config drive) and returns IPA's partition UUIDs, with
/// `partitions` naming devices after `device_name`.
pub async fn write_partition_image(
    info: &ImageInfo,
    md5_enabled: bool,
    path: &Path,
    device_name: &str,
    configdrive: Option<&ferric_ipa::Secret>,
    cpu_arch: &str,
    progress: &Progress,
) -> Result<ferric_ipa::PartitionUuids, RestError> {
    use ferric_image::partition::deploy::{deploy_partition_image, PartitionDeploySpec};
    use ferric_image::partition::{BootMode, DiskLabel, PartitionImageSpec};
    let invalid = |msg: String| RestError::new(ErrorKind::InvalidCommandParams, msg);
    let source = image_source(info, md5_enabled)?;
    let root_mb = info
        .root_mb()
        .filter(|mb| *mb > 0)
        .ok_or_else(|| invalid("partition images need root_mb (or root_gb)".into()))?;
    let boot_mode = match info.deploy_boot_mode.as_deref() {
        None => BootMode::Bios,
        Some(mode) => BootMode::parse(mode)
            .ok_or_else(|| invalid(format!("unknown deploy_boot_mode {mode:?}")))?,
    };
    let disk_label = match info.disk_label.as_deref() {
        None => None,
        Some(label) => Some(
            DiskLabel::parse(label)
                .ok_or_else(|| invalid(format!("unknown disk_label {label:?}")))?,
        ),
    };
    let layout = PartitionImageSpec {
        root_mb,
        swap_mb: info.swap_mb.unwrap_or(0),
        ephemeral_mb: info.ephemeral_mb.unwrap_or(0),
        boot_mode,
        disk_label,
        cpu_arch: cpu_arch.to_owned(),
        ..Default::default()
    };
    let mut spec = PartitionDeploySpec::new(layout);
    spec.ephemeral_format = info.ephemeral_format.clone();
    spec.preserve_ephemeral = info.preserve_ephemeral.unwrap_or(false);
    spec.configdrive = configdrive
        .map(|c| configdrive::decode(c.expose()))
        .transpose()
        .map_err(|e| {
            RestError::new(
                ErrorKind::Deployment,
                format!("Failed to create config drive: {e}"),
            )
        })?;
    let uuids = deploy_partition_image(&source, path, &spec, progress)
        .await
        .map_err(|e| match e {
            ferric_image::partition::deploy::DeployError::Image(
                ferric_image::ImageError::ChecksumMismatch { .. },
            ) => RestError::new(
                ErrorKind::ImageChecksum,
                format!(
                    "Image failed to verify against checksum. image ID: {}; {e}",
                    info.id
                ),
            ),
            ferric_image::partition::deploy::DeployError::Image(other) => {
                download_error(info, other)
            }
            other => RestError::new(
                ErrorKind::Deployment,
                format!(
                    "Failed to deploy partition image {} onto {device_name}: {other}",
                    info.id
                ),
            ),
        })?;
    serde_json::from_value(uuids.to_ipa_json(device_name)).map_err(|e| {
        RestError::new(
            ErrorKind::Deployment,
            format!("unexpected partition UUIDs: {e}"),
        )
    })
}

/// IPA's `destroy_disk_metadata`.
pub async fn destroy_metadata(path: &Path) -> Result<(), String> {
    let path = path.to_path_buf();
    blocking(move || {
        ferric_image::erase::destroy_metadata(&path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// IPA's shred: `passes` random passes, then zeros if `zero`; progress is
/// published through `on_progress` as JSON.
pub async fn erase(
    path: PathBuf,
    passes: u32,
    zero: bool,
    on_progress: Arc<dyn Fn(Value) + Send + Sync>,
) -> Result<(), String> {
    blocking(move || {
        let mut report = |p: &ferric_image::erase::EraseProgress| {
            on_progress(json!({"pass": p.pass, "passes": p.passes, "bytes_written": p.done, "bytes_total": p.total}));
            std::ops::ControlFlow::Continue(())
        };
        ferric_image::erase::erase(&path, passes, zero, &mut report).map(|_| ()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RestError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        RestError::new(
            ErrorKind::CommandExecution,
            format!("disk task failed: {e}"),
        )
    })
}
