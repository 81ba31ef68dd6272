//! Chassis commands (netFn 00h): Get Chassis Status (§28.2), Chassis Control (§28.3) and
//! Get/Set System Boot Options (§28.12, §28.13; parameters in table 28-14).
//!
//! `ipmitool chassis bootdev X` sets parameter 0 to "set in progress", acknowledges the boot
//! info (parameter 4), writes the boot flags (parameter 5), then "commit write" and "set
//! complete" on parameter 0; Ironic in UEFI mode writes parameter 5 alone
//! (`0x00 0x08 0x05 0xe0|0xa0 DEV 0x00 0x00 0x00`).

use super::{bit, byte, flag, need};
use crate::codes::{
    CMD_CHASSIS_CONTROL, CMD_GET_CHASSIS_STATUS, CMD_GET_SYSTEM_BOOT_OPTIONS,
    CMD_SET_SYSTEM_BOOT_OPTIONS, NETFN_CHASSIS,
};
use crate::DecodeError;

/// Get Chassis Status: no request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetChassisStatus;

impl GetChassisStatus {
    pub const NETFN: u8 = NETFN_CHASSIS;
    pub const CMD: u8 = CMD_GET_CHASSIS_STATUS;
}

/// The power restore policy (bits 6:5 of the current power state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    AlwaysOff,
    Previous,
    AlwaysOn,
    Unknown,
}

impl RestorePolicy {
    fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => Self::AlwaysOff,
            1 => Self::Previous,
            2 => Self::AlwaysOn,
            _ => Self::Unknown,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Self::AlwaysOff => 0,
            Self::Previous => 1,
            Self::AlwaysOn => 2,
            Self::Unknown => 3,
        }
    }
}

/// The "last power event" byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LastPowerEvent {
    pub ac_failed: bool,
    pub overload: bool,
    pub interlock: bool,
    pub fault: bool,
    /// The last power-on was requested by an IPMI command.
    pub on_by_ipmi: bool,
}

impl LastPowerEvent {
    fn from_byte(b: u8) -> Self {
        Self {
            ac_failed: bit(b, 0),
            overload: bit(b, 1),
            interlock: bit(b, 2),
            fault: bit(b, 3),
            on_by_ipmi: bit(b, 4),
        }
    }

    fn to_byte(self) -> u8 {
        flag(self.ac_failed, 0)
            | flag(self.overload, 1)
            | flag(self.interlock, 2)
            | flag(self.fault, 3)
            | flag(self.on_by_ipmi, 4)
    }
}

/// Get Chassis Status' response (table 28-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisStatus {
    pub power_on: bool,
    pub power_overload: bool,
    pub interlock: bool,
    pub power_fault: bool,
    pub power_control_fault: bool,
    pub restore_policy: RestorePolicy,
    pub last_power_event: LastPowerEvent,
    /// Miscellaneous chassis state (intrusion, front panel lockout, faults, identify).
    pub misc: u8,
    pub front_panel_buttons: Option<u8>,
}

impl ChassisStatus {
    /// A healthy chassis, powered `on` or off, restoring to off.
    pub fn with_power(on: bool) -> Self {
        Self {
            power_on: on,
            power_overload: false,
            interlock: false,
            power_fault: false,
            power_control_fault: false,
            restore_policy: RestorePolicy::AlwaysOff,
            last_power_event: LastPowerEvent::default(),
            misc: 0,
            front_panel_buttons: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let power = flag(self.power_on, 0)
            | flag(self.power_overload, 1)
            | flag(self.interlock, 2)
            | flag(self.power_fault, 3)
            | flag(self.power_control_fault, 4)
            | (self.restore_policy.bits() << 5);
        let mut out = vec![power, self.last_power_event.to_byte(), self.misc];
        out.extend(self.front_panel_buttons);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get Chassis Status response", data, 3)?;
        let b = |i| byte("Get Chassis Status response", data, i);
        let power = b(0)?;
        Ok(Self {
            power_on: bit(power, 0),
            power_overload: bit(power, 1),
            interlock: bit(power, 2),
            power_fault: bit(power, 3),
            power_control_fault: bit(power, 4),
            restore_policy: RestorePolicy::from_bits(power >> 5),
            last_power_event: LastPowerEvent::from_byte(b(1)?),
            misc: b(2)?,
            front_panel_buttons: data.get(3).copied(),
        })
    }
}

/// Chassis Control's request (table 28-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChassisControl {
    PowerDown,
    PowerUp,
    PowerCycle,
    HardReset,
    /// Pulse a diagnostic interrupt: an NMI.
    PulseDiagnosticInterrupt,
    /// Initiate a soft shutdown via ACPI by emulating a fatal over-temperature.
    SoftShutdown,
}

impl ChassisControl {
    pub const NETFN: u8 = NETFN_CHASSIS;
    pub const CMD: u8 = CMD_CHASSIS_CONTROL;

