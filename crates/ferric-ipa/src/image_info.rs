//! `image_info`: what Ironic's `AgentDeploy.write_image` sends for the agent
//! to download and write (read from `ironic/drivers/modules/agent.py` and
//! IPA's `extensions/standby.py`), and `standby.get_partition_uuids`' answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{ErrorKind, RestError};
use crate::secret::Secret;

/// The image to write.
///
/// Whole-disk images carry `id`, `urls`, `disk_format`, `container_format`,
/// `stream_raw_images`, the checksum fields and `node_uuid`; partition
/// images add `kernel`, `ramdisk`, `root_gb`/`root_mb`, `swap_mb`,
/// `ephemeral_mb`, `ephemeral_format`, `configdrive`, `preserve_ephemeral`,
/// `image_type`, `deploy_boot_mode`, `boot_option` and `disk_label`. Ironic
/// reads sizes from `instance_info`, where they may be strings, so sizes
/// accept numbers or numeric strings. Secrets print masked.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The image's id: the last path part of `image_source`.
    #[serde(default)]
    pub id: String,
    /// Where to download it; tried in order.
    #[serde(default)]
    pub urls: Vec<String>,
    /// `raw`, `qcow2`, `iso`, ... as Ironic knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_format: Option<String>,
    /// `bare`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_format: Option<String>,
    /// `[agent]stream_raw_images`: write raw images while downloading.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub stream_raw_images: Option<bool>,
    /// Legacy checksum: md5 hex, a longer hex digest, or a URL of a
    /// checksum file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// `md5`, `sha256`, `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_hash_algo: Option<String>,
    /// Hex digest (or URL of a checksum file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_hash_value: Option<String>,
    /// `noauth` or `http_basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_server_auth_strategy: Option<String>,
    /// Basic-auth user for the image server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_server_user: Option<String>,
    /// Basic-auth password for the image server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_server_password: Option<Secret>,
    /// Base64 of an `Authorization` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_request_authorization: Option<Secret>,
    /// `{"http": URL, "https": URL}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxies: Option<BTreeMap<String, String>>,
    /// Hosts that bypass the proxies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// The node's UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_uuid: Option<String>,
    /// Partition images: kernel image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Partition images: ramdisk image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk: Option<String>,
    /// Partition images: root size in GiB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_u64"
    )]
    pub root_gb: Option<u64>,
    /// Partition images: root size in MiB (wins over `root_gb`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_u64"
    )]
    pub root_mb: Option<u64>,
    /// Partition images: swap size in MiB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_u64"
    )]
    pub swap_mb: Option<u64>,
    /// Partition images: ephemeral size in MiB.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_u64"
    )]
    pub ephemeral_mb: Option<u64>,
    /// Partition images: ephemeral filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_format: Option<String>,
    /// Config drive (duplicated from the step's `configdrive` argument).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configdrive: Option<Secret>,
    /// Keep the ephemeral partition's contents.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub preserve_ephemeral: Option<bool>,
    /// `partition` or `whole-disk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_type: Option<String>,
    /// `bios` or `uefi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_boot_mode: Option<String>,
    /// `local` or `netboot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_option: Option<String>,
    /// `msdos` or `gpt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_label: Option<String>,
    /// Keys not listed above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageInfo {
    /// True for partition images (`image_type == "partition"`).
    pub fn is_partition_image(&self) -> bool {
        self.image_type.as_deref() == Some("partition")
    }

    /// The root partition size in MiB: `root_mb`, else `root_gb` × 1024.
    pub fn root_mb(&self) -> Option<u64> {
        self.root_mb
            .or_else(|| self.root_gb.map(|gb| gb.saturating_mul(1024)))
    }

    /// IPA's `_validate_image_info`, with its error texts
    /// (`InvalidCommandParamsError`, HTTP 400). `md5_enabled` is the lookup
    /// config's `agent_md5_checksum_enable`.
    pub fn validate(&self, md5_enabled: bool) -> Result<(), RestError> {
        let invalid = |msg: &str| Err(RestError::new(ErrorKind::InvalidCommandParams, msg));
        if self.id.is_empty() {
            return invalid("Image is missing 'id' field.");
        }
        if self.urls.is_empty() {
            return invalid("Image 'urls' must be a list with at least one element.");
        }
        let mut checksum_avail = false;
        if let Some(checksum) = &self.checksum {
            if checksum.is_empty() {
                return invalid("Image 'checksum' must be a non-empty string.");
            }
            let is_url = checksum.starts_with("http://") || checksum.starts_with("https://");
            checksum_avail = is_url || checksum.len() > 32 || md5_enabled;
        }
        if self.os_hash_algo.is_some() || self.os_hash_value.is_some() {
            if self.os_hash_algo.as_deref().is_none_or(str::is_empty) {
                return invalid("Image 'os_hash_algo' must be a non-empty string.");
            }
            if self.os_hash_value.as_deref().is_none_or(str::is_empty) {
                return invalid("Image 'os_hash_value' must be a non-empty string.");
            }
            checksum_avail = true;
        }
        if !checksum_avail {
            return invalid(
                "Image checksum is not available, either the 'checksum' field or the 'os_hash_algo' and 'os_hash_value' fields pair must be set for image verification.",
            );
        }
        Ok(())
    }
}

/// `standby.prepare_image` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareImageParams {
    /// The image.
    pub image_info: ImageInfo,
    /// Config drive; when absent IPA falls back to `image_info.configdrive`.
    #[serde(default)]
    pub configdrive: Option<Secret>,
}

/// `standby.cache_image` params (older IPA): write without a config drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheImageParams {
    /// The image.
    pub image_info: ImageInfo,
    /// Write again even when this image id was written already.
    #[serde(default)]
    pub force: bool,
}

