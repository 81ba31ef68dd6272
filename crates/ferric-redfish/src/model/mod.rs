//! Redfish resources as plain serde types, parsed without I/O.
//!
//! Parsing is lenient where BMCs differ: every optional property that is missing, `null` or of
//! the wrong type reads as `None` (or an empty list), and an enum string this crate does not
//! know is kept as `Other(String)`; known strings match case-insensitively, because vendors
//! disagree on case (`Uefi`, `UEFI`). It is strict where it matters: a body that is not a JSON
//! object, or a collection member without `@odata.id`, is a [`ParseError`] naming the URL.

mod enums;
mod error_body;
mod manager;
mod root;
mod system;

pub use enums::{
    BootEnabled, BootMode, BootSource, ConnectedVia, MediaType, PowerState, ResetType,
    TransferMethod, TransferProtocolType,
};
pub use error_body::{ErrorDetail, Message, RedfishError};
pub use manager::{ActionTarget, Manager, ManagerLinks, VirtualMedia, VirtualMediaActions};
pub use root::{
    ActionInfo, ActionParameter, Collection, RootLinks, ServiceRoot, Session, SessionCollection,
    SessionService, SystemCollection, VirtualMediaCollection,
};
pub use system::{Boot, ComputerSystem, ResetAction, SystemActions, SystemLinks};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Why a body could not be read as the resource asked for. Each names the URL it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The body is not JSON at all (an HTML login page, a truncated read, ...).
    #[error("{url}: the body is not JSON ({cause})")]
    NotJson { url: String, cause: String },
    /// The body is JSON but not an object.
    #[error("{url}: expected a JSON object, got {got}")]
    NotObject { url: String, got: &'static str },
    /// A link this crate must follow has no `@odata.id`.
    #[error("{url}: {what} has no @odata.id")]
    MissingId { url: String, what: String },
}

/// A resource that can be parsed from a response body.
pub trait Resource: DeserializeOwned {
    /// Parses `body`, fetched from `url`, checking what this resource needs.
    fn parse(url: &str, body: &[u8]) -> Result<Self, ParseError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson {
            url: url.to_owned(),
            cause: e.to_string(),
        })?;
        Self::from_value(url, value)
    }

    /// Like [`Resource::parse`], from an already parsed JSON value.
    fn from_value(url: &str, value: Value) -> Result<Self, ParseError> {
        if !value.is_object() {
            return Err(ParseError::NotObject {
                url: url.to_owned(),
                got: json_kind(&value),
            });
        }
        // Every field is lenient, so an object always deserializes; keep the error path anyway.
        let parsed = Self::deserialize(value).map_err(|e| ParseError::NotJson {
            url: url.to_owned(),
            cause: e.to_string(),
        })?;
        parsed.finish(url)
    }

    /// Checks and completes a freshly deserialized resource (records where it came from).
    fn finish(self, url: &str) -> Result<Self, ParseError>;
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A reference to another resource: `{"@odata.id": "/redfish/v1/..."}`. A link whose target is
/// missing or not a string reads as `None`; callers that must follow it check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub odata_id: Option<String>,
}

impl Link {
    pub fn new(path: impl Into<String>) -> Link {
        Link {
            odata_id: Some(path.into()),
        }
    }

    /// The target, or a [`ParseError::MissingId`] naming `what` and the resource at `url`.
    pub fn require(&self, url: &str, what: &str) -> Result<&str, ParseError> {
        self.odata_id
            .as_deref()
            .ok_or_else(|| ParseError::MissingId {
                url: url.to_owned(),
                what: what.to_owned(),
            })
    }
}

impl Link {
    /// Reads any JSON value as a link: an object's string `@odata.id`, else no target.
    fn from_json(value: &Value) -> Link {
        let odata_id = value
            .get("@odata.id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Link { odata_id }
    }
}

/// A link must be an object; anything else is not a link (and reads as `None` where lenient).
impl<'de> Deserialize<'de> for Link {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Link, D::Error> {
        let value = Value::deserialize(d)?;
        if !value.is_object() {
            return Err(serde::de::Error::custom("a link must be an object"));
        }
        Ok(Link::from_json(&value))
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = serde_json::Map::new();
        if let Some(id) = &self.odata_id {
            map.insert("@odata.id".into(), Value::String(id.clone()));
        }
        map.serialize(s)
    }
}

/// Checks that every link in `links` has a target, naming the first that has none.
pub(crate) fn require_all<'a>(
    links: &'a [Link],
    url: &str,
    what: &str,
) -> Result<Vec<&'a str>, ParseError> {
    links
        .iter()
        .enumerate()
        .map(|(i, link)| link.require(url, &format!("{what}[{i}]")))
        .collect()
}

