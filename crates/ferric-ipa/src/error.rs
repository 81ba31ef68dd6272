//! IPA's serialized exceptions (`errors.RESTError`): the `command_error` of
//! a failed command and, via [`crate::fault`], the body of HTTP errors.
//!
//! Each kind has IPA's class name (`type`), HTTP code and fixed `message`;
//! `details` says what happened. `Display` is IPA's `str(e)`:
//! `"{message}: {details}"`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The IPA exception classes the agent can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400 `Invalid request body`.
    InvalidContent,
    /// 404 `Not found`.
    NotFound,
    /// 404 `Not found` (`<type> with id <id> not found.`).
    RequestedObjectNotFound,
    /// 500 `Command execution failed`.
    CommandExecution,
    /// 400 `Invalid command`.
    InvalidCommand,
    /// 400 `Invalid command parameters`.
    InvalidCommandParams,
    /// 409 `Agent is busy`.
    AgentIsBusy,
    /// 409, hardware manager versions differ from those Ironic recorded.
    VersionMismatch,
    /// 500 `Clean step failed`.
    Cleaning,
    /// 500 `Deploy step failed`.
    Deployment,
    /// 500 `Error downloading image`.
    ImageDownload,
    /// 500 `Error verifying image checksum`.
    ImageChecksum,
    /// 500 `Error writing image to device`.
    ImageWrite,
    /// 500 `Error erasing block device`.
    BlockDeviceErase,
    /// 500 `Block device caused unknown error`.
    BlockDevice,
    /// 404, no disk to deploy onto (root device hints matched nothing).
    DeviceNotFound,
    /// 500 `HardwareManager method is not compatible with hardware`.
    IncompatibleHardwareMethod,
    /// 500 `No HardwareManager found to handle method` (unknown step).
    HardwareManagerMethodNotFound,
    /// 500 `Error rebooting system`.
    SystemReboot,
    /// 500 `The provided image is not valid for use`.
    InvalidImage,
    /// 500 `Agent is not associated with an Ironic node`.
    UnknownNode,
}

impl ErrorKind {
    /// IPA's class name, serialized as `type`.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::InvalidContent => "InvalidContentError",
            Self::NotFound => "NotFound",
            Self::RequestedObjectNotFound => "RequestedObjectNotFoundError",
            Self::CommandExecution => "CommandExecutionError",
            Self::InvalidCommand => "InvalidCommandError",
            Self::InvalidCommandParams => "InvalidCommandParamsError",
            Self::AgentIsBusy => "AgentIsBusy",
            Self::VersionMismatch => "VersionMismatch",
            Self::Cleaning => "CleaningError",
            Self::Deployment => "DeploymentError",
            Self::ImageDownload => "ImageDownloadError",
            Self::ImageChecksum => "ImageChecksumError",
            Self::ImageWrite => "ImageWriteError",
            Self::BlockDeviceErase => "BlockDeviceEraseError",
            Self::BlockDevice => "BlockDeviceError",
            Self::DeviceNotFound => "DeviceNotFound",
            Self::IncompatibleHardwareMethod => "IncompatibleHardwareMethodError",
            Self::HardwareManagerMethodNotFound => "HardwareManagerMethodNotFound",
            Self::SystemReboot => "SystemRebootError",
            Self::InvalidImage => "InvalidImage",
            Self::UnknownNode => "UnknownNodeError",
        }
    }

    /// The HTTP status IPA uses for it (`status_code`, serialized as `code`).
    pub fn code(self) -> u16 {
        match self {
            Self::InvalidContent | Self::InvalidCommand | Self::InvalidCommandParams => 400,
            Self::NotFound | Self::RequestedObjectNotFound | Self::DeviceNotFound => 404,
            Self::AgentIsBusy | Self::VersionMismatch => 409,
            _ => 500,
        }
    }

    /// IPA's fixed `message`.
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidContent => "Invalid request body",
            Self::NotFound | Self::RequestedObjectNotFound => "Not found",
            Self::CommandExecution => "Command execution failed",
            Self::InvalidCommand => "Invalid command",
            Self::InvalidCommandParams => "Invalid command parameters",
            Self::AgentIsBusy => "Agent is busy",
            Self::VersionMismatch => {
                "Hardware managers version mismatch, reload agent with correct version"
            }
            Self::Cleaning => "Clean step failed",
            Self::Deployment => "Deploy step failed",
            Self::ImageDownload => "Error downloading image",
            Self::ImageChecksum => "Error verifying image checksum",
            Self::ImageWrite => "Error writing image to device",
            Self::BlockDeviceErase => "Error erasing block device",
            Self::BlockDevice => "Block device caused unknown error",
            Self::DeviceNotFound => {
                "Error finding the disk or partition device to deploy the image onto"
            }
            Self::IncompatibleHardwareMethod => {
                "HardwareManager method is not compatible with hardware"
            }
            Self::HardwareManagerMethodNotFound => "No HardwareManager found to handle method",
            Self::SystemReboot => "Error rebooting system",
            Self::InvalidImage => "The provided image is not valid for use",
            Self::UnknownNode => "Agent is not associated with an Ironic node",
        }
    }
}

