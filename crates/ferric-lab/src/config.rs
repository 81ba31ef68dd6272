//! The machines file: a TOML description of the lab's machines, a stable
//! interface for scripts and tests. Unknown keys and bad values are refused
//! with an error naming the key (`machine.m1.mac: ...`).

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// The default size of a disk file created for a machine: 8 GiB (sparse).
pub const DEFAULT_DISK_SIZE: u64 = 8 << 30;

/// A machines file that did not parse or did not validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the machines file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a value of the wrong type (the TOML
    /// parser's message names the key and shows the line).
    #[error("machines file: {0}")]
    Syntax(String),
    /// A value that is the right type but not acceptable.
    #[error("machines file: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A normalized MAC address (`52:54:00:00:00:01`, lower case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    /// Parses six hex octets separated by `:` or `-`.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split([':', '-']).collect();
        if parts.len() != 6 {
            return None;
        }
        let mut octets = [0u8; 6];
        for (octet, part) in octets.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return None;
            }
            *octet = u8::from_str_radix(part, 16).ok()?;
        }
        Some(MacAddress(octets))
    }

    /// `52-54-00-00-00-01`: the form of PXELINUX's per-MAC file names.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A BMC password: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(text: impl Into<String>) -> Self {
        Password(text.into())
    }

    /// The password's bytes, to compare or to key an HMAC with.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Byte comparison whose time depends only on the lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Something a machine can boot from, in its boot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootSource {
    /// Its disk file, if it holds a boot signature.
    Disk,
    /// The network: starts the agent.
    Pxe,
    /// The virtual CD, if media is inserted.
    Cdrom,
}

/// One machine of the file, validated.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Its name: the Redfish system and manager id.
    pub name: String,
    /// Its one NIC's MAC (given to the agent's `--mac`).
    pub mac: MacAddress,
    /// The file standing in for its disk.
    pub disk: PathBuf,
    /// The size the disk file is created with when missing.
    pub disk_size: u64,
    /// Its own IPMI address (else the shared one, if any).
    pub ipmi_listen: Option<SocketAddr>,
    /// The BMC user name (IPMI and Redfish).
    pub username: String,
    /// The BMC password.
    pub password: Password,
    /// What it boots with no override.
    pub boot_order: Vec<BootSource>,
    /// The agent's `--listen` (else a free loopback port).
    pub agent_listen: Option<SocketAddr>,
    /// Faults at start (changeable at run time).
    pub faults: Faults,
    /// A qemu VM rather than a simulated machine (`[machine.vm]`).
    pub vm: Option<crate::vm::VmSpec>,
}

/// The whole machines file, validated.
#[derive(Debug, Clone)]
pub struct MachinesFile {
    /// Where the simulated machines' agents look themselves up.
    pub api_url: String,
    /// One IPMI port for the machines without their own, told apart by
    /// user name.
    pub ipmi_listen: Option<SocketAddr>,
    /// Where a machine booting PXE fetches its boot config, as iPXE would
    /// after DHCP (`{boot_url}/pxelinux.cfg/{mac-with-hyphens}`), no
    /// trailing `/`; without it, booting PXE starts the agent at once.
    pub boot_url: Option<String>,
    /// The machines, in file order.
    pub machines: Vec<MachineSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    api_url: String,
    ipmi_listen: Option<SocketAddr>,
    boot_url: Option<String>,
    #[serde(default)]
    machine: Vec<RawMachine>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    name: String,
    mac: String,
    disk: PathBuf,
    disk_size: Option<RawSize>,
    ipmi_listen: Option<SocketAddr>,
    username: String,
    password: String,
    boot_order: Option<Vec<BootSource>>,
    agent_listen: Option<SocketAddr>,
    #[serde(default)]
    faults: Faults,
    vm: Option<crate::vm::VmSpec>,
}

/// Reads and validates a machines file.
pub fn load(path: &Path) -> Result<MachinesFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text)
}

/// Parses and validates the text of a machines file.
pub fn parse(text: &str) -> Result<MachinesFile, ConfigError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
    validate_api_url(&raw.api_url)?;
    let boot_url = raw.boot_url.as_deref().map(boot_url).transpose()?;
    let mut machines = Vec::with_capacity(raw.machine.len());
    for (index, machine) in raw.machine.into_iter().enumerate() {
        machines.push(machine_spec(index, machine)?);
    }
    let file = MachinesFile {
        api_url: raw.api_url,
        ipmi_listen: raw.ipmi_listen,
        boot_url,
        machines,
    };
    check_unique(&file)?;
    Ok(file)
}

fn validate_api_url(url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "api_url",
            format!("{url:?} is not an http:// or https:// URL"),
        ))
    }
}

