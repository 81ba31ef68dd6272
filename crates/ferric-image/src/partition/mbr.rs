//! MBR (msdos) partition tables: the four primary entries, the chain of
//! extended boot records holding logical partitions, protective MBRs for
//! GPT disks, and writing entries back.
//!
//! Parsing is pure and, like libblkid, refuses sectors that only look like
//! a table: boot indicators other than 0x00/0x80, or a FAT/NTFS boot
//! sector with no entries.

use super::disk::Disk;
use super::PartitionError;

/// Offset of the 32-bit disk signature (the "disk identifier").
pub const SIGNATURE_OFFSET: usize = 440;
const ENTRIES_OFFSET: usize = 446;
/// Longest chain of extended boot records followed.
const MAX_LOGICALS: usize = 256;

pub const TYPE_PROTECTIVE: u8 = 0xee;
pub const TYPE_LINUX: u8 = 0x83;
pub const TYPE_SWAP: u8 = 0x82;
pub const TYPE_FAT32_LBA: u8 = 0x0c;
pub const TYPE_PREP: u8 = 0x41;

/// One 16-byte partition entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MbrEntry {
    pub status: u8,
    pub kind: u8,
    pub start: u32,
    pub count: u32,
}

impl MbrEntry {
    pub fn is_used(&self) -> bool {
        self.kind != 0 && self.count != 0
    }

    fn parse(raw: &[u8]) -> Self {
        MbrEntry {
            status: raw[0],
            kind: raw[4],
            start: u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]),
            count: u32::from_le_bytes([raw[12], raw[13], raw[14], raw[15]]),
        }
    }

    fn serialize(&self) -> [u8; 16] {
        let mut raw = [0u8; 16];
        if !self.is_used() {
            return raw;
        }
        let end = u64::from(self.start) + u64::from(self.count) - 1;
        raw[0] = self.status;
        raw[1..4].copy_from_slice(&chs(u64::from(self.start)));
        raw[4] = self.kind;
        raw[5..8].copy_from_slice(&chs(end));
        raw[8..12].copy_from_slice(&self.start.to_le_bytes());
        raw[12..16].copy_from_slice(&self.count.to_le_bytes());
        raw
    }
}

/// Extended partition types (CHS, LBA, Linux).
pub fn is_extended(kind: u8) -> bool {
    matches!(kind, 0x05 | 0x0f | 0x85)
}

/// A parsed sector 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    pub signature: u32,
    pub entries: [MbrEntry; 4],
}

impl Mbr {
    /// True when an entry is a GPT protective one (type 0xEE).
    pub fn is_protective(&self) -> bool {
        self.entries.iter().any(|e| e.kind == TYPE_PROTECTIVE)
    }

    /// Primary entries in use (extended included), as parted counts them.
    pub fn primary_count(&self) -> usize {
        self.entries.iter().filter(|e| e.is_used()).count()
    }
}

/// Parses sector 0; `None` when it holds no partition table.
pub fn parse(sector: &[u8]) -> Option<Mbr> {
    if sector.len() < 512 || sector[510..512] != [0x55, 0xaa] {
        return None;
    }
    let mut entries = [MbrEntry::default(); 4];
    for (i, entry) in entries.iter_mut().enumerate() {
        let at = ENTRIES_OFFSET + 16 * i;
        *entry = MbrEntry::parse(&sector[at..at + 16]);
        if entry.status != 0 && entry.status != 0x80 {
            return None;
        }
    }
    if looks_like_boot_sector(sector) && !entries.iter().any(MbrEntry::is_used) {
        return None;
    }
    let signature = u32::from_le_bytes([
        sector[SIGNATURE_OFFSET],
        sector[SIGNATURE_OFFSET + 1],
        sector[SIGNATURE_OFFSET + 2],
        sector[SIGNATURE_OFFSET + 3],
    ]);
    Some(Mbr { signature, entries })
}

/// A FAT, exFAT or NTFS boot sector (a file system, not a table).
fn looks_like_boot_sector(sector: &[u8]) -> bool {
    let jump = sector[0] == 0xeb || sector[0] == 0xe9;
    let bytes_per_sector = u16::from_le_bytes([sector[11], sector[12]]);
    let valid_bps = matches!(bytes_per_sector, 512 | 1024 | 2048 | 4096);
    let named = &sector[54..57] == b"FAT"
        || &sector[82..87] == b"FAT32"
        || &sector[3..11] == b"NTFS    "
        || &sector[3..11] == b"EXFAT   ";
    jump && (valid_bps || &sector[3..11] == b"EXFAT   ") && named
}

/// A logical partition found in the extended boot record chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logical {
    /// Linux's numbering: 5, 6, ...
    pub number: u32,
    pub entry: MbrEntry,
    /// Absolute first sector.
    pub start: u64,
}

