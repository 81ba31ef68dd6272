//! File system identification the way blkid does it for the file systems
//! a deployed partition holds: type, UUID and label of ext2/3/4, XFS,
//! Btrfs, FAT, swap, ISO 9660 and LUKS. IPA's `block_uuid` reports this
//! UUID (falling back to the PARTUUID) as `root uuid`, and finds config
//! drives by the `config-2` label.
//!
//! Probing is pure: it reads the first [`PROBE_BYTES`] of a partition.

use uuid::Uuid;

use super::disk::Disk;
use super::PartitionError;

/// Bytes read from the start of a partition: past Btrfs's superblock at
/// 64 KiB and a 64 KiB-page swap signature.
pub const PROBE_BYTES: usize = 128 * 1024;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// blkid's TYPE: `ext4`, `xfs`, `btrfs`, `vfat`, `swap`, `iso9660`,
    /// `crypto_LUKS`.
    pub fs_type: &'static str,
    /// blkid's UUID, as it prints it.
    pub uuid: Option<String>,
    /// blkid's LABEL.
    pub label: Option<String>,
}

/// Identifies the file system whose first bytes are `head`.
pub fn probe(head: &[u8]) -> Option<FsInfo> {
    probe_luks(head)
        .or_else(|| probe_xfs(head))
        .or_else(|| probe_ext(head))
        .or_else(|| probe_btrfs(head))
        .or_else(|| probe_swap(head))
        .or_else(|| probe_iso(head))
        .or_else(|| probe_fat(head))
}

/// Probes the partition at `offset` (`length` bytes) of `disk`.
pub fn probe_at(disk: &Disk, offset: u64, length: u64) -> Result<Option<FsInfo>, PartitionError> {
    let len = length.min(PROBE_BYTES as u64) as usize;
    let head = disk.read_up_to(offset, len)?;
    Ok(probe(&head))
}

fn at(head: &[u8], offset: usize, len: usize) -> Option<&[u8]> {
    head.get(offset..offset.checked_add(len)?)
}

fn uuid_at(head: &[u8], offset: usize) -> Option<String> {
    let raw = at(head, offset, 16)?;
    if raw.iter().all(|&b| b == 0) {
        return None;
    }
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(raw);
    Some(Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// A NUL- or space-padded label; `None` when empty.
fn label_at(head: &[u8], offset: usize, len: usize) -> Option<String> {
    let raw = at(head, offset, len)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]);
    let text = text.trim_end_matches(' ');
    (!text.is_empty()).then(|| text.to_string())
}

fn probe_luks(head: &[u8]) -> Option<FsInfo> {
    if at(head, 0, 6)? != b"LUKS\xba\xbe" {
        return None;
    }
    Some(FsInfo {
        fs_type: "crypto_LUKS",
        uuid: label_at(head, 168, 40),
        label: None,
    })
}

fn probe_xfs(head: &[u8]) -> Option<FsInfo> {
    if at(head, 0, 4)? != b"XFSB" {
        return None;
    }
    Some(FsInfo {
        fs_type: "xfs",
        uuid: uuid_at(head, 32),
        label: label_at(head, 108, 12),
    })
}

