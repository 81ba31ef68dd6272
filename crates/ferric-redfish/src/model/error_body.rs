//! The Redfish error body: `{"error": {"code", "message", "@Message.ExtendedInfo": [...]}}`.

use super::{lenient, lenient_list, none, one_or_many};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An error response body. `@Message.ExtendedInfo` is read inside `error` and at the top level,
/// as one object or a list (vendors do each).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedfishError {
    #[serde(rename = "error", with = "lenient", skip_serializing_if = "none")]
    pub error: Option<ErrorDetail>,
    #[serde(
        rename = "@Message.ExtendedInfo",
        with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extended_info: Vec<Message>,
}

/// The `error` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(rename = "code", with = "lenient", skip_serializing_if = "none")]
    pub code: Option<String>,
    #[serde(rename = "message", with = "lenient", skip_serializing_if = "none")]
    pub message: Option<String>,
    #[serde(
        rename = "@Message.ExtendedInfo",
        with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extended_info: Vec<Message>,
}

/// One `Message` of `@Message.ExtendedInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Message {
    #[serde(rename = "MessageId", with = "lenient", skip_serializing_if = "none")]
    pub message_id: Option<String>,
    #[serde(rename = "Message", with = "lenient", skip_serializing_if = "none")]
    pub message: Option<String>,
    #[serde(rename = "Severity", with = "lenient", skip_serializing_if = "none")]
    pub severity: Option<String>,
    #[serde(rename = "Resolution", with = "lenient", skip_serializing_if = "none")]
    pub resolution: Option<String>,
    #[serde(
        rename = "RelatedProperties",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub related_properties: Option<Vec<String>>,
    #[serde(
        rename = "MessageArgs",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub message_args: Option<Vec<String>>,
}

impl Message {
    /// The message text, else its id.
    pub fn text(&self) -> Option<&str> {
        self.message.as_deref().or(self.message_id.as_deref())
    }
}

impl RedfishError {
    /// Reads an error body; `None` when the body is not a JSON object (a bare HTML page).
    pub fn parse(body: &[u8]) -> Option<RedfishError> {
        let value: Value = serde_json::from_slice(body).ok()?;
        if !value.is_object() {
            return None;
        }
        RedfishError::deserialize(value).ok()
    }

    /// `error.code`, e.g. `Base.1.8.GeneralError`.
    pub fn code(&self) -> Option<&str> {
        self.error.as_ref()?.code.as_deref()
    }

    /// All extended messages, those inside `error` first.
    pub fn extended(&self) -> impl Iterator<Item = &Message> {
        self.error
            .iter()
            .flat_map(|e| e.extended_info.iter())
            .chain(self.extended_info.iter())
    }

    /// The texts to show a person: the extended messages' texts, else `error.message`, else
    /// the extended message ids.
    pub fn messages(&self) -> Vec<String> {
        let texts: Vec<String> = self.extended().filter_map(|m| m.message.clone()).collect();
        if !texts.is_empty() {
            return texts;
        }
        if let Some(message) = self.error.as_ref().and_then(|e| e.message.clone()) {
            return vec![message];
        }
        self.extended()
            .filter_map(|m| m.message_id.clone())
            .collect()
    }

    /// The most telling text, as sushy picks it: the first Critical message, else the first
    /// Warning, else `error.message`.
    pub fn detail(&self) -> Option<&str> {
        ["Critical", "Warning"]
            .iter()
            .find_map(|severity| {
                self.extended()
                    .find(|m| m.severity.as_deref() == Some(*severity))
                    .and_then(|m| m.message.as_deref())
            })
            .or_else(|| self.error.as_ref()?.message.as_deref())
    }

    /// The `RelatedProperties` of every extended message.
    pub fn related_properties(&self) -> impl Iterator<Item = &str> {
        self.extended()
            .flat_map(|m| m.related_properties.iter().flatten())
            .map(String::as_str)
    }

    /// Whether `error.code` or any message id ends with `suffix` (ids carry registry versions:
    /// `Base.1.5.ActionParameterMissing`).
    pub fn has_id_ending(&self, suffix: &str) -> bool {
        self.code().is_some_and(|c| c.ends_with(suffix))
            || self
                .extended()
                .filter_map(|m| m.message_id.as_deref())
                .any(|id| id.ends_with(suffix))
    }

    /// Whether any text of the body (message, extended messages) contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        let in_message = self
            .error
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .is_some_and(|m| m.contains(needle));
        in_message
            || self
                .extended()
                .filter_map(|m| m.message.as_deref())
                .any(|m| m.contains(needle))
    }
}
