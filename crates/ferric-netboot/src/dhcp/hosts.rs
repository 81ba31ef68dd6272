//! dnsmasq-format host and option files (`--dhcp-hostsdir`, `--dhcp-optsdir`).
//!
//! Host lines (Ironic writes one per file, `ironic-<mac>.conf`):
//! `MAC[,set:TAG...][,IPV4][,HOSTNAME][,LEASE]` or `MAC,ignore`.
//! Option lines (`ironic-<node-uuid>.conf`): `[tag:T,][tag:!T,]...OPT,VALUE`
//! where OPT is a decimal number or `option:NAME`. `#` starts a comment
//! line; blank lines are skipped.
//!
//! As in dnsmasq, a tag condition may also be written `net:T`, `set:T` or
//! bare `T`, and `#T` means `!T`. `server-ip-address` is option 255: it sets
//! the BOOTP `siaddr` field instead of being sent. Unsupported dnsmasq forms
//! (`vendor:`, `encap:`, `vi-encap:`, `option6:`, `id:`, `tag:` filters on
//! host lines) make their line malformed: it is skipped with a warning.
//!
//! Unlike dnsmasq, which only ever adds records from these directories
//! until SIGHUP, a [`HostTable`] is rebuilt from the files present, so a
//! deleted file stops applying at the next re-read.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use crate::trace::MacAddr;

/// Why a host or option line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("bad MAC address {0:?}")]
    BadMac(String),
    #[error("bad tag {0:?} (empty, or contains a comma, space or leading '!')")]
    BadTag(String),
    #[error("unsupported dnsmasq form {0:?}")]
    Unsupported(String),
    #[error("unknown option name {0:?}")]
    UnknownOptionName(String),
    #[error("bad option number {0:?}")]
    BadOptionNumber(String),
    #[error("option line has no option number or name")]
    MissingOption,
    #[error("bad value {value:?} for option {code}: {why}")]
    BadValue {
        code: u8,
        value: String,
        why: &'static str,
    },
    #[error("field {0:?} is neither a tag, an address, a lease time nor a host name")]
    BadField(String),
    #[error("more than one {0} on one host line")]
    Duplicate(&'static str),
    #[error("value contains a line break")]
    LineBreak,
}

/// A lease time written on a host line: seconds or `infinite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseTime {
    Seconds(u32),
    Infinite,
}

impl LeaseTime {
    /// Parses `infinite`, `3600`, `45m`, `12h`, `2d`, `1w` (dnsmasq's forms).
    pub fn parse(text: &str) -> Option<LeaseTime> {
        if text.eq_ignore_ascii_case("infinite") {
            return Some(LeaseTime::Infinite);
        }
        let (digits, factor) = match text.char_indices().last()? {
            (i, 's' | 'S') => (&text[..i], 1),
            (i, 'm' | 'M') => (&text[..i], 60),
            (i, 'h' | 'H') => (&text[..i], 3600),
            (i, 'd' | 'D') => (&text[..i], 86_400),
            (i, 'w' | 'W') => (&text[..i], 604_800),
            _ => (text, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u32 = digits.parse().ok()?;
        value.checked_mul(factor).map(LeaseTime::Seconds)
    }
}

impl fmt::Display for LeaseTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseTime::Seconds(s) => write!(f, "{s}"),
            LeaseTime::Infinite => f.write_str("infinite"),
        }
    }
}

/// One host line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub mac: MacAddr,
    /// `set:` tags, in line order.
    pub tags: Vec<String>,
    /// A fixed address: it wins over the pool and the lease table.
    pub address: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub lease_time: Option<LeaseTime>,
    /// `MAC,ignore`: never answer this MAC.
    pub ignore: bool,
}

impl HostEntry {
    /// A host entry with only tags, as Ironic writes it.
    pub fn tagged(mac: MacAddr, tags: &[&str]) -> HostEntry {
        HostEntry {
            mac,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            address: None,
            hostname: None,
            lease_time: None,
            ignore: false,
        }
    }

    /// Parses one host line (without comment or line break).
    pub fn parse(line: &str) -> Result<HostEntry, LineError> {
        let mut fields = line.split(',').map(str::trim);
        let mac_text = fields.next().unwrap_or_default();
        let mac =
            MacAddr::parse(mac_text).ok_or_else(|| LineError::BadMac(mac_text.to_string()))?;
        let mut entry = HostEntry::tagged(mac, &[]);
        for field in fields {
            entry.apply_field(field)?;
        }
        Ok(entry)
    }

