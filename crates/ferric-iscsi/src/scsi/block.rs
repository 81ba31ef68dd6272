//! The block commands (SBC-4 5): READ, WRITE, WRITE AND VERIFY, ORWRITE, VERIFY,
//! WRITE SAME, UNMAP, COMPARE AND WRITE, PRE-FETCH, SYNCHRONIZE CACHE, READ
//! CAPACITY and GET LBA STATUS. Every range is checked against the capacity with
//! checked arithmetic before the backing is touched.

use std::io;

use tracing::warn;

use super::backing::Backing;
use super::cdb::{bytes_u32, Cdb, Layout};
use super::disk::{cut, Disk, Reply};
use super::sense::Sense;

/// Largest buffer used when a command touches many blocks (verify, write same).
const CHUNK_BYTES: u64 = 1 << 20;

/// What a WRITE-family command does with its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteKind {
    /// WRITE(6/10/12/16).
    Plain,
    /// WRITE AND VERIFY(10/12/16): write, then read back (and compare if BYTCHK=1).
    Verify,
    /// ORWRITE(16): OR the data into what is there.
    Or,
}

#[derive(Debug, Clone, Copy)]
enum Io {
    Read,
    Write,
}

/// The sense for a failed backing call at `lba`.
fn io_sense(error: &io::Error, lba: u64, io: Io) -> Sense {
    warn!(%error, lba, ?io, "backing store I/O failed");
    const ENOSPC: i32 = 28;
    match (error.raw_os_error(), io) {
        (Some(ENOSPC), _) => Sense::space_allocation_failed(),
        (Some(_), Io::Read) => Sense::unrecovered_read_error(lba),
        (Some(_), Io::Write) => Sense::write_error(lba),
        (None, _) => Sense::internal_target_failure(),
    }
}

/// Offset of the first byte where `a` and `b` differ.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

impl<B: Backing> Disk<B> {
    fn check_range(&self, lba: u64, blocks: u64) -> Result<(), Sense> {
        match lba.checked_add(blocks) {
            Some(end) if end <= self.blocks => Ok(()),
            _ => Err(Sense::lba_out_of_range()),
        }
    }

    /// The block count a "0 means to the end of the medium" field stands for.
    fn to_end_if_zero(&self, lba: u64, blocks: u64) -> Result<u64, Sense> {
        if lba > self.blocks {
            return Err(Sense::lba_out_of_range());
        }
        Ok(if blocks == 0 {
            self.blocks - lba
        } else {
            blocks
        })
    }

    fn check_transfer_limit(&self, blocks: u64, layout: Layout) -> Result<(), Sense> {
        if blocks > u64::from(self.limits.max_transfer_blocks) {
            return Err(Sense::invalid_field_in_cdb(layout.length_offset(), None));
        }
        Ok(())
    }

    pub(super) fn check_writable(&self) -> Result<(), Sense> {
        if self.read_only {
            Err(Sense::write_protected())
        } else if self.mode.swp {
            Err(Sense::software_write_protected())
        } else {
            Ok(())
        }
    }

    /// Byte offset of `lba`; only called on checked ranges, so it cannot overflow
    /// (the capacity times the block size is at most the backing's size).
    fn offset(&self, lba: u64) -> u64 {
        lba * u64::from(self.block_size)
    }

