//! The direct-access block device (peripheral type 0): its state, its limits, and the
//! dispatch of every CDB to the command that answers it.

use tracing::debug;

use super::backing::Backing;
use super::cdb::{bytes_u32, Cdb, Layout};
use super::inquiry::{self, Identity, VpdContext};
use super::mode::{self, Geometry, ModeState};
use super::opcodes;
use super::sense::Sense;
use super::{luns, Outcome, Status, Transfer};

/// What the disk accepts in one command (reported in the Block Limits VPD page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MAXIMUM TRANSFER LENGTH in blocks; longer READ/WRITE/VERIFY are refused.
    pub max_transfer_blocks: u32,
    /// MAXIMUM WRITE SAME LENGTH in blocks (kept at the transfer limit: a WRITE SAME
    /// without UNMAP writes every block, and libiscsi's WriteSame16.Unmap test first
    /// WRITEs as many blocks as this allows when it is 65536 or more).
    pub max_write_same_blocks: u32,
    /// MAXIMUM UNMAP LBA COUNT: blocks one UNMAP may deallocate in total.
    pub max_unmap_blocks: u32,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
    pub max_unmap_descriptors: u32,
    /// MAXIMUM COMPARE AND WRITE LENGTH in blocks.
    pub max_compare_and_write_blocks: u8,
    /// OPTIMAL TRANSFER LENGTH GRANULARITY and OPTIMAL UNMAP GRANULARITY in blocks.
    pub optimal_granularity_blocks: u16,
}

impl Limits {
    /// The transfer limit used unless the transport asks for another.
    pub const DEFAULT_MAX_TRANSFER_BYTES: u32 = 8 << 20;
    /// Bytes one UNMAP may deallocate (bounded: without hole punching it writes zeros).
    const MAX_UNMAP_BYTES: u32 = 512 << 20;

    /// The default limits for a block size: 8 MiB per transfer.
    pub fn for_block_size(block_size: u32) -> Self {
        Self::with_max_transfer_bytes(block_size, Self::DEFAULT_MAX_TRANSFER_BYTES)
    }

    /// Limits with `max_transfer_bytes` per READ/WRITE (at least one block).
    pub fn with_max_transfer_bytes(block_size: u32, max_transfer_bytes: u32) -> Self {
        let block_size = block_size.max(1);
        let max_transfer = (max_transfer_bytes / block_size).max(1);
        Limits {
            max_transfer_blocks: max_transfer,
            max_write_same_blocks: max_transfer,
            max_unmap_blocks: (Self::MAX_UNMAP_BYTES / block_size).clamp(1, 1 << 20),
            max_unmap_descriptors: 256,
            max_compare_and_write_blocks: u8::try_from(max_transfer / 2).unwrap_or(u8::MAX).max(1),
            optimal_granularity_blocks: u16::try_from(4096 / block_size).unwrap_or(1).max(1),
        }
    }

    /// At least one block everywhere, and a transfer that fits 32 bits of bytes.
    fn sanitised(self, block_size: u32) -> Self {
        let max_transfer = (u32::MAX / block_size.max(1)).max(1);
        Limits {
            max_transfer_blocks: self.max_transfer_blocks.clamp(1, max_transfer),
            max_write_same_blocks: self.max_write_same_blocks.max(1),
            max_unmap_blocks: self.max_unmap_blocks.max(1),
            max_unmap_descriptors: self.max_unmap_descriptors.max(1),
            max_compare_and_write_blocks: self.max_compare_and_write_blocks,
            optimal_granularity_blocks: self.optimal_granularity_blocks.max(1),
        }
    }
}

/// A successful command's answer before it is cut to the initiator's expected length.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: Status,
    pub(super) data: Vec<u8>,
    /// The data-in length the command wanted to send (may exceed `data`).
    pub(super) wanted: u32,
}

impl Reply {
    pub(super) fn good() -> Self {
        Reply {
            status: Status::Good,
            data: Vec::new(),
            wanted: 0,
        }
    }

    pub(super) fn condition_met() -> Self {
        Reply {
            status: Status::ConditionMet,
            ..Reply::good()
        }
    }

