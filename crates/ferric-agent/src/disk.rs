//! Which disk to write, and the guard around writing it.
//!
//! The install device is chosen as IPA's `get_os_install_device` does:
//! root device hints from the node (`instance_info.root_device`, else
//! `properties.root_device`), else the smallest disk of at least 4 GiB —
//! never by `/dev/sdX` order. Disks are written only when they are
//! `--disk` files, regular files inside a fake `--dev-root`, or (with
//! `--allow-block-devices`) real devices.

use std::path::{Path, PathBuf};

use ferric_ipa::inventory::BlockDevice;
use ferric_ipa::{ErrorKind, RestError};

use crate::agent::Agent;
use crate::inventory;

/// The disks the agent knows: the `--disk` files, else sysfs.
pub fn disks(agent: &Agent) -> Vec<BlockDevice> {
    if agent.config.disk_files.is_empty() {
        inventory::list_disks(&agent.roots)
    } else {
        inventory::disk_files(&agent.config.disk_files)
    }
}

/// IPA's `get_os_install_device`: the device to deploy onto.
pub fn install_device(agent: &Agent) -> Result<BlockDevice, RestError> {
    let disks = disks(agent);
    let node = agent.node();
    let hints = node.as_ref().and_then(|n| n.root_device_hints());
    let chosen = ferric_ipa::hints::choose_root_device(&disks, hints)
        .map_err(|e| RestError::new(ErrorKind::DeviceNotFound, e.0))?;
    tracing::info!(device = %chosen.name, hints = ?hints, "picked the root device");
    Ok(chosen.clone())
}

/// Where a device's bytes are: the `--disk` file itself, or
/// `DEV_ROOT/NAME` for `/dev/NAME`.
pub fn device_path(agent: &Agent, device: &BlockDevice) -> PathBuf {
    let name = Path::new(&device.name);
    match name.strip_prefix("/dev") {
        Ok(rest) if agent.config.disk_files.is_empty() => agent.roots.dev.join(rest),
        _ => name.to_path_buf(),
    }
}

/// The path to write for `device`, refusing anything the agent was not
/// allowed to touch.
pub fn writable_path(agent: &Agent, device: &BlockDevice) -> Result<PathBuf, RestError> {
    let path = device_path(agent, device);
    let is_disk_file = agent
        .config
        .disk_files
        .iter()
        .any(|f| std::path::absolute(f).ok().as_deref() == Some(path.as_path()));
    if is_disk_file {
        return Ok(path);
    }
    let real_dev = agent.roots.dev == Path::new("/dev");
    let regular_file = std::fs::symlink_metadata(&path)
        .map(|m| m.file_type().is_file())
        .unwrap_or(false);
    if !real_dev && regular_file {
        return Ok(path);
    }
    if real_dev && agent.config.allow_block_devices {
        return Ok(path);
    }
    Err(RestError::new(
        ErrorKind::BlockDevice,
        format!(
            "refusing to write {}: only --disk files and regular files under a fake --dev-root are written unless ferric-agent runs with --allow-block-devices",
            device.name
        ),
    ))
}

/// IPA's `get_disk_identifier`: the MBR disk signature (4 bytes at 440,
/// little-endian) as `0x%08x`.
pub fn disk_identifier(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut bytes = [0u8; 4];
    file.read_exact_at(&mut bytes, 440)?;
    Ok(format!("0x{:08x}", u32::from_le_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_disk_identifier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d");
        let mut data = vec![0u8; 512];
        data[440..444].copy_from_slice(&[0x4d, 0x3c, 0x2b, 0x1a]);
        std::fs::write(&path, data).unwrap();
        assert_eq!(disk_identifier(&path).unwrap(), "0x1a2b3c4d");
        std::fs::write(&path, [0u8; 10]).unwrap();
        assert!(disk_identifier(&path).is_err());
    }
}
