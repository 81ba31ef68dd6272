//! Disk-level tests: each command through `Disk::execute` with exact bytes, the
//! sequences libiscsi's iscsi-test-cu sends, and a fuzz run of random CDBs.

use std::io;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cdb::Layout;
use super::opcodes::COMMANDS;
use super::sense::key;
use super::*;

const BS: usize = 512;
const BLOCKS: usize = 1024;

/// A memory store that counts flushes and can be told to fail.
#[derive(Debug, Default)]
struct Probe {
    mem: Vec<u8>,
    flushes: usize,
    fail: Option<Fail>,
}

#[derive(Debug, Clone, Copy)]
enum Fail {
    Os(i32),
    Custom,
}

impl Probe {
    fn new(blocks: usize) -> Self {
        // Every block starts as its own number in every byte, so reads are checkable.
        let mem = (0..blocks * BS).map(|i| (i / BS) as u8).collect();
        Probe {
            mem,
            ..Probe::default()
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.fail {
            Some(Fail::Os(code)) => Err(io::Error::from_raw_os_error(code)),
            Some(Fail::Custom) => Err(io::Error::other("broken")),
            None => Ok(()),
        }
    }

    fn range(&self, offset: u64, len: usize) -> std::ops::Range<usize> {
        let start = offset as usize;
        assert!(start + len <= self.mem.len(), "access beyond the store");
        start..start + len
    }
}

impl Backing for Probe {
    fn size(&self) -> u64 {
        self.mem.len() as u64
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check()?;
        let range = self.range(offset, buf.len());
        buf.copy_from_slice(&self.mem[range]);
        Ok(())
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.check()?;
        let range = self.range(offset, buf.len());
        self.mem[range].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        self.flushes += 1;
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.check()?;
        let range = self.range(offset, len as usize);
        self.mem[range].fill(0);
        Ok(())
    }
}

/// A store of any size that reads zeros and forgets writes.
#[derive(Debug)]
struct Huge(u64);

impl Backing for Huge {
    fn size(&self) -> u64 {
        self.0
    }
    fn read_at(&mut self, buf: &mut [u8], _offset: u64) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn write_at(&mut self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn discard(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

fn disk() -> Disk<Probe> {
    Disk::new(Probe::new(BLOCKS), Identity::new("SN1"), BS as u32, false)
}

fn cdb10(op: u8, flags: u8, lba: u32, len: u16) -> Vec<u8> {
    let mut c = vec![0u8; 10];
    c[0] = op;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb12(op: u8, flags: u8, lba: u32, len: u32) -> Vec<u8> {
    let mut c = vec![0u8; 12];
    c[0] = op;
    c[1] = flags;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[6..10].copy_from_slice(&len.to_be_bytes());
    c
}

fn cdb16(op: u8, flags: u8, lba: u64, len: u32) -> Vec<u8> {
    let mut c = vec![0u8; 16];
    c[0] = op;
    c[1] = flags;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&len.to_be_bytes());
    c
}

/// (key, asc, ascq) of a CHECK CONDITION in either format.
fn sense(outcome: &Outcome) -> (u8, u8, u8) {
    assert_eq!(outcome.status, Status::CheckCondition, "{outcome:?}");
    let s = outcome.sense.as_ref().expect("sense data");
    match s[0] & 0x7F {
        0x70 => (s[2] & 0x0F, s[12], s[13]),
        0x72 => (s[1] & 0x0F, s[2], s[3]),
        other => panic!("bad response code {other:#x}"),
    }
}

const LBA_OOB: (u8, u8, u8) = (key::ILLEGAL_REQUEST, 0x21, 0x00);
const INVALID_CDB: (u8, u8, u8) = (key::ILLEGAL_REQUEST, 0x24, 0x00);
const INVALID_PARAM: (u8, u8, u8) = (key::ILLEGAL_REQUEST, 0x26, 0x00);
const INVALID_OPCODE: (u8, u8, u8) = (key::ILLEGAL_REQUEST, 0x20, 0x00);
const WRITE_PROTECTED: (u8, u8, u8) = (key::DATA_PROTECT, 0x27, 0x00);
const MISCOMPARE: (u8, u8, u8) = (key::MISCOMPARE, 0x1D, 0x00);
const SHORT_DATA: (u8, u8, u8) = (key::ILLEGAL_REQUEST, 0x0E, 0x03);

fn good(outcome: &Outcome) {
    assert_eq!(outcome.status, Status::Good, "{outcome:?}");
    assert!(outcome.sense.is_none());
}

fn fixed_information(outcome: &Outcome) -> Option<u32> {
    let s = outcome.sense.as_ref()?;
    (s[0] & 0x80 != 0).then(|| u32::from_be_bytes([s[3], s[4], s[5], s[6]]))
}

#[test]
fn read10_returns_the_blocks_and_reports_residuals() {
    let mut d = disk();
    let out = d.execute(&cdb10(0x28, 0, 5, 2), &[], 1024);
    good(&out);
    assert_eq!(out.data_in.len(), 1024);
    assert!(out.data_in[..512].iter().all(|&b| b == 5));
    assert!(out.data_in[512..].iter().all(|&b| b == 6));
    assert_eq!(out.data_in_residual(1024), Residual::None);
    // libiscsi iSCSIResiduals.Read10*: EDTL 0, 200, 10000 for a one-block READ(10).
    let one = cdb10(0x28, 0, 0, 1);
    let out = d.execute(&one, &[], 0);
    good(&out);
    assert!(out.data_in.is_empty());
    assert_eq!(out.data_in_residual(0), Residual::Overflow(512));
    let out = d.execute(&one, &[], 200);
    assert_eq!(out.data_in.len(), 200);
    assert_eq!(out.data_in_residual(200), Residual::Overflow(312));
    let out = d.execute(&one, &[], 10000);
    assert_eq!(out.data_in.len(), 512);
    assert_eq!(
        out.data_in_residual(10000),
        Residual::Underflow(10000 - 512)
    );
    assert_eq!(d.expected_transfer(&one), Transfer::In(512));
}

#[test]
fn reads_beyond_the_end_are_out_of_range() {
    let mut d = disk();
    let n = BLOCKS as u64;
    for i in 1..=256u64 {
        let out = d.execute(&cdb10(0x28, 0, (n + 1 - i) as u32, i as u16), &[], 1 << 20);
        assert_eq!(sense(&out), LBA_OOB);
        let out = d.execute(&cdb10(0x28, 0, u32::MAX, i as u16), &[], 1 << 20);
        assert_eq!(sense(&out), LBA_OOB);
        let out = d.execute(&cdb16(0x88, 0, u64::MAX, i as u32), &[], 1 << 20);
        assert_eq!(sense(&out), LBA_OOB);
        // LBAs whose byte offset overflows 64 bits.
        let out = d.execute(&cdb16(0x88, 0, 1 << 55, i as u32), &[], 1 << 20);
        assert_eq!(sense(&out), LBA_OOB);
    }
    for i in 2..=256u16 {
        let out = d.execute(&cdb12(0xA8, 0, (n - 1) as u32, u32::from(i)), &[], 1 << 20);
        assert_eq!(sense(&out), LBA_OOB);
    }
    // Zero blocks: fine at 0 and at the end, out of range past it.
    good(&d.execute(&cdb10(0x28, 0, 0, 0), &[], 0));
    good(&d.execute(&cdb10(0x28, 0, n as u32, 0), &[], 0));
    assert_eq!(
        sense(&d.execute(&cdb10(0x28, 0, n as u32 + 1, 0), &[], 0)),
        LBA_OOB
    );
    // The last blocks are readable.
    let out = d.execute(&cdb16(0x88, 0, n - 256, 256), &[], 1 << 20);
    good(&out);
    assert_eq!(out.data_in.len(), 256 * BS);
}

#[test]
fn read6_zero_length_means_256_blocks() {
    let mut d = disk();
    let out = d.execute(&[0x08, 0, 0, 0, 0, 0], &[], 1 << 20);
    good(&out);
    assert_eq!(out.data_in.len(), 256 * BS);
    assert_eq!(
        d.expected_transfer(&[0x08, 0, 0, 0, 0, 0]),
        Transfer::In(256 * 512)
    );
    let out = d.execute(&[0x08, 0x1F, 0xFF, 0xFF, 1, 0], &[], 512);
    assert_eq!(sense(&out), LBA_OOB);
    let out = d.execute(&[0x08, 0, 0x03, 0xFF, 2, 0], &[], 1024);
    assert_eq!(sense(&out), LBA_OOB, "LBA 1023 + 2 blocks");
}

#[test]
fn protection_fields_and_transfer_limit_are_invalid_fields() {
    let mut d = disk().with_limits(Limits::with_max_transfer_bytes(512, 8 * 512));
    for protect in 1..8u8 {
        let out = d.execute(&cdb10(0x28, protect << 5, 0, 1), &[], 512);
        assert_eq!(sense(&out), INVALID_CDB);
        let out = d.execute(&cdb10(0x2A, protect << 5, 0, 1), &[0; 512], 0);
        assert_eq!(sense(&out), INVALID_CDB);
        let out = d.execute(&cdb10(0x2F, (protect << 5) | 0x02, 0, 1), &[0; 512], 0);
        assert_eq!(sense(&out), INVALID_CDB);
        let out = d.execute(&cdb10(0x41, protect << 5, 0, 1), &[0; 512], 0);
        assert_eq!(sense(&out), INVALID_CDB);
    }
    let out = d.execute(&cdb10(0x28, 0, 0, 9), &[], 9 * 512);
    assert_eq!(sense(&out), INVALID_CDB);
    assert_eq!(
        &out.sense.unwrap()[15..18],
        &[0xC0, 0, 7],
        "points at TRANSFER LENGTH"
    );
    good(&d.execute(&cdb10(0x28, 0, 0, 8), &[], 8 * 512));
}

#[test]
fn dpo_fua_and_obsolete_fua_nv_are_accepted() {
    let mut d = disk();
    for flags in [0x10, 0x08, 0x18, 0x02, 0x1A] {
        good(&d.execute(&cdb10(0x2A, flags, 0, 1), &[0xA6; 512], 0));
        good(&d.execute(&cdb16(0x8A, flags, 0, 1), &[0xA6; 512], 0));
    }
    for flags in [0x10, 0x08, 0x18] {
        good(&d.execute(&cdb10(0x28, flags, 0, 1), &[], 512));
        good(&d.execute(&cdb12(0xA8, flags, 0, 1), &[], 512));
    }
    // Group numbers are accepted too.
    let mut c = cdb10(0x2A, 0, 0, 1);
    c[6] = 0x1F;
    good(&d.execute(&c, &[0xA6; 512], 0));
}

#[test]
fn writes_land_and_fua_flushes() {
    let mut d = disk();
    good(&d.execute(&cdb10(0x2A, 0, 3, 2), &[0x11; 1024], 0));
    assert!(d.backing().mem[3 * BS..5 * BS].iter().all(|&b| b == 0x11));
    assert_eq!(d.backing().flushes, 0, "write-back cache");
    good(&d.execute(&cdb16(0x8A, 0x08, 7, 1), &[0x22; 512], 0));
    assert_eq!(d.backing().flushes, 1);
    good(&d.execute(&[0x0A, 0, 0, 9, 1, 0], &[0x33; 512], 0));
    assert!(d.backing().mem[9 * BS..10 * BS].iter().all(|&b| b == 0x33));
    assert_eq!(
        d.expected_transfer(&cdb10(0x2A, 0, 3, 2)),
        Transfer::Out(1024)
    );
}

#[test]
fn short_and_long_data_out_like_libiscsi_residual_tests() {
    let mut d = disk();
    // Two blocks asked, one block sent: the block received is written.
    good(&d.execute(&cdb10(0x2A, 0, 0, 2), &[b'b'; 512], 0));
    assert!(d.backing().mem[..BS].iter().all(|&b| b == b'b'));
    assert!(d.backing().mem[BS..2 * BS].iter().all(|&b| b == 1));
    // One block asked, two sent: only the first is written.
    good(&d.execute(&cdb10(0x2A, 0, 4, 1), &[b'c'; 1024], 0));
    assert!(d.backing().mem[5 * BS..6 * BS].iter().all(|&b| b == 5));
    // Nothing sent: nothing written, still GOOD (the residual says why).
    good(&d.execute(&cdb10(0x2A, 0, 8, 1), &[], 0));
    assert!(d.backing().mem[8 * BS..9 * BS].iter().all(|&b| b == 8));
    // Ending inside a block is refused and writes nothing.
    assert_eq!(
        sense(&d.execute(&cdb10(0x2A, 0, 8, 1), &[9; 200], 0)),
        SHORT_DATA
    );
    assert!(d.backing().mem[8 * BS..9 * BS].iter().all(|&b| b == 8));
    assert_eq!(Transfer::Out(512).residual(0), Residual::Overflow(512));
    assert_eq!(
        Transfer::Out(512).residual(10000),
        Residual::Underflow(9488)
    );
}

#[test]
fn write_and_verify_and_orwrite() {
    let mut d = disk();
    good(&d.execute(&cdb10(0x2E, 0x02, 2, 1), &[0x5A; 512], 0));
    assert!(d.backing().mem[2 * BS..3 * BS].iter().all(|&b| b == 0x5A));
    assert_eq!(d.backing().flushes, 1, "verified from the medium");
    good(&d.execute(&cdb16(0x8E, 0x00, 3, 1), &[0x5B; 512], 0));
    assert_eq!(
        sense(&d.execute(&cdb12(0xAE, 0x04, 3, 1), &[0; 512], 0)),
        INVALID_CDB
    );
    assert_eq!(
        sense(&d.execute(&cdb12(0xAE, 0x06, 3, 1), &[0; 512], 0)),
        INVALID_CDB
    );
    // ORWRITE: 00 | A5 = A5, A5 | 5A = FF.
    good(&d.execute(&cdb10(0x2A, 0, 10, 2), &[0; 1024], 0));
    good(&d.execute(&cdb16(0x8B, 0, 10, 2), &[0xA5; 1024], 0));
    assert!(d.backing().mem[10 * BS..12 * BS].iter().all(|&b| b == 0xA5));
    good(&d.execute(&cdb16(0x8B, 0, 10, 2), &[0x5A; 1024], 0));
    assert!(d.backing().mem[10 * BS..12 * BS].iter().all(|&b| b == 0xFF));
    assert_eq!(
        sense(&d.execute(&cdb16(0x8B, 0, 1023, 2), &[0; 1024], 0)),
        LBA_OOB
    );
}

#[test]
fn verify_compares_and_reports_the_offset() {
    let mut d = disk();
    let mut expected: Vec<u8> = (0..4 * BS).map(|i| (20 + i / BS) as u8).collect();
    good(&d.execute(&cdb10(0x2F, 0x02, 20, 4), &expected, 0));
    good(&d.execute(&cdb16(0x8F, 0x02, 20, 4), &expected, 0));
    expected[1234] ^= b'X';
    let out = d.execute(&cdb12(0xAF, 0x02, 20, 4), &expected, 0);
    assert_eq!(sense(&out), MISCOMPARE);
    assert_eq!(fixed_information(&out), Some(1234));
    // BYTCHK 0: no data, medium check only; the flipped byte does not matter.
    good(&d.execute(&cdb10(0x2F, 0x00, 20, 4), &expected, 0));
    assert_eq!(d.expected_transfer(&cdb10(0x2F, 0, 20, 4)), Transfer::None);
    // BYTCHK 11b: one block compared with each block.
    good(&d.execute(&cdb10(0x2A, 0, 30, 3), &[7; 3 * BS], 0));
    good(&d.execute(&cdb10(0x2F, 0x06, 30, 3), &[7; BS], 0));
    assert_eq!(
        d.expected_transfer(&cdb10(0x2F, 0x06, 30, 3)),
        Transfer::Out(512)
    );
    let out = d.execute(&cdb10(0x2F, 0x06, 30, 4), &[7; BS], 0);
    assert_eq!(sense(&out), MISCOMPARE);
    assert_eq!(fixed_information(&out), Some(3 * BS as u32));
    assert_eq!(
        sense(&d.execute(&cdb10(0x2F, 0x04, 30, 1), &[7; BS], 0)),
        INVALID_CDB
    );
    // Zero blocks and beyond the end.
    good(&d.execute(&cdb10(0x2F, 0x02, 0, 0), &[], 0));
    assert_eq!(
        sense(&d.execute(&cdb10(0x2F, 0x02, 1025, 0), &[], 0)),
        LBA_OOB
    );
    assert_eq!(
        sense(&d.execute(&cdb10(0x2F, 0x02, 1023, 2), &[0; 1024], 0)),
        LBA_OOB
    );
}

#[test]
fn compare_and_write() {
    let mut d = disk();
    let mut data = vec![2u8; 2 * BS];
    data[BS..].fill(b'B');
    let mut caw = cdb16(0x89, 0, 2, 0);
    caw[13] = 1;
    assert_eq!(d.expected_transfer(&caw), Transfer::Out(1024));
    good(&d.execute(&caw, &data, 0));
    assert!(d.backing().mem[2 * BS..3 * BS].iter().all(|&b| b == b'B'));
    // Now block 2 holds 'B', so comparing with 2s fails at byte 0, nothing written.
    data[BS..].fill(b'C');
    let out = d.execute(&caw, &data, 0);
    assert_eq!(sense(&out), MISCOMPARE);
    assert_eq!(fixed_information(&out), Some(0));
    assert!(d.backing().mem[2 * BS..3 * BS].iter().all(|&b| b == b'B'));
    // Data-out sizes that disagree with the block count (libiscsi InvalidDataOutSize).
    assert_eq!(sense(&d.execute(&caw, &[b'B'; 4 * BS], 0)), INVALID_CDB);
    caw[13] = 3;
    assert_eq!(sense(&d.execute(&caw, &[b'B'; 4 * BS], 0)), INVALID_CDB);
    // Zero blocks: fine without data, refused with (as the 256-block test sends).
    caw[13] = 0;
    good(&d.execute(&caw, &[], 0));
    assert_eq!(sense(&d.execute(&caw, &[0; 512], 0)), INVALID_CDB);
    caw[13] = 255;
    good(&d.execute(&caw, &d.backing().mem[2 * BS..257 * BS].repeat(2), 0));
    let mut end = cdb16(0x89, 0x18, 1023, 0);
    end[13] = 2;
    assert_eq!(sense(&d.execute(&end, &[0; 4 * BS], 0)), LBA_OOB);
    let small = Disk::new(Probe::new(64), Identity::new("s"), 512, false);
    let mut small = small.with_limits(Limits::with_max_transfer_bytes(512, 8 * 512));
    let mut caw = cdb16(0x89, 0, 0, 0);
    caw[13] = 5;
    assert_eq!(sense(&small.execute(&caw, &[0; 10 * BS], 0)), INVALID_CDB);
}

#[test]
fn write_same_fills_and_unmaps() {
    let mut d = disk();
    good(&d.execute(&cdb10(0x41, 0, 100, 5), &[0xA6; 512], 0));
    assert!(d.backing().mem[100 * BS..105 * BS]
        .iter()
        .all(|&b| b == 0xA6));
    assert_eq!(d.backing().mem[105 * BS], 105);
    // UNMAP with a zero block deallocates; with another pattern it writes.
    good(&d.execute(&cdb16(0x93, 0x08, 100, 2), &[0; 512], 0));
    assert!(d.backing().mem[100 * BS..102 * BS].iter().all(|&b| b == 0));
    good(&d.execute(&cdb10(0x41, 0x08, 101, 1), &[0x77; 512], 0));
    assert!(d.backing().mem[101 * BS..102 * BS]
        .iter()
        .all(|&b| b == 0x77));
    // NDOB: no data-out, zeros.
    let ndob = cdb16(0x93, 0x09, 103, 1);
    assert_eq!(d.expected_transfer(&ndob), Transfer::None);
    good(&d.execute(&ndob, &[], 0));
    assert!(d.backing().mem[103 * BS..104 * BS].iter().all(|&b| b == 0));
    // ANCHOR is refused, with or without UNMAP.
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0x10, 0, 1), &[0; 512], 0)),
        INVALID_CDB
    );
    assert_eq!(
        sense(&d.execute(&cdb16(0x93, 0x18, 0, 1), &[0; 512], 0)),
        INVALID_CDB
    );
    // The data-out must be one block.
    assert!(sense(&d.execute(&cdb10(0x41, 0x08, 0, 1), &[0; 256], 0)).0 == key::ILLEGAL_REQUEST);
    assert!(sense(&d.execute(&cdb10(0x41, 0x08, 0, 1), &[0; 1024], 0)).0 == key::ILLEGAL_REQUEST);
    // Beyond the end, and over MAXIMUM WRITE SAME LENGTH.
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0, 1023, 2), &[0; 512], 0)),
        LBA_OOB
    );
    assert_eq!(
        sense(&d.execute(&cdb16(0x93, 0, 1 << 63, 1), &[0; 512], 0)),
        LBA_OOB
    );
    let limits = Limits {
        max_write_same_blocks: 16,
        ..Limits::for_block_size(512)
    };
    let mut d = d.with_limits(limits);
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0, 0, 17), &[0; 512], 0)),
        INVALID_CDB
    );
    good(&d.execute(&cdb10(0x41, 0, 0, 16), &[0; 512], 0));
}

