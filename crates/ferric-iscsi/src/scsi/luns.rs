//! The logical units of one target: single-level LUN addressing (SAM-5 4.7:
//! peripheral device addressing below 256, flat space addressing up to 16383),
//! REPORT LUNS, and the answers for a LUN that does not exist.

use std::collections::BTreeMap;

use super::backing::Backing;
use super::cdb::Cdb;
use super::disk::{allocation_transfer, cut, Disk};
use super::inquiry;
use super::opcodes;
use super::sense::Sense;
use super::{Outcome, Status, Transfer};

/// Highest LUN single-level flat space addressing can carry.
pub const MAX_LUN: u64 = 0x3FFF;

/// Why a logical unit cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LunError {
    /// Beyond what single-level addressing can express.
    #[error("LUN {0} is beyond the single-level addressing limit of {MAX_LUN}")]
    TooLarge(u64),
    /// Another disk has it.
    #[error("LUN {0} is already in use")]
    InUse(u64),
}

/// The LUN number in the 8 raw LUN bytes of a PDU (big-endian), if they hold a
/// single-level peripheral (00b, bus 0) or flat space (01b) address.
pub fn decode_lun(raw: u64) -> Option<u64> {
    let bytes = raw.to_be_bytes();
    if bytes[2..].iter().any(|&b| b != 0) {
        return None;
    }
    match bytes[0] >> 6 {
        0b00 if bytes[0] == 0 => Some(u64::from(bytes[1])),
        0b01 => Some((u64::from(bytes[0] & 0x3F) << 8) | u64::from(bytes[1])),
        _ => None,
    }
}

/// The 8 raw LUN bytes (as a big-endian u64) addressing `lun`: peripheral device
/// addressing below 256, flat space addressing up to [`MAX_LUN`].
pub fn encode_lun(lun: u64) -> Option<u64> {
    match lun {
        0..=0xFF => Some(lun << 48),
        0x100..=MAX_LUN => Some((0x4000 | lun) << 48),
        _ => None,
    }
}

/// REPORT LUNS parameter data for `luns`, cut to the CDB's allocation length.
pub(crate) fn report_luns(
    cdb: Cdb<'_>,
    luns: impl IntoIterator<Item = u64>,
) -> Result<Vec<u8>, Sense> {
    let allocation = cdb.be32(6);
    if allocation < 16 {
        return Err(Sense::invalid_field_in_cdb(6, None));
    }
    let listed: Vec<u64> = match cdb.byte(2) {
        // All logical units (there are no well-known logical units).
        0x00 | 0x02 => luns.into_iter().filter_map(encode_lun).collect(),
        // Well-known, administrative or subsidiary logical units: none.
        0x01 | 0x10..=0x12 => Vec::new(),
        _ => return Err(Sense::invalid_field_in_cdb(2, None)),
    };
    let length = u32::try_from(listed.len() * 8).unwrap_or(u32::MAX);
    let mut data = length.to_be_bytes().to_vec();
    data.extend_from_slice(&[0, 0, 0, 0]);
    for raw in listed {
        data.extend_from_slice(&raw.to_be_bytes());
    }
    Ok(cut(data, u64::from(allocation)))
}

/// The logical units of one target, by LUN.
#[derive(Debug)]
pub struct LogicalUnits<B: Backing> {
    units: BTreeMap<u64, Disk<B>>,
}

impl<B: Backing> Default for LogicalUnits<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backing> LogicalUnits<B> {
    /// No logical units yet.
    pub fn new() -> Self {
        LogicalUnits {
            units: BTreeMap::new(),
        }
    }

    /// Add `disk` as logical unit `lun` (0 to [`MAX_LUN`]).
    pub fn add(&mut self, lun: u64, disk: Disk<B>) -> Result<(), LunError> {
        if lun > MAX_LUN {
            return Err(LunError::TooLarge(lun));
        }
        if self.units.contains_key(&lun) {
            return Err(LunError::InUse(lun));
        }
        self.units.insert(lun, disk);
        Ok(())
    }

    /// Take logical unit `lun` out.
    pub fn remove(&mut self, lun: u64) -> Option<Disk<B>> {
        self.units.remove(&lun)
    }

    /// Logical unit `lun`.
    pub fn disk(&self, lun: u64) -> Option<&Disk<B>> {
        self.units.get(&lun)
    }

    /// Logical unit `lun`, mutably.
    pub fn disk_mut(&mut self, lun: u64) -> Option<&mut Disk<B>> {
        self.units.get_mut(&lun)
    }

