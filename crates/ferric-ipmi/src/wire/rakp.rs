//! The RMCP+ session set-up payloads (IPMI v2.0 §13.17-13.23): Open Session Request and
//! Response, RAKP messages 1 to 4. Only the framing: the HMACs are [`crate::crypto`]'s.

use super::Reader;
use crate::DecodeError;

/// The longest user name IPMI allows.
pub const MAX_USERNAME_LEN: usize = 16;
/// RAKP 1 role byte bit 4: 1 = name-only lookup, 0 = username/privilege lookup.
pub const ROLE_NAME_ONLY_LOOKUP: u8 = 0x10;
/// Status-only (error) answers carry tag, status, two reserved bytes and a session id.
const STATUS_ONLY_LEN: usize = 8;

/// The three algorithm numbers an Open Session Request proposes and its response selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithms {
    pub authentication: u8,
    pub integrity: u8,
    pub confidentiality: u8,
}

fn encode_algorithms(a: Algorithms, out: &mut Vec<u8>) {
    for (kind, number) in [
        (0u8, a.authentication),
        (1, a.integrity),
        (2, a.confidentiality),
    ] {
        out.extend_from_slice(&[kind, 0, 0, 0x08, number & 0x3f, 0, 0, 0]);
    }
}

fn decode_algorithms(r: &mut Reader<'_>) -> Result<Algorithms, DecodeError> {
    let mut numbers = [0u8; 3];
    for (kind, slot) in numbers.iter_mut().enumerate() {
        let record = r.array::<8>("algorithm payload")?;
        let [payload_type, _, _, len, number, ..] = record;
        if usize::from(payload_type) != kind {
            return Err(DecodeError::InvalidField {
                what: "algorithm payload type",
                value: payload_type,
            });
        }
        if len != 0x08 {
            return Err(DecodeError::InvalidField {
                what: "algorithm payload length",
                value: len,
            });
        }
        *slot = number & 0x3f;
    }
    let [authentication, integrity, confidentiality] = numbers;
    Ok(Algorithms {
        authentication,
        integrity,
        confidentiality,
    })
}

fn no_trailing(r: &Reader<'_>, what: &'static str, declared: usize) -> Result<(), DecodeError> {
    if r.remaining() == 0 {
        Ok(())
    } else {
        Err(DecodeError::LengthMismatch {
            what,
            declared,
            actual: declared + r.remaining(),
        })
    }
}

/// RMCP+ Open Session Request (table 13-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSessionRequest {
    pub tag: u8,
    /// Requested maximum privilege (low nibble; 0 = the highest the algorithms allow).
    pub max_privilege: u8,
    pub console_session_id: u32,
    pub algorithms: Algorithms,
}

impl OpenSessionRequest {
    pub const LEN: usize = 32;

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&[self.tag, self.max_privilege & 0x0f, 0, 0]);
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        encode_algorithms(self.algorithms, &mut out);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("open session tag")?;
        let max_privilege = r.u8("requested privilege")? & 0x0f;
        let _reserved = r.take(2, "open session reserved")?;
        let console_session_id = r.u32_le("console session id")?;
        let algorithms = decode_algorithms(&mut r)?;
        no_trailing(&r, "open session request", Self::LEN)?;
        Ok(Self {
            tag,
            max_privilege,
            console_session_id,
            algorithms,
        })
    }
}

/// RMCP+ Open Session Response (table 13-10). On a non-zero status only the tag, status and
/// console session id are meaningful (the rest decodes as zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenSessionResponse {
    pub tag: u8,
    pub status: u8,
    pub max_privilege: u8,
    pub console_session_id: u32,
    pub managed_session_id: u32,
    pub algorithms: Algorithms,
}

impl OpenSessionResponse {
    pub const LEN: usize = 36;