#[test]
fn write_same_zero_blocks_means_to_the_end() {
    let mut d = disk();
    // 1024 blocks > the 16384-block limit? No: it fits, so it writes to the end.
    good(&d.execute(&cdb10(0x41, 0, 1000, 0), &[0xEE; 512], 0));
    assert!(d.backing().mem[1000 * BS..].iter().all(|&b| b == 0xEE));
    good(&d.execute(&cdb10(0x41, 0, 1024, 0), &[0xEE; 512], 0));
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0, 1025, 0), &[0; 512], 0)),
        LBA_OOB
    );
    let limits = Limits {
        max_write_same_blocks: 100,
        ..Limits::for_block_size(512)
    };
    let mut d = d.with_limits(limits);
    // libiscsi WriteSame10.ZeroBlocks: from LBA 0 that is more than the limit...
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0, 0, 0), &[0; 512], 0)),
        INVALID_CDB
    );
    // ...and from num_blocks - (limit + 1) too, but not from num_blocks - limit.
    assert_eq!(
        sense(&d.execute(&cdb10(0x41, 0, 1024 - 101, 0), &[0; 512], 0)),
        INVALID_CDB
    );
    good(&d.execute(&cdb10(0x41, 0, 1024 - 100, 0), &[0; 512], 0));
}

