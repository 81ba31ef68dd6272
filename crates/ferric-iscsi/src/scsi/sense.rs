//! Sense data (SPC-5 4.4): what a CHECK CONDITION says went wrong, in fixed format
//! (response code 70h) or descriptor format (72h, when the control mode page's
//! D_SENSE bit is set).

/// Sense keys (SPC-5 table 49) used by the disk.
pub mod key {
    /// No specific sense key information (REQUEST SENSE with nothing pending).
    pub const NO_SENSE: u8 = 0x0;
    /// The medium could not be read or written.
    pub const MEDIUM_ERROR: u8 = 0x3;
    /// The device failed in a way that is not about the medium.
    pub const HARDWARE_ERROR: u8 = 0x4;
    /// Something in the CDB or its parameter list is wrong.
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    /// The medium is write-protected.
    pub const DATA_PROTECT: u8 = 0x7;
    /// The data compared (VERIFY, COMPARE AND WRITE) did not match.
    pub const MISCOMPARE: u8 = 0xE;
}

/// Where in the CDB or parameter list the offending field is (SPC-5 4.4.2.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldPointer {
    /// True for a CDB field, false for a parameter-list (data-out) field.
    pub in_cdb: bool,
    /// Byte offset of the field.
    pub byte: u16,
    /// The field's most significant bit inside that byte, when known.
    pub bit: Option<u8>,
}

/// One sense condition, encodable in either format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    /// Sense key (see [`key`]).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// The INFORMATION field (an LBA or a byte offset), when it is meaningful.
    pub information: Option<u64>,
    /// The sense-key specific field pointer, for ILLEGAL REQUEST.
    pub field: Option<FieldPointer>,
}

/// Length of fixed-format sense data as produced here (additional length 10).
pub const FIXED_LEN: usize = 18;

