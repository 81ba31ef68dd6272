//! What a conductor operation can fail with. Texts are Ironic's; the API
//! maps each variant to Ironic's status code once, at its edge.

use ferric_db::DbError;
use ferric_drivers::{CompositionError, DriverError};

#[derive(Debug, thiserror::Error)]
pub enum ConductorError {
    #[error("{kind} {ident} could not be found.")]
    NotFound { kind: &'static str, ident: String },

    #[error("Node {node} doesn't have a trait '{name}'")]
    TraitNotFound { node: String, name: String },

    #[error("Node {node} is locked by host {holder}, please retry after the current operation is completed.")]
    NodeLocked { node: String, holder: String },

    /// A verb the node's provision state does not accept (400).
    #[error("The requested action \"{action}\" can not be performed on node \"{node}\" while it is in state \"{state}\".")]
    InvalidStateRequested {
        action: String,
        node: String,
        state: String,
    },

    /// The node's state forbids the operation (409).
    #[error("{0}")]
    InvalidState(String),

    /// The request contradicts other records, e.g. a port group's other
    /// ports (409).
    #[error("{0}")]
    Conflict(String),

    #[error(
        "The {op} operation can't be performed on node {node} because it's in maintenance mode."
    )]
    NodeInMaintenance { op: &'static str, node: String },

    #[error("The {op} operation can't be performed on node {node} because it is retired.")]
    NodeIsRetired { op: &'static str, node: String },

    #[error("Node {0} is protected and cannot be undeployed, rebuilt or deleted")]
    NodeProtected(String),

    #[error("Node {node} is associated with instance {instance}.")]
    NodeAssociated { node: String, instance: String },

    #[error("Driver {driver} does not support {extension} (disabled or not implemented).")]
    Unsupported { driver: String, extension: String },

    #[error("Failed to set node power state to {0}.")]
    PowerStateFailure(String),

    /// Bad input the user must fix (400).
    #[error("{0}")]
    Invalid(String),

    #[error("a {kind} with {field} {value} already exists")]
    Duplicate {
        kind: &'static str,
        field: String,
        value: String,
    },

    #[error("Requested action cannot be performed due to lack of free conductor workers.")]
    NoFreeWorker,

    /// Try again later (503).
    #[error("{0}")]
    TemporaryFailure(String),

    /// A driver operation failed outright (500).
    #[error("{0}")]
    Failed(String),

    #[error("storage failed")]
    Storage(#[source] DbError),
}

impl From<DbError> for ConductorError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound { kind, ident } => ConductorError::NotFound { kind, ident },
            DbError::Duplicate { kind, field, value } => {
                ConductorError::Duplicate { kind, field, value }
            }
            DbError::NodeLocked { node, holder } => ConductorError::NodeLocked { node, holder },
            DbError::Reference(msg) => ConductorError::Invalid(msg),
            other => ConductorError::Storage(other),
        }
    }
}

impl From<CompositionError> for ConductorError {
    fn from(e: CompositionError) -> Self {
        ConductorError::Invalid(e.to_string())
    }
}

/// Operations Ironic's base classes refuse by their own name rather than
/// by their interface's.
const NAMED_BY_OPERATION: &[&str] = &[
    "abort",
    "get_secure_boot_state",
    "set_secure_boot_state",
    "get_supported_indicators",
    "get_indicator_state",
    "set_indicator_state",
    "get_virtual_media",
    "attach_virtual_media",
    "detach_virtual_media",
];

impl ConductorError {
    /// A driver error met while serving a request synchronously.
    pub fn from_driver(driver: &str, e: DriverError) -> Self {
        match e {
            DriverError::InvalidParameter(m) | DriverError::MissingParameter(m) => {
                ConductorError::Invalid(m)
            }
            // Ironic's `no-*` interfaces name their interface type; the
            // base classes refuse some operations by their own name.
            DriverError::Unsupported {
                kind, operation, ..
            } => ConductorError::Unsupported {
                driver: driver.to_owned(),
                extension: if NAMED_BY_OPERATION.contains(&operation) {
                    operation.to_owned()
                } else {
                    kind.to_string()
                },
            },
            DriverError::Unavailable { .. } => ConductorError::Invalid(e.to_string()),
            DriverError::Timeout { .. }
            | DriverError::Transient { .. }
            | DriverError::Failed { .. } => {
                tracing::warn!(error = %e.chain(), "driver call failed");
                ConductorError::Failed(e.to_string())
            }
        }
    }
}

pub type Result<T, E = ConductorError> = std::result::Result<T, E>;
