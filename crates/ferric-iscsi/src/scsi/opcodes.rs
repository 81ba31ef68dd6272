//! The commands the disk implements, each with its CDB usage map (SPC-5 6.35.3):
//! one table drives REPORT SUPPORTED OPERATION CODES and the reserved-bit check every
//! CDB goes through (a bit the map does not mark is refused with INVALID FIELD IN
//! CDB, which is also how RDPROTECT/WRPROTECT/VRPROTECT, ANCHOR, NACA and LINK are
//! refused: there is no protection information, anchoring or linked command).

use super::cdb::Cdb;
use super::sense::Sense;

/// One supported command (a SERVICE ACTION IN(16) or MAINTENANCE IN service action
/// has its own entry).
#[derive(Debug)]
pub(crate) struct CommandSpec {
    pub(crate) opcode: u8,
    pub(crate) service_action: Option<u8>,
    /// The CDB usage map; its length is the CDB length.
    pub(crate) usage: &'static [u8],
}

/// Opcodes whose byte 1 holds a service action.
pub(crate) const SERVICE_ACTION_IN_16: u8 = 0x9E;
pub(crate) const MAINTENANCE_IN: u8 = 0xA3;

macro_rules! spec {
    ($op:expr, $usage:expr) => {
        CommandSpec {
            opcode: $op,
            service_action: None,
            usage: &$usage,
        }
    };
    ($op:expr, sa $sa:expr, $usage:expr) => {
        CommandSpec {
            opcode: $op,
            service_action: Some($sa),
            usage: &$usage,
        }
    };
}

/// A 10-byte block command: flags in byte 1, LBA 2-5, group 6, length 7-8.
const fn ten(op: u8, flags: u8) -> [u8; 10] {
    [op, flags, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0xFF, 0xFF, 0x00]
}

/// A 12-byte block command: flags in byte 1, LBA 2-5, length 6-9, group 10.
const fn twelve(op: u8, flags: u8) -> [u8; 12] {
    [
        op, flags, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0x00,
    ]
}

/// A 16-byte block command: flags in byte 1, LBA 2-9, length 10-13, group 14.
const fn sixteen(op: u8, flags: u8) -> [u8; 16] {
    [
        op, flags, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F,
        0x00,
    ]
}

// Byte-1 flag sets: DPO 0x10, FUA 0x08, RARC 0x04, BYTCHK 0x06, obsolete FUA_NV 0x02
// (libiscsi's Write*.Flags tests set it and expect success).
const READ_FLAGS: u8 = 0x1E;
const WRITE_FLAGS: u8 = 0x1A;
const VERIFY_FLAGS: u8 = 0x16;

