//! The IPMI LAN message (IPMI v2.0 §13.8, figure 13-4): two checksummed parts.
//!
//! `dst addr, netFn << 2 | dst LUN, checksum 1, src addr, seq << 2 | src LUN, cmd, body...,
//! checksum 2`. In a request `dst` is the responder (rsAddr) and `src` the requester
//! (rqAddr, rqSeq); a response swaps them and its body starts with the completion code.

use super::{checksum, Reader};
use crate::{DecodeError, Request, Response};

/// The smallest message: header, checksum, requester, seq, cmd, checksum.
pub const MIN_MESSAGE_LEN: usize = 7;
/// A body longer than this cannot fit a 1024-byte datagram anyway.
pub const MAX_BODY_LEN: usize = 1000;

/// One IPMI message, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub dst_addr: u8,
    pub netfn: u8,
    pub dst_lun: u8,
    pub src_addr: u8,
    /// The requester's sequence number, 0..=63.
    pub seq: u8,
    pub src_lun: u8,
    pub cmd: u8,
    /// Request data, or completion code followed by response data.
    pub body: Vec<u8>,
}

impl Message {
    pub fn is_response(&self) -> bool {
        self.netfn & 1 == 1
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < MIN_MESSAGE_LEN {
            return Err(DecodeError::Truncated {
                what: "IPMI message",
                needed: MIN_MESSAGE_LEN,
                got: bytes.len(),
            });
        }
        if bytes.len() > MAX_BODY_LEN + MIN_MESSAGE_LEN {
            return Err(DecodeError::TooLong {
                what: "IPMI message",
                len: bytes.len(),
                max: MAX_BODY_LEN + MIN_MESSAGE_LEN,
            });
        }
        let (head, tail) = bytes.split_at(3);
        if checksum(head) != 0 {
            return Err(DecodeError::BadChecksum { which: "header" });
        }
        if checksum(tail) != 0 {
            return Err(DecodeError::BadChecksum { which: "data" });
        }
        let mut r = Reader::new(bytes);
        let dst_addr = r.u8("rsAddr")?;
        let netfn_lun = r.u8("netFn/LUN")?;
        let _checksum1 = r.u8("checksum 1")?;
        let src_addr = r.u8("rqAddr")?;
        let seq_lun = r.u8("rqSeq/LUN")?;
        let cmd = r.u8("command")?;
        let rest = r.rest();
        let body = rest.get(..rest.len().saturating_sub(1)).unwrap_or_default();
        Ok(Self {
            dst_addr,
            netfn: netfn_lun >> 2,
            dst_lun: netfn_lun & 0x03,
            src_addr,
            seq: seq_lun >> 2,
            src_lun: seq_lun & 0x03,
            cmd,
            body: body.to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MIN_MESSAGE_LEN + self.body.len());
        out.push(self.dst_addr);
        out.push((self.netfn << 2) | (self.dst_lun & 0x03));
        out.push(checksum(&out));
        let second = out.len();
        out.push(self.src_addr);
        out.push((self.seq << 2) | (self.src_lun & 0x03));
        out.push(self.cmd);
        out.extend_from_slice(&self.body);
        let sum = checksum(out.get(second..).unwrap_or_default());
        out.push(sum);
        out
    }

    /// The message carrying `request`.
    pub fn from_request(request: &Request) -> Self {
        Self {
            dst_addr: request.rs_addr,
            netfn: request.netfn & 0x3f,
            dst_lun: request.rs_lun,
            src_addr: request.rq_addr,
            seq: request.rq_seq & 0x3f,
            src_lun: request.rq_lun,
            cmd: request.cmd,
            body: request.data.clone(),
        }
    }

    /// The request this message carries (`None` for a response).
    pub fn to_request(&self) -> Option<Request> {
        (!self.is_response()).then(|| Request {
            netfn: self.netfn,
            cmd: self.cmd,
            data: self.body.clone(),
            rq_seq: self.seq,
            rq_addr: self.src_addr,
            rq_lun: self.src_lun,
            rs_addr: self.dst_addr,
            rs_lun: self.dst_lun,
        })
    }

    /// The response message answering `request`.
    pub fn response_to(request: &Request, response: &Response) -> Self {
        let mut body = Vec::with_capacity(1 + response.data.len());
        body.push(response.completion_code);
        body.extend_from_slice(&response.data);
        Self {
            dst_addr: request.rq_addr,
            netfn: (request.netfn | 1) & 0x3f,
            dst_lun: request.rq_lun,
            src_addr: request.rs_addr,
            seq: request.rq_seq & 0x3f,
            src_lun: request.rs_lun,
            cmd: request.cmd,
            body,
        }
    }

    /// The completion code and data of a response message.
    pub fn to_response(&self) -> Result<Response, DecodeError> {
        let (code, data) = self.body.split_first().ok_or(DecodeError::Truncated {
            what: "IPMI response completion code",
            needed: 1,
            got: 0,
        })?;
        Ok(Response {
            completion_code: *code,
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ipmitool's Get Channel Authentication Capabilities request and pyghmi's answer.
    const GCAC_REQUEST: [u8; 9] = [0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04, 0xb5];
    const GCAC_RESPONSE: [u8; 16] = [
        0x81, 0x1c, 0x63, 0x20, 0x00, 0x38, 0x00, 0x01, 0x80, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x21,
    ];

    #[test]
    fn captured_request_and_response_decode_and_re_encode() {
        let rq = Message::decode(&GCAC_REQUEST).unwrap();
        assert!(!rq.is_response());
        let request = rq.to_request().unwrap();
        assert_eq!((request.netfn, request.cmd), (0x06, 0x38));
        assert_eq!(request.data, vec![0x8e, 0x04]);
        assert_eq!(rq.encode(), GCAC_REQUEST);

        let rs = Message::decode(&GCAC_RESPONSE).unwrap();
        assert!(rs.is_response());
        let response = rs.to_response().unwrap();
        assert_eq!(response.completion_code, 0);
        assert_eq!(response.data, vec![0x01, 0x80, 0x04, 0x02, 0, 0, 0, 0]);
        let rebuilt = Message::response_to(&request, &response);
        assert_eq!(rebuilt.encode(), GCAC_RESPONSE);
    }

    #[test]
    fn checksums_and_lengths_are_checked() {
        let mut bad = GCAC_REQUEST;
        bad[2] ^= 1;
        assert_eq!(
            Message::decode(&bad),
            Err(DecodeError::BadChecksum { which: "header" })
        );
        let mut bad = GCAC_REQUEST;
        bad[8] ^= 1;
        assert_eq!(
            Message::decode(&bad),
            Err(DecodeError::BadChecksum { which: "data" })
        );
        assert!(matches!(
            Message::decode(&GCAC_REQUEST[..6]),
            Err(DecodeError::Truncated { .. })
        ));
        let request = Request::new(0x06, 0x01, vec![0; MAX_BODY_LEN + 1]);
        let long = Message::from_request(&request).encode();
        assert!(matches!(
            Message::decode(&long),
            Err(DecodeError::TooLong { .. })
        ));
    }
}
