//! Systems: finding one, resetting it, and setting its boot override.

use super::{Client, Error};
use crate::model::{
    ActionInfo, BootEnabled, BootMode, BootSource, Collection, ComputerSystem, Manager, ResetType,
    Resource,
};
use crate::request::{self, RequestError};
use reqwest::Method;
use serde_json::Value;
use tracing::{debug, warn};

impl Client {
    /// The paths of the systems the BMC lists.
    pub async fn system_paths(&self) -> Result<Vec<String>, Error> {
        let systems = self.systems_collection_path().await?;
        let collection: Collection = self.get(&systems).await?;
        Ok(collection
            .member_paths()
            .into_iter()
            .map(str::to_owned)
            .collect())
    }

    /// A system: by path (`/redfish/v1/Systems/1`, Ironic's `redfish_system_id`), by `Id`
    /// within the systems collection, or with `None` the only one (several are an error that
    /// lists them).
    pub async fn system(&self, id: Option<&str>) -> Result<ComputerSystem, Error> {
        let path = match id {
            Some(path) if path.starts_with('/') || path.contains("://") => path.to_owned(),
            Some(id) => self.system_path_by_id(id).await?,
            None => self.only_system_path().await?,
        };
        self.fetch_system(&path).await
    }

    async fn only_system_path(&self) -> Result<String, Error> {
        let mut paths = self.system_paths().await?;
        let address = self.transport.address().to_owned();
        match paths.len() {
            0 => Err(Error::NoSystem { address }),
            1 => Ok(paths.remove(0)),
            _ => Err(Error::AmbiguousSystem {
                address,
                systems: paths,
            }),
        }
    }

    async fn system_path_by_id(&self, id: &str) -> Result<String, Error> {
        let systems = self.systems_collection_path().await?;
        Ok(format!("{}/{id}", systems.trim_end_matches('/')))
    }

    /// The root's `Systems` link, else the standard path.
    async fn systems_collection_path(&self) -> Result<String, Error> {
        let root = self.transport.service_root().await?;
        let prefix = self.transport.root_prefix();
        Ok(match &root.systems {
            Some(link) => link.require(prefix, "Systems")?.to_owned(),
            None => format!("{prefix}Systems"),
        })
    }

    async fn fetch_system(&self, path: &str) -> Result<ComputerSystem, Error> {
        let reply = self.transport.call(Method::GET, path, None, None).await?;
        let mut system = ComputerSystem::parse(path, &reply.body)?;
        system.etag_header = reply.header("ETag").map(str::to_owned);
        Ok(system)
    }

    /// The reset types the system accepts: its `ResetType@Redfish.AllowableValues`, else
    /// those of its `@Redfish.ActionInfo`; `None` when the BMC says neither (any is tried).
    pub async fn allowed_reset_types(
        &self,
        system: &ComputerSystem,
    ) -> Result<Option<Vec<ResetType>>, Error> {
        let action = reset_action(system)?;
        if let Some(allowed) = action.allowed.as_ref().filter(|a| !a.is_empty()) {
            return Ok(Some(allowed.clone()));
        }
        let Some(info_path) = &action.action_info else {
            return Ok(None);
        };
        match self.get::<ActionInfo>(info_path).await {
            Ok(info) => Ok(info
                .allowable("ResetType")
                .map(|values| values.iter().map(|v| ResetType::from_wire(v)).collect())),
            Err(e) if !e.is_transient() => {
                warn!(error = %e, "cannot read the reset ActionInfo; trying any reset type");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// POSTs `#ComputerSystem.Reset`, refusing a type the system does not allow.
    pub async fn reset(&self, system: &ComputerSystem, reset: ResetType) -> Result<(), Error> {
        let target = reset_action(system)?
            .target
            .clone()
            .ok_or_else(|| missing_reset(system))?;
        let allowed = self.allowed_reset_types(system).await?;
        request::check_reset_allowed(&reset, allowed.as_deref(), system.path())?;
        let body = request::reset_body(&reset);
        self.transport
            .call(Method::POST, &target, Some(&body), None)
            .await?;
        debug!(system = system.path(), %reset, "reset requested");
        Ok(())
    }

    /// Sets the boot override (see [`request::boot_override_body`] for what is sent), with
    /// the system's entity tag, trying without it as sushy does when the BMC answers 412.
    pub async fn set_boot_override(
        &self,
        system: &ComputerSystem,
        target: BootSource,
        enabled: BootEnabled,
        mode: Option<BootMode>,
    ) -> Result<(), Error> {
        let body = request::boot_override_body(system, target, enabled, mode)?;
        self.patch_with_etag(system.path(), &body, system.etag())
            .await
    }

    /// The managers of the system (`Links.ManagedBy`).
    pub async fn managers(&self, system: &ComputerSystem) -> Result<Vec<Manager>, Error> {
        let mut managers = Vec::new();
        for path in system.manager_paths()? {
            managers.push(self.get::<Manager>(path).await?);
        }
        Ok(managers)
    }

    /// PATCHes `path`, walking [`request::if_match_sequence`] while the BMC answers 412.
    pub(crate) async fn patch_with_etag(
        &self,
        path: &str,
        body: &Value,
        etag: Option<&str>,
    ) -> Result<(), Error> {
        let tags = request::if_match_sequence(etag);
        let mut last_error = None;
        for tag in &tags {
            match self
                .transport
                .call(Method::PATCH, path, Some(body), tag.as_deref())
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.status() == Some(412) => {
                    warn!(path, "entity tag refused (412); trying the next If-Match");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| unreachable_no_tags(path)))
    }
}

fn reset_action(system: &ComputerSystem) -> Result<&crate::model::ResetAction, Error> {
    system.reset_action().ok_or_else(|| missing_reset(system))
}

fn missing_reset(system: &ComputerSystem) -> Error {
    Error::Request(RequestError::MissingAction {
        action: "#ComputerSystem.Reset",
        resource: system.path().to_owned(),
    })
}

/// `if_match_sequence` always yields at least one value; kept total rather than panicking.
fn unreachable_no_tags(path: &str) -> Error {
    Error::Request(RequestError::MissingAction {
        action: "PATCH",
        resource: path.to_owned(),
    })
}
