//! MAC addresses as the agent reports them (`aa:bb:cc:dd:ee:ff`, lower
//! case) and the PXELINUX `BOOTIF` form (`01-aa-bb-cc-dd-ee-ff`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet MAC address, displayed as lower-case `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

/// Text that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}")]
pub struct MacError(pub String);

impl MacAddress {
    /// Parses PXELINUX's `BOOTIF` value: `01-` (the ARP hardware type for
    /// Ethernet) then the address with dashes. A plain address is accepted
    /// too, as IPA's `_normalize_mac` does.
    pub fn from_bootif(value: &str) -> Result<Self, MacError> {
        let value = value.trim();
        let dashes = value.bytes().filter(|b| *b == b'-').count();
        let address = match value.split_once('-') {
            Some((_hw_type, rest)) if dashes == 6 => rest,
            _ => value,
        };
        address.parse()
    }

    /// True for the all-zero address (interfaces without a real MAC).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for MacAddress {
    type Err = MacError;

    /// Accepts `:` or `-` separated hex pairs, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || MacError(s.chars().take(64).collect());
        let mut bytes = [0u8; 6];
        let mut parts = s.trim().split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Serialize for MacAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let mac: MacAddress = "52:54:00:12:34:AB".parse().unwrap();
        assert_eq!(mac.to_string(), "52:54:00:12:34:ab");
        assert_eq!("52-54-00-12-34-ab".parse::<MacAddress>().unwrap(), mac);
    }

    #[test]
    fn parses_bootif() {
        let mac = MacAddress::from_bootif("01-52-54-00-12-34-56").unwrap();
        assert_eq!(mac.to_string(), "52:54:00:12:34:56");
        let plain = MacAddress::from_bootif("52:54:00:12:34:56").unwrap();
        assert_eq!(plain, mac);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "zz:54:00:12:34:56",
            "5:54:00:12:34:566",
            "01-52-54",
        ] {
            assert!(bad.parse::<MacAddress>().is_err(), "{bad}");
            assert!(MacAddress::from_bootif(bad).is_err(), "{bad}");
        }
    }
}
