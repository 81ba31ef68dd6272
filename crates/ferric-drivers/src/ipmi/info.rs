//! The `ipmi_*` fields of a node's `driver_info`, read and checked as
//! Ironic's `_parse_driver_info` does, with its error texts.

use ferric_core::JsonObject;
use serde_json::Value;

use crate::error::DriverError;

/// Ironic's privilege level names, lowest first.
pub const PRIV_LEVELS: &[&str] = &["CALLBACK", "USER", "OPERATOR", "ADMINISTRATOR"];
/// Cipher suites Ferric speaks.
pub const CIPHER_SUITES: &[u8] = &[1, 2, 3, 17];

/// Where and how to reach a node's BMC.
#[derive(Clone, PartialEq, Eq)]
pub struct IpmiInfo {
    pub address: String,
    pub port: u16,
    /// Empty: the NULL user.
    pub username: String,
    pub password: String,
    /// One of [`PRIV_LEVELS`].
    pub priv_level: &'static str,
    /// `None`: probe the BMC's suites (17, then 3, 2, 1) and remember.
    pub cipher_suite: Option<u8>,
    pub bridge: Option<Bridge>,
    /// Set the boot device again before every power-on.
    pub force_boot_device: bool,
    /// Send the raw command that disables the BMC's 60 s boot-flag timeout.
    pub disable_boot_timeout: bool,
}

impl std::fmt::Debug for IpmiInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpmiInfo")
            .field("address", &self.address)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"***")
            .field("priv_level", &self.priv_level)
            .field("cipher_suite", &self.cipher_suite)
            .field("bridge", &self.bridge)
            .finish_non_exhaustive()
    }
}

/// Single bridging: the request goes through the BMC to a controller on
/// another channel (ipmitool's `-b CHANNEL -t ADDRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    pub target_channel: u8,
    pub target_address: u8,
}

/// What `driver property list` shows for the ipmitool interfaces.
pub fn properties() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ipmi_address", "IP address or hostname of the node. Required."),
        ("ipmi_password", "password. Optional."),
        ("ipmi_port", "remote IPMI RMCP port. Optional."),
        ("ipmi_priv_level", "privilege level; default is ADMINISTRATOR. One of CALLBACK, USER, OPERATOR, ADMINISTRATOR. Optional."),
        ("ipmi_username", "username; default is NULL user. Optional."),
        ("ipmi_bridging", "bridging_type; default is \"no\". One of \"single\", \"no\". Optional."),
        ("ipmi_target_channel", "destination channel for bridged request. Required only if ipmi_bridging is set to \"single\"."),
        ("ipmi_target_address", "destination address for bridged request. Required only if ipmi_bridging is set to \"single\"."),
        ("ipmi_protocol_version", "the version of the IPMI protocol; default is \"2.0\". Only \"2.0\" is supported. Optional."),
        ("ipmi_force_boot_device", "Whether Ironic should specify the boot device to the BMC each time the server is turned on, eg. because the BMC is not capable of remembering the selected boot device across power cycles; default value is False. Optional."),
        ("ipmi_disable_boot_timeout", "By default ironic will send a raw IPMI command to disable the 60 second timeout for booting. Setting this option to False will NOT send that command on this node. Optional."),
        ("ipmi_cipher_suite", "The number of a cipher suite to use: 1, 2, 3 (AES-128 with SHA1) or 17 (AES-128 with SHA256); 17 is preferred. By default the BMC's suites are probed once and the best is remembered. Optional."),
    ]
}

fn invalid(msg: String) -> DriverError {
    DriverError::InvalidParameter(msg)
}

/// A string field; numbers are accepted as their decimal text, as
/// Ironic's `str()` would.
fn text(info: &JsonObject, key: &str) -> Option<String> {
    match info.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// oslo's `bool_from_string`: true, 1, yes, on, y, t (any case).
fn flag(info: &JsonObject, key: &str, default: bool) -> bool {
    match info.get(key) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            let s = match v {
                Value::String(s) => s.trim().to_ascii_lowercase(),
                other => other.to_string(),
            };
            matches!(s.as_str(), "1" | "t" | "true" | "on" | "y" | "yes")
        }
    }
}