    /// The LUNs in use, ascending.
    pub fn luns(&self) -> impl Iterator<Item = u64> + '_ {
        self.units.keys().copied()
    }

    /// What the CDB sent to `lun_raw` (the PDU's 8 LUN bytes) says about its data.
    pub fn expected_transfer(&self, lun_raw: u64, cdb: &[u8]) -> Transfer {
        match self.unit(lun_raw) {
            Some(disk) => disk.expected_transfer(cdb),
            None => allocation_transfer(Cdb::new(cdb)),
        }
    }

    /// Run one command for `lun_raw` (see [`Disk::execute`]). REPORT LUNS is answered
    /// for any LUN; INQUIRY and REQUEST SENSE to a LUN that does not exist answer as
    /// SPC-5 says (peripheral qualifier 011b; LOGICAL UNIT NOT SUPPORTED as sense
    /// data), everything else gets CHECK CONDITION, LOGICAL UNIT NOT SUPPORTED.
    pub fn execute(
        &mut self,
        lun_raw: u64,
        cdb: &[u8],
        data_out: &[u8],
        allocation: u32,
    ) -> Outcome {
        if cdb.first() == Some(&0xA0) {
            let c = Cdb::new(cdb);
            let result =
                opcodes::validate(c).and_then(|_| report_luns(c, self.units.keys().copied()));
            return match result {
                Ok(data) => Outcome::data(data, allocation),
                Err(sense) => Outcome::check_condition(&sense, false),
            };
        }
        let lun = decode_lun(lun_raw);
        match lun.and_then(|lun| self.units.get_mut(&lun)) {
            Some(disk) => disk.execute(cdb, data_out, allocation),
            None => no_unit(Cdb::new(cdb), allocation),
        }
    }

    fn unit(&self, lun_raw: u64) -> Option<&Disk<B>> {
        decode_lun(lun_raw).and_then(|lun| self.units.get(&lun))
    }
}

/// A command addressed to a logical unit that does not exist.
fn no_unit(cdb: Cdb<'_>, allocation: u32) -> Outcome {
    let not_supported = Sense::lun_not_supported();
    if let Err(sense) = opcodes::validate(cdb) {
        return Outcome::check_condition(&sense, false);
    }
    match cdb.opcode() {
        0x12 if cdb.bit(1, 0x01) => Outcome::check_condition(&not_supported, false),
        0x12 if cdb.byte(2) != 0 => {
            Outcome::check_condition(&Sense::invalid_field_in_cdb(2, None), false)
        }
        0x12 => Outcome::data(cut(inquiry::no_unit(), u64::from(cdb.be16(3))), allocation),
        0x03 => {
            let data = not_supported.encode(cdb.bit(1, 0x01));
            Outcome::data(cut(data, u64::from(cdb.byte(4))), allocation)
        }
        _ => Outcome::check_condition(&not_supported, false),
    }
}

