//! The crate's errors: [`DecodeError`] for malformed bytes, [`Error`] for everything a caller
//! sees. Neither ever carries a password, a key or a packet's secret bytes.

use crate::codes;

/// Why a datagram or payload was refused by a decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} truncated: needs {needed} bytes, has {got}")]
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    #[error("datagram of {len} bytes is larger than the {max}-byte limit")]
    Oversized { len: usize, max: usize },
    #[error("{what}: {len} bytes where at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("not an RMCP packet (version {version:#04x})")]
    NotRmcp { version: u8 },
    #[error("unsupported RMCP message class {class:#04x}")]
    UnsupportedClass { class: u8 },
    #[error("not an ASF message (IANA {iana:#010x})")]
    NotAsf { iana: u32 },
    #[error("unsupported ASF message type {kind:#04x}")]
    UnsupportedAsfType { kind: u8 },
    #[error("unsupported session authentication type {auth_type:#04x}")]
    UnsupportedAuthType { auth_type: u8 },
    #[error("unsupported RMCP+ payload type {payload_type:#04x}")]
    UnsupportedPayloadType { payload_type: u8 },
    #[error("{what} length {declared} does not match the {actual} bytes present")]
    LengthMismatch {
        what: &'static str,
        declared: usize,
        actual: usize,
    },
    #[error("bad {which} checksum")]
    BadChecksum { which: &'static str },
    #[error("bad {what} pad")]
    BadPad { what: &'static str },
    #[error("bad session trailer next-header byte {value:#04x}")]
    BadNextHeader { value: u8 },
    #[error("integrity check failed")]
    BadIntegrity,
    #[error("{what}: {value:#04x} is not a valid value")]
    InvalidField { what: &'static str, value: u8 },
}

/// The crate's error: what went wrong talking to (or being) a BMC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed IPMI packet: {0}")]
    Decode(#[from] DecodeError),
    /// Every attempt went unanswered.
    #[error("no answer from BMC at {peer} after {attempts} attempts")]
    NoAnswer { peer: String, attempts: u32 },
    /// The BMC answered with a non-zero completion code.
    #[error("BMC returned completion code {code:#04x}: {meaning}")]
    Completion { code: u8, meaning: &'static str },
    /// The BMC refused a step of the RMCP+ handshake with a status code (IPMI table 13-15).
    #[error("BMC refused the {step}: RMCP+ status {status:#04x} ({meaning}){hint}")]
    Refused {
        step: &'static str,
        status: u8,
        meaning: &'static str,
        hint: &'static str,
    },
    /// The BMC's RAKP 2 was keyed with another password than ours.
    #[error("wrong password for user {username:?}: the BMC's RAKP 2 fails its integrity check (invalid integrity check value)")]
    WrongPassword { username: String },
    /// The BMC's RAKP 4 does not verify: a wrong Kg, or a broken BMC.
    #[error("RAKP 4 integrity check value from the BMC does not verify (wrong Kg?)")]
    BadRakp4,
    #[error("BMC at {peer} does not offer IPMI v2.0 / RMCP+")]
    NoIpmi2 { peer: String },
    #[error("no cipher suite in common with the BMC (ours: {ours}; BMC's: {theirs})")]
    NoCipherSuite { ours: String, theirs: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("IPMI protocol error: {0}")]
    Protocol(String),
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    #[error("the session is not established")]
    NotEstablished,
    #[error("the session is closed")]
    Closed,
    #[error("I/O error talking to BMC at {peer}: {source}")]
    Io {
        peer: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// [`Error::Completion`] with the spec's text for `code`.
    pub fn completion(code: u8) -> Self {
        Self::Completion {
            code,
            meaning: codes::completion_meaning(code),
        }
    }

    /// [`Error::Refused`] for an RMCP+ status code in `step`.
    pub fn refused(step: &'static str, status: u8) -> Self {
        let hint = match status {
            codes::RMCP_UNAUTHORIZED_NAME => ": unknown user name",
            codes::RMCP_INVALID_INTEGRITY_CHECK => ": wrong password",
            _ => "",
        };
        Self::Refused {
            step,
            status,
            meaning: codes::rmcp_status_meaning(status),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_happened() {
        let e = Error::NoAnswer {
            peer: "10.0.0.1:623".into(),
            attempts: 3,
        };
        assert_eq!(
            e.to_string(),
            "no answer from BMC at 10.0.0.1:623 after 3 attempts"
        );
        let e = Error::refused("RAKP 1", 0x0d);
        assert_eq!(
            e.to_string(),
            "BMC refused the RAKP 1: RMCP+ status 0x0d (unauthorized name): unknown user name"
        );
        assert_eq!(
            Error::completion(0xcc).to_string(),
            "BMC returned completion code 0xcc: invalid data field in request"
        );
    }
}
