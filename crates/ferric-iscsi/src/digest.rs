//! CRC32C (Castagnoli) as iSCSI uses it for header and data digests (RFC 7143 section
//! 13.1, RFC 3385).
//!
//! The CRC is the reflected CRC-32 with polynomial 0x1EDC6F41, initial value and final
//! XOR 0xFFFFFFFF. On the wire the 32-bit result goes least significant byte first
//! (RFC 3720 appendix B.4: 32 zero bytes give the bytes `aa 36 91 8a`); libiscsi stores
//! it the same way (`lib/socket.c`, `iscsi_pdu_update_headerdigest`).

/// Length of a header or data digest on the wire.
pub const DIGEST_LEN: usize = 4;

/// The reflected form of the Castagnoli polynomial 0x1EDC6F41.
const POLY_REFLECTED: u32 = 0x82F6_3B78;

const TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[n] = crc;
        n += 1;
    }
    table
}

/// An incremental CRC32C, for digests over several pieces (header + AHS, data + padding).
#[derive(Clone, Copy, Debug)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A fresh computation.
    pub const fn new() -> Self {
        Self(0xFFFF_FFFF)
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &b in bytes {
            crc = (crc >> 8) ^ TABLE[((crc ^ u32::from(b)) & 0xFF) as usize];
        }
        self.0 = crc;
    }

    /// The CRC value.
    pub fn finish(&self) -> u32 {
        self.0 ^ 0xFFFF_FFFF
    }

    /// The CRC in wire order (least significant byte first).
    pub fn finish_wire(&self) -> [u8; DIGEST_LEN] {
        self.finish().to_le_bytes()
    }
}

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut c = Crc32c::new();
    c.update(bytes);
    c.finish()
}

/// Reads a digest as it appears on the wire.
pub fn from_wire(bytes: [u8; DIGEST_LEN]) -> u32 {
    u32::from_le_bytes(bytes)
}

/// A digest algorithm, as negotiated by the HeaderDigest and DataDigest keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DigestType {
    /// No digest.
    #[default]
    None,
    /// CRC32C.
    Crc32c,
}

impl DigestType {
    /// The key value: `None` or `CRC32C`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestType::None => "None",
            DigestType::Crc32c => "CRC32C",
        }
    }

    /// Parses a key value (exact, case-sensitive as RFC 7143 spells them).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "None" => Some(DigestType::None),
            "CRC32C" => Some(DigestType::Crc32c),
            _ => None,
        }
    }

    /// Bytes this digest takes on the wire.
    pub fn wire_len(self) -> usize {
        match self {
            DigestType::None => 0,
            DigestType::Crc32c => DIGEST_LEN,
        }
    }

    /// Whether this is no digest at all.
    pub fn is_none(self) -> bool {
        self == DigestType::None
    }
}

/// The digests in force on a connection: none during login, the negotiated ones from the
/// first full-feature-phase PDU on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Digests {
    /// Covers the basic header segment and the additional header segments.
    pub header: DigestType,
    /// Covers the data segment and its padding; absent when the data segment is empty.
    pub data: DigestType,
}

impl Digests {
    /// No digests (the login phase).
    pub const NONE: Digests = Digests {
        header: DigestType::None,
        data: DigestType::None,
    };

    /// CRC32C on both.
    pub const CRC32C: Digests = Digests {
        header: DigestType::Crc32c,
        data: DigestType::Crc32c,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(bytes: &[u8]) -> [u8; 4] {
        let mut c = Crc32c::new();
        c.update(bytes);
        c.finish_wire()
    }

    // RFC 3720 appendix B.4, digests shown in wire byte order.
    #[test]
    fn rfc3720_b4_vectors() {
        assert_eq!(wire(&[0u8; 32]), [0xaa, 0x36, 0x91, 0x8a]);
        assert_eq!(wire(&[0xffu8; 32]), [0x43, 0xab, 0xa8, 0x62]);
        let ascending: Vec<u8> = (0u8..32).collect();
        assert_eq!(wire(&ascending), [0x4e, 0x79, 0xdd, 0x46]);
        let descending: Vec<u8> = (0u8..32).rev().collect();
        assert_eq!(wire(&descending), [0x5c, 0xdb, 0x3f, 0x11]);
        let read10 = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(wire(&read10), [0x56, 0x3a, 0x96, 0xd9]);
    }

    #[test]
    fn check_value_and_table_match_libiscsi() {
        // The standard CRC-32C check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // Entries of the table in libiscsi lib/crc32c.c.
        assert_eq!(TABLE[1], 0xF26B_8303);
        assert_eq!(TABLE[128], 0x82F6_3B78);
        assert_eq!(TABLE[255], 0xAD7D_5351);
    }

    #[test]
    fn incremental_equals_one_shot() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut c = Crc32c::new();
        for chunk in data.chunks(7) {
            c.update(chunk);
        }
        assert_eq!(c.finish(), crc32c(&data));
        assert_eq!(from_wire(c.finish_wire()), crc32c(&data));
    }

    #[test]
    fn digest_type_names() {
        assert_eq!(DigestType::parse("CRC32C"), Some(DigestType::Crc32c));
        assert_eq!(DigestType::parse("crc32c"), None);
        assert_eq!(DigestType::None.as_str(), "None");
        assert_eq!(DigestType::Crc32c.wire_len(), 4);
    }
}
