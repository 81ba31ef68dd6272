//! Microversions: `1.N`, negotiated per request from the
//! `OpenStack-API-Version: baremetal 1.N` or `X-OpenStack-Ironic-API-Version`
//! header. Only this crate knows about them.

use std::fmt;

use axum::http::HeaderMap;

/// A negotiated microversion; the major version is always 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32);

pub const MIN: Version = Version(1);
pub const MAX: Version = Version(115);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.0)
    }
}

impl Version {
    /// Whether this version is at least `1.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= minor
    }
}

/// Why a requested version was refused (406).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The header is not `1.N`: no version headers go back.
    Unparsable(&'static str),
    /// A valid number outside what Ferric serves.
    Unsupported(String),
}

pub const STANDARD_HEADER: &str = "openstack-api-version";
pub const LEGACY_HEADER: &str = "x-openstack-ironic-api-version";

/// The version a request asked for; no header means the minimum, as in
/// Ironic.
pub fn negotiate(headers: &HeaderMap) -> Result<Version, VersionError> {
    let Some(raw) = requested(headers) else {
        return Ok(MIN);
    };
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("latest") {
        return Ok(MAX);
    }
    let (major, minor) = parse(raw).ok_or(VersionError::Unparsable(LEGACY_HEADER))?;
    if major != 1 {
        return Err(VersionError::Unsupported(format!(
            "Mutually exclusive versions requested. Version {major}.{minor} requested but not supported by this \
             service. The supported version range is: [{MIN}, {MAX}]."
        )));
    }
    if !(MIN.0..=MAX.0).contains(&minor) {
        return Err(VersionError::Unsupported(format!(
            "Version {major}.{minor} was requested but the minor version is not supported by this service. The \
             supported version range is: [{MIN}, {MAX}]."
        )));
    }
    Ok(Version(minor))
}

/// The standard header's last `baremetal` entry wins over the legacy one.
fn requested(headers: &HeaderMap) -> Option<String> {
    let standard = headers
        .get_all(STANDARD_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|entry| {
            let mut parts = entry.split_whitespace();
            let service = parts.next()?;
            let version = parts.next()?;
            service
                .eq_ignore_ascii_case("baremetal")
                .then(|| version.to_owned())
        })
        .next_back();
    standard.or_else(|| {
        headers
            .get_all(LEGACY_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .map(str::to_owned)
    })
}

fn parse(raw: &str) -> Option<(u32, u32)> {
    let (major, minor) = raw.split_once('.')?;
    Some((major.trim().parse().ok()?, minor.trim().parse().ok()?))
}

/// Microversions at which features appeared (Ironic's versions.py).
pub mod at {
    pub const AVAILABLE_STATE: u32 = 2;
    pub const DRIVER_INTERNAL_INFO: u32 = 3;
    pub const MANAGEABLE_STATE: u32 = 4;
    pub const NODE_NAME: u32 = 5;
    pub const INSPECT_STATE: u32 = 6;
    pub const FIELDS: u32 = 8;
    pub const PROVISION_STATE_FILTER: u32 = 9;
    pub const UNRESTRICTED_NODE_NAME: u32 = 10;
    pub const ENROLL_STATE: u32 = 11;
    pub const RAID_CONFIG: u32 = 12;
    pub const ABORT_VERB: u32 = 13;
    pub const LINKS_NODESTATES_DRIVERPROPERTIES: u32 = 14;
    pub const MANUAL_CLEAN: u32 = 15;
    pub const DRIVER_FILTER: u32 = 16;
    pub const ADOPT_VERB: u32 = 17;
    pub const RESOURCE_CLASS: u32 = 21;
    pub const PORTGROUPS: u32 = 23;
    pub const PORTGROUPS_SUBCONTROLLERS: u32 = 24;
    pub const UNSET_CHASSIS_UUID: u32 = 25;
    pub const PORTGROUP_MODE_PROPERTIES: u32 = 26;
    pub const SOFT_POWER_OFF: u32 = 27;
    pub const INJECT_NMI: u32 = 29;
    pub const DYNAMIC_DRIVERS: u32 = 30;
    pub const REBUILD_CONFIG_DRIVE: u32 = 35;
    pub const NODE_TRAITS: u32 = 37;
    pub const RESCUE: u32 = 38;
    pub const INSPECT_WAIT: u32 = 39;
    pub const INSPECTION_ABORT: u32 = 41;
    pub const FAULT: u32 = 42;
    pub const DETAIL_QUERY: u32 = 43;
    pub const RESET_INTERFACES: u32 = 45;
    pub const CONDUCTOR_GROUP: u32 = 46;
    pub const CONDUCTORS: u32 = 49;
    pub const NODE_OWNER: u32 = 50;
    pub const BUILD_CONFIGDRIVE: u32 = 56;
    pub const CONFIGDRIVE_VENDOR_DATA: u32 = 59;
    pub const NODE_LESSEE: u32 = 65;
    pub const DEPLOY_STEPS: u32 = 69;
    pub const CLEAN_DISABLE_RAMDISK: u32 = 70;
    pub const DEPLOY_UNDEPLOY_VERBS: u32 = 73;
    pub const DRIVER_FIELDS: u32 = 77;
    pub const NODE_SHARD: u32 = 82;
    pub const PARENT_CHILD_NODES: u32 = 83;
    pub const UNHOLD_VERB: u32 = 85;
    pub const SERVICE: u32 = 87;
    pub const PORT_NAME: u32 = 88;
    pub const PORT_NODE_IDENT: u32 = 94;
    pub const PORTGROUP_PHYSICAL_NETWORK: u32 = 102;
    pub const NODE_INSTANCE_NAME: u32 = 104;
    pub const PORTGROUP_SHARD: u32 = 106;
    pub const SERVICE_DISABLE_RAMDISK: u32 = 108;
    pub const DEPLOYWAIT_ABORT: u32 = 110;
    pub const VOLUME: u32 = 32;
    pub const INSPECTION_RULES: u32 = 96;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn negotiation_follows_ironic() {
        assert_eq!(negotiate(&headers(&[])), Ok(MIN));
        assert_eq!(negotiate(&headers(&[(LEGACY_HEADER, "latest")])), Ok(MAX));
        assert_eq!(
            negotiate(&headers(&[(LEGACY_HEADER, " 1.5")])),
            Ok(Version(5))
        );
        let both = headers(&[
            (LEGACY_HEADER, "1.5"),
            (STANDARD_HEADER, "compute 2.1, baremetal 1.60"),
        ]);
        assert_eq!(negotiate(&both), Ok(Version(60)));
        assert!(matches!(
            negotiate(&headers(&[(LEGACY_HEADER, "1.999")])),
            Err(VersionError::Unsupported(m)) if m.starts_with("Version 1.999 was requested")
        ));
        assert!(matches!(
            negotiate(&headers(&[(LEGACY_HEADER, "2.1")])),
            Err(VersionError::Unsupported(_))
        ));
        for bad in ["1", "abc", "1.5.1"] {
            let h = HeaderMap::from_iter([(
                axum::http::HeaderName::from_static(LEGACY_HEADER),
                HeaderValue::from_str(bad).unwrap(),
            )]);
            assert!(
                matches!(negotiate(&h), Err(VersionError::Unparsable(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            negotiate(&headers(&[(LEGACY_HEADER, "1.0")])),
            Err(VersionError::Unsupported(_))
        ));
    }
}
