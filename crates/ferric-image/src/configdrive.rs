//! Config drives, as Ironic builds them and as the agent receives them.
//!
//! Building (the conductor's side): a config drive dict
//! (`{"meta_data": {...}, "user_data": ..., "network_data": {...},
//! "vendor_data": {...}}`) becomes the ISO 9660 image Ironic makes with
//! openstacksdk's `configdrive.build`: `openstack/{2012-08-10,latest}/`
//! holding `meta_data.json`, `user_data`, `network_data.json` and
//! `vendor_data2.json`, volume id `config-2`, JSON written as Python's
//! `json.dump` writes it. [`encode`] then gzips and base64-encodes it, the
//! form Ironic stores in `instance_info.configdrive`.
//!
//! Decoding (the agent's side, IPA's `get_configdrive`): the value is an
//! HTTP(S) URL (returned for the caller to fetch), or base64 of a gzipped
//! image; downloaded content may also be a raw image. Decoded images are
//! capped at 64 MiB, Ironic's limit. A decoded image keeps only its
//! compressed bytes in memory and is inflated again while it is written.

use std::io::{self, Read, Write};

use base64::Engine;
use serde_json::{Map, Value};

use crate::iso9660::{IsoBuilder, IsoError, IsoOptions};

/// Largest config drive Ironic and IPA accept (IPA's
/// `MAX_CONFIG_DRIVE_SIZE_MB`), in bytes.
pub const MAX_CONFIG_DRIVE_SIZE: u64 = 64 * 1024 * 1024;

/// File system label of a config drive.
pub const CONFIG_DRIVE_LABEL: &str = "config-2";

/// Metadata versions written, as openstacksdk writes them.
pub const METADATA_VERSIONS: [&str; 2] = ["2012-08-10", "latest"];

const MIB: u64 = 1024 * 1024;

/// What can go wrong building or decoding a config drive.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    /// The dict is not what Ironic's API schema accepts.
    #[error("Invalid configdrive format: {0}")]
    InvalidFormat(String),
    /// The string is neither a URL nor base64 of an image.
    #[error("Config drive is not base64 encoded or the content is malformed: {0}")]
    Malformed(String),
    /// The gzip stream is broken.
    #[error("Encountered error while decompressing the config drive: {0}")]
    Decompress(String),
    /// The image is over [`MAX_CONFIG_DRIVE_SIZE`].
    #[error(
        "Config drive size exceeds maximum limit of 64MiB. Size of the given config drive is \
         {mib} MiB."
    )]
    TooLarge { mib: u64 },
    /// The ISO image could not be built.
    #[error("Building the config drive ISO failed: {0}")]
    Iso(#[from] IsoError),
}

/// `user_data` as the dict may hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum UserData {
    /// Written as UTF-8 text.
    Text(String),
    /// An object or array, written as JSON.
    Json(Value),
}

/// The contents of a config drive dict, checked against Ironic's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigDriveContent {
    pub meta_data: Map<String, Value>,
    pub user_data: Option<UserData>,
    pub network_data: Option<Map<String, Value>>,
    pub vendor_data: Option<Map<String, Value>>,
}

