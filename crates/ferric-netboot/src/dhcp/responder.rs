//! The sans-IO DHCP responder: a datagram, where it came from, the host
//! table and the time in; a reply and its destination out, with trace
//! events for everything received, sent and ignored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use dhcproto::v4::MessageType;

use super::hosts::{HostEntry, HostTable, LeaseTime, LineError, OptionLine, SERVER_IP_ADDRESS};
use super::leases::{Lease, Leases};
use super::wire::*;
use super::DhcpError;
use crate::trace::{Client, Event, EventKind, MacAddr, TraceSink};

/// Full DHCP (addresses from pools) or proxyDHCP (boot options only,
/// beside another DHCP server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Full { pools: Vec<Pool> },
    Proxy,
}

/// An address range in one subnet, with what clients there are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub lease_time: Duration,
}

impl Pool {
    /// A pool with no router, DNS or domain and a one-hour lease.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr, netmask: Ipv4Addr) -> Pool {
        Pool {
            first,
            last,
            netmask,
            router: None,
            dns: Vec::new(),
            domain: None,
            lease_time: Duration::from_secs(3600),
        }
    }

    /// Whether `address` is in this pool's subnet.
    pub fn in_subnet(&self, address: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(address) & mask == u32::from(self.first) & mask
    }

    /// Whether `address` is in the range handed out dynamically.
    pub fn in_range(&self, address: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&address)
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first) | !u32::from(self.netmask))
    }

    fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.first)..=u32::from(self.last)).map(Ipv4Addr::from)
    }

    fn check(&self) -> Result<(), &'static str> {
        let mask = u32::from(self.netmask);
        if mask.leading_ones() + mask.trailing_zeros() != 32 || mask == 0 {
            return Err("netmask is not contiguous");
        }
        if self.first > self.last {
            return Err("first address is after the last");
        }
        if !self.in_subnet(self.last) {
            return Err("first and last address are in different subnets");
        }
        if self.lease_time < Duration::from_secs(1) {
            return Err("lease time is under one second");
        }
        Ok(())
    }
}

/// What the responder serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    pub mode: Mode,
    /// Our address: the server identifier (option 54).
    pub server_ip: Ipv4Addr,
    /// `siaddr` when no `server-ip-address` line applies; default `server_ip`.
    pub tftp_server: Option<Ipv4Addr>,
    /// Answer MACs without a host line (pool address and config options).
    pub discovery: bool,
    /// Option lines for every client, below those from option files.
    pub options: Vec<OptionLine>,
    /// How long an offered address is held for the client.
    pub offer_hold: Duration,
    /// How long a declined address is set aside.
    pub decline_hold: Duration,
    /// Where relays listen (replies to giaddr go to this port).
    pub server_port: u16,
    /// Where clients listen (broadcast replies go to this port).
    pub client_port: u16,
    /// The PXE boot-server port (proxy mode REQUESTs arrive here).
    pub pxe_port: u16,
}

impl DhcpConfig {
    /// Full mode with defaults (ports 67/68/4011, 60 s offers, 10 min declines).
    pub fn full(server_ip: Ipv4Addr, pools: Vec<Pool>) -> DhcpConfig {
        DhcpConfig::with_mode(Mode::Full { pools }, server_ip)
    }

    /// Proxy mode with defaults.
    pub fn proxy(server_ip: Ipv4Addr) -> DhcpConfig {
        DhcpConfig::with_mode(Mode::Proxy, server_ip)
    }

    fn with_mode(mode: Mode, server_ip: Ipv4Addr) -> DhcpConfig {
        DhcpConfig {
            mode,
            server_ip,
            tftp_server: None,
            discovery: false,
            options: Vec::new(),
            offer_hold: Duration::from_secs(60),
            decline_hold: Duration::from_secs(600),
            server_port: 67,
            client_port: 68,
            pxe_port: 4011,
        }
    }
}

/// A configuration the responder refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("full mode needs at least one pool")]
    NoPools,
    #[error("pool {index} ({first}-{last}): {reason}")]
    BadPool {
        index: usize,
        first: Ipv4Addr,
        last: Ipv4Addr,
        reason: &'static str,
    },
    #[error("server address must not be 0.0.0.0")]
    NoServerAddress,
    #[error("config option line {index}: {error}")]
    BadOption { index: usize, error: LineError },
}

/// Where a datagram came in: the local port (67 or 4011) and the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub port: u16,
    pub source: SocketAddrV4,
}

/// A datagram to send and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub datagram: Vec<u8>,
    pub destination: SocketAddrV4,
}

#[derive(Debug, Clone, Copy)]
struct Offer {
    address: Ipv4Addr,
    until: SystemTime,
}

/// What handling a message came to.
enum Outcome {
    Send(ReplyBuilder, SocketAddrV4),
    /// Handled without a reply (DECLINE, RELEASE).
    Done,
    Ignore(String),
}

