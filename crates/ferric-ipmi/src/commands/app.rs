//! Application commands (netFn 06h): Get Device ID (§20.1), Get Channel Authentication
//! Capabilities (§22.13), Set Session Privilege Level (§22.18), Close Session (§22.19) and
//! Get Channel Cipher Suites (§22.15).

use super::{bit, byte, flag, need};
use crate::codes::{
    CMD_CLOSE_SESSION, CMD_GET_CHANNEL_AUTH_CAPABILITIES, CMD_GET_CHANNEL_CIPHER_SUITES,
    CMD_GET_DEVICE_ID, CMD_SET_SESSION_PRIVILEGE, NETFN_APP,
};
use crate::{CipherSuite, DecodeError, Privilege};

/// Channel number meaning "the channel this request came in on".
pub const CURRENT_CHANNEL: u8 = 0x0e;

/// Get Device ID: no request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetDeviceId;

impl GetDeviceId {
    pub const NETFN: u8 = NETFN_APP;
    pub const CMD: u8 = CMD_GET_DEVICE_ID;
}

/// Get Device ID's response (table 20-2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceId {
    pub device_id: u8,
    /// Low nibble of byte 2.
    pub device_revision: u8,
    pub provides_sdrs: bool,
    /// False while a firmware update or self-initialisation is in progress.
    pub device_available: bool,
    /// Binary, 0..=127.
    pub firmware_major: u8,
    /// BCD as on the wire: 0x00 for ".00", 0x15 for ".15".
    pub firmware_minor: u8,
    /// BCD, low nibble major: 0x02 is IPMI 2.0, 0x51 is 1.5.
    pub ipmi_version: u8,
    pub additional_support: u8,
    /// 20-bit IANA number.
    pub manufacturer_id: u32,
    pub product_id: u16,
    pub aux_firmware: Option<[u8; 4]>,
}

impl DeviceId {
    const MIN_LEN: usize = 11;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            self.device_id,
            flag(self.provides_sdrs, 7) | (self.device_revision & 0x0f),
            flag(!self.device_available, 7) | (self.firmware_major & 0x7f),
            self.firmware_minor,
            self.ipmi_version,
            self.additional_support,
        ];
        out.extend_from_slice(&self.manufacturer_id.to_le_bytes()[..3]);
        out.extend_from_slice(&self.product_id.to_le_bytes());
        if let Some(aux) = self.aux_firmware {
            out.extend_from_slice(&aux);
        }
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get Device ID response", data, Self::MIN_LEN)?;
        let b = |i| byte("Get Device ID response", data, i);
        let aux_firmware = data.get(11..15).and_then(|s| <[u8; 4]>::try_from(s).ok());
        Ok(Self {
            device_id: b(0)?,
            device_revision: b(1)? & 0x0f,
            provides_sdrs: bit(b(1)?, 7),
            device_available: !bit(b(2)?, 7),
            firmware_major: b(2)? & 0x7f,
            firmware_minor: b(3)?,
            ipmi_version: b(4)?,
            additional_support: b(5)?,
            manufacturer_id: u32::from_le_bytes([b(6)?, b(7)?, b(8)? & 0x0f, 0]),
            product_id: u16::from_le_bytes([b(9)?, b(10)?]),
            aux_firmware,
        })
    }
}

/// Get Channel Authentication Capabilities' request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetChannelAuthCapabilities {
    pub channel: u8,
    /// Bit 7 of byte 1: ask for the IPMI v2.0 extended data.
    pub extended: bool,
    /// Requested maximum privilege (low nibble).
    pub privilege: u8,
}

impl GetChannelAuthCapabilities {
    pub const NETFN: u8 = NETFN_APP;
    pub const CMD: u8 = CMD_GET_CHANNEL_AUTH_CAPABILITIES;

    /// What a v2.0 remote console sends: this channel, extended data, at `privilege`.
    pub fn v2(privilege: Privilege) -> Self {
        Self {
            channel: CURRENT_CHANNEL,
            extended: true,
            privilege: privilege.as_u8(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        vec![
            flag(self.extended, 7) | (self.channel & 0x0f),
            self.privilege & 0x0f,
        ]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get Channel Authentication Capabilities request", data, 2)?;
        let b = |i| byte("Get Channel Authentication Capabilities request", data, i);
        Ok(Self {
            channel: b(0)? & 0x0f,
            extended: bit(b(0)?, 7),
            privilege: b(1)? & 0x0f,
        })
    }
}

/// Get Channel Authentication Capabilities' response (table 22-15), bytes as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelAuthCapabilities {
    pub channel: u8,
    /// Bit 7: IPMI v2.0 extended capabilities; bits 5..0: v1.5 auth types.
    pub auth_type_support: u8,
    /// Bit 5 Kg set, 4 per-message auth off, 3 user-level auth off, 2 non-null user names,
    /// 1 null user names, 0 anonymous login.
    pub auth_status: u8,
    /// Bit 1: the channel takes IPMI v2.0 connections; bit 0: v1.5.
    pub extended_capabilities: u8,
    pub oem_id: [u8; 3],
    pub oem_aux: u8,
}

impl ChannelAuthCapabilities {
    /// What an RMCP+-only BMC with named users answers (as pyghmi's BMC does).
    pub fn rmcp_plus_only(channel: u8) -> Self {
        Self {
            channel,
            auth_type_support: 0x80,
            auth_status: 0x04,
            extended_capabilities: 0x02,
            oem_id: [0; 3],
            oem_aux: 0,
        }
    }