    fn apply_field(&mut self, field: &str) -> Result<(), LineError> {
        if field.eq_ignore_ascii_case("ignore") {
            self.ignore = true;
        } else if let Some(tag) = field
            .strip_prefix("set:")
            .or_else(|| field.strip_prefix("net:"))
        {
            check_tag(tag)?;
            self.tags.push(tag.to_string());
        } else if field.starts_with("tag:") || field.starts_with("id:") || field.starts_with('[') {
            return Err(LineError::Unsupported(field.to_string()));
        } else if let Ok(address) = field.parse::<Ipv4Addr>() {
            set_once(&mut self.address, address, "IPv4 address")?;
        } else if let Some(lease) = LeaseTime::parse(field) {
            set_once(&mut self.lease_time, lease, "lease time")?;
        } else if is_hostname(field) {
            set_once(&mut self.hostname, field.to_string(), "host name")?;
        } else {
            return Err(LineError::BadField(field.to_string()));
        }
        Ok(())
    }

    /// The line for this entry; `HostEntry::parse` gives the entry back.
    pub fn to_line(&self) -> Result<String, LineError> {
        let mut line = self.mac.to_string();
        for tag in &self.tags {
            check_tag(tag)?;
            line.push_str(",set:");
            line.push_str(tag);
        }
        if let Some(address) = self.address {
            line.push_str(&format!(",{address}"));
        }
        if let Some(hostname) = &self.hostname {
            if !is_hostname(hostname) || LeaseTime::parse(hostname).is_some() {
                return Err(LineError::BadField(hostname.clone()));
            }
            line.push(',');
            line.push_str(hostname);
        }
        if let Some(lease) = self.lease_time {
            line.push_str(&format!(",{lease}"));
        }
        if self.ignore {
            line.push_str(",ignore");
        }
        Ok(line)
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &'static str) -> Result<(), LineError> {
    if slot.is_some() {
        return Err(LineError::Duplicate(what));
    }
    *slot = Some(value);
    Ok(())
}

fn is_hostname(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        && !text.starts_with(['-', '.'])
}

fn check_tag(tag: &str) -> Result<(), LineError> {
    let bad = tag.is_empty()
        || tag.starts_with(['!', '#'])
        || tag.contains([',', ' ', '\t', '\n', '\r'])
        || tag.bytes().all(|b| b.is_ascii_digit())
        || tag.contains(':');
    if bad {
        Err(LineError::BadTag(tag.to_string()))
    } else {
        Ok(())
    }
}

/// The line Ironic writes for a PXE-enabled port: `MAC,set:TAG,...`.
pub fn host_line(mac: MacAddr, tags: &[&str]) -> Result<String, LineError> {
    HostEntry::tagged(mac, tags).to_line()
}

/// The line Ironic writes when it stops serving a MAC: `MAC,ignore`.
pub fn ignore_line(mac: MacAddr) -> String {
    format!("{mac},ignore")
}

/// One tag condition of an option line: `tag:T` or `tag:!T`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagCond {
    pub tag: String,
    pub negated: bool,
}

impl TagCond {
    /// `tag:T`: holds when the request carries T.
    pub fn is(tag: &str) -> TagCond {
        TagCond {
            tag: tag.to_string(),
            negated: false,
        }
    }

    /// `tag:!T`: holds when the request does not carry T.
    pub fn not(tag: &str) -> TagCond {
        TagCond {
            tag: tag.to_string(),
            negated: true,
        }
    }

    /// Whether the condition holds for a request carrying `tags`.
    pub fn holds(&self, tags: &BTreeSet<String>) -> bool {
        tags.contains(&self.tag) != self.negated
    }

    fn parse(field: &str) -> Result<TagCond, LineError> {
        let name = ["tag:", "net:", "set:"]
            .iter()
            .find_map(|prefix| field.strip_prefix(prefix))
            .unwrap_or(field);
        let (negated, tag) = match name.strip_prefix(['!', '#']) {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        check_tag(tag)?;
        Ok(TagCond {
            tag: tag.to_string(),
            negated,
        })
    }
}

impl fmt::Display for TagCond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bang = if self.negated { "!" } else { "" };
        write!(f, "tag:{bang}{}", self.tag)
    }
}