/// Answers DHCP messages. Owns the leases; see [`Responder::leases`].
#[derive(Debug)]
pub struct Responder {
    config: DhcpConfig,
    leases: Leases,
    offers: HashMap<MacAddr, Offer>,
    declined: HashMap<Ipv4Addr, SystemTime>,
    last_prune: Option<SystemTime>,
}

/// The tags for option 93 architecture types (RFC 4578 and IANA).
fn architecture_tag(arch: u16) -> Option<&'static str> {
    match arch {
        0 => Some("bios"),
        6 => Some("efi-ia32"),
        7 | 9 => Some("efi-x86_64"),
        11 => Some("efi-arm64"),
        16 => Some("efi-x86_64-http"),
        19 => Some("efi-arm64-http"),
        _ => None,
    }
}

/// The client a message is from: its request, host line and tags.
struct Asker<'a> {
    request: &'a Request,
    host: Option<&'a HostEntry>,
    tags: BTreeSet<String>,
    class: BootClass,
}

/// What the vendor class (option 60) says the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BootClass {
    Pxe,
    Http,
    Other,
}

impl<'a> Asker<'a> {
    fn new(request: &'a Request, host: Option<&'a HostEntry>) -> Asker<'a> {
        let mut tags = BTreeSet::new();
        if let Some(host) = host.filter(|h| !h.ignore) {
            tags.extend(host.tags.iter().cloned());
            tags.insert("known".to_string());
        }
        let user_class = request.option(OPT_USER_CLASS).unwrap_or_default();
        if request.option(OPT_IPXE_ENCAP).is_some()
            || user_class == b"iPXE"
            || user_class == b"\x04iPXE"
        {
            tags.insert("ipxe".to_string());
        }
        tags.extend(
            request
                .architectures()
                .into_iter()
                .filter_map(architecture_tag)
                .map(String::from),
        );
        let vendor = request.vendor_class().unwrap_or_default();
        let class = if vendor.starts_with(b"HTTPClient") {
            tags.insert("httpclient".to_string());
            BootClass::Http
        } else if vendor.starts_with(b"PXEClient") {
            tags.insert("pxe".to_string());
            BootClass::Pxe
        } else {
            BootClass::Other
        };
        Asker {
            request,
            host,
            tags,
            class,
        }
    }
}

/// The winning option line per option code for a client.
///
/// dnsmasq's precedence (`option_filter` in its dhcp-common.c): a line
/// with tag conditions, all holding, beats a line without any; between two
/// lines of the same kind the later one wins. Lines are taken in the order
/// config options, then option files by name, each file top to bottom -
/// the order dnsmasq reads its config file and then `--dhcp-optsdir`. The
/// number of conditions does not matter.
fn select_options<'a>(
    lines: impl Iterator<Item = &'a OptionLine>,
    tags: &BTreeSet<String>,
) -> BTreeMap<u8, &'a OptionLine> {
    let mut selected: BTreeMap<u8, &OptionLine> = BTreeMap::new();
    for line in lines.filter(|line| line.applies(tags)) {
        let wins = selected
            .get(&line.code)
            .is_none_or(|current| !line.tags.is_empty() || current.tags.is_empty());
        if wins {
            selected.insert(line.code, line);
        }
    }
    selected
}

/// Options the responder writes itself; option lines for them are not
/// sent as such.
fn is_managed_option(code: u8) -> bool {
    matches!(
        code,
        0 | OPT_SUBNET_MASK | OPT_ROUTER | OPT_DNS | OPT_HOSTNAME | OPT_DOMAIN | OPT_BROADCAST | 50
            ..=59
                | OPT_VENDOR_CLASS
                | OPT_CLIENT_ID
                | OPT_TFTP_SERVER
                | OPT_BOOTFILE
                | 81
                | OPT_RELAY_AGENT
                | SERVER_IP_ADDRESS
    )
}

/// Lease time as sent in option 51: `u32::MAX` is infinite.
fn lease_seconds(host: Option<&HostEntry>, pool: &Pool) -> u32 {
    match host.and_then(|h| h.lease_time) {
        Some(LeaseTime::Infinite) => u32::MAX,
        Some(LeaseTime::Seconds(s)) => s.max(1),
        None => u32::try_from(pool.lease_time.as_secs())
            .unwrap_or(u32::MAX - 1)
            .max(1),
    }
}

/// `now + duration`, saturating instead of panicking on overflow.
fn later(now: SystemTime, duration: Duration) -> SystemTime {
    let capped = duration.min(Duration::from_secs(100 * 365 * 86_400));
    now.checked_add(capped).unwrap_or(now)
}

fn broadcast_to(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::BROADCAST, port)
}

