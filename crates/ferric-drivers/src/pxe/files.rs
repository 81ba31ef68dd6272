//! File operations the boot interfaces share: writes a reader never sees
//! half done, removals that tolerate absence, relative links.

use std::path::{Path, PathBuf};

use crate::error::DriverError;

/// Writes `text` to `path` through a temporary file and a rename, so that
/// a reader sees the old file or the new one, never half of one, and the
/// directory's time changes (which is how Ferric's DHCP server notices).
pub fn write_atomically(path: &Path, text: &str) -> Result<(), DriverError> {
    let dir = path
        .parent()
        .ok_or_else(|| DriverError::failed(format!("{} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&temp, text).map_err(|e| io_error("write", &temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        io_error("rename into", path, e)
    })
}

pub fn remove_if_present(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}

pub fn io_error(what: &str, path: &Path, e: std::io::Error) -> DriverError {
    DriverError::failed(format!("cannot {what} {}: {e}", path.display()))
}

/// Points `link` at `target` (relative to the link's directory).
pub fn relink(link: &Path, target: &Path) -> Result<(), DriverError> {
    let dir = link
        .parent()
        .ok_or_else(|| DriverError::failed(format!("{} has no directory", link.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_error("create", dir, e))?;
    let relative = relative_to(target, dir);
    remove_if_present(link)?;
    std::os::unix::fs::symlink(&relative, link).map_err(|e| io_error("link", link, e))
}

/// `target` as seen from `dir` (both under the same root).
pub fn relative_to(target: &Path, dir: &Path) -> PathBuf {
    let common = target
        .components()
        .zip(dir.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in dir.components().skip(common) {
        out.push("..");
    }
    for part in target.components().skip(common) {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_their_directory() {
        assert_eq!(
            relative_to(Path::new("/r/n1/config"), Path::new("/r/pxelinux.cfg")),
            PathBuf::from("../n1/config")
        );
        assert_eq!(
            relative_to(Path::new("/r/n1/config"), Path::new("/r")),
            PathBuf::from("n1/config")
        );
    }
}
