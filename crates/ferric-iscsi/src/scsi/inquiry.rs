//! INQUIRY (SPC-5 6.7): standard data of an SPC-4/SBC-3 direct-access block device
//! and the VPD pages 00h, 80h, 83h, B0h, B1h and B2h (SPC-5 7.7, SBC-4 6.6).

use super::cdb::Cdb;
use super::sense::Sense;
use super::Limits;

/// Who the logical unit says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// T10 vendor identification, at most 8 ASCII characters (e.g. "FERRIC").
    pub vendor: String,
    /// Product identification, at most 16 ASCII characters.
    pub product: String,
    /// Product revision level, at most 4 ASCII characters.
    pub revision: String,
    /// Unit serial number (VPD page 80h), printable ASCII, at most 247 characters.
    pub serial: String,
    /// An 8-byte NAA designator (VPD page 83h); see [`Identity::locally_assigned_naa`].
    pub naa: u64,
}

impl Identity {
    /// Ferric's identity for a disk with this serial number; the NAA designator is
    /// derived from the serial.
    pub fn new(serial: &str) -> Self {
        Identity {
            vendor: "FERRIC".into(),
            product: "FERRIC DISK".into(),
            revision: "0001".into(),
            serial: serial.into(),
            naa: Self::locally_assigned_naa(serial.as_bytes()),
        }
    }

    /// An NAA "locally assigned" designator (NAA 3h, SPC-5 7.7.6.6.3): the top
    /// nibble 3, then 60 bits of a 64-bit FNV-1a hash of `seed`.
    pub fn locally_assigned_naa(seed: &[u8]) -> u64 {
        let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
        for &byte in seed {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
        (0x3 << 60) | (hash & 0x0FFF_FFFF_FFFF_FFFF)
    }
}

/// Largest serial that still fits the T10 vendor ID designator (8 + 247 bytes).
const MAX_SERIAL: usize = 247;

/// `text` as an SPC ASCII field of `len` bytes: left-aligned, space-padded, with
/// anything outside 20h-7Eh replaced by '_'.
fn ascii_field(text: &str, len: usize) -> Vec<u8> {
    let mut field = ascii(text, len);
    field.resize(len, b' ');
    field
}

fn ascii(text: &str, max: usize) -> Vec<u8> {
    text.chars()
        .take(max)
        .map(|c| match c {
            ' '..='~' => c as u8,
            _ => b'_',
        })
        .collect()
}

/// Version descriptors claimed: SAM-5, iSCSI, SPC-4, SBC-3.
const VERSION_DESCRIPTORS: [u16; 4] = [0x00A0, 0x0960, 0x0460, 0x04C0];
const STANDARD_LEN: usize = 96;

/// Standard INQUIRY data (96 bytes).
pub(crate) fn standard(identity: &Identity) -> Vec<u8> {
    let mut data = vec![0u8; STANDARD_LEN];
    data[2] = 0x06; // SPC-4
    data[3] = 0x12; // HISUP, response data format 2
    data[4] = (STANDARD_LEN - 5) as u8;
    data[7] = 0x02; // CMDQUE
    data[8..16].copy_from_slice(&ascii_field(&identity.vendor, 8));
    data[16..32].copy_from_slice(&ascii_field(&identity.product, 16));
    data[32..36].copy_from_slice(&ascii_field(&identity.revision, 4));
    for (i, descriptor) in VERSION_DESCRIPTORS.iter().enumerate() {
        data[58 + 2 * i..60 + 2 * i].copy_from_slice(&descriptor.to_be_bytes());
    }
    data
}

/// Standard INQUIRY data for a logical unit that does not exist: peripheral
/// qualifier 011b, device type 1Fh.
pub(crate) fn no_unit() -> Vec<u8> {
    let mut data = vec![0u8; 36];
    data[0] = 0x7F;
    data[2] = 0x06;
    data[3] = 0x12;
    data[4] = 31;
    data
}

/// What the VPD pages describe.
pub(crate) struct VpdContext<'a> {
    pub(crate) identity: &'a Identity,
    pub(crate) limits: &'a Limits,
}

const SUPPORTED_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2];

