//! Network interfaces from /sys/class/net, with addresses from
//! /proc/net/fib_trie + /proc/net/route (IPv4) and /proc/net/if_inet6
//! (IPv6): all plain files, so a fake /proc works.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ferric_ipa::inventory::NetworkInterface;
use ferric_ipa::MacAddress;

use super::{link_name, read_trimmed, read_value, Roots};

/// IPA's `list_interfaces`: VLANs (`eth0.100`), physical devices (with a
/// `device` link) and bonds, sorted by name.
pub fn list_interfaces(roots: &Roots) -> Vec<NetworkInterface> {
    let net = roots.sys.join("class/net");
    let Ok(entries) = std::fs::read_dir(&net) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            is_vlan(name)
                || net.join(name).join("device").exists()
                || net.join(name).join("bonding").exists()
        })
        .collect();
    names.sort();
    let v4 = ipv4_addresses(&roots.proc);
    let v6 = ipv6_addresses(&roots.proc);
    names
        .iter()
        .map(|name| interface(&net.join(name), name, &v4, &v6))
        .collect()
}

/// The MACs lookup sends: every interface's, skipping missing and zero ones.
pub fn lookup_macs(interfaces: &[NetworkInterface]) -> Vec<MacAddress> {
    let mut macs: Vec<MacAddress> = interfaces
        .iter()
        .filter_map(|i| i.mac_address.as_deref()?.parse::<MacAddress>().ok())
        .filter(|m| !m.is_zero())
        .collect();
    macs.dedup();
    macs
}

fn is_vlan(name: &str) -> bool {
    name.split_once('.')
        .is_some_and(|(_, vlan)| !vlan.is_empty() && vlan.bytes().all(|b| b.is_ascii_digit()))
}

fn interface(
    dir: &Path,
    name: &str,
    v4: &[(String, Ipv4Addr)],
    v6: &[(String, String)],
) -> NetworkInterface {
    let mac = read_value(&dir.join("address")).and_then(|m| m.parse::<MacAddress>().ok());
    NetworkInterface {
        name: name.to_owned(),
        mac_address: mac.map(|m| m.to_string()),
        ipv4_address: v4
            .iter()
            .find(|(i, _)| i == name)
            .map(|(_, a)| a.to_string()),
        ipv6_address: v6.iter().find(|(i, _)| i == name).map(|(_, a)| a.clone()),
        has_carrier: read_trimmed(&dir.join("carrier")).as_deref() == Some("1"),
        vendor: read_value(&dir.join("device/vendor")),
        product: read_value(&dir.join("device/device")),
        speed_mbps: read_trimmed(&dir.join("speed"))
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s > 0)
            .map(|s| s as u64),
        pci_address: link_name(&dir.join("device")),
        driver: link_name(&dir.join("device/driver")),
        ..Default::default()
    }
}

/// Local IPv4 addresses per interface: `/32 host LOCAL` entries of the
/// fib_trie, each given the interface of the connected route covering it.
fn ipv4_addresses(proc: &Path) -> Vec<(String, Ipv4Addr)> {
    let trie = std::fs::read_to_string(proc.join("net/fib_trie")).unwrap_or_default();
    let routes = connected_routes(proc);
    let mut found: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let text = line.trim();
        if let Some(addr) = text.strip_prefix("|-- ") {
            last = addr.trim().parse().ok();
        } else if text.starts_with("/32 host LOCAL") {
            let Some(addr) = last.filter(|a| !a.is_loopback()) else {
                continue;
            };
            let owner = routes
                .iter()
                .find(|(_, net, mask)| u32::from(addr) & mask == *net);
            if let Some((iface, _, _)) = owner {
                if !found.iter().any(|(i, a)| i == iface && *a == addr) {
                    found.push((iface.clone(), addr));
                }
            }
        }
    }
    found
}

/// `(iface, network, mask)` of the routes without gateway in /proc/net/route.
fn connected_routes(proc: &Path) -> Vec<(String, u32, u32)> {
    let text = std::fs::read_to_string(proc.join("net/route")).unwrap_or_default();
    // /proc/net/route prints addresses as host-order (little-endian) hex.
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::swap_bytes);
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (iface, dest, gateway, mask) = (
                f.first()?,
                hex(f.get(1)?)?,
                hex(f.get(2)?)?,
                hex(f.get(7)?)?,
            );
            (gateway == 0 && mask != 0).then(|| ((*iface).to_owned(), dest, mask))
        })
        .collect()
}

