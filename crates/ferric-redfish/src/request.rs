//! The requests Ferric sends a BMC, built without I/O: boot override PATCH bodies, the
//! `If-Match` values to try, the reset type for a power action, virtual media bodies and
//! the amendments vendors ask for. The rules are Ironic's and sushy's.

use crate::model::{
    BootEnabled, BootMode, BootSource, ComputerSystem, PowerState, RedfishError, ResetType,
};
use serde_json::{json, Map, Value};

/// A request this crate refuses to send, because the BMC said it would not take it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The value is not among those the resource allows.
    #[error("{what} {value} is not allowed by {resource}; allowed: {}", allowed.join(", "))]
    NotAllowed {
        what: &'static str,
        value: String,
        allowed: Vec<String>,
        resource: String,
    },
    /// The resource has no such action.
    #[error("{resource} has no {action} action")]
    MissingAction {
        action: &'static str,
        resource: String,
    },
}

/// A power change as Ironic asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    Off,
    /// A hard reboot.
    Reboot,
    SoftReboot,
    SoftOff,
}

/// The reset requests that carry out a [`PowerAction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetPlan {
    Single(ResetType),
    /// Power off, wait until the system is off, then power on (Ironic's hard reboot).
    OffThenOn {
        off: ResetType,
        on: ResetType,
    },
}