fn vpd(page: u8, context: &VpdContext<'_>) -> Option<Vec<u8>> {
    let body = match page {
        0x00 => SUPPORTED_PAGES.to_vec(),
        0x80 => ascii(&context.identity.serial, MAX_SERIAL),
        0x83 => device_identification(context.identity),
        0xB0 => block_limits(context.limits),
        0xB1 => block_device_characteristics(),
        0xB2 => logical_block_provisioning(),
        _ => return None,
    };
    let length = u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes();
    let mut data = vec![0x00, page, length[0], length[1]];
    data.extend(body);
    Some(data)
}

fn device_identification(identity: &Identity) -> Vec<u8> {
    // NAA, binary code set, associated with the logical unit.
    let mut body = vec![0x01, 0x03, 0x00, 0x08];
    body.extend_from_slice(&identity.naa.to_be_bytes());
    // T10 vendor ID based: vendor identification then the serial, ASCII.
    let mut t10 = ascii_field(&identity.vendor, 8);
    t10.extend(ascii(&identity.serial, MAX_SERIAL));
    body.extend_from_slice(&[0x02, 0x01, 0x00, t10.len() as u8]);
    body.extend(t10);
    body
}

fn block_limits(limits: &Limits) -> Vec<u8> {
    let mut body = vec![0u8; 0x3C];
    // Offsets below are page offsets minus the 4-byte page header. WSNZ is 0:
    // WRITE SAME with zero blocks means "to the end of the medium".
    body[1] = limits.max_compare_and_write_blocks;
    body[2..4].copy_from_slice(&limits.optimal_granularity_blocks.to_be_bytes());
    body[4..8].copy_from_slice(&limits.max_transfer_blocks.to_be_bytes());
    body[8..12].copy_from_slice(&limits.max_transfer_blocks.to_be_bytes());
    body[16..20].copy_from_slice(&limits.max_unmap_blocks.to_be_bytes());
    body[20..24].copy_from_slice(&limits.max_unmap_descriptors.to_be_bytes());
    let unmap_granularity = u32::from(limits.optimal_granularity_blocks);
    body[24..28].copy_from_slice(&unmap_granularity.to_be_bytes());
    body[32..40].copy_from_slice(&u64::from(limits.max_write_same_blocks).to_be_bytes());
    body
}

fn block_device_characteristics() -> Vec<u8> {
    let mut body = vec![0u8; 0x3C];
    body[..2].copy_from_slice(&1u16.to_be_bytes()); // non-rotating medium
    body
}

fn logical_block_provisioning() -> Vec<u8> {
    // LBPU, LBPWS, LBPWS10, LBPRZ 001b (unmapped blocks read as zeros); thin.
    vec![0x00, 0xE4, 0x02, 0x00]
}