/// Every command the disk implements, by opcode then service action.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    spec!(0x00, [0x00, 0, 0, 0, 0, 0x00]),       // TEST UNIT READY
    spec!(0x03, [0x03, 0x01, 0, 0, 0xFF, 0x00]), // REQUEST SENSE
    spec!(0x04, [0x04, 0x18, 0, 0, 0, 0x00]),    // FORMAT UNIT
    spec!(0x08, [0x08, 0x1F, 0xFF, 0xFF, 0xFF, 0x00]), // READ(6)
    spec!(0x0A, [0x0A, 0x1F, 0xFF, 0xFF, 0xFF, 0x00]), // WRITE(6)
    spec!(0x12, [0x12, 0x01, 0xFF, 0xFF, 0xFF, 0x00]), // INQUIRY
    spec!(0x15, [0x15, 0x11, 0, 0, 0xFF, 0x00]), // MODE SELECT(6)
    spec!(0x1A, [0x1A, 0x08, 0xFF, 0xFF, 0xFF, 0x00]), // MODE SENSE(6)
    spec!(0x1B, [0x1B, 0x01, 0, 0x0F, 0xF7, 0x00]), // START STOP UNIT
    spec!(0x1D, [0x1D, 0xF7, 0, 0xFF, 0xFF, 0x00]), // SEND DIAGNOSTIC
    spec!(0x1E, [0x1E, 0, 0, 0, 0x03, 0x00]),    // PREVENT ALLOW MEDIUM REMOVAL
    spec!(0x25, [0x25, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0x01, 0x00]), // READ CAPACITY(10)
    spec!(0x28, ten(0x28, READ_FLAGS)),          // READ(10)
    spec!(0x2A, ten(0x2A, WRITE_FLAGS)),         // WRITE(10)
    spec!(0x2E, ten(0x2E, VERIFY_FLAGS)),        // WRITE AND VERIFY(10)
    spec!(0x2F, ten(0x2F, VERIFY_FLAGS)),        // VERIFY(10)
    spec!(0x34, ten(0x34, 0x02)),                // PRE-FETCH(10)
    spec!(0x35, ten(0x35, 0x06)),                // SYNCHRONIZE CACHE(10)
    spec!(0x37, [0x37, 0, 0x1F, 0, 0, 0, 0, 0xFF, 0xFF, 0x00]), // READ DEFECT DATA(10)
    spec!(0x41, ten(0x41, 0x08)),                // WRITE SAME(10)
    spec!(0x42, [0x42, 0, 0, 0, 0, 0, 0x3F, 0xFF, 0xFF, 0x00]), // UNMAP
    spec!(0x55, [0x55, 0x11, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0x00]), // MODE SELECT(10)
    spec!(0x5A, [0x5A, 0x18, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0x00]), // MODE SENSE(10)
    spec!(0x88, sixteen(0x88, READ_FLAGS)),      // READ(16)
    spec!(
        0x89, // COMPARE AND WRITE
        [
            0x89,
            WRITE_FLAGS,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0,
            0,
            0,
            0xFF,
            0x3F,
            0x00
        ]
    ),
    spec!(0x8A, sixteen(0x8A, WRITE_FLAGS)),  // WRITE(16)
    spec!(0x8B, sixteen(0x8B, WRITE_FLAGS)),  // ORWRITE(16)
    spec!(0x8E, sixteen(0x8E, VERIFY_FLAGS)), // WRITE AND VERIFY(16)
    spec!(0x8F, sixteen(0x8F, VERIFY_FLAGS)), // VERIFY(16)
    spec!(0x90, sixteen(0x90, 0x02)),         // PRE-FETCH(16)
    spec!(0x91, sixteen(0x91, 0x06)),         // SYNCHRONIZE CACHE(16)
    spec!(0x93, sixteen(0x93, 0x09)),         // WRITE SAME(16)
    spec!(
        SERVICE_ACTION_IN_16, sa 0x10, // READ CAPACITY(16)
        [0x9E, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00]
    ),
    spec!(
        SERVICE_ACTION_IN_16, sa 0x12, // GET LBA STATUS
        [0x9E, 0x12, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07, 0x00]
    ),
    spec!(
        0xA0,
        [0xA0, 0, 0xFF, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x00]
    ), // REPORT LUNS
    spec!(
        MAINTENANCE_IN, sa 0x0C, // REPORT SUPPORTED OPERATION CODES
        [0xA3, 0x0C, 0x87, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x00]
    ),
    spec!(0xA8, twelve(0xA8, READ_FLAGS)),   // READ(12)
    spec!(0xAA, twelve(0xAA, WRITE_FLAGS)),  // WRITE(12)
    spec!(0xAE, twelve(0xAE, VERIFY_FLAGS)), // WRITE AND VERIFY(12)
    spec!(0xAF, twelve(0xAF, VERIFY_FLAGS)), // VERIFY(12)
    spec!(
        0xB7,
        [0xB7, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0x00]
    ), // READ DEFECT DATA(12)
];

/// Whether `opcode`'s byte 1 is a service action field.
pub(crate) fn has_service_actions(opcode: u8) -> bool {
    matches!(opcode, SERVICE_ACTION_IN_16 | MAINTENANCE_IN)
}

/// The entry for an opcode (and service action, for opcodes that have them).
pub(crate) fn lookup(opcode: u8, service_action: u8) -> Option<&'static CommandSpec> {
    let wanted = has_service_actions(opcode).then_some(service_action);
    COMMANDS
        .iter()
        .find(|c| c.opcode == opcode && c.service_action == wanted)
}

