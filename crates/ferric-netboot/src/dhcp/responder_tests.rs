use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use super::*;
use crate::dhcp::hosts::TagCond;
use crate::dhcp::wire::build::{ParsedReply, RequestBytes};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT_SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68);

#[derive(Default)]
struct Collect(Mutex<Vec<Event>>);

impl TraceSink for Collect {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    fn take(&self) -> Vec<EventKind> {
        self.0.lock().unwrap().drain(..).map(|e| e.kind).collect()
    }

    fn ignored_reason(&self) -> String {
        self.take()
            .into_iter()
            .find_map(|k| match k {
                EventKind::DhcpIgnored { reason } => Some(reason),
                _ => None,
            })
            .expect("an ignored event")
    }
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, n])
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn t(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

fn pool(first: u8, last: u8) -> Pool {
    Pool {
        router: Some(ip(1)),
        dns: vec![ip(2)],
        domain: Some("lab.example".into()),
        ..Pool::new(ip(first), ip(last), Ipv4Addr::new(255, 255, 255, 0))
    }
}

fn full(first: u8, last: u8) -> Responder {
    Responder::new(
        DhcpConfig::full(SERVER, vec![pool(first, last)]),
        Leases::new(),
    )
    .unwrap()
}

/// Host files for MACs 1..=n, tagged `node-N` and `ironic`, and an option
/// file giving each its own boot file, as Ironic writes them.
fn ironic_hosts(n: u8) -> HostTable {
    let hosts: Vec<(String, String)> = (1..=n)
        .map(|i| {
            (
                format!("ironic-{}.conf", mac(i)),
                format!("{},set:node-{i},set:ironic\n", mac(i)),
            )
        })
        .collect();
    let opts: Vec<(String, String)> = (1..=n)
        .map(|i| {
            (
                format!("ironic-uuid-{i}.conf"),
                format!("tag:node-{i},tag:!ipxe,67,snponly.efi\ntag:node-{i},tag:ipxe,67,http://10.0.0.1:8080/boot-{i}.ipxe\ntag:node-{i},66,10.0.0.1\ntag:node-{i},255,10.0.0.1\n"),
            )
        })
        .collect();
    HostTable::from_files(
        hosts.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        opts.iter().map(|(a, b)| (a.as_str(), b.as_str())),
    )
}

fn arrive(port: u16) -> Arrival {
    Arrival {
        port,
        source: CLIENT_SOURCE,
    }
}

fn send(
    r: &mut Responder,
    hosts: &HostTable,
    bytes: RequestBytes,
    now: SystemTime,
    trace: &Collect,
) -> Option<(ParsedReply, SocketAddrV4)> {
    send_on(r, hosts, bytes, arrive(67), now, trace)
}

fn send_on(
    r: &mut Responder,
    hosts: &HostTable,
    bytes: RequestBytes,
    arrival: Arrival,
    now: SystemTime,
    trace: &Collect,
) -> Option<(ParsedReply, SocketAddrV4)> {
    r.handle(&bytes.bytes(), arrival, hosts, now, trace)
        .expect("valid datagram")
        .map(|reply| (ParsedReply::parse(&reply.datagram), reply.destination))
}

fn discover(n: u8) -> RequestBytes {
    RequestBytes::new(MessageType::Discover, mac(n))
        .option(OPT_PARAMETER_LIST, &[1, 3, 6, 12, 15, 28, 66, 67])
}

fn select(n: u8, address: Ipv4Addr) -> RequestBytes {
    RequestBytes::new(MessageType::Request, mac(n))
        .option(OPT_SERVER_ID, &SERVER.octets())
        .option(OPT_REQUESTED_IP, &address.octets())
}

/// DISCOVER then REQUEST; the address bound.
fn lease_for(r: &mut Responder, hosts: &HostTable, n: u8, now: SystemTime) -> Ipv4Addr {
    let trace = Collect::default();
    let (offer, _) = send(r, hosts, discover(n), now, &trace).expect("offer");
    let (ack, _) = send(r, hosts, select(n, offer.yiaddr), now, &trace).expect("ack");
    assert_eq!(ack.message_type(), 5, "ACK");
    ack.yiaddr
}

fn u32_option(reply: &ParsedReply, code: u8) -> u32 {
    u32::from_be_bytes(reply.option(code).unwrap().try_into().unwrap())
}

// ----- message types -----

#[test]
fn discover_gets_an_offer_with_configured_options() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let (offer, destination) = send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    assert_eq!(offer.op, 2);
    assert_eq!(offer.message_type(), 2);
    assert_eq!(offer.yiaddr, ip(100));
    assert_eq!(offer.mac, mac(1).0);
    assert_eq!(destination, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert_eq!(offer.option(OPT_SERVER_ID), Some(&SERVER.octets()[..]));
    assert_eq!(u32_option(&offer, OPT_LEASE_TIME), 3600);
    assert_eq!(u32_option(&offer, OPT_RENEWAL), 1800);
    assert_eq!(u32_option(&offer, OPT_REBINDING), 3150);
    assert_eq!(offer.option(OPT_SUBNET_MASK), Some(&[255, 255, 255, 0][..]));
    assert_eq!(offer.option(OPT_ROUTER), Some(&ip(1).octets()[..]));
    assert_eq!(offer.option(OPT_DNS), Some(&ip(2).octets()[..]));
    assert_eq!(offer.option(OPT_DOMAIN), Some(&b"lab.example"[..]));
    assert_eq!(offer.option(OPT_BROADCAST), Some(&[10, 0, 0, 255][..]));
    assert_eq!(offer.file, "snponly.efi");
    assert_eq!(
        offer.option(OPT_BOOTFILE),
        Some(&b"snponly.efi"[..]),
        "asked for"
    );
    assert_eq!(offer.option(OPT_TFTP_SERVER), Some(&b"10.0.0.1"[..]));
    assert_eq!(offer.siaddr, ip(1));
    assert!(r.leases().is_empty(), "an offer is not a lease");
    let events = trace.take();
    assert_eq!(
        events[0],
        EventKind::DhcpReceived {
            message: "DISCOVER".into(),
            port: 67
        }
    );
    match &events[1] {
        EventKind::DhcpSent {
            message,
            address,
            options,
        } => {
            assert_eq!(message, "OFFER");
            assert_eq!(*address, Some(ip(100)));
            assert!(
                options.contains(&"67=snponly.efi".to_string()),
                "{options:?}"
            );
            assert!(options.contains(&"54=10.0.0.1".to_string()), "{options:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn selecting_request_gets_an_ack_and_binds_the_lease() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    trace.take();
    let before = r.leases().generation();
    let (ack, destination) = send(&mut r, &hosts, select(1, offer.yiaddr), t(1), &trace).unwrap();
    assert_eq!(ack.message_type(), 5);
    assert_eq!(ack.yiaddr, ip(100));
    assert_eq!(destination.ip(), &Ipv4Addr::BROADCAST);
    let lease = r.leases().lease(mac(1)).unwrap();
    assert_eq!(lease.address, ip(100));
    assert_eq!(lease.expires, Some(t(1) + Duration::from_secs(3600)));
    assert!(r.leases().generation() > before);
    let events = trace.take();
    assert!(events.contains(&EventKind::DhcpLease {
        address: ip(100),
        bound: true
    }));
}

#[test]
fn request_for_another_server_is_ignored_and_drops_our_offer() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    trace.take();
    let other = RequestBytes::new(MessageType::Request, mac(1))
        .option(OPT_SERVER_ID, &[10, 0, 0, 99])
        .option(OPT_REQUESTED_IP, &[10, 0, 0, 200]);
    assert!(send(&mut r, &hosts, other, t(1), &trace).is_none());
    assert!(trace.ignored_reason().contains("10.0.0.99"));
    assert!(r.offers.is_empty());
}

#[test]
fn selecting_an_address_taken_by_another_client_is_naked() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(2);
    let first = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let (nak, destination) = send(&mut r, &hosts, select(2, first), t(1), &trace).unwrap();
    assert_eq!(nak.message_type(), 6);
    assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(destination, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert_eq!(nak.codes(), vec![53, 54, 56]);
}

#[test]
fn init_reboot_acks_the_clients_address_and_naks_others() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(2);
    let address = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let reboot = |n: u8, a: Ipv4Addr| {
        RequestBytes::new(MessageType::Request, mac(n)).option(OPT_REQUESTED_IP, &a.octets())
    };
    let (ack, _) = send(&mut r, &hosts, reboot(1, address), t(10), &trace).unwrap();
    assert_eq!(ack.message_type(), 5);
    let (nak, _) = send(&mut r, &hosts, reboot(1, ip(105)), t(11), &trace).unwrap();
    assert_eq!(nak.message_type(), 6, "not the client's address");
    let (wrong_net, _) = send(
        &mut r,
        &hosts,
        reboot(1, Ipv4Addr::new(192, 168, 1, 5)),
        t(12),
        &trace,
    )
    .unwrap();
    assert_eq!(wrong_net.message_type(), 6, "wrong network");
    trace.take();
    assert!(
        send(&mut r, &hosts, reboot(2, ip(106)), t(13), &trace).is_none(),
        "no record: silent"
    );
    assert!(trace.ignored_reason().contains("no record"));
}

#[test]
fn renewing_is_acked_unicast_and_extends_the_lease() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let address = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let mut renew = RequestBytes::new(MessageType::Request, mac(1));
    renew.ciaddr = address;
    let (ack, destination) = send(&mut r, &hosts, renew, t(1800), &trace).unwrap();
    assert_eq!(ack.message_type(), 5);
    assert_eq!(ack.yiaddr, address);
    assert_eq!(ack.ciaddr, address);
    assert_eq!(destination, SocketAddrV4::new(address, 68));
    assert_eq!(
        r.leases().lease(mac(1)).unwrap().expires,
        Some(t(1800 + 3600))
    );
    let mut wrong = RequestBytes::new(MessageType::Request, mac(1));
    wrong.ciaddr = ip(107);
    let (nak, _) = send(&mut r, &hosts, wrong, t(1801), &trace).unwrap();
    assert_eq!(nak.message_type(), 6);
}

#[test]
fn decline_sets_the_address_aside() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let address = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let decline = RequestBytes::new(MessageType::Decline, mac(1))
        .option(OPT_SERVER_ID, &SERVER.octets())
        .option(OPT_REQUESTED_IP, &address.octets());
    assert!(send(&mut r, &hosts, decline, t(5), &trace).is_none());
    assert!(trace.take().contains(&EventKind::DhcpLease {
        address,
        bound: false
    }));
    assert!(r.leases().lease(mac(1)).is_none());
    let (offer, _) = send(&mut r, &hosts, discover(1), t(6), &trace).unwrap();
    assert_ne!(offer.yiaddr, address, "declined address not offered again");
    send(&mut r, &hosts, select(1, offer.yiaddr), t(7), &trace).unwrap();
    let (later, _) = send(&mut r, &hosts, discover(1), t(7 + 600 + 11), &trace).unwrap();
    assert_eq!(
        later.yiaddr, offer.yiaddr,
        "sticky to the new one after the hold"
    );
    let mut other = full(100, 110);
    let two = ironic_hosts(2);
    let declined = lease_for(&mut other, &two, 1, t(0));
    let decline = RequestBytes::new(MessageType::Decline, mac(1))
        .option(OPT_REQUESTED_IP, &declined.octets());
    send(&mut other, &two, decline, t(1), &trace);
    assert_ne!(
        lease_for(&mut other, &two, 2, t(2)),
        declined,
        "set aside for everyone"
    );
    assert_eq!(
        lease_for(&mut other, &two, 2, t(2 + 700)),
        ip(101),
        "sticky for mac 2"
    );
}

