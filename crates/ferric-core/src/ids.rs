//! Typed identifiers, validated when parsed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                $name(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, uuid::Error> {
                parse_uuid(s).map($name)
            }
        }
    };
}

uuid_id!(
    /// A node's `uuid`.
    NodeUuid
);
uuid_id!(
    /// A port's `uuid`.
    PortUuid
);
uuid_id!(
    /// A port group's `uuid`.
    PortgroupUuid
);
uuid_id!(
    /// A chassis' `uuid`.
    ChassisUuid
);
uuid_id!(
    /// A deploy template's `uuid`.
    DeployTemplateUuid
);
uuid_id!(
    /// A runbook's `uuid`.
    RunbookUuid
);
uuid_id!(
    /// A volume connector's `uuid`.
    VolumeConnectorUuid
);
uuid_id!(
    /// A volume target's `uuid`.
    VolumeTargetUuid
);
uuid_id!(
    /// An inspection rule's `uuid`.
    InspectionRuleUuid
);

/// Parses a UUID in the forms Ironic's `is_uuid_like` accepts: hyphenated,
/// plain hex, braced or URN.
pub fn parse_uuid(s: &str) -> Result<Uuid, uuid::Error> {
    Uuid::parse_str(s)
}

/// Whether `s` looks like a UUID, the test Ironic uses to tell a UUID from a
/// name in a URL.
pub fn is_uuid_like(s: &str) -> bool {
    parse_uuid(s).is_ok()
}

/// A resource named in a URL or a body: its UUID, or its logical name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ident<U> {
    Uuid(U),
    Name(String),
}

pub type NodeIdent = Ident<NodeUuid>;

impl<U: FromStr> Ident<U> {
    /// UUID-looking strings are UUIDs; anything else is a name.
    pub fn parse(s: &str) -> Self {
        match s.parse::<U>() {
            Ok(u) => Ident::Uuid(u),
            Err(_) => Ident::Name(s.to_owned()),
        }
    }
}

impl<U: fmt::Display> fmt::Display for Ident<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ident::Uuid(u) => u.fmt(f),
            Ident::Name(n) => f.write_str(n),
        }
    }
}

/// Ironic's logical-name rule (API 1.10 and later): 1 to 255 RFC 3986
/// unreserved characters.
pub fn is_valid_logical_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Ironic's older node-name rule (before API 1.10): an RFC 952/1123 host
/// name, lower case, labels of 1 to 63 characters, optional trailing dot.
pub fn is_hostname_safe(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    !trimmed.is_empty() && trimmed.split('.').all(is_hostname_label)
}

fn is_hostname_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 63
                && edge_ok(first)
                && edge_ok(last)
                && bytes.iter().all(|&b| edge_ok(b) || b == b'-')
        }
        _ => false,
    }
}

/// A MAC address, normalized to lower case with colons.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct MacAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Expected a MAC address but received {0}.")]
pub struct InvalidMac(pub String);

impl MacAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MacAddress {
    type Err = InvalidMac;

    /// Six pairs of hex digits separated by `:`, any case (oslo's
    /// `is_valid_mac`, which Ironic uses).
    fn from_str(s: &str) -> Result<Self, InvalidMac> {
        let bytes = s.as_bytes();
        let well_formed = bytes.len() == 17
            && bytes.iter().enumerate().all(|(i, &b)| {
                if i % 3 == 2 {
                    b == b':'
                } else {
                    b.is_ascii_hexdigit()
                }
            });
        if !well_formed {
            return Err(InvalidMac(s.to_owned()));
        }
        Ok(MacAddress(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idents_tell_uuids_from_names() {
        let u = "5c2b03c2-8c02-48b6-90df-32b92f0dd261";
        assert!(matches!(NodeIdent::parse(u), Ident::Uuid(_)));
        assert_eq!(NodeIdent::parse("n1"), Ident::Name("n1".into()));
        assert!(matches!(
            NodeIdent::parse(&format!("{{{u}}}")),
            Ident::Uuid(_)
        ));
        assert_eq!(
            NodeIdent::parse("5c2b03c2-8c02"),
            Ident::Name("5c2b03c2-8c02".into())
        );
        let plain = u.replace('-', "");
        assert_eq!(NodeIdent::parse(&plain).to_string(), u);
    }

    #[test]
    fn logical_names_are_unreserved_characters() {
        assert!(is_valid_logical_name("node-1.rack_a~b"));
        assert!(is_valid_logical_name("UPPER"));
        for bad in ["", "a b", "a/b", "é", &"x".repeat(256)] {
            assert!(!is_valid_logical_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn hostname_rule_is_stricter() {
        assert!(is_hostname_safe("node-1.example.com."));
        for bad in ["Node", "-a", "a-", "a..b", "a_b", &"x".repeat(64)] {
            assert!(!is_hostname_safe(bad), "{bad:?}");
        }
    }

    #[test]
    fn macs_are_validated_and_normalized() {
        let mac: MacAddress = "52:54:00:AB:cd:EF".parse().unwrap();
        assert_eq!(mac.as_str(), "52:54:00:ab:cd:ef");
        for bad in [
            "52-54-00-ab-cd-ef",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:eg",
            "5254.00ab.cdef",
            "52:54:00:ab:cd:ef:",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
        }
    }
}
