//! The service root, resource collections, the session service and `ActionInfo`.

use super::{lenient, lenient_list, link_list, none, require_all, Link, ParseError, Resource};
use serde::{Deserialize, Serialize};

/// The service root (`/redfish/v1/`), readable without credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceRoot {
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(
        rename = "RedfishVersion",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub redfish_version: Option<String>,
    #[serde(rename = "UUID", with = "lenient", skip_serializing_if = "none")]
    pub uuid: Option<String>,
    #[serde(rename = "Vendor", with = "lenient", skip_serializing_if = "none")]
    pub vendor: Option<String>,
    #[serde(rename = "Product", with = "lenient", skip_serializing_if = "none")]
    pub product: Option<String>,
    #[serde(rename = "Systems", with = "lenient", skip_serializing_if = "none")]
    pub systems: Option<Link>,
    #[serde(rename = "Managers", with = "lenient", skip_serializing_if = "none")]
    pub managers: Option<Link>,
    #[serde(
        rename = "SessionService",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub session_service: Option<Link>,
    #[serde(rename = "Links", with = "lenient", skip_serializing_if = "none")]
    pub links: Option<RootLinks>,
}

/// `ServiceRoot.Links`: DSP0266 says to find the session collection here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootLinks {
    #[serde(rename = "Sessions", with = "lenient", skip_serializing_if = "none")]
    pub sessions: Option<Link>,
}

impl Resource for ServiceRoot {
    fn finish(self, _url: &str) -> Result<Self, ParseError> {
        Ok(self)
    }
}

impl ServiceRoot {
    /// The session collection's path, if the root names one.
    pub fn sessions_path(&self) -> Option<&str> {
        self.links.as_ref()?.sessions.as_ref()?.odata_id.as_deref()
    }
}

/// A resource collection. Every member must have an `@odata.id`; a missing `Members` is read
/// as an empty collection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Collection {
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(
        rename = "Members@odata.count",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub members_count: Option<u64>,
    #[serde(rename = "Members", with = "link_list", skip_serializing_if = "none")]
    pub members: Option<Vec<Link>>,
}

/// `ComputerSystemCollection` (`/redfish/v1/Systems`).
pub type SystemCollection = Collection;
/// `VirtualMediaCollection`.
pub type VirtualMediaCollection = Collection;
/// `SessionCollection`.
pub type SessionCollection = Collection;

impl Resource for Collection {
    fn finish(self, url: &str) -> Result<Self, ParseError> {
        require_all(self.members.as_deref().unwrap_or_default(), url, "Members")?;
        Ok(self)
    }
}

impl Collection {
    /// The members' paths (each checked at parse time).
    pub fn member_paths(&self) -> Vec<&str> {
        self.members
            .iter()
            .flatten()
            .filter_map(|link| link.odata_id.as_deref())
            .collect()
    }
}

/// The `SessionService` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionService {
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(
        rename = "ServiceEnabled",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub service_enabled: Option<bool>,
    /// Seconds of inactivity after which the BMC drops a session.
    #[serde(
        rename = "SessionTimeout",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub session_timeout: Option<u64>,
    #[serde(rename = "Sessions", with = "lenient", skip_serializing_if = "none")]
    pub sessions: Option<Link>,
}

impl Resource for SessionService {
    fn finish(self, _url: &str) -> Result<Self, ParseError> {
        Ok(self)
    }
}

/// A `Session` resource (the body a session POST may answer with).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(rename = "UserName", with = "lenient", skip_serializing_if = "none")]
    pub user_name: Option<String>,
}

impl Resource for Session {
    fn finish(self, _url: &str) -> Result<Self, ParseError> {
        Ok(self)
    }
}

/// An `ActionInfo` resource: the parameters an action takes and their allowable values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionInfo {
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(
        rename = "Parameters",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub parameters: Option<Vec<ActionParameter>>,
}

/// One parameter of an `ActionInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionParameter {
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(rename = "Required", with = "lenient", skip_serializing_if = "none")]
    pub required: Option<bool>,
    #[serde(rename = "DataType", with = "lenient", skip_serializing_if = "none")]
    pub data_type: Option<String>,
    #[serde(
        rename = "AllowableValues",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub allowable_values: Option<Vec<String>>,
}

impl Resource for ActionInfo {
    fn finish(self, _url: &str) -> Result<Self, ParseError> {
        Ok(self)
    }
}

impl ActionInfo {
    /// The allowable values of the parameter called `name`, if the BMC lists them.
    pub fn allowable(&self, name: &str) -> Option<&[String]> {
        self.parameters
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))?
            .allowable_values
            .as_deref()
    }
}
