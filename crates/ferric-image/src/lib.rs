//! Deploy images: from a URL to the bytes on a disk.
//!
//! Architecture invariant: imports no other Ferric crate.