/// The entry for this CDB, or the sense that refuses it: an unknown opcode, an
/// unknown service action (INVALID FIELD IN CDB at byte 1, which libiscsi reads as
/// "not implemented"), a CDB shorter than its command, or a reserved bit set.
pub(crate) fn validate(cdb: Cdb<'_>) -> Result<&'static CommandSpec, Sense> {
    if cdb.bytes().is_empty() {
        return Err(Sense::invalid_opcode());
    }
    let opcode = cdb.opcode();
    let spec = match lookup(opcode, cdb.service_action()) {
        Some(spec) => spec,
        None if has_service_actions(opcode) => return Err(Sense::invalid_field_in_cdb(1, Some(4))),
        None => return Err(Sense::invalid_opcode()),
    };
    if cdb.bytes().len() < spec.usage.len() {
        return Err(Sense::invalid_field_in_cdb(cdb.bytes().len(), None));
    }
    check_reserved(cdb, spec.usage)?;
    Ok(spec)
}

/// Refuse any bit set in the CDB that the usage map does not mark.
fn check_reserved(cdb: Cdb<'_>, usage: &[u8]) -> Result<(), Sense> {
    for (at, &mask) in usage.iter().enumerate() {
        let stray = cdb.byte(at) & !mask;
        if stray != 0 {
            let bit = 7 - stray.leading_zeros() as u8;
            return Err(Sense::invalid_field_in_cdb(at, Some(bit)));
        }
    }
    Ok(())
}

/// Length of the command timeouts descriptor (SPC-5 6.35.4) after its length field.
const TIMEOUTS_LEN: u16 = 0x0A;

fn timeouts_descriptor() -> [u8; 12] {
    let [hi, lo] = TIMEOUTS_LEN.to_be_bytes();
    // Nominal and recommended timeouts of zero: not specified.
    [hi, lo, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// REPORT SUPPORTED OPERATION CODES parameter data for this CDB (already validated).
pub(crate) fn report_supported_opcodes(cdb: Cdb<'_>) -> Result<Vec<u8>, Sense> {
    let rctd = cdb.bit(2, 0x80);
    let requested_opcode = cdb.byte(3);
    let requested_sa = cdb.be16(4);
    match cdb.byte(2) & 0x07 {
        0 => Ok(all_commands(rctd)),
        1 => {
            if has_service_actions(requested_opcode) {
                return Err(Sense::invalid_field_in_cdb(3, None));
            }
            Ok(one_command(lookup(requested_opcode, 0), rctd))
        }
        2 => {
            if !has_service_actions(requested_opcode) {
                return Err(Sense::invalid_field_in_cdb(3, None));
            }
            Ok(one_command(
                service_action_entry(requested_opcode, requested_sa),
                rctd,
            ))
        }
        3 => {
            let entry = if has_service_actions(requested_opcode) {
                service_action_entry(requested_opcode, requested_sa)
            } else if requested_sa == 0 {
                lookup(requested_opcode, 0)
            } else {
                None
            };
            Ok(one_command(entry, rctd))
        }
        _ => Err(Sense::invalid_field_in_cdb(2, Some(2))),
    }
}

fn service_action_entry(opcode: u8, sa: u16) -> Option<&'static CommandSpec> {
    u8::try_from(sa)
        .ok()
        .filter(|&sa| sa <= 0x1F)
        .and_then(|sa| lookup(opcode, sa))
}

fn all_commands(rctd: bool) -> Vec<u8> {
    let mut data = vec![0u8; 4];
    for command in COMMANDS {
        let sa = command.service_action.unwrap_or(0);
        let mut flags = 0u8;
        if command.service_action.is_some() {
            flags |= 0x01; // SERVACTV
        }
        if rctd {
            flags |= 0x02; // CTDP
        }
        let [len_hi, len_lo] = (command.usage.len() as u16).to_be_bytes();
        data.extend_from_slice(&[command.opcode, 0, 0, sa, 0, flags, len_hi, len_lo]);
        if rctd {
            data.extend_from_slice(&timeouts_descriptor());
        }
    }
    let length = u32::try_from(data.len() - 4).unwrap_or(u32::MAX);
    data[..4].copy_from_slice(&length.to_be_bytes());
    data
}

fn one_command(entry: Option<&'static CommandSpec>, rctd: bool) -> Vec<u8> {
    let Some(command) = entry else {
        // SUPPORT 001b: not supported; no CDB usage data.
        return vec![0, 0x01, 0, 0];
    };
    let mut data = vec![0, 0x03, 0, 0]; // SUPPORT 011b: supported as the standard says
    if rctd {
        data[1] |= 0x80; // CTDP
    }
    let [len_hi, len_lo] = (command.usage.len() as u16).to_be_bytes();
    data[2] = len_hi;
    data[3] = len_lo;
    data.extend_from_slice(command.usage);
    if rctd {
        data.extend_from_slice(&timeouts_descriptor());
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, command) in COMMANDS.iter().enumerate() {
            assert_eq!(command.usage[0], command.opcode, "entry {i}");
            assert_eq!(
                command.usage.len(),
                match command.opcode >> 5 {
                    0 => 6,
                    1 | 2 => 10,
                    4 => 16,
                    5 => 12,
                    _ => 0,
                },
                "length of {:#04x}",
                command.opcode
            );
            if let Some(sa) = command.service_action {
                assert_eq!(command.usage[1], sa);
            }
            // Sorted by opcode then service action, no duplicates.
            if let Some(next) = COMMANDS.get(i + 1) {
                let key = (command.opcode, command.service_action);
                assert!(key < (next.opcode, next.service_action));
            }
        }
    }

    #[test]
    fn validate_refuses_reserved_bits_and_unknown_commands() {
        assert_eq!(
            validate(Cdb::new(&[])).unwrap_err(),
            Sense::invalid_opcode()
        );
        assert_eq!(
            validate(Cdb::new(&[0x7F, 0, 0, 0, 0, 0])).unwrap_err(),
            Sense::invalid_opcode()
        );
        // RDPROTECT = 1 in READ(10).
        let read10 = [0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0];
        assert_eq!(
            validate(Cdb::new(&read10)).unwrap_err(),
            Sense::invalid_field_in_cdb(1, Some(5))
        );
        // NACA in the control byte of TEST UNIT READY.
        assert_eq!(
            validate(Cdb::new(&[0, 0, 0, 0, 0, 0x04])).unwrap_err(),
            Sense::invalid_field_in_cdb(5, Some(2))
        );
        // Unknown SERVICE ACTION IN(16) service action.
        let mut sai = [0u8; 16];
        sai[0] = 0x9E;
        sai[1] = 0x11;
        assert_eq!(
            validate(Cdb::new(&sai)).unwrap_err(),
            Sense::invalid_field_in_cdb(1, Some(4))
        );
        // Too short for READ(10).
        assert_eq!(
            validate(Cdb::new(&[0x28, 0, 0])).unwrap_err(),
            Sense::invalid_field_in_cdb(3, None)
        );
        // A 16-byte iSCSI CDB field holding a 6-byte command is fine.
        assert!(validate(Cdb::new(&[0u8; 16])).is_ok());
    }

    #[test]
    fn report_one_command_read10() {
        let cdb = [0xA3, 0x0C, 0x01, 0x28, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(
            data,
            [0, 0x03, 0, 10, 0x28, 0x1E, 0xFF, 0xFF, 0xFF, 0xFF, 0x3F, 0xFF, 0xFF, 0x00]
        );
    }

    #[test]
    fn report_one_command_with_timeouts_and_unsupported() {
        let cdb = [0xA3, 0x0C, 0x81, 0x00, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(
            data,
            [0, 0x83, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let cdb = [0xA3, 0x0C, 0x01, 0x5E, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(data, [0, 0x01, 0, 0]);
    }

    #[test]
    fn report_service_action_rules() {
        // Option 1 on an opcode with service actions, option 2 on one without.
        let cdb = [0xA3, 0x0C, 0x01, 0x9E, 0, 0x10, 0, 0, 0xFF, 0xFF, 0, 0];
        assert_eq!(
            report_supported_opcodes(Cdb::new(&cdb)).unwrap_err(),
            Sense::invalid_field_in_cdb(3, None)
        );
        let cdb = [0xA3, 0x0C, 0x02, 0x28, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        assert!(report_supported_opcodes(Cdb::new(&cdb)).is_err());
        let cdb = [0xA3, 0x0C, 0x02, 0x9E, 0, 0x10, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(&data[..6], &[0, 0x03, 0, 16, 0x9E, 0x10]);
        let cdb = [0xA3, 0x0C, 0x03, 0x28, 0, 1, 0, 0, 0xFF, 0xFF, 0, 0];
        assert_eq!(
            report_supported_opcodes(Cdb::new(&cdb)).unwrap(),
            [0, 1, 0, 0]
        );
        let cdb = [0xA3, 0x0C, 0x04, 0x28, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        assert!(report_supported_opcodes(Cdb::new(&cdb)).is_err());
    }

    #[test]
    fn report_all_commands_layout() {
        let cdb = [0xA3, 0x0C, 0x00, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(data.len(), 4 + 8 * COMMANDS.len());
        assert_eq!(
            u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize,
            8 * COMMANDS.len()
        );
        assert_eq!(&data[4..12], &[0x00, 0, 0, 0, 0, 0, 0, 6]);
        let rc16 = COMMANDS
            .iter()
            .position(|c| c.service_action == Some(0x10))
            .unwrap();
        let at = 4 + 8 * rc16;
        assert_eq!(&data[at..at + 8], &[0x9E, 0, 0, 0x10, 0, 0x01, 0, 16]);
        let cdb = [0xA3, 0x0C, 0x80, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0];
        let data = report_supported_opcodes(Cdb::new(&cdb)).unwrap();
        assert_eq!(data.len(), 4 + 20 * COMMANDS.len());
        assert_eq!(
            &data[4..24],
            &[0, 0, 0, 0, 0, 0x02, 0, 6, 0, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }
}
