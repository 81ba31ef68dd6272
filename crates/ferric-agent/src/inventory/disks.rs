//! Disks from /sys/block (what IPA gets from lsblk and udev), or the files
//! given with `--disk`. Names are reported as `/dev/NAME` whatever the
//! `--dev-root`; [`crate::disk`] maps them back to paths.

use std::path::{Path, PathBuf};

use ferric_ipa::inventory::BlockDevice;

use super::{read_trimmed, read_value, Roots};

/// Kernel names that are never disks IPA would list (RAM disks, loops,
/// floppies, optical drives, device-mapper, network block devices).
fn is_ignored(name: &str) -> bool {
    ["ram", "zram", "loop", "fd", "sr", "dm-", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// Disks under SYS/block with a non-zero size, sorted by name.
pub fn list_disks(roots: &Roots) -> Vec<BlockDevice> {
    let block = roots.sys.join("block");
    let Ok(entries) = std::fs::read_dir(&block) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !is_ignored(n))
        .collect();
    names.sort();
    let by_path = by_path_links(&roots.dev);
    names
        .iter()
        .filter_map(|name| disk(&block.join(name), name, &by_path))
        .filter(|d| d.size > 0)
        .collect()
}

fn disk(dir: &Path, name: &str, by_path: &[(String, String)]) -> Option<BlockDevice> {
    let sectors: u64 = read_trimmed(&dir.join("size"))?.parse().ok()?;
    let device = dir.join("device");
    Some(BlockDevice {
        name: format!("/dev/{name}"),
        model: read_value(&device.join("model")),
        size: sectors.saturating_mul(512),
        rotational: read_trimmed(&dir.join("queue/rotational")).as_deref() == Some("1"),
        wwn: wwn(dir),
        serial: serial(dir),
        vendor: read_value(&device.join("vendor")),
        hctl: first_entry(&device.join("scsi_device")),
        by_path: by_path
            .iter()
            .find(|(_, target)| target == name)
            .map(|(link, _)| link.clone()),
        logical_sectors: read_trimmed(&dir.join("queue/logical_block_size"))
            .and_then(|v| v.parse().ok()),
        physical_sectors: read_trimmed(&dir.join("queue/physical_block_size"))
            .and_then(|v| v.parse().ok()),
        tran: transport(dir, name),
        ..Default::default()
    })
}

/// The serial: `serial` (virtio, NVMe, ...) or SCSI VPD page 0x80.
fn serial(dir: &Path) -> Option<String> {
    read_value(&dir.join("serial"))
        .or_else(|| read_value(&dir.join("device/serial")))
        .or_else(|| vpd_serial(&dir.join("device/vpd_pg80")))
}

/// VPD page 0x80: 4-byte header (length at bytes 2..4), then ASCII.
fn vpd_serial(path: &Path) -> Option<String> {
    let page = std::fs::read(path).ok()?;
    let len = usize::from(u16::from_be_bytes([*page.get(2)?, *page.get(3)?]));
    let body = page.get(4..4 + len.min(page.len().saturating_sub(4)))?;
    let text = String::from_utf8_lossy(body)
        .trim()
        .trim_matches('\0')
        .to_owned();
    (!text.is_empty()).then_some(text)
}

/// The WWN as udev's `ID_WWN` writes it: `naa.5000c5...` → `0x5000c5...`;
/// `eui.`/`t10.` ids as they are.
fn wwn(dir: &Path) -> Option<String> {
    let raw = read_value(&dir.join("wwid")).or_else(|| read_value(&dir.join("device/wwid")))?;
    Some(match raw.strip_prefix("naa.") {
        Some(hex) => format!("0x{}", hex.to_lowercase()),
        None => raw,
    })
}

fn transport(dir: &Path, name: &str) -> Option<String> {
    if name.starts_with("nvme") {
        return Some("nvme".into());
    }
    let real = std::fs::canonicalize(dir)
        .ok()?
        .to_string_lossy()
        .into_owned();
    if real.contains("/usb") {
        Some("usb".into())
    } else if real.contains("/ata") {
        Some("sata".into())
    } else if real.contains("/virtio") {
        Some("virtio".into())
    } else {
        None
    }
}

fn first_entry(dir: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

/// `(/dev/disk/by-path/LINK, kernel name it points to)`.
fn by_path_links(dev: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dev.join("disk/by-path")) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let name = target.file_name()?.to_string_lossy().into_owned();
            Some((
                format!("/dev/disk/by-path/{}", e.file_name().to_string_lossy()),
                name,
            ))
        })
        .collect()
}