impl Responder {
    /// Checks the config and takes the leases loaded at start.
    pub fn new(config: DhcpConfig, leases: Leases) -> Result<Responder, ConfigError> {
        if config.server_ip.is_unspecified() {
            return Err(ConfigError::NoServerAddress);
        }
        if let Mode::Full { pools } = &config.mode {
            if pools.is_empty() {
                return Err(ConfigError::NoPools);
            }
            for (index, pool) in pools.iter().enumerate() {
                pool.check().map_err(|reason| ConfigError::BadPool {
                    index,
                    first: pool.first,
                    last: pool.last,
                    reason,
                })?;
            }
        }
        for (index, line) in config.options.iter().enumerate() {
            OptionLine::new(line.tags.clone(), line.code, &line.value)
                .map_err(|error| ConfigError::BadOption { index, error })?;
        }
        Ok(Responder {
            config,
            leases,
            offers: HashMap::new(),
            declined: HashMap::new(),
            last_prune: None,
        })
    }

    /// Replaces the lease table (the server loads the lease file with it).
    pub fn load_leases(&mut self, leases: Leases) {
        self.leases = leases;
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.config
    }

    /// The lease table. [`Leases::generation`] changes when it does, which
    /// is the cue to persist it.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Handles one datagram. `Err` for datagrams that are not a DHCP
    /// request from an Ethernet client (drop them); `Ok(None)` when the
    /// message needs no answer or is not ours to answer (traced with why).
    pub fn handle(
        &mut self,
        datagram: &[u8],
        arrival: Arrival,
        hosts: &HostTable,
        now: SystemTime,
        trace: &dyn TraceSink,
    ) -> Result<Option<Reply>, DhcpError> {
        let request = Request::parse(datagram)?;
        self.prune(now);
        let mut events = vec![EventKind::DhcpReceived {
            message: message_name(request.message).to_string(),
            port: arrival.port,
        }];
        let asker = Asker::new(&request, hosts.host(request.mac));
        let outcome = match self.config.mode {
            Mode::Full { .. } => self.handle_full(&asker, arrival, hosts, now, &mut events),
            Mode::Proxy => self.handle_proxy(&asker, arrival, hosts),
        };
        let reply = match outcome {
            Outcome::Send(builder, destination) => {
                let datagram = builder.encode()?;
                events.push(EventKind::DhcpSent {
                    message: message_name(builder.message).to_string(),
                    address: Some(builder.yiaddr).filter(|a| !a.is_unspecified()),
                    options: builder.rendered(),
                });
                Some(Reply {
                    datagram,
                    destination,
                })
            }
            Outcome::Done => None,
            Outcome::Ignore(reason) => {
                tracing::debug!(mac = %request.mac, %reason, "DHCP message ignored");
                events.push(EventKind::DhcpIgnored { reason });
                None
            }
        };
        for kind in events {
            trace.record(Event {
                at: now,
                client: Client::Mac(request.mac),
                kind,
            });
        }
        Ok(reply)
    }

    fn prune(&mut self, now: SystemTime) {
        let due = self.last_prune.is_none_or(|last| {
            now.duration_since(last).unwrap_or_default() >= Duration::from_secs(10)
        });
        if due {
            self.offers.retain(|_, offer| offer.until > now);
            self.declined.retain(|_, until| *until > now);
            self.last_prune = Some(now);
        }
    }

    /// Whether the client may be answered: a host line that is not
    /// `ignore`, or no host line with discovery on. Like dnsmasq, `ignore`
    /// is final: discovery does not override it.
    fn admit(&self, asker: &Asker<'_>) -> Result<(), String> {
        match asker.host {
            Some(host) if host.ignore => Err("host line says ignore".to_string()),
            Some(_) => Ok(()),
            None if self.config.discovery => Ok(()),
            None => Err("unknown MAC (no host line) and discovery is off".to_string()),
        }
    }

