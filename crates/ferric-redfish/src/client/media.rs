//! Virtual media: finding a system's devices, inserting and ejecting images.

use super::{Client, Error};
use crate::model::{Collection, ComputerSystem, Resource, VirtualMedia};
use crate::request::{self, RequestError};
use reqwest::Method;
use serde_json::json;
use tracing::{debug, warn};

/// One plain attempt plus one for each amendment a vendor may ask for.
const INSERT_ATTEMPTS: usize = 4;

impl Client {
    /// The virtual media devices of a system: those under the system itself (newer BMCs),
    /// else those of each of its managers (as Ironic looks for them).
    pub async fn virtual_media(&self, system: &ComputerSystem) -> Result<Vec<VirtualMedia>, Error> {
        let mut collections = Vec::new();
        if let Some(link) = &system.virtual_media {
            collections.push(link.require(system.path(), "VirtualMedia")?.to_owned());
        } else {
            for manager in self.managers(system).await? {
                if let Some(link) = &manager.virtual_media {
                    collections.push(link.require(manager.path(), "VirtualMedia")?.to_owned());
                }
            }
        }
        let mut devices = Vec::new();
        for path in collections {
            let collection: Collection = self.get(&path).await?;
            for member in collection.member_paths() {
                devices.push(self.fetch_media(member).await?);
            }
        }
        Ok(devices)
    }

    /// Reads one device again (its state after an insert or eject).
    pub async fn refresh_media(&self, media: &VirtualMedia) -> Result<VirtualMedia, Error> {
        self.fetch_media(media.path()).await
    }

    async fn fetch_media(&self, path: &str) -> Result<VirtualMedia, Error> {
        let reply = self.transport.call(Method::GET, path, None, None).await?;
        let mut media = VirtualMedia::parse(path, &reply.body)?;
        media.etag_header = reply.header("ETag").map(str::to_owned);
        media.patch_allowed = reply.header("Allow").is_some_and(allows_patch);
        Ok(media)
    }

    /// Inserts the image at `image_url`: the `InsertMedia` action, amended and retried when
    /// the BMC asks for a transfer protocol, method or credentials; else a PATCH of the
    /// device when the BMC allows it.
    pub async fn insert_media(
        &self,
        media: &VirtualMedia,
        image_url: &str,
        inserted: bool,
        write_protected: bool,
    ) -> Result<(), Error> {
        let Some(target) = media.insert_target() else {
            if !media.patch_allowed {
                return Err(missing(media, "#VirtualMedia.InsertMedia"));
            }
            let body = request::insert_media_patch_body(image_url, inserted, write_protected);
            return self
                .patch_with_etag(media.path(), &body, media.etag())
                .await;
        };
        let mut body = request::insert_media_body(image_url, inserted, write_protected);
        let mut attempt = 1;
        loop {
            let error = match self
                .transport
                .call(Method::POST, target, Some(&body), None)
                .await
            {
                Ok(_) => {
                    debug!(device = media.path(), "media inserted");
                    return Ok(());
                }
                Err(e) => e,
            };
            let amended = error
                .redfish_error()
                .and_then(|refusal| request::amend_insert_body(&body, refusal));
            match amended {
                Some(next) if attempt < INSERT_ATTEMPTS => {
                    warn!(
                        device = media.path(),
                        "InsertMedia refused; retrying with what the BMC asked for"
                    );
                    body = next;
                    attempt += 1;
                }
                _ => return Err(error),
            }
        }
    }

    /// Ejects the device's media: the `EjectMedia` action (with an empty JSON body when the
    /// BMC refuses none, as iLO does), else a PATCH. An eject the BMC refuses while the
    /// device reads as empty counts as done.
    pub async fn eject_media(&self, media: &VirtualMedia) -> Result<(), Error> {
        let Some(target) = media.eject_target() else {
            if !media.patch_allowed {
                return Err(missing(media, "#VirtualMedia.EjectMedia"));
            }
            let body = request::eject_media_patch_body();
            return self
                .patch_with_etag(media.path(), &body, media.etag())
                .await;
        };
        let first = self.transport.call(Method::POST, target, None, None).await;
        let Err(error) = first else {
            return Ok(());
        };
        if !matches!(error.status(), Some(400 | 415)) {
            return Err(error);
        }
        let second = self
            .transport
            .call(Method::POST, target, Some(&json!({})), None)
            .await;
        let Err(error) = second else {
            return Ok(());
        };
        let refused = error
            .status()
            .is_some_and(|s| s >= 500 || s == 400 || s == 409);
        if refused && !self.refresh_media(media).await?.is_inserted() {
            debug!(
                device = media.path(),
                "eject refused, but nothing is inserted"
            );
            return Ok(());
        }
        Err(error)
    }
}

fn allows_patch(allow: &str) -> bool {
    allow
        .split(',')
        .any(|method| method.trim().eq_ignore_ascii_case("PATCH"))
}

fn missing(media: &VirtualMedia, action: &'static str) -> Error {
    Error::Request(RequestError::MissingAction {
        action,
        resource: media.path().to_owned(),
    })
}
