//! The one error type of the streaming pipeline; its Display texts are meant for a node's
//! `last_error`, so each names what failed (URL, algorithm, offset) and never a secret.

use crate::checksum::Algorithm;

/// Everything that can go wrong between an image URL and the bytes on a disk.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The checksum fields of the image info cannot be used.
    #[error("invalid image checksum: {0}")]
    InvalidChecksum(String),

    /// A checksum file was fetched but gave no usable checksum.
    #[error("checksum file {url}: {reason}")]
    ChecksumFile { url: String, reason: String },

    /// The downloaded file does not hash to the expected value.
    #[error("image failed {algorithm} verification: expected {expected}, got {actual}")]
    ChecksumMismatch {
        algorithm: Algorithm,
        expected: String,
        actual: String,
    },

    /// No URL was given, or none of them could be fetched.
    #[error("download failed: {0}")]
    Download(String),

    /// The connection ended before the server's announced length was reached.
    #[error("download of {url} is truncated: got {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },

    /// The file on the server changed between two requests of one download.
    #[error("{url} changed on the server during the download ({detail}); refusing to stitch")]
    Changed { url: String, detail: String },

    /// A small download was larger than allowed.
    #[error("{url} is larger than the {max} bytes allowed")]
    TooLarge { url: String, max: u64 },

    /// The image does not fit in the target.
    #[error("image is larger than the target: {0}")]
    ImageTooLarge(String),

    /// `disk_format` is not one this pipeline writes, or disagrees with the content.
    #[error("image format: {0}")]
    Format(String),

    /// A qcow2 file that is malformed or uses a feature that is not supported.
    #[error("qcow2 image: {0}")]
    Qcow2(String),

    /// The target cannot be opened, sized or written.
    #[error("target {path}: {detail}")]
    Target { path: String, detail: String },

    /// The HTTP client could not be built (bad CA bundle and the like).
    #[error("HTTP client: {0}")]
    Client(String),
}

impl ImageError {
    /// The image itself is refused (too large for the target, a format not
    /// allowed): no download problem causes these.
    pub fn is_about_the_image(&self) -> bool {
        matches!(self, ImageError::ImageTooLarge(_) | ImageError::Format(_))
    }

    pub(crate) fn target(path: &std::path::Path, detail: impl std::fmt::Display) -> Self {
        ImageError::Target {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }
}