    fn options_for<'h>(
        &'h self,
        hosts: &'h HostTable,
        tags: &BTreeSet<String>,
    ) -> BTreeMap<u8, &'h OptionLine> {
        select_options(self.config.options.iter().chain(hosts.option_lines()), tags)
    }

    // ----- full mode -----

    fn handle_full(
        &mut self,
        asker: &Asker<'_>,
        arrival: Arrival,
        hosts: &HostTable,
        now: SystemTime,
        events: &mut Vec<EventKind>,
    ) -> Outcome {
        if arrival.port == self.config.pxe_port {
            return Outcome::Ignore("full mode does not serve the PXE port".to_string());
        }
        if let Err(reason) = self.admit(asker) {
            return Outcome::Ignore(reason);
        }
        let pool = match self.pool_for(asker.request) {
            Ok(pool) => pool,
            Err(reason) => return Outcome::Ignore(reason),
        };
        match asker.request.message {
            MessageType::Discover => self.discover(asker, &pool, hosts, now),
            MessageType::Request => self.request(asker, &pool, hosts, now, events),
            MessageType::Decline => self.decline(asker, now, events),
            MessageType::Release => self.release(asker, now, events),
            _ => self.inform(asker, &pool, hosts),
        }
    }

    /// The pool for a request: by relay address, else by client address
    /// (renewals come unicast without relay), else the first.
    fn pool_for(&self, request: &Request) -> Result<Pool, String> {
        let Mode::Full { pools } = &self.config.mode else {
            return Err("no pools in proxy mode".to_string());
        };
        if !request.giaddr.is_unspecified() {
            return pools
                .iter()
                .find(|p| p.in_subnet(request.giaddr))
                .cloned()
                .ok_or_else(|| {
                    format!("no pool for the subnet of relay address {}", request.giaddr)
                });
        }
        let by_client = pools.iter().find(|p| p.in_subnet(request.ciaddr));
        by_client
            .or(pools.first())
            .cloned()
            .ok_or_else(|| "no pools".to_string())
    }

    fn discover(
        &mut self,
        asker: &Asker<'_>,
        pool: &Pool,
        hosts: &HostTable,
        now: SystemTime,
    ) -> Outcome {
        let address = match self.choose_address(asker, pool, hosts, now) {
            Ok(address) => address,
            Err(reason) => return Outcome::Ignore(reason),
        };
        let until = later(now, self.config.offer_hold);
        self.offers
            .insert(asker.request.mac, Offer { address, until });
        let reply = self.address_reply(asker, pool, hosts, MessageType::Offer, Some(address));
        let destination = self.client_destination(asker.request);
        Outcome::Send(reply, destination)
    }

    fn request(
        &mut self,
        asker: &Asker<'_>,
        pool: &Pool,
        hosts: &HostTable,
        now: SystemTime,
        events: &mut Vec<EventKind>,
    ) -> Outcome {
        let request = asker.request;
        let mac = request.mac;
        let server_ip = self.config.server_ip;
        let wanted = match (request.server_id(), request.requested_ip()) {
            (Some(server), _) if server != server_ip => {
                self.offers.remove(&mac);
                return Outcome::Ignore(format!("client selected server {server}"));
            }
            // SELECTING: the address we offered (or one still free for it).
            (Some(_), requested) => {
                match requested.or(Some(request.ciaddr).filter(|a| !a.is_unspecified())) {
                    Some(address) => address,
                    None => return Outcome::Ignore("REQUEST names us but no address".to_string()),
                }
            }
            // INIT-REBOOT: the client's remembered address.
            (None, Some(address)) if request.ciaddr.is_unspecified() => {
                if !pool.in_subnet(address) {
                    return self.nak(asker, "requested address is on the wrong network");
                }
                if self.record_for(mac, asker.host, now).is_none() {
                    return self.unrecorded(asker, address, hosts, "INIT-REBOOT");
                }
                address
            }
            // RENEWING / REBINDING: the client's current address.
            (None, _) if !request.ciaddr.is_unspecified() => {
                if self.record_for(mac, asker.host, now).is_none() {
                    return self.unrecorded(asker, request.ciaddr, hosts, "renewal");
                }
                request.ciaddr
            }
            (None, _) => {
                return Outcome::Ignore(
                    "REQUEST without server id, requested address or ciaddr".to_string(),
                )
            }
        };
        let remembered = self.record_for(mac, asker.host, now);
        if remembered.is_some_and(|r| r != wanted) && request.server_id().is_none() {
            return self.nak(asker, "requested address is not the client's");
        }
        if !self.acceptable(asker, pool, wanted, hosts, now) {
            return self.nak(asker, "requested address is not available to this client");
        }
        self.bind(asker, pool, wanted, now, events);
        let reply = self.address_reply(asker, pool, hosts, MessageType::Ack, Some(wanted));
        let destination = self.client_destination(request);
        Outcome::Send(reply, destination)
    }

    /// A client we have no record of asks for `address`: RFC 2131 wants
    /// silence, unless we know the address is someone else's.
    fn unrecorded(
        &self,
        asker: &Asker<'_>,
        address: Ipv4Addr,
        hosts: &HostTable,
        what: &str,
    ) -> Outcome {
        let mac = asker.request.mac;
        let others = self.leases.mac_of(address).is_some_and(|m| m != mac)
            || hosts.fixed_owner(address).is_some_and(|m| m != mac);
        if others {
            self.nak(asker, "requested address belongs to another client")
        } else {
            Outcome::Ignore(format!("{what} from a client we have no record of"))
        }
    }

    fn bind(
        &mut self,
        asker: &Asker<'_>,
        pool: &Pool,
        address: Ipv4Addr,
        now: SystemTime,
        events: &mut Vec<EventKind>,
    ) {
        let seconds = lease_seconds(asker.host, pool);
        let expires =
            (seconds != u32::MAX).then(|| later(now, Duration::from_secs(u64::from(seconds))));
        let hostname = asker
            .host
            .and_then(|h| h.hostname.clone())
            .or_else(|| asker.request.hostname());
        let mac = asker.request.mac;
        if let Some(previous) = self.leases.lease_at(address).filter(|l| l.mac != mac) {
            events.push(EventKind::DhcpLease {
                address: previous.address,
                bound: false,
            });
        }
        self.leases.insert(Lease {
            mac,
            address,
            expires,
            hostname,
            client_id: asker.request.option(OPT_CLIENT_ID).map(<[u8]>::to_vec),
        });
        self.offers.remove(&mac);
        events.push(EventKind::DhcpLease {
            address,
            bound: true,
        });
    }

    fn nak(&self, asker: &Asker<'_>, why: &str) -> Outcome {
        let request = asker.request;
        let mut reply = ReplyBuilder::new(request, MessageType::Nak);
        reply.ciaddr = Ipv4Addr::UNSPECIFIED;
        reply.push(OPT_SERVER_ID, self.config.server_ip.octets().to_vec());
        reply.push(OPT_MESSAGE, why.as_bytes().to_vec());
        reply.echo_client_and_relay(request);
        let destination = if request.giaddr.is_unspecified() {
            broadcast_to(self.config.client_port)
        } else {
            reply.broadcast = true;
            SocketAddrV4::new(request.giaddr, self.config.server_port)
        };
        Outcome::Send(reply, destination)
    }

    fn decline(
        &mut self,
        asker: &Asker<'_>,
        now: SystemTime,
        events: &mut Vec<EventKind>,
    ) -> Outcome {
        let request = asker.request;
        if request
            .server_id()
            .is_some_and(|s| s != self.config.server_ip)
        {
            return Outcome::Ignore("DECLINE for another server".to_string());
        }
        let Some(address) = request.requested_ip() else {
            return Outcome::Ignore("DECLINE without the declined address".to_string());
        };
        let ours = self.leases.address_of(request.mac) == Some(address)
            || self
                .offers
                .get(&request.mac)
                .is_some_and(|o| o.address == address);
        if !ours {
            return Outcome::Ignore(format!("DECLINE of {address}, which is not this client's"));
        }
        tracing::warn!(mac = %request.mac, %address, "client declined address (in use?); setting it aside");
        if self.leases.address_of(request.mac) == Some(address) {
            self.leases.remove(request.mac);
            events.push(EventKind::DhcpLease {
                address,
                bound: false,
            });
        }
        self.offers.remove(&request.mac);
        self.declined
            .insert(address, later(now, self.config.decline_hold));
        Outcome::Done
    }

    fn release(
        &mut self,
        asker: &Asker<'_>,
        now: SystemTime,
        events: &mut Vec<EventKind>,
    ) -> Outcome {
        let request = asker.request;
        if request
            .server_id()
            .is_some_and(|s| s != self.config.server_ip)
        {
            return Outcome::Ignore("RELEASE for another server".to_string());
        }
        if self.leases.address_of(request.mac) != Some(request.ciaddr) {
            return Outcome::Ignore(format!(
                "RELEASE of {}, which is not leased to this client",
                request.ciaddr
            ));
        }
        // Kept, expired, so the client gets the same address back.
        self.leases.expire(request.mac, now);
        events.push(EventKind::DhcpLease {
            address: request.ciaddr,
            bound: false,
        });
        Outcome::Done
    }

    fn inform(&self, asker: &Asker<'_>, pool: &Pool, hosts: &HostTable) -> Outcome {
        let request = asker.request;
        let reply = self.address_reply(asker, pool, hosts, MessageType::Ack, None);
        let destination = if !request.giaddr.is_unspecified() {
            SocketAddrV4::new(request.giaddr, self.config.server_port)
        } else if !request.ciaddr.is_unspecified() {
            SocketAddrV4::new(request.ciaddr, self.config.client_port)
        } else {
            broadcast_to(self.config.client_port)
        };
        Outcome::Send(reply, destination)
    }

    /// Relay, then the client's own address, then broadcast.
    fn client_destination(&self, request: &Request) -> SocketAddrV4 {
        if !request.giaddr.is_unspecified() {
            SocketAddrV4::new(request.giaddr, self.config.server_port)
        } else if !request.ciaddr.is_unspecified() {
            SocketAddrV4::new(request.ciaddr, self.config.client_port)
        } else {
            broadcast_to(self.config.client_port)
        }
    }

    /// The address we hold for this client: fixed, leased or offered.
    fn record_for(
        &self,
        mac: MacAddr,
        host: Option<&HostEntry>,
        now: SystemTime,
    ) -> Option<Ipv4Addr> {
        host.and_then(|h| h.address)
            .or_else(|| self.leases.address_of(mac))
            .or_else(|| {
                self.offers
                    .get(&mac)
                    .filter(|o| o.until > now)
                    .map(|o| o.address)
            })
    }

    fn is_declined(&self, address: Ipv4Addr, now: SystemTime) -> bool {
        self.declined
            .get(&address)
            .is_some_and(|until| *until > now)
    }

    fn offered_to_other(&self, address: Ipv4Addr, mac: MacAddr, now: SystemTime) -> bool {
        // Linear in the outstanding offers; they are few and short-lived.
        self.offers
            .iter()
            .any(|(other, offer)| *other != mac && offer.address == address && offer.until > now)
    }

    /// Whether `address` may be bound to the asking client now.
    fn acceptable(
        &self,
        asker: &Asker<'_>,
        pool: &Pool,
        address: Ipv4Addr,
        hosts: &HostTable,
        now: SystemTime,
    ) -> bool {
        let mac = asker.request.mac;
        if let Some(fixed) = asker.host.and_then(|h| h.address) {
            return address == fixed && pool.in_subnet(fixed);
        }
        let leased_to_other = self
            .leases
            .lease_at(address)
            .is_some_and(|l| l.mac != mac && l.is_active(now));
        pool.in_range(address)
            && address != self.config.server_ip
            && pool.router != Some(address)
            && hosts.fixed_owner(address).is_none_or(|owner| owner == mac)
            && !self.is_declined(address, now)
            && !leased_to_other
            && !self.offered_to_other(address, mac, now)
    }

    /// Whether `address` is free for a client that did not hold it: no
    /// lease at all (expired ones are someone's sticky address).
    fn is_unclaimed(
        &self,
        asker: &Asker<'_>,
        pool: &Pool,
        address: Ipv4Addr,
        hosts: &HostTable,
        now: SystemTime,
    ) -> bool {
        self.leases
            .lease_at(address)
            .is_none_or(|l| l.mac == asker.request.mac)
            && self.acceptable(asker, pool, address, hosts, now)
    }

    /// Fixed address, else the sticky one (offered or leased, also
    /// expired), else the requested one, else a never-leased one, else the
    /// longest-expired lease of another client.
    fn choose_address(
        &self,
        asker: &Asker<'_>,
        pool: &Pool,
        hosts: &HostTable,
        now: SystemTime,
    ) -> Result<Ipv4Addr, String> {
        let mac = asker.request.mac;
        if let Some(fixed) = asker.host.and_then(|h| h.address) {
            if !pool.in_subnet(fixed) {
                return Err(format!("fixed address {fixed} is not in the pool's subnet"));
            }
            if self.is_declined(fixed, now) {
                return Err(format!("fixed address {fixed} was declined recently"));
            }
            return Ok(fixed);
        }
        let offered = self
            .offers
            .get(&mac)
            .filter(|o| o.until > now)
            .map(|o| o.address);
        let sticky = offered.into_iter().chain(self.leases.address_of(mac));
        let mut candidates = sticky.chain(asker.request.requested_ip());
        if let Some(address) = candidates.find(|a| self.is_unclaimed(asker, pool, *a, hosts, now)) {
            return Ok(address);
        }
        if let Some(address) = pool
            .addresses()
            .find(|a| self.is_unclaimed(asker, pool, *a, hosts, now))
        {
            return Ok(address);
        }
        self.oldest_expired(asker, pool, hosts, now)
            .ok_or_else(|| format!("pool {}-{} is exhausted", pool.first, pool.last))
    }

    fn oldest_expired(
        &self,
        asker: &Asker<'_>,
        pool: &Pool,
        hosts: &HostTable,
        now: SystemTime,
    ) -> Option<Ipv4Addr> {
        self.leases
            .iter()
            .filter(|l| !l.is_active(now) && pool.in_range(l.address))
            .filter(|l| self.acceptable(asker, pool, l.address, hosts, now))
            .min_by_key(|l| (l.expires, l.address))
            .map(|l| l.address)
    }

    /// OFFER or ACK (with `address`) or INFORM's ACK (without).
    fn address_reply(
        &self,
        asker: &Asker<'_>,
        pool: &Pool,
        hosts: &HostTable,
        message: MessageType,
        address: Option<Ipv4Addr>,
    ) -> ReplyBuilder {
        let request = asker.request;
        let selected = self.options_for(hosts, &asker.tags);
        let mut reply = ReplyBuilder::new(request, message);
        reply.push(OPT_SERVER_ID, self.config.server_ip.octets().to_vec());
        if let Some(address) = address {
            reply.yiaddr = address;
            reply.ciaddr = request.ciaddr;
            self.push_lease_times(&mut reply, asker.host, pool, &selected);
        }
        self.push_network_options(&mut reply, asker, pool, &selected);
        self.apply_boot(&mut reply, asker, &selected);
        self.push_vendor_class(&mut reply, asker, &selected);
        self.push_requested_lines(&mut reply, request, &selected);
        reply.echo_client_and_relay(request);
        reply
    }

    fn push_lease_times(
        &self,
        reply: &mut ReplyBuilder,
        host: Option<&HostEntry>,
        pool: &Pool,
        selected: &BTreeMap<u8, &OptionLine>,
    ) {
        let lease = lease_seconds(host, pool);
        reply.push(OPT_LEASE_TIME, lease.to_be_bytes().to_vec());
        if lease == u32::MAX {
            return;
        }
        let configured = |code: u8| {
            let bytes: [u8; 4] = selected
                .get(&code)?
                .encode(self.config.server_ip)
                .ok()?
                .try_into()
                .ok()?;
            Some(u32::from_be_bytes(bytes)).filter(|t| *t > 2 && *t < lease)
        };
        let renewal = configured(OPT_RENEWAL).unwrap_or(lease / 2);
        let rebinding = configured(OPT_REBINDING)
            .unwrap_or(lease / 8 * 7)
            .max(renewal);
        reply.push(OPT_RENEWAL, renewal.to_be_bytes().to_vec());
        reply.push(OPT_REBINDING, rebinding.to_be_bytes().to_vec());
    }

    /// 1, 28, 3, 6, 15 from the pool, an option line overriding (an empty
    /// line suppressing, as in dnsmasq); 12 when asked for.
    fn push_network_options(
        &self,
        reply: &mut ReplyBuilder,
        asker: &Asker<'_>,
        pool: &Pool,
        selected: &BTreeMap<u8, &OptionLine>,
    ) {
        let server_ip = self.config.server_ip;
        let line = |code: u8| selected.get(&code).and_then(|l| l.encode(server_ip).ok());
        let addresses =
            |list: &[Ipv4Addr]| list.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let defaults = [
            (OPT_SUBNET_MASK, pool.netmask.octets().to_vec()),
            (OPT_BROADCAST, pool.broadcast().octets().to_vec()),
            (
                OPT_ROUTER,
                pool.router.map(|r| r.octets().to_vec()).unwrap_or_default(),
            ),
            (OPT_DNS, addresses(&pool.dns)),
            (
                OPT_DOMAIN,
                pool.domain.clone().unwrap_or_default().into_bytes(),
            ),
        ];
        for (code, default) in defaults {
            let value = line(code).unwrap_or(default);
            if !value.is_empty() {
                reply.push(code, value);
            }
        }
        let hostname = line(OPT_HOSTNAME).or_else(|| {
            asker
                .host
                .and_then(|h| h.hostname.clone())
                .map(String::into_bytes)
        });
        if let Some(name) =
            hostname.filter(|n| !n.is_empty() && asker.request.asked_for(OPT_HOSTNAME))
        {
            reply.push(OPT_HOSTNAME, name);
        }
    }

    /// Other option lines, sent when the client asked for them (dnsmasq
    /// does not force options).
    fn push_requested_lines(
        &self,
        reply: &mut ReplyBuilder,
        request: &Request,
        selected: &BTreeMap<u8, &OptionLine>,
    ) {
        for (code, line) in selected {
            if is_managed_option(*code) || reply.has(*code) || !request.asked_for(*code) {
                continue;
            }
            match line.encode(self.config.server_ip) {
                Ok(data) if !data.is_empty() => reply.push(*code, data),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "option line does not encode; not sent"),
            }
        }
    }

    /// siaddr, `file`/67 and `sname`/66.
    fn apply_boot(
        &self,
        reply: &mut ReplyBuilder,
        asker: &Asker<'_>,
        selected: &BTreeMap<u8, &OptionLine>,
    ) {
        let server_ip = self.config.server_ip;
        let request = asker.request;
        let line = |code: u8| selected.get(&code).and_then(|l| l.encode(server_ip).ok());
        let next_server = line(SERVER_IP_ADDRESS)
            .and_then(|b| <[u8; 4]>::try_from(b.get(..4)?).ok())
            .map(Ipv4Addr::from)
            .or(self.config.tftp_server)
            .unwrap_or(server_ip);
        reply.siaddr = next_server;
        let file = line(OPT_BOOTFILE).filter(|f| !f.is_empty());
        if let Some(file) = &file {
            if file.len() <= FILE_FIELD_MAX {
                reply.file = Some(file.clone());
            }
            if request.asked_for(OPT_BOOTFILE) || file.len() > FILE_FIELD_MAX {
                reply.push(OPT_BOOTFILE, file.clone());
            }
        }
        match line(OPT_TFTP_SERVER).filter(|n| !n.is_empty()) {
            Some(name) if request.asked_for(OPT_TFTP_SERVER) => reply.push(OPT_TFTP_SERVER, name),
            Some(name) => reply.sname = Some(name).filter(|n| n.len() <= SNAME_FIELD_MAX),
            None if file.is_some() && request.asked_for(OPT_TFTP_SERVER) => {
                reply.push(OPT_TFTP_SERVER, next_server.to_string().into_bytes())
            }
            None => {}
        }
    }

    /// Full mode's option 60: `HTTPClient` for HTTP boot clients (UEFI
    /// HTTP boot requires it), else an option line's value when asked for.
    fn push_vendor_class(
        &self,
        reply: &mut ReplyBuilder,
        asker: &Asker<'_>,
        selected: &BTreeMap<u8, &OptionLine>,
    ) {
        if asker.class == BootClass::Http {
            reply.push(OPT_VENDOR_CLASS, b"HTTPClient".to_vec());
            return;
        }
        let line = selected
            .get(&OPT_VENDOR_CLASS)
            .and_then(|l| l.encode(self.config.server_ip).ok());
        if let Some(vendor) =
            line.filter(|v| !v.is_empty() && asker.request.asked_for(OPT_VENDOR_CLASS))
        {
            reply.push(OPT_VENDOR_CLASS, vendor);
        }
    }

    // ----- proxy mode -----

    fn handle_proxy(&self, asker: &Asker<'_>, arrival: Arrival, hosts: &HostTable) -> Outcome {
        let request = asker.request;
        let on_pxe_port = arrival.port == self.config.pxe_port;
        let kind = message_name(request.message);
        let answer = match (request.message, on_pxe_port) {
            (MessageType::Discover, false) => MessageType::Offer,
            (MessageType::Request | MessageType::Inform, true) => MessageType::Ack,
            (_, false) => {
                return Outcome::Ignore(format!(
                    "proxy mode: {kind} on port {} is the address server's",
                    arrival.port
                ))
            }
            (_, true) => {
                return Outcome::Ignore(format!(
                    "proxy mode: {kind} is not answered on the PXE port"
                ))
            }
        };
        if asker.class == BootClass::Other {
            return Outcome::Ignore(
                "proxy mode: not a PXE or HTTP boot client (vendor class)".to_string(),
            );
        }
        if let Err(reason) = self.admit(asker) {
            return Outcome::Ignore(reason);
        }
        let selected = self.options_for(hosts, &asker.tags);
        if selected
            .get(&OPT_BOOTFILE)
            .is_none_or(|l| l.value.is_empty())
        {
            return Outcome::Ignore("proxy mode: no boot file for this client".to_string());
        }
        let reply = self.proxy_reply(asker, answer, &selected);
        let destination = if answer == MessageType::Ack {
            self.pxe_port_destination(arrival)
        } else if !request.giaddr.is_unspecified() {
            SocketAddrV4::new(request.giaddr, self.config.server_port)
        } else {
            broadcast_to(self.config.client_port)
        };
        Outcome::Send(reply, destination)
    }

    fn pxe_port_destination(&self, arrival: Arrival) -> SocketAddrV4 {
        if arrival.source.ip().is_unspecified() {
            broadcast_to(arrival.source.port())
        } else {
            arrival.source
        }
    }

    /// No address; 54, 60 and the boot fields; for PXE, option 43 with
    /// discovery control 8 ("boot the file in this packet, no menu or
    /// boot-server discovery") as dnsmasq sends without `pxe-service`.
    fn proxy_reply(
        &self,
        asker: &Asker<'_>,
        message: MessageType,
        selected: &BTreeMap<u8, &OptionLine>,
    ) -> ReplyBuilder {
        let request = asker.request;
        let mut reply = ReplyBuilder::new(request, message);
        if message == MessageType::Offer {
            reply.ciaddr = Ipv4Addr::UNSPECIFIED;
            reply.broadcast = true;
        }
        reply.push(OPT_SERVER_ID, self.config.server_ip.octets().to_vec());
        let vendor: &[u8] = if asker.class == BootClass::Http {
            b"HTTPClient"
        } else {
            b"PXEClient"
        };
        reply.push(OPT_VENDOR_CLASS, vendor.to_vec());
        if let Some(uuid) = request.option(OPT_CLIENT_UUID) {
            reply.push(OPT_CLIENT_UUID, uuid.to_vec());
        }
        if asker.class == BootClass::Pxe {
            reply.push(OPT_VENDOR_OPTS, pxe_vendor_options(request.pxe_boot_item()));
        }
        self.apply_boot(&mut reply, asker, selected);
        reply.echo_client_and_relay(request);
        reply
    }
}

/// PXE option 43: discovery control 8, an empty prompt, the boot item
/// echoed on port 4011, then the end marker.
fn pxe_vendor_options(boot_item: Option<Vec<u8>>) -> Vec<u8> {
    let mut data = vec![6, 1, 8, 10, 4, 0, b'P', b'X', b'E'];
    if let Some(item) = boot_item.filter(|i| i.len() == 4) {
        data.push(71);
        data.push(4);
        data.extend_from_slice(&item);
    }
    data.push(255);
    data
}

#[cfg(test)]
#[path = "responder_tests.rs"]
mod tests;
