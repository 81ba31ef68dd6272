//! The `redfish_*` fields of a node's `driver_info`, read and checked as
//! Ironic's `redfish.utils.parse_driver_info` does, with its error texts.

use std::path::PathBuf;

use ferric_core::{JsonObject, NodeUuid};
use serde_json::Value;

use crate::error::DriverError;

/// How to reach a node's Redfish service.
#[derive(Clone, PartialEq, Eq)]
pub struct RedfishInfo {
    /// `scheme://authority`, no path.
    pub address: String,
    /// The service root's path, when the address gave one.
    pub root_prefix: Option<String>,
    /// The ComputerSystem's path, e.g. `/redfish/v1/Systems/1`; `None`:
    /// the only system there is.
    pub system_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub verify_ca: VerifyCa,
    /// `basic`, `session` or `auto`.
    pub auth_type: &'static str,
}

impl std::fmt::Debug for RedfishInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedfishInfo")
            .field("address", &self.address)
            .field("system_id", &self.system_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("verify_ca", &self.verify_ca)
            .field("auth_type", &self.auth_type)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyCa {
    Yes,
    No,
    /// A CA bundle file or a directory of certificates.
    Path(PathBuf),
}

pub const AUTH_TYPES: &[&str] = &["basic", "session", "auto"];

/// What `driver property list` shows for the redfish interfaces.
pub fn properties() -> Vec<(&'static str, &'static str)> {
    vec![
        ("redfish_address", "The URL address to the Redfish controller. It must include the authority portion of the URL. If the scheme is missing, https is assumed. For example: https://mgmt.vendor.com. If a path is added, it will be used as the API endpoint root_prefix. Required"),
        ("redfish_system_id", "The canonical path to the ComputerSystem resource that the driver will interact with. It should include the root service, version and the unique resource path to a ComputerSystem within the same authority as the redfish_address property. For example: /redfish/v1/Systems/1. This property is only required if target BMC manages more than one ComputerSystem. Otherwise ironic will pick the only available ComputerSystem automatically."),
        ("redfish_username", "User account with admin/server-profile access privilege. Although this property is not mandatory it's highly recommended to set a username. Optional"),
        ("redfish_password", "User account password. Although this property is not mandatory, it's highly recommended to set a password. Optional"),
        ("redfish_verify_ca", "Either a Boolean value, a path to a CA_BUNDLE file or directory with certificates of trusted CAs. If set to True the driver will verify the host certificates; if False the driver will ignore verifying the SSL certificate. If it's a path the driver will use the specified certificate or one of the certificates in the directory. Defaults to True. Optional"),
        ("redfish_auth_type", "Redfish HTTP client authentication method. Can be \"basic\", \"session\" or \"auto\". If not set, the default value is taken from Ironic configuration as ``[redfish]auth_type`` option."),
    ]
}

fn text(info: &JsonObject, key: &str) -> Option<String> {
    match info.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Reads the node's Redfish settings or says what is wrong with them;
/// `default_auth` is `[redfish] auth_type`.
pub fn parse(
    node: NodeUuid,
    info: &JsonObject,
    default_auth: &str,
) -> Result<RedfishInfo, DriverError> {
    let Some(raw) = text(info, "redfish_address").filter(|a| !a.is_empty()) else {
        return Err(DriverError::MissingParameter(format!(
            "Missing the following Redfish properties in node {node} driver_info: ['redfish_address']"
        )));
    };
    let (address, root_prefix) = split_address(&raw).ok_or_else(|| {
        DriverError::InvalidParameter(format!(
            "Invalid Redfish address {raw} set in driver_info/redfish_address on node {node}"
        ))
    })?;
    let system_id = match info.get("redfish_system_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(DriverError::InvalidParameter(format!(
                "Invalid value \"{other}\" set in driver_info/redfish_system_id on node {node}. The value should be a \
                 path (string) to the resource that the driver will interact with. For example: /redfish/v1/Systems/1"
            )))
        }
    };
    let auth = text(info, "redfish_auth_type").unwrap_or_else(|| default_auth.to_owned());
    let Some(auth_type) = AUTH_TYPES.iter().copied().find(|a| *a == auth) else {
        return Err(DriverError::InvalidParameter(format!(
            "Invalid value \"{auth}\" set in driver_info/redfish_auth_type on node {node}. The value should be one of \
             \"basic\", \"session\" or \"auto\"."
        )));
    };
    Ok(RedfishInfo {
        address,
        root_prefix,
        system_id,
        username: text(info, "redfish_username"),
        password: text(info, "redfish_password"),
        verify_ca: verify_ca(node, info.get("redfish_verify_ca"))?,
        auth_type,
    })
}