#[test]
fn release_expires_but_keeps_the_address_for_the_client() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(2);
    let address = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let mut release =
        RequestBytes::new(MessageType::Release, mac(1)).option(OPT_SERVER_ID, &SERVER.octets());
    release.ciaddr = address;
    assert!(send(&mut r, &hosts, release, t(10), &trace).is_none());
    assert!(trace.take().contains(&EventKind::DhcpLease {
        address,
        bound: false
    }));
    let lease = r.leases().lease(mac(1)).unwrap();
    assert!(!lease.is_active(t(10)));
    let other = lease_for(&mut r, &hosts, 2, t(11));
    assert_ne!(other, address, "expired but still sticky for mac 1");
    assert_eq!(lease_for(&mut r, &hosts, 1, t(12)), address);
}

#[test]
fn inform_gets_an_ack_without_address_or_lease_time() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let mut inform =
        RequestBytes::new(MessageType::Inform, mac(1)).option(OPT_PARAMETER_LIST, &[1, 3, 67]);
    inform.ciaddr = ip(50);
    let (ack, destination) = send(&mut r, &hosts, inform, t(0), &trace).unwrap();
    assert_eq!(ack.message_type(), 5);
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(ack.option(OPT_LEASE_TIME).is_none());
    assert!(ack.option(OPT_ROUTER).is_some());
    assert_eq!(ack.file, "snponly.efi");
    assert_eq!(destination, SocketAddrV4::new(ip(50), 68));
    assert!(r.leases().is_empty());
}

