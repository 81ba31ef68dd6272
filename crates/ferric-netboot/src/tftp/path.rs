//! Lexical checks of a requested file name against the served root.
//!
//! These checks see only the text of the name; the server also resolves
//! symlinks and refuses real paths outside the root.

use std::path::{Component, Path, PathBuf};

/// Why a requested name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty file name")]
    Empty,
    #[error("file name contains NUL")]
    Nul,
    #[error("file name contains a '..' component")]
    ParentComponent,
    #[error("absolute file name outside the root")]
    Absolute,
}

/// Turns a requested name into a path relative to `root`.
///
/// Backslashes count as `/` (Windows-style clients). Empty names, NUL and
/// any `..` component are refused. An absolute name is accepted only when
/// it starts with `root`'s own path, compared component by component, which
/// is stripped: some boot configs name files by their full path under the
/// root. Empty and `.` components are dropped.
pub fn resolve(root: &Path, requested: &str) -> Result<PathBuf, PathError> {
    if requested.contains('\0') {
        return Err(PathError::Nul);
    }
    let name = requested.replace('\\', "/");
    let mut parts: Vec<&str> = name
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(PathError::ParentComponent);
    }
    if name.starts_with('/') {
        let root_parts = root_components(root).ok_or(PathError::Absolute)?;
        if !parts.starts_with(&root_parts) {
            return Err(PathError::Absolute);
        }
        parts.drain(..root_parts.len());
    }
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(parts.iter().collect())
}

/// The names along an absolute root (`/srv/tftp` -> `["srv", "tftp"]`);
/// `None` when the root is relative, has `..`, or is not UTF-8, so that no
/// absolute request can match it.
fn root_components(root: &Path) -> Option<Vec<&str>> {
    let mut components = root.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    components
        .filter(|c| *c != Component::CurDir)
        .map(|c| match c {
            Component::Normal(name) => name.to_str(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = "/srv/tftp";

    fn ok(requested: &str) -> String {
        resolve(Path::new(ROOT), requested)
            .unwrap_or_else(|e| panic!("{requested:?}: {e}"))
            .to_string_lossy()
            .into_owned()
    }

    fn err(requested: &str) -> PathError {
        match resolve(Path::new(ROOT), requested) {
            Ok(path) => panic!("{requested:?} accepted as {path:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn relative_names_pass_through() {
        assert_eq!(ok("pxelinux.0"), "pxelinux.0");
        assert_eq!(
            ok("pxelinux.cfg/01-52-54-00-12-34-56"),
            "pxelinux.cfg/01-52-54-00-12-34-56"
        );
        assert_eq!(ok("./a//b/./c"), "a/b/c");
        assert_eq!(ok("...x"), "...x");
    }

    #[test]
    fn backslashes_are_separators() {
        assert_eq!(ok("boot\\x64\\wdsnbp.com"), "boot/x64/wdsnbp.com");
        assert_eq!(err("..\\secret"), PathError::ParentComponent);
        assert_eq!(err("a\\..\\..\\b"), PathError::ParentComponent);
    }

    #[test]
    fn empty_names_are_refused() {
        for name in ["", ".", "./", "/srv/tftp", "/srv/tftp/", "\\srv\\tftp"] {
            assert_eq!(err(name), PathError::Empty, "{name:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(err("a\0b"), PathError::Nul);
    }

    #[test]
    fn parent_components_are_refused_anywhere() {
        for name in [
            "..",
            "../secret",
            "a/../b",
            "a/..",
            "/srv/tftp/../etc/passwd",
            "a/b/../../..",
        ] {
            assert_eq!(err(name), PathError::ParentComponent, "{name:?}");
        }
    }

    #[test]
    fn absolute_names_under_the_root_are_stripped() {
        assert_eq!(ok("/srv/tftp/pxelinux.0"), "pxelinux.0");
        assert_eq!(ok("//srv//tftp/./uuid/kernel"), "uuid/kernel");
        assert_eq!(ok("\\srv\\tftp\\x"), "x");
    }

    #[test]
    fn other_absolute_names_are_refused() {
        for name in [
            "/",
            "//",
            "\\",
            "/etc/passwd",
            "/srv/tftpfoo/x",
            "/srv",
            "/srv/other/tftp/x",
            "\\etc\\passwd",
        ] {
            assert_eq!(err(name), PathError::Absolute, "{name:?}");
        }
    }

    #[test]
    fn a_relative_root_matches_no_absolute_name() {
        assert_eq!(
            resolve(Path::new("tftp"), "/tftp/x"),
            Err(PathError::Absolute)
        );
        assert_eq!(resolve(Path::new("tftp"), "x"), Ok(PathBuf::from("x")));
    }

    #[test]
    fn root_slash_accepts_any_absolute_name() {
        assert_eq!(
            resolve(Path::new("/"), "/boot/x"),
            Ok(PathBuf::from("boot/x"))
        );
    }
}
