//! Deploy images: from a URL to the bytes on a disk.
//!
//! The streaming pipeline ([`write_image`]) downloads an image over HTTP(S) with retries and
//! resume, verifies its checksum while it streams, converts qcow2 to raw on the fly and
//! writes it into a [`Target`] (a byte range of a file or block device).
//!
//! Architecture invariant: imports no other Ferric crate.

pub mod checksum;
pub mod configdrive;
pub mod erase;
pub mod error;
pub mod fetch;
pub mod iso9660;
pub mod partition;
pub mod pipeline;
pub mod qcow2;
pub mod writer;

pub use checksum::{Algorithm, ExpectedChecksum};
pub use error::ImageError;
pub use fetch::{FetchOptions, Fetcher};
pub use pipeline::{
    fetch_bytes, write_image, ImageFormat, ImageSource, Progress, ProgressSnapshot, WriteReport,
};
pub use writer::{BlockDevice, DiskWriter, FileDevice, Target};