    pub fn code(self) -> u8 {
        match self {
            Self::PowerDown => 0,
            Self::PowerUp => 1,
            Self::PowerCycle => 2,
            Self::HardReset => 3,
            Self::PulseDiagnosticInterrupt => 4,
            Self::SoftShutdown => 5,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![self.code()]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let value = byte("Chassis Control request", data, 0)?;
        Ok(match value & 0x0f {
            0 => Self::PowerDown,
            1 => Self::PowerUp,
            2 => Self::PowerCycle,
            3 => Self::HardReset,
            4 => Self::PulseDiagnosticInterrupt,
            5 => Self::SoftShutdown,
            _ => {
                return Err(DecodeError::InvalidField {
                    what: "chassis control",
                    value,
                })
            }
        })
    }
}

/// The boot device selector (bits 5:2 of boot flags byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootDevice {
    NoOverride,
    Pxe,
    Disk,
    DiskSafeMode,
    Diagnostic,
    Cdrom,
    BiosSetup,
    RemoteFloppy,
    RemoteCdrom,
    RemoteMedia,
    RemoteDisk,
    Floppy,
    /// A reserved selector value, kept as received.
    Other(u8),
}

impl BootDevice {
    /// The 4-bit selector.
    pub fn selector(self) -> u8 {
        match self {
            Self::NoOverride => 0x0,
            Self::Pxe => 0x1,
            Self::Disk => 0x2,
            Self::DiskSafeMode => 0x3,
            Self::Diagnostic => 0x4,
            Self::Cdrom => 0x5,
            Self::BiosSetup => 0x6,
            Self::RemoteFloppy => 0x7,
            Self::RemoteCdrom => 0x8,
            Self::RemoteMedia => 0x9,
            Self::RemoteDisk => 0xb,
            Self::Floppy => 0xf,
            Self::Other(v) => v & 0x0f,
        }
    }

    pub fn from_selector(selector: u8) -> Self {
        match selector & 0x0f {
            0x0 => Self::NoOverride,
            0x1 => Self::Pxe,
            0x2 => Self::Disk,
            0x3 => Self::DiskSafeMode,
            0x4 => Self::Diagnostic,
            0x5 => Self::Cdrom,
            0x6 => Self::BiosSetup,
            0x7 => Self::RemoteFloppy,
            0x8 => Self::RemoteCdrom,
            0x9 => Self::RemoteMedia,
            0xb => Self::RemoteDisk,
            0xf => Self::Floppy,
            v => Self::Other(v),
        }
    }
}

/// Boot option parameter 5, the boot flags (table 28-14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootFlags {
    pub valid: bool,
    /// Apply to all future boots (else to the next boot only).
    pub persistent: bool,
    /// EFI boot (else PC-compatible "legacy" boot).
    pub efi: bool,
    pub device: BootDevice,
    pub cmos_clear: bool,
    pub lock_keyboard: bool,
    pub screen_blank: bool,
    pub lock_reset_button: bool,
    /// Bytes 3 to 5 (verbosity, console redirection, BIOS mux, device instance), raw.
    pub data3: u8,
    pub data4: u8,
    pub data5: u8,
}

impl BootFlags {
    pub const LEN: usize = 5;

    /// Valid flags booting `device`, everything else default.
    pub fn boot(device: BootDevice, persistent: bool, efi: bool) -> Self {
        Self {
            valid: true,
            persistent,
            efi,
            device,
            cmos_clear: false,
            lock_keyboard: false,
            screen_blank: false,
            lock_reset_button: false,
            data3: 0,
            data4: 0,
            data5: 0,
        }
    }

    /// Flags that are not valid: the BIOS boots as it is configured.
    pub fn none() -> Self {
        Self {
            valid: false,
            ..Self::boot(BootDevice::NoOverride, false, false)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![
            flag(self.valid, 7) | flag(self.persistent, 6) | flag(self.efi, 5),
            flag(self.cmos_clear, 7)
                | flag(self.lock_keyboard, 6)
                | (self.device.selector() << 2)
                | flag(self.screen_blank, 1)
                | flag(self.lock_reset_button, 0),
            self.data3,
            self.data4,
            self.data5,
        ]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("boot flags", data, Self::LEN)?;
        let b = |i| byte("boot flags", data, i);
        let (d1, d2) = (b(0)?, b(1)?);
        Ok(Self {
            valid: bit(d1, 7),
            persistent: bit(d1, 6),
            efi: bit(d1, 5),
            device: BootDevice::from_selector(d2 >> 2),
            cmos_clear: bit(d2, 7),
            lock_keyboard: bit(d2, 6),
            screen_blank: bit(d2, 1),
            lock_reset_button: bit(d2, 0),
            data3: b(2)?,
            data4: b(3)?,
            data5: b(4)?,
        })
    }
}

/// Boot option parameter 0, "set in progress".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetInProgress {
    Complete,
    InProgress,
    CommitWrite,
    Reserved,
}