/// Checks `reset` against the allowable values; `None` (the BMC does not say) allows any, as
/// sushy does.
pub fn check_reset_allowed(
    reset: &ResetType,
    allowed: Option<&[ResetType]>,
    resource: &str,
) -> Result<(), RequestError> {
    match allowed {
        Some(list) if !list.is_empty() && !list.contains(reset) => Err(RequestError::NotAllowed {
            what: "reset type",
            value: reset.to_string(),
            allowed: list.iter().map(ToString::to_string).collect(),
            resource: resource.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Chooses the reset requests for `action`, given the current power state and the allowable
/// reset types. Off is `ForceOff`; on is `On`, else `ForceOn`; a reboot of a system that is
/// off is a power-on (Ironic's `reboot`), else `ForceRestart`, else off then on.
pub fn choose_reset(
    action: PowerAction,
    current: Option<&PowerState>,
    allowed: Option<&[ResetType]>,
    resource: &str,
) -> Result<ResetPlan, RequestError> {
    let pick = |candidates: &[ResetType]| -> Result<ResetType, RequestError> {
        candidates
            .iter()
            .find(|c| check_reset_allowed(c, allowed, resource).is_ok())
            .cloned()
            .ok_or_else(|| RequestError::NotAllowed {
                what: "reset type",
                value: candidates
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                allowed: allowed
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                resource: resource.to_owned(),
            })
    };
    let on = [ResetType::On, ResetType::ForceOn];
    match action {
        PowerAction::On => pick(&on).map(ResetPlan::Single),
        PowerAction::Off => pick(&[ResetType::ForceOff]).map(ResetPlan::Single),
        PowerAction::SoftReboot => pick(&[ResetType::GracefulRestart]).map(ResetPlan::Single),
        PowerAction::SoftOff => pick(&[ResetType::GracefulShutdown]).map(ResetPlan::Single),
        PowerAction::Reboot if current.and_then(PowerState::is_on) == Some(false) => {
            pick(&on).map(ResetPlan::Single)
        }
        PowerAction::Reboot => match pick(&[ResetType::ForceRestart]) {
            Ok(restart) => Ok(ResetPlan::Single(restart)),
            Err(restart_refused) => {
                let (Ok(off), Ok(on)) = (pick(&[ResetType::ForceOff]), pick(&on)) else {
                    return Err(restart_refused);
                };
                Ok(ResetPlan::OffThenOn { off, on })
            }
        },
    }
}

/// The body of a `#ComputerSystem.Reset` POST.
pub fn reset_body(reset: &ResetType) -> Value {
    json!({ "ResetType": reset.as_str() })
}

/// Manufacturers whose BMCs want target, enabled and mode in every boot PATCH (Ironic's
/// `VENDORS_REQUIRING_FULL_BOOT_REQUEST`), matched as words, not substrings.
fn wants_full_boot_request(manufacturer: &str) -> bool {
    let lower = manufacturer.to_ascii_lowercase();
    lower.contains("american megatrends")
        || lower.contains("asrockrack")
        || lower.contains("redfish_compatible")
        || lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == "ami")
}

/// Supermicro X11/X12 boot virtual media only as `UsbCd`; the ARS-111GL-NHR uses `Cd`.
fn supermicro_cd_target(system: &ComputerSystem, target: BootSource) -> BootSource {
    let is_supermicro = system
        .manufacturer
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("supermicro"));
    let cd_model = system
        .model
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("ars-111gl-nhr"));
    let usb_cd_allowed = system
        .boot
        .as_ref()
        .and_then(|b| b.allowed_targets.as_ref())
        .is_some_and(|list| list.contains(&BootSource::UsbCd));
    if target == BootSource::Cd && is_supermicro && !cd_model && usb_cd_allowed {
        BootSource::UsbCd
    } else {
        target
    }
}

/// The PATCH body that sets the boot override of `system`.
///
/// The target is always sent (and must be allowed). `BootSourceOverrideEnabled` is sent only
/// when it differs from the current value, and the mode only when asked for and different:
/// some BMCs reject a PATCH that sets a value to what it already is. Supermicro always gets
/// `Enabled`, and the vendors that want a full request always get all three.
pub fn boot_override_body(
    system: &ComputerSystem,
    target: BootSource,
    enabled: BootEnabled,
    mode: Option<BootMode>,
) -> Result<Value, RequestError> {
    let boot = system.boot.clone().unwrap_or_default();
    if let Some(allowed) = boot.allowed_targets.as_ref().filter(|l| !l.is_empty()) {
        if !allowed.contains(&target) {
            return Err(RequestError::NotAllowed {
                what: "boot target",
                value: target.to_string(),
                allowed: allowed.iter().map(ToString::to_string).collect(),
                resource: system.path().to_owned(),
            });
        }
    }
    let manufacturer = system.manufacturer.as_deref().unwrap_or_default();
    let full = wants_full_boot_request(manufacturer);
    let supermicro = manufacturer.eq_ignore_ascii_case("supermicro");
    let target = supermicro_cd_target(system, target);

    let mut fields = Map::new();
    if target == BootSource::UefiHttp {
        // No URI: the firmware takes the one DHCP offers (and any stale one is cleared).
        fields.insert("HttpBootUri".into(), Value::Null);
    }
    fields.insert("BootSourceOverrideTarget".into(), json!(target.as_str()));
    if full || supermicro || boot.enabled.as_ref() != Some(&enabled) {
        fields.insert("BootSourceOverrideEnabled".into(), json!(enabled.as_str()));
    }
    let mode = match mode {
        Some(mode) if full || boot.mode.as_ref() != Some(&mode) => Some(mode),
        None if full => Some(boot.mode.clone().unwrap_or(BootMode::Uefi)),
        _ => None,
    };
    if let Some(mode) = mode {
        fields.insert("BootSourceOverrideMode".into(), json!(mode.as_str()));
    }
    Ok(json!({ "Boot": fields }))
}

/// The `If-Match` values to try in turn while the BMC answers 412, as sushy does: the tag;
/// for a weak tag `W/"x"`, then its strong form `"x"`; and last, no `If-Match` at all.
pub fn if_match_sequence(etag: Option<&str>) -> Vec<Option<String>> {
    let Some(tag) = etag.filter(|t| !t.is_empty()) else {
        return vec![None];
    };
    let mut tags = vec![Some(tag.to_owned())];
    if let Some(strong) = weak_to_strong(tag) {
        tags.push(Some(strong.to_owned()));
    }
    tags.push(None);
    tags
}

/// `W/"word"` to `"word"` (sushy's pattern: word characters only between the quotes).
fn weak_to_strong(tag: &str) -> Option<&str> {
    let strong = tag.strip_prefix("W/")?;
    let inner = strong.strip_prefix('"')?.strip_suffix('"')?;
    inner
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then_some(strong)
}

/// The body of an `InsertMedia` action. `Inserted` and `WriteProtected` are sent only when
/// false: true is the schema's default, and Supermicro rejects the properties outright.
pub fn insert_media_body(image: &str, inserted: bool, write_protected: bool) -> Value {
    let mut body = Map::new();
    body.insert("Image".into(), json!(image));
    if !inserted {
        body.insert("Inserted".into(), json!(false));
    }
    if !write_protected {
        body.insert("WriteProtected".into(), json!(false));
    }
    Value::Object(body)
}

/// The PATCH body that inserts media into a device without an `InsertMedia` action (Lenovo
/// SD530 attaches nothing unless `Inserted` is given).
pub fn insert_media_patch_body(image: &str, inserted: bool, write_protected: bool) -> Value {
    json!({ "Image": image, "Inserted": inserted, "WriteProtected": write_protected })
}

/// The PATCH body that ejects media from a device without an `EjectMedia` action.
pub fn eject_media_patch_body() -> Value {
    json!({ "Image": null, "Inserted": false })
}

/// What a refused `InsertMedia` asks to be added, as sushy reads the error: the transfer
/// protocol (from the image URL's scheme), `TransferMethod: Stream`, or placeholder
/// credentials (NVIDIA DGX). `None` when the error asks for nothing this knows, or the body
/// already has it.
pub fn amend_insert_body(body: &Value, error: &RedfishError) -> Option<Value> {
    let mut amended = body.as_object()?.clone();
    let image = amended.get("Image").and_then(Value::as_str).unwrap_or("");
    if !amended.contains_key("TransferProtocolType") && wants_transfer_protocol(error) {
        let protocol = if image.starts_with("https://") {
            "HTTPS"
        } else if image.starts_with("http://") {
            "HTTP"
        } else {
            return None;
        };
        amended.insert("TransferProtocolType".into(), json!(protocol));
        return Some(Value::Object(amended));
    }
    if amended.get("TransferMethod").and_then(Value::as_str) != Some("Stream")
        && error.has_id_ending("GeneralError")
        && error.mentions("TransferMethod")
    {
        amended.insert("TransferMethod".into(), json!("Stream"));
        return Some(Value::Object(amended));
    }
    if !amended.contains_key("UserName") && wants_credentials(error) {
        amended.insert("UserName".into(), json!("none"));
        amended.insert("Password".into(), json!("none"));
        return Some(Value::Object(amended));
    }
    None
}

fn wants_transfer_protocol(error: &RedfishError) -> bool {
    if error.has_id_ending("GeneralError") && error.mentions("TransferProtocolType") {
        return true;
    }
    let missing =
        error.has_id_ending(".ActionParameterMissing") || error.has_id_ending(".PropertyMissing");
    missing
        && error
            .related_properties()
            .any(|p| p == "#/TransferProtocolType" || p == "/TransferProtocolType")
}

fn wants_credentials(error: &RedfishError) -> bool {
    let names_credentials = |m: &str| m.contains("UserName") || m.contains("Password");
    error.extended().any(|m| {
        m.message_id
            .as_deref()
            .is_some_and(|id| id.ends_with("ActionParameterMissing"))
            && m.message.as_deref().is_some_and(names_credentials)
    }) || (error.code().is_some_and(|c| c.ends_with("GeneralError"))
        && error
            .error
            .as_ref()
            .and_then(|e| e.message.as_deref())
            .is_some_and(|m| names_credentials(m) || m.contains("parameter missing")))
}

/// The body of a session POST. It carries the password: never log it.
#[cfg(feature = "client")]
pub(crate) fn session_body(username: &str, password: &str) -> Value {
    json!({ "UserName": username, "Password": password })
}

#[cfg(test)]
mod tests;