/// IPv6 addresses per interface from /proc/net/if_inet6, link-local ones
/// written `fe80::...%iface` as netifaces does.
fn ipv6_addresses(proc: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(proc.join("net/if_inet6")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (hex, iface) = (f.first()?, f.get(5)?);
            if hex.len() != 32 {
                return None;
            }
            let value = u128::from_str_radix(hex, 16).ok()?;
            let addr = Ipv6Addr::from(value);
            if addr.is_loopback() {
                return None;
            }
            let text = if addr.segments()[0] & 0xffc0 == 0xfe80 {
                format!("{addr}%{iface}")
            } else {
                addr.to_string()
            };
            Some(((*iface).to_owned(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testtree::{link, write};
    use super::*;

    const FIB_TRIE: &str = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     +-- 192.0.2.0/24 2 0 2\n        |-- 192.0.2.0\n           /24 link UNICAST\n        |-- 192.0.2.2\n           /32 host LOCAL\nLocal:\n  +-- 0.0.0.0/0 3 0 5\n        |-- 192.0.2.2\n           /32 host LOCAL\n";
    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
    const INET6: &str = "00000000000000000000000000000001 01 80 10 80       lo\nfd000000000000000000000000000002 04 40 00 82     eth0\nfe8000000000000000fc00fffe000001 04 40 20 80     eth0\n";

    #[test]
    fn lists_interfaces_like_ipa() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "proc/net/fib_trie", FIB_TRIE);
        write(root, "proc/net/route", ROUTE);
        write(root, "proc/net/if_inet6", INET6);
        write(
            root,
            "sys/devices/pci0000:00/0000:00:03.0/vendor",
            "0x8086\n",
        );
        write(
            root,
            "sys/devices/pci0000:00/0000:00:03.0/device",
            "0x100e\n",
        );
        std::fs::create_dir_all(root.join("sys/bus/pci/drivers/e1000")).unwrap();
        link(
            root,
            "sys/devices/pci0000:00/0000:00:03.0/driver",
            "../../../bus/pci/drivers/e1000",
        );
        write(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        write(root, "sys/class/net/eth0/carrier", "1\n");
        write(root, "sys/class/net/eth0/speed", "1000\n");
        link(
            root,
            "sys/class/net/eth0/device",
            "../../../devices/pci0000:00/0000:00:03.0",
        );
        write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
        write(
            root,
            "sys/class/net/eth0.100/address",
            "52:54:00:12:34:56\n",
        );
        let roots = Roots {
            proc: root.join("proc"),
            sys: root.join("sys"),
            dev: root.join("dev"),
        };
        let ifaces = list_interfaces(&roots);
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "eth0.100"]);
        let eth0 = &ifaces[0];
        assert_eq!(eth0.mac_address.as_deref(), Some("52:54:00:12:34:56"));
        assert_eq!(eth0.ipv4_address.as_deref(), Some("192.0.2.2"));
        assert_eq!(eth0.ipv6_address.as_deref(), Some("fd00::2"));
        assert!(eth0.has_carrier);
        assert_eq!(eth0.speed_mbps, Some(1000));
        assert_eq!(eth0.vendor.as_deref(), Some("0x8086"));
        assert_eq!(eth0.pci_address.as_deref(), Some("0000:00:03.0"));
        assert_eq!(eth0.driver.as_deref(), Some("e1000"));
        assert!(!ifaces[1].has_carrier);
        let macs = lookup_macs(&ifaces);
        assert_eq!(macs.len(), 1);
    }

    #[test]
    fn link_local_gets_the_interface() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "net/if_inet6",
            "fe8000000000000000fc00fffe000001 04 40 20 80     eth1\n",
        );
        assert_eq!(
            ipv6_addresses(dir.path()),
            [("eth1".to_owned(), "fe80::fc:ff:fe00:1%eth1".to_owned())]
        );
    }

    #[test]
    fn empty_tree_has_no_interfaces() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            proc: dir.path().join("p"),
            sys: dir.path().join("s"),
            dev: dir.path().join("d"),
        };
        assert!(list_interfaces(&roots).is_empty());
    }
}