/// `scheme://authority` and the path, https assumed without a scheme.
fn split_address(raw: &str) -> Option<(String, Option<String>)> {
    let with_scheme = if raw.contains("://") {
        raw.to_owned()
    } else {
        format!("https://{raw}")
    };
    let (scheme, rest) = with_scheme.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let valid_host = !host.is_empty()
        && !host.starts_with(':')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]%".contains(c));
    if !valid_host || rest.contains(char::is_whitespace) {
        return None;
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']')) {
        if !host.starts_with('[') && port.parse::<u16>().is_err() {
            return None;
        }
    }
    let path = path
        .filter(|p| !p.is_empty() && *p != "/")
        .map(str::to_owned);
    Some((format!("{scheme}://{authority}"), path))
}

fn verify_ca(node: NodeUuid, value: Option<&Value>) -> Result<VerifyCa, DriverError> {
    let bad = |v: &dyn std::fmt::Display| {
        DriverError::InvalidParameter(format!(
            "Invalid value type set in driver_info/redfish_verify_ca on node {node}. The value should be a Boolean or \
             the path to a file/directory, not \"{v}\""
        ))
    };
    match value {
        None | Some(Value::Null) | Some(Value::Bool(true)) => Ok(VerifyCa::Yes),
        Some(Value::Bool(false)) => Ok(VerifyCa::No),
        Some(Value::String(s)) => {
            let path = PathBuf::from(s);
            if path.is_file() || path.is_dir() {
                return Ok(VerifyCa::Path(path));
            }
            match s.trim().to_ascii_lowercase().as_str() {
                "1" | "t" | "true" | "on" | "y" | "yes" => Ok(VerifyCa::Yes),
                "0" | "f" | "false" | "off" | "n" | "no" => Ok(VerifyCa::No),
                _ => Err(bad(s)),
            }
        }
        Some(other) => Err(bad(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m.into_iter().collect(),
            _ => JsonObject::default(),
        }
    }

    fn uuid() -> NodeUuid {
        NodeUuid::new_random()
    }

    #[test]
    fn addresses_are_read_as_ironic_reads_them() {
        let p = |a: &str| parse(uuid(), &info(json!({"redfish_address": a})), "auto").unwrap();
        assert_eq!(p("10.0.0.1").address, "https://10.0.0.1");
        assert_eq!(p("http://127.0.0.1:8000").address, "http://127.0.0.1:8000");
        let prefixed = p("https://bmc:8443/custom/v1/");
        assert_eq!(prefixed.address, "https://bmc:8443");
        assert_eq!(prefixed.root_prefix.as_deref(), Some("/custom/v1/"));
        assert_eq!(p("https://[fd00::1]:443").address, "https://[fd00::1]:443");
        assert_eq!(p("bmc").verify_ca, VerifyCa::Yes);
        assert_eq!(p("bmc").auth_type, "auto");
    }

    #[test]
    fn bad_values_are_named() {
        let node = uuid();
        let err = |v: Value| parse(node, &info(v), "auto").unwrap_err().to_string();
        assert_eq!(
            err(json!({})),
            format!("Missing the following Redfish properties in node {node} driver_info: ['redfish_address']")
        );
        for bad in ["ftp://x", "http://", "https://a b", "https://host:notaport"] {
            assert!(
                err(json!({"redfish_address": bad})).starts_with("Invalid Redfish address"),
                "{bad}"
            );
        }
        assert!(
            err(json!({"redfish_address": "a", "redfish_auth_type": "kerberos"}))
                .contains("redfish_auth_type")
        );
        assert!(
            err(json!({"redfish_address": "a", "redfish_verify_ca": "/no/such/bundle"}))
                .contains("redfish_verify_ca")
        );
        assert!(err(json!({"redfish_address": "a", "redfish_system_id": 5}))
            .contains("redfish_system_id"));
    }

    #[test]
    fn verify_ca_takes_booleans_strings_and_paths() {
        let v = |x: Value| {
            parse(
                uuid(),
                &info(json!({"redfish_address": "a", "redfish_verify_ca": x})),
                "auto",
            )
            .unwrap()
            .verify_ca
        };
        assert_eq!(v(json!(false)), VerifyCa::No);
        assert_eq!(v(json!("False")), VerifyCa::No);
        assert_eq!(v(json!("yes")), VerifyCa::Yes);
        assert_eq!(v(json!("/")), VerifyCa::Path(PathBuf::from("/")));
        let p = parse(
            uuid(),
            &info(json!({"redfish_address": "a", "redfish_password": "pw"})),
            "basic",
        )
        .unwrap();
        assert!(!format!("{p:?}").contains("pw\""));
    }
}
