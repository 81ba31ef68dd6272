//! What a driver interface can fail with.

use ferric_core::InterfaceKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

    /// The hardware or the operation failed.
    #[error("{0}")]
    Failed(String),
}