/// The `--disk` files as disks: name = the absolute path, size = length.
pub fn disk_files(files: &[PathBuf]) -> Vec<BlockDevice> {
    files
        .iter()
        .map(|path| {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            BlockDevice {
                name: absolute.to_string_lossy().into_owned(),
                size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
                logical_sectors: Some(512),
                physical_sectors: Some(512),
                ..Default::default()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testtree::{link, write};
    use super::*;

    #[test]
    fn reads_sysfs_disks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // A SCSI disk with VPD serial and naa WWN.
        write(root, "sys/block/sda/size", "20971520\n");
        write(root, "sys/block/sda/queue/rotational", "1\n");
        write(root, "sys/block/sda/queue/logical_block_size", "512\n");
        write(root, "sys/block/sda/queue/physical_block_size", "4096\n");
        write(root, "sys/block/sda/device/model", "QEMU HARDDISK   \n");
        write(root, "sys/block/sda/device/vendor", "ATA\n");
        write(root, "sys/block/sda/device/wwid", "naa.5000C50012345678\n");
        std::fs::create_dir_all(root.join("sys/block/sda/device/scsi_device/0:0:0:0")).unwrap();
        let mut vpd = vec![0u8, 0x80, 0, 8];
        vpd.extend_from_slice(b"QM00001 ");
        std::fs::create_dir_all(root.join("sys/block/sda/device")).unwrap();
        std::fs::write(root.join("sys/block/sda/device/vpd_pg80"), vpd).unwrap();
        // An NVMe disk with serial and EUI.
        write(root, "sys/block/nvme0n1/size", "41943040\n");
        write(root, "sys/block/nvme0n1/queue/rotational", "0\n");
        write(root, "sys/block/nvme0n1/wwid", "eui.0025388b71b12345\n");
        write(root, "sys/block/nvme0n1/device/serial", "S5GXNX0R\n");
        // Ignored and empty devices.
        write(root, "sys/block/loop0/size", "100\n");
        write(root, "sys/block/sr0/size", "100\n");
        write(root, "sys/block/vdb/size", "0\n");
        link(root, "dev/disk/by-path/pci-0000:00:1f.2-ata-1", "../../sda");
        let roots = Roots {
            proc: root.join("proc"),
            sys: root.join("sys"),
            dev: root.join("dev"),
        };
        let disks = list_disks(&roots);
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["/dev/nvme0n1", "/dev/sda"]);
        let sda = &disks[1];
        assert_eq!(sda.size, 10 * 1024 * 1024 * 1024);
        assert!(sda.rotational);
        assert_eq!(sda.model.as_deref(), Some("QEMU HARDDISK"));
        assert_eq!(sda.serial.as_deref(), Some("QM00001"));
        assert_eq!(sda.wwn.as_deref(), Some("0x5000c50012345678"));
        assert_eq!(sda.hctl.as_deref(), Some("0:0:0:0"));
        assert_eq!(
            sda.by_path.as_deref(),
            Some("/dev/disk/by-path/pci-0000:00:1f.2-ata-1")
        );
        assert_eq!(sda.physical_sectors, Some(4096));
        let nvme = &disks[0];
        assert_eq!(nvme.serial.as_deref(), Some("S5GXNX0R"));
        assert_eq!(nvme.wwn.as_deref(), Some("eui.0025388b71b12345"));
        assert_eq!(nvme.tran.as_deref(), Some("nvme"));
        assert!(!nvme.rotational);
    }

    #[test]
    fn disk_files_use_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(5 << 30)
            .unwrap();
        let disks = disk_files(std::slice::from_ref(&path));
        assert_eq!(disks[0].size, 5 << 30);
        assert_eq!(disks[0].name, path.to_string_lossy());
    }

    #[test]
    fn survives_bad_vpd() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vpd"), [0u8, 0x80, 0xff]).unwrap();
        assert_eq!(vpd_serial(&dir.path().join("vpd")), None);
        std::fs::write(dir.path().join("vpd"), [0u8, 0x80, 0xff, 0xff, b'A']).unwrap();
        assert_eq!(vpd_serial(&dir.path().join("vpd")).as_deref(), Some("A"));
    }
}
