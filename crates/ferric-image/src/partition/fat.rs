//! An empty FAT32 file system, written natively (what IPA gets from
//! `mkfs.vfat` for the EFI system partition and for `vfat` ephemeral
//! partitions): boot sector and FSInfo with their backups, two FATs, and a
//! root directory holding the volume label.

use super::disk::Disk;
use super::PartitionError;

const RESERVED_SECTORS: u64 = 32;
const FAT_COUNT: u64 = 2;
const BACKUP_BOOT_SECTOR: u64 = 6;
const MIN_CLUSTERS: u64 = 65_525;
const MAX_CLUSTERS: u64 = 0x0fff_fff5;
const MEDIA: u8 = 0xf8;
const LABEL_BYTES: usize = 11;

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatOptions {
    /// At most 11 characters (IPA: `efi-part`, `ephemeral0`).
    pub label: String,
    /// Volume serial number, blkid's UUID (`XXXX-XXXX`).
    pub serial: u32,
    /// Logical sector size of the device.
    pub sector_size: u64,
    /// Sectors before the partition on its disk (the BPB's hidden sectors).
    pub hidden_sectors: u32,
    /// Seconds since the Unix epoch, for the label's directory entry.
    pub timestamp: i64,
}

impl FatOptions {
    /// Options with a random serial and the current time.
    pub fn new(label: &str, sector_size: u64, hidden_sectors: u32) -> Self {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        FatOptions {
            label: label.to_string(),
            serial: rand::random(),
            sector_size,
            hidden_sectors,
            timestamp,
        }
    }

    /// The serial as blkid prints it.
    pub fn uuid(&self) -> String {
        format!("{:04X}-{:04X}", self.serial >> 16, self.serial & 0xffff)
    }
}

/// The geometry chosen for a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FatGeometry {
    pub total_sectors: u64,
    pub sectors_per_cluster: u64,
    pub fat_sectors: u64,
    pub clusters: u64,
}

impl FatGeometry {
    /// Picks cluster and FAT sizes for `length` bytes (cluster sizes as
    /// Microsoft's table gives them, smaller when needed for FAT32's
    /// cluster minimum).
    pub fn for_size(length: u64, sector_size: u64) -> Result<Self, PartitionError> {
        let total = length / sector_size;
        if total > u64::from(u32::MAX) {
            return Err(PartitionError::InvalidSpec(format!(
                "a FAT32 volume of {length} bytes is too large"
            )));
        }
        let mut cluster_bytes = preferred_cluster_bytes(length).max(sector_size);
        loop {
            let spc = cluster_bytes / sector_size;
            if let Some(geometry) = Self::with_spc(total, spc, sector_size) {
                if geometry.clusters >= MIN_CLUSTERS {
                    return Ok(geometry);
                }
            }
            if cluster_bytes <= sector_size {
                return Err(PartitionError::InvalidSpec(format!(
                    "a {length}-byte partition is too small for FAT32 with {sector_size}-byte \
                     sectors (it needs {MIN_CLUSTERS} clusters)"
                )));
            }
            cluster_bytes /= 2;
        }
    }

    fn with_spc(total: u64, spc: u64, sector_size: u64) -> Option<Self> {
        let entries_per_sector = sector_size / 4;
        let mut fat_sectors = 1;
        loop {
            let data = total.checked_sub(RESERVED_SECTORS + FAT_COUNT * fat_sectors)?;
            let clusters = (data / spc).min(MAX_CLUSTERS);
            let needed = (clusters + 2).div_ceil(entries_per_sector);
            if needed <= fat_sectors {
                break;
            }
            fat_sectors = needed;
        }
        // Grow the FATs so that the data area starts on a cluster boundary
        // (as mkfs.fat aligns it); larger FATs stay large enough.
        while !(RESERVED_SECTORS + FAT_COUNT * fat_sectors).is_multiple_of(spc) {
            fat_sectors += 1;
        }
        let data = total.checked_sub(RESERVED_SECTORS + FAT_COUNT * fat_sectors)?;
        Some(FatGeometry {
            total_sectors: total,
            sectors_per_cluster: spc,
            fat_sectors,
            clusters: (data / spc).min(MAX_CLUSTERS),
        })
    }

    fn data_start(&self) -> u64 {
        RESERVED_SECTORS + FAT_COUNT * self.fat_sectors
    }
}