    pub(super) fn data(data: Vec<u8>) -> Self {
        Reply {
            wanted: u32::try_from(data.len()).unwrap_or(u32::MAX),
            status: Status::Good,
            data,
        }
    }
}

/// A SCSI direct-access block device over a [`Backing`] store.
#[derive(Debug)]
pub struct Disk<B: Backing> {
    pub(super) backing: B,
    pub(super) identity: Identity,
    pub(super) block_size: u32,
    pub(super) blocks: u64,
    pub(super) read_only: bool,
    pub(super) limits: Limits,
    pub(super) mode: ModeState,
}

impl<B: Backing> Disk<B> {
    /// A disk of `backing.size() / block_size` blocks (a trailing partial block is
    /// not addressable). `block_size` should be 512 or 4096; anything that is not a
    /// power of two from 512 to 65536 falls back to 512.
    pub fn new(backing: B, identity: Identity, block_size: u32, read_only: bool) -> Self {
        let block_size = if (512..=65536).contains(&block_size) && block_size.is_power_of_two() {
            block_size
        } else {
            tracing::warn!(block_size, "unsupported block size, using 512");
            512
        };
        let blocks = backing.size() / u64::from(block_size);
        Disk {
            backing,
            identity,
            block_size,
            blocks,
            read_only,
            limits: Limits::for_block_size(block_size),
            mode: ModeState::default(),
        }
    }

    /// The same disk with other limits (e.g. the transport's largest transfer); zero
    /// limits become one block, and a transfer limit is capped at 4 GiB of bytes.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits.sanitised(self.block_size);
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes per logical block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Number of logical blocks.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Whether the disk refuses writes.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The identity reported by INQUIRY.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The store.
    pub fn backing(&self) -> &B {
        &self.backing
    }

    /// The store, mutably (bypasses the disk: for tests and tooling).
    pub fn backing_mut(&mut self) -> &mut B {
        &mut self.backing
    }

    /// The store, giving up the disk.
    pub fn into_backing(self) -> B {
        self.backing
    }

    /// Whether sense data is currently returned in descriptor format (D_SENSE).
    pub fn descriptor_sense(&self) -> bool {
        self.mode.d_sense
    }

    /// What the CDB says about its data, so the transport can check the initiator's
    /// Expected Data Transfer Length and collect the data-out before [`execute`]. For
    /// a CDB the disk will refuse this is still the CDB's own claim (or `None`).
    /// Lengths that do not fit 32 bits saturate.
    ///
    /// [`execute`]: Disk::execute
    pub fn expected_transfer(&self, cdb: &[u8]) -> Transfer {
        let cdb = Cdb::new(cdb);
        let blocks = |n: u64| bytes_u32(n, self.block_size);
        let length = || u64::from(Layout::of(cdb.opcode()).transfer_blocks(cdb));
        let transfer = match cdb.opcode() {
            0x08 | 0x28 | 0xA8 | 0x88 => Transfer::In(blocks(length())),
            0x0A | 0x2A | 0xAA | 0x8A | 0x2E | 0xAE | 0x8E | 0x8B => {
                Transfer::Out(blocks(length()))
            }
            0x2F | 0xAF | 0x8F => match (cdb.byte(1) >> 1) & 0x03 {
                1 => Transfer::Out(blocks(length())),
                3 if length() > 0 => Transfer::Out(self.block_size),
                _ => Transfer::None,
            },
            0x41 => Transfer::Out(self.block_size),
            0x93 if cdb.bit(1, 0x01) => Transfer::None,
            0x93 => Transfer::Out(self.block_size),
            0x89 => Transfer::Out(blocks(u64::from(cdb.byte(13)) * 2)),
            0x42 | 0x55 => Transfer::Out(u32::from(cdb.be16(7))),
            0x15 => Transfer::Out(u32::from(cdb.byte(4))),
            0x1D => Transfer::Out(u32::from(cdb.be16(3))),
            0x25 => Transfer::In(8),
            _ => allocation_transfer(cdb),
        };
        match transfer {
            Transfer::In(0) | Transfer::Out(0) => Transfer::None,
            other => other,
        }
    }