    /// Byte length of `blocks` blocks of a checked, transfer-limited range.
    fn length(&self, blocks: u64) -> usize {
        usize::try_from(blocks * u64::from(self.block_size)).unwrap_or(usize::MAX)
    }

    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Sense> {
        let offset = self.offset(lba);
        self.backing
            .read_at(buf, offset)
            .map_err(|e| io_sense(&e, lba, Io::Read))
    }

    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), Sense> {
        let offset = self.offset(lba);
        self.backing
            .write_at(buf, offset)
            .map_err(|e| io_sense(&e, lba, Io::Write))
    }

    fn discard_blocks(&mut self, lba: u64, blocks: u64) -> Result<(), Sense> {
        let (offset, len) = (self.offset(lba), self.offset(blocks));
        self.backing
            .discard(offset, len)
            .map_err(|e| io_sense(&e, lba, Io::Write))
    }

    pub(super) fn flush_backing(&mut self) -> Result<(), Sense> {
        self.backing.flush().map_err(|e| io_sense(&e, 0, Io::Write))
    }

    /// After a write: with FUA, or with the write cache disabled, make it durable.
    fn after_write(&mut self, fua: bool) -> Result<(), Sense> {
        if fua || !self.mode.write_cache {
            self.flush_backing()?;
        }
        Ok(())
    }

    /// How many of `blocks` the data-out holds: all, or the whole blocks received.
    fn received_blocks(&self, blocks: u64, data_out: &[u8]) -> Result<u64, Sense> {
        let block_size = u64::from(self.block_size);
        let have = data_out.len() as u64;
        if have >= blocks * block_size {
            Ok(blocks)
        } else if !have.is_multiple_of(block_size) {
            Err(Sense::invalid_field_in_information_unit())
        } else {
            Ok(have / block_size)
        }
    }

    /// READ(6/10/12/16). Only what fits the initiator's expected length is read.
    pub(super) fn read(&mut self, cdb: Cdb<'_>, allocation: u32) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let blocks = u64::from(layout.transfer_blocks(cdb));
        self.check_transfer_limit(blocks, layout)?;
        self.check_range(lba, blocks)?;
        let wanted = bytes_u32(blocks, self.block_size);
        let mut data = vec![0u8; wanted.min(allocation) as usize];
        if !data.is_empty() {
            self.read_blocks(lba, &mut data)?;
        }
        // FUA and DPO need nothing: reads always see the latest data.
        Ok(Reply {
            status: super::Status::Good,
            data,
            wanted,
        })
    }

    /// WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16), ORWRITE(16).
    pub(super) fn write(
        &mut self,
        cdb: Cdb<'_>,
        data_out: &[u8],
        kind: WriteKind,
    ) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let blocks = u64::from(layout.transfer_blocks(cdb));
        let compare = kind == WriteKind::Verify && bytchk(cdb)? == 1;
        let fua = layout != Layout::Six && cdb.bit(1, 0x08);
        self.check_transfer_limit(blocks, layout)?;
        self.check_range(lba, blocks)?;
        self.check_writable()?;
        let blocks = self.received_blocks(blocks, data_out)?;
        if blocks == 0 {
            return Ok(Reply::good());
        }
        let data = &data_out[..self.length(blocks)];
        match kind {
            WriteKind::Plain => {
                self.write_blocks(lba, data)?;
                self.after_write(fua)?;
            }
            WriteKind::Or => {
                let mut merged = vec![0u8; data.len()];
                self.read_blocks(lba, &mut merged)?;
                merged.iter_mut().zip(data).for_each(|(m, d)| *m |= d);
                self.write_blocks(lba, &merged)?;
                self.after_write(fua)?;
            }
            WriteKind::Verify => {
                self.write_blocks(lba, data)?;
                // Verify what reached the medium, not the cache.
                self.after_write(true)?;
                let mut back = vec![0u8; data.len()];
                self.read_blocks(lba, &mut back)?;
                if let Some(at) = first_difference(data, &back).filter(|_| compare) {
                    return Err(Sense::miscompare(at as u64));
                }
            }
        }
        Ok(Reply::good())
    }

    /// VERIFY(10/12/16): BYTCHK 00b checks the blocks can be read, 01b compares them
    /// with the data-out, 11b compares each with the one block sent.
    pub(super) fn verify(&mut self, cdb: Cdb<'_>, data_out: &[u8]) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let blocks = u64::from(layout.raw_length(cdb));
        let mode = bytchk(cdb)?;
        self.check_transfer_limit(blocks, layout)?;
        self.check_range(lba, blocks)?;
        if blocks == 0 {
            return Ok(Reply::good());
        }
        match mode {
            0 => self.verify_medium(lba, blocks)?,
            1 => {
                let have = self.received_blocks(blocks, data_out)?;
                let expected = &data_out[..self.length(have)];
                let mut medium = vec![0u8; expected.len()];
                self.read_blocks(lba, &mut medium)?;
                if let Some(at) = first_difference(expected, &medium) {
                    return Err(Sense::miscompare(at as u64));
                }
            }
            _ => self.verify_pattern(lba, blocks, data_out)?,
        }
        Ok(Reply::good())
    }

    fn verify_medium(&mut self, lba: u64, blocks: u64) -> Result<(), Sense> {
        self.for_each_chunk(lba, blocks, |disk, at, chunk_blocks| {
            let mut buf = vec![0u8; disk.length(chunk_blocks)];
            disk.read_blocks(at, &mut buf)
        })
    }

    fn verify_pattern(&mut self, lba: u64, blocks: u64, data_out: &[u8]) -> Result<(), Sense> {
        let block = self.length(1);
        let pattern = data_out
            .get(..block)
            .ok_or_else(Sense::invalid_field_in_information_unit)?
            .to_vec();
        self.for_each_chunk(lba, blocks, |disk, at, chunk_blocks| {
            let mut buf = vec![0u8; disk.length(chunk_blocks)];
            disk.read_blocks(at, &mut buf)?;
            for (i, medium) in buf.chunks_exact(block).enumerate() {
                if let Some(byte) = first_difference(&pattern, medium) {
                    let offset = disk.offset(at - lba) + (i * block + byte) as u64;
                    return Err(Sense::miscompare(offset));
                }
            }
            Ok(())
        })
    }

    /// Call `step(disk, lba, blocks)` over `blocks` from `lba` in chunks of at most
    /// CHUNK_BYTES (at least one block).
    fn for_each_chunk(
        &mut self,
        lba: u64,
        blocks: u64,
        mut step: impl FnMut(&mut Self, u64, u64) -> Result<(), Sense>,
    ) -> Result<(), Sense> {
        let per_chunk = (CHUNK_BYTES / u64::from(self.block_size)).max(1);
        let mut done = 0;
        while done < blocks {
            let n = (blocks - done).min(per_chunk);
            step(self, lba + done, n)?;
            done += n;
        }
        Ok(())
    }

    /// WRITE SAME(10/16): zero blocks means to the end of the medium (WSNZ is 0); with
    /// UNMAP an all-zero pattern (or NDOB) deallocates, any other pattern is written.
    pub(super) fn write_same(&mut self, cdb: Cdb<'_>, data_out: &[u8]) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let unmap = cdb.bit(1, 0x08);
        let no_data = layout == Layout::Sixteen && cdb.bit(1, 0x01);
        let blocks = self.to_end_if_zero(lba, u64::from(layout.raw_length(cdb)))?;
        if blocks > u64::from(self.limits.max_write_same_blocks) {
            return Err(Sense::invalid_field_in_cdb(layout.length_offset(), None));
        }
        self.check_range(lba, blocks)?;
        self.check_writable()?;
        let pattern = if no_data {
            vec![0u8; self.length(1)]
        } else if data_out.len() == self.length(1) {
            data_out.to_vec()
        } else {
            return Err(Sense::invalid_field_in_information_unit());
        };
        if blocks == 0 {
            return Ok(Reply::good());
        }
        if unmap && pattern.iter().all(|&b| b == 0) {
            self.discard_blocks(lba, blocks)?;
        } else {
            let chunk = pattern.repeat((CHUNK_BYTES as usize / pattern.len()).max(1));
            self.for_each_chunk(lba, blocks, |disk, at, n| {
                let len = disk.length(n);
                disk.write_blocks(at, &chunk[..len])
            })?;
        }
        self.after_write(false)?;
        Ok(Reply::good())
    }

    /// UNMAP: every descriptor is checked before any block is deallocated.
    pub(super) fn unmap(&mut self, cdb: Cdb<'_>, data_out: &[u8]) -> Result<Reply, Sense> {
        self.check_writable()?;
        let length = usize::from(cdb.be16(7));
        if length == 0 {
            return Ok(Reply::good());
        }
        let list = &data_out[..length.min(data_out.len())];
        if list.len() < 8 {
            return Err(Sense::parameter_list_length_error());
        }
        let descriptor_bytes = usize::from(u16::from_be_bytes([list[2], list[3]]));
        // An incomplete last descriptor is ignored (SBC-4 5.31.2).
        let count = descriptor_bytes.min(list.len() - 8) / 16;
        if count > self.limits.max_unmap_descriptors as usize {
            return Err(Sense::invalid_field_in_parameters(2, None));
        }
        let mut ranges = Vec::with_capacity(count);
        let mut total = 0u64;
        for d in list[8..8 + 16 * count].chunks_exact(16) {
            let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
            let blocks = u64::from(u32::from_be_bytes([d[8], d[9], d[10], d[11]]));
            self.check_range(lba, blocks)?;
            total += blocks;
            if total > u64::from(self.limits.max_unmap_blocks) {
                return Err(Sense::invalid_field_in_parameters(
                    8 + 16 * ranges.len() + 8,
                    None,
                ));
            }
            ranges.push((lba, blocks));
        }
        for (lba, blocks) in ranges.into_iter().filter(|&(_, n)| n > 0) {
            self.discard_blocks(lba, blocks)?;
        }
        self.after_write(false)?;
        Ok(Reply::good())
    }

    /// COMPARE AND WRITE: the data-out is the verify blocks then the write blocks,
    /// and must be exactly that long.
    pub(super) fn compare_and_write(
        &mut self,
        cdb: Cdb<'_>,
        data_out: &[u8],
    ) -> Result<Reply, Sense> {
        let lba = cdb.be64(2);
        let blocks = u64::from(cdb.byte(13));
        if blocks > u64::from(self.limits.max_compare_and_write_blocks) {
            return Err(Sense::invalid_field_in_cdb(13, None));
        }
        self.check_range(lba, blocks)?;
        self.check_writable()?;
        let half = self.length(blocks);
        if data_out.len() != 2 * half {
            return Err(Sense::invalid_field_in_cdb(13, None));
        }
        if blocks == 0 {
            return Ok(Reply::good());
        }
        let (expected, new) = data_out.split_at(half);
        let mut medium = vec![0u8; half];
        self.read_blocks(lba, &mut medium)?;
        if let Some(at) = first_difference(expected, &medium) {
            return Err(Sense::miscompare(at as u64));
        }
        self.write_blocks(lba, new)?;
        self.after_write(cdb.bit(1, 0x08))?;
        Ok(Reply::good())
    }

    /// PRE-FETCH(10/16): the blocks are always at hand, so CONDITION MET.
    pub(super) fn prefetch(&mut self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let blocks = self.to_end_if_zero(lba, u64::from(layout.raw_length(cdb)))?;
        self.check_range(lba, blocks)?;
        Ok(Reply::condition_met())
    }

    /// SYNCHRONIZE CACHE(10/16): flushes the whole store whatever the range.
    pub(super) fn synchronize_cache(&mut self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let layout = Layout::of(cdb.opcode());
        let lba = layout.lba(cdb);
        let blocks = self.to_end_if_zero(lba, u64::from(layout.raw_length(cdb)))?;
        self.check_range(lba, blocks)?;
        self.flush_backing()?;
        Ok(Reply::good())
    }

    fn last_lba(&self) -> u64 {
        self.blocks.saturating_sub(1)
    }

    /// READ CAPACITY(10): the last LBA, or FFFFFFFFh when it does not fit.
    pub(super) fn read_capacity_10(&self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        check_pmi(cdb, u64::from(cdb.be32(2)), 8)?;
        let last = u32::try_from(self.last_lba()).unwrap_or(u32::MAX);
        let mut data = last.to_be_bytes().to_vec();
        data.extend_from_slice(&self.block_size.to_be_bytes());
        Ok(Reply::data(data))
    }

    /// READ CAPACITY(16): capacity, block size, LBPME and LBPRZ (UNMAP leaves zeros).
    pub(super) fn read_capacity_16(&self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        check_pmi(cdb, cdb.be64(2), 14)?;
        let mut data = vec![0u8; 32];
        data[..8].copy_from_slice(&self.last_lba().to_be_bytes());
        data[8..12].copy_from_slice(&self.block_size.to_be_bytes());
        data[14] = 0x80 | 0x40; // LBPME, LBPRZ
        Ok(Reply::data(cut(data, u64::from(cdb.be32(10)))))
    }

    /// GET LBA STATUS: one descriptor, every block mapped (the backing cannot tell
    /// which ranges are holes).
    pub(super) fn get_lba_status(&self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let lba = cdb.be64(2);
        if lba >= self.blocks {
            return Err(Sense::lba_out_of_range());
        }
        let report_type = cdb.byte(14) & 0x07;
        let mapped_wanted = match report_type {
            0 | 2 => true,      // all LBAs / mapped LBAs
            1 | 3 | 4 => false, // non-zero status / deallocated / anchored LBAs
            _ => return Err(Sense::invalid_field_in_cdb(14, Some(2))),
        };
        let mut data = vec![0u8; 8];
        if mapped_wanted {
            let blocks = u32::try_from(self.blocks - lba).unwrap_or(u32::MAX);
            data.extend_from_slice(&lba.to_be_bytes());
            data.extend_from_slice(&blocks.to_be_bytes());
            data.extend_from_slice(&[0, 0, 0, 0]); // provisioning status 0: mapped
        }
        let length = (data.len() - 4) as u32;
        data[..4].copy_from_slice(&length.to_be_bytes());
        Ok(Reply::data(cut(data, u64::from(cdb.be32(10)))))
    }
}

/// The BYTCHK field of VERIFY and WRITE AND VERIFY; 10b is reserved, and WRITE AND
/// VERIFY has no 11b.
fn bytchk(cdb: Cdb<'_>) -> Result<u8, Sense> {
    let value = (cdb.byte(1) >> 1) & 0x03;
    let write_and_verify = matches!(cdb.opcode(), 0x2E | 0xAE | 0x8E);
    if value == 2 || (write_and_verify && value == 3) {
        return Err(Sense::invalid_field_in_cdb(1, Some(2)));
    }
    Ok(value)
}

/// READ CAPACITY: with PMI (obsolete) clear the LBA field must be zero.
fn check_pmi(cdb: Cdb<'_>, lba: u64, pmi_at: usize) -> Result<(), Sense> {
    if !cdb.bit(pmi_at, 0x01) && lba != 0 {
        return Err(Sense::invalid_field_in_cdb(2, None));
    }
    Ok(())
}