/// An IPA exception as it travels: `{"type", "code", "message", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestError {
    /// IPA's class name, e.g. `DeploymentError`.
    #[serde(rename = "type")]
    pub error_type: String,
    /// HTTP status code.
    pub code: u16,
    /// The class's fixed message.
    pub message: String,
    /// What went wrong.
    pub details: String,
}

impl RestError {
    /// An error of `kind` with `details`.
    pub fn new(kind: ErrorKind, details: impl Into<String>) -> Self {
        Self {
            error_type: kind.type_name().to_owned(),
            code: kind.code(),
            message: kind.message().to_owned(),
            details: details.into(),
        }
    }

    /// `Agent is busy: executing command NAME` (409), NAME being the running
    /// command's short name such as `execute_deploy_step`.
    pub fn agent_is_busy(running_command: &str) -> Self {
        Self::new(
            ErrorKind::AgentIsBusy,
            format!("executing command {running_command}"),
        )
    }

    /// `Not found: <what> with id <id> not found.` (404).
    pub fn object_not_found(what: &str, id: &str) -> Self {
        Self::new(
            ErrorKind::RequestedObjectNotFound,
            format!("{what} with id {id} not found."),
        )
    }

    /// The `VersionMismatch` error, with both version maps written as IPA
    /// (Python) prints dicts.
    pub fn version_mismatch(agent: &serde_json::Value, ironic: &serde_json::Value) -> Self {
        Self::new(
            ErrorKind::VersionMismatch,
            format!(
                "Current versions: {}, versions used by ironic: {}",
                python_repr(agent),
                python_repr(ironic)
            ),
        )
    }

    /// True when the kind is a client error (faultcode `Client`).
    pub fn is_client_error(&self) -> bool {
        self.code < 500
    }
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.details)
    }
}

impl std::error::Error for RestError {}

/// JSON written the way Python's `repr` prints the same dict or list.
pub fn python_repr(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("'{k}': {}", python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_like_ipa() {
        let e = RestError::new(ErrorKind::InvalidCommand, "Unknown command: nope");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "InvalidCommandError", "code": 400, "message": "Invalid command", "details": "Unknown command: nope"})
        );
        assert_eq!(e.to_string(), "Invalid command: Unknown command: nope");
    }

    #[test]
    fn busy_and_not_found_texts() {
        let busy = RestError::agent_is_busy("execute_deploy_step");
        assert_eq!(busy.code, 409);
        assert_eq!(
            busy.to_string(),
            "Agent is busy: executing command execute_deploy_step"
        );
        let nf = RestError::object_not_found("Extension", "foo");
        assert_eq!(
            nf.to_string(),
            "Not found: Extension with id foo not found."
        );
        assert_eq!(nf.code, 404);
    }

    #[test]
    fn version_mismatch_reads_like_python() {
        let e = RestError::version_mismatch(&json!({"a": "1.0"}), &json!({"a": "0.9", "b": null}));
        assert_eq!(
            e.details,
            "Current versions: {'a': '1.0'}, versions used by ironic: {'a': '0.9', 'b': None}"
        );
        assert_eq!(e.code, 409);
    }

    #[test]
    fn parses_an_ipa_command_error() {
        let text = r#"{"type": "ImageChecksumError", "code": 500, "message": "Error verifying image checksum", "details": "Image failed to verify against checksum. location: x; image ID: y; image checksum: a; verification checksum: b"}"#;
        let e: RestError = serde_json::from_str(text).unwrap();
        assert_eq!(e.error_type, "ImageChecksumError");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
    }
}
