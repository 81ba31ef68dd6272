//! What a driver interface can fail with.
//!
//! The variants tell apart what the conductor handles differently: the
//! user's mistake (a 400), an operation the interface lacks, a call that ran
//! out of time, a failure worth retrying and one that will happen again.
//! `Display` is the text for `last_error`; the underlying cause is kept as
//! the error's `source` for logs, never mixed into the text.

use std::error::Error as StdError;
use std::sync::Arc;

use ferric_core::InterfaceKind;

/// A failure's cause, kept for logs.
pub type Source = Arc<dyn StdError + Send + Sync>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The node's configuration or the request is wrong; the user must fix
    /// it. Shown to the user as a 400.
    #[error("{0}")]
    InvalidParameter(String),

    /// A required `driver_info`/`instance_info` value is absent.
    #[error("{0}")]
    MissingParameter(String),

    /// The interface has no such operation (`no-console` asked to start a
    /// console, for instance).
    #[error("{kind} interface {name} does not support {operation}")]
    Unsupported {
        kind: InterfaceKind,
        name: String,
        operation: &'static str,
    },

    /// The interface name is known to Ferric but not built yet; no node can
    /// use it until it is.
    #[error("the {kind} interface {name} is not available in this version of Ferric")]
    Unavailable { kind: InterfaceKind, name: String },

    /// The call did not finish in the time it was given.
    #[error("{operation} did not finish within {seconds} seconds")]
    Timeout { operation: String, seconds: u64 },

    /// The hardware (or agent) could not be reached or was busy; the same
    /// call may succeed later.
    #[error("{message}")]
    Transient {
        message: String,
        #[source]
        source: Option<Source>,
    },

    /// The hardware or the operation failed, and retrying will not help.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Option<Source>,
    },
}

impl DriverError {
    /// A permanent failure described by `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        DriverError::Failed {
            message: message.into(),
            source: None,
        }
    }

    /// A permanent failure, keeping its cause.
    pub fn failed_by(
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        DriverError::Failed {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A failure that may go away, keeping its cause.
    pub fn transient(message: impl Into<String>, source: Option<Source>) -> Self {
        DriverError::Transient {
            message: message.into(),
            source,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DriverError::Transient { .. } | DriverError::Timeout { .. }
        )
    }

    /// The message and every cause under it, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = StdError::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_stays_out_of_the_text_but_in_the_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = DriverError::failed_by("BMC 10.0.0.1 did not answer", io);
        assert_eq!(e.to_string(), "BMC 10.0.0.1 did not answer");
        assert_eq!(e.chain(), "BMC 10.0.0.1 did not answer: refused");
        assert!(!e.is_transient());
        let t = DriverError::Timeout {
            operation: "power.get_power_state".into(),
            seconds: 60,
        };
        assert!(t.is_transient());
        assert_eq!(
            t.to_string(),
            "power.get_power_state did not finish within 60 seconds"
        );
    }
}
