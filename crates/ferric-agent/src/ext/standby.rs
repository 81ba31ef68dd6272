//! `standby.*`: writing the image (`prepare_image`, `cache_image`),
//! `get_partition_uuids`, and ending the ramdisk (`power_off`, `run_image`).

use std::sync::Arc;
use std::time::Duration;

use ferric_ipa::{ErrorKind, ImageInfo, PartitionUuids, RestError, Secret};
use serde_json::Value;

use crate::agent::{Agent, Shutdown};
use crate::config::PowerOffMode;
use crate::disk;
use crate::executor::CommandEntry;
use crate::imaging;

/// `get_partition_uuids`: `{}` before any image was written.
pub fn partition_uuids(agent: &Agent) -> Value {
    let state = agent
        .standby
        .lock()
        .map(|s| s.partition_uuids.clone())
        .unwrap_or_default();
    serde_json::to_value(state.unwrap_or_default()).unwrap_or(Value::Null)
}

/// IPA's `prepare_image`: picks the install device, writes the image
/// unless this image id was written already (or `force`), checks the
/// partition table, adds the config drive (whole-disk images) and records
/// the partition UUIDs. Returns IPA's message.
pub async fn prepare_image(
    agent: &Arc<Agent>,
    info: &ImageInfo,
    configdrive: Option<Secret>,
    force: bool,
    entry: &Arc<CommandEntry>,
) -> Result<String, RestError> {
    let device = disk::install_device(agent)?;
    let path = disk::writable_path(agent, &device)?;
    let already = agent
        .standby
        .lock()
        .map(|s| s.cached_image_id.as_deref() == Some(info.id.as_str()))
        .unwrap_or(false);
    if !already || force {
        let progress = ferric_image::Progress::default();
        entry.set_progress(imaging::progress_reader(&progress));
        let uuids = if info.is_partition_image() {
            let cpu_arch = agent
                .node()
                .and_then(|n| {
                    n.properties
                        .get("cpu_arch")
                        .and_then(|a| a.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            imaging::write_partition_image(
                info,
                agent.md5_enabled(),
                &path,
                &device.name,
                configdrive.as_ref(),
                &cpu_arch,
                &progress,
            )
            .await?
        } else {
            let report =
                imaging::write_whole_disk(info, agent.md5_enabled(), &path, &progress).await?;
            tracing::info!(image = %info.id, device = %device.name, written = report.written, format = report.format.name(), "image written");
            PartitionUuids::default()
        };
        record(agent, |s| {
            s.cached_image_id = Some(info.id.clone());
            s.partition_uuids = Some(uuids);
            s.partition_image = info.is_partition_image();
            s.device = Some(device.name.clone());
        });
    }
    imaging::validate_partitioning(&path, &device.name).await?;
    if !info.is_partition_image() {
        if let Some(configdrive) = configdrive {
            let image = imaging::config_drive(configdrive.expose()).await?;
            imaging::write_config_drive_partition(&path, image).await?;
        }
        let root_uuid = disk::disk_identifier(&path)
            .map_err(|e| tracing::warn!(error = %e, "cannot read the disk identifier"))
            .ok();
        record(agent, |s| {
            let uuids = s
                .partition_uuids
                .get_or_insert_with(PartitionUuids::default);
            if root_uuid.is_some() {
                uuids.root_uuid = root_uuid.clone();
            }
        });
    }
    Ok(message("written to", agent, info, &device.name))
}

/// IPA's `cache_image`: `prepare_image` without a config drive.
pub async fn cache_image(
    agent: &Arc<Agent>,
    info: &ImageInfo,
    force: bool,
    entry: &Arc<CommandEntry>,
) -> Result<String, RestError> {
    let written = prepare_image(agent, info, None, force, entry).await?;
    Ok(written.replacen("written to", "cached to", 1))
}

fn record(agent: &Agent, change: impl FnOnce(&mut crate::agent::StandbyState)) {
    match agent.standby.lock() {
        Ok(mut state) => change(&mut state),
        Err(poisoned) => change(&mut poisoned.into_inner()),
    }
}

/// IPA's `_message_format`.
fn message(verb: &str, agent: &Agent, info: &ImageInfo, device: &str) -> String {
    let uuids = agent
        .standby
        .lock()
        .map(|s| s.partition_uuids.clone())
        .unwrap_or_default()
        .unwrap_or_default();
    let root = uuids.root_uuid.as_deref().unwrap_or("None");
    match (
        info.deploy_boot_mode.as_deref(),
        uuids.efi_system_partition_uuid.as_deref(),
    ) {
        (Some("uefi"), Some(efi)) => {
            format!("image ({}) {verb} device {device} root_uuid={root} efi_system_partition_uuid={efi}", info.id)
        }
        _ => format!(
            "image ({}) {verb} device {device} root_uuid={root}",
            info.id
        ),
    }
}

/// `power_off` / `run_image`: flush buffers, then end the process (disk
/// files) or power off / reboot the machine (IPA runs `poweroff`/`reboot`,
/// falling back to /proc/sysrq-trigger).
pub fn shut_down(agent: &Arc<Agent>, kind: Shutdown) -> Result<Value, RestError> {
    rustix::fs::sync();
    match agent.config.power_off_mode {
        PowerOffMode::Exit => {
            tracing::info!(?kind, "ending the agent as the machine would power off");
            agent.request_shutdown(kind, Duration::from_millis(200));
            Ok(Value::Null)
        }
        PowerOffMode::System => system_shutdown(agent, kind),
    }
}

fn system_shutdown(agent: &Agent, kind: Shutdown) -> Result<Value, RestError> {
    let (command, sysrq) = match kind {
        Shutdown::PowerOff => ("poweroff", "o"),
        Shutdown::Reboot => ("reboot", "b"),
    };
    tracing::info!(command, "shutting the machine down");
    let ran = std::process::Command::new(command).output();
    match ran {
        Ok(out)
            if out.status.success()
                && !String::from_utf8_lossy(&out.stderr).contains("ignoring request") =>
        {
            Ok(Value::Null)
        }
        _ => std::fs::write(agent.roots.proc.join("sysrq-trigger"), sysrq)
            .map(|()| Value::Null)
            .map_err(|e| {
                RestError::new(
                    ErrorKind::SystemReboot,
                    format!("{command} failed and so did /proc/sysrq-trigger: {e}"),
                )
            }),
    }
}
