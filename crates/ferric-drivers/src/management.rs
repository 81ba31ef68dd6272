//! What a management interface offers beyond boot devices: the
//! indicators (LEDs) of a machine's components and its virtual media
//! devices, with Ironic's names.

use ferric_core::BootDevice;
use serde::Serialize;

/// An indicator's state (Ironic's `indicator_states`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum IndicatorState {
    #[serde(rename = "off")]
    Off,
    #[serde(rename = "on")]
    On,
    #[serde(rename = "blinking")]
    Blinking,
    #[serde(rename = "unknown")]
    Unknown,
}

impl IndicatorState {
    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorState::Off => "off",
            IndicatorState::On => "on",
            IndicatorState::Blinking => "blinking",
            IndicatorState::Unknown => "unknown",
        }
    }

    /// The states a user may ask for; `unknown` is only ever read.
    pub fn parse_target(text: &str) -> Option<IndicatorState> {
        match text {
            "off" => Some(IndicatorState::Off),
            "on" => Some(IndicatorState::On),
            "blinking" => Some(IndicatorState::Blinking),
            _ => None,
        }
    }
}

impl std::fmt::Display for IndicatorState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One indicator of a component (`chassis`, `system`, `disk`, `power`,
/// `nic`), as `get_supported_indicators` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indicator {
    pub component: String,
    pub name: String,
    pub readonly: bool,
    pub states: Vec<IndicatorState>,
}

/// Device types that make sense for virtual media (Ironic's
/// `boot_devices.VMEDIA_DEVICES`), in Ironic's order.
pub const VMEDIA_DEVICES: &[BootDevice] =
    &[BootDevice::Disk, BootDevice::Cdrom, BootDevice::Floppy];

/// A virtual media device as `GET /vmedia` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualMediaDevice {
    /// Redfish's media type names: `CD`, `DVD`, `Floppy`, `USBStick`.
    pub media_types: Vec<String>,
    pub inserted: Option<bool>,
    pub image: Option<String>,
}

/// Redfish's media type for a device type (Ironic's
/// `VMEDIA_DEVICES_MAP_REV`).
pub fn media_type_of(device: BootDevice) -> Option<&'static str> {
    match device {
        BootDevice::Disk => Some("USBStick"),
        BootDevice::Cdrom => Some("CD"),
        BootDevice::Floppy => Some("Floppy"),
        _ => None,
    }
}

/// [`media_type_of`], or the refusal of a device that is not one for
/// virtual media.
pub fn vmedia_type_of(device: BootDevice) -> Result<&'static str, crate::DriverError> {
    media_type_of(device).ok_or_else(|| {
        crate::DriverError::InvalidParameter(format!(
            "Invalid device type {device} for virtual media."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_settable_states_parse_as_targets() {
        assert_eq!(
            IndicatorState::parse_target("blinking"),
            Some(IndicatorState::Blinking)
        );
        assert_eq!(IndicatorState::parse_target("unknown"), None);
        assert_eq!(IndicatorState::parse_target("ON"), None);
    }

    #[test]
    fn every_vmedia_device_has_a_media_type() {
        for d in VMEDIA_DEVICES {
            assert!(media_type_of(*d).is_some());
        }
        assert_eq!(media_type_of(BootDevice::Pxe), None);
    }
}
