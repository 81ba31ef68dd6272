//! Disk erasure for cleaning, done natively.
//!
//! [`destroy_metadata`] is IPA's `erase_devices_metadata` /
//! `destroy_disk_metadata` (`wipefs --all`, zeroing the GPT areas at both
//! ends, `sgdisk -Z`) without the tools: it zeroes the regions where
//! partition tables and file system and RAID signatures live — the first
//! 8 MiB and last 2 MiB of the disk and of every partition its table
//! lists, and a misplaced backup GPT — so that blkid, wipefs, sfdisk and
//! the kernel find nothing. The regions cover MBR/EBR, both GPT copies,
//! ext2/3/4, XFS, Btrfs (primary superblock), FAT, NTFS, ISO 9660/UDF,
//! swap (pages up to 64 KiB), LUKS 1 and 2 (both headers), LVM, bcache,
//! md RAID 0.90/1.0/1.1/1.2, DDF and Intel IMSM, and ZFS labels.
//!
//! [`erase`] is IPA's `erase_devices` through shred (`[deploy]
//! shred_random_overwrite_iterations`, `shred_final_overwrite_with_zeros`):
//! N passes of pseudo-random data then optionally zeroes, in 4 MiB writes,
//! with an fsync after each pass and progress reported to a callback that
//! can stop the erasure.

use std::ops::ControlFlow;
use std::path::Path;

use rand::{RngCore, SeedableRng};

use crate::partition::{Disk, PartitionError};

const MIB: u64 = 1024 * 1024;
/// Zeroed at the start of the disk and of each partition: LUKS2's last
/// possible secondary header lies at 4 MiB.
pub const HEAD_BYTES: u64 = 8 * MIB;
/// Zeroed at the end of the disk and of each partition: GPT backup, md
/// 0.90/1.0, ZFS L2/L3 (last 512 KiB, 256 KiB-aligned), DDF, IMSM.
pub const TAIL_BYTES: u64 = 2 * MIB;
/// Size of each write while shredding.
pub const WRITE_BYTES: usize = 4 * 1024 * 1024;

/// What can go wrong erasing a disk.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Disk(#[from] PartitionError),
    #[error("erasing {path} was stopped after {written} bytes")]
    Aborted { path: String, written: u64 },
}

/// What [`destroy_metadata`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataReport {
    /// Byte ranges zeroed, as (offset, length), sorted and disjoint.
    pub regions: Vec<(u64, u64)>,
    /// Partitions whose own metadata regions were cleared.
    pub partitions: usize,
}

impl MetadataReport {
    /// Total bytes zeroed.
    pub fn bytes_zeroed(&self) -> u64 {
        self.regions.iter().map(|r| r.1).sum()
    }
}

/// Clears partition tables and file system, RAID and encryption
/// signatures on `path` (a disk or an image file).
pub fn destroy_metadata(path: &Path) -> Result<MetadataReport, EraseError> {
    destroy_metadata_on(&Disk::open(path)?)
}

/// [`destroy_metadata`] on an open disk (a remote one included).
pub fn destroy_metadata_on(disk: &Disk) -> Result<MetadataReport, EraseError> {
    let path = disk.path();
    let size = disk.size();
    // A damaged table is no reason to stop: the disk-level regions go
    // anyway, and they hold the table.
    let table = disk.read_table().unwrap_or_else(|e| {
        tracing::warn!(disk = %path.display(), error = %e, "partition table unreadable; clearing the disk's own regions only");
        None
    });
    let partitions: Vec<(u64, u64)> = table
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.offset, p.length))
        .collect();
    let extra = stale_gpt_regions(disk);
    let regions = metadata_regions(size, &partitions, &extra);
    for &(offset, len) in &regions {
        disk.zero(offset, len)?;
    }
    disk.sync()?;
    tracing::info!(disk = %path.display(), bytes = regions.iter().map(|r| r.1).sum::<u64>(), "disk metadata destroyed");
    Ok(MetadataReport {
        regions,
        partitions: partitions.len(),
    })
}

/// A backup GPT away from the disk's end (an image written to a larger
/// disk) is found by the primary header; clear it too.
fn stale_gpt_regions(disk: &Disk) -> Vec<(u64, u64)> {
    let Ok(Some((gdisk, found))) = disk.find_gpt() else {
        return Vec::new();
    };
    let ss = gdisk.sector_size();
    let h = &found.header;
    let backup = if h.my_lba == 1 {
        h.alternate_lba
    } else {
        h.my_lba
    };
    let table = h.table_sectors(ss);
    if backup >= gdisk.sectors() || backup < table {
        return Vec::new();
    }
    let start = (backup - table) * ss;
    vec![(start, (table + 1) * ss)]
}

