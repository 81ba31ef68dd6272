//! Boot trace events: what a network-boot service did for one client.
//!
//! Services report through a [`TraceSink`]; the server keeps the last
//! events per MAC address. TFTP and HTTP see only the client's IP address,
//! so they report by address and the sink maps it to a MAC through the
//! DHCP leases it has seen.

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

/// A MAC address, as six bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (also with `-` separators), any case.
    pub fn parse(text: &str) -> Option<MacAddr> {
        let mut bytes = [0u8; 6];
        let mut parts = text.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next()?;
            if part.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(MacAddr(bytes))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Who an event is about: DHCP knows the MAC, TFTP and HTTP the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Mac(MacAddr),
    Address(IpAddr),
}

/// One thing a service did, or refused to do, for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A DHCP message came in (DISCOVER, REQUEST, INFORM, ...).
    DhcpReceived { message: String, port: u16 },
    /// A DHCP reply went out (OFFER, ACK, NAK), with the address given
    /// (none in proxy mode) and the options sent, rendered as
    /// `number=value` text.
    DhcpSent {
        message: String,
        address: Option<Ipv4Addr>,
        options: Vec<String>,
    },
    /// A DHCP message was not answered, and why.
    DhcpIgnored { reason: String },
    /// A DHCP lease was bound or released.
    DhcpLease { address: Ipv4Addr, bound: bool },
    /// A file was served completely.
    FileServed {
        protocol: &'static str,
        path: String,
        bytes: u64,
    },
    /// A client asked a file's size (TFTP tsize) and ended the transfer
    /// before any data, as UEFI firmware does before the real download.
    FileSizeAsked {
        protocol: &'static str,
        path: String,
        size: u64,
    },
    /// A file request failed, with the bytes sent before it did.
    FileFailed {
        protocol: &'static str,
        path: String,
        bytes: u64,
        error: String,
    },
}

/// An event with its time and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: SystemTime,
    pub client: Client,
    pub kind: EventKind,
}

/// Where services report. Implementations must not block: they are called
/// from the services' packet loops.
pub trait TraceSink: Send + Sync {
    fn record(&self, event: Event);
}

/// A sink that drops everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTrace;

impl TraceSink for NoTrace {
    fn record(&self, _event: Event) {}
}

/// The last events per client MAC, bounded in clients and in events per
/// client, with the address each MAC was last given so that events reported
/// by address land on their MAC.
#[derive(Debug)]
pub struct Recorder {
    inner: std::sync::Mutex<Book>,
    per_client: usize,
    clients: usize,
}

#[derive(Debug, Default)]
struct Book {
    /// Each MAC's events, and when it was last touched (a counter, to
    /// evict the least recently touched when full).
    by_mac: std::collections::HashMap<MacAddr, (u64, std::collections::VecDeque<Event>)>,
    clock: u64,
    mac_of: std::collections::HashMap<IpAddr, MacAddr>,
    /// Events from addresses no DHCP exchange explained.
    unknown: std::collections::VecDeque<Event>,
}

impl Recorder {
    /// Keeps `per_client` events for each of at most `clients` MACs.
    pub fn new(clients: usize, per_client: usize) -> Recorder {
        Recorder {
            inner: std::sync::Mutex::new(Book::default()),
            per_client: per_client.max(1),
            clients: clients.max(1),
        }
    }

    /// Tells the recorder that `address` belongs to `mac` (a lease it did
    /// not see being given, e.g. from another DHCP server's lease file).
    pub fn learn_address(&self, address: IpAddr, mac: MacAddr) {
        self.book().mac_of.insert(address, mac);
    }