    pub fn supports_ipmi_v2(&self) -> bool {
        bit(self.auth_type_support, 7) && bit(self.extended_capabilities, 1)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![
            self.channel,
            self.auth_type_support,
            self.auth_status,
            self.extended_capabilities,
        ];
        out.extend_from_slice(&self.oem_id);
        out.push(self.oem_aux);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get Channel Authentication Capabilities response", data, 8)?;
        let b = |i| byte("Get Channel Authentication Capabilities response", data, i);
        Ok(Self {
            channel: b(0)?,
            auth_type_support: b(1)?,
            auth_status: b(2)?,
            extended_capabilities: b(3)?,
            oem_id: [b(4)?, b(5)?, b(6)?],
            oem_aux: b(7)?,
        })
    }
}

/// Set Session Privilege Level: request and response are one byte, the level (0 in a
/// request: "no change, tell me the present level").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetSessionPrivilege {
    pub privilege: u8,
}

impl SetSessionPrivilege {
    pub const NETFN: u8 = NETFN_APP;
    pub const CMD: u8 = CMD_SET_SESSION_PRIVILEGE;

    pub fn encode(&self) -> Vec<u8> {
        vec![self.privilege & 0x0f]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self {
            privilege: byte("Set Session Privilege Level data", data, 0)? & 0x0f,
        })
    }
}

/// Close Session's request: the session id (little-endian), and a handle when the id is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSession {
    pub session_id: u32,
    pub handle: Option<u8>,
}

impl CloseSession {
    pub const NETFN: u8 = NETFN_APP;
    pub const CMD: u8 = CMD_CLOSE_SESSION;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.session_id.to_le_bytes().to_vec();
        out.extend(self.handle);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Close Session request", data, 4)?;
        let b = |i| byte("Close Session request", data, i);
        let session_id = u32::from_le_bytes([b(0)?, b(1)?, b(2)?, b(3)?]);
        Ok(Self {
            session_id,
            handle: data.get(4).copied().filter(|_| session_id == 0),
        })
    }
}

/// Get Channel Cipher Suites' request (table 22-18); always "list by cipher suite".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetChannelCipherSuites {
    pub channel: u8,
    /// 0 for IPMI messages.
    pub payload_type: u8,
    /// Which 16-byte chunk of the record list, 0..=63.
    pub list_index: u8,
}

impl GetChannelCipherSuites {
    pub const NETFN: u8 = NETFN_APP;
    pub const CMD: u8 = CMD_GET_CHANNEL_CIPHER_SUITES;
    /// The records come in chunks of this many bytes; a shorter chunk is the last.
    pub const CHUNK: usize = 16;

    pub fn encode(&self) -> Vec<u8> {
        vec![
            self.channel & 0x0f,
            self.payload_type,
            0x80 | (self.list_index & 0x3f),
        ]
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        need("Get Channel Cipher Suites request", data, 3)?;
        let b = |i| byte("Get Channel Cipher Suites request", data, i);
        Ok(Self {
            channel: b(0)? & 0x0f,
            payload_type: b(1)?,
            list_index: b(2)? & 0x3f,
        })
    }
}

/// One chunk of Get Channel Cipher Suites' response: the channel, then record bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelCipherSuites {
    pub channel: u8,
    pub records: Vec<u8>,
}

impl ChannelCipherSuites {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.channel];
        out.extend_from_slice(&self.records);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let (channel, records) = data.split_first().ok_or(DecodeError::Truncated {
            what: "Get Channel Cipher Suites response",
            needed: 1,
            got: 0,
        })?;
        Ok(Self {
            channel: *channel,
            records: records.to_vec(),
        })
    }

    /// The chunk `list_index` of the records for `suites`.
    pub fn chunk(channel: u8, suites: &[CipherSuite], list_index: u8) -> Self {
        let all = cipher_suite_records(suites);
        let start = usize::from(list_index) * GetChannelCipherSuites::CHUNK;
        let records = all
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take(GetChannelCipherSuites::CHUNK)
            .copied()
            .collect();
        Self { channel, records }
    }
}

const RECORD_STANDARD: u8 = 0xc0;
const RECORD_OEM: u8 = 0xc1;
const TAG_MASK: u8 = 0xc0;
const TAG_AUTH: u8 = 0x00;
const TAG_INTEGRITY: u8 = 0x40;
const TAG_CONFIDENTIALITY: u8 = 0x80;

