//! A read-only TFTP server: RFC 1350 with options (RFC 2347), blksize
//! (RFC 2348), timeout and tsize (RFC 2349) and windowsize (RFC 7440).
//!
//! The protocol lives in sans-IO parts that unit tests and the fuzz target
//! drive directly:
//!
//! - [`packet`]: parsing and encoding of every packet type;
//! - [`path`]: lexical checks of requested names against the root;
//! - [`options`]: option negotiation against the server's limits;
//! - [`transfer`]: one read transfer, windows, retransmissions, rollover.
//!
//! Behind the `net` feature, [`net`] is the tokio server (one task and one
//! socket per transfer) and [`client`] a small blocking client used by the
//! examples, the tests and the bench.

pub mod options;
pub mod packet;
pub mod path;
pub mod transfer;

#[cfg(feature = "net")]
pub mod client;
#[cfg(feature = "net")]
pub mod net;
