//! The IPMI session wrappers (IPMI v2.0 §13.6, §13.8, table 13-8).
//!
//! v1.5: `auth type, seq (4, LE), session id (4, LE), [auth code (16)], length (1), message`;
//! used here only session-less (auth type none), for Get Channel Authentication
//! Capabilities, which ipmitool sends before anything else.
//!
//! v2.0/RMCP+: `auth type 06h, payload type (bit 7 encrypted, bit 6 authenticated), session
//! id (4, LE), seq (4, LE), length (2, LE), payload`, then, when authenticated, the trailer
//! `integrity pad (FFh...), pad length, next header 07h, AuthCode`. The AuthCode covers
//! everything from the auth type through the next header byte; its length depends on the
//! session's integrity algorithm, so the trailer is split by [`V20Packet::split_trailer`].

use super::rmcp::RmcpHeader;
use super::{Datagram, Reader};
use crate::DecodeError;

pub const AUTH_TYPE_NONE: u8 = 0x00;
pub const AUTH_TYPE_MD2: u8 = 0x01;
pub const AUTH_TYPE_MD5: u8 = 0x02;
pub const AUTH_TYPE_PASSWORD: u8 = 0x04;
pub const AUTH_TYPE_OEM: u8 = 0x05;
pub const AUTH_TYPE_RMCP_PLUS: u8 = 0x06;

const PAYLOAD_ENCRYPTED: u8 = 0x80;
const PAYLOAD_AUTHENTICATED: u8 = 0x40;
/// The only next-header value the spec allows in the session trailer.
pub const NEXT_HEADER: u8 = 0x07;
/// Bytes from the auth type through the payload length in a v2.0 header (no OEM fields).
pub const V20_HEADER_LEN: usize = 12;

/// RMCP+ payload types (table 13-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    Ipmi,
    Sol,
    OpenSessionRequest,
    OpenSessionResponse,
    Rakp1,
    Rakp2,
    Rakp3,
    Rakp4,
}

impl PayloadType {
    pub fn code(self) -> u8 {
        match self {
            Self::Ipmi => 0x00,
            Self::Sol => 0x01,
            Self::OpenSessionRequest => 0x10,
            Self::OpenSessionResponse => 0x11,
            Self::Rakp1 => 0x12,
            Self::Rakp2 => 0x13,
            Self::Rakp3 => 0x14,
            Self::Rakp4 => 0x15,
        }
    }

    /// OEM explicit payloads (02h) and the OEM range are refused.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x00 => Self::Ipmi,
            0x01 => Self::Sol,
            0x10 => Self::OpenSessionRequest,
            0x11 => Self::OpenSessionResponse,
            0x12 => Self::Rakp1,
            0x13 => Self::Rakp2,
            0x14 => Self::Rakp3,
            0x15 => Self::Rakp4,
            _ => return None,
        })
    }
}

/// A v1.5 session packet, borrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V15Packet<'a> {
    pub auth_type: u8,
    pub seq: u32,
    pub session_id: u32,
    pub auth_code: Option<[u8; 16]>,
    /// The IPMI message.
    pub message: &'a [u8],
}

impl V15Packet<'_> {
    pub fn is_sessionless(&self) -> bool {
        self.auth_type == AUTH_TYPE_NONE && self.session_id == 0
    }
}

/// A v2.0 (RMCP+) session packet, borrowed; the payload may still be encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V20Packet<'a> {
    pub payload_type: PayloadType,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
    pub payload: &'a [u8],
    /// The packet from the auth type byte to the end (what the AuthCode is computed over,
    /// once the AuthCode itself is cut off).
    raw: &'a [u8],
}

/// The verified-format pieces of a session trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer<'a> {
    /// The bytes the AuthCode covers: auth type through next header.
    pub signed: &'a [u8],
    pub auth_code: &'a [u8],
}