/// The number dnsmasq uses for `server-ip-address` (sets `siaddr`).
pub const SERVER_IP_ADDRESS: u8 = 255;

/// One option line: send option `code` with `value` when all tags hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionLine {
    pub tags: Vec<TagCond>,
    pub code: u8,
    /// The value as written; `"..."` forces text, as in dnsmasq.
    pub value: String,
}

impl OptionLine {
    /// Builds a line, checking that the value encodes for the option.
    pub fn new(tags: Vec<TagCond>, code: u8, value: &str) -> Result<OptionLine, LineError> {
        let line = OptionLine {
            tags,
            code,
            value: value.to_string(),
        };
        for tag in &line.tags {
            check_tag(&tag.tag)?;
        }
        if value.contains(['\n', '\r']) {
            return Err(LineError::LineBreak);
        }
        line.encode(Ipv4Addr::UNSPECIFIED)?;
        Ok(line)
    }

    /// Parses one option line (without comment or line break).
    pub fn parse(line: &str) -> Result<OptionLine, LineError> {
        let mut rest = line.trim();
        let mut tags = Vec::new();
        loop {
            let (field, tail) = match rest.split_once(',') {
                Some((field, tail)) => (field.trim(), Some(tail)),
                None => (rest, None),
            };
            if let Some(code) = option_code(field)? {
                return OptionLine::new(tags, code, tail.unwrap_or_default().trim());
            }
            tags.push(TagCond::parse(field)?);
            rest = tail.ok_or(LineError::MissingOption)?;
        }
    }

    /// Whether every tag condition holds for a request carrying `tags`.
    pub fn applies(&self, tags: &BTreeSet<String>) -> bool {
        self.tags.iter().all(|cond| cond.holds(tags))
    }

    /// The option's bytes; `0.0.0.0` in an address list means `server_ip`.
    pub fn encode(&self, server_ip: Ipv4Addr) -> Result<Vec<u8>, LineError> {
        encode_value(self.code, &self.value, server_ip)
    }

    /// The line for this option; `OptionLine::parse` gives it back.
    pub fn to_line(&self) -> Result<String, LineError> {
        OptionLine::new(self.tags.clone(), self.code, &self.value)?;
        let mut line = String::new();
        for tag in &self.tags {
            line.push_str(&format!("{tag},"));
        }
        line.push_str(&format!("{},{}", self.code, self.value));
        Ok(line)
    }
}

/// Formats an option line as Ironic writes it: `tag:T,...,OPT,VALUE`.
pub fn option_line(tags: &[TagCond], code: u8, value: &str) -> Result<String, LineError> {
    OptionLine::new(tags.to_vec(), code, value)?.to_line()
}

/// `Some(code)` when `field` names an option, `None` when it is a tag.
fn option_code(field: &str) -> Result<Option<u8>, LineError> {
    if !field.is_empty() && field.bytes().all(|b| b.is_ascii_digit()) {
        return match field.parse::<u8>() {
            Ok(code) if code != 0 => Ok(Some(code)),
            _ => Err(LineError::BadOptionNumber(field.to_string())),
        };
    }
    if let Some(name) = field.strip_prefix("option:") {
        return option_by_name(name)
            .map(Some)
            .ok_or_else(|| LineError::UnknownOptionName(name.to_string()));
    }
    for unsupported in ["option6:", "vendor:", "encap:", "vi-encap:"] {
        if field.starts_with(unsupported) {
            return Err(LineError::Unsupported(field.to_string()));
        }
    }
    Ok(None)
}

/// dnsmasq's names for the options this server knows how to encode.
const OPTION_NAMES: &[(&str, u8)] = &[
    ("netmask", 1),
    ("time-offset", 2),
    ("router", 3),
    ("dns-server", 6),
    ("log-server", 7),
    ("lpr-server", 9),
    ("hostname", 12),
    ("boot-file-size", 13),
    ("domain-name", 15),
    ("swap-server", 16),
    ("root-path", 17),
    ("extension-path", 18),
    ("ip-forward-enable", 19),
    ("default-ttl", 23),
    ("mtu", 26),
    ("broadcast", 28),
    ("ntp-server", 42),
    ("vendor-encap", 43),
    ("netbios-ns", 44),
    ("lease-time", 51),
    ("T1", 58),
    ("T2", 59),
    ("vendor-class", 60),
    ("tftp-server", 66),
    ("bootfile-name", 67),
    ("user-class", 77),
    ("client-arch", 93),
    ("tftp-server-address", 150),
    ("server-ip-address", SERVER_IP_ADDRESS),
];