fn port(info: &JsonObject, key: &str) -> Result<Option<u16>, DriverError> {
    let Some(raw) = text(info, key) else {
        return Ok(None);
    };
    match raw.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(u16::try_from(p).ok()),
        _ => Err(invalid(format!(
            "{key} \"{raw}\" is not a valid port number: it must be an integer from 1 to 65535."
        ))),
    }
}

/// A byte given as decimal or `0x` hex, as ipmitool takes it.
fn byte(info: &JsonObject, key: &str) -> Result<Option<u8>, DriverError> {
    let Some(raw) = text(info, key) else {
        return Ok(None);
    };
    let t = raw.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => t.parse::<u8>().ok(),
    };
    parsed.map(Some).ok_or_else(|| {
        invalid(format!(
            "Invalid value for {key}: {raw}, expected a byte (0-255 or 0x00-0xff)"
        ))
    })
}

/// Reads the node's IPMI settings or says what is wrong with them.
pub fn parse(info: &JsonObject) -> Result<IpmiInfo, DriverError> {
    let address = text(info, "ipmi_address").filter(|a| !a.trim().is_empty());
    let Some(address) = address else {
        return Err(DriverError::MissingParameter(
            "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."
                .into(),
        ));
    };
    let version = text(info, "ipmi_protocol_version").unwrap_or_else(|| "2.0".into());
    match version.as_str() {
        "2.0" => {}
        "1.5" => {
            return Err(invalid(
                "IPMI protocol version 1.5 is not supported by Ferric's native IPMI; use 2.0 (every BMC since 2004 speaks it)".into(),
            ))
        }
        other => {
            return Err(invalid(format!(
                "Invalid IPMI protocol version value {other}, the valid value can be one of 1.5, 2.0"
            )))
        }
    }
    let priv_level = text(info, "ipmi_priv_level").unwrap_or_else(|| "ADMINISTRATOR".into());
    let Some(priv_level) = PRIV_LEVELS.iter().copied().find(|p| *p == priv_level) else {
        return Err(invalid(format!(
            "Invalid privilege level value:{priv_level}, the valid value can be one of {}",
            PRIV_LEVELS.join(", ")
        )));
    };
    if let Some(kg) = text(info, "ipmi_hex_kg_key").filter(|k| !k.is_empty()) {
        if kg.len() % 2 != 0 {
            return Err(invalid(
                "Number of ipmi_hex_kg_key characters is not even".into(),
            ));
        }
        return Err(invalid(
            "ipmi_hex_kg_key is not supported by Ferric's native IPMI yet".into(),
        ));
    }
    Ok(IpmiInfo {
        address: address.trim().to_owned(),
        port: port(info, "ipmi_port")?.unwrap_or(623),
        username: text(info, "ipmi_username").unwrap_or_default(),
        password: text(info, "ipmi_password").unwrap_or_default(),
        priv_level,
        cipher_suite: cipher_suite(info)?,
        bridge: bridge(info)?,
        force_boot_device: flag(info, "ipmi_force_boot_device", false),
        disable_boot_timeout: flag(info, "ipmi_disable_boot_timeout", true),
    })
}

fn cipher_suite(info: &JsonObject) -> Result<Option<u8>, DriverError> {
    let Some(raw) = text(info, "ipmi_cipher_suite") else {
        return Ok(None);
    };
    let Ok(n) = raw.trim().parse::<i64>() else {
        return Err(invalid(format!(
            "Invalid cipher suite {raw}, expected a number"
        )));
    };
    CIPHER_SUITES
        .iter()
        .copied()
        .find(|c| i64::from(*c) == n)
        .map(Some)
        .ok_or_else(|| {
            invalid(format!(
                "Unsupported cipher suite {n}: Ferric speaks cipher suites 1, 2, 3 and 17 (17 or 3 recommended)"
            ))
        })
}