/// The lab's firmware speaks plain HTTP only (no TLS), like an iPXE built
/// without it.
fn boot_url(url: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| ConfigError::invalid("boot_url", format!("{url:?} {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if parsed.scheme() != "http" {
        return Err(bad("is not an http:// URL (the lab's firmware has no TLS)"));
    }
    if parsed.host().is_none() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must be http://HOST[:PORT][/PATH]"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn machine_spec(index: usize, raw: RawMachine) -> Result<MachineSpec, ConfigError> {
    let key = |field: &str| {
        if raw.name.is_empty() {
            format!("machine[{index}].{field}")
        } else {
            format!("machine.{}.{field}", raw.name)
        }
    };
    validate_name(&raw.name)
        .map_err(|m| ConfigError::invalid(format!("machine[{index}].name"), m))?;
    let mac = MacAddress::parse(&raw.mac).ok_or_else(|| {
        ConfigError::invalid(key("mac"), format!("{:?} is not a MAC address", raw.mac))
    })?;
    if raw.disk.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key("disk"), "must not be empty"));
    }
    let disk_size = match raw.disk_size {
        None => DEFAULT_DISK_SIZE,
        Some(size) => parse_size(size).map_err(|m| ConfigError::invalid(key("disk_size"), m))?,
    };
    validate_credential(&raw.username, 16).map_err(|m| ConfigError::invalid(key("username"), m))?;
    validate_credential(&raw.password, 20).map_err(|m| ConfigError::invalid(key("password"), m))?;
    let boot_order = raw
        .boot_order
        .unwrap_or_else(|| vec![BootSource::Disk, BootSource::Pxe]);
    if boot_order.is_empty() {
        return Err(ConfigError::invalid(key("boot_order"), "must not be empty"));
    }
    raw.faults
        .validate()
        .map_err(|(field, m)| ConfigError::invalid(key(&format!("faults.{field}")), m))?;
    if let Some(vm) = &raw.vm {
        vm.validate()
            .map_err(|(field, m)| ConfigError::invalid(key(&format!("vm.{field}")), m))?;
    }
    Ok(MachineSpec {
        name: raw.name,
        mac,
        disk: raw.disk,
        disk_size,
        ipmi_listen: raw.ipmi_listen,
        username: raw.username,
        password: Password::new(raw.password),
        boot_order,
        agent_listen: raw.agent_listen,
        faults: raw.faults,
        vm: raw.vm,
    })
}

/// Names become URL segments and file names.
fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "{name:?}: only letters, digits, '-', '_' and '.' (not first)"
        ));
    }
    Ok(())
}

/// IPMI v2.0 limits user names to 16 bytes and passwords to 20.
fn validate_credential(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > max {
        return Err(format!("longer than IPMI's {max} bytes"));
    }
    Ok(())
}

fn parse_size(size: RawSize) -> Result<u64, String> {
    let text = match size {
        RawSize::Bytes(0) => return Err("must not be 0".into()),
        RawSize::Bytes(n) => return Ok(n),
        RawSize::Text(text) => text,
    };
    let trimmed = text.trim();
    let (digits, shift) = match trimmed.char_indices().last() {
        Some((at, 'K' | 'k')) => (&trimmed[..at], 10),
        Some((at, 'M' | 'm')) => (&trimmed[..at], 20),
        Some((at, 'G' | 'g')) => (&trimmed[..at], 30),
        Some((at, 'T' | 't')) => (&trimmed[..at], 40),
        _ => (trimmed, 0),
    };
    let bad = || format!("{text:?}: expected a size like \"8G\", \"512M\" or bytes");
    let number: u64 = digits.trim().parse().map_err(|_| bad())?;
    let bytes = number.checked_shl(shift).filter(|b| b >> shift == number);
    match bytes {
        Some(0) => Err("must not be 0".into()),
        Some(b) => Ok(b),
        None => Err(bad()),
    }
}