/// The option number for a dnsmasq option name.
pub fn option_by_name(name: &str) -> Option<u8> {
    OPTION_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, code)| *code)
}

/// How an option's value text becomes bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Addresses,
    Text,
    U8,
    U16,
    U32,
    Time,
    /// dnsmasq's guess from the text: hex, number, addresses or string.
    Guess,
}

pub(crate) fn value_kind(code: u8) -> ValueKind {
    match code {
        1 | 3..=11 | 16 | 28 | 32 | 41 | 42 | 44 | 45 | 48 | 49 | 54 | 65 | 68..=76 | 150 | 255 => {
            ValueKind::Addresses
        }
        12 | 14 | 15 | 17 | 18 | 40 | 47 | 56 | 62 | 64 | 66 | 67 | 100 | 101 => ValueKind::Text,
        19 | 20 | 23 | 27 | 29..=31 | 34 | 36 | 37 | 39 | 46 => ValueKind::U8,
        13 | 22 | 26 | 57 | 93 => ValueKind::U16,
        2 | 24 | 35 | 38 => ValueKind::U32,
        51 | 58 | 59 => ValueKind::Time,
        _ => ValueKind::Guess,
    }
}

fn bad(code: u8, value: &str, why: &'static str) -> LineError {
    LineError::BadValue {
        code,
        value: value.to_string(),
        why,
    }
}

fn encode_value(code: u8, value: &str, server_ip: Ipv4Addr) -> Result<Vec<u8>, LineError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let kind = value_kind(code);
    let quoted = unquote(value);
    if quoted.len() != value.len() && matches!(kind, ValueKind::Text | ValueKind::Guess) {
        return Ok(quoted.as_bytes().to_vec());
    }
    let value = quoted;
    let encoded =
        match kind {
            ValueKind::Addresses => encode_addresses(value, server_ip)
                .ok_or_else(|| bad(code, value, "not IPv4 addresses"))?,
            ValueKind::Text => value.as_bytes().to_vec(),
            ValueKind::U8 => {
                encode_number(value, 1).ok_or_else(|| bad(code, value, "not a number of 1 byte"))?
            }
            ValueKind::U16 => encode_number(value, 2)
                .ok_or_else(|| bad(code, value, "not a number of 2 bytes"))?,
            ValueKind::U32 => encode_number(value, 4)
                .ok_or_else(|| bad(code, value, "not a number of 4 bytes"))?,
            ValueKind::Time => encode_time(value).ok_or_else(|| bad(code, value, "not a time"))?,
            ValueKind::Guess => guess_encoding(value, server_ip),
        };
    if encoded.len() > 255 * 4 {
        return Err(bad(code, value, "longer than 1020 bytes"));
    }
    Ok(encoded)
}

fn encode_addresses(value: &str, server_ip: Ipv4Addr) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    for part in value.split(',') {
        let address: Ipv4Addr = part.trim().parse().ok()?;
        let address = if address.is_unspecified() {
            server_ip
        } else {
            address
        };
        bytes.extend_from_slice(&address.octets());
    }
    Some(bytes)
}

fn encode_number(value: &str, width: usize) -> Option<Vec<u8>> {
    let number: u64 = value.trim().parse().ok()?;
    if width < 8 && number >> (8 * width) != 0 {
        return None;
    }
    Some(number.to_be_bytes()[8 - width..].to_vec())
}

fn encode_time(value: &str) -> Option<Vec<u8>> {
    let seconds = match LeaseTime::parse(value.trim())? {
        LeaseTime::Seconds(s) => s,
        LeaseTime::Infinite => u32::MAX,
    };
    Some(seconds.to_be_bytes().to_vec())
}