/// For `skip_serializing_if`: leave out what the BMC did not send.
pub(crate) fn none<T>(value: &Option<T>) -> bool {
    value.is_none()
}

/// An optional property; a wrong type or `null` reads as `None`.
pub(crate) mod lenient {
    use super::*;

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let value = Value::deserialize(d)?;
        Ok(T::deserialize(value).ok())
    }

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

/// An optional list, keeping the elements of the right type; not a list reads as `None`.
pub(crate) mod lenient_list {
    use super::*;

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let value = Value::deserialize(d)?;
        Ok(match value {
            Value::Array(items) => Some(
                items
                    .into_iter()
                    .filter_map(|item| T::deserialize(item).ok())
                    .collect(),
            ),
            _ => None,
        })
    }

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Vec<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

/// A list of links keeping every element, so that a member that is not a link is seen (as a
/// link without target) rather than dropped.
pub(crate) mod link_list {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Link>>, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(match value {
            Value::Array(items) => Some(items.iter().map(Link::from_json).collect()),
            _ => None,
        })
    }

    pub fn serialize<S: Serializer>(value: &Option<Vec<Link>>, s: S) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

/// A list that some BMCs send as a single object (`@Message.ExtendedInfo`).
pub(crate) mod one_or_many {
    use super::*;

    pub fn deserialize<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let value = Value::deserialize(d)?;
        Ok(match value {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|item| T::deserialize(item).ok())
                .collect(),
            Value::Object(_) => T::deserialize(value).ok().into_iter().collect(),
            _ => Vec::new(),
        })
    }

    pub fn serialize<S: Serializer, T: Serialize>(value: &[T], s: S) -> Result<S::Ok, S::Error> {
        value.serialize(s)
    }
}

/// Feeds `data` to every parser. None may panic, and whatever parses must survive a round trip
/// through its own serialization unchanged. The fuzz target and the corpus test use it.
#[doc(hidden)]
pub fn fuzz_entry(data: &[u8]) {
    const URL: &str = "/fuzz";
    round_trip::<ServiceRoot>(data);
    round_trip::<Collection>(data);
    round_trip::<ComputerSystem>(data);
    round_trip::<Manager>(data);
    round_trip::<VirtualMedia>(data);
    round_trip::<SessionService>(data);
    round_trip::<Session>(data);
    round_trip::<ActionInfo>(data);
    if let Some(error) = RedfishError::parse(data) {
        let _ = error.messages();
        let _ = error.detail();
        let again = serde_json::to_vec(&error)
            .ok()
            .and_then(|b| RedfishError::parse(&b));
        assert_eq!(again.as_ref(), Some(&error), "error body round trip");
    }
    if let Ok(system) = ComputerSystem::parse(URL, data) {
        let _ = system.manager_paths();
        let _ = system.reset_action();
        if let Some(boot) = &system.boot {
            for target in BootSource::KNOWN {
                for enabled in BootEnabled::KNOWN {
                    let _ = crate::request::boot_override_body(
                        &system,
                        target.clone(),
                        enabled.clone(),
                        boot.mode.clone(),
                    );
                }
            }
        }
    }
}

fn round_trip<T: Resource + Serialize + PartialEq + std::fmt::Debug>(data: &[u8]) {
    const URL: &str = "/fuzz";
    if let Ok(parsed) = T::parse(URL, data) {
        let bytes = match serde_json::to_vec(&parsed) {
            Ok(bytes) => bytes,
            Err(e) => panic!("a parsed resource does not serialize: {e}"),
        };
        match T::parse(URL, &bytes) {
            Ok(again) => assert_eq!(again, parsed, "round trip changed the resource"),
            Err(e) => panic!("a serialized resource does not parse again: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