impl Sense {
    /// A sense condition without INFORMATION or field pointer.
    pub fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Sense {
            key,
            asc,
            ascq,
            information: None,
            field: None,
        }
    }

    /// ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE (20h/00h), pointing at byte 0.
    pub fn invalid_opcode() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x20, 0x00).with_field(true, 0, Some(7))
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN CDB (24h/00h) at `byte` (and `bit`).
    pub fn invalid_field_in_cdb(byte: usize, bit: Option<u8>) -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x24, 0x00).with_field(true, byte, bit)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST (26h/00h) at `byte`.
    pub fn invalid_field_in_parameters(byte: usize, bit: Option<u8>) -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x26, 0x00).with_field(false, byte, bit)
    }

    /// ILLEGAL REQUEST, PARAMETER LIST LENGTH ERROR (1Ah/00h).
    pub fn parameter_list_length_error() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x1A, 0x00)
    }

    /// ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE (21h/00h).
    pub fn lba_out_of_range() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x21, 0x00)
    }

    /// ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (25h/00h).
    pub fn lun_not_supported() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x25, 0x00)
    }

    /// ILLEGAL REQUEST, INVALID FIELD IN INFORMATION UNIT (0Eh/03h): the data-out
    /// ended inside a logical block.
    pub fn invalid_field_in_information_unit() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x0E, 0x03)
    }

    /// ILLEGAL REQUEST, SAVING PARAMETERS NOT SUPPORTED (39h/00h).
    pub fn saving_parameters_not_supported() -> Self {
        Self::new(key::ILLEGAL_REQUEST, 0x39, 0x00)
    }

    /// DATA PROTECT, WRITE PROTECTED (27h/00h): the logical unit is read-only.
    pub fn write_protected() -> Self {
        Self::new(key::DATA_PROTECT, 0x27, 0x00)
    }

    /// DATA PROTECT, SOFTWARE WRITE PROTECTED (27h/02h): the SWP mode bit is set.
    pub fn software_write_protected() -> Self {
        Self::new(key::DATA_PROTECT, 0x27, 0x02)
    }

    /// DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (27h/07h): the store is full.
    pub fn space_allocation_failed() -> Self {
        Self::new(key::DATA_PROTECT, 0x27, 0x07)
    }

    /// MISCOMPARE, MISCOMPARE DURING VERIFY OPERATION (1Dh/00h); INFORMATION is the
    /// offset in the data-out buffer of the first byte that differed.
    pub fn miscompare(offset: u64) -> Self {
        Self::new(key::MISCOMPARE, 0x1D, 0x00).with_information(offset)
    }

    /// MEDIUM ERROR, UNRECOVERED READ ERROR (11h/00h) at `lba`.
    pub fn unrecovered_read_error(lba: u64) -> Self {
        Self::new(key::MEDIUM_ERROR, 0x11, 0x00).with_information(lba)
    }

    /// MEDIUM ERROR, WRITE ERROR (0Ch/00h) at `lba`.
    pub fn write_error(lba: u64) -> Self {
        Self::new(key::MEDIUM_ERROR, 0x0C, 0x00).with_information(lba)
    }

    /// HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h).
    pub fn internal_target_failure() -> Self {
        Self::new(key::HARDWARE_ERROR, 0x44, 0x00)
    }

    /// NO SENSE, NO ADDITIONAL SENSE INFORMATION: what REQUEST SENSE returns.
    pub fn no_sense() -> Self {
        Self::new(key::NO_SENSE, 0x00, 0x00)
    }

    /// The same condition with INFORMATION set.
    pub fn with_information(mut self, information: u64) -> Self {
        self.information = Some(information);
        self
    }

    fn with_field(mut self, in_cdb: bool, byte: usize, bit: Option<u8>) -> Self {
        self.field = Some(FieldPointer {
            in_cdb,
            byte: u16::try_from(byte).unwrap_or(u16::MAX),
            bit: bit.map(|b| b & 7),
        });
        self
    }

    /// The three sense-key specific bytes (SKSV set) for a field pointer.
    fn sense_key_specific(&self) -> Option<[u8; 3]> {
        let field = self.field?;
        let mut first = 0x80;
        if field.in_cdb {
            first |= 0x40;
        }
        if let Some(bit) = field.bit {
            first |= 0x08 | bit;
        }
        let [hi, lo] = field.byte.to_be_bytes();
        Some([first, hi, lo])
    }

    /// Fixed-format sense data (SPC-5 4.4.3), 18 bytes. INFORMATION is only valid
    /// (VALID bit) when it fits the field's four bytes.
    pub fn to_fixed(&self) -> Vec<u8> {
        let mut sense = vec![0u8; FIXED_LEN];
        sense[0] = 0x70;
        sense[2] = self.key & 0x0F;
        if let Some(info) = self.information.and_then(|i| u32::try_from(i).ok()) {
            sense[0] |= 0x80;
            sense[3..7].copy_from_slice(&info.to_be_bytes());
        }
        sense[7] = (FIXED_LEN - 8) as u8;
        sense[12] = self.asc;
        sense[13] = self.ascq;
        if let Some(sks) = self.sense_key_specific() {
            sense[15..18].copy_from_slice(&sks);
        }
        sense
    }

    /// Descriptor-format sense data (SPC-5 4.4.2) with an information descriptor and a
    /// sense-key specific descriptor when those apply.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut sense = vec![0x72, self.key & 0x0F, self.asc, self.ascq, 0, 0, 0, 0];
        if let Some(info) = self.information {
            sense.extend_from_slice(&[0x00, 0x0A, 0x80, 0x00]);
            sense.extend_from_slice(&info.to_be_bytes());
        }
        if let Some(sks) = self.sense_key_specific() {
            sense.extend_from_slice(&[0x02, 0x06, 0x00, 0x00]);
            sense.extend_from_slice(&sks);
            sense.push(0);
        }
        sense[7] = (sense.len() - 8) as u8;
        sense
    }

    /// Encoded in descriptor format when `descriptor`, else fixed format.
    pub fn encode(&self, descriptor: bool) -> Vec<u8> {
        if descriptor {
            self.to_descriptor()
        } else {
            self.to_fixed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_lba_out_of_range_bytes() {
        let bytes = Sense::lba_out_of_range().to_fixed();
        assert_eq!(
            bytes,
            [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x21, 0x00, 0, 0, 0, 0]
        );
    }

    #[test]
    fn fixed_invalid_field_has_field_pointer() {
        let bytes = Sense::invalid_field_in_cdb(2, Some(5)).to_fixed();
        // SKSV | C/D | BPV | bit 5, field pointer 0x0002.
        assert_eq!(&bytes[12..18], &[0x24, 0x00, 0, 0xCD, 0x00, 0x02]);
        let bytes = Sense::invalid_field_in_parameters(300, None).to_fixed();
        assert_eq!(&bytes[12..18], &[0x26, 0x00, 0, 0x80, 0x01, 0x2C]);
    }

    #[test]
    fn fixed_miscompare_carries_information() {
        let bytes = Sense::miscompare(0x1234).to_fixed();
        assert_eq!(bytes[0], 0xF0);
        assert_eq!(bytes[2], 0x0E);
        assert_eq!(&bytes[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!(&bytes[12..14], &[0x1D, 0x00]);
    }

    #[test]
    fn fixed_information_too_big_is_not_valid() {
        let bytes = Sense::unrecovered_read_error(1 << 40).to_fixed();
        assert_eq!(bytes[0], 0x70);
        assert_eq!(&bytes[3..7], &[0, 0, 0, 0]);
    }

    #[test]
    fn descriptor_format_bytes() {
        assert_eq!(
            Sense::lba_out_of_range().to_descriptor(),
            [0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0]
        );
        assert_eq!(
            Sense::miscompare(7).to_descriptor(),
            [0x72, 0x0E, 0x1D, 0x00, 0, 0, 0, 12, 0x00, 0x0A, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 7]
        );
        assert_eq!(
            Sense::invalid_field_in_cdb(1, None).to_descriptor(),
            [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0xC0, 0x00, 0x01, 0]
        );
    }
}