// ----- addresses -----

#[test]
fn addresses_are_sticky_even_after_expiry() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(3);
    let a = lease_for(&mut r, &hosts, 1, t(0));
    let b = lease_for(&mut r, &hosts, 2, t(0));
    assert_ne!(a, b);
    // Long after both expired: mac 3 gets a never-used address, 1 and 2 their own.
    let later = t(100_000);
    let c = lease_for(&mut r, &hosts, 3, later);
    assert!(c != a && c != b);
    assert_eq!(lease_for(&mut r, &hosts, 2, later), b);
    assert_eq!(lease_for(&mut r, &hosts, 1, later), a);
}

#[test]
fn pool_exhaustion_then_reclaiming_the_longest_expired() {
    let mut r = full(100, 101);
    let hosts = ironic_hosts(3);
    let a = lease_for(&mut r, &hosts, 1, t(0));
    let b = lease_for(&mut r, &hosts, 2, t(10));
    let trace = Collect::default();
    assert!(send(&mut r, &hosts, discover(3), t(20), &trace).is_none());
    assert!(trace.ignored_reason().contains("exhausted"));
    // Both expired: mac 3 takes mac 1's (expired first).
    let c = lease_for(&mut r, &hosts, 3, t(10_000));
    assert_eq!(c, a);
    assert!(r.leases().lease(mac(1)).is_none());
    assert_eq!(r.leases().lease(mac(2)).unwrap().address, b);
}

#[test]
fn requested_address_is_honoured_when_free() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let (offer, _) = send(
        &mut r,
        &hosts,
        discover(1).option(OPT_REQUESTED_IP, &ip(107).octets()),
        t(0),
        &trace,
    )
    .unwrap();
    assert_eq!(offer.yiaddr, ip(107));
    let outside = discover(1).option(OPT_REQUESTED_IP, &ip(50).octets());
    let mut fresh = full(100, 110);
    let (offer, _) = send(&mut fresh, &hosts, outside, t(0), &trace).unwrap();
    assert_eq!(offer.yiaddr, ip(100), "outside the range: not honoured");
}