/// dnsmasq's rules for options whose type it does not know: `aa:bb` hex
/// bytes, a decimal number in 1, 2 or 4 bytes (or as forced by a trailing
/// `b`, `s` or `i`), dotted-quad addresses, otherwise the text itself.
fn guess_encoding(value: &str, server_ip: Ipv4Addr) -> Vec<u8> {
    if let Some(bytes) = parse_hex_bytes(value) {
        return bytes;
    }
    if let Some(bytes) = parse_sized_decimal(value) {
        return bytes;
    }
    if value.contains('.') {
        if let Some(bytes) = encode_addresses(value, server_ip) {
            return bytes;
        }
    }
    value.as_bytes().to_vec()
}

fn parse_hex_bytes(value: &str) -> Option<Vec<u8>> {
    if !value.contains(':') {
        return None;
    }
    value
        .split(':')
        .map(|part| match part.len() {
            1 | 2 => u8::from_str_radix(part, 16).ok(),
            _ => None,
        })
        .collect()
}

fn parse_sized_decimal(value: &str) -> Option<Vec<u8>> {
    let (digits, forced) = match value.as_bytes().last()? {
        b'b' => (&value[..value.len() - 1], Some(1)),
        b's' => (&value[..value.len() - 1], Some(2)),
        b'i' => (&value[..value.len() - 1], Some(4)),
        _ => (value, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u32 = digits.parse().ok()?;
    let width = forced.unwrap_or(if number > 0xffff {
        4
    } else if number > 0xff {
        2
    } else {
        1
    });
    let bytes = number.to_be_bytes();
    Some(bytes[4 - width..].to_vec())
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Host entries by MAC and option lines in evaluation order, read from
/// host and option files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostTable {
    hosts: HashMap<MacAddr, HostEntry>,
    fixed: HashMap<Ipv4Addr, MacAddr>,
    options: Vec<OptionLine>,
}

impl HostTable {
    /// An empty table.
    pub fn new() -> HostTable {
        HostTable::default()
    }

    /// Builds the table from `(file name, text)` pairs. Files are read in
    /// name order (as dnsmasq reads a `--dhcp-optsfile` directory); a
    /// malformed line is skipped with a warning naming file and line.
    pub fn from_files<'a>(
        host_files: impl IntoIterator<Item = (&'a str, &'a str)>,
        option_files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> HostTable {
        let mut table = HostTable::new();
        for (name, text) in sorted(host_files) {
            for (number, line) in content_lines(text) {
                match HostEntry::parse(line) {
                    Ok(entry) => table.insert_host(entry, name, number),
                    Err(error) => warn_line("host", name, number, &error),
                }
            }
        }
        for (name, text) in sorted(option_files) {
            for (number, line) in content_lines(text) {
                match OptionLine::parse(line) {
                    Ok(option) => table.options.push(option),
                    Err(error) => warn_line("option", name, number, &error),
                }
            }
        }
        table
    }

    /// Adds or replaces the entry for its MAC.
    pub fn insert_host(&mut self, entry: HostEntry, file: &str, line: usize) {
        if let Some(old) = self.hosts.get(&entry.mac) {
            tracing::warn!(file, line, mac = %entry.mac, "host line replaces an earlier one for the same MAC");
            if let Some(address) = old.address {
                self.fixed.remove(&address);
            }
        }
        if let Some(address) = entry.address.filter(|_| !entry.ignore) {
            if let Some(other) = self.fixed.insert(address, entry.mac) {
                tracing::warn!(file, line, %address, %other, "fixed address given to two MACs; the later wins");
            }
        }
        self.hosts.insert(entry.mac, entry);
    }

    /// Appends an option line (after those from files).
    pub fn push_option(&mut self, option: OptionLine) {
        self.options.push(option);
    }

    /// The host line for `mac`, if any (also an `ignore` one).
    pub fn host(&self, mac: MacAddr) -> Option<&HostEntry> {
        self.hosts.get(&mac)
    }

    /// The MAC whose host line fixes `address`, if any.
    pub fn fixed_owner(&self, address: Ipv4Addr) -> Option<MacAddr> {
        self.fixed.get(&address).copied()
    }

    /// Option lines in file-name then line order.
    pub fn option_lines(&self) -> &[OptionLine] {
        &self.options
    }

    /// Number of host entries.
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }
}

fn sorted<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    let mut files: Vec<_> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    files
}

/// Lines that are neither blank nor comments, with 1-based numbers.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn warn_line(kind: &str, file: &str, line: usize, error: &LineError) {
    tracing::warn!(file, line, %error, "skipping malformed DHCP {kind} line");
}