fn unmap_list(descriptors: &[(u64, u32)]) -> Vec<u8> {
    let mut list = vec![0u8; 8];
    let n = descriptors.len() * 16;
    list[..2].copy_from_slice(&((n + 6) as u16).to_be_bytes());
    list[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    for &(lba, blocks) in descriptors {
        list.extend_from_slice(&lba.to_be_bytes());
        list.extend_from_slice(&blocks.to_be_bytes());
        list.extend_from_slice(&[0; 4]);
    }
    list
}

fn unmap_cdb(length: usize) -> Vec<u8> {
    let mut c = vec![0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    c[7..9].copy_from_slice(&(length as u16).to_be_bytes());
    c
}

#[test]
fn unmap_deallocates_only_valid_lists() {
    let mut d = disk();
    let list = unmap_list(&[(1, 2), (10, 1), (1024, 0)]);
    assert_eq!(
        d.expected_transfer(&unmap_cdb(list.len())),
        Transfer::Out(56)
    );
    good(&d.execute(&unmap_cdb(list.len()), &list, 0));
    assert!(d.backing().mem[BS..3 * BS].iter().all(|&b| b == 0));
    assert!(d.backing().mem[10 * BS..11 * BS].iter().all(|&b| b == 0));
    assert_eq!(d.backing().mem[3 * BS], 3);
    // No descriptors, or no parameter list at all.
    good(&d.execute(&unmap_cdb(8), &unmap_list(&[]), 0));
    good(&d.execute(&unmap_cdb(0), &[], 0));
    // A list shorter than its header.
    let out = d.execute(&unmap_cdb(7), &[0; 7], 0);
    assert_eq!(sense(&out), (key::ILLEGAL_REQUEST, 0x1A, 0x00));
    // One bad descriptor: nothing at all is unmapped.
    let list = unmap_list(&[(20, 1), (1023, 2)]);
    assert_eq!(sense(&d.execute(&unmap_cdb(list.len()), &list, 0)), LBA_OOB);
    assert_eq!(d.backing().mem[20 * BS], 20);
    // Over the descriptor and block limits.
    let many: Vec<(u64, u32)> = (0..257).map(|i| (i, 0)).collect();
    let list = unmap_list(&many);
    assert_eq!(
        sense(&d.execute(&unmap_cdb(list.len()), &list, 0)),
        INVALID_PARAM
    );
    let limits = Limits {
        max_unmap_blocks: 4,
        ..Limits::for_block_size(512)
    };
    let mut d = d.with_limits(limits);
    let list = unmap_list(&[(30, 3), (40, 2)]);
    assert_eq!(
        sense(&d.execute(&unmap_cdb(list.len()), &list, 0)),
        INVALID_PARAM
    );
    assert_eq!(d.backing().mem[30 * BS], 30);
    // An incomplete trailing descriptor is ignored.
    let mut list = unmap_list(&[(50, 1)]);
    list[2..4].copy_from_slice(&24u16.to_be_bytes());
    list.extend_from_slice(&[0xFF; 8]);
    good(&d.execute(&unmap_cdb(list.len()), &list, 0));
    assert_eq!(d.backing().mem[50 * BS], 0);
}

#[test]
fn read_only_disk_refuses_every_write() {
    let mut d = Disk::new(Probe::new(64), Identity::new("ro"), 512, true);
    let before = d.backing().mem.clone();
    let mut caw = cdb16(0x89, 0, 0, 0);
    caw[13] = 1;
    let refused: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (cdb10(0x2A, 0, 0, 1), vec![0xA6; 512]),
        (cdb12(0xAA, 0, 0, 1), vec![0xA6; 512]),
        (cdb16(0x8A, 0, 0, 1), vec![0xA6; 512]),
        (vec![0x0A, 0, 0, 0, 1, 0], vec![0xA6; 512]),
        (cdb10(0x2E, 0x02, 0, 1), vec![0xA6; 512]),
        (cdb16(0x8B, 0, 0, 1), vec![0xA6; 512]),
        (cdb10(0x41, 0, 0, 1), vec![0; 512]),
        // WRITE SAME with UNMAP and no data-out at all (libiscsi ReadOnly).
        (cdb10(0x41, 0x08, 0, 1), vec![]),
        (cdb16(0x93, 0x08, 0, 1), vec![]),
        (unmap_cdb(24), unmap_list(&[(0, 1)])),
        (caw, vec![0; 1024]),
        (vec![0x04, 0, 0, 0, 0, 0], vec![]),
    ];
    for (cdb, data) in refused {
        assert_eq!(
            sense(&d.execute(&cdb, &data, 0)),
            WRITE_PROTECTED,
            "{cdb:02x?}"
        );
    }
    assert_eq!(d.backing().mem, before);
    good(&d.execute(&cdb10(0x28, 0, 0, 1), &[], 512));
    let out = d.execute(&[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(out.data_in[2], 0x90, "WP and DPOFUA");
}

fn mode_select6(page: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut list = vec![0, 0, 0, 0];
    list.extend_from_slice(page);
    (vec![0x15, 0x10, 0, 0, list.len() as u8, 0], list)
}

fn control_page(disk: &mut Disk<Probe>) -> Vec<u8> {
    let out = disk.execute(&[0x1A, 0x08, 0x0A, 0, 255, 0], &[], 255);
    good(&out);
    out.data_in[4..].to_vec()
}

#[test]
fn software_write_protect_through_mode_select() {
    let mut d = disk();
    // libiscsi set_swp: changeable page first.
    let out = d.execute(&[0x1A, 0x08, 0x4A, 0, 255, 0], &[], 255);
    assert_eq!(out.data_in[4 + 4] & 0x08, 0x08, "SWP is changeable");
    let mut page = control_page(&mut d);
    page[4] |= 0x08;
    let (cdb, list) = mode_select6(&page);
    assert_eq!(d.expected_transfer(&cdb), Transfer::Out(16));
    good(&d.execute(&cdb, &list, 0));
    assert_eq!(control_page(&mut d)[4] & 0x08, 0x08);
    good(&d.execute(&cdb10(0x28, 0, 0, 1), &[], 512));
    let out = d.execute(&cdb10(0x2A, 0, 0, 1), &[0; 512], 0);
    assert_eq!(sense(&out), (key::DATA_PROTECT, 0x27, 0x02));
    let out = d.execute(&[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(out.data_in[2] & 0x80, 0x80, "WP while SWP is set");
    page[4] &= !0x08;
    let (cdb, list) = mode_select6(&page);
    good(&d.execute(&cdb, &list, 0));
    good(&d.execute(&cdb10(0x2A, 0, 0, 1), &[0; 512], 0));
}

#[test]
fn d_sense_switches_to_descriptor_format() {
    let mut d = disk();
    let out = d.execute(&cdb16(0x88, 0, u64::MAX, 1), &[], 512);
    assert_eq!(out.sense.as_ref().unwrap()[0], 0x70);
    let mut page = control_page(&mut d);
    page[2] |= 0x04;
    let (cdb, list) = mode_select6(&page);
    good(&d.execute(&cdb, &list, 0));
    assert!(d.descriptor_sense());
    let out = d.execute(&cdb16(0x88, 0, u64::MAX, 1), &[], 512);
    assert_eq!(out.sense.unwrap(), [0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]);
    // Turning the write cache off makes every write durable.
    let mut caching = d.execute(&[0x1A, 0x08, 0x08, 0, 255, 0], &[], 255).data_in[4..].to_vec();
    caching[2] &= !0x04;
    let (cdb, list) = mode_select6(&caching);
    good(&d.execute(&cdb, &list, 0));
    good(&d.execute(&cdb10(0x2A, 0, 0, 1), &[0; 512], 0));
    assert_eq!(d.backing().flushes, 1);
}

#[test]
fn read_capacity_bytes() {
    let mut d = disk();
    let out = d.execute(&cdb10(0x25, 0, 0, 0), &[], 8);
    assert_eq!(out.data_in, [0, 0, 0x03, 0xFF, 0, 0, 0x02, 0x00]);
    assert_eq!(
        sense(&d.execute(&cdb10(0x25, 0, 1, 0), &[], 8)),
        INVALID_CDB
    );
    let mut rc16 = vec![0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    assert_eq!(d.expected_transfer(&rc16), Transfer::In(32));
    let out = d.execute(&rc16, &[], 32);
    let mut expected = vec![
        0, 0, 0, 0, 0, 0, 0x03, 0xFF, 0, 0, 0x02, 0x00, 0, 0, 0xC0, 0,
    ];
    expected.extend_from_slice(&[0; 16]);
    assert_eq!(out.data_in, expected);
    for alloc in 0..16u8 {
        rc16[13] = alloc;
        let out = d.execute(&rc16, &[], 96);
        good(&out);
        assert_eq!(out.data_in, expected[..alloc as usize]);
    }
    let mut big = Disk::new(Huge(1 << 45), Identity::new("big"), 4096, false);
    let out = big.execute(&cdb10(0x25, 0, 0, 0), &[], 8);
    assert_eq!(out.data_in, [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0x00]);
    rc16[13] = 32;
    let out = big.execute(&rc16, &[], 32);
    assert_eq!(
        &out.data_in[..12],
        &[0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x10, 0]
    );
    assert_eq!(big.limits().max_transfer_blocks, 2048);
}

#[test]
fn get_lba_status_bytes() {
    let mut d = disk();
    let mut c = vec![0x9E, 0x12, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 24, 0, 0];
    let out = d.execute(&c, &[], 24);
    assert_eq!(
        out.data_in,
        [0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0x03, 0xF0, 0, 0, 0, 0]
    );
    c[14] = 3; // deallocated LBAs only: none
    assert_eq!(d.execute(&c, &[], 24).data_in, [0, 0, 0, 4, 0, 0, 0, 0]);
    c[14] = 0;
    c[2..10].copy_from_slice(&1024u64.to_be_bytes());
    assert_eq!(sense(&d.execute(&c, &[], 24)), LBA_OOB);
    c[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(sense(&d.execute(&c, &[], 24)), LBA_OOB);
}

#[test]
fn prefetch_and_synchronize_cache() {
    let mut d = disk();
    let out = d.execute(&cdb10(0x34, 0, 0, 16), &[], 0);
    assert_eq!(out.status, Status::ConditionMet);
    assert_eq!(out.status.code(), 0x04);
    assert_eq!(
        d.execute(&cdb16(0x90, 0x02, 1000, 0), &[], 0).status,
        Status::ConditionMet
    );
    assert_eq!(sense(&d.execute(&cdb10(0x34, 0, 1023, 2), &[], 0)), LBA_OOB);
    assert_eq!(sense(&d.execute(&cdb16(0x90, 0, 1025, 0), &[], 0)), LBA_OOB);
    good(&d.execute(&cdb10(0x35, 0x06, 0, 0), &[], 0));
    good(&d.execute(&cdb16(0x91, 0x02, 0, 1024), &[], 0));
    assert_eq!(d.backing().flushes, 2);
    assert_eq!(sense(&d.execute(&cdb16(0x91, 0, 1, 1024), &[], 0)), LBA_OOB);
}

#[test]
fn small_commands() {
    let mut d = disk();
    // REQUEST SENSE: nothing pending, fixed or descriptor format.
    let out = d.execute(&[0x03, 0, 0, 0, 252, 0], &[], 252);
    assert_eq!(
        out.data_in,
        [0x70, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let out = d.execute(&[0x03, 1, 0, 0, 252, 0], &[], 252);
    assert_eq!(out.data_in, [0x72, 0, 0, 0, 0, 0, 0, 0]);
    // START STOP UNIT: stopping flushes; a reserved power condition is refused.
    good(&d.execute(&[0x1B, 1, 0, 0, 0x00, 0], &[], 0));
    assert_eq!(d.backing().flushes, 1);
    good(&d.execute(&[0x1B, 0, 0, 0, 0x04, 0], &[], 0));
    good(&d.execute(&[0x1B, 0, 0, 0, 0x01, 0], &[], 0));
    good(&d.execute(&[0x1B, 1, 0, 0, 0x33, 0], &[], 0));
    assert_eq!(d.backing().flushes, 1);
    assert_eq!(
        sense(&d.execute(&[0x1B, 0, 0, 0, 0x40, 0], &[], 0)),
        INVALID_CDB
    );
    // PREVENT ALLOW MEDIUM REMOVAL.
    good(&d.execute(&[0x1E, 0, 0, 0, 1, 0], &[], 0));
    good(&d.execute(&[0x1E, 0, 0, 0, 0, 0], &[], 0));
    assert_eq!(
        sense(&d.execute(&[0x1E, 0, 0, 0, 2, 0], &[], 0)),
        INVALID_CDB
    );
    // READ DEFECT DATA: empty lists.
    let out = d.execute(&[0x37, 0, 0x18, 0, 0, 0, 0, 0, 32, 0], &[], 32);
    assert_eq!(out.data_in, [0, 0x18, 0, 0]);
    let out = d.execute(&[0xB7, 0x0D, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], &[], 32);
    assert_eq!(out.data_in, [0, 0x0D, 0, 0, 0, 0, 0, 0]);
    // SEND DIAGNOSTIC and FORMAT UNIT.
    good(&d.execute(&[0x1D, 0x04, 0, 0, 0, 0], &[], 0));
    good(&d.execute(&[0x1D, 0x20, 0, 0, 0, 0], &[], 0));
    assert_eq!(
        sense(&d.execute(&[0x1D, 0x24, 0, 0, 0, 0], &[], 0)),
        INVALID_CDB
    );
    assert_eq!(
        sense(&d.execute(&[0x1D, 0x04, 0, 0, 4, 0], &[0; 4], 0)),
        INVALID_CDB
    );
    good(&d.execute(&[0x04, 0, 0, 0, 0, 0], &[], 0));
    assert_eq!(
        sense(&d.execute(&[0x04, 0x10, 0, 0, 0, 0], &[], 0)),
        INVALID_CDB
    );
    // TEST UNIT READY, and REPORT LUNS of a lone disk.
    good(&d.execute(&[0; 6], &[], 0));
    let out = d.execute(&[0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], &[], 16);
    assert_eq!(
        out.data_in,
        [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn refused_commands() {
    let mut d = disk();
    // PR IN/OUT, RESERVE/RELEASE(6/10), XCOPY, RECEIVE COPY RESULTS, WRITE ATOMIC,
    // SANITIZE, variable-length CDBs, LOG SENSE, WRITE BUFFER.
    for op in [
        0x5E, 0x5F, 0x16, 0x17, 0x56, 0x57, 0x83, 0x84, 0x9C, 0x48, 0x7F, 0x4D, 0x3B,
    ] {
        let out = d.execute(&[op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[], 255);
        assert_eq!(sense(&out), INVALID_OPCODE, "{op:#x}");
    }
    // Unknown service actions: INVALID FIELD IN CDB pointing at byte 1 (libiscsi
    // reads that as "not implemented" for these two opcodes).
    for cdb in [
        vec![0x9E, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0],
        vec![0xA3, 0x0A, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    ] {
        let out = d.execute(&cdb, &[], 255);
        assert_eq!(sense(&out), INVALID_CDB);
        assert_eq!(&out.sense.unwrap()[15..18], &[0xCC, 0, 1]);
    }
    assert_eq!(sense(&d.execute(&[], &[], 0)), INVALID_OPCODE);
}

#[test]
fn io_errors_become_medium_and_hardware_errors() {
    let mut d = disk();
    d.backing_mut().fail = Some(Fail::Os(5));
    let out = d.execute(&cdb10(0x28, 0, 7, 1), &[], 512);
    assert_eq!(sense(&out), (key::MEDIUM_ERROR, 0x11, 0x00));
    assert_eq!(fixed_information(&out), Some(7));
    let out = d.execute(&cdb10(0x2A, 0, 9, 1), &[0; 512], 0);
    assert_eq!(sense(&out), (key::MEDIUM_ERROR, 0x0C, 0x00));
    assert_eq!(
        sense(&d.execute(&cdb10(0x35, 0, 0, 0), &[], 0)),
        (key::MEDIUM_ERROR, 0x0C, 0)
    );
    d.backing_mut().fail = Some(Fail::Os(28));
    let out = d.execute(&cdb10(0x2A, 0, 9, 1), &[0; 512], 0);
    assert_eq!(sense(&out), (key::DATA_PROTECT, 0x27, 0x07));
    d.backing_mut().fail = Some(Fail::Custom);
    let out = d.execute(&cdb10(0x28, 0, 7, 1), &[], 512);
    assert_eq!(sense(&out), (key::HARDWARE_ERROR, 0x44, 0x00));
}

#[test]
fn report_supported_opcodes_through_the_disk() {
    let mut d = disk();
    let all = [0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
    assert_eq!(d.expected_transfer(&all), Transfer::In(65535));
    let out = d.execute(&all, &[], 65535);
    good(&out);
    assert_eq!(out.data_in.len(), 4 + 20 * COMMANDS.len());
    // libiscsi ReportSupportedOpcodes.Simple asks for 1024 bytes.
    let mut short = all;
    short[8..10].copy_from_slice(&[0x04, 0x00]);
    let out = d.execute(&short, &[], 1024);
    assert_eq!(out.data_in.len(), 1024.min(4 + 20 * COMMANDS.len()));
    // DPO/FUA advertised for the commands the DpoFua tests look at.
    for (op, mask) in [
        (0x28, 0x18),
        (0x2A, 0x18),
        (0x89, 0x18),
        (0x8B, 0x18),
        (0x2F, 0x10),
        (0x2E, 0x10),
        (0xAE, 0x10),
        (0x8E, 0x10),
        (0xAF, 0x10),
        (0x8F, 0x10),
        (0x88, 0x18),
        (0xAA, 0x18),
    ] {
        let one = [0xA3, 0x0C, 0x01, op, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let out = d.execute(&one, &[], 65535);
        assert_eq!(out.data_in[1] & 0x07, 3, "{op:#x} supported");
        assert_eq!(out.data_in[4], op);
        assert_eq!(out.data_in[5] & mask, mask, "{op:#x}");
    }
}

/// What libiscsi's iscsi-test-cu asks before its first test, checked the way its
/// unmarshalling and tests read the answers.
#[test]
fn libiscsi_setup_sequence() {
    let mut d = disk();
    let rc10 = d.execute(&cdb10(0x25, 0, 0, 0), &[], 8);
    assert_eq!(
        u32::from_be_bytes(rc10.data_in[..4].try_into().unwrap()),
        1023
    );
    let rc16 = d.execute(
        &[0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 96, 0, 0],
        &[],
        96,
    );
    assert_eq!(rc16.data_in_residual(96), Residual::Underflow(64));
    assert_eq!(rc16.data_in[13] & 0x0F, 0, "LBPPBE");
    assert_eq!(rc16.data_in[14] & 0x80, 0x80, "LBPME");
    assert_eq!(rc16.data_in[12] & 0x01, 0, "PROT_EN");
    let inq = d.execute(&[0x12, 0, 0, 0, 64, 0], &[], 64);
    assert_eq!(inq.data_in.len(), 64);
    let full = usize::from(inq.data_in[4]) + 5;
    let inq = d.execute(&[0x12, 0, 0, 0, full as u8, 0], &[], full as u32);
    assert_eq!(inq.data_in.len(), full);
    assert_eq!(inq.data_in[0], 0, "qualifier 0, direct access");
    assert_eq!(inq.data_in[5] & 0x01, 0, "PROTECT");
    assert_eq!(inq.data_in[1] & 0x80, 0, "not removable");
    let sbc3 = (0..8).any(|i| inq.data_in[58 + 2 * i..60 + 2 * i] == [0x04, 0xC0]);
    assert!(sbc3);
    // Inquiry.AllocLength: every length from 5 to 255, and 511 equals 512.
    for alloc in 5..256u32 {
        let out = d.execute(&[0x12, 0, 0, 0, alloc as u8, 0], &[], alloc);
        good(&out);
        assert_eq!(out.data_in.len(), (alloc as usize).min(96));
    }
    let a = d.execute(&[0x12, 0, 0, 0x01, 0xFF, 0], &[], 511);
    let b = d.execute(&[0x12, 0, 0, 0x02, 0x00, 0], &[], 512);
    assert_eq!(a.data_in, b.data_in);
    // Block limits: PageLength + 4 == size, and SBC-3 wants 0x3C.
    let bl = d.execute(&[0x12, 1, 0xB0, 0, 255, 0], &[], 255);
    assert_eq!(bl.data_in.len(), usize::from(bl.data_in[3]) + 4);
    assert_eq!(bl.data_in[3], 0x3C);
    // Every page in the supported list can be read.
    let pages = d.execute(&[0x12, 1, 0, 0, 255, 0], &[], 255).data_in;
    for &page in &pages[4..] {
        good(&d.execute(&[0x12, 1, page, 0, 255, 0], &[], 255));
    }
    // MODE SENSE(6) all pages: the mode data length covers the data.
    let ms = d.execute(&[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert_eq!(usize::from(ms.data_in[0]) + 1, ms.data_in.len());
    assert_eq!(ms.data_in[2] & 0x80, 0, "not read-only");
    assert_eq!(ms.data_in[2] & 0x10, 0x10, "DPOFUA");
    // ModeSense6.Residuals: alloc 4 gives 4 bytes, no overflow.
    let ms = d.execute(&[0x1A, 0, 0x3F, 0, 4, 0], &[], 4);
    assert_eq!(ms.data_in.len(), 4);
    assert_eq!(ms.data_in_residual(4), Residual::None);
    let ms = d.execute(&[0x1A, 0, 0x3F, 0, 255, 0], &[], 255);
    assert!(matches!(ms.data_in_residual(255), Residual::Underflow(_)));
}

#[test]
fn block_size_4096_and_bad_block_sizes() {
    let mut d = Disk::new(
        MemBacking(vec![7; 16 * 4096 + 100]),
        Identity::new("4k"),
        4096,
        false,
    );
    assert_eq!(d.blocks(), 16);
    let out = d.execute(&cdb10(0x28, 0, 15, 1), &[], 4096);
    good(&out);
    assert_eq!(out.data_in, vec![7; 4096]);
    assert_eq!(
        sense(&d.execute(&cdb10(0x28, 0, 15, 2), &[], 8192)),
        LBA_OOB
    );
    assert_eq!(d.limits().optimal_granularity_blocks, 1);
    assert_eq!(d.limits().max_unmap_blocks, 131072);
    let d = Disk::new(MemBacking(vec![0; 4096]), Identity::new("odd"), 1000, false);
    assert_eq!(d.block_size(), 512);
    assert_eq!(d.blocks(), 8);
    // An empty store: every access is out of range, nothing panics.
    let mut empty = Disk::new(MemBacking(Vec::new()), Identity::new("e"), 512, false);
    assert_eq!(
        sense(&empty.execute(&cdb10(0x28, 0, 0, 1), &[], 512)),
        LBA_OOB
    );
    good(&empty.execute(&cdb10(0x25, 0, 0, 0), &[], 8));
}

#[test]
fn file_backed_disk_round_trip() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.as_file().set_len(64 * 512).unwrap();
    let file = FileBacking::open(tmp.path(), false).unwrap();
    let mut d = Disk::new(file, Identity::new("file"), 512, false);
    good(&d.execute(&cdb10(0x2A, 0x08, 3, 2), &[0xC3; 1024], 0));
    let list = unmap_list(&[(4, 1)]);
    good(&d.execute(&unmap_cdb(list.len()), &list, 0));
    let out = d.execute(&cdb10(0x28, 0, 3, 2), &[], 1024);
    assert_eq!(&out.data_in[..512], &[0xC3; 512]);
    assert_eq!(&out.data_in[512..], &[0; 512]);
    drop(d);
    let bytes = std::fs::read(tmp.path()).unwrap();
    assert_eq!(&bytes[3 * 512..4 * 512], &[0xC3; 512]);
}

/// Point a block command's LBA and length at a small range now and then, so the
/// fuzz reaches the backing store and not only the range checks.
fn aim(cdb: &mut [u8], rng: &mut StdRng) {
    let layout = Layout::of(cdb[0]);
    let lba: u64 = rng.random_range(0..80);
    let len: u32 = rng.random_range(0..24);
    match layout {
        Layout::Six => {
            cdb[1] = (lba >> 16) as u8 & 0x1F;
            cdb[2] = (lba >> 8) as u8;
            cdb[3] = lba as u8;
            cdb[4] = len as u8;
        }
        Layout::Ten => {
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[7..9].copy_from_slice(&(len as u16).to_be_bytes());
        }
        Layout::Twelve => {
            cdb[2..6].copy_from_slice(&(lba as u32).to_be_bytes());
            cdb[6..10].copy_from_slice(&len.to_be_bytes());
        }
        Layout::Sixteen => {
            cdb[2..10].copy_from_slice(&lba.to_be_bytes());
            cdb[10..14].copy_from_slice(&len.to_be_bytes());
        }
    }
}

fn random_cdb(rng: &mut StdRng) -> Vec<u8> {
    if rng.random_bool(0.3) {
        let len = rng.random_range(0..=32);
        let mut cdb = vec![0u8; len];
        rng.fill(&mut cdb[..]);
        return cdb;
    }
    let spec = &COMMANDS[rng.random_range(0..COMMANDS.len())];
    let mut cdb = vec![0u8; spec.usage.len() + rng.random_range(0..4)];
    rng.fill(&mut cdb[..]);
    if rng.random_bool(0.8) {
        for (byte, mask) in cdb.iter_mut().zip(spec.usage) {
            *byte &= mask;
        }
    }
    cdb[0] = spec.opcode;
    if let Some(sa) = spec.service_action {
        cdb[1] = sa;
    }
    let block_command = !matches!(spec.opcode, 0x00..=0x07 | 0x12..=0x1E | 0x25 | 0x37 | 0x42 | 0x55 | 0x5A | 0x89 | 0x9E | 0xA0 | 0xA3 | 0xB7);
    if block_command && rng.random_bool(0.7) {
        aim(&mut cdb, rng);
    }
    cdb
}

#[test]
fn fuzz_random_cdbs_never_panic_and_failures_never_write() {
    let mut rng = StdRng::seed_from_u64(0x5C51);
    let mut disk = Disk::new(Probe::new(64), Identity::new("fuzz"), 512, false)
        .with_limits(Limits::with_max_transfer_bytes(512, 32 * 512));
    let (mut failed, mut succeeded, mut wrote) = (0, 0, 0);
    for round in 0..20_000 {
        let cdb = random_cdb(&mut rng);
        let data_len = match rng.random_range(0..4) {
            0 => 0,
            1 => 512,
            2 => rng.random_range(0..4096),
            _ => match disk.expected_transfer(&cdb) {
                Transfer::Out(n) => n.min(64 * 1024) as usize,
                _ => 0,
            },
        };
        let mut data_out = vec![0u8; data_len];
        if rng.random_bool(0.5) {
            rng.fill(&mut data_out[..]);
        }
        let allocation = match rng.random_range(0..3) {
            0 => 0,
            1 => rng.random_range(0..600),
            _ => 1 << 20,
        };
        let before = disk.backing().mem.clone();
        let outcome = disk.execute(&cdb, &data_out, allocation);
        assert!(
            outcome.data_in.len() <= allocation as usize,
            "round {round}"
        );
        match outcome.status {
            Status::CheckCondition => {
                let sense = outcome.sense.as_ref().unwrap();
                assert!(matches!(sense[0], 0x70 | 0xF0 | 0x72), "round {round}");
                assert!(outcome.data_in.is_empty());
                assert_eq!(disk.backing().mem, before, "round {round}: {cdb:02x?}");
                failed += 1;
            }
            Status::Good | Status::ConditionMet => {
                assert!(outcome.sense.is_none());
                assert!(outcome.data_in.len() <= outcome.data_in_wanted as usize);
                succeeded += 1;
                wrote += usize::from(disk.backing().mem != before);
            }
            other => panic!("unexpected status {other:?}"),
        }
        // Keep the mode state from drifting into "everything is write-protected".
        if round % 64 == 0 {
            disk.mode = mode::ModeState::default();
        }
    }
    // The run must reach both the refusals and the store.
    assert!(
        failed > 5_000 && succeeded > 2_000 && wrote > 300,
        "{failed} {succeeded} {wrote}"
    );
}