fn preferred_cluster_bytes(length: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match length {
        l if l <= 260 * MIB => 512,
        l if l <= 8 * 1024 * MIB => 4096,
        l if l <= 16 * 1024 * MIB => 8192,
        l if l <= 32 * 1024 * MIB => 16384,
        _ => 32768,
    }
}

fn check_label(label: &str) -> Result<[u8; LABEL_BYTES], PartitionError> {
    let forbidden = |b: u8| !(0x20..0x7f).contains(&b) || b"\"*+,./:;<=>?[\\]|".contains(&b);
    if label.len() > LABEL_BYTES || label.bytes().any(forbidden) {
        return Err(PartitionError::InvalidSpec(format!(
            "FAT label {label:?} must be at most 11 printable ASCII characters without \
             \"*+,./:;<=>?[\\]|"
        )));
    }
    let mut out = [b' '; LABEL_BYTES];
    out[..label.len()].copy_from_slice(label.as_bytes());
    Ok(out)
}

/// The boot sector (one logical sector).
fn boot_sector(g: &FatGeometry, options: &FatOptions, label: &[u8; 11]) -> Vec<u8> {
    let ss = options.sector_size;
    let mut s = vec![0u8; ss as usize];
    s[0..3].copy_from_slice(&[0xeb, 0x58, 0x90]);
    s[3..11].copy_from_slice(b"FERRIC  ");
    s[11..13].copy_from_slice(&(ss as u16).to_le_bytes());
    s[13] = g.sectors_per_cluster as u8;
    s[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
    s[16] = FAT_COUNT as u8;
    s[21] = MEDIA;
    s[24..26].copy_from_slice(&63u16.to_le_bytes());
    s[26..28].copy_from_slice(&255u16.to_le_bytes());
    s[28..32].copy_from_slice(&options.hidden_sectors.to_le_bytes());
    s[32..36].copy_from_slice(&(g.total_sectors as u32).to_le_bytes());
    s[36..40].copy_from_slice(&(g.fat_sectors as u32).to_le_bytes());
    s[44..48].copy_from_slice(&2u32.to_le_bytes());
    s[48..50].copy_from_slice(&1u16.to_le_bytes());
    s[50..52].copy_from_slice(&(BACKUP_BOOT_SECTOR as u16).to_le_bytes());
    s[64] = 0x80;
    s[66] = 0x29;
    s[67..71].copy_from_slice(&options.serial.to_le_bytes());
    s[71..82].copy_from_slice(label);
    s[82..90].copy_from_slice(b"FAT32   ");
    // Boot code: halt forever rather than run garbage if a BIOS boots it.
    s[90..93].copy_from_slice(&[0xf4, 0xeb, 0xfd]);
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

fn fsinfo_sector(g: &FatGeometry, sector_size: u64) -> Vec<u8> {
    let mut s = vec![0u8; sector_size as usize];
    s[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    s[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    // The root directory uses cluster 2; the rest is free.
    s[488..492].copy_from_slice(&((g.clusters - 1) as u32).to_le_bytes());
    s[492..496].copy_from_slice(&3u32.to_le_bytes());
    s[508..512].copy_from_slice(&0xaa55_0000u32.to_le_bytes());
    s
}

/// DOS date and time of a Unix timestamp (clamped to 1980..2107).
fn dos_datetime(timestamp: i64) -> (u16, u16) {
    let days = timestamp.div_euclid(86_400);
    let secs = timestamp.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    let year = year.clamp(1980, 2107);
    let date = ((year - 1980) as u16) << 9 | u16::from(month) << 5 | u16::from(day);
    let time =
        ((secs / 3600) as u16) << 11 | ((secs % 3600 / 60) as u16) << 5 | (secs % 60 / 2) as u16;
    (date, time)
}

fn civil(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn root_cluster(g: &FatGeometry, options: &FatOptions, label: &[u8; 11]) -> Vec<u8> {
    let mut c = vec![0u8; (g.sectors_per_cluster * options.sector_size) as usize];
    if options.label.is_empty() {
        return c;
    }
    let (date, time) = dos_datetime(options.timestamp);
    c[0..11].copy_from_slice(label);
    c[11] = 0x08;
    for at in [14, 22] {
        c[at..at + 2].copy_from_slice(&time.to_le_bytes());
        c[at + 2..at + 4].copy_from_slice(&date.to_le_bytes());
    }
    c[18..20].copy_from_slice(&date.to_le_bytes());
    c
}

/// Formats the area at `offset` (`length` bytes) of `disk` as an empty
/// FAT32 volume; returns the geometry used.
pub fn format_fat32(
    disk: &Disk,
    offset: u64,
    length: u64,
    options: &FatOptions,
) -> Result<FatGeometry, PartitionError> {
    let ss = options.sector_size;
    if ss != disk.sector_size() {
        return Err(PartitionError::InvalidSpec(format!(
            "FAT sector size {ss} differs from the disk's {}",
            disk.sector_size()
        )));
    }
    let label = check_label(&options.label)?;
    let g = FatGeometry::for_size(length, ss)?;
    let data_start = g.data_start() * ss;
    let cluster = g.sectors_per_cluster * ss;
    // Reserved area, both FATs and the root cluster start out zeroed.
    disk.zero(offset, data_start + cluster)?;
    let boot = boot_sector(&g, options, &label);
    let fsinfo = fsinfo_sector(&g, ss);
    for base in [0, BACKUP_BOOT_SECTOR] {
        disk.write_at(offset + base * ss, &boot)?;
        disk.write_at(offset + (base + 1) * ss, &fsinfo)?;
    }
    let mut fat_head = Vec::with_capacity(12);
    for entry in [0x0fff_ff00 | u32::from(MEDIA), 0x0fff_ffff, 0x0fff_fff8] {
        fat_head.extend_from_slice(&entry.to_le_bytes());
    }
    for copy in 0..FAT_COUNT {
        let fat = offset + (RESERVED_SECTORS + copy * g.fat_sectors) * ss;
        disk.write_at(fat, &fat_head)?;
    }
    disk.write_at(offset + data_start, &root_cluster(&g, options, &label))?;
    disk.sync()?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn esp_geometry_uses_aligned_4k_clusters() {
        // mkfs.fat 4.2 also picks 8 sectors per cluster for 550 MiB.
        let g = FatGeometry::for_size(550 * MIB, 512).unwrap();
        assert_eq!(
            (g.sectors_per_cluster, g.fat_sectors, g.clusters),
            (8, 1100, 140_521)
        );
        assert_eq!(g.data_start() % g.sectors_per_cluster, 0);
        assert!((g.clusters + 2) * 4 <= g.fat_sectors * 512);
        let big = FatGeometry::for_size(40 * 1024 * MIB, 512).unwrap();
        assert_eq!(big.sectors_per_cluster, 64);
        assert_eq!(big.data_start() % 64, 0);
    }

    #[test]
    fn small_volumes_shrink_clusters_until_too_small() {
        let g = FatGeometry::for_size(40 * MIB, 512).unwrap();
        assert_eq!(g.sectors_per_cluster, 1);
        assert!(g.clusters >= MIN_CLUSTERS);
        assert!(FatGeometry::for_size(20 * MIB, 512).is_err());
        assert!(FatGeometry::for_size(100 * MIB, 4096).is_err());
        assert!(FatGeometry::for_size(550 * MIB, 4096).is_ok());
        assert!(FatGeometry::for_size(0, 512).is_err());
    }

    #[test]
    fn labels_are_checked() {
        assert_eq!(&check_label("efi-part").unwrap(), b"efi-part   ");
        assert!(check_label("twelve-chars").is_err());
        assert!(check_label("a.b").is_err());
        assert!(check_label("é").is_err());
    }

    #[test]
    fn boot_sector_probes_as_vfat() {
        let g = FatGeometry::for_size(550 * MIB, 512).unwrap();
        let options = FatOptions {
            label: "efi-part".to_string(),
            serial: 0x1234_abcd,
            sector_size: 512,
            hidden_sectors: 2048,
            timestamp: 0,
        };
        let sector = boot_sector(&g, &options, &check_label("efi-part").unwrap());
        let info = super::super::probe::probe(&sector).unwrap();
        assert_eq!(info.fs_type, "vfat");
        assert_eq!(info.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(info.label.as_deref(), Some("efi-part"));
        assert_eq!(options.uuid(), "1234-ABCD");
    }

    #[test]
    fn dos_dates_encode() {
        // 2023-11-14 22:13:20
        let (date, time) = dos_datetime(1_700_000_000);
        assert_eq!(date, (43 << 9) | (11 << 5) | 14);
        assert_eq!(time, (22 << 11) | (13 << 5) | 10);
    }
}