impl ConfigDriveContent {
    /// Reads a config drive dict: an object whose only keys are
    /// `meta_data`, `network_data`, `vendor_data` (objects) and `user_data`
    /// (object, array, string or null).
    pub fn from_json(value: &Value) -> Result<Self, ConfigDriveError> {
        let Value::Object(dict) = value else {
            return Err(invalid(format!("{} is not of type 'object'", kind(value))));
        };
        if let Some(key) = dict.keys().find(|k| !is_known_key(k)) {
            return Err(invalid(format!(
                "Additional properties are not allowed ('{key}' was unexpected)"
            )));
        }
        let user_data = match dict.get("user_data") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(UserData::Text(text.clone())),
            Some(v @ (Value::Object(_) | Value::Array(_))) => Some(UserData::Json(v.clone())),
            Some(other) => {
                return Err(invalid(format!(
                    "{} is not of type 'object', 'array', 'string', 'null'",
                    kind(other)
                )))
            }
        };
        Ok(ConfigDriveContent {
            meta_data: object_field(dict, "meta_data")?.unwrap_or_default(),
            user_data,
            network_data: object_field(dict, "network_data")?,
            vendor_data: object_field(dict, "vendor_data")?,
        })
    }

    /// Ironic's defaults: `meta_data.uuid` is the node's UUID and
    /// `meta_data.name` its name, unless the dict gives them.
    pub fn with_node_defaults(mut self, node_uuid: &str, node_name: Option<&str>) -> Self {
        self.meta_data
            .entry("uuid")
            .or_insert_with(|| Value::String(node_uuid.to_string()));
        if let Some(name) = node_name.filter(|n| !n.is_empty()) {
            self.meta_data
                .entry("name")
                .or_insert_with(|| Value::String(name.to_string()));
        }
        self
    }

    /// The files of the config drive: (path in the image, contents).
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let user_data = match &self.user_data {
            Some(UserData::Text(text)) => text.as_bytes().to_vec(),
            Some(UserData::Json(value)) => python_json(value),
            None => Vec::new(),
        };
        let mut files = Vec::new();
        for version in METADATA_VERSIONS {
            let dir = format!("openstack/{version}");
            let meta = Value::Object(self.meta_data.clone());
            files.push((format!("{dir}/meta_data.json"), python_json(&meta)));
            // openstacksdk skips empty values, as Python's truthiness does.
            if let Some(network) = self.network_data.as_ref().filter(|m| !m.is_empty()) {
                let value = Value::Object(network.clone());
                files.push((format!("{dir}/network_data.json"), python_json(&value)));
            }
            if let Some(vendor) = self.vendor_data.as_ref().filter(|m| !m.is_empty()) {
                let value = Value::Object(vendor.clone());
                files.push((format!("{dir}/vendor_data2.json"), python_json(&value)));
            }
            if !user_data.is_empty() {
                files.push((format!("{dir}/user_data"), user_data.clone()));
            }
        }
        files
    }

    /// The ISO 9660 image (volume id `config-2`), all entries stamped with
    /// `timestamp` (seconds since the Unix epoch).
    pub fn build_iso(&self, timestamp: i64) -> Result<Vec<u8>, ConfigDriveError> {
        let mut options = IsoOptions::new(CONFIG_DRIVE_LABEL, timestamp);
        options.max_size = MAX_CONFIG_DRIVE_SIZE;
        let mut iso = IsoBuilder::new(options)?;
        for (path, data) in self.files() {
            iso.add_file(&path, data)?;
        }
        Ok(iso.build()?)
    }
}

fn is_known_key(key: &str) -> bool {
    matches!(
        key,
        "meta_data" | "network_data" | "user_data" | "vendor_data"
    )
}

fn invalid(detail: String) -> ConfigDriveError {
    ConfigDriveError::InvalidFormat(detail)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object_field(
    dict: &Map<String, Value>,
    key: &str,
) -> Result<Option<Map<String, Value>>, ConfigDriveError> {
    match dict.get(key) {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map.clone())),
        Some(other) => Err(invalid(format!(
            "{} is not of type 'object' (in {key})",
            kind(other)
        ))),
    }
}

/// Ironic's `build_configdrive`: the dict, with the node's defaults, as the
/// gzipped and base64-encoded ISO stored in `instance_info.configdrive`.
pub fn build_configdrive(
    dict: &Value,
    node_uuid: &str,
    node_name: Option<&str>,
    timestamp: i64,
) -> Result<String, ConfigDriveError> {
    let content = ConfigDriveContent::from_json(dict)?.with_node_defaults(node_uuid, node_name);
    Ok(encode(&content.build_iso(timestamp)?))
}

/// Gzip, then base64: the form Ironic stores a config drive in.
pub fn encode(image: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let compressed = gz
        .write_all(image)
        .and_then(|()| gz.finish())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(compressed)
}

/// What `instance_info.configdrive` (or IPA's `configdrive` argument)
/// holds, once decoded.
#[derive(Clone, PartialEq)]
pub enum ConfigDriveSource {
    /// An HTTP(S) URL: the caller fetches it (capped at
    /// [`MAX_CONFIG_DRIVE_SIZE`]) and passes the bytes to
    /// [`ConfigDriveImage::from_downloaded`].
    Url(String),
    /// The image itself.
    Image(ConfigDriveImage),
}

