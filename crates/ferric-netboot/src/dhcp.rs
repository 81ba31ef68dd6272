//! DHCPv4 for network boot: full mode (address pools, leases) and
//! proxyDHCP mode (PXE options only, beside another DHCP server), with boot
//! options chosen per host from dnsmasq-format host and option files - the
//! files Ironic's dnsmasq DHCP provider writes, so a real dnsmasq can be
//! pointed at the same directories instead.
//!
//! - [`hosts`]: host and option lines, their parsing and formatting, and
//!   the [`HostTable`] built from them.
//! - [`leases`]: the lease table in dnsmasq's lease-file format.
//! - [`Responder`]: the sans-IO core. Bytes, arrival, host table and time
//!   in; a [`Reply`] and trace events out.
//! - `net` (feature `net`): the tokio server around it.
//!
//! # Tags
//!
//! A request carries the `set:` tags of its host line and `known` when a
//! host line (not `ignore`) exists; `ipxe` when it sends option 175 or user
//! class `iPXE`; from option 93 `bios` (0), `efi-ia32` (6), `efi-x86_64`
//! (7, 9), `efi-arm64` (11), `efi-x86_64-http` (16), `efi-arm64-http`
//! (19); `httpclient` or `pxe` when its vendor class (60) starts with
//! `HTTPClient` or `PXEClient`. An option line applies when all its tag
//! conditions hold. Between lines setting one option, dnsmasq's precedence
//! holds: a line with conditions beats one without, then the later line
//! wins (config options come before option files, files in name order).
//!
//! # What is sent
//!
//! Full mode: 53, 54, 51/58/59, 1, 28, 3, 6, 15 (pool values, overridden by
//! option lines; an empty line suppresses), 12 when asked for, the boot
//! file in the BOOTP `file` field (and in 67 when asked for or longer than
//! the field), `siaddr` = `server-ip-address` line, else `tftp_server`,
//! else `server_ip`; 66 when asked for; 60 `HTTPClient` to HTTP boot
//! clients; any other option line when asked for; 61 and 82 echoed. PXE
//! clients get no 60/43 in full mode (like dnsmasq without `pxe-service`),
//! so ROMs boot the file without boot-server discovery.
//!
//! Proxy mode: OFFERs on port 67 to PXE/HTTP clients only, with no
//! address, 54, 60 (`PXEClient` or `HTTPClient`), 97 echoed, the boot
//! fields and for PXE option 43 with discovery control 8; REQUESTs on port
//! 4011 get an ACK of the same to their source address and port; nothing
//! else is answered, so the address server's REQUESTs are never NAKed.

pub mod hosts;
pub mod leases;
#[cfg(feature = "net")]
pub mod net;
mod responder;
mod wire;

pub use hosts::{
    host_line, ignore_line, option_line, HostEntry, HostTable, LeaseTime, LineError, OptionLine,
    TagCond,
};
pub use leases::{Lease, Leases};
pub use responder::{Arrival, ConfigError, DhcpConfig, Mode, Pool, Reply, Responder};
pub use wire::MAX_DATAGRAM;

/// A datagram that is not a DHCP request this server can answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhcpError {
    #[error("datagram of {0} bytes is over 1500")]
    TooLarge(usize),
    #[error("datagram of {0} bytes is shorter than a BOOTP header")]
    Truncated(usize),
    #[error("op {0} is not BOOTREQUEST")]
    NotBootRequest(u8),
    #[error("hardware type {htype} length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("not DHCP: {0}")]
    NotDhcp(&'static str),
    #[error("message type {0} is not one a client sends")]
    UnexpectedMessageType(u8),
    #[error("cannot encode reply: {0}")]
    Encode(String),
}
