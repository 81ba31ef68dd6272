//! The lease table, in memory and in dnsmasq's lease-file format:
//! `<expiry epoch> <mac> <ip> <hostname or *> <client-id or *>` per line,
//! expiry 0 meaning infinite, client-id as colon-separated hex. Tools that
//! read dnsmasq leases (Ironic's `get_ip_addresses`) read ours.
//!
//! Expired leases stay in the table (and the file): a MAC gets its address
//! back while its entry exists, until the pool reclaims the address for
//! another client.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::trace::MacAddr;

/// One binding of an address to a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    /// `None`: infinite.
    pub expires: Option<SystemTime>,
    pub hostname: Option<String>,
    pub client_id: Option<Vec<u8>>,
}

impl Lease {
    /// Whether the lease has not expired at `now`.
    pub fn is_active(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }

    fn to_line(&self) -> String {
        let expiry = self.expires.map_or(0, epoch_seconds);
        let hostname = self
            .hostname
            .as_deref()
            .filter(|h| is_file_safe(h))
            .unwrap_or("*");
        let client_id = self
            .client_id
            .as_deref()
            .map_or_else(|| "*".to_string(), hex_colon);
        format!(
            "{expiry} {} {} {hostname} {client_id}",
            self.mac, self.address
        )
    }

    fn parse(line: &str) -> Result<Lease, &'static str> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [expiry, mac, address, hostname, client_id] = fields[..] else {
            return Err("expected 5 fields");
        };
        let expiry: u64 = expiry.parse().map_err(|_| "bad expiry")?;
        let mac = MacAddr::parse(mac).ok_or("bad MAC address")?;
        let address: Ipv4Addr = address.parse().map_err(|_| "bad IPv4 address")?;
        let client_id = match client_id {
            "*" => None,
            text => Some(parse_hex_colon(text).ok_or("bad client id")?),
        };
        let expires = match expiry {
            0 => None,
            seconds => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(seconds))
                    .ok_or("expiry out of range")?,
            ),
        };
        Ok(Lease {
            mac,
            address,
            expires,
            hostname: (hostname != "*").then(|| hostname.to_string()),
            client_id,
        })
    }
}

fn epoch_seconds(time: SystemTime) -> u64 {
    // A time before 1970 cannot be written; 1 keeps it finite (0 is infinite).
    time.duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

fn is_file_safe(text: &str) -> bool {
    !text.is_empty() && text != "*" && text.bytes().all(|b| b.is_ascii_graphic())
}

fn hex_colon(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if parts.is_empty() {
        "*".to_string()
    } else {
        parts.join(":")
    }
}

fn parse_hex_colon(text: &str) -> Option<Vec<u8>> {
    text.split(':')
        .map(|part| match part.len() {
            1 | 2 => u8::from_str_radix(part, 16).ok(),
            _ => None,
        })
        .collect()
}

/// All leases, by MAC and by address. `generation` counts changes, so a
/// server knows when to persist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leases {
    by_mac: HashMap<MacAddr, Lease>,
    by_address: HashMap<Ipv4Addr, MacAddr>,
    generation: u64,
}

impl Leases {
    /// An empty table.
    pub fn new() -> Leases {
        Leases::default()
    }

