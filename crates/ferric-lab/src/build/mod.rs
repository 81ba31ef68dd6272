//! Builders for the VM lab's boot artefacts, from Debian's packages only:
//! the deploy ramdisk (`ferric ramdisk build`) and the test user images.
//! Everything is made in userspace (no mount, no loop device, no root
//! privilege beyond what `apt-get download` needs).
//!
//! - [`debian`]: packages fetched with `apt-get download` (cached) and
//!   unpacked with `dpkg-deb -x`;
//! - [`cpio`]: the newc archives an initramfs is;
//! - [`ramdisk`]: the deploy kernel and initramfs.

pub mod cpio;
pub mod debian;
pub mod images;
pub mod ramdisk;

use std::path::PathBuf;

/// A build step that failed, naming what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An external tool could not be started.
    #[error("cannot run {tool} (is it installed?): {source}")]
    Spawn {
        tool: String,
        source: std::io::Error,
    },
    /// An external tool ran and failed.
    #[error("{tool} failed ({status}): {stderr}")]
    Tool {
        tool: String,
        status: String,
        stderr: String,
    },
    /// Something the build needs is not where it should be.
    #[error("{0}")]
    Missing(String),
}

impl BuildError {
    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Runs a command to its end; its stdout on success, else its stderr in
/// the error.
pub fn run(command: &mut std::process::Command) -> Result<Vec<u8>, BuildError> {
    let tool = format!("{command:?}");
    let output = command.output().map_err(|source| BuildError::Spawn {
        tool: command.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    finished(tool, output)
}

/// A finished tool's stdout, or its stderr in the error.
pub fn finished(tool: String, output: std::process::Output) -> Result<Vec<u8>, BuildError> {
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(BuildError::Tool {
        tool,
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}
