//! `Manager` (the BMC itself) and its `VirtualMedia` devices.

use super::{lenient, lenient_list, none, ConnectedVia, Link, MediaType, ParseError, Resource};
use serde::{Deserialize, Serialize};

/// A `Manager` resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Manager {
    #[serde(skip)]
    pub url: String,
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(rename = "ManagerType", with = "lenient", skip_serializing_if = "none")]
    pub manager_type: Option<String>,
    #[serde(
        rename = "VirtualMedia",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub virtual_media: Option<Link>,
    #[serde(rename = "Links", with = "lenient", skip_serializing_if = "none")]
    pub links: Option<ManagerLinks>,
}

/// `Manager.Links`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManagerLinks {
    #[serde(
        rename = "ManagerForServers",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub manager_for_servers: Option<Vec<Link>>,
}

impl Resource for Manager {
    fn finish(mut self, url: &str) -> Result<Self, ParseError> {
        url.clone_into(&mut self.url);
        Ok(self)
    }
}

impl Manager {
    /// The manager's own path: its `@odata.id`, else the URL it was fetched from.
    pub fn path(&self) -> &str {
        self.odata_id.as_deref().unwrap_or(&self.url)
    }
}

/// A `VirtualMedia` device (a virtual CD, DVD, floppy or USB stick).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualMedia {
    #[serde(skip)]
    pub url: String,
    /// The `ETag` header of the response.
    #[serde(skip)]
    pub etag_header: Option<String>,
    /// Whether the response's `Allow` header lists PATCH: then a device without insert and
    /// eject actions is driven by PATCHing `Image` and `Inserted` (sushy's fallback).
    #[serde(skip)]
    pub patch_allowed: bool,
    #[serde(rename = "@odata.id", with = "lenient", skip_serializing_if = "none")]
    pub odata_id: Option<String>,
    #[serde(rename = "@odata.etag", with = "lenient", skip_serializing_if = "none")]
    pub odata_etag: Option<String>,
    #[serde(rename = "Id", with = "lenient", skip_serializing_if = "none")]
    pub id: Option<String>,
    #[serde(rename = "Name", with = "lenient", skip_serializing_if = "none")]
    pub name: Option<String>,
    #[serde(
        rename = "MediaTypes",
        with = "lenient_list",
        skip_serializing_if = "none"
    )]
    pub media_types: Option<Vec<MediaType>>,
    #[serde(rename = "Image", with = "lenient", skip_serializing_if = "none")]
    pub image: Option<String>,
    #[serde(rename = "ImageName", with = "lenient", skip_serializing_if = "none")]
    pub image_name: Option<String>,
    #[serde(rename = "Inserted", with = "lenient", skip_serializing_if = "none")]
    pub inserted: Option<bool>,
    #[serde(
        rename = "WriteProtected",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub write_protected: Option<bool>,
    #[serde(
        rename = "ConnectedVia",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub connected_via: Option<ConnectedVia>,
    #[serde(rename = "Actions", with = "lenient", skip_serializing_if = "none")]
    pub actions: Option<VirtualMediaActions>,
}

/// `VirtualMedia.Actions`: the POST targets of insert and eject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualMediaActions {
    #[serde(
        rename = "#VirtualMedia.InsertMedia",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub insert_media: Option<ActionTarget>,
    #[serde(
        rename = "#VirtualMedia.EjectMedia",
        with = "lenient",
        skip_serializing_if = "none"
    )]
    pub eject_media: Option<ActionTarget>,
}

/// An action's `target` URI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionTarget {
    #[serde(rename = "target", with = "lenient", skip_serializing_if = "none")]
    pub target: Option<String>,
}

impl Resource for VirtualMedia {
    fn finish(mut self, url: &str) -> Result<Self, ParseError> {
        url.clone_into(&mut self.url);
        Ok(self)
    }
}

impl VirtualMedia {
    /// The device's own path: its `@odata.id`, else the URL it was fetched from.
    pub fn path(&self) -> &str {
        self.odata_id.as_deref().unwrap_or(&self.url)
    }

    /// The media types the device takes (none when the BMC does not say).
    pub fn media_types(&self) -> &[MediaType] {
        self.media_types.as_deref().unwrap_or_default()
    }

    /// Whether the device takes `kind`. A DVD drive takes CD images too (Cisco UCS devices
    /// list only DVD; Ironic accepts them for CDs).
    pub fn accepts(&self, kind: &MediaType) -> bool {
        let types = self.media_types();
        types.contains(kind) || (*kind == MediaType::Cd && types.contains(&MediaType::Dvd))
    }

    /// Whether an image is in: `Inserted` when the BMC says, else a non-empty `Image`.
    pub fn is_inserted(&self) -> bool {
        self.inserted
            .unwrap_or_else(|| self.image.as_deref().is_some_and(|image| !image.is_empty()))
    }

    /// The entity tag to send as `If-Match`: the `ETag` header, else `@odata.etag`.
    pub fn etag(&self) -> Option<&str> {
        self.etag_header
            .as_deref()
            .or(self.odata_etag.as_deref())
            .filter(|tag| !tag.is_empty())
    }

    /// The `InsertMedia` action target, if the device has one.
    pub fn insert_target(&self) -> Option<&str> {
        self.actions
            .as_ref()?
            .insert_media
            .as_ref()?
            .target
            .as_deref()
    }

    /// The `EjectMedia` action target, if the device has one.
    pub fn eject_target(&self) -> Option<&str> {
        self.actions
            .as_ref()?
            .eject_media
            .as_ref()?
            .target
            .as_deref()
    }
}