    /// A refusal: status only.
    pub fn refusal(tag: u8, status: u8, console_session_id: u32) -> Self {
        Self {
            tag,
            status,
            max_privilege: 0,
            console_session_id,
            managed_session_id: 0,
            algorithms: Algorithms {
                authentication: 0,
                integrity: 0,
                confidentiality: 0,
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&[self.tag, self.status, self.max_privilege & 0x0f, 0]);
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        if self.status == 0 {
            out.extend_from_slice(&self.managed_session_id.to_le_bytes());
            encode_algorithms(self.algorithms, &mut out);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("open session tag")?;
        let status = r.u8("open session status")?;
        let max_privilege = r.u8("maximum privilege")? & 0x0f;
        let _reserved = r.u8("open session reserved")?;
        let console_session_id = r.u32_le("console session id")?;
        if status != 0 {
            // Some BMCs send the full length with an error; the rest is meaningless then.
            return Ok(Self::refusal(tag, status, console_session_id));
        }
        let managed_session_id = r.u32_le("managed session id")?;
        let algorithms = decode_algorithms(&mut r)?;
        no_trailing(&r, "open session response", Self::LEN)?;
        Ok(Self {
            tag,
            status,
            max_privilege,
            console_session_id,
            managed_session_id,
            algorithms,
        })
    }
}

/// RAKP Message 1 (table 13-11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp1 {
    pub tag: u8,
    pub managed_session_id: u32,
    pub console_random: [u8; 16],
    /// Requested maximum privilege (low nibble) and the lookup bit (bit 4), as sent.
    pub role: u8,
    pub username: Vec<u8>,
}

impl Rakp1 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + self.username.len());
        out.extend_from_slice(&[self.tag, 0, 0, 0]);
        out.extend_from_slice(&self.managed_session_id.to_le_bytes());
        out.extend_from_slice(&self.console_random);
        out.extend_from_slice(&[self.role, 0, 0]);
        out.push(u8::try_from(self.username.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.username);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("RAKP 1 tag")?;
        let _reserved = r.take(3, "RAKP 1 reserved")?;
        let managed_session_id = r.u32_le("managed session id")?;
        let console_random = r.array::<16>("console random number")?;
        let role = r.u8("requested role")?;
        let _reserved = r.take(2, "RAKP 1 reserved")?;
        let len = usize::from(r.u8("user name length")?);
        if len > MAX_USERNAME_LEN {
            return Err(DecodeError::TooLong {
                what: "user name",
                len,
                max: MAX_USERNAME_LEN,
            });
        }
        let username = r.take(len, "user name")?.to_vec();
        no_trailing(&r, "RAKP 1", 28 + len)?;
        Ok(Self {
            tag,
            managed_session_id,
            console_random,
            role,
            username,
        })
    }
}

/// RAKP Message 2 (table 13-12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp2 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    pub managed_random: [u8; 16],
    pub managed_guid: [u8; 16],
    /// The key exchange authentication code: HMAC(Kuid, ...), 20 or 32 bytes.
    pub auth_code: Vec<u8>,
}

impl Rakp2 {
    pub fn refusal(tag: u8, status: u8, console_session_id: u32) -> Self {
        Self {
            tag,
            status,
            console_session_id,
            managed_random: [0; 16],
            managed_guid: [0; 16],
            auth_code: Vec::new(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40 + self.auth_code.len());
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        if self.status == 0 {
            out.extend_from_slice(&self.managed_random);
            out.extend_from_slice(&self.managed_guid);
            out.extend_from_slice(&self.auth_code);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("RAKP 2 tag")?;
        let status = r.u8("RAKP 2 status")?;
        let _reserved = r.take(2, "RAKP 2 reserved")?;
        let console_session_id = r.u32_le("console session id")?;
        if status != 0 {
            return Ok(Self::refusal(tag, status, console_session_id));
        }
        let managed_random = r.array::<16>("managed system random number")?;
        let managed_guid = r.array::<16>("managed system GUID")?;
        let auth_code = r.rest().to_vec();
        check_code_len("RAKP 2 auth code", auth_code.len(), 64)?;
        Ok(Self {
            tag,
            status,
            console_session_id,
            managed_random,
            managed_guid,
            auth_code,
        })
    }
}

fn check_code_len(what: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        Err(DecodeError::TooLong { what, len, max })
    } else {
        Ok(())
    }
}

/// RAKP Message 3 (table 13-13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp3 {
    pub tag: u8,
    pub status: u8,
    pub managed_session_id: u32,
    pub auth_code: Vec<u8>,
}