    /// Run one command. `data_out` is all the data-out the initiator sent for it (up to
    /// its Expected Data Transfer Length, whether that is shorter or longer than the
    /// CDB says); `allocation` is the initiator's expected data-in length, and
    /// [`Outcome::data_in`] never exceeds it. Residuals: data-in from
    /// [`Outcome::data_in_residual`], data-out from [`Transfer::residual`].
    ///
    /// A data-out shorter than the CDB asks is written (or compared) up to the last
    /// whole block received, as libiscsi's residual tests expect; one that ends inside
    /// a block is refused with INVALID FIELD IN INFORMATION UNIT. COMPARE AND WRITE and
    /// WRITE SAME want exactly their data-out size.
    pub fn execute(&mut self, cdb: &[u8], data_out: &[u8], allocation: u32) -> Outcome {
        let cdb = Cdb::new(cdb);
        match self.dispatch(cdb, data_out, allocation) {
            Ok(reply) => Outcome::from_reply(reply, allocation),
            Err(sense) => {
                debug!(
                    opcode = cdb.opcode(),
                    key = sense.key,
                    asc = sense.asc,
                    ascq = sense.ascq,
                    "CHECK CONDITION"
                );
                Outcome::check_condition(&sense, self.mode.d_sense)
            }
        }
    }

    fn dispatch(&mut self, cdb: Cdb<'_>, data_out: &[u8], allocation: u32) -> Result<Reply, Sense> {
        opcodes::validate(cdb)?;
        match cdb.opcode() {
            0x00 => Ok(Reply::good()), // TEST UNIT READY: always ready
            0x03 => Ok(request_sense(cdb)),
            0x04 => self.format_unit(cdb),
            0x08 | 0x28 | 0xA8 | 0x88 => self.read(cdb, allocation),
            0x0A | 0x2A | 0xAA | 0x8A => self.write(cdb, data_out, super::block::WriteKind::Plain),
            0x2E | 0xAE | 0x8E => self.write(cdb, data_out, super::block::WriteKind::Verify),
            0x8B => self.write(cdb, data_out, super::block::WriteKind::Or),
            0x2F | 0xAF | 0x8F => self.verify(cdb, data_out),
            0x12 => self.inquiry(cdb),
            0x15 | 0x55 => self.mode_select(cdb, data_out),
            0x1A | 0x5A => self.mode_sense(cdb),
            0x1B => self.start_stop_unit(cdb),
            0x1D => send_diagnostic(cdb),
            0x1E => prevent_allow(cdb),
            0x25 => self.read_capacity_10(cdb),
            0x34 | 0x90 => self.prefetch(cdb),
            0x35 | 0x91 => self.synchronize_cache(cdb),
            0x37 | 0xB7 => Ok(read_defect_data(cdb)),
            0x41 | 0x93 => self.write_same(cdb, data_out),
            0x42 => self.unmap(cdb, data_out),
            0x89 => self.compare_and_write(cdb, data_out),
            opcodes::SERVICE_ACTION_IN_16 if cdb.service_action() == 0x10 => {
                self.read_capacity_16(cdb)
            }
            opcodes::SERVICE_ACTION_IN_16 => self.get_lba_status(cdb),
            0xA0 => luns::report_luns(cdb, [0]).map(Reply::data),
            opcodes::MAINTENANCE_IN => opcodes::report_supported_opcodes(cdb)
                .map(|data| Reply::data(cut(data, u64::from(cdb.be32(6))))),
            _ => Err(Sense::invalid_opcode()),
        }
    }

    fn inquiry(&self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let context = VpdContext {
            identity: &self.identity,
            limits: &self.limits,
        };
        inquiry::inquiry(cdb, &context).map(Reply::data)
    }

    pub(super) fn geometry(&self) -> Geometry {
        Geometry {
            blocks: self.blocks,
            block_size: self.block_size,
            write_protected: self.read_only || self.mode.swp,
        }
    }

    fn mode_sense(&self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let ten = cdb.opcode() == 0x5A;
        mode::mode_sense(cdb, ten, &self.mode, &self.geometry()).map(Reply::data)
    }

    fn mode_select(&mut self, cdb: Cdb<'_>, data_out: &[u8]) -> Result<Reply, Sense> {
        let ten = cdb.opcode() == 0x55;
        let geometry = self.geometry();
        mode::mode_select(cdb, ten, data_out, &mut self.mode, &geometry)?;
        Ok(Reply::good())
    }

