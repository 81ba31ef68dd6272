//! Pure parsing and serialising of IPMI-over-LAN datagrams: no sockets, no clocks, no keys.
//!
//! A datagram is an RMCP header ([`rmcp`]) followed by either an ASF message (presence
//! ping/pong) or an IPMI session wrapper ([`session`]: v1.5 for the session-less commands,
//! v2.0/RMCP+ for everything else), whose payload is an IPMI message ([`message`]) or an
//! RMCP+ handshake message ([`rakp`]). Integrity and confidentiality are applied by
//! [`crate::crypto`] over the byte ranges this module points at.

pub mod message;
pub mod rakp;
pub mod rmcp;
pub mod session;

use crate::DecodeError;

/// The largest datagram any decoder accepts (the brief's limit; real ones stay well under).
pub const MAX_DATAGRAM: usize = 1024;

/// One decoded datagram, borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    Asf(rmcp::AsfMessage),
    V15(session::V15Packet<'a>),
    V20(session::V20Packet<'a>),
}

/// Decodes a datagram's framing (RMCP, ASF or session header); payloads stay raw.
pub fn decode(datagram: &[u8]) -> Result<Datagram<'_>, DecodeError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DecodeError::Oversized {
            len: datagram.len(),
            max: MAX_DATAGRAM,
        });
    }
    let mut r = Reader::new(datagram);
    let header = rmcp::RmcpHeader::decode(&mut r)?;
    match header.class {
        rmcp::CLASS_ASF => Ok(Datagram::Asf(rmcp::decode_asf(datagram)?)),
        rmcp::CLASS_IPMI => session::decode_session(r.rest()),
        class => Err(DecodeError::UnsupportedClass { class }),
    }
}

/// A bounds-checked cursor: every read names what it reads, for the error message.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let taken = rest.get(..n).ok_or(DecodeError::Truncated {
            what,
            needed: n,
            got: rest.len(),
        })?;
        self.pos += n;
        Ok(taken)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    pub(crate) fn u16_le(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32_le(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32_be(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        self.pos = self.bytes.len();
        rest
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }
}

/// The IPMI two's-complement checksum: the byte that makes `bytes` sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |acc, b| acc.wrapping_add(*b))
        .wrapping_neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_makes_the_sum_zero() {
        // rsAddr 0x20, netFn 0x06 << 2: the header checksum ipmitool sends.
        assert_eq!(checksum(&[0x20, 0x18]), 0xc8);
        assert_eq!(checksum(&[]), 0);
    }

    #[test]
    fn oversized_datagrams_are_refused() {
        let big = vec![0x06; MAX_DATAGRAM + 1];
        assert_eq!(
            decode(&big),
            Err(DecodeError::Oversized {
                len: MAX_DATAGRAM + 1,
                max: MAX_DATAGRAM
            })
        );
    }

    #[test]
    fn every_prefix_of_a_real_packet_is_refused_without_panic() {
        // ipmitool's Get Channel Authentication Capabilities, captured.
        let pkt = [
            0x06, 0x00, 0xff, 0x07, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x09, 0x20, 0x18, 0xc8, 0x81,
            0x00, 0x38, 0x8e, 0x04, 0xb5,
        ];
        assert!(matches!(decode(&pkt), Ok(Datagram::V15(_))));
        for n in 0..pkt.len() {
            assert!(decode(&pkt[..n]).is_err(), "prefix of {n} bytes accepted");
        }
    }

    #[test]
    fn reader_reports_what_was_truncated() {
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(r.u8("a"), Ok(1));
        assert_eq!(
            r.u16_le("b"),
            Err(DecodeError::Truncated {
                what: "b",
                needed: 2,
                got: 1
            })
        );
    }
}
