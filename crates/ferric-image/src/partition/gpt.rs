//! GUID Partition Tables (UEFI 2.10 §5.3): parsing and writing headers and
//! entry arrays, and the disk-level moves `sgdisk` makes (a new table,
//! a new entry, the backup moved to the disk's end as `sgdisk -e` does).
//!
//! Parsing is pure (bytes in, values or a reason out) and checks every
//! field it relies on: signature, sizes, CRCs, locations, entry ranges.

use uuid::Uuid;

use super::disk::Disk;
use super::mbr;
use super::PartitionError;

pub const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION: u32 = 0x0001_0000;
const HEADER_SIZE: u32 = 92;
/// Entries in a table Ferric writes, and their size (what every tool uses).
pub const DEFAULT_ENTRIES: u32 = 128;
pub const ENTRY_SIZE: u32 = 128;
/// Largest entry array accepted when reading (sgdisk's own limit is lower).
const MAX_TABLE_BYTES: u64 = 1024 * 1024;

/// Well-known partition type GUIDs.
pub mod types {
    use uuid::{uuid, Uuid};
    pub const LINUX_DATA: Uuid = uuid!("0fc63daf-8483-4772-8e79-3d69d8477de4");
    pub const LINUX_SWAP: Uuid = uuid!("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f");
    pub const EFI_SYSTEM: Uuid = uuid!("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    pub const BIOS_BOOT: Uuid = uuid!("21686148-6449-6e6f-744e-656564454649");
    pub const PREP_BOOT: Uuid = uuid!("9e1a2d38-c612-4316-aa26-8b49521e5a8b");
    pub const BASIC_DATA: Uuid = uuid!("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7");
}

/// A parsed GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Uuid,
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

impl Header {
    /// Sectors the entry array takes.
    pub fn table_sectors(&self, sector_size: u64) -> u64 {
        (u64::from(self.num_entries) * u64::from(self.entry_size)).div_ceil(sector_size)
    }
}

/// One used entry of the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the array, from 0 (the partition number is `index + 1`).
    pub index: u32,
    pub type_guid: Uuid,
    pub unique_guid: Uuid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: String,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn guid(b: &[u8], at: usize) -> Uuid {
    let mut v = [0u8; 16];
    v.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes_le(v)
}

/// Parses a header sector found at `lba` on a disk of `sectors` sectors.
pub fn parse_header(sector: &[u8], lba: u64, sectors: u64) -> Result<Header, String> {
    if sector.len() < 512 || &sector[..8] != SIGNATURE {
        return Err("no GPT signature".to_string());
    }
    let size = le32(sector, 12);
    if size < HEADER_SIZE || size as usize > sector.len() {
        return Err(format!("header size {size} is not valid"));
    }
    let stored_crc = le32(sector, 16);
    let mut copy = sector[..size as usize].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != stored_crc {
        return Err("header CRC does not match".to_string());
    }
    let header = Header {
        my_lba: le64(sector, 24),
        alternate_lba: le64(sector, 32),
        first_usable: le64(sector, 40),
        last_usable: le64(sector, 48),
        disk_guid: guid(sector, 56),
        entries_lba: le64(sector, 72),
        num_entries: le32(sector, 80),
        entry_size: le32(sector, 84),
        entries_crc: le32(sector, 88),
    };
    check_header(&header, lba, sectors, sector.len() as u64)?;
    Ok(header)
}

fn check_header(h: &Header, lba: u64, sectors: u64, sector_size: u64) -> Result<(), String> {
    if h.my_lba != lba {
        return Err(format!("header at sector {lba} says it is at {}", h.my_lba));
    }
    if h.entry_size < 128 || !h.entry_size.is_power_of_two() {
        return Err(format!("entry size {} is not valid", h.entry_size));
    }
    let table = u64::from(h.num_entries) * u64::from(h.entry_size);
    if h.num_entries == 0 || table > MAX_TABLE_BYTES {
        return Err(format!("{} entries is not a valid table", h.num_entries));
    }
    let table_sectors = table.div_ceil(sector_size);
    let table_end = h
        .entries_lba
        .checked_add(table_sectors)
        .ok_or("entry array location overflows")?;
    if h.entries_lba < 2 || table_end > sectors {
        return Err(format!(
            "entry array at sector {} lies outside the disk",
            h.entries_lba
        ));
    }
    if h.first_usable > h.last_usable.saturating_add(1) || h.last_usable >= sectors {
        return Err(format!(
            "usable sectors {}-{} do not fit the disk",
            h.first_usable, h.last_usable
        ));
    }
    let array_overlaps_usable = h.entries_lba <= h.last_usable && table_end > h.first_usable;
    if array_overlaps_usable || (h.my_lba >= h.first_usable && h.my_lba <= h.last_usable) {
        return Err("header or entry array lies inside the usable sectors".to_string());
    }
    Ok(())
}

/// Parses the entry array of `header`, checking its CRC and every used
/// entry's range.
pub fn parse_entries(bytes: &[u8], header: &Header) -> Result<Vec<Entry>, String> {
    let size = header.entry_size as usize;
    if size < 128 {
        return Err(format!("entry size {size} is not valid"));
    }
    let len = header.num_entries as usize * size;
    let table = bytes.get(..len).ok_or("entry array is truncated")?;
    if crc32fast::hash(table) != header.entries_crc {
        return Err("entry array CRC does not match".to_string());
    }
    let mut entries = Vec::new();
    for (index, raw) in table.chunks_exact(size).enumerate() {
        if raw[..16].iter().all(|&b| b == 0) {
            continue;
        }
        let entry = Entry {
            index: index as u32,
            type_guid: guid(raw, 0),
            unique_guid: guid(raw, 16),
            first_lba: le64(raw, 32),
            last_lba: le64(raw, 40),
            attributes: le64(raw, 48),
            name: decode_name(&raw[56..128]),
        };
        if entry.first_lba > entry.last_lba
            || entry.first_lba < header.first_usable
            || entry.last_lba > header.last_usable
        {
            return Err(format!(
                "partition {} (sectors {}-{}) lies outside the usable sectors {}-{}",
                index + 1,
                entry.first_lba,
                entry.last_lba,
                header.first_usable,
                header.last_usable
            ));
        }
        entries.push(entry);
    }
    check_overlaps(&entries)?;
    Ok(entries)
}

fn check_overlaps(entries: &[Entry]) -> Result<(), String> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by_key(|e| e.first_lba);
    for pair in sorted.windows(2) {
        if pair[1].first_lba <= pair[0].last_lba {
            return Err(format!(
                "partitions {} and {} overlap",
                pair[0].index + 1,
                pair[1].index + 1
            ));
        }
    }
    Ok(())
}

