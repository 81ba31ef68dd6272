//! iSCSI (RFC 7143) for bare-metal deploys: the agent exports the node's disk as a
//! target, the conductor logs in and writes the image onto it.
//!
//! Layered the sans-IO way:
//! - [`pdu`]: parsing and serialising every PDU both ends use (basic header segment,
//!   additional header segments, data segment, padding), with [`digest`] (CRC32C header
//!   and data digests); decoders take bytes and return a typed error, never panic.
//! - [`text`], [`params`], [`chap`], [`login`]: key=value text, the negotiation of
//!   operational parameters, CHAP (one-way and mutual) and the login phase of both ends.
//! - [`scsi`]: a SCSI block device (SBC/SPC commands a disk target answers) over a
//!   [`scsi::Backing`] store.
//! - [`target`] and [`initiator`]: the full-feature-phase machines of each end.
//! - [`net`] (feature `net`): the tokio target server and initiator client.
#![forbid(unsafe_code)]

pub mod chap;
pub mod digest;
#[doc(hidden)]
pub mod fuzz;
pub mod initiator;
pub mod login;
#[cfg(feature = "net")]
pub mod net;
pub mod params;
pub mod pdu;
pub mod scsi;
pub mod target;
pub mod text;