impl<'a> V20Packet<'a> {
    /// Checks the trailer's pad, pad length and next header for an AuthCode of
    /// `auth_code_len` bytes and returns what to verify. Only for authenticated packets.
    pub fn split_trailer(&self, auth_code_len: usize) -> Result<Trailer<'a>, DecodeError> {
        let after_payload = V20_HEADER_LEN + self.payload.len();
        let trailer = self.raw.get(after_payload..).unwrap_or_default();
        let pad_len =
            trailer
                .len()
                .checked_sub(2 + auth_code_len)
                .ok_or(DecodeError::Truncated {
                    what: "session trailer",
                    needed: 2 + auth_code_len,
                    got: trailer.len(),
                })?;
        let pad = trailer.get(..pad_len).unwrap_or_default();
        let declared = trailer.get(pad_len).copied().unwrap_or_default();
        let next_header = trailer.get(pad_len + 1).copied().unwrap_or_default();
        if pad_len > 3 || usize::from(declared) != pad_len || pad.iter().any(|b| *b != 0xff) {
            return Err(DecodeError::BadPad { what: "integrity" });
        }
        if next_header != NEXT_HEADER {
            return Err(DecodeError::BadNextHeader { value: next_header });
        }
        let split = self.raw.len() - auth_code_len;
        Ok(Trailer {
            signed: self.raw.get(..split).unwrap_or_default(),
            auth_code: self.raw.get(split..).unwrap_or_default(),
        })
    }

    /// Bytes after the payload: empty for a well-formed unauthenticated packet.
    pub fn trailing(&self) -> &'a [u8] {
        self.raw
            .get(V20_HEADER_LEN + self.payload.len()..)
            .unwrap_or_default()
    }
}

/// Decodes the session wrapper after an RMCP header of class IPMI.
pub(crate) fn decode_session(bytes: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    let mut r = Reader::new(bytes);
    let auth_type = r.u8("session auth type")? & 0x0f;
    match auth_type {
        AUTH_TYPE_RMCP_PLUS => decode_v20(bytes, r).map(Datagram::V20),
        AUTH_TYPE_NONE | AUTH_TYPE_MD2 | AUTH_TYPE_MD5 | AUTH_TYPE_PASSWORD | AUTH_TYPE_OEM => {
            decode_v15(auth_type, r).map(Datagram::V15)
        }
        auth_type => Err(DecodeError::UnsupportedAuthType { auth_type }),
    }
}

fn decode_v15<'a>(auth_type: u8, mut r: Reader<'a>) -> Result<V15Packet<'a>, DecodeError> {
    let seq = r.u32_le("v1.5 session sequence")?;
    let session_id = r.u32_le("v1.5 session id")?;
    let auth_code = if auth_type == AUTH_TYPE_NONE {
        None
    } else {
        Some(r.array::<16>("v1.5 auth code")?)
    };
    let len = usize::from(r.u8("v1.5 message length")?);
    let message = r.take(len, "v1.5 message")?;
    // One legacy pad byte (zero) may follow the message; nothing else may.
    let rest = r.rest();
    if !(rest.is_empty() || rest == [0]) {
        return Err(DecodeError::LengthMismatch {
            what: "v1.5 message",
            declared: len,
            actual: len + rest.len(),
        });
    }
    Ok(V15Packet {
        auth_type,
        seq,
        session_id,
        auth_code,
        message,
    })
}

fn decode_v20<'a>(raw: &'a [u8], mut r: Reader<'a>) -> Result<V20Packet<'a>, DecodeError> {
    let type_byte = r.u8("RMCP+ payload type")?;
    let code = type_byte & 0x3f;
    let payload_type = PayloadType::from_code(code)
        .ok_or(DecodeError::UnsupportedPayloadType { payload_type: code })?;
    let session_id = r.u32_le("RMCP+ session id")?;
    let seq = r.u32_le("RMCP+ session sequence")?;
    let len = usize::from(r.u16_le("RMCP+ payload length")?);
    let payload = r.take(len, "RMCP+ payload")?;
    let authenticated = type_byte & PAYLOAD_AUTHENTICATED != 0;
    if !authenticated && r.remaining() != 0 {
        return Err(DecodeError::LengthMismatch {
            what: "RMCP+ payload",
            declared: len,
            actual: len + r.remaining(),
        });
    }
    Ok(V20Packet {
        payload_type,
        encrypted: type_byte & PAYLOAD_ENCRYPTED != 0,
        authenticated,
        session_id,
        seq,
        payload,
        raw,
    })
}

/// A session-less v1.5 datagram carrying `message`.
pub fn encode_v15_sessionless(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + message.len());
    RmcpHeader::IPMI.encode(&mut out);
    out.push(AUTH_TYPE_NONE);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(u8::try_from(message.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(message);
    out
}

/// The header fields of a v2.0 packet to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V20Header {
    pub payload_type: PayloadType,
    pub encrypted: bool,
    pub authenticated: bool,
    pub session_id: u32,
    pub seq: u32,
}

