//! The IPMI commands Ferric uses, as types, in both directions: a client encodes requests and
//! decodes responses, a BMC decodes requests and encodes responses, with the same code.
//!
//! Each request type names its network function and command (`NETFN`, `CMD`); `encode`
//! gives the request data (after the command byte) or the response data (after the
//! completion code), and `decode` reads it back, refusing short or invalid data.

pub mod app;
pub mod chassis;

pub use app::{
    cipher_suite_records, parse_cipher_suite_records, ChannelAuthCapabilities, ChannelCipherSuites,
    CloseSession, DeviceId, GetChannelAuthCapabilities, GetChannelCipherSuites, GetDeviceId,
    SetSessionPrivilege, CURRENT_CHANNEL,
};
pub use chassis::{
    BootDevice, BootFlags, BootOptionParameter, BootOptions, ChassisControl, ChassisStatus,
    GetChassisStatus, GetSystemBootOptions, LastPowerEvent, RestorePolicy, SetInProgress,
    SetSystemBootOptions,
};

use crate::DecodeError;

/// Fails unless `data` has at least `needed` bytes.
pub(crate) fn need(what: &'static str, data: &[u8], needed: usize) -> Result<(), DecodeError> {
    if data.len() < needed {
        Err(DecodeError::Truncated {
            what,
            needed,
            got: data.len(),
        })
    } else {
        Ok(())
    }
}

/// `data[i]`, or a truncation error naming `what`.
pub(crate) fn byte(what: &'static str, data: &[u8], i: usize) -> Result<u8, DecodeError> {
    data.get(i).copied().ok_or(DecodeError::Truncated {
        what,
        needed: i + 1,
        got: data.len(),
    })
}

pub(crate) fn bit(value: u8, n: u8) -> bool {
    value & (1 << n) != 0
}

pub(crate) fn flag(on: bool, n: u8) -> u8 {
    u8::from(on) << n
}