impl SetInProgress {
    pub fn code(self) -> u8 {
        match self {
            Self::Complete => 0,
            Self::InProgress => 1,
            Self::CommitWrite => 2,
            Self::Reserved => 3,
        }
    }

    pub fn from_code(code: u8) -> Self {
        match code & 0x03 {
            0 => Self::Complete,
            1 => Self::InProgress,
            2 => Self::CommitWrite,
            _ => Self::Reserved,
        }
    }
}

const PARAM_SET_IN_PROGRESS: u8 = 0;
const PARAM_VALID_BIT_CLEARING: u8 = 3;
const PARAM_BOOT_INFO_ACK: u8 = 4;
const PARAM_BOOT_FLAGS: u8 = 5;

/// A system boot option parameter with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootOptionParameter {
    SetInProgress(SetInProgress),
    /// Parameter 3: which events leave the boot flags' valid bit set (08h: the 60 s
    /// timeout does not clear it, what Ironic sends).
    ValidBitClearing(u8),
    /// Parameter 4: write mask and boot initiator acknowledge data.
    BootInfoAcknowledge {
        write_mask: u8,
        data: u8,
    },
    BootFlags(BootFlags),
    Other {
        selector: u8,
        data: Vec<u8>,
    },
}

impl BootOptionParameter {
    pub fn selector(&self) -> u8 {
        match self {
            Self::SetInProgress(_) => PARAM_SET_IN_PROGRESS,
            Self::ValidBitClearing(_) => PARAM_VALID_BIT_CLEARING,
            Self::BootInfoAcknowledge { .. } => PARAM_BOOT_INFO_ACK,
            Self::BootFlags(_) => PARAM_BOOT_FLAGS,
            Self::Other { selector, .. } => *selector & 0x7f,
        }
    }

    pub fn encode_data(&self) -> Vec<u8> {
        match self {
            Self::SetInProgress(s) => vec![s.code()],
            Self::ValidBitClearing(v) => vec![*v],
            Self::BootInfoAcknowledge { write_mask, data } => vec![*write_mask, *data],
            Self::BootFlags(f) => f.encode(),
            Self::Other { data, .. } => data.clone(),
        }
    }

    pub fn decode(selector: u8, data: &[u8]) -> Result<Self, DecodeError> {
        Ok(match selector & 0x7f {
            PARAM_SET_IN_PROGRESS => {
                Self::SetInProgress(SetInProgress::from_code(byte("set in progress", data, 0)?))
            }
            PARAM_VALID_BIT_CLEARING => {
                Self::ValidBitClearing(byte("boot flag valid bit clearing", data, 0)?)
            }
            PARAM_BOOT_INFO_ACK => Self::BootInfoAcknowledge {
                write_mask: byte("boot info acknowledge", data, 0)?,
                data: byte("boot info acknowledge", data, 1)?,
            },
            PARAM_BOOT_FLAGS => Self::BootFlags(BootFlags::decode(data)?),
            selector => Self::Other {
                selector,
                data: data.to_vec(),
            },
        })
    }
}

/// Set System Boot Options' request: byte 1 is the selector (bit 7: mark invalid/locked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSystemBootOptions {
    pub mark_invalid: bool,
    pub parameter: BootOptionParameter,
}

impl SetSystemBootOptions {
    pub const NETFN: u8 = NETFN_CHASSIS;
    pub const CMD: u8 = CMD_SET_SYSTEM_BOOT_OPTIONS;

    pub fn new(parameter: BootOptionParameter) -> Self {
        Self {
            mark_invalid: false,
            parameter,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![flag(self.mark_invalid, 7) | self.parameter.selector()];
        out.extend_from_slice(&self.parameter.encode_data());
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let (first, rest) = data.split_first().ok_or(DecodeError::Truncated {
            what: "Set System Boot Options request",
            needed: 1,
            got: 0,
        })?;
        Ok(Self {
            mark_invalid: bit(*first, 7),
            parameter: BootOptionParameter::decode(*first, rest)?,
        })
    }
}

/// Get System Boot Options' request: parameter, set and block selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetSystemBootOptions {
    pub selector: u8,
    pub set: u8,
    pub block: u8,
}

impl GetSystemBootOptions {
    pub const NETFN: u8 = NETFN_CHASSIS;
    pub const CMD: u8 = CMD_GET_SYSTEM_BOOT_OPTIONS;

    pub fn parameter(selector: u8) -> Self {
        Self {
            selector: selector & 0x7f,
            set: 0,
            block: 0,
        }
    }