/// Whether a directory entry is read: dnsmasq skips names starting with
/// `.` or `#` and ending with `~`. Write temp files as `.name.tmp`.
pub fn is_config_file_name(name: &str) -> bool {
    !(name.is_empty() || name.starts_with('.') || name.starts_with('#') || name.ends_with('~'))
}

#[cfg(feature = "net")]
mod dirs {
    use super::*;
    use std::path::Path;

    impl HostTable {
        /// Reads every file in the two directories (blocking). Unreadable
        /// files and directories are skipped with a warning.
        pub fn read_dirs(hosts_dir: Option<&Path>, opts_dir: Option<&Path>) -> HostTable {
            let hosts = hosts_dir.map(read_dir_files).unwrap_or_default();
            let opts = opts_dir.map(read_dir_files).unwrap_or_default();
            HostTable::from_files(
                hosts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
                opts.iter().map(|(n, t)| (n.as_str(), t.as_str())),
            )
        }
    }

    fn read_dir_files(dir: &Path) -> Vec<(String, String)> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot read DHCP config directory");
                return Vec::new();
            }
        };
        let mut files = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if !is_config_file_name(&name) || !path.is_file() {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((path.display().to_string(), text)),
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "cannot read DHCP config file")
                }
            }
        }
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> MacAddr {
        MacAddr::parse(text).unwrap()
    }

    fn tags(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn parses_ironic_host_lines() {
        let entry = HostEntry::parse("52:54:00:12:34:56,set:0d4b-uuid,set:ironic").unwrap();
        assert_eq!(entry.mac, mac("52:54:00:12:34:56"));
        assert_eq!(entry.tags, vec!["0d4b-uuid", "ironic"]);
        assert!(!entry.ignore);
        let ignored = HostEntry::parse("52:54:00:12:34:56,ignore").unwrap();
        assert!(ignored.ignore);
        assert!(ignored.tags.is_empty());
    }

    #[test]
    fn parses_address_hostname_and_lease() {
        let entry = HostEntry::parse("52:54:00:12:34:56, set:a, 10.0.0.9, node-1, 12h").unwrap();
        assert_eq!(entry.address, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(entry.hostname.as_deref(), Some("node-1"));
        assert_eq!(entry.lease_time, Some(LeaseTime::Seconds(43_200)));
        let infinite = HostEntry::parse("52:54:00:12:34:56,infinite").unwrap();
        assert_eq!(infinite.lease_time, Some(LeaseTime::Infinite));
    }

    #[test]
    fn refuses_malformed_host_lines() {
        for bad in [
            "",
            "52:54:00:12:34,set:a",
            "52:54:00:12:34:56,set:",
            "52:54:00:12:34:56,tag:x",
            "52:54:00:12:34:56,id:01:02",
            "52:54:00:12:34:56,10.0.0.1,10.0.0.2",
            "52:54:00:12:34:56,a,b",
            "52:54:00:12:34:56,white space",
        ] {
            assert!(HostEntry::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_lines_round_trip() {
        let m = mac("52:54:00:aa:bb:cc");
        let line = host_line(m, &["3f2a-77", "ironic"]).unwrap();
        assert_eq!(line, "52:54:00:aa:bb:cc,set:3f2a-77,set:ironic");
        assert_eq!(
            HostEntry::parse(&line).unwrap(),
            HostEntry::tagged(m, &["3f2a-77", "ironic"])
        );
        let ignore = ignore_line(m);
        assert_eq!(ignore, "52:54:00:aa:bb:cc,ignore");
        assert!(HostEntry::parse(&ignore).unwrap().ignore);
        let full = HostEntry {
            mac: m,
            tags: vec!["x".into()],
            address: Some(Ipv4Addr::new(192, 0, 2, 7)),
            hostname: Some("node-7".into()),
            lease_time: Some(LeaseTime::Seconds(600)),
            ignore: false,
        };
        assert_eq!(HostEntry::parse(&full.to_line().unwrap()).unwrap(), full);
    }

    #[test]
    fn formatting_refuses_what_would_not_parse_back() {
        let m = mac("52:54:00:aa:bb:cc");
        for bad in ["", "a,b", "a b", "!a", "123", "a:b"] {
            assert!(host_line(m, &[bad]).is_err(), "{bad:?}");
            assert!(
                option_line(&[TagCond::is(bad)], 67, "x").is_err(),
                "{bad:?}"
            );
        }
        assert!(option_line(&[], 67, "a\nb").is_err());
    }

    #[test]
    fn parses_ironic_option_lines() {
        let line = OptionLine::parse("tag:0d4b-uuid,tag:!ipxe,67,snponly.efi").unwrap();
        assert_eq!(
            line.tags,
            vec![TagCond::is("0d4b-uuid"), TagCond::not("ipxe")]
        );
        assert_eq!(line.code, 67);
        assert_eq!(line.encode(Ipv4Addr::UNSPECIFIED).unwrap(), b"snponly.efi");
        let url = OptionLine::parse("tag:u,tag:ipxe,67,http://192.0.2.1:8080/boot.ipxe").unwrap();
        assert_eq!(url.value, "http://192.0.2.1:8080/boot.ipxe");
        let siaddr = OptionLine::parse("tag:u,255,192.0.2.1").unwrap();
        assert_eq!(siaddr.code, SERVER_IP_ADDRESS);
        assert_eq!(
            siaddr.encode(Ipv4Addr::UNSPECIFIED).unwrap(),
            vec![192, 0, 2, 1]
        );
        let tftp = OptionLine::parse("tag:u,66,192.0.2.1").unwrap();
        assert_eq!(
            tftp.encode(Ipv4Addr::UNSPECIFIED).unwrap(),
            b"192.0.2.1",
            "66 is a name"
        );
        let vendor = OptionLine::parse("tag:u,60,HTTPClient").unwrap();
        assert_eq!(vendor.encode(Ipv4Addr::UNSPECIFIED).unwrap(), b"HTTPClient");
    }

    #[test]
    fn parses_option_names_and_dnsmasq_tag_forms() {
        let cases = [
            ("option:bootfile-name,a.efi", 67),
            ("option:tftp-server,x", 66),
            ("option:vendor-class,PXEClient", 60),
            ("option:router,10.0.0.1", 3),
            ("option:dns-server,10.0.0.1,10.0.0.2", 6),
            ("option:server-ip-address,10.0.0.3", 255),
        ];
        for (text, code) in cases {
            assert_eq!(OptionLine::parse(text).unwrap().code, code, "{text}");
        }
        let dns = OptionLine::parse("option:dns-server, 10.0.0.1, 0.0.0.0").unwrap();
        assert_eq!(
            dns.encode(Ipv4Addr::new(10, 0, 0, 9)).unwrap(),
            vec![10, 0, 0, 1, 10, 0, 0, 9]
        );
        let forms = OptionLine::parse("net:a,set:b,c,#d,tag:!e,3,10.0.0.1").unwrap();
        assert_eq!(
            forms.tags,
            vec![
                TagCond::is("a"),
                TagCond::is("b"),
                TagCond::is("c"),
                TagCond::not("d"),
                TagCond::not("e")
            ]
        );
    }

    #[test]
    fn encodes_values_by_option_type() {
        let enc = |text: &str| {
            OptionLine::parse(text)
                .unwrap()
                .encode(Ipv4Addr::UNSPECIFIED)
                .unwrap()
        };
        assert_eq!(enc("26,1500"), vec![0x05, 0xdc]);
        assert_eq!(enc("51,1h"), 3600u32.to_be_bytes().to_vec());
        assert_eq!(enc("58,infinite"), vec![0xff; 4]);
        assert_eq!(enc("175,01:02:ff"), vec![1, 2, 0xff]);
        assert_eq!(enc("200,5"), vec![5]);
        assert_eq!(enc("200,300"), vec![1, 44]);
        assert_eq!(enc("200,5i"), vec![0, 0, 0, 5]);
        assert_eq!(enc("200,hello"), b"hello");
        assert_eq!(enc("200,1.2.3.4"), vec![1, 2, 3, 4]);
        assert_eq!(
            enc("200,\"1.2.3.4\""),
            b"1.2.3.4".to_vec(),
            "quotes force text"
        );
        assert_eq!(enc("67,\"a b\""), b"a b".to_vec());
        assert_eq!(enc("3"), Vec::<u8>::new());
    }

    #[test]
    fn refuses_malformed_option_lines() {
        for bad in [
            "",
            "tag:a",
            "tag:a,tag:b",
            "0,x",
            "256,x",
            "option:no-such-option,1",
            "option6:dns-server,[::1]",
            "vendor:PXEClient,1,0.0.0.0",
            "encap:175,190,x",
            "3,not-an-address",
            "26,70000",
            "tag:,67,x",
        ] {
            assert!(OptionLine::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn option_lines_round_trip() {
        let cases = [
            OptionLine::new(
                vec![TagCond::is("u-1"), TagCond::not("ipxe")],
                67,
                "snponly.efi",
            )
            .unwrap(),
            OptionLine::new(vec![TagCond::is("u-1")], 67, "http://192.0.2.1/boot.ipxe").unwrap(),
            OptionLine::new(vec![], 3, "10.0.0.1,10.0.0.2").unwrap(),
            OptionLine::new(vec![TagCond::is("u")], 66, "192.0.2.1").unwrap(),
            OptionLine::new(vec![], 255, "192.0.2.1").unwrap(),
            OptionLine::new(vec![], 60, "HTTPClient").unwrap(),
            OptionLine::new(vec![], 200, "01:02").unwrap(),
            OptionLine::new(vec![], 12, "\"quoted\"").unwrap(),
            OptionLine::new(vec![], 6, "").unwrap(),
        ];
        for line in cases {
            let text = line.to_line().unwrap();
            assert_eq!(OptionLine::parse(&text).unwrap(), line, "{text}");
        }
        assert_eq!(
            option_line(&[TagCond::is("u"), TagCond::not("ipxe")], 67, "a.efi").unwrap(),
            "tag:u,tag:!ipxe,67,a.efi"
        );
    }

    #[test]
    fn tag_conditions_hold_as_dnsmasq_says() {
        let line = OptionLine::parse("tag:a,tag:!b,67,x").unwrap();
        assert!(line.applies(&tags(&["a"])));
        assert!(!line.applies(&tags(&["a", "b"])));
        assert!(!line.applies(&tags(&[])));
        assert!(OptionLine::parse("67,x").unwrap().applies(&tags(&[])));
    }

    #[test]
    fn table_skips_malformed_lines_and_keeps_the_rest() {
        let table = HostTable::from_files(
            [
                (
                    "ironic-52:54:00:00:00:02.conf",
                    "# comment\n\n52:54:00:00:00:02,set:b\n",
                ),
                (
                    "ironic-bad.conf",
                    "not a mac,set:x\n52:54:00:00:00:03,ignore\n",
                ),
                (
                    "ironic-52:54:00:00:00:01.conf",
                    "52:54:00:00:00:01,set:a,10.0.0.50\n",
                ),
            ],
            [
                ("b.conf", "tag:b,67,b.efi\nvendor:x,1,2\n"),
                ("a.conf", "tag:a,67,a.efi\n"),
            ],
        );
        assert_eq!(table.host_count(), 3);
        assert!(table.host(mac("52:54:00:00:00:03")).unwrap().ignore);
        assert_eq!(
            table.fixed_owner(Ipv4Addr::new(10, 0, 0, 50)),
            Some(mac("52:54:00:00:00:01"))
        );
        let values: Vec<_> = table
            .option_lines()
            .iter()
            .map(|l| l.value.as_str())
            .collect();
        assert_eq!(
            values,
            vec!["a.efi", "b.efi"],
            "files in name order, bad line skipped"
        );
    }

    #[test]
    fn later_host_line_for_a_mac_replaces_the_earlier() {
        let table = HostTable::from_files(
            [
                ("a", "52:54:00:00:00:01,10.0.0.5"),
                ("b", "52:54:00:00:00:01,ignore"),
            ],
            [],
        );
        assert!(table.host(mac("52:54:00:00:00:01")).unwrap().ignore);
        assert_eq!(table.fixed_owner(Ipv4Addr::new(10, 0, 0, 5)), None);
    }

    #[test]
    fn config_file_names_follow_dnsmasq() {
        assert!(is_config_file_name("ironic-52:54:00:00:00:01.conf"));
        for skipped in [".ironic-x.conf.tmp", "x~", "#x#", ""] {
            assert!(!is_config_file_name(skipped), "{skipped}");
        }
    }
}