#[test]
fn fixed_address_wins_and_is_kept_from_others() {
    let mut r = full(100, 110);
    let hosts = HostTable::from_files(
        [
            ("a", "52:54:00:00:00:01,10.0.0.100\n"),
            ("b", "52:54:00:00:00:02,set:x\n"),
        ],
        [],
    );
    let b = lease_for(&mut r, &hosts, 2, t(0));
    assert_eq!(b, ip(101), "10.0.0.100 is fixed for mac 1");
    let a = lease_for(&mut r, &hosts, 1, t(1));
    assert_eq!(a, ip(100));
    // A fixed address outside the range but in the subnet is fine.
    let outside = HostTable::from_files([("a", "52:54:00:00:00:01,10.0.0.20\n")], []);
    assert_eq!(lease_for(&mut full(100, 110), &outside, 1, t(0)), ip(20));
    let trace = Collect::default();
    let elsewhere = HostTable::from_files([("a", "52:54:00:00:00:01,192.168.9.9\n")], []);
    assert!(send(&mut full(100, 110), &elsewhere, discover(1), t(0), &trace).is_none());
    assert!(trace.ignored_reason().contains("not in the pool's subnet"));
}

#[test]
fn fixed_address_takes_over_from_a_dynamic_lease() {
    let mut r = full(100, 110);
    let before = HostTable::from_files(
        [
            ("b", "52:54:00:00:00:02,set:x\n"),
            ("a", "52:54:00:00:00:01,set:y\n"),
        ],
        [],
    );
    let b = lease_for(&mut r, &before, 2, t(0));
    let after = HostTable::from_files(
        [
            ("b", "52:54:00:00:00:02,set:x\n"),
            ("a", format!("52:54:00:00:00:01,{b}\n").as_str()),
        ],
        [],
    );
    assert_eq!(lease_for(&mut r, &after, 1, t(1)), b);
    assert!(r.leases().lease(mac(2)).is_none());
    let trace = Collect::default();
    let mut renew = RequestBytes::new(MessageType::Request, mac(2));
    renew.ciaddr = b;
    let (nak, _) = send(&mut r, &after, renew, t(2), &trace).unwrap();
    assert_eq!(
        nak.message_type(),
        6,
        "mac 2 lost the address to the host line"
    );
}

#[test]
fn infinite_host_lease_has_no_renewal_times() {
    let mut r = full(100, 110);
    let hosts = HostTable::from_files([("a", "52:54:00:00:00:01,set:x,infinite\n")], []);
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    assert_eq!(u32_option(&offer, OPT_LEASE_TIME), u32::MAX);
    assert!(offer.option(OPT_RENEWAL).is_none());
    send(&mut r, &hosts, select(1, offer.yiaddr), t(0), &trace).unwrap();
    assert_eq!(r.leases().lease(mac(1)).unwrap().expires, None);
}

// ----- who is answered -----

#[test]
fn unknown_and_ignored_macs_get_nothing_without_discovery() {
    let mut r = full(100, 110);
    let hosts = HostTable::from_files([("x", "52:54:00:00:00:02,ignore\n")], []);
    let trace = Collect::default();
    assert!(send(&mut r, &hosts, discover(1), t(0), &trace).is_none());
    assert!(trace.ignored_reason().contains("unknown MAC"));
    assert!(send(&mut r, &hosts, discover(2), t(0), &trace).is_none());
    assert!(trace.ignored_reason().contains("ignore"));
}

#[test]
fn discovery_answers_unknown_macs_with_config_options_only() {
    let mut config = DhcpConfig::full(SERVER, vec![pool(100, 110)]);
    config.discovery = true;
    config.options = vec![
        OptionLine::parse("tag:!known,67,discovery.efi").unwrap(),
        OptionLine::parse("tag:known,67,never.efi").unwrap(),
    ];
    let mut r = Responder::new(config, Leases::new()).unwrap();
    let hosts = HostTable::from_files(
        [("x", "52:54:00:00:00:02,ignore\n")],
        [("o", "tag:node-9,67,other.efi\n")],
    );
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    assert_eq!(offer.file, "discovery.efi");
    assert!(
        send(&mut r, &hosts, discover(2), t(0), &trace).is_none(),
        "ignore stays ignore"
    );
}

// ----- relay -----