/// Follows the chain of extended boot records of the extended partition
/// `ext`, stopping at a loop, a broken record or the chain limit.
pub fn read_logicals(disk: &Disk, ext: &MbrEntry) -> Result<Vec<Logical>, PartitionError> {
    let ext_start = u64::from(ext.start);
    let ext_end = ext_start + u64::from(ext.count);
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut ebr = ext_start;
    while out.len() < MAX_LOGICALS && seen.insert(ebr) {
        if ebr >= ext_end || ebr >= disk.sectors() {
            break;
        }
        let sector = disk.read_sectors(ebr, 1)?;
        if sector[510..512] != [0x55, 0xaa] {
            break;
        }
        let first = MbrEntry::parse(&sector[ENTRIES_OFFSET..ENTRIES_OFFSET + 16]);
        let next = MbrEntry::parse(&sector[ENTRIES_OFFSET + 16..ENTRIES_OFFSET + 32]);
        if first.is_used() && !is_extended(first.kind) {
            out.push(Logical {
                number: 5 + out.len() as u32,
                entry: first,
                start: ebr + u64::from(first.start),
            });
        }
        if !next.is_used() || !is_extended(next.kind) {
            break;
        }
        ebr = ext_start + u64::from(next.start);
    }
    Ok(out)
}

/// Cylinder/head/sector of `lba` in the 255-head, 63-sector geometry
/// fdisk uses, saturated at the largest address CHS holds.
pub fn chs(lba: u64) -> [u8; 3] {
    let per_cylinder = 255 * 63;
    let cylinder = lba / per_cylinder;
    if cylinder > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let head = (lba / 63) % 255;
    let sector = lba % 63 + 1;
    [
        head as u8,
        (sector as u8) | (((cylinder >> 8) as u8) << 6),
        cylinder as u8,
    ]
}

/// Writes a protective MBR covering the disk (as parted writes it: start
/// CHS 0/0/2, end CHS saturated, boot code and signature cleared).
pub fn write_protective(disk: &Disk) -> Result<(), PartitionError> {
    let count = (disk.sectors() - 1).min(u64::from(u32::MAX)) as u32;
    let mut sector = vec![0u8; disk.sector_size() as usize];
    let entry = &mut sector[ENTRIES_OFFSET..ENTRIES_OFFSET + 16];
    entry[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    entry[4] = TYPE_PROTECTIVE;
    entry[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    entry[8..12].copy_from_slice(&1u32.to_le_bytes());
    entry[12..16].copy_from_slice(&count.to_le_bytes());
    sector[510..512].copy_from_slice(&[0x55, 0xaa]);
    disk.write_at(0, &sector)
}

/// Writes a fresh MBR: cleared boot code, `signature`, `entries`.
pub fn write_fresh(
    disk: &Disk,
    signature: u32,
    entries: &[MbrEntry; 4],
) -> Result<(), PartitionError> {
    let mut sector = vec![0u8; 512];
    sector[SIGNATURE_OFFSET..SIGNATURE_OFFSET + 4].copy_from_slice(&signature.to_le_bytes());
    for (i, entry) in entries.iter().enumerate() {
        let at = ENTRIES_OFFSET + 16 * i;
        sector[at..at + 16].copy_from_slice(&entry.serialize());
    }
    sector[510..512].copy_from_slice(&[0x55, 0xaa]);
    disk.write_at(0, &sector)
}

/// Rewrites entry `slot` (0..4) of the existing sector 0, keeping the boot
/// code, the signature and the other entries.
pub fn set_entry(disk: &Disk, slot: usize, entry: &MbrEntry) -> Result<(), PartitionError> {
    let at = (ENTRIES_OFFSET + 16 * slot.min(3)) as u64;
    disk.write_at(at, &entry.serialize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sector_with(entries: &[MbrEntry]) -> Vec<u8> {
        let mut s = vec![0u8; 512];
        s[440..444].copy_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        for (i, e) in entries.iter().enumerate() {
            s[446 + 16 * i..462 + 16 * i].copy_from_slice(&e.serialize());
        }
        s[510] = 0x55;
        s[511] = 0xaa;
        s
    }

    #[test]
    fn entries_round_trip() {
        let e = MbrEntry {
            status: 0x80,
            kind: 0x83,
            start: 2048,
            count: 4096,
        };
        let mbr = parse(&sector_with(&[e])).unwrap();
        assert_eq!(mbr.signature, 0x1a2b_3c4d);
        assert_eq!(mbr.entries[0], e);
        assert_eq!(mbr.primary_count(), 1);
        assert!(!mbr.is_protective());
    }

    #[test]
    fn chs_matches_fdisk_geometry() {
        assert_eq!(chs(2048), [0x20, 0x21, 0x00]);
        assert_eq!(chs(0), [0, 1, 0]);
        assert_eq!(chs(u64::from(u32::MAX)), [0xfe, 0xff, 0xff]);
    }

    #[test]
    fn non_tables_are_refused() {
        assert_eq!(parse(&[0u8; 512]), None);
        assert_eq!(parse(&[0u8; 100]), None);
        let mut bad_status = sector_with(&[]);
        bad_status[446] = 0x12;
        assert_eq!(parse(&bad_status), None);
        let mut fat = sector_with(&[]);
        fat[0] = 0xeb;
        fat[11..13].copy_from_slice(&512u16.to_le_bytes());
        fat[82..87].copy_from_slice(b"FAT32");
        assert_eq!(parse(&fat), None);
        // An empty table is still a table.
        assert!(parse(&sector_with(&[])).is_some());
    }

    #[test]
    fn parser_survives_random_sectors() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
        for _ in 0..5000 {
            let len = rng.random_range(0..600);
            let mut s: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if len >= 512 && rng.random_bool(0.7) {
                s[510] = 0x55;
                s[511] = 0xaa;
                for i in 0..4 {
                    s[446 + 16 * i] = if rng.random_bool(0.5) { 0 } else { 0x80 };
                }
            }
            let _ = parse(&s);
        }
    }
}