impl Outcome {
    /// GOOD with `data`, cut to `allocation`.
    pub(crate) fn data(data: Vec<u8>, allocation: u32) -> Self {
        let wanted = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Outcome {
            status: Status::Good,
            sense: None,
            data_in: cut(data, u64::from(allocation)),
            data_in_wanted: wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scsi::{Identity, MemBacking};

    fn units() -> LogicalUnits<MemBacking> {
        let mut units = LogicalUnits::new();
        for lun in [0, 3, 300] {
            let disk = Disk::new(MemBacking(vec![0; 8192]), Identity::new("x"), 512, false);
            units.add(lun, disk).unwrap();
        }
        units
    }

    #[test]
    fn lun_encoding() {
        assert_eq!(encode_lun(0), Some(0));
        assert_eq!(encode_lun(5), Some(0x0005_0000_0000_0000));
        assert_eq!(encode_lun(300), Some(0x412C_0000_0000_0000));
        assert_eq!(encode_lun(MAX_LUN + 1), None);
        assert_eq!(decode_lun(0x0005_0000_0000_0000), Some(5));
        assert_eq!(decode_lun(0x412C_0000_0000_0000), Some(300));
        assert_eq!(decode_lun(0x4005_0000_0000_0000), Some(5));
        assert_eq!(decode_lun(0x0105_0000_0000_0000), None, "bus 1");
        assert_eq!(decode_lun(0x0005_0001_0000_0000), None, "second level");
        assert_eq!(decode_lun(0xC000_0000_0000_0000), None, "extended");
    }

    #[test]
    fn add_refuses_duplicates_and_big_luns() {
        let mut units = units();
        let disk = Disk::new(MemBacking(vec![0; 512]), Identity::new("y"), 512, false);
        assert_eq!(units.add(3, disk).unwrap_err(), LunError::InUse(3));
        let disk = Disk::new(MemBacking(vec![0; 512]), Identity::new("y"), 512, false);
        assert_eq!(
            units.add(1 << 14, disk).unwrap_err(),
            LunError::TooLarge(1 << 14)
        );
        assert_eq!(units.luns().collect::<Vec<_>>(), [0, 3, 300]);
    }

    #[test]
    fn report_luns_bytes() {
        let mut units = units();
        let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        // Addressed to a LUN that does not exist: still answered.
        let outcome = units.execute(0x0009_0000_0000_0000, &cdb, &[], 256);
        assert_eq!(outcome.status, Status::Good);
        assert_eq!(
            outcome.data_in,
            [
                0, 0, 0, 24, 0, 0, 0, 0, //
                0, 0, 0, 0, 0, 0, 0, 0, //
                0, 3, 0, 0, 0, 0, 0, 0, //
                0x41, 0x2C, 0, 0, 0, 0, 0, 0
            ]
        );
        let well_known = [0xA0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let outcome = units.execute(0, &well_known, &[], 256);
        assert_eq!(outcome.data_in, [0, 0, 0, 0, 0, 0, 0, 0]);
        // Truncated by the allocation length and by the initiator's expectation.
        let short = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0];
        let outcome = units.execute(0, &short, &[], 12);
        assert_eq!(outcome.data_in.len(), 12);
        assert_eq!(outcome.data_in_wanted, 16);
    }

    #[test]
    fn report_luns_refusals() {
        let mut units = units();
        let tiny = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0];
        let outcome = units.execute(0, &tiny, &[], 15);
        assert_eq!(outcome.status, Status::CheckCondition);
        assert_eq!(
            outcome.sense.unwrap(),
            Sense::invalid_field_in_cdb(6, None).to_fixed()
        );
        let bad_select = [0xA0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        let outcome = units.execute(0, &bad_select, &[], 256);
        assert_eq!(
            outcome.sense.unwrap(),
            Sense::invalid_field_in_cdb(2, None).to_fixed()
        );
    }

    #[test]
    fn missing_lun_answers() {
        let mut units = units();
        let missing = encode_lun(7).unwrap();
        let inquiry = [0x12, 0, 0, 0, 96, 0];
        let outcome = units.execute(missing, &inquiry, &[], 96);
        assert_eq!(outcome.status, Status::Good);
        assert_eq!(outcome.data_in.len(), 36);
        assert_eq!(&outcome.data_in[..5], &[0x7F, 0, 6, 0x12, 31]);
        let evpd = [0x12, 1, 0x80, 0, 96, 0];
        let outcome = units.execute(missing, &evpd, &[], 96);
        assert_eq!(
            outcome.sense.unwrap(),
            Sense::lun_not_supported().to_fixed()
        );
        let request_sense = [0x03, 0, 0, 0, 18, 0];
        let outcome = units.execute(missing, &request_sense, &[], 18);
        assert_eq!(outcome.status, Status::Good);
        assert_eq!(outcome.data_in, Sense::lun_not_supported().to_fixed());
        let tur = [0u8; 6];
        let outcome = units.execute(missing, &tur, &[], 0);
        assert_eq!(outcome.status, Status::CheckCondition);
        assert_eq!(
            outcome.sense.unwrap(),
            Sense::lun_not_supported().to_fixed()
        );
        // An address that is not single-level is a missing unit too.
        let outcome = units.execute(0x0000_0001_0000_0000, &tur, &[], 0);
        assert_eq!(outcome.status, Status::CheckCondition);
    }

    #[test]
    fn routes_to_the_right_disk_and_reports_transfers() {
        let mut units = units();
        let write = [0x2A, 0, 0, 0, 0, 1, 0, 0, 1, 0];
        let lun300 = encode_lun(300).unwrap();
        assert_eq!(units.expected_transfer(lun300, &write), Transfer::Out(512));
        assert_eq!(
            units.expected_transfer(encode_lun(8).unwrap(), &write),
            Transfer::None
        );
        assert_eq!(
            units.expected_transfer(encode_lun(8).unwrap(), &[0x12, 0, 0, 0, 36, 0]),
            Transfer::In(36)
        );
        let outcome = units.execute(lun300, &write, &[0xAB; 512], 0);
        assert_eq!(outcome.status, Status::Good);
        assert_eq!(units.disk(300).unwrap().backing().0[512], 0xAB);
        assert_eq!(units.disk(3).unwrap().backing().0[512], 0);
        assert!(units.disk_mut(0).is_some());
        assert!(units.remove(0).is_some());
    }
}