#[test]
fn relayed_requests_use_the_giaddr_pool_and_go_back_to_the_relay() {
    let second = Pool::new(
        Ipv4Addr::new(192, 168, 5, 10),
        Ipv4Addr::new(192, 168, 5, 20),
        Ipv4Addr::new(255, 255, 255, 0),
    );
    let mut r = Responder::new(
        DhcpConfig::full(SERVER, vec![pool(100, 110), second]),
        Leases::new(),
    )
    .unwrap();
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let relay_info = [1, 4, b'p', b'o', b'r', b't', 2, 2, 0xab, 0xcd];
    let mut relayed = discover(1).option(OPT_RELAY_AGENT, &relay_info);
    relayed.giaddr = Ipv4Addr::new(192, 168, 5, 1);
    relayed.broadcast = true;
    let (offer, destination) = send(&mut r, &hosts, relayed, t(0), &trace).unwrap();
    assert_eq!(offer.yiaddr, Ipv4Addr::new(192, 168, 5, 10));
    assert_eq!(
        destination,
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 5, 1), 67)
    );
    assert_eq!(offer.giaddr, Ipv4Addr::new(192, 168, 5, 1));
    assert!(offer.broadcast);
    assert_eq!(
        offer.option(OPT_RELAY_AGENT),
        Some(&relay_info[..]),
        "echoed verbatim"
    );
    assert_eq!(*offer.codes().last().unwrap(), OPT_RELAY_AGENT, "82 last");
    assert_eq!(offer.option(OPT_SUBNET_MASK), Some(&[255, 255, 255, 0][..]));

    let mut stray = discover(1);
    stray.giaddr = Ipv4Addr::new(172, 16, 0, 1);
    assert!(send(&mut r, &hosts, stray, t(0), &trace).is_none());
    assert!(trace.ignored_reason().contains("172.16.0.1"));
}

#[test]
fn relayed_nak_goes_to_the_relay_with_broadcast_set() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(2);
    let taken = lease_for(&mut r, &hosts, 1, t(0));
    let trace = Collect::default();
    let mut request = select(2, taken).option(OPT_RELAY_AGENT, &[1, 1, 9]);
    request.giaddr = ip(254);
    let (nak, destination) = send(&mut r, &hosts, request, t(1), &trace).unwrap();
    assert_eq!(nak.message_type(), 6);
    assert!(nak.broadcast);
    assert_eq!(destination, SocketAddrV4::new(ip(254), 67));
    assert_eq!(nak.option(OPT_RELAY_AGENT), Some(&[1, 1, 9][..]));
}

// ----- tags and precedence -----

fn boot_file_for(lines: &str, config: &[&str], request: RequestBytes) -> String {
    let mut cfg = DhcpConfig::full(SERVER, vec![pool(100, 110)]);
    cfg.options = config
        .iter()
        .map(|l| OptionLine::parse(l).unwrap())
        .collect();
    let mut r = Responder::new(cfg, Leases::new()).unwrap();
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:node,set:ironic\n")],
        [("o", lines)],
    );
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &hosts, request, t(0), &trace).unwrap();
    offer.file
}

#[test]
fn ipxe_tag_from_option_175_or_user_class() {
    let lines = "tag:node,tag:!ipxe,67,snponly.efi\ntag:node,tag:ipxe,67,boot.ipxe\n";
    assert_eq!(boot_file_for(lines, &[], discover(1)), "snponly.efi");
    assert_eq!(
        boot_file_for(lines, &[], discover(1).option(OPT_IPXE_ENCAP, &[1, 1, 1])),
        "boot.ipxe"
    );
    assert_eq!(
        boot_file_for(lines, &[], discover(1).option(OPT_USER_CLASS, b"iPXE")),
        "boot.ipxe"
    );
    assert_eq!(
        boot_file_for(lines, &[], discover(1).option(OPT_USER_CLASS, b"other")),
        "snponly.efi"
    );
}

#[test]
fn architecture_and_vendor_class_tags() {
    let lines = "tag:bios,67,pxelinux.0\ntag:efi-x86_64,67,shim.efi\ntag:efi-arm64,67,arm.efi\n\
                 tag:efi-x86_64-http,67,http.efi\ntag:efi-ia32,67,ia32.efi\ntag:efi-arm64-http,67,armhttp.efi\n";
    let arch = |a: u16| discover(1).option(OPT_CLIENT_ARCH, &a.to_be_bytes());
    for (a, file) in [
        (0, "pxelinux.0"),
        (6, "ia32.efi"),
        (7, "shim.efi"),
        (9, "shim.efi"),
        (11, "arm.efi"),
        (16, "http.efi"),
        (19, "armhttp.efi"),
    ] {
        assert_eq!(boot_file_for(lines, &[], arch(a)), file, "arch {a}");
    }
    let classes = "tag:pxe,67,pxe.efi\ntag:httpclient,67,http.efi\n";
    let vendor = |v: &[u8]| discover(1).option(OPT_VENDOR_CLASS, v);
    assert_eq!(
        boot_file_for(classes, &[], vendor(b"PXEClient:Arch:00007:UNDI:003016")),
        "pxe.efi"
    );
    assert_eq!(
        boot_file_for(classes, &[], vendor(b"HTTPClient:Arch:00016:UNDI:003001")),
        "http.efi"
    );
    let known = "tag:known,67,known.efi\ntag:ironic,tag:node,66,x\n";
    assert_eq!(boot_file_for(known, &[], discover(1)), "known.efi");
}

#[test]
fn precedence_tagged_beats_untagged_then_later_wins() {
    // Untagged last still loses to an earlier tagged line.
    assert_eq!(
        boot_file_for(
            "tag:node,67,tagged.efi\n67,untagged.efi\n",
            &[],
            discover(1)
        ),
        "tagged.efi"
    );
    // Two tagged lines: the later wins, whatever the number of tags.
    assert_eq!(
        boot_file_for(
            "tag:node,tag:ironic,67,two.efi\ntag:node,67,one.efi\n",
            &[],
            discover(1)
        ),
        "one.efi"
    );
    // Two untagged lines: the later wins.
    assert_eq!(
        boot_file_for("67,first.efi\n67,second.efi\n", &[], discover(1)),
        "second.efi"
    );
    // A line whose condition fails never applies.
    assert_eq!(
        boot_file_for("67,default.efi\ntag:other,67,other.efi\n", &[], discover(1)),
        "default.efi"
    );
}