fn decode_name(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// The header sector (`sector_size` bytes) with its CRC.
pub fn serialize_header(h: &Header, sector_size: u64) -> Vec<u8> {
    let mut out = vec![0u8; sector_size as usize];
    out[..8].copy_from_slice(SIGNATURE);
    out[8..12].copy_from_slice(&REVISION.to_le_bytes());
    out[12..16].copy_from_slice(&HEADER_SIZE.to_le_bytes());
    out[24..32].copy_from_slice(&h.my_lba.to_le_bytes());
    out[32..40].copy_from_slice(&h.alternate_lba.to_le_bytes());
    out[40..48].copy_from_slice(&h.first_usable.to_le_bytes());
    out[48..56].copy_from_slice(&h.last_usable.to_le_bytes());
    out[56..72].copy_from_slice(&h.disk_guid.to_bytes_le());
    out[72..80].copy_from_slice(&h.entries_lba.to_le_bytes());
    out[80..84].copy_from_slice(&h.num_entries.to_le_bytes());
    out[84..88].copy_from_slice(&h.entry_size.to_le_bytes());
    out[88..92].copy_from_slice(&h.entries_crc.to_le_bytes());
    let crc = crc32fast::hash(&out[..HEADER_SIZE as usize]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The entry array (padded to whole sectors) holding `entries`.
pub fn serialize_entries(
    entries: &[Entry],
    num_entries: u32,
    entry_size: u32,
    sector_size: u64,
) -> Vec<u8> {
    let size = entry_size as usize;
    let len = num_entries as usize * size;
    let mut out = vec![0u8; (len as u64).div_ceil(sector_size) as usize * sector_size as usize];
    for entry in entries {
        let at = entry.index as usize * size;
        if entry.index >= num_entries {
            continue;
        }
        let raw = &mut out[at..at + size];
        raw[0..16].copy_from_slice(&entry.type_guid.to_bytes_le());
        raw[16..32].copy_from_slice(&entry.unique_guid.to_bytes_le());
        raw[32..40].copy_from_slice(&entry.first_lba.to_le_bytes());
        raw[40..48].copy_from_slice(&entry.last_lba.to_le_bytes());
        raw[48..56].copy_from_slice(&entry.attributes.to_le_bytes());
        for (i, unit) in entry.name.encode_utf16().take(36).enumerate() {
            raw[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
        }
    }
    out
}

/// Entry array CRC over the `num_entries * entry_size` bytes of `array`.
pub fn entries_crc(array: &[u8], num_entries: u32, entry_size: u32) -> u32 {
    crc32fast::hash(&array[..num_entries as usize * entry_size as usize])
}

/// A GPT read from a disk: the header used and its entries.
#[derive(Debug, Clone)]
pub struct Gpt {
    pub header: Header,
    pub entries: Vec<Entry>,
    /// False when the primary was unusable and the backup was read.
    pub primary_ok: bool,
}

/// Reads the GPT of `disk` (primary, else the backup at the last sector).
/// `Ok(None)`: no GPT signature at all.
pub fn read(disk: &Disk) -> Result<Option<Gpt>, PartitionError> {
    let ss = disk.sector_size();
    let sectors = disk.sectors();
    if sectors < 3 {
        return Ok(None);
    }
    let primary = read_copy(disk, 1, sectors);
    let primary_error = match primary {
        Ok(Some(gpt)) => return Ok(Some(gpt)),
        Ok(None) => None,
        Err(e) => Some(e),
    };
    // The backup is at the last sector (a grown disk keeps it elsewhere,
    // but then the primary is what tells where).
    let backup = read_copy(disk, sectors - 1, sectors);
    let corrupt = |detail: String| PartitionError::Corrupt {
        table: "GPT",
        path: disk.path().to_path_buf(),
        detail: format!("{detail} (sector size {ss})"),
    };
    match (primary_error, backup) {
        (_, Ok(Some(mut gpt))) => {
            gpt.primary_ok = false;
            Ok(Some(gpt))
        }
        (Some(reason), _) => Err(corrupt(reason)),
        (None, Err(reason)) => Err(corrupt(format!("no primary header; backup: {reason}"))),
        (None, Ok(None)) => Ok(None),
    }
}

/// Reads the header at `lba` and its entries; `Ok(None)` without a
/// signature there; `Err(reason)` for a damaged copy.
fn read_copy(disk: &Disk, lba: u64, sectors: u64) -> Result<Option<Gpt>, String> {
    let sector = disk.read_sectors(lba, 1).map_err(|e| e.to_string())?;
    if &sector[..8] != SIGNATURE {
        return Ok(None);
    }
    let header = parse_header(&sector, lba, sectors)?;
    let table = disk
        .read_sectors(header.entries_lba, header.table_sectors(disk.sector_size()))
        .map_err(|e| e.to_string())?;
    let entries = parse_entries(&table, &header)?;
    Ok(Some(Gpt {
        header,
        entries,
        primary_ok: true,
    }))
}

/// Headers of a fresh table on a disk of `sectors` sectors.
pub fn fresh_headers(sectors: u64, sector_size: u64, disk_guid: Uuid) -> (Header, Header) {
    let table_sectors = (u64::from(DEFAULT_ENTRIES) * u64::from(ENTRY_SIZE)).div_ceil(sector_size);
    let last = sectors - 1;
    let primary = Header {
        my_lba: 1,
        alternate_lba: last,
        first_usable: 2 + table_sectors,
        last_usable: last - 1 - table_sectors,
        disk_guid,
        entries_lba: 2,
        num_entries: DEFAULT_ENTRIES,
        entry_size: ENTRY_SIZE,
        entries_crc: 0,
    };
    let backup = Header {
        my_lba: last,
        alternate_lba: 1,
        entries_lba: last - table_sectors,
        ..primary.clone()
    };
    (primary, backup)
}

/// Writes both copies of a table (backup first), with `entries`, and a
/// protective MBR.
pub fn write_table(
    disk: &Disk,
    primary: &Header,
    backup: &Header,
    entries: &[Entry],
) -> Result<(), PartitionError> {
    let ss = disk.sector_size();
    let array = serialize_entries(entries, primary.num_entries, primary.entry_size, ss);
    let crc = entries_crc(&array, primary.num_entries, primary.entry_size);
    let primary = Header {
        entries_crc: crc,
        ..primary.clone()
    };
    let backup = Header {
        entries_crc: crc,
        ..backup.clone()
    };
    disk.write_sectors(backup.entries_lba, &array)?;
    disk.write_sectors(backup.my_lba, &serialize_header(&backup, ss))?;
    disk.write_sectors(primary.entries_lba, &array)?;
    disk.write_sectors(1, &serialize_header(&primary, ss))?;
    mbr::write_protective(disk)
}

/// Sectors a default 128-entry array takes.
pub fn table_sectors(sector_size: u64) -> u64 {
    (u64::from(DEFAULT_ENTRIES) * u64::from(ENTRY_SIZE)).div_ceil(sector_size)
}

/// First usable sector of a fresh table.
pub fn first_usable(sector_size: u64) -> u64 {
    2 + table_sectors(sector_size)
}

/// One past the last usable sector of a fresh table on `sectors` sectors.
pub fn usable_end(sectors: u64, sector_size: u64) -> u64 {
    sectors.saturating_sub(1 + table_sectors(sector_size))
}

/// The smallest disk (in sectors) a fresh table fits on with one sector
/// of usable space.
pub fn min_sectors(sector_size: u64) -> u64 {
    2 * (1 + table_sectors(sector_size)) + 2
}

/// True when the backup header is not at the disk's last sector (what
/// `sgdisk -v` reports as "it doesn't reside at the end of the disk").
pub fn backup_misplaced(gpt: &Gpt, sectors: u64) -> bool {
    backup_lba(&gpt.header) != sectors - 1
}

/// `sgdisk -e`: rewrites the backup entries and header at the disk's end,
/// extends the last usable sector, refreshes both CRCs and the protective
/// MBR. Needs a readable primary copy.
pub fn move_backup_to_end(disk: &Disk, gpt: &Gpt) -> Result<(), PartitionError> {
    if !gpt.primary_ok {
        return Err(PartitionError::Corrupt {
            table: "GPT",
            path: disk.path().to_path_buf(),
            detail: "the primary header is damaged; only the backup could be read".to_string(),
        });
    }
    let ss = disk.sector_size();
    let sectors = disk.sectors();
    let old = &gpt.header;
    let table_sectors = old.table_sectors(ss);
    let last = sectors - 1;
    let new_last_usable = last.saturating_sub(1 + table_sectors);
    if new_last_usable < old.first_usable || new_last_usable < old.last_usable {
        return Err(PartitionError::Corrupt {
            table: "GPT",
            path: disk.path().to_path_buf(),
            detail: format!(
                "the disk ({sectors} sectors) ends before the table's last usable sector {}",
                old.last_usable
            ),
        });
    }
    if let Some(beyond) = gpt.entries.iter().find(|e| e.last_lba > new_last_usable) {
        return Err(PartitionError::Corrupt {
            table: "GPT",
            path: disk.path().to_path_buf(),
            detail: format!(
                "partition {} ends at sector {}, past the disk's last usable sector {}",
                beyond.index + 1,
                beyond.last_lba,
                new_last_usable
            ),
        });
    }
    let primary = Header {
        alternate_lba: last,
        last_usable: new_last_usable,
        ..old.clone()
    };
    let backup = Header {
        my_lba: last,
        alternate_lba: 1,
        entries_lba: last - table_sectors,
        ..primary.clone()
    };
    let stale = old.alternate_lba;
    write_table(disk, &primary, &backup, &gpt.entries)?;
    // The old backup header now lies in free space; a stale signature there
    // would confuse tools that scan for one.
    let inside_partition = gpt
        .entries
        .iter()
        .any(|e| (e.first_lba..=e.last_lba).contains(&stale));
    if stale < last && stale > 1 && !inside_partition {
        disk.zero(stale * ss, ss)?;
    }
    Ok(())
}

/// Adds `entry` to the table and writes both copies.
pub fn add_entry(disk: &Disk, gpt: &Gpt, entry: Entry) -> Result<(), PartitionError> {
    let (primary, backup) =
        copies(&gpt.header, disk.sectors(), disk.sector_size()).map_err(|detail| {
            PartitionError::Corrupt {
                table: "GPT",
                path: disk.path().to_path_buf(),
                detail,
            }
        })?;
    let mut entries = gpt.entries.clone();
    entries.push(entry);
    write_table(disk, &primary, &backup, &entries)
}

/// Where the backup header is, as the header read says.
fn backup_lba(h: &Header) -> u64 {
    if h.my_lba == 1 {
        h.alternate_lba
    } else {
        h.my_lba
    }
}

/// The primary and backup headers implied by one valid copy `h` (which
/// may be either), checked against the disk.
pub fn copies(h: &Header, sectors: u64, sector_size: u64) -> Result<(Header, Header), String> {
    let table = h.table_sectors(sector_size);
    let backup = backup_lba(h);
    if backup >= sectors || backup <= h.last_usable.saturating_add(table) {
        return Err(format!("the backup header location {backup} is not valid"));
    }
    let primary_entries = if h.my_lba == 1 { h.entries_lba } else { 2 };
    if primary_entries + table > h.first_usable {
        return Err("the primary entry array overlaps the usable sectors".to_string());
    }
    let primary = Header {
        my_lba: 1,
        alternate_lba: backup,
        entries_lba: primary_entries,
        ..h.clone()
    };
    let backup = Header {
        my_lba: backup,
        alternate_lba: 1,
        entries_lba: backup - table,
        ..h.clone()
    };
    Ok((primary, backup))
}

/// The first unused entry index, if any.
pub fn free_index(gpt: &Gpt) -> Option<u32> {
    (0..gpt.header.num_entries).find(|i| gpt.entries.iter().all(|e| e.index != *i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_entries() -> Vec<Entry> {
        vec![Entry {
            index: 0,
            type_guid: types::LINUX_DATA,
            unique_guid: Uuid::from_u128(0x1234),
            first_lba: 2048,
            last_lba: 4095,
            attributes: 0,
            name: "primary".to_string(),
        }]
    }

    #[test]
    fn header_round_trips() {
        let (primary, _) = fresh_headers(8192, 512, Uuid::from_u128(7));
        assert_eq!(primary.first_usable, 34);
        assert_eq!(primary.last_usable, 8158);
        let bytes = serialize_header(&primary, 512);
        assert_eq!(parse_header(&bytes, 1, 8192).unwrap(), primary);
        let (p4k, _) = fresh_headers(8192, 4096, Uuid::from_u128(7));
        assert_eq!((p4k.first_usable, p4k.last_usable), (6, 8186));
    }

    #[test]
    fn header_checks_catch_damage() {
        let (primary, _) = fresh_headers(8192, 512, Uuid::from_u128(7));
        let mut bytes = serialize_header(&primary, 512);
        bytes[60] ^= 1;
        assert!(parse_header(&bytes, 1, 8192).unwrap_err().contains("CRC"));
        let bytes = serialize_header(&primary, 512);
        assert!(parse_header(&bytes, 2, 8192).is_err());
        assert!(parse_header(&bytes, 1, 100).is_err());
        let odd = Header {
            entry_size: 100,
            ..primary.clone()
        };
        assert!(parse_header(&serialize_header(&odd, 512), 1, 8192).is_err());
        let huge = Header {
            num_entries: u32::MAX,
            ..primary
        };
        assert!(parse_header(&serialize_header(&huge, 512), 1, 8192).is_err());
    }

    #[test]
    fn entries_round_trip_and_crc_is_checked() {
        let (mut primary, _) = fresh_headers(8192, 512, Uuid::from_u128(7));
        let array = serialize_entries(&sample_entries(), 128, 128, 512);
        assert_eq!(array.len(), 32 * 512);
        primary.entries_crc = entries_crc(&array, 128, 128);
        assert_eq!(parse_entries(&array, &primary).unwrap(), sample_entries());
        let mut bad = array.clone();
        bad[100] ^= 1;
        assert!(parse_entries(&bad, &primary).unwrap_err().contains("CRC"));
        assert!(parse_entries(&array[..100], &primary).is_err());
    }

    #[test]
    fn entries_outside_usable_space_or_overlapping_are_refused() {
        let (mut primary, _) = fresh_headers(8192, 512, Uuid::from_u128(7));
        let mut entries = sample_entries();
        entries[0].last_lba = 9000;
        let array = serialize_entries(&entries, 128, 128, 512);
        primary.entries_crc = entries_crc(&array, 128, 128);
        assert!(parse_entries(&array, &primary)
            .unwrap_err()
            .contains("outside"));
        let mut entries = sample_entries();
        let mut second = entries[0].clone();
        second.index = 1;
        second.first_lba = 4000;
        second.last_lba = 5000;
        entries.push(second);
        let array = serialize_entries(&entries, 128, 128, 512);
        primary.entries_crc = entries_crc(&array, 128, 128);
        assert!(parse_entries(&array, &primary)
            .unwrap_err()
            .contains("overlap"));
    }

    #[test]
    fn names_decode_from_utf16() {
        let mut raw = [0u8; 72];
        for (i, u) in "EFI sÿstem".encode_utf16().enumerate() {
            raw[2 * i..2 * i + 2].copy_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode_name(&raw), "EFI sÿstem");
    }

    #[test]
    fn parsers_survive_random_and_truncated_bytes() {
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        let (mut primary, _) = fresh_headers(8192, 512, Uuid::from_u128(7));
        let array = serialize_entries(&sample_entries(), 128, 128, 512);
        primary.entries_crc = entries_crc(&array, 128, 128);
        let header = serialize_header(&primary, 512);
        for len in 0..header.len() {
            let _ = parse_header(&header[..len], 1, 8192);
        }
        for len in (0..array.len()).step_by(61) {
            let _ = parse_entries(&array[..len], &primary);
        }
        for _ in 0..1000 {
            let mut sector = vec![0u8; 512];
            rng.fill_bytes(&mut sector);
            sector[..8].copy_from_slice(SIGNATURE);
            if rng.random_bool(0.5) {
                sector[12..16].copy_from_slice(&92u32.to_le_bytes());
                let mut copy = sector[..92].to_vec();
                copy[16..20].fill(0);
                let crc = crc32fast::hash(&copy);
                sector[16..20].copy_from_slice(&crc.to_le_bytes());
            }
            let sectors = rng.random_range(0..u64::MAX);
            if let Ok(h) = parse_header(&sector, le64(&sector, 24), sectors) {
                let _ = parse_entries(&array, &h);
            }
            let mut header = primary.clone();
            header.num_entries = rng.random_range(0..300);
            header.entry_size = 128 << rng.random_range(0..3);
            let noise: Vec<u8> = (0..rng.random_range(0..40_000))
                .map(|_| rng.random())
                .collect();
            let _ = parse_entries(&noise, &header);
        }
    }
}