    /// Parses lease-file text; malformed lines are skipped with a warning
    /// naming `source` and the line. dnsmasq's `duid` line (DHCPv6) is
    /// skipped silently.
    pub fn parse(text: &str, source: &str) -> Leases {
        let mut leases = Leases::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with("duid ") {
                continue;
            }
            match Lease::parse(line) {
                Ok(lease) => leases.insert(lease),
                Err(error) => tracing::warn!(
                    file = source,
                    line = index + 1,
                    error,
                    "skipping malformed lease line"
                ),
            }
        }
        leases.generation = 0;
        leases
    }

    /// The lease-file text, ordered by address.
    pub fn to_file_text(&self) -> String {
        let mut leases: Vec<&Lease> = self.by_mac.values().collect();
        leases.sort_by_key(|lease| (lease.address, lease.mac));
        leases.iter().map(|lease| lease.to_line() + "\n").collect()
    }

    /// The lease of `mac`, active or expired.
    pub fn lease(&self, mac: MacAddr) -> Option<&Lease> {
        self.by_mac.get(&mac)
    }

    /// The last address bound to `mac` (check [`Lease::is_active`] through
    /// [`Leases::lease`] when expiry matters).
    pub fn address_of(&self, mac: MacAddr) -> Option<Ipv4Addr> {
        self.by_mac.get(&mac).map(|lease| lease.address)
    }

    /// The MAC `address` is (or was last) bound to.
    pub fn mac_of(&self, address: Ipv4Addr) -> Option<MacAddr> {
        self.by_address.get(&address).copied()
    }

    /// The lease holding `address`, active or expired.
    pub fn lease_at(&self, address: Ipv4Addr) -> Option<&Lease> {
        self.mac_of(address).and_then(|mac| self.by_mac.get(&mac))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_mac.values()
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    /// Changes since this table was created or parsed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Binds `lease.address` to `lease.mac`, replacing the MAC's previous
    /// lease and any other MAC's lease on the same address.
    pub fn insert(&mut self, lease: Lease) {
        self.remove(lease.mac);
        if let Some(previous) = self.by_address.get(&lease.address).copied() {
            self.remove(previous);
        }
        self.by_address.insert(lease.address, lease.mac);
        self.by_mac.insert(lease.mac, lease);
        self.generation += 1;
    }

    /// Removes the lease of `mac`, returning it.
    pub fn remove(&mut self, mac: MacAddr) -> Option<Lease> {
        let lease = self.by_mac.remove(&mac)?;
        self.by_address.remove(&lease.address);
        self.generation += 1;
        Some(lease)
    }

    /// Marks the lease of `mac` expired at `now`, keeping it for stickiness.
    pub fn expire(&mut self, mac: MacAddr, now: SystemTime) -> Option<&Lease> {
        let lease = self.by_mac.get_mut(&mac)?;
        lease.expires = Some(now);
        self.generation += 1;
        Some(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    fn lease(n: u8, address: [u8; 4], expiry: u64) -> Lease {
        Lease {
            mac: mac(n),
            address: Ipv4Addr::from(address),
            expires: (expiry != 0).then(|| UNIX_EPOCH + Duration::from_secs(expiry)),
            hostname: None,
            client_id: None,
        }
    }

    #[test]
    fn file_round_trip_in_dnsmasq_format() {
        let mut leases = Leases::new();
        leases.insert(Lease {
            hostname: Some("node-1".into()),
            client_id: Some(vec![1, 0x52, 0x54, 0, 0, 0, 1]),
            ..lease(1, [10, 0, 0, 11], 1_700_000_000)
        });
        leases.insert(lease(2, [10, 0, 0, 10], 0));
        let text = leases.to_file_text();
        assert_eq!(
            text,
            "0 52:54:00:00:00:02 10.0.0.10 * *\n\
             1700000000 52:54:00:00:00:01 10.0.0.11 node-1 01:52:54:00:00:00:01\n"
        );
        let parsed = Leases::parse(&text, "test");
        assert_eq!(parsed.to_file_text(), text);
        assert_eq!(parsed.lease(mac(1)), leases.lease(mac(1)));
        assert_eq!(parsed.lease(mac(2)).unwrap().expires, None);
    }

    #[test]
    fn reads_a_file_dnsmasq_wrote_and_skips_garbage() {
        let text = "1716912345 52:54:00:00:00:05 192.168.122.50 host5 01:52:54:00:00:00:05\n\
                    duid 00:01:00:01:2d:5e\n\
                    garbage\n\
                    1716912345 zz:54:00:00:00:05 192.168.122.51 * *\n\
                    1716912345 52:54:00:00:00:06 300.1.1.1 * *\n\
                    18446744073709551615 52:54:00:00:00:08 192.168.122.53 * *\n\
                    \n\
                    1716912399 52:54:00:00:00:07 192.168.122.52 * *\n";
        let leases = Leases::parse(text, "dnsmasq.leases");
        assert_eq!(leases.len(), 2);
        assert_eq!(
            leases.mac_of(Ipv4Addr::new(192, 168, 122, 50)),
            Some(mac(5))
        );
        assert_eq!(
            leases.lease(mac(5)).unwrap().hostname.as_deref(),
            Some("host5")
        );
        assert_eq!(
            leases.address_of(mac(7)),
            Some(Ipv4Addr::new(192, 168, 122, 52))
        );
        assert_eq!(leases.generation(), 0);
    }

    #[test]
    fn ironic_style_reader_finds_addresses() {
        let mut leases = Leases::new();
        leases.insert(lease(1, [10, 0, 0, 11], 1_700_000_000));
        // Ironic: line.split(); lease[1] is the MAC, lease[2] the address.
        let text = leases.to_file_text();
        let fields: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
        assert_eq!((fields[1], fields[2]), ("52:54:00:00:00:01", "10.0.0.11"));
    }

    #[test]
    fn insert_replaces_by_mac_and_by_address() {
        let mut leases = Leases::new();
        leases.insert(lease(1, [10, 0, 0, 1], 100));
        leases.insert(lease(1, [10, 0, 0, 2], 100));
        assert_eq!(leases.mac_of(Ipv4Addr::new(10, 0, 0, 1)), None);
        leases.insert(lease(2, [10, 0, 0, 2], 100));
        assert_eq!(leases.lease(mac(1)), None, "address reclaimed from mac 1");
        assert_eq!(leases.mac_of(Ipv4Addr::new(10, 0, 0, 2)), Some(mac(2)));
        assert_eq!(leases.len(), 1);
    }

    #[test]
    fn expire_keeps_the_entry_and_counts_changes() {
        let mut leases = Leases::new();
        leases.insert(lease(1, [10, 0, 0, 1], 0));
        let before = leases.generation();
        let now = UNIX_EPOCH + Duration::from_secs(5000);
        assert!(!leases.expire(mac(1), now).unwrap().is_active(now));
        assert_eq!(leases.address_of(mac(1)), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(leases.generation() > before);
        assert!(leases.remove(mac(1)).is_some());
        assert!(leases.is_empty());
    }
}
