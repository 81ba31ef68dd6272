//! Reading fields out of a CDB, and the block-addressing fields of the READ/WRITE
//! family, without ever indexing past the bytes the initiator sent (a missing byte
//! reads as zero; the dispatcher rejects CDBs shorter than their command first).

/// A borrowed CDB with bounds-checked big-endian accessors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cdb<'a>(&'a [u8]);

impl<'a> Cdb<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cdb(bytes)
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.0
    }

    pub(crate) fn opcode(&self) -> u8 {
        self.byte(0)
    }

    /// The 5-bit SERVICE ACTION field of byte 1.
    pub(crate) fn service_action(&self) -> u8 {
        self.byte(1) & 0x1F
    }

    pub(crate) fn byte(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }

    pub(crate) fn bit(&self, at: usize, mask: u8) -> bool {
        self.byte(at) & mask != 0
    }

    pub(crate) fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.byte(at), self.byte(at + 1)])
    }

    pub(crate) fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.byte(at),
            self.byte(at + 1),
            self.byte(at + 2),
            self.byte(at + 3),
        ])
    }

    pub(crate) fn be64(&self, at: usize) -> u64 {
        (u64::from(self.be32(at)) << 32) | u64::from(self.be32(at + 4))
    }
}

/// Where the LBA and the length of a block command live, by CDB size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// 6-byte CDB: 21-bit LBA in bytes 1-3, 8-bit length in byte 4 (0 means 256).
    Six,
    /// 10-byte CDB: LBA in bytes 2-5, 16-bit length in bytes 7-8.
    Ten,
    /// 12-byte CDB: LBA in bytes 2-5, 32-bit length in bytes 6-9.
    Twelve,
    /// 16-byte CDB: LBA in bytes 2-9, 32-bit length in bytes 10-13.
    Sixteen,
}

impl Layout {
    /// The layout of the block command `opcode`, by its group code.
    pub(crate) fn of(opcode: u8) -> Layout {
        match opcode >> 5 {
            0 => Layout::Six,
            1 | 2 => Layout::Ten,
            5 => Layout::Twelve,
            _ => Layout::Sixteen,
        }
    }

    pub(crate) fn lba(self, cdb: Cdb<'_>) -> u64 {
        match self {
            Layout::Six => u64::from(cdb.be32(0) & 0x001F_FFFF),
            Layout::Ten | Layout::Twelve => u64::from(cdb.be32(2)),
            Layout::Sixteen => cdb.be64(2),
        }
    }

    /// The TRANSFER LENGTH (or NUMBER OF LOGICAL BLOCKS) field, as written.
    pub(crate) fn raw_length(self, cdb: Cdb<'_>) -> u32 {
        match self {
            Layout::Six => u32::from(cdb.byte(4)),
            Layout::Ten => u32::from(cdb.be16(7)),
            Layout::Twelve => cdb.be32(6),
            Layout::Sixteen => cdb.be32(10),
        }
    }

    /// The length in blocks a READ(6)/WRITE(6) style command means: 0 is 256 there.
    pub(crate) fn transfer_blocks(self, cdb: Cdb<'_>) -> u32 {
        match (self, self.raw_length(cdb)) {
            (Layout::Six, 0) => 256,
            (_, n) => n,
        }
    }

    /// Byte offset of the length field, for field pointers.
    pub(crate) fn length_offset(self) -> usize {
        match self {
            Layout::Six => 4,
            Layout::Ten => 7,
            Layout::Twelve => 6,
            Layout::Sixteen => 10,
        }
    }
}

/// `blocks * block_size` as the u32 a transfer length is, saturating.
pub(crate) fn bytes_u32(blocks: u64, block_size: u32) -> u32 {
    u32::try_from(blocks.saturating_mul(u64::from(block_size))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_cdb_reads_zeros() {
        let cdb = Cdb::new(&[0x28, 0x00, 0x12]);
        assert_eq!(cdb.be32(2), 0x1200_0000);
        assert_eq!(cdb.be64(10), 0);
        assert_eq!(cdb.byte(100), 0);
    }

    #[test]
    fn layouts_decode_lba_and_length() {
        let read6 = [0x08, 0xFF, 0x34, 0x56, 0x00, 0x00];
        assert_eq!(Layout::of(0x08), Layout::Six);
        assert_eq!(Layout::Six.lba(Cdb::new(&read6)), 0x1F_3456);
        assert_eq!(Layout::Six.transfer_blocks(Cdb::new(&read6)), 256);
        let read10 = [0x28, 0, 0, 0, 1, 0, 0, 0x01, 0x02, 0];
        assert_eq!(Layout::of(0x28), Layout::Ten);
        assert_eq!(Layout::Ten.lba(Cdb::new(&read10)), 0x100);
        assert_eq!(Layout::Ten.transfer_blocks(Cdb::new(&read10)), 0x102);
        assert_eq!(Layout::of(0xA8), Layout::Twelve);
        let mut read16 = [0u8; 16];
        read16[0] = 0x88;
        read16[2] = 0x80;
        read16[13] = 3;
        assert_eq!(Layout::of(0x88), Layout::Sixteen);
        assert_eq!(Layout::Sixteen.lba(Cdb::new(&read16)), 1 << 63);
        assert_eq!(Layout::Sixteen.transfer_blocks(Cdb::new(&read16)), 3);
    }

    #[test]
    fn bytes_saturate() {
        assert_eq!(bytes_u32(2, 512), 1024);
        assert_eq!(bytes_u32(u64::from(u32::MAX), 4096), u32::MAX);
    }
}