/// `standby.get_partition_uuids` result: `{}` before any image was
/// written, `{"root uuid": "0x1a2b3c4d"}` (the MBR disk identifier) for a
/// whole-disk image, and for partition images the partition UUIDs plus
/// `partitions` (`{"root": "/dev/sda2", "swap": ..., "configdrive": ...}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PartitionUuids {
    /// Root partition UUID (partition images) or disk identifier.
    #[serde(rename = "root uuid", default, skip_serializing_if = "Option::is_none")]
    pub root_uuid: Option<String>,
    /// EFI system partition UUID (UEFI partition images).
    #[serde(
        rename = "efi system partition uuid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub efi_system_partition_uuid: Option<String>,
    /// PReP boot partition UUID (ppc64 partition images).
    #[serde(
        rename = "PReP Boot partition uuid",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prep_boot_partition_uuid: Option<String>,
    /// Role → device path, partition images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<BTreeMap<String, String>>,
    /// Other keys.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn lenient_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a size, got {n}"))),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("expected a size, got {s:?}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a size, got {other}"
        ))),
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) => crate::hints::parse_bool(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a boolean, got {s:?}"))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What Ironic 39's write_image builds for the captured node
    /// (whole-disk, raw, sha256), nulls dropped.
    fn whole_disk() -> Value {
        json!({
            "id": "img.raw",
            "urls": ["http://127.0.0.1:18080/img.raw"],
            "disk_format": "raw",
            "stream_raw_images": true,
            "os_hash_algo": "sha256",
            "os_hash_value": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "node_uuid": "fb1cf066-0b24-49b5-b8ce-4f1df789b019"
        })
    }

    #[test]
    fn round_trips_whole_disk_image_info() {
        let info: ImageInfo = serde_json::from_value(whole_disk()).unwrap();
        assert_eq!(info.stream_raw_images, Some(true));
        assert!(!info.is_partition_image());
        assert_eq!(serde_json::to_value(&info).unwrap(), whole_disk());
        info.validate(false).unwrap();
    }

    #[test]
    fn reads_partition_labels_with_nulls_and_strings() {
        let info: ImageInfo = serde_json::from_value(json!({
            "id": "p", "urls": ["http://x/p"], "checksum": "http://x/SHA256SUMS",
            "kernel": "http://x/k", "ramdisk": "http://x/r", "root_gb": "10", "root_mb": null,
            "swap_mb": 512, "ephemeral_mb": 0, "ephemeral_format": null, "configdrive": "H4sI...",
            "preserve_ephemeral": "false", "image_type": "partition", "deploy_boot_mode": "uefi",
            "boot_option": "local", "disk_label": "gpt", "container_format": "bare",
            "image_server_password": "hunter2", "proxies": {"http": "http://proxy:3128"}
        }))
        .unwrap();
        assert!(info.is_partition_image());
        assert_eq!(info.root_mb(), Some(10 * 1024));
        assert_eq!(info.swap_mb, Some(512));
        assert_eq!(info.preserve_ephemeral, Some(false));
        assert!(!format!("{info:?}").contains("hunter2"));
        assert!(!format!("{info:?}").contains("H4sI"));
        info.validate(false).unwrap();
        let back = serde_json::to_value(&info).unwrap();
        assert_eq!(back["image_server_password"], "hunter2");
        assert_eq!(back["root_gb"], 10);
    }

    #[test]
    fn validates_like_ipa() {
        let mut info: ImageInfo = serde_json::from_value(whole_disk()).unwrap();
        info.os_hash_value = None;
        let err = info.validate(false).unwrap_err();
        assert_eq!(
            err.details,
            "Image 'os_hash_value' must be a non-empty string."
        );
        assert_eq!(err.code, 400);
        info.os_hash_algo = None;
        info.checksum = Some("d41d8cd98f00b204e9800998ecf8427e".into());
        assert!(info
            .validate(false)
            .unwrap_err()
            .details
            .starts_with("Image checksum is not available"));
        info.validate(true).unwrap();
        info.urls.clear();
        assert_eq!(
            info.validate(true).unwrap_err().details,
            "Image 'urls' must be a list with at least one element."
        );
        info.id.clear();
        assert_eq!(
            info.validate(true).unwrap_err().details,
            "Image is missing 'id' field."
        );
    }

    #[test]
    fn rejects_nonsense_sizes() {
        assert!(serde_json::from_value::<ImageInfo>(json!({"root_mb": "lots"})).is_err());
        assert!(serde_json::from_value::<ImageInfo>(json!({"root_mb": -1})).is_err());
        assert!(
            serde_json::from_value::<ImageInfo>(json!({"stream_raw_images": "maybe"})).is_err()
        );
    }

    #[test]
    fn partition_uuids_round_trip() {
        let whole = json!({"root uuid": "0x1a2b3c4d"});
        let p: PartitionUuids = serde_json::from_value(whole.clone()).unwrap();
        assert_eq!(p.root_uuid.as_deref(), Some("0x1a2b3c4d"));
        assert_eq!(serde_json::to_value(&p).unwrap(), whole);
        let part = json!({
            "partitions": {"root": "/dev/sda2", "swap": "/dev/sda1", "configdrive": "/dev/sda3", "efi system partition": "/dev/sda4"},
            "root uuid": "8d3f4a2e-1b5c-4c6d-9e7f-0a1b2c3d4e5f",
            "efi system partition uuid": "1234-ABCD"
        });
        let p: PartitionUuids = serde_json::from_value(part.clone()).unwrap();
        assert_eq!(p.partitions.as_ref().unwrap()["root"], "/dev/sda2");
        assert_eq!(serde_json::to_value(&p).unwrap(), part);
        assert_eq!(
            serde_json::to_value(PartitionUuids::default()).unwrap(),
            json!({})
        );
    }
}