/// The cipher suite record bytes (table 22-19) listing `suites`.
pub fn cipher_suite_records(suites: &[CipherSuite]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 * suites.len());
    for s in suites {
        let a = s.algorithms();
        out.extend_from_slice(&[
            RECORD_STANDARD,
            s.id(),
            TAG_AUTH | a.authentication,
            TAG_INTEGRITY | a.integrity,
            TAG_CONFIDENTIALITY | a.confidentiality,
        ]);
    }
    out
}

/// The cipher suite ids in a record list (standard and OEM records), tolerant of junk:
/// unknown bytes between records are skipped.
pub fn parse_cipher_suite_records(records: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut i = 0;
    while let Some(&start) = records.get(i) {
        let id_at = match start {
            RECORD_STANDARD => i + 1,
            RECORD_OEM => i + 1,
            _ => {
                i += 1;
                continue;
            }
        };
        let Some(&id) = records.get(id_at) else { break };
        ids.push(id);
        // Skip the OEM IANA (3 bytes) and the algorithm bytes (tagged, never C0h/C1h).
        i = id_at + 1 + if start == RECORD_OEM { 3 } else { 0 };
        while records.get(i).is_some_and(|b| b & TAG_MASK != TAG_MASK) {
            i += 1;
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trips_with_and_without_aux() {
        let id = DeviceId {
            device_id: 0x20,
            device_revision: 1,
            provides_sdrs: false,
            device_available: true,
            firmware_major: 1,
            firmware_minor: 0x00,
            ipmi_version: 0x02,
            additional_support: 0,
            manufacturer_id: 0x0001_a2b3,
            product_id: 0x1234,
            aux_firmware: None,
        };
        let bytes = id.encode();
        assert_eq!(bytes.len(), 11);
        assert_eq!(DeviceId::decode(&bytes).unwrap(), id);
        let with_aux = DeviceId {
            aux_firmware: Some([1, 2, 3, 4]),
            ..id
        };
        assert_eq!(DeviceId::decode(&with_aux.encode()).unwrap(), with_aux);
        assert!(DeviceId::decode(&bytes[..10]).is_err());
        // pyghmi's fake BMC answers 14 bytes: the three extra are not a full aux field.
        let pyghmi = [0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let parsed = DeviceId::decode(&pyghmi).unwrap();
        assert_eq!((parsed.firmware_major, parsed.aux_firmware), (1, None));
    }

    #[test]
    fn captured_auth_capabilities_decode() {
        // pyghmi's answer to ipmitool, after the completion code.
        let caps = ChannelAuthCapabilities::decode(&[0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0]).unwrap();
        assert!(caps.supports_ipmi_v2());
        assert_eq!(caps, ChannelAuthCapabilities::rmcp_plus_only(1));
        let rq = GetChannelAuthCapabilities::decode(&[0x8e, 0x04]).unwrap();
        assert_eq!(rq, GetChannelAuthCapabilities::v2(Privilege::Administrator));
        assert_eq!(rq.encode(), vec![0x8e, 0x04]);
    }

    #[test]
    fn cipher_suite_records_chunk_and_parse() {
        let suites = [
            CipherSuite::Suite17,
            CipherSuite::Suite3,
            CipherSuite::Suite2,
            CipherSuite::Suite1,
        ];
        let first = ChannelCipherSuites::chunk(1, &suites, 0);
        let second = ChannelCipherSuites::chunk(1, &suites, 1);
        assert_eq!(first.records.len(), 16);
        assert_eq!(second.records.len(), 4);
        let mut all = first.records.clone();
        all.extend_from_slice(&second.records);
        assert_eq!(parse_cipher_suite_records(&all), vec![17, 3, 2, 1]);
        // pyghmi's fake BMC: one standard record for suite 3.
        assert_eq!(
            parse_cipher_suite_records(&[0xc0, 0x03, 0x01, 0x41, 0x81]),
            vec![3]
        );
        // An OEM record, then a standard one.
        let oem = [
            0xc1, 0x50, 0x11, 0x22, 0x33, 0x01, 0x41, 0xc0, 0x01, 0x01, 0x40, 0x80,
        ];
        assert_eq!(parse_cipher_suite_records(&oem), vec![0x50, 1]);
        assert_eq!(parse_cipher_suite_records(&[0xc0]), Vec::<u8>::new());
    }

    #[test]
    fn short_requests_are_refused() {
        assert!(GetChannelCipherSuites::decode(&[0x0e, 0]).is_err());
        assert!(CloseSession::decode(&[1, 2, 3]).is_err());
        assert!(SetSessionPrivilege::decode(&[]).is_err());
        let close = CloseSession {
            session_id: 0x0102_0304,
            handle: None,
        };
        assert_eq!(CloseSession::decode(&close.encode()).unwrap(), close);
    }
}