/// Regions to zero for a disk of `size` bytes with `partitions` (offset,
/// length) and `extra` ranges, clamped to the disk, merged and sorted.
pub fn metadata_regions(
    size: u64,
    partitions: &[(u64, u64)],
    extra: &[(u64, u64)],
) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut add_area = |offset: u64, len: u64| {
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return;
        }
        let len = end - offset;
        ranges.push((offset, offset + len.min(HEAD_BYTES)));
        ranges.push((end - len.min(TAIL_BYTES), end));
    };
    add_area(0, size);
    for &(offset, len) in partitions {
        add_area(offset, len);
    }
    for &(offset, len) in extra {
        let end = offset.saturating_add(len).min(size);
        if offset < end {
            ranges.push((offset, end));
        }
    }
    merge(ranges)
}

fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged.into_iter().map(|(s, e)| (s, e - s)).collect()
}

/// Which kind of data a pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    Random,
    Zero,
}

/// Progress of an erasure, reported after every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseProgress {
    /// Current pass, from 1.
    pub pass: u32,
    pub passes: u32,
    pub kind: PassKind,
    /// Bytes written in this pass.
    pub pass_done: u64,
    /// Device size (bytes each pass writes).
    pub pass_total: u64,
    /// Bytes written over all passes so far.
    pub done: u64,
    pub total: u64,
}

/// What [`erase`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseReport {
    pub passes: u32,
    pub bytes_written: u64,
}

/// Overwrites all of `path` with `random_passes` passes of pseudo-random
/// data, then zeroes if `zero_after` (shred's `--iterations N --zero`).
/// `progress` may return `ControlFlow::Break` to stop: the erasure then
/// fails with [`EraseError::Aborted`].
pub fn erase(
    path: &Path,
    random_passes: u32,
    zero_after: bool,
    progress: &mut dyn FnMut(&EraseProgress) -> ControlFlow<()>,
) -> Result<EraseReport, EraseError> {
    let disk = Disk::open(path)?;
    let size = disk.size();
    let passes = random_passes + u32::from(zero_after);
    let mut status = EraseProgress {
        pass: 0,
        passes,
        kind: PassKind::Random,
        pass_done: 0,
        pass_total: size,
        done: 0,
        total: size * u64::from(passes),
    };
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    let mut buf = vec![0u8; WRITE_BYTES.min(size as usize).max(1)];
    for pass in 1..=passes {
        status.pass = pass;
        status.pass_done = 0;
        status.kind = if pass <= random_passes {
            PassKind::Random
        } else {
            PassKind::Zero
        };
        if status.kind == PassKind::Zero {
            buf.fill(0);
        }
        while status.pass_done < size {
            let n = (size - status.pass_done).min(buf.len() as u64) as usize;
            if status.kind == PassKind::Random {
                rng.fill_bytes(&mut buf[..n]);
            }
            disk.write_at(status.pass_done, &buf[..n])?;
            status.pass_done += n as u64;
            status.done += n as u64;
            if progress(&status).is_break() {
                disk.sync()?;
                return Err(EraseError::Aborted {
                    path: path.display().to_string(),
                    written: status.done,
                });
            }
        }
        disk.sync()?;
        tracing::info!(disk = %path.display(), pass, passes, "erase pass done");
    }
    Ok(EraseReport {
        passes,
        bytes_written: status.done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_cover_both_ends_of_disk_and_partitions() {
        let size = 1024 * MIB;
        let parts = [(MIB, 100 * MIB), (101 * MIB, 923 * MIB - 34 * 512)];
        let regions = metadata_regions(size, &parts, &[]);
        assert_eq!(
            regions,
            [
                (0, 9 * MIB),
                (99 * MIB, 10 * MIB),
                (1024 * MIB - 34 * 512 - 2 * MIB, 2 * MIB + 34 * 512),
            ]
        );
    }

    #[test]
    fn regions_are_clamped_to_the_disk() {
        let regions = metadata_regions(
            3 * MIB,
            &[(2 * MIB, 100 * MIB), (u64::MAX, 5)],
            &[(u64::MAX - 1, 10)],
        );
        assert_eq!(regions, [(0, 3 * MIB)]);
        assert_eq!(metadata_regions(0, &[], &[]), []);
        assert_eq!(metadata_regions(100, &[], &[]), [(0, 100)]);
    }

    #[test]
    fn md_zfs_and_luks_locations_are_covered() {
        let size = 10 * 1024 * MIB + 12345;
        let regions = metadata_regions(size, &[], &[]);
        let covered = |offset: u64, len: u64| {
            regions
                .iter()
                .any(|&(s, l)| offset >= s && offset + len <= s + l)
        };
        let md090 = (size & !(64 * 1024 - 1)) - 64 * 1024;
        assert!(covered(md090, 4096));
        let md10 = (size - 8 * 1024) & !4095;
        assert!(covered(md10, 4096));
        let zfs_l2 = (size & !(256 * 1024 - 1)) - 512 * 1024;
        assert!(covered(zfs_l2, 512 * 1024));
        assert!(covered(4 * MIB, 4096)); // LUKS2 secondary header, largest offset
        assert!(covered(64 * 1024, 4096)); // btrfs
        assert!(covered(size - 512, 512)); // GPT backup header, DDF anchor
    }
}
