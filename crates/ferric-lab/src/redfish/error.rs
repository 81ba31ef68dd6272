//! Redfish's error body (`error.@Message.ExtendedInfo`) with the Base
//! registry's message ids, as one type every handler returns.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: an HTTP status and a Base registry message.
#[derive(Debug, Clone)]
pub struct RedfishError {
    status: StatusCode,
    message_id: &'static str,
    message: String,
    related: Option<String>,
}

impl RedfishError {
    fn new(status: StatusCode, message_id: &'static str, message: impl Into<String>) -> Self {
        RedfishError {
            status,
            message_id,
            message: message.into(),
            related: None,
        }
    }

    /// Names the property at fault (`#/Boot/BootSourceOverrideTarget`).
    pub fn about(mut self, property: &str) -> Self {
        self.related = Some(property.to_string());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceMissingAtURI",
            format!("{what} does not exist"),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "NoValidSession",
            "there is no valid session or credentials for this resource",
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceTemporarilyUnavailable",
            "the service is temporarily unavailable (lab fault)",
        )
    }

    pub fn session_limit() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SessionLimitExceeded",
            "the session was not created: the number of sessions is at its limit",
        )
    }

    pub fn malformed(message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedJSON", message)
    }

    pub fn value_not_in_list(property: &str, value: &str, allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueNotInList",
            format!(
                "{value:?} is not an allowed value of {property}: {}",
                allowed.join(", ")
            ),
        )
        .about(&format!("#/{property}"))
    }

    pub fn property_unknown(property: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyUnknown",
            format!("the property {property} is not known or cannot be changed here"),
        )
        .about(&format!("#/{property}"))
    }

    pub fn property_type(property: &str, expected: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "PropertyValueTypeError",
            format!("{property} must be {expected}"),
        )
        .about(&format!("#/{property}"))
    }

    pub fn parameter_missing(action: &str, parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterMissing",
            format!("the action {action} requires the parameter {parameter}"),
        )
        .about(&format!("#/{parameter}"))
    }

    pub fn parameter_not_supported(action: &str, parameter: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ActionParameterNotSupported",
            format!("the value {value:?} of {parameter} is not supported by {action}"),
        )
        .about(&format!("#/{parameter}"))
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "the ETag in If-Match is not the resource's current one",
        )
    }

    pub fn conflict(message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, "OperationNotAllowed", message)
    }

    pub fn internal(message: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    fn body(&self) -> serde_json::Value {
        let mut info = json!({
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": format!("Base.1.8.{}", self.message_id),
            "Message": self.message,
            "Severity": if self.status.is_server_error() { "Critical" } else { "Warning" },
            "Resolution": "See the message.",
        });
        if let (Some(related), Some(object)) = (&self.related, info.as_object_mut()) {
            object.insert("RelatedProperties".into(), json!([related]));
        }
        json!({
            "error": {
                "code": "Base.1.8.GeneralError",
                "message": self.message,
                "@Message.ExtendedInfo": [info],
            }
        })
    }
}

impl IntoResponse for RedfishError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            self.body().to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ferric-lab\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_redfish_shape() {
        let e = RedfishError::value_not_in_list(
            "Boot/BootSourceOverrideTarget",
            "Floppy",
            &["Pxe", "Hdd"],
        );
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let body = e.body();
        let info = &body["error"]["@Message.ExtendedInfo"][0];
        assert_eq!(info["MessageId"], "Base.1.8.PropertyValueNotInList");
        assert_eq!(
            info["RelatedProperties"][0],
            "#/Boot/BootSourceOverrideTarget"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"Floppy\""));
    }
}