    /// The events of `mac`, oldest first.
    pub fn events_of(&self, mac: MacAddr) -> Vec<Event> {
        self.book()
            .by_mac
            .get(&mac)
            .map(|(_, events)| events.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Events from addresses with no known MAC, oldest first.
    pub fn unattributed(&self) -> Vec<Event> {
        self.book().unknown.iter().cloned().collect()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn file(&self, book: &mut Book, mac: MacAddr, event: Event) {
        if !book.by_mac.contains_key(&mac) && book.by_mac.len() >= self.clients {
            evict_oldest(book);
        }
        book.clock += 1;
        let now = book.clock;
        let (touched, events) = book.by_mac.entry(mac).or_default();
        *touched = now;
        if events.len() >= self.per_client {
            events.pop_front();
        }
        events.push_back(event);
    }
}

/// Only when the book is full: a scan, not work on every event.
fn evict_oldest(book: &mut Book) {
    let oldest = book
        .by_mac
        .iter()
        .min_by_key(|(_, (touched, _))| *touched)
        .map(|(mac, _)| *mac);
    if let Some(oldest) = oldest {
        book.by_mac.remove(&oldest);
        book.mac_of.retain(|_, mac| *mac != oldest);
    }
}

impl TraceSink for Recorder {
    fn record(&self, event: Event) {
        log_event(&event);
        let mut book = self.book();
        let mac = match event.client {
            Client::Mac(mac) => {
                if let EventKind::DhcpSent {
                    address: Some(address),
                    ..
                } = &event.kind
                {
                    book.mac_of.insert(IpAddr::V4(*address), mac);
                }
                Some(mac)
            }
            Client::Address(address) => book.mac_of.get(&address).copied(),
        };
        match mac {
            Some(mac) => self.file(&mut book, mac, event),
            None => {
                if book.unknown.len() >= self.per_client {
                    book.unknown.pop_front();
                }
                book.unknown.push_back(event);
            }
        }
    }
}

fn log_event(event: &Event) {
    let client = match event.client {
        Client::Mac(mac) => mac.to_string(),
        Client::Address(address) => address.to_string(),
    };
    match &event.kind {
        EventKind::DhcpIgnored { .. } | EventKind::FileFailed { .. } => {
            tracing::info!(client = %client, "boot: {}", describe(&event.kind));
        }
        _ => tracing::debug!(client = %client, "boot: {}", describe(&event.kind)),
    }
}

/// One line saying what happened, for logs and `ferric boot trace`.
pub fn describe(kind: &EventKind) -> String {
    match kind {
        EventKind::DhcpReceived { message, port } => {
            format!("DHCP {message} received on port {port}")
        }
        EventKind::DhcpSent {
            message,
            address,
            options,
        } => {
            let address = address.map(|a| format!(" of {a}")).unwrap_or_default();
            format!("DHCP {message}{address} sent with {}", options.join(" "))
        }
        EventKind::DhcpIgnored { reason } => format!("DHCP request ignored: {reason}"),
        EventKind::DhcpLease { address, bound } => {
            let what = if *bound { "bound" } else { "released" };
            format!("DHCP lease of {address} {what}")
        }
        EventKind::FileServed {
            protocol,
            path,
            bytes,
        } => format!("{protocol} {path} served, {bytes} bytes"),
        EventKind::FileSizeAsked {
            protocol,
            path,
            size,
        } => format!("{protocol} {path}: size asked ({size} bytes)"),
        EventKind::FileFailed {
            protocol,
            path,
            bytes,
            error,
        } => format!("{protocol} {path} failed after {bytes} bytes: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_both_separators_and_prints_lowercase() {
        let mac = MacAddr::parse("52:54:00:AB:cd:0f").expect("colons");
        assert_eq!(mac.to_string(), "52:54:00:ab:cd:0f");
        assert_eq!(MacAddr::parse("52-54-00-ab-cd-0f"), Some(mac));
    }

    #[test]
    fn mac_refuses_wrong_shapes() {
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:11",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
        ] {
            assert_eq!(MacAddr::parse(bad), None, "{bad}");
        }
    }

    fn served(client: Client, path: &str) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            client,
            kind: EventKind::FileServed {
                protocol: "tftp",
                path: path.into(),
                bytes: 1,
            },
        }
    }

    fn acked(mac: MacAddr, address: Ipv4Addr) -> Event {
        Event {
            at: SystemTime::UNIX_EPOCH,
            client: Client::Mac(mac),
            kind: EventKind::DhcpSent {
                message: "ACK".into(),
                address: Some(address),
                options: vec!["67=undionly.kpxe".into()],
            },
        }
    }

    #[test]
    fn file_events_land_on_the_mac_that_was_given_the_address() {
        let recorder = Recorder::new(10, 10);
        let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let ip = Ipv4Addr::new(10, 0, 0, 5);
        recorder.record(served(Client::Address(ip.into()), "before.kpxe"));
        recorder.record(acked(mac, ip));
        recorder.record(served(Client::Address(ip.into()), "undionly.kpxe"));
        let events = recorder.events_of(mac);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[1],
            served(Client::Address(ip.into()), "undionly.kpxe")
        );
        assert_eq!(
            recorder.unattributed().len(),
            1,
            "the event before the lease"
        );
    }

    #[test]
    fn keeps_only_the_last_events_and_the_most_recent_clients() {
        let recorder = Recorder::new(2, 3);
        let macs: Vec<MacAddr> = (1..=3).map(|i| MacAddr([2, 0, 0, 0, 0, i])).collect();
        for i in 0..5 {
            recorder.record(served(Client::Mac(macs[0]), &format!("f{i}")));
        }
        let kept: Vec<String> = recorder
            .events_of(macs[0])
            .iter()
            .map(|e| describe(&e.kind))
            .collect();
        assert_eq!(
            kept,
            [
                "tftp f2 served, 1 bytes",
                "tftp f3 served, 1 bytes",
                "tftp f4 served, 1 bytes"
            ]
        );
        recorder.record(served(Client::Mac(macs[1]), "a"));
        recorder.record(served(Client::Mac(macs[0]), "again"));
        recorder.record(served(Client::Mac(macs[2]), "b"));
        assert!(
            recorder.events_of(macs[1]).is_empty(),
            "least recently touched goes"
        );
        assert_eq!(recorder.events_of(macs[0]).len(), 3);
        assert_eq!(recorder.events_of(macs[2]).len(), 1);
    }
}
