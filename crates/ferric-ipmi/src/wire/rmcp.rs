//! The RMCP header (DMTF ASF 2.0 §3.2.2) and the ASF presence ping/pong that BMCs answer
//! before any session (`ipmitool ping`, discovery tools).

use super::Reader;
use crate::DecodeError;

pub const RMCP_VERSION: u8 = 0x06;
/// RMCP sequence number meaning "no RMCP ACK wanted"; IPMI always uses it.
pub const RMCP_SEQ_NO_ACK: u8 = 0xff;
pub const CLASS_ASF: u8 = 0x06;
pub const CLASS_IPMI: u8 = 0x07;
const CLASS_ACK_BIT: u8 = 0x80;

/// ASF's IANA enterprise number (4542).
pub const ASF_IANA: u32 = 0x0000_11be;
const ASF_PRESENCE_PONG: u8 = 0x40;
const ASF_PRESENCE_PING: u8 = 0x80;
const PONG_DATA_LEN: u8 = 16;
/// Pong "supported entities": IPMI supported (bit 7), ASF version 1.0.
pub const PONG_ENTITIES_IPMI: u8 = 0x81;

/// The four-byte RMCP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmcpHeader {
    pub sequence: u8,
    /// Message class without the ACK bit.
    pub class: u8,
    pub ack: bool,
}

impl RmcpHeader {
    /// The header every IPMI datagram carries: `06 00 ff 07`.
    pub const IPMI: Self = Self {
        sequence: RMCP_SEQ_NO_ACK,
        class: CLASS_IPMI,
        ack: false,
    };

    pub fn encode(&self, out: &mut Vec<u8>) {
        let ack = if self.ack { CLASS_ACK_BIT } else { 0 };
        out.extend_from_slice(&[RMCP_VERSION, 0x00, self.sequence, self.class | ack]);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let [version, _reserved, sequence, class] = r.array::<4>("RMCP header")?;
        if version != RMCP_VERSION {
            return Err(DecodeError::NotRmcp { version });
        }
        Ok(Self {
            sequence,
            class: class & 0x1f,
            ack: class & CLASS_ACK_BIT != 0,
        })
    }
}

/// The presence pong's body (ASF 2.0 §3.2.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresencePong {
    pub oem_iana: u32,
    pub oem_defined: u32,
    pub supported_entities: u8,
    pub supported_interactions: u8,
}

impl PresencePong {
    /// What a BMC answers: IPMI supported, no OEM data, no RMCP security extensions.
    pub const IPMI_BMC: Self = Self {
        oem_iana: 0,
        oem_defined: 0,
        supported_entities: PONG_ENTITIES_IPMI,
        supported_interactions: 0,
    };
}

/// The ASF messages this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsfMessage {
    PresencePing {
        rmcp_seq: u8,
        tag: u8,
    },
    PresencePong {
        rmcp_seq: u8,
        tag: u8,
        pong: PresencePong,
    },
}