    pub fn boot_flags() -> Self {
        Self::parameter(PARAM_BOOT_FLAGS)
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![self.selector & 0x7f, self.set, self.block]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            selector: byte("Get System Boot Options request", data, 0)? & 0x7f,
            set: data.get(1).copied().unwrap_or(0),
            block: data.get(2).copied().unwrap_or(0),
        })
    }
}

/// Get System Boot Options' response: version 1, then selector (bit 7: invalid/locked)
/// and the parameter data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    pub version: u8,
    pub invalid: bool,
    pub parameter: BootOptionParameter,
}

impl BootOptions {
    pub const VERSION: u8 = 1;

    pub fn new(parameter: BootOptionParameter) -> Self {
        Self {
            version: Self::VERSION,
            invalid: false,
            parameter,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            self.version,
            flag(self.invalid, 7) | self.parameter.selector(),
        ];
        out.extend_from_slice(&self.parameter.encode_data());
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get System Boot Options response", data, 2)?;
        let version = byte("Get System Boot Options response", data, 0)?;
        let selector = byte("Get System Boot Options response", data, 1)?;
        Ok(Self {
            version: version & 0x0f,
            invalid: bit(selector, 7),
            parameter: BootOptionParameter::decode(selector, data.get(2..).unwrap_or_default())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipmitool_bootdev_requests_decode() {
        // `chassis bootdev pxe` and `... disk options=persistent,efiboot`, captured.
        let cases: [(&[u8], BootOptionParameter); 5] = [
            (
                &[0x00, 0x01],
                BootOptionParameter::SetInProgress(SetInProgress::InProgress),
            ),
            (
                &[0x04, 0x01, 0x01],
                BootOptionParameter::BootInfoAcknowledge {
                    write_mask: 1,
                    data: 1,
                },
            ),
            (
                &[0x05, 0x80, 0x04, 0, 0, 0],
                BootOptionParameter::BootFlags(BootFlags::boot(BootDevice::Pxe, false, false)),
            ),
            (
                &[0x05, 0xe0, 0x08, 0, 0, 0],
                BootOptionParameter::BootFlags(BootFlags::boot(BootDevice::Disk, true, true)),
            ),
            (
                &[0x00, 0x02],
                BootOptionParameter::SetInProgress(SetInProgress::CommitWrite),
            ),
        ];
        for (bytes, parameter) in cases {
            let rq = SetSystemBootOptions::decode(bytes).unwrap();
            assert_eq!(rq, SetSystemBootOptions::new(parameter));
            assert_eq!(rq.encode(), bytes);
        }
    }

    #[test]
    fn ironic_uefi_raw_bytes_are_what_we_encode() {
        // ipmitool.py: raw 0x00 0x08 0x05 0xe0 0x04 0x00 0x00 0x00 (persistent UEFI PXE).
        let rq = SetSystemBootOptions::new(BootOptionParameter::BootFlags(BootFlags::boot(
            BootDevice::Pxe,
            true,
            true,
        )));
        assert_eq!(rq.encode(), vec![0x05, 0xe0, 0x04, 0x00, 0x00, 0x00]);
        let once = BootFlags::boot(BootDevice::Cdrom, false, true).encode();
        assert_eq!(once, vec![0xa0, 0x14, 0, 0, 0]);
        let timeout = SetSystemBootOptions::new(BootOptionParameter::ValidBitClearing(0x08));
        assert_eq!(timeout.encode(), vec![0x03, 0x08]);
    }

    #[test]
    fn boot_options_response_round_trips() {
        // pyghmi's answer to `chassis bootparam get 5` after `bootdev disk`.
        let data = [0x01, 0x05, 0x80, 0x08, 0, 0, 0];
        let rs = BootOptions::decode(&data).unwrap();
        assert_eq!(
            rs.parameter,
            BootOptionParameter::BootFlags(BootFlags::boot(BootDevice::Disk, false, false))
        );
        assert_eq!(rs.encode(), data);
        assert!(BootOptions::decode(&data[..6]).is_err());
        for s in 0..16 {
            assert_eq!(BootDevice::from_selector(s).selector(), s);
        }
    }

    #[test]
    fn chassis_status_and_control_round_trip() {
        let status = ChassisStatus {
            restore_policy: RestorePolicy::Previous,
            last_power_event: LastPowerEvent {
                on_by_ipmi: true,
                ..LastPowerEvent::default()
            },
            ..ChassisStatus::with_power(true)
        };
        let bytes = status.encode();
        assert_eq!(bytes, vec![0x21, 0x10, 0x00]);
        assert_eq!(ChassisStatus::decode(&bytes).unwrap(), status);
        assert!(ChassisStatus::decode(&bytes[..2]).is_err());
        for c in 0..6 {
            assert_eq!(ChassisControl::decode(&[c]).unwrap().code(), c);
        }
        assert!(ChassisControl::decode(&[6]).is_err());
        assert!(ChassisControl::decode(&[]).is_err());
    }
}