#[test]
fn config_options_rank_below_option_files() {
    assert_eq!(
        boot_file_for(
            "tag:node,67,host.efi\n",
            &["tag:known,67,config.efi"],
            discover(1)
        ),
        "host.efi"
    );
    assert_eq!(
        boot_file_for("67,file.efi\n", &["67,config.efi"], discover(1)),
        "file.efi"
    );
    // ... but, as in dnsmasq, a tagged config line beats an untagged file line.
    assert_eq!(
        boot_file_for("67,file.efi\n", &["tag:known,67,config.efi"], discover(1)),
        "config.efi"
    );
    assert_eq!(
        boot_file_for("", &["67,config.efi"], discover(1)),
        "config.efi"
    );
}

// ----- boot fields -----

#[test]
fn boot_file_goes_in_the_field_and_in_67_when_asked_or_too_long() {
    let not_asking =
        RequestBytes::new(MessageType::Discover, mac(1)).option(OPT_PARAMETER_LIST, &[1, 3]);
    let mut r = full(100, 110);
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [("o", "tag:n,67,pxelinux.0\n")],
    );
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &hosts, not_asking, t(0), &trace).unwrap();
    assert_eq!(offer.file, "pxelinux.0");
    assert!(offer.option(OPT_BOOTFILE).is_none());
    assert!(offer.option(OPT_TFTP_SERVER).is_none());
    assert_eq!(offer.siaddr, SERVER, "siaddr defaults to server_ip");

    let url = format!("http://10.0.0.1:8080/{}/boot.ipxe", "x".repeat(150));
    let long = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [("o", format!("tag:n,67,{url}\n").as_str())],
    );
    let (offer, _) = send(
        &mut full(100, 110),
        &long,
        RequestBytes::new(MessageType::Discover, mac(1)),
        t(0),
        &trace,
    )
    .unwrap();
    assert_eq!(offer.file, "", "does not fit the 128-byte field");
    let joined: Vec<u8> = offer
        .options
        .iter()
        .filter(|(c, _)| *c == OPT_BOOTFILE)
        .flat_map(|(_, d)| d.clone())
        .collect();
    assert_eq!(joined, url.as_bytes());
}

#[test]
fn siaddr_from_tftp_server_or_server_ip_address_line() {
    let mut config = DhcpConfig::full(SERVER, vec![pool(100, 110)]);
    config.tftp_server = Some(ip(3));
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n52:54:00:00:00:02,set:m\n")],
        [("o", "tag:n,67,a.efi\ntag:m,67,b.efi\ntag:m,255,10.0.0.4\n")],
    );
    let mut r = Responder::new(config, Leases::new()).unwrap();
    let trace = Collect::default();
    let (one, _) = send(&mut r, &hosts, discover(1), t(0), &trace).unwrap();
    assert_eq!(one.siaddr, ip(3));
    assert_eq!(
        one.option(OPT_TFTP_SERVER),
        Some(&b"10.0.0.3"[..]),
        "asked for, no line: the next server"
    );
    let (two, _) = send(&mut r, &hosts, discover(2), t(0), &trace).unwrap();
    assert_eq!(two.siaddr, ip(4));
    assert!(
        two.option(SERVER_IP_ADDRESS).is_none(),
        "255 is never sent as an option"
    );
}

#[test]
fn tftp_server_line_goes_to_sname_when_not_asked_for() {
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [("o", "tag:n,67,a.efi\ntag:n,66,tftp.lab\n")],
    );
    let trace = Collect::default();
    let (offer, _) = send(
        &mut full(100, 110),
        &hosts,
        RequestBytes::new(MessageType::Discover, mac(1)),
        t(0),
        &trace,
    )
    .unwrap();
    assert_eq!(offer.sname, "tftp.lab");
    assert!(offer.option(OPT_TFTP_SERVER).is_none());
}