impl AsfMessage {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let iana = r.u32_be("ASF IANA")?;
        if iana != ASF_IANA {
            return Err(DecodeError::NotAsf { iana });
        }
        let kind = r.u8("ASF message type")?;
        let tag = r.u8("ASF message tag")?;
        let _reserved = r.u8("ASF reserved")?;
        let len = r.u8("ASF data length")?;
        let data = r.rest();
        if data.len() != usize::from(len) {
            return Err(DecodeError::LengthMismatch {
                what: "ASF data",
                declared: usize::from(len),
                actual: data.len(),
            });
        }
        // The RMCP sequence is not in `r` any more; callers see it through `decode_asf`.
        match kind {
            ASF_PRESENCE_PING if len == 0 => Ok(Self::PresencePing { rmcp_seq: 0, tag }),
            ASF_PRESENCE_PONG if len == PONG_DATA_LEN => {
                let mut d = Reader::new(data);
                let pong = PresencePong {
                    oem_iana: d.u32_be("pong IANA")?,
                    oem_defined: d.u32_be("pong OEM")?,
                    supported_entities: d.u8("pong entities")?,
                    supported_interactions: d.u8("pong interactions")?,
                };
                Ok(Self::PresencePong {
                    rmcp_seq: 0,
                    tag,
                    pong,
                })
            }
            ASF_PRESENCE_PING | ASF_PRESENCE_PONG => Err(DecodeError::InvalidField {
                what: "ASF data length",
                value: len,
            }),
            kind => Err(DecodeError::UnsupportedAsfType { kind }),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let (rmcp_seq, kind, tag, data) = match *self {
            Self::PresencePing { rmcp_seq, tag } => (rmcp_seq, ASF_PRESENCE_PING, tag, Vec::new()),
            Self::PresencePong {
                rmcp_seq,
                tag,
                pong,
            } => {
                let mut d = Vec::with_capacity(usize::from(PONG_DATA_LEN));
                d.extend_from_slice(&pong.oem_iana.to_be_bytes());
                d.extend_from_slice(&pong.oem_defined.to_be_bytes());
                d.push(pong.supported_entities);
                d.push(pong.supported_interactions);
                d.extend_from_slice(&[0; 6]);
                (rmcp_seq, ASF_PRESENCE_PONG, tag, d)
            }
        };
        let mut out = Vec::with_capacity(12 + data.len());
        RmcpHeader {
            sequence: rmcp_seq,
            class: CLASS_ASF,
            ack: false,
        }
        .encode(&mut out);
        out.extend_from_slice(&ASF_IANA.to_be_bytes());
        out.extend_from_slice(&[kind, tag, 0x00]);
        out.push(u8::try_from(data.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&data);
        out
    }
}

/// Decodes an ASF datagram, keeping the RMCP sequence number (echoed in the pong).
pub fn decode_asf(datagram: &[u8]) -> Result<AsfMessage, DecodeError> {
    let mut r = Reader::new(datagram);
    let header = RmcpHeader::decode(&mut r)?;
    if header.class != CLASS_ASF {
        return Err(DecodeError::UnsupportedClass {
            class: header.class,
        });
    }
    Ok(match AsfMessage::decode(&mut r)? {
        AsfMessage::PresencePing { tag, .. } => AsfMessage::PresencePing {
            rmcp_seq: header.sequence,
            tag,
        },
        AsfMessage::PresencePong { tag, pong, .. } => AsfMessage::PresencePong {
            rmcp_seq: header.sequence,
            tag,
            pong,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_decodes_and_pong_round_trips() {
        // ipmitool's ping: RMCP seq ff, ASF, IANA 4542, type 80h, tag 0, length 0.
        let ping = [
            0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            decode_asf(&ping),
            Ok(AsfMessage::PresencePing {
                rmcp_seq: 0xff,
                tag: 0
            })
        );
        let pong = AsfMessage::PresencePong {
            rmcp_seq: 0xff,
            tag: 7,
            pong: PresencePong::IPMI_BMC,
        };
        let bytes = pong.encode();
        assert_eq!(bytes.len(), 28);
        assert_eq!(decode_asf(&bytes), Ok(pong));
    }

    #[test]
    fn bad_asf_is_refused() {
        let mut ping = vec![
            0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x00, 0x00, 0x01,
        ];
        assert!(matches!(
            decode_asf(&ping),
            Err(DecodeError::LengthMismatch { .. })
        ));
        ping.push(0);
        assert!(matches!(
            decode_asf(&ping),
            Err(DecodeError::InvalidField { .. })
        ));
        ping[7] = 0xbf;
        assert!(matches!(decode_asf(&ping), Err(DecodeError::NotAsf { .. })));
        assert!(matches!(
            decode_asf(&[0x05, 0, 0xff, 0x06]),
            Err(DecodeError::NotRmcp { version: 5 })
        ));
    }
}
