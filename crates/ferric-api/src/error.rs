//! Errors as Ironic shows them: `{"error_message": "<JSON string>"}` with a
//! fault (`faultcode`, `faultstring`, `debuginfo`) or, for routing errors,
//! `code`/`title`/`description`. Every conductor and storage error is
//! mapped to its status here, once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferric_conductor::ConductorError;
use ferric_db::DbError;

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Routing-level errors use Ironic's (pecan's) other body shape.
    pub routing: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            routing: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 406 for a feature newer than the request's microversion.
    pub fn not_acceptable() -> Self {
        ApiError::new(StatusCode::NOT_ACCEPTABLE, "Request not acceptable.")
    }

    pub fn needs_version(minor: u32) -> Self {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("Request not acceptable. The minimal required API version should be 1.{minor}"),
        )
    }

    /// A routing error (unknown URL, wrong method, version refused).
    pub fn routing(status: StatusCode, description: impl Into<String>) -> Self {
        ApiError {
            status,
            message: description.into(),
            routing: true,
        }
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred; the server log has the details.",
        )
    }

    /// The body: the inner JSON encoded as a string, as Ironic does.
    pub fn body(&self) -> String {
        let inner = if self.routing {
            serde_json::json!({
                "code": self.status.as_u16(),
                "title": self.status.canonical_reason().unwrap_or(""),
                "description": self.message,
            })
        } else {
            let faultcode = if self.status.is_client_error() {
                "Client"
            } else {
                "Server"
            };
            serde_json::json!({"faultcode": faultcode, "faultstring": self.message, "debuginfo": null})
        };
        serde_json::json!({"error_message": inner.to_string()}).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

fn duplicate_message(kind: &str, field: &str, value: &str) -> String {
    match (kind, field) {
        ("port", "address") => format!("A port with MAC address {value} already exists."),
        ("portgroup", "address") => format!("A portgroup with MAC address {value} already exists."),
        ("node", "instance_uuid") => format!("Instance {value} is already associated with a node."),
        (_, "uuid") => format!("A {kind} with UUID {value} already exists."),
        (_, field) => format!("A {kind} with {field} {value} already exists."),
    }
}

impl From<ConductorError> for ApiError {
    fn from(e: ConductorError) -> Self {
        use ConductorError as C;
        let status = match &e {
            C::NotFound { .. } | C::TraitNotFound { .. } => StatusCode::NOT_FOUND,
            C::NodeLocked { .. }
            | C::InvalidState(_)
            | C::Conflict(_)
            | C::NodeAssociated { .. }
            | C::PowerStateFailure(_)
            | C::Duplicate { .. } => StatusCode::CONFLICT,
            C::InvalidStateRequested { .. }
            | C::NodeInMaintenance { .. }
            | C::NodeIsRetired { .. }
            | C::Unsupported { .. }
            | C::Invalid(_) => StatusCode::BAD_REQUEST,
            C::NodeProtected(_) => StatusCode::FORBIDDEN,
            C::NoFreeWorker | C::TemporaryFailure(_) => StatusCode::SERVICE_UNAVAILABLE,
            C::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            C::Storage(inner) => {
                tracing::error!(error = ?inner, "storage failure");
                return ApiError::internal();
            }
        };
        let message = match &e {
            C::Duplicate { kind, field, value } => duplicate_message(kind, field, value),
            other => other.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        ConductorError::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_ironic_captures() {
        let e = ApiError::not_found("Node nonexistent could not be found.");
        assert_eq!(
            e.body(),
            r#"{"error_message":"{\"faultcode\":\"Client\",\"faultstring\":\"Node nonexistent could not be found.\",\"debuginfo\":null}"}"#
        );
        let r = ApiError::routing(StatusCode::NOT_ACCEPTABLE, "Version 1.999 was requested");
        let outer: serde_json::Value = serde_json::from_str(&r.body()).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(outer["error_message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["code"], 406);
        assert_eq!(inner["title"], "Not Acceptable");
        assert_eq!(inner["description"], "Version 1.999 was requested");
    }
}
