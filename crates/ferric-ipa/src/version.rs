//! Ironic API version discovery (`GET /`) and the microversions that decide
//! which fields the agent may send.
//!
//! IPA reads `default_version.version` from `GET /`, assumes
//! [`ApiVersion::MIN_KNOWN`] (1.31) when that fails, and then gates fields on
//! the version: `agent_version` in heartbeats from 1.36, `agent_token` from
//! 1.62, `agent_verify_ca` (and automatic TLS) from 1.68,
//! `agent_status`/`agent_status_message` from 1.72.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ironic API microversion such as `1.68`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 for Ironic's v1 API.
    pub major: u32,
    /// The microversion number.
    pub minor: u32,
}

impl ApiVersion {
    /// What IPA assumes when version discovery fails.
    pub const MIN_KNOWN: ApiVersion = ApiVersion::new(1, 31);
    /// `agent_version` accepted in heartbeats.
    pub const AGENT_VERSION: ApiVersion = ApiVersion::new(1, 36);
    /// Lookup hands out `agent_token`; heartbeats carry it.
    pub const AGENT_TOKEN: ApiVersion = ApiVersion::new(1, 62);
    /// `agent_verify_ca` accepted in heartbeats: the agent serves TLS.
    pub const AGENT_VERIFY_CA: ApiVersion = ApiVersion::new(1, 68);
    /// `agent_status` and `agent_status_message` accepted in heartbeats.
    pub const AGENT_STATUS: ApiVersion = ApiVersion::new(1, 72);
    /// The highest version IPA (and Ferric's agent) knows about.
    pub const MAX_KNOWN: ApiVersion = ApiVersion::AGENT_STATUS;

    /// A version from its two numbers.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// The `X-OpenStack-Ironic-API-Version` header value IPA sends with
    /// lookup: the server's version, capped at 1.62.
    pub fn for_lookup(server: ApiVersion) -> ApiVersion {
        server.min(Self::AGENT_TOKEN)
    }

    /// The header value for heartbeats: the server's version, capped at the
    /// highest version this crate knows.
    pub fn for_heartbeat(server: ApiVersion) -> ApiVersion {
        server.min(Self::MAX_KNOWN)
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A version string that is not `MAJOR.MINOR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid API version {0:?}: expected MAJOR.MINOR")]
pub struct VersionError(pub String);

impl FromStr for ApiVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionError(s.chars().take(32).collect());
        let (major, minor) = s.trim().split_once('.').ok_or_else(bad)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return Err(bad());
        }
        Ok(Self::new(
            major.parse().map_err(|_| bad())?,
            minor.parse().map_err(|_| bad())?,
        ))
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A link as Ironic writes them (`href`, `rel`, optional `type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The URL.
    pub href: String,
    /// `self`, `bookmark`, `describedby`, ...
    pub rel: String,
    /// Media type, present on `describedby` links.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// One entry of `versions` (and `default_version`) in `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// `v1`.
    pub id: String,
    /// Links to the versioned root.
    #[serde(default)]
    pub links: Vec<Link>,
    /// `CURRENT`.
    #[serde(default)]
    pub status: String,
    /// Lowest microversion served.
    pub min_version: ApiVersion,
    /// Highest microversion served: what IPA uses.
    pub version: ApiVersion,
}

/// Ironic's `GET /` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRoot {
    /// `OpenStack Ironic API`.
    #[serde(default)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The version IPA reads.
    pub default_version: VersionInfo,
    /// Every major version served.
    #[serde(default)]
    pub versions: Vec<VersionInfo>,
}

impl ApiRoot {
    /// The server's highest microversion, as IPA takes it.
    pub fn max_version(&self) -> ApiVersion {
        self.default_version.version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_versions() {
        let v: ApiVersion = "1.115".parse().unwrap();
        assert_eq!(v, ApiVersion::new(1, 115));
        assert!(v > ApiVersion::AGENT_VERIFY_CA);
        assert!(ApiVersion::new(1, 9) < ApiVersion::new(1, 10));
        assert_eq!(v.to_string(), "1.115");
    }

    #[test]
    fn rejects_bad_versions() {
        for bad in ["", "1", "1.", ".5", "a.b", "1.2.3", "-1.2", "1.99999999999"] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn caps_versions_like_ipa() {
        let server = ApiVersion::new(1, 115);
        assert_eq!(ApiVersion::for_lookup(server), ApiVersion::new(1, 62));
        assert_eq!(ApiVersion::for_heartbeat(server), ApiVersion::new(1, 72));
        let old = ApiVersion::new(1, 50);
        assert_eq!(ApiVersion::for_lookup(old), old);
    }
}
