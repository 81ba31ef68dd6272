//! The SCSI disk a target exports: an SBC-4/SPC-5 direct-access block device
//! (peripheral device type 0) over a [`Backing`] store, answering the commands
//! Linux and libiscsi's `iscsi-test-cu` send.
//!
//! The transport hands each command to [`LogicalUnits::execute`] (or
//! [`Disk::execute`]) and sends back the [`Outcome`]. Before that it asks
//! [`LogicalUnits::expected_transfer`] what the CDB says about its data, so it can
//! compare the initiator's Expected Data Transfer Length (EDTL) and collect the
//! data-out. Residuals: for data-in, [`Outcome::data_in_residual`] (the command's
//! own length after its allocation length, against the EDTL); for data-out,
//! [`Transfer::residual`].
//!
//! Implemented: TEST UNIT READY, REQUEST SENSE, INQUIRY (VPD 00h, 80h, 83h, B0h,
//! B1h, B2h), MODE SENSE/SELECT(6/10), REPORT LUNS, REPORT SUPPORTED OPERATION
//! CODES, READ/WRITE(6/10/12/16), WRITE AND VERIFY(10/12/16), VERIFY(10/12/16),
//! ORWRITE(16), COMPARE AND WRITE, WRITE SAME(10/16), UNMAP, GET LBA STATUS, READ
//! CAPACITY(10/16), PRE-FETCH(10/16), SYNCHRONIZE CACHE(10/16), START STOP UNIT,
//! PREVENT ALLOW MEDIUM REMOVAL, READ DEFECT DATA(10/12), SEND DIAGNOSTIC and FORMAT
//! UNIT (without a parameter list). Everything else, notably PERSISTENT RESERVE
//! IN/OUT, RESERVE/RELEASE, EXTENDED COPY, WRITE ATOMIC, SANITIZE and 32-byte CDBs,
//! is refused with INVALID COMMAND OPERATION CODE.
//!
//! No command ever panics on its bytes; a range is checked against the capacity
//! before the backing store is touched.

mod backing;
mod block;
mod cdb;
mod disk;
mod inquiry;
mod luns;
mod mode;
mod opcodes;
pub mod sense;

#[cfg(test)]
mod tests;

pub use backing::{Backing, FileBacking, MemBacking};
pub use disk::{Disk, Limits};
pub use inquiry::Identity;
pub use luns::{decode_lun, encode_lun, LogicalUnits, LunError, MAX_LUN};
pub use sense::Sense;

/// What a CDB says about its data (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// No data either way.
    None,
    /// The command sends this much data-in.
    In(u32),
    /// The command wants this much data-out.
    Out(u32),
}

/// An iSCSI residual (RFC 7143 11.4.5): how the command's length compares with the
/// initiator's Expected Data Transfer Length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// They are equal.
    None,
    /// The command wanted this many more bytes than expected (O bit).
    Overflow(u32),
    /// The command wanted this many fewer bytes than expected (U bit).
    Underflow(u32),
}

impl Residual {
    fn between(wanted: u32, expected: u32) -> Self {
        match wanted.cmp(&expected) {
            std::cmp::Ordering::Equal => Residual::None,
            std::cmp::Ordering::Greater => Residual::Overflow(wanted - expected),
            std::cmp::Ordering::Less => Residual::Underflow(expected - wanted),
        }
    }
}

impl Transfer {
    /// The data-out residual of a command whose initiator expects `expected` bytes
    /// (only meaningful for [`Transfer::Out`] and [`Transfer::None`]).
    pub fn residual(self, expected: u32) -> Residual {
        match self {
            Transfer::Out(wanted) => Residual::between(wanted, expected),
            Transfer::None | Transfer::In(_) => Residual::between(0, expected),
        }
    }
}

/// SCSI status (SAM-5 5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// GOOD.
    Good,
    /// CHECK CONDITION: the sense data says why.
    CheckCondition,
    /// CONDITION MET (PRE-FETCH).
    ConditionMet,
    /// BUSY.
    Busy,
    /// RESERVATION CONFLICT.
    ReservationConflict,
    /// TASK SET FULL.
    TaskSetFull,
}

impl Status {
    /// The status byte.
    pub fn code(self) -> u8 {
        match self {
            Status::Good => 0x00,
            Status::CheckCondition => 0x02,
            Status::ConditionMet => 0x04,
            Status::Busy => 0x08,
            Status::ReservationConflict => 0x18,
            Status::TaskSetFull => 0x28,
        }
    }
}

/// The answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The SCSI status.
    pub status: Status,
    /// Sense data with CHECK CONDITION: fixed format (70h, 18 bytes), or descriptor
    /// format (72h) while the control mode page's D_SENSE bit is set.
    pub sense: Option<Vec<u8>>,
    /// Data-in, at most the `allocation` given to `execute`.
    pub data_in: Vec<u8>,
    /// The data-in length the command wanted to send, after the CDB's own
    /// allocation length but before the initiator's expected length: the basis of
    /// the data-in residual. Zero with CHECK CONDITION.
    pub data_in_wanted: u32,
}

impl Outcome {
    /// CHECK CONDITION with `sense`, in descriptor format if `descriptor`.
    pub fn check_condition(sense: &Sense, descriptor: bool) -> Self {
        Outcome {
            status: Status::CheckCondition,
            sense: Some(sense.encode(descriptor)),
            data_in: Vec::new(),
            data_in_wanted: 0,
        }
    }

    /// GOOD with no data.
    pub fn good() -> Self {
        Outcome {
            status: Status::Good,
            sense: None,
            data_in: Vec::new(),
            data_in_wanted: 0,
        }
    }

    fn from_reply(reply: disk::Reply, allocation: u32) -> Self {
        let mut data_in = reply.data;
        data_in.truncate(allocation as usize);
        Outcome {
            status: reply.status,
            sense: None,
            data_in,
            data_in_wanted: reply.wanted,
        }
    }

    /// The data-in residual against the initiator's expected length `expected`.
    pub fn data_in_residual(&self, expected: u32) -> Residual {
        Residual::between(self.data_in_wanted, expected)
    }
}
