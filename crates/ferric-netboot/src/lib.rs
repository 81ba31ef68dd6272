//! Network boot for bare metal, as a library usable on its own.
//!
//! Each protocol has a sans-IO core (bytes in, bytes and decisions out, no
//! sockets, no clocks read behind the caller's back) that fuzz targets and
//! unit tests drive directly, and behind the `net` feature a tokio server
//! that owns the sockets and timers.
//!
//! - [`dhcp`]: DHCPv4 in full mode (address pool, static bindings, leases)
//!   and proxyDHCP mode (PXE options only, ports 67 and 4011), with boot
//!   options chosen per host from dnsmasq-format host and option files.
//! - [`tftp`]: a read-only TFTP server (RFC 1350) with options (RFC 2347,
//!   2348, 2349) and windowsize (RFC 7440), confined to its root.
//! - `http` (net feature): HTTP boot files, streamed, with byte ranges.
//! - [`trace`]: what each service did for each client, for "where did the
//!   boot stop?".

pub mod dhcp;
#[cfg(feature = "net")]
pub mod http;
pub mod tftp;
pub mod trace;