#[test]
fn http_boot_clients_get_httpclient_back() {
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [(
            "o",
            "tag:n,67,http://10.0.0.1/shim.efi\ntag:n,60,HTTPClient\n",
        )],
    );
    let trace = Collect::default();
    let http = discover(1)
        .option(OPT_VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003001")
        .option(OPT_CLIENT_ARCH, &[0, 16]);
    let (offer, _) = send(&mut full(100, 110), &hosts, http, t(0), &trace).unwrap();
    assert_eq!(offer.option(OPT_VENDOR_CLASS), Some(&b"HTTPClient"[..]));
    assert_eq!(offer.file, "http://10.0.0.1/shim.efi");
    let pxe = discover(1).option(OPT_VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016");
    let (offer, _) = send(&mut full(100, 110), &hosts, pxe, t(0), &trace).unwrap();
    assert!(
        offer.option(OPT_VENDOR_CLASS).is_none(),
        "full mode sends no PXEClient (no 4011 here)"
    );
    assert!(offer.option(OPT_VENDOR_OPTS).is_none());
}

#[test]
fn other_option_lines_are_sent_when_asked_for() {
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [(
            "o",
            "tag:n,42,10.0.0.7\ntag:n,26,1400\ntag:n,3,10.0.0.254\n6\n",
        )],
    );
    let trace = Collect::default();
    let asking =
        RequestBytes::new(MessageType::Discover, mac(1)).option(OPT_PARAMETER_LIST, &[3, 6, 42]);
    let (offer, _) = send(&mut full(100, 110), &hosts, asking, t(0), &trace).unwrap();
    assert_eq!(offer.option(42), Some(&[10, 0, 0, 7][..]));
    assert!(offer.option(26).is_none(), "not asked for");
    assert_eq!(
        offer.option(OPT_ROUTER),
        Some(&[10, 0, 0, 254][..]),
        "line overrides the pool"
    );
    assert!(
        offer.option(OPT_DNS).is_none(),
        "empty line suppresses the default"
    );
}

#[test]
fn client_id_is_echoed_and_stored() {
    let mut r = full(100, 110);
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let id = [1, 0x52, 0x54, 0, 0, 0, 1];
    let (offer, _) = send(
        &mut r,
        &hosts,
        discover(1).option(OPT_CLIENT_ID, &id),
        t(0),
        &trace,
    )
    .unwrap();
    assert_eq!(offer.option(OPT_CLIENT_ID), Some(&id[..]));
    send(
        &mut r,
        &hosts,
        select(1, offer.yiaddr)
            .option(OPT_CLIENT_ID, &id)
            .option(OPT_HOSTNAME, b"node1"),
        t(0),
        &trace,
    )
    .unwrap();
    let lease = r.leases().lease(mac(1)).unwrap();
    assert_eq!(lease.client_id.as_deref(), Some(&id[..]));
    assert_eq!(lease.hostname.as_deref(), Some("node1"));
}

// ----- proxy mode -----

fn proxy() -> Responder {
    Responder::new(DhcpConfig::proxy(SERVER), Leases::new()).unwrap()
}

fn pxe_discover(n: u8) -> RequestBytes {
    discover(n)
        .option(OPT_VENDOR_CLASS, b"PXEClient:Arch:00000:UNDI:002001")
        .option(OPT_CLIENT_ARCH, &[0, 0])
        .option(OPT_CLIENT_UUID, &[0; 17])
}

#[test]
fn proxy_offer_carries_boot_info_and_no_address() {
    let mut r = proxy();
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let (offer, destination) = send(&mut r, &hosts, pxe_discover(1), t(0), &trace).unwrap();
    assert_eq!(offer.message_type(), 2);
    assert_eq!(offer.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.siaddr, ip(1));
    assert_eq!(offer.file, "snponly.efi");
    assert_eq!(offer.option(OPT_VENDOR_CLASS), Some(&b"PXEClient"[..]));
    assert_eq!(offer.option(OPT_SERVER_ID), Some(&SERVER.octets()[..]));
    assert_eq!(
        offer.option(OPT_VENDOR_OPTS),
        Some(&[6, 1, 8, 10, 4, 0, b'P', b'X', b'E', 255][..])
    );
    assert_eq!(offer.option(OPT_CLIENT_UUID), Some(&[0; 17][..]));
    assert!(offer.option(OPT_LEASE_TIME).is_none() && offer.option(OPT_SUBNET_MASK).is_none());
    assert!(offer.broadcast);
    assert_eq!(destination, SocketAddrV4::new(Ipv4Addr::BROADCAST, 68));
    assert!(r.leases().is_empty());
    match &trace.take()[1] {
        EventKind::DhcpSent { address, .. } => assert_eq!(*address, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn proxy_answers_requests_on_4011_to_their_source() {
    let mut r = proxy();
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let source = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 50), 68);
    let mut request = RequestBytes::new(MessageType::Request, mac(1))
        .option(OPT_VENDOR_CLASS, b"PXEClient:Arch:00007:UNDI:003016")
        .option(OPT_CLIENT_ARCH, &[0, 7])
        .option(OPT_VENDOR_OPTS, &[71, 4, 0, 0, 0, 0, 255]);
    request.ciaddr = *source.ip();
    let arrival = Arrival { port: 4011, source };
    let (ack, destination) = send_on(&mut r, &hosts, request, arrival, t(0), &trace).unwrap();
    assert_eq!(ack.message_type(), 5);
    assert_eq!(destination, source);
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.ciaddr, *source.ip());
    assert_eq!(ack.file, "snponly.efi");
    assert_eq!(
        ack.option(OPT_VENDOR_OPTS),
        Some(&[6, 1, 8, 10, 4, 0, b'P', b'X', b'E', 71, 4, 0, 0, 0, 0, 255][..]),
        "boot item echoed"
    );
}

