//! `ComputerSystem`: power state, boot override, the reset action and the links to managers.

use super::{
    lenient, lenient_list, link_list, none, require_all, BootEnabled, BootMode, BootSource, Link,
};
use super::{ParseError, PowerState, ResetType, Resource};
use serde::{Deserialize, Serialize};

/// A `ComputerSystem` resource, with where it was fetched from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ComputerSystem {
    /// The URL this body was fetched from (the PATCH target when `@odata.id` is missing).
    #[serde(skip)]
    pub url: String,
    /// The `ETag` header of the response, preferred over `@odata.etag` for `If-Match`.
    #[serde(skip)]
    pub etag_header: Option<String>,
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "@odata.etag", with = "lenient", skip_serializing_if = "none")]
    pub odata_etag: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(rename = "UUID", with = "lenient", skip_serializing_if = "none")]
    pub uuid: Option<String>,
    #[serde(
        rename = "Manufacturer",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub manufacturer: Option<String>,
    #[serde(rename = "Model", with = "lenient", skip_serializing_if = "none")]
    pub model: Option<String>,
    #[serde(rename = "PowerState", with = "lenient", skip_serializing_if = "none")]
    pub power_state: Option<PowerState>,
    #[serde(rename = "Boot", with = "lenient", skip_serializing_if = "none")]
    pub boot: Option<Boot>,
    #[serde(rename = "Actions", with = "lenient", skip_serializing_if = "none")]
    pub actions: Option<SystemActions>,
    #[serde(rename = "Links", with = "lenient", skip_serializing_if = "none")]
    pub links: Option<SystemLinks>,
    /// Newer BMCs hang virtual media off the system rather than its manager.
    #[serde(
        rename = "VirtualMedia",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub virtual_media: Option<Link>,
}

/// `ComputerSystem.Boot`: the one-time or persistent boot override.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Boot {
    #[serde(
        rename = "BootSourceOverrideTarget",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub target: Option<BootSource>,
    #[serde(
        rename = "BootSourceOverrideEnabled",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub enabled: Option<BootEnabled>,
    #[serde(
        rename = "BootSourceOverrideMode",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub mode: Option<BootMode>,
    /// `None` when the BMC does not say; then every target is tried (as sushy does).
    #[serde(
        rename = "BootSourceOverrideTarget@Redfish.AllowableValues",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub allowed_targets: Option<Vec<BootSource>>,
    #[serde(rename = "HttpBootUri", with = "lenient", skip_serializing_if = "none")]
    pub http_boot_uri: Option<String>,
}

/// `ComputerSystem.Actions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemActions {
    #[serde(
        rename = "#ComputerSystem.Reset",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub reset: Option<ResetAction>,
}

/// `#ComputerSystem.Reset`: where to POST, and which reset types the BMC accepts, inline or
/// behind an `ActionInfo` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetAction {
    #[serde(rename = "target", with = "lenient", skip_serializing_if = "none")]
    pub target: Option<String>,
    #[serde(
        rename = "ResetType@Redfish.AllowableValues",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub allowed: Option<Vec<ResetType>>,
    #[serde(
        rename = "@Redfish.ActionInfo",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub action_info: Option<String>,
}

/// `ComputerSystem.Links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SystemLinks {
    #[serde(rename = "ManagedBy", with = "link_list", skip_serializing_if = "none")]
    pub managed_by: Option<Vec<Link>>,
    /// Not standard, but some BMCs name the managers so (sushy falls back to it too).
    #[serde(rename = "Managers", with = "link_list", skip_serializing_if = "none")]
    pub managers: Option<Vec<Link>>,
    #[serde(
        rename = "Chassis",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub chassis: Option<Vec<Link>>,
}

impl Resource for ComputerSystem {
    fn finish(mut self, url: &str) -> Result<Self, ParseError> {
        url.clone_into(&mut self.url);
        Ok(self)
    }
}

impl ComputerSystem {
    /// The system's own path: its `@odata.id`, else the URL it was fetched from.
    pub fn path(&self) -> &str {
        self.odata_id.as_deref().unwrap_or(&self.url)
    }

    /// The entity tag to send as `If-Match`: the response's `ETag` header, else `@odata.etag`.
    pub fn etag(&self) -> Option<&str> {
        self.etag_header
            .as_deref()
            .or(self.odata_etag.as_deref())
            .filter(|tag| !tag.is_empty())
    }

    /// The reset action, if the system has one.
    pub fn reset_action(&self) -> Option<&ResetAction> {
        self.actions.as_ref()?.reset.as_ref()
    }

    /// The paths of the managers of this system (`Links.ManagedBy`, else `Links.Managers`);
    /// a link without `@odata.id` is an error naming the system.
    pub fn manager_paths(&self) -> Result<Vec<&str>, ParseError> {
        let Some(links) = &self.links else {
            return Ok(Vec::new());
        };
        match (&links.managed_by, &links.managers) {
            (Some(managed_by), _) if !managed_by.is_empty() => {
                require_all(managed_by, self.path(), "Links.ManagedBy")
            }
            (_, Some(managers)) => require_all(managers, self.path(), "Links.Managers"),
            _ => Ok(Vec::new()),
        }
    }
}