    fn format_unit(&mut self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        if cdb.bit(1, 0x10) {
            // FMTDATA: no format parameter list is supported.
            return Err(Sense::invalid_field_in_cdb(1, Some(4)));
        }
        self.check_writable()?;
        // The medium has no format to change; just make earlier writes durable.
        self.flush_backing()?;
        Ok(Reply::good())
    }

    fn start_stop_unit(&mut self, cdb: Cdb<'_>) -> Result<Reply, Sense> {
        let power_condition = cdb.byte(4) >> 4;
        if !matches!(power_condition, 0x0 | 0x1 | 0x2 | 0x3 | 0x7 | 0xA | 0xB) {
            return Err(Sense::invalid_field_in_cdb(4, Some(7)));
        }
        let start = cdb.bit(4, 0x01);
        let no_flush = cdb.bit(4, 0x04);
        // The unit is always ready; stopping it only flushes the cache (unless NO_FLUSH).
        if power_condition == 0 && !start && !no_flush {
            self.flush_backing()?;
        }
        Ok(Reply::good())
    }
}

/// Data-in the CDB's own allocation length announces (commands without block data).
pub(super) fn allocation_transfer(cdb: Cdb<'_>) -> Transfer {
    let length = match cdb.opcode() {
        0x12 => u32::from(cdb.be16(3)),
        0x03 | 0x1A => u32::from(cdb.byte(4)),
        0x5A | 0x37 => u32::from(cdb.be16(7)),
        0xA0 | 0xA3 | 0xB7 => cdb.be32(6),
        opcodes::SERVICE_ACTION_IN_16 => cdb.be32(10),
        _ => 0,
    };
    if length == 0 {
        Transfer::None
    } else {
        Transfer::In(length)
    }
}

/// `data` cut to `limit` bytes.
pub(super) fn cut(mut data: Vec<u8>, limit: u64) -> Vec<u8> {
    data.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    data
}

/// REQUEST SENSE: sense is delivered with each CHECK CONDITION (autosense), so none
/// is ever pending; NO SENSE in the format the DESC bit asks for.
fn request_sense(cdb: Cdb<'_>) -> Reply {
    let data = Sense::no_sense().encode(cdb.bit(1, 0x01));
    Reply::data(cut(data, u64::from(cdb.byte(4))))
}

/// SEND DIAGNOSTIC: the default self-test and the short/extended self-tests pass at
/// once; diagnostic pages (a parameter list) are not supported.
fn send_diagnostic(cdb: Cdb<'_>) -> Result<Reply, Sense> {
    if cdb.be16(3) != 0 {
        return Err(Sense::invalid_field_in_cdb(3, None));
    }
    let code = cdb.byte(1) >> 5;
    let self_test = cdb.bit(1, 0x04);
    let valid = if self_test {
        code == 0
    } else {
        matches!(code, 0 | 1 | 2 | 4 | 5 | 6)
    };
    if !valid {
        return Err(Sense::invalid_field_in_cdb(1, Some(7)));
    }
    Ok(Reply::good())
}

/// PREVENT ALLOW MEDIUM REMOVAL: the medium is not removable, so there is nothing to
/// lock; PREVENT values 10b and 11b are obsolete.
fn prevent_allow(cdb: Cdb<'_>) -> Result<Reply, Sense> {
    if cdb.byte(4) & 0x03 > 1 {
        return Err(Sense::invalid_field_in_cdb(4, Some(1)));
    }
    Ok(Reply::good())
}

/// READ DEFECT DATA(10/12): the lists asked for are valid and empty.
fn read_defect_data(cdb: Cdb<'_>) -> Reply {
    let (flags, allocation) = if cdb.opcode() == 0x37 {
        (cdb.byte(2) & 0x1F, u64::from(cdb.be16(7)))
    } else {
        (cdb.byte(1) & 0x1F, u64::from(cdb.be32(6)))
    };
    let data = if cdb.opcode() == 0x37 {
        vec![0, flags, 0, 0]
    } else {
        vec![0, flags, 0, 0, 0, 0, 0, 0]
    };
    Reply::data(cut(data, allocation))
}
