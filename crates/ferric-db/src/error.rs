//! Storage errors, independent of the backend.

/// What went wrong in storage. `Backend` carries the driver's error for
/// logs; its text never reaches an API client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{kind} {ident} could not be found")]
    NotFound { kind: &'static str, ident: String },

    /// A unique column already holds the value.
    #[error("a {kind} with {field} {value} already exists")]
    Duplicate {
        kind: &'static str,
        field: String,
        value: String,
    },

    /// The node is reserved by another holder.
    #[error("node {node} is locked by host {holder}")]
    NodeLocked { node: String, holder: String },

    /// A write that requires the caller's reservation found the node no
    /// longer reserved by it.
    #[error("node {node} is no longer reserved by {holder}")]
    LockLost { node: String, holder: String },

    /// A row refers to a row that does not exist or is still referred to.
    #[error("{0}")]
    Reference(String),

    /// Stored data that does not parse: a bug or a hand-edited database.
    #[error("corrupt {what} in storage: {detail}")]
    Corrupt { what: &'static str, detail: String },

    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type DbResult<T> = Result<T, DbError>;