fn bridge(info: &JsonObject) -> Result<Option<Bridge>, DriverError> {
    let kind = text(info, "ipmi_bridging").unwrap_or_else(|| "no".into());
    match kind.as_str() {
        "no" => Ok(None),
        "single" => {
            let channel = byte(info, "ipmi_target_channel")?;
            let address = byte(info, "ipmi_target_address")?;
            match (channel, address) {
                (Some(target_channel), Some(target_address)) => Ok(Some(Bridge {
                    target_channel,
                    target_address,
                })),
                (c, a) => {
                    let missing: Vec<String> = [("ipmi_target_channel", c.is_none()), ("ipmi_target_address", a.is_none())]
                        .iter()
                        .filter(|(_, m)| *m)
                        .map(|(k, _)| format!("'{k}'"))
                        .collect();
                    Err(DriverError::MissingParameter(format!("[{}] not provided", missing.join(", "))))
                }
            }
        }
        "dual" => Err(invalid(
            "Value for ipmi_bridging is provided as dual, but dual bridging is not supported by Ferric's native IPMI; single bridging is".into(),
        )),
        other => Err(invalid(format!(
            "Invalid value for ipmi_bridging: {other}, the valid value can be one of: ['single', 'dual', 'no']"
        ))),
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

    #[test]
    fn defaults_are_ironics() {
        let i = parse(&info(json!({"ipmi_address": "10.0.0.5"}))).unwrap();
        assert_eq!(i.port, 623);
        assert_eq!(i.username, "");
        assert_eq!(i.password, "");
        assert_eq!(i.priv_level, "ADMINISTRATOR");
        assert_eq!(i.cipher_suite, None);
        assert_eq!(i.bridge, None);
        assert!(!i.force_boot_device);
        assert!(i.disable_boot_timeout);
    }

    #[test]
    fn every_field_is_read() {
        let i = parse(&info(json!({
            "ipmi_address": " bmc.example ", "ipmi_port": "6230", "ipmi_username": "admin",
            "ipmi_password": 1234, "ipmi_priv_level": "OPERATOR", "ipmi_cipher_suite": "17",
            "ipmi_bridging": "single", "ipmi_target_channel": 7, "ipmi_target_address": "0x72",
            "ipmi_force_boot_device": "True", "ipmi_disable_boot_timeout": "false"
        })))
        .unwrap();
        assert_eq!(i.address, "bmc.example");
        assert_eq!(i.port, 6230);
        assert_eq!(i.password, "1234");
        assert_eq!(i.priv_level, "OPERATOR");
        assert_eq!(i.cipher_suite, Some(17));
        assert_eq!(
            i.bridge,
            Some(Bridge {
                target_channel: 7,
                target_address: 0x72
            })
        );
        assert!(i.force_boot_device);
        assert!(!i.disable_boot_timeout);
        assert!(!format!("{i:?}").contains("1234"));
    }

    #[test]
    fn bad_values_are_named() {
        let err = |v: Value| parse(&info(v)).unwrap_err().to_string();
        assert_eq!(
            err(json!({})),
            "Missing the following IPMI credentials in node's driver_info: ['ipmi_address']."
        );
        assert!(err(json!({"ipmi_address": "a", "ipmi_port": "0"})).contains("ipmi_port"));
        assert!(err(json!({"ipmi_address": "a", "ipmi_port": "x"})).contains("ipmi_port"));
        assert!(err(json!({"ipmi_address": "a", "ipmi_priv_level": "ROOT"}))
            .starts_with("Invalid privilege level value:ROOT"));
        assert_eq!(
            err(json!({"ipmi_address": "a", "ipmi_cipher_suite": "abc"})),
            "Invalid cipher suite abc, expected a number"
        );
        assert!(err(json!({"ipmi_address": "a", "ipmi_cipher_suite": 8}))
            .contains("Unsupported cipher suite 8"));
        assert_eq!(
            err(json!({"ipmi_address": "a", "ipmi_bridging": "single", "ipmi_target_channel": 1})),
            "['ipmi_target_address'] not provided"
        );
        assert!(err(json!({"ipmi_address": "a", "ipmi_bridging": "maybe"}))
            .starts_with("Invalid value for ipmi_bridging: maybe"));
        assert!(
            err(json!({"ipmi_address": "a", "ipmi_protocol_version": "3"}))
                .starts_with("Invalid IPMI protocol version value 3")
        );
        assert!(err(json!({"ipmi_address": "a", "ipmi_target_channel": "0x1ff", "ipmi_bridging": "single", "ipmi_target_address": 1})).contains("ipmi_target_channel"));
    }
}
