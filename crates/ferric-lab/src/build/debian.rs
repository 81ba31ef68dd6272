//! Debian packages as build inputs: downloaded once into a cache with
//! `apt-get download` (from whatever the machine's apt sources say; nothing
//! is installed) and unpacked with `dpkg-deb -x`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, BuildError};

/// The cache of downloaded `.deb` files: `$FERRIC_CACHE_DIR/debs`, else
/// `$XDG_CACHE_HOME/ferric/debs`, else `$HOME/.cache/ferric/debs`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRIC_CACHE_DIR") {
        return PathBuf::from(dir).join("debs");
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("ferric/debs");
    }
    // Never a world-writable /tmp: what is cached ends up in ramdisks.
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/ferric/debs"),
        None => PathBuf::from("/var/cache/ferric/debs"),
    }
}

/// Debian packages fetched through a cache directory.
#[derive(Debug, Clone)]
pub struct Packages {
    cache: PathBuf,
}

impl Packages {
    /// Packages cached in `cache` (created when missing).
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        Packages {
            cache: cache.into(),
        }
    }

    /// The `.deb` of a package (`name` or `name=version`), downloaded when
    /// the cache has none of that version. A bare name means apt's candidate
    /// version (so point and security releases are picked up), or, when apt
    /// knows none, the newest cached.
    pub fn deb(&self, package: &str) -> Result<PathBuf, BuildError> {
        let pinned = match package.split_once('=') {
            Some(_) => package.to_string(),
            None => candidate_version(package)
                .map(|version| format!("{package}={version}"))
                .unwrap_or_else(|| package.to_string()),
        };
        let package = pinned.as_str();
        if let Some(found) = self.cached(package)? {
            return Ok(found);
        }
        std::fs::create_dir_all(&self.cache).map_err(|e| BuildError::io(&self.cache, e))?;
        // apt-get writes the .deb in place as it downloads: another build
        // sharing the cache must never see it half written.
        let staging = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&self.cache)
            .map_err(|e| BuildError::io(&self.cache, e))?;
        run(Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root", package])
            .current_dir(staging.path()))?;
        let downloaded =
            std::fs::read_dir(staging.path()).map_err(|e| BuildError::io(staging.path(), e))?;
        for entry in downloaded {
            let from = entry.map_err(|e| BuildError::io(staging.path(), e))?.path();
            if let Some(name) = from.file_name() {
                let to = self.cache.join(name);
                std::fs::rename(&from, &to).map_err(|e| BuildError::io(&to, e))?;
            }
        }
        self.cached(package)?.ok_or_else(|| {
            BuildError::Missing(format!(
                "apt-get download {package} left no .deb in {}",
                self.cache.display()
            ))
        })
    }

    /// Unpacks a package's files into `into` (created when missing) and
    /// returns `into`.
    pub fn unpack(&self, package: &str, into: &Path) -> Result<PathBuf, BuildError> {
        let deb = self.deb(package)?;
        std::fs::create_dir_all(into).map_err(|e| BuildError::io(into, e))?;
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(into))?;
        Ok(into.to_path_buf())
    }

    fn cached(&self, package: &str) -> Result<Option<PathBuf>, BuildError> {
        let (name, version) = match package.split_once('=') {
            Some((name, version)) => (name, Some(version)),
            None => (package, None),
        };
        let entries = match std::fs::read_dir(&self.cache) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BuildError::io(&self.cache, e)),
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| deb_matches(path, name, version))
            .collect();
        found.sort();
        Ok(found.pop())
    }
}

/// apt's candidate version of a package (`apt-cache policy`), if any.
fn candidate_version(name: &str) -> Option<String> {
    let out = run(Command::new("apt-cache").args(["policy", name])).ok()?;
    candidate_in_policy(&String::from_utf8_lossy(&out))
}

fn candidate_in_policy(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|v| !v.is_empty() && *v != "(none)")
        .map(str::to_owned)
}

/// Whether a file is `NAME_VERSION_ARCH.deb` of that name (and version:
/// apt writes `:` in an epoch as `%3a`).
fn deb_matches(path: &Path, name: &str, version: Option<&str>) -> bool {
    let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
        return false;
    };
    let Some(stem) = file.strip_suffix(".deb") else {
        return false;
    };
    let mut parts = stem.splitn(3, '_');
    let (Some(n), Some(v), Some(_arch)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    n == name && version.is_none_or(|want| v == want.replace(':', "%3a"))
}

/// The versioned kernel package a metapackage such as
/// `linux-image-cloud-amd64` depends on (`linux-image-6.1.0-41-cloud-amd64`).
pub fn kernel_behind(metapackage: &str) -> Result<String, BuildError> {
    let out = run(Command::new("apt-cache").args(["depends", metapackage]))?;
    let text = String::from_utf8_lossy(&out);
    kernel_in_depends(&text).ok_or_else(|| {
        BuildError::Missing(format!(
            "apt-cache depends {metapackage} names no linux-image package (run apt-get update?)"
        ))
    })
}

fn kernel_in_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|dep| dep.starts_with("linux-image-") && !dep.starts_with('<'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debs_match_by_name_and_version() {
        let p = Path::new("/c/busybox-static_1%3a1.35.0-4+b3_amd64.deb");
        assert!(deb_matches(p, "busybox-static", None));
        assert!(deb_matches(p, "busybox-static", Some("1:1.35.0-4+b3")));
        assert!(!deb_matches(p, "busybox-static", Some("1.36")));
        assert!(!deb_matches(p, "busybox", None));
        assert!(!deb_matches(
            Path::new("/c/busybox-static.tar"),
            "busybox-static",
            None
        ));
    }

    #[test]
    fn the_candidate_version_is_read_from_apt_cache_policy() {
        let text =
            "busybox-static:\n  Installed: (none)\n  Candidate: 1:1.35.0-4+b3\n  Version table:\n";
        assert_eq!(candidate_in_policy(text).as_deref(), Some("1:1.35.0-4+b3"));
        assert_eq!(candidate_in_policy("x:\n  Candidate: (none)\n"), None);
        assert_eq!(candidate_in_policy("N: Unable to locate package x\n"), None);
    }

    #[test]
    fn the_kernel_behind_the_metapackage() {
        let text = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-41-cloud-amd64\n";
        assert_eq!(
            kernel_in_depends(text).as_deref(),
            Some("linux-image-6.1.0-41-cloud-amd64")
        );
        assert_eq!(kernel_in_depends("x\n  Depends: <virtual>\n"), None);
    }
}