/// Encodes a v2.0 datagram. When the header says authenticated, `auth_code` is called with
/// the signed range (auth type through next header) and its result appended.
pub fn encode_v20(
    header: V20Header,
    payload: &[u8],
    auth_code: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + V20_HEADER_LEN + payload.len() + 24);
    RmcpHeader::IPMI.encode(&mut out);
    out.push(AUTH_TYPE_RMCP_PLUS);
    let mut type_byte = header.payload_type.code();
    if header.encrypted {
        type_byte |= PAYLOAD_ENCRYPTED;
    }
    if header.authenticated {
        type_byte |= PAYLOAD_AUTHENTICATED;
    }
    out.push(type_byte);
    out.extend_from_slice(&header.session_id.to_le_bytes());
    out.extend_from_slice(&header.seq.to_le_bytes());
    out.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(payload);
    if header.authenticated {
        // Pad so that auth type .. next header is a multiple of four bytes.
        let covered = out.len() - 4 + 2;
        let pad = (4 - covered % 4) % 4;
        out.extend(std::iter::repeat_n(0xff, pad));
        out.push(u8::try_from(pad).unwrap_or_default());
        out.push(NEXT_HEADER);
        let code = auth_code(out.get(4..).unwrap_or_default());
        out.extend_from_slice(&code);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode;

    fn v20(bytes: &[u8]) -> V20Packet<'_> {
        match decode(bytes) {
            Ok(Datagram::V20(p)) => p,
            other => panic!("not v2.0: {other:?}"),
        }
    }

    #[test]
    fn sessionless_v15_round_trips() {
        let msg = [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5];
        let bytes = encode_v15_sessionless(&msg);
        match decode(&bytes) {
            Ok(Datagram::V15(p)) => {
                assert!(p.is_sessionless());
                assert_eq!(p.message, msg);
            }
            other => panic!("{other:?}"),
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(decode(&padded).is_ok());
        padded.push(0);
        assert!(matches!(
            decode(&padded),
            Err(DecodeError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn authenticated_v20_pads_to_four_and_splits() {
        let header = V20Header {
            payload_type: PayloadType::Ipmi,
            encrypted: false,
            authenticated: true,
            session_id: 0x1234_5678,
            seq: 9,
        };
        for len in 0..8 {
            let payload = vec![0xaa; len];
            let bytes = encode_v20(header, &payload, |signed| {
                assert_eq!(signed.len() % 4, 0);
                vec![0x55; 12]
            });
            let p = v20(&bytes);
            assert!(p.authenticated && !p.encrypted);
            assert_eq!((p.session_id, p.seq), (0x1234_5678, 9));
            assert_eq!(p.payload, &payload[..]);
            let t = p.split_trailer(12).expect("trailer");
            assert_eq!(t.auth_code, &[0x55; 12]);
            assert_eq!(t.signed.len() % 4, 0);
            assert_eq!(t.signed.last(), Some(&NEXT_HEADER));
            assert!(p.split_trailer(16).is_err());
        }
    }

    #[test]
    fn bad_trailers_are_named() {
        let header = V20Header {
            payload_type: PayloadType::Ipmi,
            encrypted: false,
            authenticated: true,
            session_id: 1,
            seq: 1,
        };
        let good = encode_v20(header, &[1], |_| vec![0; 12]);
        // payload 1 byte: covered 12+1+2 = 15, so one pad byte at offset 17.
        let mut bad_pad = good.clone();
        bad_pad[17] = 0xfe;
        assert_eq!(
            v20(&bad_pad).split_trailer(12),
            Err(DecodeError::BadPad { what: "integrity" })
        );
        let mut bad_next = good.clone();
        bad_next[19] = 0x06;
        assert_eq!(
            v20(&bad_next).split_trailer(12),
            Err(DecodeError::BadNextHeader { value: 0x06 })
        );
        let mut bad_len = good;
        bad_len[18] = 2;
        assert!(v20(&bad_len).split_trailer(12).is_err());
    }

    #[test]
    fn unknown_payload_types_and_junk_are_refused() {
        let mut bytes = encode_v20(
            V20Header {
                payload_type: PayloadType::OpenSessionRequest,
                encrypted: false,
                authenticated: false,
                session_id: 0,
                seq: 0,
            },
            &[0; 32],
            |_| Vec::new(),
        );
        bytes.push(0);
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::LengthMismatch { .. })
        ));
        bytes.pop();
        bytes[5] = 0x02;
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::UnsupportedPayloadType { payload_type: 2 })
        );
        bytes[4] = 0x03;
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::UnsupportedAuthType { auth_type: 3 })
        );
    }
}