fn probe_ext(head: &[u8]) -> Option<FsInfo> {
    const SB: usize = 1024;
    if at(head, SB + 56, 2)? != [0x53, 0xef] {
        return None;
    }
    let le32 = |o: usize| at(head, SB + o, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let compat = le32(92)?;
    let incompat = le32(96)?;
    let has_journal = compat & 0x4 != 0;
    // blkid: extents, 64bit or flex_bg mean ext4; a journal alone ext3.
    let fs_type = if incompat & (0x40 | 0x80 | 0x200) != 0 {
        "ext4"
    } else if has_journal {
        "ext3"
    } else {
        "ext2"
    };
    Some(FsInfo {
        fs_type,
        uuid: uuid_at(head, SB + 104),
        label: label_at(head, SB + 120, 16),
    })
}

fn probe_btrfs(head: &[u8]) -> Option<FsInfo> {
    const SB: usize = 64 * 1024;
    if at(head, SB + 64, 8)? != b"_BHRfS_M" {
        return None;
    }
    Some(FsInfo {
        fs_type: "btrfs",
        uuid: uuid_at(head, SB + 32),
        label: label_at(head, SB + 299, 256),
    })
}

fn probe_swap(head: &[u8]) -> Option<FsInfo> {
    for page in [4096usize, 8192, 16384, 65536] {
        let magic = at(head, page - 10, 10);
        if magic == Some(b"SWAPSPACE2") || magic == Some(b"SWAP-SPACE") {
            return Some(FsInfo {
                fs_type: "swap",
                uuid: uuid_at(head, 1024 + 12),
                label: label_at(head, 1024 + 28, 16),
            });
        }
    }
    None
}

fn probe_iso(head: &[u8]) -> Option<FsInfo> {
    const PVD: usize = 32 * 1024;
    if at(head, PVD, 6)? != b"\x01CD001" {
        return None;
    }
    // blkid's UUID for ISO 9660 is the creation date.
    let date = at(head, PVD + 813, 16)?;
    let uuid =
        (date.iter().all(u8::is_ascii_digit) && date.iter().any(|&b| b != b'0')).then(|| {
            let d = String::from_utf8_lossy(date);
            format!(
                "{}-{}-{}-{}-{}-{}-{}",
                &d[0..4],
                &d[4..6],
                &d[6..8],
                &d[8..10],
                &d[10..12],
                &d[12..14],
                &d[14..16]
            )
        });
    Some(FsInfo {
        fs_type: "iso9660",
        uuid,
        label: label_at(head, PVD + 40, 32),
    })
}

fn probe_fat(head: &[u8]) -> Option<FsInfo> {
    if at(head, 510, 2)? != [0x55, 0xaa] {
        return None;
    }
    let bps = u16::from_le_bytes([head[11], head[12]]);
    let spc = head[13];
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || spc == 0 || !spc.is_power_of_two() {
        return None;
    }
    let (serial_at, label_off) = if at(head, 82, 5)? == b"FAT32" {
        (67, 71)
    } else if at(head, 54, 3)? == b"FAT" {
        (39, 43)
    } else {
        return None;
    };
    let s = at(head, serial_at, 4)?;
    let serial = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let label = label_at(head, label_off, 11).filter(|l| l != "NO NAME");
    Some(FsInfo {
        fs_type: "vfat",
        uuid: Some(format!("{:04X}-{:04X}", serial >> 16, serial & 0xffff)),
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_superblock_is_recognised() {
        let mut head = vec![0u8; 4096];
        head[1024 + 56..1024 + 58].copy_from_slice(&[0x53, 0xef]);
        head[1024 + 96] = 0x40;
        head[1024 + 104..1024 + 120].copy_from_slice(&[0x11; 16]);
        head[1024 + 120..1024 + 124].copy_from_slice(b"root");
        let info = probe(&head).unwrap();
        assert_eq!(info.fs_type, "ext4");
        assert_eq!(
            info.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        assert_eq!(info.label.as_deref(), Some("root"));
    }

    #[test]
    fn nothing_is_found_in_zeroes_or_short_input() {
        assert_eq!(probe(&[0u8; PROBE_BYTES]), None);
        assert_eq!(probe(&[]), None);
        assert_eq!(probe(&[0x55; 600]), None);
    }

    #[test]
    fn probe_survives_random_and_truncated_input() {
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for _ in 0..500 {
            let len = rng.random_range(0..PROBE_BYTES + 10);
            let mut head = vec![0u8; len];
            rng.fill_bytes(&mut head);
            let magic: &[(usize, &[u8])] = &[
                (0, b"LUKS\xba\xbe"),
                (0, b"XFSB"),
                (1024 + 56, &[0x53, 0xef]),
                (65536 + 64, b"_BHRfS_M"),
                (4086, b"SWAPSPACE2"),
                (32768, b"\x01CD001"),
                (510, &[0x55, 0xaa]),
                (82, b"FAT32"),
            ];
            let (offset, bytes) = magic[rng.random_range(0..magic.len())];
            if offset + bytes.len() <= head.len() {
                head[offset..offset + bytes.len()].copy_from_slice(bytes);
            }
            let _ = probe(&head);
            let cut = rng.random_range(0..=head.len());
            let _ = probe(&head[..cut]);
        }
    }
}
