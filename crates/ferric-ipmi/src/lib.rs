//! IPMI v2.0 over LAN (RMCP+), both ends.
//!
//! The crate is layered the sans-IO way:
//! - [`wire`]: pure parsing and serialising of RMCP, ASF, the IPMI v1.5 and v2.0 session
//!   wrappers, the RMCP+ handshake payloads and the IPMI message; every decoder takes
//!   `&[u8]` and returns a typed [`DecodeError`], never panics.
//! - [`crypto`]: the cipher suites 1, 2, 3 and 17: RAKP HMACs, SIK/K1/K2, integrity
//!   trailers and AES-CBC-128 confidentiality.
//! - [`client::ClientSession`] and [`server::Server`]: the session machines. They own no
//!   socket and no clock: they consume datagrams and `now`, and emit datagrams and events.
//! - [`commands`]: the IPMI commands Ferric drives (device id, chassis status and control,
//!   boot options, cipher suites) as types, encoded and decoded in both directions.
//! - [`net`] (feature `net`): a tokio UDP client over the session machine, with
//!   ipmitool's single bridging (Send Message).
//!
//! Its fuzz target (`fuzz/`, cargo-fuzz) runs [`fuzz::fuzz_entry`]; the seed corpus also
//! runs as a unit test.
#![forbid(unsafe_code)]

pub mod client;
pub mod codes;
pub mod commands;
pub mod crypto;
mod error;
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "net")]
pub mod net;
mod seq;
pub mod server;
pub mod wire;

pub use crypto::CipherSuite;
pub use error::{DecodeError, Error};
pub use seq::{SeqWindow, SEQUENCE_WINDOW};

use zeroize::Zeroizing;

/// Session privilege levels (IPMI v2.0 table 6-4). Ordered: a higher level includes the lower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    Callback = 1,
    User = 2,
    Operator = 3,
    Administrator = 4,
    Oem = 5,
}

impl Privilege {
    /// The level from the low nibble of a wire byte; `None` for 0 ("highest") and 6..=15.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value & 0x0f {
            1 => Some(Self::Callback),
            2 => Some(Self::User),
            3 => Some(Self::Operator),
            4 => Some(Self::Administrator),
            5 => Some(Self::Oem),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// ipmitool's and Ironic's names (`ADMINISTRATOR`, `OPERATOR`, ...), case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "CALLBACK" => Some(Self::Callback),
            "USER" => Some(Self::User),
            "OPERATOR" => Some(Self::Operator),
            "ADMINISTRATOR" | "ADMIN" => Some(Self::Administrator),
            "OEM" => Some(Self::Oem),
            _ => None,
        }
    }
}

/// A password (or Kg key): zeroised on drop, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(Zeroizing<Vec<u8>>);

impl Password {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(Zeroizing::new(bytes.into()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self::new(s.as_bytes())
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

/// The BMC's address on the IPMB, the usual responder of LAN requests.
pub const BMC_ADDRESS: u8 = 0x20;
/// The remote console's software id (IPMI table 5-4: 81h-8Dh are remote console ids).
pub const REMOTE_CONSOLE_ADDRESS: u8 = 0x81;

/// An IPMI request as the BMC's command handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Request network function (even).
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
    /// Requester's sequence number (6 bits), echoed in the response.
    pub rq_seq: u8,
    pub rq_addr: u8,
    pub rq_lun: u8,
    pub rs_addr: u8,
    pub rs_lun: u8,
}

impl Request {
    /// A request to the BMC from a remote console, LUN 0, sequence 0.
    pub fn new(netfn: u8, cmd: u8, data: impl Into<Vec<u8>>) -> Self {
        Self {
            netfn,
            cmd,
            data: data.into(),
            rq_seq: 0,
            rq_addr: REMOTE_CONSOLE_ADDRESS,
            rq_lun: 0,
            rs_addr: BMC_ADDRESS,
            rs_lun: 0,
        }
    }
}

/// An IPMI response: the completion code and the data after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub completion_code: u8,
    pub data: Vec<u8>,
}

impl Response {
    pub fn ok(data: impl Into<Vec<u8>>) -> Self {
        Self {
            completion_code: codes::CC_OK,
            data: data.into(),
        }
    }

    pub fn error(completion_code: u8) -> Self {
        Self {
            completion_code,
            data: Vec::new(),
        }
    }

    /// `Ok(data)` for completion code 0, else [`Error::Completion`] with the spec's meaning.
    pub fn into_result(self) -> Result<Vec<u8>, Error> {
        if self.completion_code == codes::CC_OK {
            Ok(self.data)
        } else {
            Err(Error::completion(self.completion_code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_debug_is_masked() {
        let p = Password::from("secret");
        assert_eq!(format!("{p:?}"), "***");
        assert_eq!(p.as_bytes(), b"secret");
    }

    #[test]
    fn privilege_round_trips_and_orders() {
        for v in 1..=5 {
            assert_eq!(Privilege::from_u8(v).map(Privilege::as_u8), Some(v));
        }
        assert_eq!(Privilege::from_u8(0), None);
        assert_eq!(Privilege::from_u8(6), None);
        assert!(Privilege::Operator < Privilege::Administrator);
        assert_eq!(
            Privilege::from_name("administrator"),
            Some(Privilege::Administrator)
        );
        assert_eq!(Privilege::from_name("root"), None);
    }

    #[test]
    fn response_into_result_maps_completion_codes() {
        assert_eq!(Response::ok(vec![1]).into_result().ok(), Some(vec![1]));
        let e = Response::error(0xc1).into_result().err();
        assert!(matches!(e, Some(Error::Completion { code: 0xc1, .. })));
    }
}
