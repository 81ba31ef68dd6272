//! The client's errors. None carries a password or session token: causes are kept as text,
//! and request URLs are paths on the BMC.

use crate::model::{ParseError, RedfishError};
use crate::request::RequestError;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to a BMC.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `redfish_address` is not a usable URL.
    #[error("invalid Redfish address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    /// The CA bundle of `VerifyCa::Bundle` cannot be read.
    #[error("cannot use the CA bundle {}: {cause}", path.display())]
    CaBundle { path: PathBuf, cause: String },
    /// The BMC could not be reached (after the retries).
    #[error("cannot reach the BMC at {address}: {cause}")]
    Connection { address: String, cause: String },
    /// The BMC did not answer in time.
    #[error("the BMC at {address} did not answer {method} {path} within {after:?}")]
    Timeout {
        address: String,
        method: String,
        path: String,
        after: Duration,
    },
    /// The BMC refused the credentials.
    #[error("401 from BMC at {address}: check redfish_username and redfish_password")]
    AuthFailed { address: String },
    /// The BMC answered with an error status; `messages` are its `@Message.ExtendedInfo`.
    #[error(
        "HTTP {status} from BMC at {address} for {method} {path}{}",
        format_messages(messages)
    )]
    Http {
        address: String,
        method: String,
        path: String,
        status: u16,
        messages: Vec<String>,
        body: Option<Box<RedfishError>>,
    },
    /// The session POST succeeded but did not yield a session.
    #[error("the BMC at {address} did not open a session: {reason}")]
    SessionRefused { address: String, reason: String },
    /// A body could not be read as the resource expected.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A request the BMC says it would not take (a reset type or boot target not allowed).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The systems collection is empty.
    #[error("the BMC at {address} lists no ComputerSystem")]
    NoSystem { address: String },
    /// Several systems and none chosen.
    #[error(
        "the BMC at {address} manages {} systems; set redfish_system_id to one of: {}",
        systems.len(),
        systems.join(", ")
    )]
    AmbiguousSystem {
        address: String,
        systems: Vec<String>,
    },
}

fn format_messages(messages: &[String]) -> String {
    if messages.is_empty() {
        String::new()
    } else {
        format!(": {}", messages.join("; "))
    }
}

impl Error {
    /// The HTTP status, for [`Error::Http`] (401 for [`Error::AuthFailed`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            Error::AuthFailed { .. } => Some(401),
            _ => None,
        }
    }

    /// The BMC's error body, for [`Error::Http`].
    pub fn redfish_error(&self) -> Option<&RedfishError> {
        match self {
            Error::Http { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    /// Whether trying again later may help: the BMC was unreachable, slow or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connection { .. } | Error::Timeout { .. } => true,
            Error::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