impl std::fmt::Debug for ConfigDriveSource {
    // Temporary URLs carry their signature in the query: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigDriveSource::Url(url) => {
                let shown = match url.split_once('?') {
                    Some((base, _)) => format!("{base}?***"),
                    None => url.clone(),
                };
                f.debug_tuple("Url").field(&shown).finish()
            }
            ConfigDriveSource::Image(image) => f.debug_tuple("Image").field(image).finish(),
        }
    }
}

/// IPA's `_is_http_url`.
pub fn is_http_url(value: &str) -> bool {
    let lower = value
        .trim_start()
        .get(..8)
        .unwrap_or(value)
        .to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Decodes the config drive string Ironic hands the agent.
pub fn decode(value: &str) -> Result<ConfigDriveSource, ConfigDriveError> {
    if is_http_url(value) {
        return Ok(ConfigDriveSource::Url(value.trim().to_string()));
    }
    Ok(ConfigDriveSource::Image(ConfigDriveImage::from_base64(
        value.as_bytes(),
    )?))
}

/// A config drive image ready to be written: its (possibly gzipped) bytes
/// and its size once inflated.
#[derive(Clone, PartialEq)]
pub struct ConfigDriveImage {
    data: Vec<u8>,
    gzipped: bool,
    size: u64,
}

impl std::fmt::Debug for ConfigDriveImage {
    // The contents may hold secrets (user_data): never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDriveImage")
            .field("gzipped", &self.gzipped)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ConfigDriveImage {
    /// An uncompressed image (an ISO or FAT file system), at most 64 MiB.
    pub fn from_raw(data: Vec<u8>) -> Result<Self, ConfigDriveError> {
        let size = data.len() as u64;
        check_size(size)?;
        if size == 0 {
            return Err(ConfigDriveError::Malformed("it is empty".to_string()));
        }
        Ok(ConfigDriveImage {
            data,
            gzipped: false,
            size,
        })
    }

    /// A gzipped image; the stream is inflated once to check it and learn
    /// its size.
    pub fn from_gzip(data: Vec<u8>) -> Result<Self, ConfigDriveError> {
        let mut counter = CountingSink::default();
        copy_inflated(&data, &mut counter)?;
        if counter.0 == 0 {
            return Err(ConfigDriveError::Malformed(
                "the gzip stream holds no data".to_string(),
            ));
        }
        Ok(ConfigDriveImage {
            data,
            gzipped: true,
            size: counter.0,
        })
    }

    /// Base64 text (whitespace allowed) of a gzipped image — or, more
    /// leniently than IPA, of an uncompressed ISO or FAT image.
    pub fn from_base64(text: &[u8]) -> Result<Self, ConfigDriveError> {
        let decoded = decode_base64(text)?;
        if decoded.starts_with(&GZIP_MAGIC) {
            Self::from_gzip(decoded)
        } else if looks_like_image(&decoded) {
            Self::from_raw(decoded)
        } else {
            Err(ConfigDriveError::Malformed(
                "the decoded data is neither gzip nor an ISO 9660 or FAT image".to_string(),
            ))
        }
    }

    /// Content downloaded from a config drive URL: gzip, an image, or
    /// base64 of either; anything else is taken as a binary image, as IPA
    /// does.
    pub fn from_downloaded(data: Vec<u8>) -> Result<Self, ConfigDriveError> {
        if data.starts_with(&GZIP_MAGIC) {
            return Self::from_gzip(data);
        }
        if looks_like_image(&data) {
            return Self::from_raw(data);
        }
        if !data.is_empty() && data.iter().all(|&b| is_base64_byte(b)) {
            return Self::from_base64(&data);
        }
        tracing::debug!("config drive download is not base64 encoded, assuming binary");
        Self::from_raw(data)
    }

    /// Size of the image once inflated, in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Size in MiB, rounded up (IPA's `configdrive_mb`).
    pub fn size_mib(&self) -> u64 {
        self.size.div_ceil(MIB)
    }

    /// Writes the inflated image to `out`; returns the bytes written.
    pub fn write_to(&self, out: &mut dyn Write) -> Result<u64, ConfigDriveError> {
        if self.gzipped {
            copy_inflated(&self.data, out)
        } else {
            out.write_all(&self.data)
                .map_err(|e| ConfigDriveError::Decompress(e.to_string()))?;
            Ok(self.size)
        }
    }

    /// The inflated image in memory (at most 64 MiB): for tests and small
    /// callers; writers should prefer [`ConfigDriveImage::write_to`].
    pub fn to_vec(&self) -> Result<Vec<u8>, ConfigDriveError> {
        let mut out = Vec::with_capacity(self.size as usize);
        self.write_to(&mut out)?;
        Ok(out)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn check_size(size: u64) -> Result<(), ConfigDriveError> {
    if size > MAX_CONFIG_DRIVE_SIZE {
        return Err(ConfigDriveError::TooLarge {
            mib: size.div_ceil(MIB),
        });
    }
    Ok(())
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'\n' | b'\r' | b'\t' | b' ')
}

fn decode_base64(text: &[u8]) -> Result<Vec<u8>, ConfigDriveError> {
    // Base64 of the largest gzip we could accept; refuse before copying.
    let limit = MAX_CONFIG_DRIVE_SIZE.div_ceil(3) * 4 * 2;
    if text.len() as u64 > limit {
        return Err(ConfigDriveError::TooLarge {
            mib: (text.len() as u64 / 4 * 3).div_ceil(MIB),
        });
    }
    if let Some(bad) = text.iter().position(|&b| !is_base64_byte(b)) {
        return Err(ConfigDriveError::Malformed(format!(
            "byte {bad} is not in the base64 alphabet"
        )));
    }
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(ConfigDriveError::Malformed("it is empty".to_string()));
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(&compact)
        .map_err(|e| ConfigDriveError::Malformed(format!("Error: {e}")))
}

/// An ISO 9660 volume or a FAT boot sector (IPA's FAT fallback drives).
fn looks_like_image(data: &[u8]) -> bool {
    let iso = data.get(32769..32774) == Some(b"CD001".as_slice());
    let fat = data.get(510..512) == Some([0x55, 0xaa].as_slice())
        && (data.get(82..87) == Some(b"FAT32".as_slice())
            || data.get(54..57) == Some(b"FAT".as_slice()));
    iso || fat
}

/// Inflates `data` into `out`, refusing more than the size limit.
fn copy_inflated(data: &[u8], out: &mut dyn Write) -> Result<u64, ConfigDriveError> {
    let decoder = flate2::read::MultiGzDecoder::new(data);
    let mut limited = decoder.take(MAX_CONFIG_DRIVE_SIZE + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match limited.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ConfigDriveError::Decompress(e.to_string())),
        };
        total += n as u64;
        check_size(total)?;
        out.write_all(&buf[..n])
            .map_err(|e| ConfigDriveError::Decompress(format!("writing failed: {e}")))?;
    }
    Ok(total)
}

#[derive(Default)]
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON as Python's `json.dumps` writes it by default: `", "` and `": "`
/// separators, non-ASCII escaped, floats as `repr` prints them.
pub fn python_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_python_json(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_string(key, out);
                out.extend_from_slice(b": ");
                write_python_json(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
            c => out.push(c as u8),
        }
    }
    out.push(b'"');
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) {
    if n.is_f64() {
        if let Some(f) = n.as_f64() {
            out.extend_from_slice(python_float_repr(f).as_bytes());
            return;
        }
    }
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Python's `repr(float)`: shortest round-trip digits, positional between
/// 1e-4 and 1e16, else scientific with a signed two-digit exponent.
fn python_float_repr(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{exp_sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_json_matches_json_dumps() {
        let value = json!({"uuid": "abc", "n": [1, 2.5, true, null], "e": {}, "s": "é\"\n\u{1}😀"});
        assert_eq!(
            String::from_utf8(python_json(&value)).unwrap(),
            r#"{"uuid": "abc", "n": [1, 2.5, true, null], "e": {}, "s": "\u00e9\"\n\u0001\ud83d\ude00"}"#
        );
    }

    #[test]
    fn floats_print_as_python_repr() {
        for (f, text) in [
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (-2.25, "-2.25"),
            (123456.789, "123456.789"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ] {
            assert_eq!(python_float_repr(f), text, "{f}");
        }
    }

    #[test]
    fn dict_schema_is_ironics() {
        assert!(ConfigDriveContent::from_json(&json!({})).is_ok());
        assert!(ConfigDriveContent::from_json(&json!({"user_data": null})).is_ok());
        assert!(ConfigDriveContent::from_json(&json!({"user_data": [1]})).is_ok());
        let err = ConfigDriveContent::from_json(&json!({"foo": 1})).unwrap_err();
        assert!(err.to_string().contains("'foo' was unexpected"), "{err}");
        assert!(ConfigDriveContent::from_json(&json!({"meta_data": "x"})).is_err());
        assert!(ConfigDriveContent::from_json(&json!({"network_data": []})).is_err());
        assert!(ConfigDriveContent::from_json(&json!({"vendor_data": 1})).is_err());
        assert!(ConfigDriveContent::from_json(&json!({"user_data": 5})).is_err());
        assert!(ConfigDriveContent::from_json(&json!("text")).is_err());
    }

    #[test]
    fn files_follow_openstacksdk() {
        let content = ConfigDriveContent::from_json(&json!({
            "meta_data": {"hostname": "h"},
            "user_data": {"ignition": {"version": "3.0.0"}},
            "network_data": {},
            "vendor_data": {"a": 1},
        }))
        .unwrap()
        .with_node_defaults("u-1", Some("node-1"));
        let files = content.files();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "openstack/2012-08-10/meta_data.json",
                "openstack/2012-08-10/vendor_data2.json",
                "openstack/2012-08-10/user_data",
                "openstack/latest/meta_data.json",
                "openstack/latest/vendor_data2.json",
                "openstack/latest/user_data",
            ]
        );
        assert_eq!(
            files[0].1,
            br#"{"hostname": "h", "uuid": "u-1", "name": "node-1"}"#
        );
        assert_eq!(files[2].1, br#"{"ignition": {"version": "3.0.0"}}"#);
    }

    #[test]
    fn node_defaults_do_not_override() {
        let content = ConfigDriveContent::from_json(&json!({"meta_data": {"uuid": "mine"}}))
            .unwrap()
            .with_node_defaults("node", None);
        assert_eq!(content.meta_data["uuid"], "mine");
        assert!(!content.meta_data.contains_key("name"));
    }

    #[test]
    fn empty_user_data_string_writes_no_file() {
        let content = ConfigDriveContent::from_json(&json!({"user_data": ""})).unwrap();
        assert!(content
            .files()
            .iter()
            .all(|(p, _)| !p.ends_with("user_data")));
        let content = ConfigDriveContent::from_json(&json!({"user_data": {}})).unwrap();
        assert!(content
            .files()
            .iter()
            .any(|(p, d)| p.ends_with("user_data") && d == b"{}"));
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let iso = ConfigDriveContent::from_json(&json!({"meta_data": {"a": "b"}}))
            .unwrap()
            .build_iso(1_700_000_000)
            .unwrap();
        let encoded = encode(&iso);
        let ConfigDriveSource::Image(image) = decode(&encoded).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(image.size(), iso.len() as u64);
        assert_eq!(image.size_mib(), 1);
        assert_eq!(image.to_vec().unwrap(), iso);
        // Line-wrapped base64, as `base64` prints it, is accepted too.
        let wrapped: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(decode(&wrapped).is_ok());
    }

    #[test]
    fn urls_are_returned() {
        assert_eq!(
            decode("HTTPS://example.invalid/cd").unwrap(),
            ConfigDriveSource::Url("HTTPS://example.invalid/cd".to_string())
        );
        assert!(matches!(
            decode("http://x/").unwrap(),
            ConfigDriveSource::Url(_)
        ));
    }

    #[test]
    fn base64_of_an_uncompressed_iso_is_accepted() {
        let iso = ConfigDriveContent::from_json(&json!({}))
            .unwrap()
            .build_iso(0)
            .unwrap();
        let text = base64::engine::general_purpose::STANDARD.encode(&iso);
        let ConfigDriveSource::Image(image) = decode(&text).unwrap() else {
            panic!("not an image")
        };
        assert_eq!(image.to_vec().unwrap(), iso);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in ["", "   ", "not base64!", "aGVsbG8=", "%%%%"] {
            let err = decode(bad).unwrap_err();
            assert!(
                matches!(err, ConfigDriveError::Malformed(_)),
                "{bad:?}: {err}"
            );
        }
        // gzip magic, then garbage
        let text = base64::engine::general_purpose::STANDARD.encode([0x1f, 0x8b, 1, 2, 3]);
        assert!(matches!(
            decode(&text).unwrap_err(),
            ConfigDriveError::Decompress(_)
        ));
    }

    #[test]
    fn inflated_size_is_capped() {
        let zeros = vec![0u8; (MAX_CONFIG_DRIVE_SIZE + 1) as usize];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&zeros).unwrap();
        let compressed = gz.finish().unwrap();
        let err = ConfigDriveImage::from_gzip(compressed).unwrap_err();
        assert!(
            matches!(err, ConfigDriveError::TooLarge { mib: 65 }),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("Config drive size exceeds maximum limit of 64MiB"));
        assert!(matches!(
            ConfigDriveImage::from_raw(zeros),
            Err(ConfigDriveError::TooLarge { .. })
        ));
    }

    #[test]
    fn downloads_accept_raw_gzip_and_base64() {
        let iso = ConfigDriveContent::from_json(&json!({}))
            .unwrap()
            .build_iso(0)
            .unwrap();
        let encoded = encode(&iso);
        let from_text = ConfigDriveImage::from_downloaded(encoded.clone().into_bytes()).unwrap();
        assert_eq!(from_text.to_vec().unwrap(), iso);
        let gz = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap();
        assert_eq!(
            ConfigDriveImage::from_downloaded(gz)
                .unwrap()
                .to_vec()
                .unwrap(),
            iso
        );
        assert_eq!(
            ConfigDriveImage::from_downloaded(iso.clone())
                .unwrap()
                .to_vec()
                .unwrap(),
            iso
        );
        let binary = vec![0xffu8, 0, 1, 2];
        assert_eq!(
            ConfigDriveImage::from_downloaded(binary.clone())
                .unwrap()
                .size(),
            4
        );
        assert!(ConfigDriveImage::from_downloaded(Vec::new()).is_err());
    }

    #[test]
    fn debug_output_hides_contents_and_url_signatures() {
        let image = ConfigDriveImage::from_raw(b"secret-password".to_vec()).unwrap();
        assert!(!format!("{image:?}").contains("secret"));
        let url = ConfigDriveSource::Url("https://swift/v1/cd?temp_url_sig=abc123".to_string());
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("abc123") && shown.contains("https://swift/v1/cd"),
            "{shown}"
        );
    }

    #[test]
    fn decoder_survives_random_and_truncated_input() {
        use rand::{Rng, RngCore, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let good = encode(
            &ConfigDriveContent::from_json(&json!({"user_data": "x"}))
                .unwrap()
                .build_iso(0)
                .unwrap(),
        );
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&good)
            .unwrap();
        for len in (0..raw.len()).step_by(7) {
            let _ = ConfigDriveImage::from_downloaded(raw[..len].to_vec());
        }
        for _ in 0..1000 {
            let mut bytes = vec![0u8; rng.random_range(0..600)];
            rng.fill_bytes(&mut bytes);
            let _ = ConfigDriveImage::from_downloaded(bytes.clone());
            let mut gz = GZIP_MAGIC.to_vec();
            gz.extend_from_slice(&bytes);
            let _ = ConfigDriveImage::from_gzip(gz);
            let text: String = bytes
                .iter()
                .map(|b| b"ABCz09+/= \n"[(*b as usize) % 11] as char)
                .collect();
            let _ = decode(&text);
        }
    }
}
