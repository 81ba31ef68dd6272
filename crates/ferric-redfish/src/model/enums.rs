//! The Redfish enumerations Ferric reads and writes, each keeping unknown strings as `Other`.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

macro_rules! redfish_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this crate does not know, kept as the BMC sent it.
            Other(String),
        }

        impl $name {
            /// Every value this crate knows, in schema order.
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant ),+ ];

            /// The value as Redfish spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }

            /// Reads a wire string: exact spelling first, then any case.
            pub fn from_wire(text: &str) -> $name {
                $( if text == $text { return $name::$variant; } )+
                $( if text.eq_ignore_ascii_case($text) { return $name::$variant; } )+
                $name::Other(text.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(text: &str) -> Result<$name, Self::Err> {
                Ok($name::from_wire(text))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                d.deserialize_any(WireVisitor).map(|text| $name::from_wire(&text))
            }
        }
    };
}

/// Accepts a string, or a scalar of another type as its text (some BMCs send numbers).
struct WireVisitor;

impl Visitor<'_> for WireVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

redfish_enum! {
    /// `ComputerSystem.PowerState`.
    PowerState {
        On = "On",
        Off = "Off",
        PoweringOn = "PoweringOn",
        PoweringOff = "PoweringOff",
        Paused = "Paused",
    }
}

impl PowerState {
    /// Whether the system counts as on, as Ironic maps it (`PoweringOn` is on, `PoweringOff`
    /// off); `None` for states that are neither.
    pub fn is_on(&self) -> Option<bool> {
        match self {
            PowerState::On | PowerState::PoweringOn => Some(true),
            PowerState::Off | PowerState::PoweringOff => Some(false),
            PowerState::Paused | PowerState::Other(_) => None,
        }
    }
}

redfish_enum! {
    /// `Resource.ResetType`, the parameter of `#ComputerSystem.Reset`.
    ResetType {
        On = "On",
        ForceOff = "ForceOff",
        GracefulShutdown = "GracefulShutdown",
        GracefulRestart = "GracefulRestart",
        ForceRestart = "ForceRestart",
        Nmi = "Nmi",
        ForceOn = "ForceOn",
        PushPowerButton = "PushPowerButton",
        PowerCycle = "PowerCycle",
    }
}

redfish_enum! {
    /// `ComputerSystem.BootSource`, the values of `BootSourceOverrideTarget`.
    BootSource {
        None = "None",
        Pxe = "Pxe",
        Floppy = "Floppy",
        Cd = "Cd",
        Usb = "Usb",
        Hdd = "Hdd",
        BiosSetup = "BiosSetup",
        Utilities = "Utilities",
        Diags = "Diags",
        UefiShell = "UefiShell",
        UefiTarget = "UefiTarget",
        SdCard = "SDCard",
        UefiHttp = "UefiHttp",
        RemoteDrive = "RemoteDrive",
        UefiBootNext = "UefiBootNext",
        /// Not in the standard: Supermicro X11/X12 present virtual media as a USB CD.
        UsbCd = "UsbCd",
    }
}

redfish_enum! {
    /// `BootSourceOverrideEnabled`: how long the override lasts.
    BootEnabled {
        Disabled = "Disabled",
        Once = "Once",
        Continuous = "Continuous",
    }
}

redfish_enum! {
    /// `BootSourceOverrideMode`.
    BootMode {
        Legacy = "Legacy",
        Uefi = "UEFI",
    }
}

redfish_enum! {
    /// `VirtualMedia.MediaType`.
    MediaType {
        Cd = "CD",
        Floppy = "Floppy",
        UsbStick = "USBStick",
        Dvd = "DVD",
    }
}

redfish_enum! {
    /// `VirtualMedia.ConnectedVia`.
    ConnectedVia {
        NotConnected = "NotConnected",
        Uri = "URI",
        Applet = "Applet",
        Oem = "Oem",
    }
}

redfish_enum! {
    /// `VirtualMedia.TransferMethod`.
    TransferMethod {
        Stream = "Stream",
        Upload = "Upload",
    }
}

redfish_enum! {
    /// `VirtualMedia.TransferProtocolType`.
    TransferProtocolType {
        Cifs = "CIFS",
        Ftp = "FTP",
        Sftp = "SFTP",
        Http = "HTTP",
        Https = "HTTPS",
        Nfs = "NFS",
        Scp = "SCP",
        Tftp = "TFTP",
        Oem = "OEM",
    }
}