fn check_unique(file: &MachinesFile) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut macs = HashSet::new();
    let mut ports = HashSet::new();
    if let Some(shared) = file.ipmi_listen {
        ports.insert(shared);
    }
    let mut shared_users = HashSet::new();
    for m in &file.machines {
        let key = |field: &str| format!("machine.{}.{field}", m.name);
        if !names.insert(m.name.as_str()) {
            return Err(ConfigError::invalid(key("name"), "used by another machine"));
        }
        if !macs.insert(m.mac) {
            return Err(ConfigError::invalid(
                key("mac"),
                format!("{} is used by another machine", m.mac),
            ));
        }
        match m.ipmi_listen {
            Some(addr) if !ports.insert(addr) => {
                return Err(ConfigError::invalid(
                    key("ipmi_listen"),
                    format!("{addr} is used by another machine or the shared port"),
                ));
            }
            None if file.ipmi_listen.is_some() && !shared_users.insert(m.username.as_str()) => {
                return Err(ConfigError::invalid(
                    key("username"),
                    format!(
                        "{:?} is used by another machine on the shared ipmi_listen",
                        m.username
                    ),
                ));
            }
            Some(_) | None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
api_url = "http://127.0.0.1:6385"
[[machine]]
name = "m1"
mac = "52:54:00:00:00:01"
disk = "/var/tmp/m1.disk"
ipmi_listen = "127.0.0.1:6231"
username = "admin"
password = "password"
"#;

    fn err(text: &str) -> String {
        parse(text).expect_err("parsed").to_string()
    }

    #[test]
    fn a_minimal_machine_gets_the_defaults() {
        let file = parse(ONE).unwrap();
        assert_eq!(file.api_url, "http://127.0.0.1:6385");
        assert_eq!(file.ipmi_listen, None);
        assert_eq!(file.boot_url, None);
        let m = &file.machines[0];
        assert_eq!(m.name, "m1");
        assert_eq!(m.mac.to_string(), "52:54:00:00:00:01");
        assert_eq!(m.disk_size, 8 << 30);
        assert_eq!(m.boot_order, vec![BootSource::Disk, BootSource::Pxe]);
        assert_eq!(m.ipmi_listen, Some("127.0.0.1:6231".parse().unwrap()));
        assert_eq!(m.faults, Faults::default());
        assert!(m.password.matches(b"password"));
        assert_eq!(format!("{:?}", m.password), "***");
    }

    #[test]
    fn every_key_is_read() {
        let text = r#"
api_url = "https://ferric.example:6385"
ipmi_listen = "127.0.0.1:6230"
[[machine]]
name = "m-2"
mac = "52-54-00-AA-BB-CC"
disk = "/tmp/m2.disk"
disk_size = "512M"
username = "root"
password = "calvin"
boot_order = ["pxe", "disk", "cdrom"]
agent_listen = "127.0.0.1:9999"
[machine.faults]
packet_loss = 0.05
delay_ms = 20
max_sessions = 4
lockout_after = 3
lockout_seconds = 30
"#;
        let file = parse(text).unwrap();
        assert_eq!(file.ipmi_listen, Some("127.0.0.1:6230".parse().unwrap()));
        let m = &file.machines[0];
        assert_eq!(m.mac.to_string(), "52:54:00:aa:bb:cc");
        assert_eq!(m.disk_size, 512 << 20);
        assert_eq!(
            m.boot_order,
            vec![BootSource::Pxe, BootSource::Disk, BootSource::Cdrom]
        );
        assert_eq!(m.agent_listen, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(m.faults.packet_loss, 0.05);
        assert_eq!(m.faults.delay_ms, 20);
        assert_eq!(m.faults.max_sessions, Some(4));
        assert_eq!(m.faults.lockout_after, Some(3));
        assert_eq!(m.faults.lockout_seconds, 30);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(&ONE.replace("username", "colour = \"red\"\nusername"));
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err(&format!("{ONE}[machine.faults]\nloss = 1\n"));
        assert!(e.contains("unknown field `loss`"), "{e}");
        let e = err(&format!("speed = 1\n{ONE}"));
        assert!(e.contains("unknown field `speed`"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                ONE.replace("52:54:00:00:00:01", "52:54:00:00:01"),
                "machine.m1.mac",
            ),
            (ONE.replace("\"m1\"", "\"m/1\""), "machine[0].name"),
            (ONE.replace("http://127", "ftp://127"), "api_url"),
            (
                ONE.replace(
                    "username = \"admin\"",
                    "username = \"averyveryverylongname\"",
                ),
                "machine.m1.username",
            ),
            (ONE.replace("\"password\"", "\"\""), "machine.m1.password"),
            (format!("{ONE}disk_size = \"8X\"\n"), "machine.m1.disk_size"),
            (format!("{ONE}disk_size = 0\n"), "machine.m1.disk_size"),
            (format!("{ONE}boot_order = []\n"), "machine.m1.boot_order"),
            (
                format!("{ONE}[machine.faults]\npacket_loss = 1.5\n"),
                "machine.m1.faults.packet_loss",
            ),
            (
                format!("{ONE}[machine.faults]\nmax_sessions = 0\n"),
                "machine.m1.faults.max_sessions",
            ),
        ];
        for (text, key) in cases {
            let e = err(&text);
            assert!(e.contains(&format!("{key}:")), "{key}: {e}");
        }
    }

    #[test]
    fn boot_url_is_plain_http() {
        let with = |url: &str| format!("boot_url = \"{url}\"\n{ONE}");
        let file = parse(&with("http://127.0.0.1:8080/")).unwrap();
        assert_eq!(file.boot_url.as_deref(), Some("http://127.0.0.1:8080"));
        let file = parse(&with("http://boot.test/root")).unwrap();
        assert_eq!(file.boot_url.as_deref(), Some("http://boot.test/root"));
        for bad in [
            "https://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://h/?a=1",
            "tftp://h",
        ] {
            let e = err(&with(bad));
            assert!(e.contains("boot_url:"), "{bad}: {e}");
        }
    }

    #[test]
    fn wrong_types_and_unknown_boot_sources_show_the_key() {
        let e = err(&format!("{ONE}boot_order = [\"floppy\"]\n"));
        assert!(e.contains("boot_order") && e.contains("floppy"), "{e}");
        let e = err(&ONE.replace("\"127.0.0.1:6231\"", "\"not an address\""));
        assert!(e.contains("ipmi_listen"), "{e}");
    }

    fn two(second: &str) -> String {
        format!("{ONE}\n[[machine]]\n{second}")
    }

    #[test]
    fn names_macs_and_ports_are_unique() {
        let e = err(&two(
            "name = \"m1\"\nmac = \"52:54:00:00:00:02\"\ndisk = \"/d\"\nusername = \"a\"\npassword = \"b\"\n",
        ));
        assert!(
            e.contains("machine.m1.name: used by another machine"),
            "{e}"
        );
        let e = err(&two(
            "name = \"m2\"\nmac = \"52:54:00:00:00:01\"\ndisk = \"/d\"\nusername = \"a\"\npassword = \"b\"\n",
        ));
        assert!(e.contains("machine.m2.mac:"), "{e}");
        let e = err(&two(
            "name = \"m2\"\nmac = \"52:54:00:00:00:02\"\ndisk = \"/d\"\nipmi_listen = \"127.0.0.1:6231\"\nusername = \"a\"\npassword = \"b\"\n",
        ));
        assert!(e.contains("machine.m2.ipmi_listen:"), "{e}");
    }

    #[test]
    fn users_on_the_shared_port_are_unique() {
        let machine = |name: &str, mac: &str, user: &str| {
            format!(
                "[[machine]]\nname = \"{name}\"\nmac = \"{mac}\"\ndisk = \"/d/{name}\"\nusername = \"{user}\"\npassword = \"p\"\n"
            )
        };
        let head = "api_url = \"http://x\"\nipmi_listen = \"127.0.0.1:6230\"\n";
        let ok = format!(
            "{head}{}{}",
            machine("a", "02:00:00:00:00:01", "ua"),
            machine("b", "02:00:00:00:00:02", "ub")
        );
        assert_eq!(parse(&ok).unwrap().machines.len(), 2);
        let clash = format!(
            "{head}{}{}",
            machine("a", "02:00:00:00:00:01", "admin"),
            machine("b", "02:00:00:00:00:02", "admin")
        );
        let e = err(&clash);
        assert!(e.contains("machine.b.username:"), "{e}");
        // Without a shared port, equal user names are fine.
        let separate = clash.replace("ipmi_listen = \"127.0.0.1:6230\"\n", "");
        assert_eq!(parse(&separate).unwrap().machines.len(), 2);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(RawSize::Text("8G".into())), Ok(8 << 30));
        assert_eq!(parse_size(RawSize::Text("1t".into())), Ok(1 << 40));
        assert_eq!(parse_size(RawSize::Text("64K".into())), Ok(64 << 10));
        assert_eq!(parse_size(RawSize::Text("4096".into())), Ok(4096));
        assert_eq!(parse_size(RawSize::Bytes(4096)), Ok(4096));
        assert!(parse_size(RawSize::Text("G".into())).is_err());
        assert!(parse_size(RawSize::Text("99999999999999T".into())).is_err());
    }

    #[test]
    fn macs() {
        assert!(MacAddress::parse("52:54:00:00:00:0g").is_none());
        assert!(MacAddress::parse("52:54:00:00:00:001").is_none());
        assert!(MacAddress::parse("").is_none());
        assert_eq!(
            MacAddress::parse("AA-bb-CC-dd-EE-ff").unwrap().to_string(),
            "aa:bb:cc:dd:ee:ff"
        );
        assert_eq!(
            MacAddress::parse("AA:bb:CC:dd:EE:ff").unwrap().hyphenated(),
            "aa-bb-cc-dd-ee-ff"
        );
    }
}
