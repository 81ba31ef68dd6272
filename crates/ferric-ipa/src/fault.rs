//! Error bodies on both sides of the protocol.
//!
//! * The agent's command API answers errors as WSME did:
//!   `{"faultcode": "Client"|"Server", "faultstring": "..."}` with the
//!   error's HTTP status ([`AgentFault`]). werkzeug's own errors read
//!   `"401 Unauthorized: Token invalid."`; IPA's exceptions read
//!   `"{message}: {details}"`.
//! * Ironic's API answers `{"error_message": "<JSON text of {faultcode,
//!   faultstring, debuginfo}>"}` ([`IronicError`]).

use serde::{Deserialize, Serialize};

use crate::error::RestError;

/// The agent's error body, with the HTTP status it goes out with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFault {
    /// `Client` below 500, `Server` from 500.
    pub faultcode: String,
    /// The error text.
    pub faultstring: String,
    /// The HTTP status (not part of the body).
    #[serde(skip)]
    pub status: u16,
}

impl AgentFault {
    fn with_status(status: u16, faultstring: String) -> Self {
        let faultcode = if status >= 500 { "Server" } else { "Client" };
        Self {
            faultcode: faultcode.to_owned(),
            faultstring,
            status,
        }
    }

    /// A werkzeug HTTP exception: `"{code} {name}: {description}"`.
    pub fn http(status: u16, description: &str) -> Self {
        Self::with_status(
            status,
            format!("{status} {}: {description}", reason(status)),
        )
    }

    /// 401 for a missing or wrong `agent_token`: IPA's exact refusal.
    pub fn token_invalid() -> Self {
        Self::http(401, "Token invalid.")
    }

    /// 400 when the body lacks `name` or a dict `params`.
    pub fn missing_name_or_params() -> Self {
        Self::http(400, "Missing or invalid name or params")
    }

    /// 400 when the body is not JSON (werkzeug's `get_json` failure).
    pub fn bad_json(error: &str) -> Self {
        Self::http(400, &format!("Failed to decode JSON object: {error}"))
    }

    /// 404 for a path the API does not route.
    pub fn route_not_found() -> Self {
        Self::http(
            404,
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.",
        )
    }

    /// 405 for a routed path with another method.
    pub fn method_not_allowed() -> Self {
        Self::http(405, "The method is not allowed for the requested URL.")
    }

    /// An IPA exception raised out of the handler (busy, unknown command,
    /// invalid params, ...): its own status and `str(e)`.
    pub fn from_rest(error: &RestError) -> Self {
        Self::with_status(error.code, error.to_string())
    }
}

impl From<RestError> for AgentFault {
    fn from(error: RestError) -> Self {
        Self::from_rest(&error)
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        _ => "Internal Server Error",
    }
}

/// Ironic's error body: `error_message` holds JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IronicError {
    /// JSON text of [`IronicFault`] (or plain text from old servers).
    pub error_message: String,
}

/// The inside of Ironic's `error_message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IronicFault {
    /// `Client` or `Server`.
    pub faultcode: String,
    /// The message.
    pub faultstring: String,
    /// Always null unless Ironic runs in debug mode.
    pub debuginfo: Option<String>,
}

impl IronicError {
    /// The body Ironic sends for `faultstring` with HTTP `status`.
    pub fn new(status: u16, faultstring: &str) -> Self {
        let fault = IronicFault {
            faultcode: if status >= 500 { "Server" } else { "Client" }.to_owned(),
            faultstring: faultstring.to_owned(),
            debuginfo: None,
        };
        let error_message =
            serde_json::to_string(&fault).unwrap_or_else(|_| faultstring.to_owned());
        Self { error_message }
    }
}

/// The message IPA logs for an Ironic error response
/// (`_error_from_response`): `faultstring`, else `title`, else the body.
pub fn ironic_error_text(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body).into_owned();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return raw;
    };
    let inner = match value.get("error_message") {
        Some(serde_json::Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
        Some(other) => other.clone(),
        None => value,
    };
    ["faultstring", "title"]
        .iter()
        .find_map(|key| inner.get(key).and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    #[test]
    fn werkzeug_texts() {
        let f = AgentFault::token_invalid();
        assert_eq!(f.status, 401);
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."})
        );
        assert_eq!(
            AgentFault::missing_name_or_params().faultstring,
            "400 Bad Request: Missing or invalid name or params"
        );
        assert_eq!(AgentFault::method_not_allowed().status, 405);
    }

    #[test]
    fn rest_errors_keep_their_status() {
        let busy = AgentFault::from(RestError::agent_is_busy("execute_clean_step"));
        assert_eq!(busy.status, 409);
        assert_eq!(busy.faultcode, "Client");
        assert_eq!(
            busy.faultstring,
            "Agent is busy: executing command execute_clean_step"
        );
        let server = AgentFault::from(RestError::new(ErrorKind::CommandExecution, "boom"));
        assert_eq!(server.faultcode, "Server");
        assert_eq!(server.status, 500);
    }

    #[test]
    fn parses_the_captured_ironic_error() {
        let body = br#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\", \"debuginfo\": null}"}"#;
        assert_eq!(
            ironic_error_text(body),
            "Invalid or missing agent token received."
        );
        let parsed: IronicError = serde_json::from_slice(body).unwrap();
        let inner: IronicFault = serde_json::from_str(&parsed.error_message).unwrap();
        assert_eq!(inner.debuginfo, None);
        // Python spaces its JSON differently; compare the decoded insides.
        let built = IronicError::new(400, "Invalid or missing agent token received.");
        assert_eq!(
            serde_json::from_str::<IronicFault>(&built.error_message).unwrap(),
            inner
        );
        assert_eq!(ironic_error_text(b"not json"), "not json");
        assert_eq!(ironic_error_text(br#"{"title": "Conflict"}"#), "Conflict");
    }
}
