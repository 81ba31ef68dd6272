//! What a build wrote: `images.json` and the `NAME.sha256` files.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::build::{run, BuildError};

/// The name of the manifest in the output directory.
pub const MANIFEST: &str = "images.json";

/// One image file: Ironic takes either checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFile {
    /// The file's name in the output directory.
    pub name: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex.
    pub md5: String,
}

impl ImageFile {
    /// Measures a file (`sha256sum`, `md5sum`).
    pub fn of(path: &Path) -> Result<Self, BuildError> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| BuildError::Missing(format!("{} has no file name", path.display())))?
            .to_owned();
        let size = std::fs::metadata(path)
            .map_err(|e| BuildError::io(path, e))?
            .len();
        Ok(ImageFile {
            name,
            size,
            sha256: digest("sha256sum", path, 64)?,
            md5: digest("md5sum", path, 32)?,
        })
    }

    /// The `NAME.sha256` text, as `sha256sum` writes it.
    pub fn sha256_line(&self) -> String {
        format!("{}  {}\n", self.sha256, self.name)
    }
}

/// A build's images and the markers they print, as `images.json` holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestImages {
    /// The whole-disk image prints `FERRIC-INSTANCE-MARKER <instance_marker>`.
    pub instance_marker: String,
    /// The partition image's root holds this token in `/ferric-marker`,
    /// which its initramfs prints as `FERRIC-INSTANCE-MARKER <token>`.
    pub partition_marker: String,
    /// The partition image's filesystem UUID (for `root=UUID=...`).
    pub partition_uuid: String,
    /// The versioned Debian kernel package both images boot.
    pub kernel_package: String,
    /// The whole-disk image's kernel command line.
    pub disk_cmdline: String,
    pub files: Vec<ImageFile>,
}

impl TestImages {
    /// Reads `images.json` from a build's output directory.
    pub fn load(out_dir: &Path) -> Result<Self, BuildError> {
        let path = out_dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| BuildError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| BuildError::Missing(format!("{}: {e}", path.display())))
    }

    /// The entry of one file by name.
    pub fn file(&self, name: &str) -> Option<&ImageFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The manifest's JSON text.
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

fn digest(tool: &str, path: &Path, hex_len: usize) -> Result<String, BuildError> {
    let out = run(Command::new(tool).arg("--").arg(path))?;
    parse_digest(&String::from_utf8_lossy(&out), hex_len).ok_or_else(|| {
        BuildError::Missing(format!("{tool} printed no digest for {}", path.display()))
    })
}

/// The hex digest that starts a `sha256sum`/`md5sum` line (a leading `\`
/// marks an escaped file name).
fn parse_digest(line: &str, hex_len: usize) -> Option<String> {
    let first = line.split_whitespace().next()?;
    let hex = first.strip_prefix('\\').unwrap_or(first);
    (hex.len() == hex_len && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_from_tool_output() {
        let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            parse_digest(&format!("{sha}  /tmp/x\n"), 64).as_deref(),
            Some(sha)
        );
        assert_eq!(
            parse_digest("\\d41d8cd98f00b204e9800998ecf8427e  /tmp/a\\nb\n", 32).as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(parse_digest("d41d8cd98f00b204  x\n", 32), None);
        assert_eq!(parse_digest("", 32), None);
        assert_eq!(parse_digest(&format!("{}  x", "g".repeat(32)), 32), None);
    }

    #[test]
    fn files_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.img");
        std::fs::write(&path, b"").unwrap();
        let Ok(file) = ImageFile::of(&path) else {
            eprintln!("skipped: no sha256sum/md5sum");
            return;
        };
        assert_eq!(file.name, "empty.img");
        assert_eq!(file.size, 0);
        assert_eq!(
            file.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(file.md5, "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            file.sha256_line(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  empty.img\n"
        );
    }

    #[test]
    fn the_manifest_reads_back() {
        let images = TestImages {
            instance_marker: "a1".into(),
            partition_marker: "b2".into(),
            partition_uuid: "0f6b3c2e-5d4a-4b3c-8d2e-1f0a9b8c7d6e".into(),
            kernel_package: "linux-image-6.1.0-57-cloud-amd64".into(),
            disk_cmdline: "console=ttyS0".into(),
            files: vec![ImageFile {
                name: "ferric-test-disk.raw".into(),
                size: 67108864,
                sha256: "00".repeat(32),
                md5: "11".repeat(16),
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), images.to_json()).unwrap();
        let back = TestImages::load(dir.path()).unwrap();
        assert_eq!(back, images);
        assert_eq!(
            back.file("ferric-test-disk.raw").map(|f| f.size),
            Some(67108864)
        );
        assert!(back.file("nope").is_none());
        let json: serde_json::Value = serde_json::from_str(&images.to_json()).unwrap();
        assert_eq!(json["files"][0]["md5"], "11".repeat(16));
    }
}