impl Rakp3 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.auth_code.len());
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.managed_session_id.to_le_bytes());
        out.extend_from_slice(&self.auth_code);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("RAKP 3 tag")?;
        let status = r.u8("RAKP 3 status")?;
        let _reserved = r.take(2, "RAKP 3 reserved")?;
        let managed_session_id = r.u32_le("managed session id")?;
        let auth_code = r.rest().to_vec();
        check_code_len("RAKP 3 auth code", auth_code.len(), 64)?;
        Ok(Self {
            tag,
            status,
            managed_session_id,
            auth_code,
        })
    }
}

/// RAKP Message 4 (table 13-14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rakp4 {
    pub tag: u8,
    pub status: u8,
    pub console_session_id: u32,
    /// The integrity check value: HMAC(SIK, Rm | SIDc | GUIDc), truncated.
    pub icv: Vec<u8>,
}

impl Rakp4 {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STATUS_ONLY_LEN + self.icv.len());
        out.extend_from_slice(&[self.tag, self.status, 0, 0]);
        out.extend_from_slice(&self.console_session_id.to_le_bytes());
        out.extend_from_slice(&self.icv);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let tag = r.u8("RAKP 4 tag")?;
        let status = r.u8("RAKP 4 status")?;
        let _reserved = r.take(2, "RAKP 4 reserved")?;
        let console_session_id = r.u32_le("console session id")?;
        let icv = r.rest().to_vec();
        check_code_len("RAKP 4 integrity check value", icv.len(), 64)?;
        Ok(Self {
            tag,
            status,
            console_session_id,
            icv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // Payloads captured between ipmitool 1.8.19 (-C 3) and pyghmi's fakebmc.
    const OPEN_RQ: &str = "00000000a4a3a2a0000000080100000001000008010000000200000801000000";
    const OPEN_RS: &str =
        "00000400a4a3a2a02ec3d4e6000000080100000001000008010000000200000801000000";
    const RAKP1: &str = "000000002ec3d4e687257cfe40953d67f620bcd8ec8a7f421400000561646d696e";

    #[test]
    fn captured_handshake_payloads_round_trip() {
        let rq = OpenSessionRequest::decode(&hex(OPEN_RQ)).unwrap();
        assert_eq!(rq.console_session_id, 0xa0a2_a3a4);
        assert_eq!(rq.max_privilege, 0);
        assert_eq!(
            rq.algorithms,
            Algorithms {
                authentication: 1,
                integrity: 1,
                confidentiality: 1
            }
        );
        assert_eq!(rq.encode(), hex(OPEN_RQ));

        let rs = OpenSessionResponse::decode(&hex(OPEN_RS)).unwrap();
        assert_eq!(rs.managed_session_id, 0xe6d4_c32e);
        assert_eq!(rs.max_privilege, 4);
        assert_eq!(rs.encode(), hex(OPEN_RS));

        let r1 = Rakp1::decode(&hex(RAKP1)).unwrap();
        assert_eq!(r1.role, 0x14);
        assert_eq!(r1.username, b"admin");
        assert_eq!(r1.encode(), hex(RAKP1));
    }

    #[test]
    fn refusals_are_short_and_decode() {
        let refusal = Rakp2::refusal(3, 0x0d, 0x1122_3344);
        let bytes = refusal.encode();
        assert_eq!(bytes.len(), 8);
        assert_eq!(Rakp2::decode(&bytes).unwrap(), refusal);
        let open = OpenSessionResponse::refusal(1, 0x11, 7);
        assert_eq!(OpenSessionResponse::decode(&open.encode()).unwrap(), open);
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let mut r1 = hex(RAKP1);
        r1[27] = 17;
        assert!(matches!(
            Rakp1::decode(&r1),
            Err(DecodeError::TooLong { .. })
        ));
        let mut r1 = hex(RAKP1);
        r1.push(0);
        assert!(matches!(
            Rakp1::decode(&r1),
            Err(DecodeError::LengthMismatch { .. })
        ));
        let mut rq = hex(OPEN_RQ);
        rq[16] = 2;
        assert!(matches!(
            OpenSessionRequest::decode(&rq),
            Err(DecodeError::InvalidField { .. })
        ));
        let rq = hex(OPEN_RQ);
        for n in 0..rq.len() {
            assert!(OpenSessionRequest::decode(&rq[..n]).is_err());
        }
    }
}
