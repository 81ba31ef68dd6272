//! Arbitrary bytes into the DHCP responder (full and proxy mode, both
//! ports, a small host table) and into the host, option and lease file
//! parsers. Nothing may panic; what parses must format back to itself.
#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use ferric_netboot::dhcp::{
    Arrival, DhcpConfig, HostEntry, HostTable, Leases, OptionLine, Pool, Responder,
};
use ferric_netboot::trace::NoTrace;
use libfuzzer_sys::fuzz_target;

const HOSTS: &str = "52:54:00:00:00:01,set:node-1,set:ironic\n\
                     52:54:00:00:00:02,set:node-2,10.0.0.50,node2,1h\n\
                     52:54:00:00:00:03,ignore\n";
const OPTS: &str = "tag:node-1,tag:!ipxe,67,snponly.efi\n\
                    tag:node-1,tag:ipxe,67,http://10.0.0.1/boot.ipxe\n\
                    tag:node-2,67,pxelinux.0\ntag:node-2,255,10.0.0.9\n\
                    tag:node-1,66,10.0.0.1\ntag:efi-x86_64,42,10.0.0.7\n";

fn table() -> &'static HostTable {
    static TABLE: OnceLock<HostTable> = OnceLock::new();
    TABLE.get_or_init(|| HostTable::from_files([("hosts", HOSTS)], [("opts", OPTS)]))
}

fn responders() -> [Responder; 2] {
    let mut pool = Pool::new(
        Ipv4Addr::new(10, 0, 0, 100),
        Ipv4Addr::new(10, 0, 0, 103),
        Ipv4Addr::new(255, 255, 255, 0),
    );
    pool.router = Some(Ipv4Addr::new(10, 0, 0, 1));
    let relayed = Pool::new(
        Ipv4Addr::new(192, 168, 7, 10),
        Ipv4Addr::new(192, 168, 7, 11),
        Ipv4Addr::new(255, 255, 255, 0),
    );
    let server = Ipv4Addr::new(10, 0, 0, 1);
    let mut full = DhcpConfig::full(server, vec![pool, relayed]);
    full.discovery = true;
    full.options = vec![OptionLine::parse("tag:!known,67,discovery.efi").expect("static line")];
    let mut proxy = DhcpConfig::proxy(server);
    proxy.discovery = true;
    proxy.options = full.options.clone();
    [
        Responder::new(full, Leases::new()).expect("static config"),
        Responder::new(proxy, Leases::new()).expect("static config"),
    ]
}

fn check_text_parsers(text: &str) {
    for line in text.lines() {
        if let Ok(entry) = HostEntry::parse(line) {
            if let Ok(formatted) = entry.to_line() {
                assert_eq!(
                    HostEntry::parse(&formatted).as_ref(),
                    Ok(&entry),
                    "{formatted}"
                );
            }
        }
        if let Ok(option) = OptionLine::parse(line) {
            let formatted = option.to_line().expect("a parsed line formats");
            assert_eq!(
                OptionLine::parse(&formatted).as_ref(),
                Ok(&option),
                "{formatted}"
            );
            let _ = option.encode(Ipv4Addr::new(10, 0, 0, 1));
        }
    }
    let table = HostTable::from_files([("fuzz-hosts", text)], [("fuzz-opts", text)]);
    let _ = table.host_count();
    let leases = Leases::parse(text, "fuzz");
    let again = Leases::parse(&leases.to_file_text(), "fuzz");
    assert_eq!(again.to_file_text(), leases.to_file_text());
}

fuzz_target!(|data: &[u8]| {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let source = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 77), 68);
    // Two datagrams in a row through the same responder, so a REQUEST can
    // follow the DISCOVER it was cut from.
    let split = data.len() / 2;
    for mut responder in responders() {
        for port in [67, 4011] {
            for chunk in [data, &data[..split], &data[split..]] {
                let arrival = Arrival { port, source };
                let _ = responder.handle(chunk, arrival, table(), now, &NoTrace);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_text_parsers(text);
    }
});