/// INQUIRY parameter data for this CDB, cut to its allocation length.
pub(crate) fn inquiry(cdb: Cdb<'_>, context: &VpdContext<'_>) -> Result<Vec<u8>, Sense> {
    let page = cdb.byte(2);
    let mut data = if cdb.bit(1, 0x01) {
        vpd(page, context).ok_or_else(|| Sense::invalid_field_in_cdb(2, None))?
    } else if page != 0 {
        return Err(Sense::invalid_field_in_cdb(2, None));
    } else {
        standard(context.identity)
    };
    data.truncate(usize::from(cdb.be16(3)));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            vendor: "FERRIC".into(),
            product: "TEST DISK".into(),
            revision: "1.2".into(),
            serial: "SN01".into(),
            naa: 0x3123_4567_89AB_CDEF,
        }
    }

    fn context_inquiry(cdb: [u8; 6]) -> Result<Vec<u8>, Sense> {
        let identity = identity();
        let limits = Limits::for_block_size(512);
        let context = VpdContext {
            identity: &identity,
            limits: &limits,
        };
        inquiry(Cdb::new(&cdb), &context)
    }

    #[test]
    fn standard_inquiry_bytes() {
        let data = context_inquiry([0x12, 0, 0, 1, 4, 0]).unwrap();
        assert_eq!(data.len(), 96);
        assert_eq!(&data[..8], &[0x00, 0x00, 0x06, 0x12, 91, 0x00, 0x00, 0x02]);
        assert_eq!(&data[8..36], b"FERRIC  TEST DISK       1.2 ");
        assert_eq!(
            &data[58..68],
            &[0x00, 0xA0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xC0, 0, 0]
        );
        assert!(data[36..58].iter().all(|&b| b == 0));
        assert_eq!(context_inquiry([0x12, 0, 0, 0, 36, 0]).unwrap().len(), 36);
        assert_eq!(context_inquiry([0x12, 0, 0, 0, 0, 0]).unwrap().len(), 0);
    }

    #[test]
    fn text_fields_are_sanitised() {
        let mut id = identity();
        id.vendor = "VÉRYLONGVENDOR".into();
        assert_eq!(&standard(&id)[8..16], b"V_RYLONG");
    }

    #[test]
    fn evpd_zero_with_page_code_is_refused() {
        assert_eq!(
            context_inquiry([0x12, 0, 1, 1, 0, 0]).unwrap_err(),
            Sense::invalid_field_in_cdb(2, None)
        );
        assert_eq!(
            context_inquiry([0x12, 1, 0x89, 1, 0, 0]).unwrap_err(),
            Sense::invalid_field_in_cdb(2, None)
        );
    }

    #[test]
    fn supported_pages_serial_and_identification() {
        assert_eq!(
            context_inquiry([0x12, 1, 0x00, 0, 255, 0]).unwrap(),
            [0, 0, 0, 6, 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2]
        );
        assert_eq!(
            context_inquiry([0x12, 1, 0x80, 0, 255, 0]).unwrap(),
            [0, 0x80, 0, 4, b'S', b'N', b'0', b'1']
        );
        let data = context_inquiry([0x12, 1, 0x83, 0, 255, 0]).unwrap();
        let mut expected = vec![0, 0x83, 0, 12 + 16];
        expected.extend_from_slice(&[0x01, 0x03, 0x00, 0x08]);
        expected.extend_from_slice(&[0x31, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
        expected.extend_from_slice(&[0x02, 0x01, 0x00, 12]);
        expected.extend_from_slice(b"FERRIC  SN01");
        assert_eq!(data, expected);
    }

    #[test]
    fn block_limits_page() {
        let data = context_inquiry([0x12, 1, 0xB0, 0, 255, 0]).unwrap();
        assert_eq!(data.len(), 64);
        assert_eq!(&data[..4], &[0, 0xB0, 0, 0x3C]);
        assert_eq!(data[4], 0, "WSNZ");
        assert_eq!(data[5], 255, "maximum compare and write length");
        assert_eq!(&data[6..8], &[0, 8], "optimal granularity: 4 KiB");
        assert_eq!(&data[8..12], &[0, 0, 0x40, 0], "8 MiB maximum transfer");
        assert_eq!(&data[12..16], &[0, 0, 0x40, 0]);
        assert_eq!(&data[16..20], &[0, 0, 0, 0], "no maximum prefetch reported");
        assert_eq!(&data[20..24], &[0, 0x10, 0, 0], "512 MiB per UNMAP");
        assert_eq!(&data[24..28], &[0, 0, 1, 0], "256 descriptors");
        assert_eq!(&data[28..32], &[0, 0, 0, 8]);
        assert_eq!(
            &data[32..36],
            &[0, 0, 0, 0],
            "no unmap granularity alignment"
        );
        assert_eq!(
            &data[36..44],
            &[0, 0, 0, 0, 0, 0, 0x40, 0],
            "WRITE SAME limit"
        );
        assert!(data[44..].iter().all(|&b| b == 0), "no atomic writes");
    }

    #[test]
    fn characteristics_and_provisioning_pages() {
        let data = context_inquiry([0x12, 1, 0xB1, 0, 255, 0]).unwrap();
        assert_eq!(data.len(), 64);
        assert_eq!(&data[..8], &[0, 0xB1, 0, 0x3C, 0, 1, 0, 0]);
        assert_eq!(
            context_inquiry([0x12, 1, 0xB2, 0, 255, 0]).unwrap(),
            [0, 0xB2, 0, 4, 0, 0xE4, 0x02, 0]
        );
    }

    #[test]
    fn naa_is_locally_assigned_and_stable() {
        let naa = Identity::locally_assigned_naa(b"disk-1");
        assert_eq!(naa >> 60, 3);
        assert_eq!(naa, Identity::locally_assigned_naa(b"disk-1"));
        assert_ne!(naa, Identity::locally_assigned_naa(b"disk-2"));
        assert_eq!(Identity::new("disk-1").naa, naa);
        // FNV-1a of the empty input is the offset basis.
        assert_eq!(
            Identity::locally_assigned_naa(b""),
            0x3000_0000_0000_0000 | (0xCBF2_9CE4_8422_2325 & 0x0FFF_FFFF_FFFF_FFFF)
        );
    }
}