#[test]
fn proxy_never_answers_the_address_servers_messages() {
    let mut r = proxy();
    let hosts = ironic_hosts(1);
    let trace = Collect::default();
    let on_67 = select(1, ip(150)).option(OPT_VENDOR_CLASS, b"PXEClient");
    assert!(
        send(&mut r, &hosts, on_67, t(0), &trace).is_none(),
        "no ACK and no NAK on 67"
    );
    assert!(trace.ignored_reason().contains("address server"));
    let discover_4011 = pxe_discover(1);
    assert!(send_on(&mut r, &hosts, discover_4011, arrive(4011), t(0), &trace).is_none());
    trace.take();
    assert!(
        send(&mut r, &hosts, discover(1), t(0), &trace).is_none(),
        "no vendor class"
    );
    assert!(trace.ignored_reason().contains("not a PXE or HTTP"));
    assert!(
        send(&mut r, &hosts, pxe_discover(7), t(0), &trace).is_none(),
        "unknown"
    );
    assert!(trace.ignored_reason().contains("unknown MAC"));
    let no_file = HostTable::from_files([("h", "52:54:00:00:00:01,set:n\n")], []);
    assert!(send(&mut r, &no_file, pxe_discover(1), t(0), &trace).is_none());
    assert!(trace.ignored_reason().contains("no boot file"));
}

#[test]
fn proxy_http_client_gets_httpclient_and_no_pxe_options() {
    let mut r = proxy();
    let hosts = HostTable::from_files(
        [("h", "52:54:00:00:00:01,set:n\n")],
        [("o", "tag:n,67,http://10.0.0.1/boot.efi\n")],
    );
    let trace = Collect::default();
    let http = discover(1).option(OPT_VENDOR_CLASS, b"HTTPClient:Arch:00016:UNDI:003001");
    let (offer, _) = send(&mut r, &hosts, http, t(0), &trace).unwrap();
    assert_eq!(offer.option(OPT_VENDOR_CLASS), Some(&b"HTTPClient"[..]));
    assert!(offer.option(OPT_VENDOR_OPTS).is_none());
    assert_eq!(offer.file, "http://10.0.0.1/boot.efi");
}

#[test]
fn proxy_discovery_serves_unknown_pxe_clients() {
    let mut config = DhcpConfig::proxy(SERVER);
    config.discovery = true;
    config.options =
        vec![OptionLine::new(vec![TagCond::not("known")], 67, "inspector.efi").unwrap()];
    let mut r = Responder::new(config, Leases::new()).unwrap();
    let trace = Collect::default();
    let (offer, _) = send(&mut r, &HostTable::new(), pxe_discover(9), t(0), &trace).unwrap();
    assert_eq!(offer.file, "inspector.efi");
}

// ----- config and malformed input -----

#[test]
fn config_errors() {
    assert_eq!(
        Responder::new(DhcpConfig::full(SERVER, vec![]), Leases::new()).unwrap_err(),
        ConfigError::NoPools
    );
    let backwards = Pool::new(ip(20), ip(10), Ipv4Addr::new(255, 255, 255, 0));
    assert!(matches!(
        Responder::new(DhcpConfig::full(SERVER, vec![backwards]), Leases::new()),
        Err(ConfigError::BadPool { .. })
    ));
    let holes = Pool::new(ip(10), ip(20), Ipv4Addr::new(255, 0, 255, 0));
    assert!(Responder::new(DhcpConfig::full(SERVER, vec![holes]), Leases::new()).is_err());
    let spanning = Pool::new(
        ip(10),
        Ipv4Addr::new(10, 0, 1, 5),
        Ipv4Addr::new(255, 255, 255, 0),
    );
    assert!(Responder::new(DhcpConfig::full(SERVER, vec![spanning]), Leases::new()).is_err());
    assert_eq!(
        Responder::new(DhcpConfig::proxy(Ipv4Addr::UNSPECIFIED), Leases::new()).unwrap_err(),
        ConfigError::NoServerAddress
    );
    let mut bad_option = DhcpConfig::proxy(SERVER);
    bad_option.options = vec![OptionLine {
        tags: vec![],
        code: 3,
        value: "nope".into(),
    }];
    assert!(matches!(
        Responder::new(bad_option, Leases::new()),
        Err(ConfigError::BadOption { index: 0, .. })
    ));
}

#[test]
fn malformed_datagrams_are_errors_not_panics() {
    let hosts = ironic_hosts(2);
    let trace = Collect::default();
    let mut responders = [full(100, 110), proxy()];
    let seed = discover(1)
        .option(OPT_CLIENT_ARCH, &[0, 7])
        .option(OPT_RELAY_AGENT, &[1, 2, 3, 4])
        .bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut bytes = seed.clone();
        let flips = 1 + next() % 8;
        for _ in 0..flips {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        if round % 7 == 0 {
            bytes.truncate((next() as usize) % (bytes.len() + 1));
        }
        for r in responders.iter_mut() {
            for port in [67, 4011] {
                let _ = r.handle(&bytes, arrive(port), &hosts, t(round), &trace);
            }
        }
    }
    for r in responders.iter_mut() {
        assert!(r.handle(&[], arrive(67), &hosts, t(0), &trace).is_err());
        assert!(r
            .handle(&[0xff; 1600], arrive(67), &hosts, t(0), &trace)
            .is_err());
    }
}
