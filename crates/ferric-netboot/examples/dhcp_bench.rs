//! DISCOVER -> OFFER -> REQUEST -> ACK for N simulated clients (distinct
//! MACs, all known hosts with Ironic-style host and option files) through
//! the real UDP server on loopback, timed.
//!
//! The clients speak through a pretend relay on 127.0.0.2 (giaddr), so the
//! server answers unicast and no privileged port or broadcast is needed:
//! `cargo run --release -p ferric-netboot --example dhcp_bench [-- CLIENTS]`.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferric_netboot::dhcp::net::{DhcpServer, ServerSettings};
use ferric_netboot::dhcp::{host_line, option_line, DhcpConfig, Leases, Pool, Responder, TagCond};
use ferric_netboot::trace::{MacAddr, NoTrace};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn mac(n: u32) -> MacAddr {
    let [_, a, b, c] = n.to_be_bytes();
    MacAddr([0x52, 0x54, 0x00, a, b, c])
}

fn write_ironic_files(dir: &std::path::Path, clients: u32) -> BenchResult<()> {
    std::fs::create_dir_all(dir.join("hosts"))?;
    std::fs::create_dir_all(dir.join("opts"))?;
    for n in 0..clients {
        let tag = format!("node-{n}");
        let host = host_line(mac(n), &[&tag, "ironic"])?;
        std::fs::write(
            dir.join("hosts").join(format!("ironic-{}.conf", mac(n))),
            host + "\n",
        )?;
        let lines = [
            option_line(
                &[TagCond::is(&tag), TagCond::not("ipxe")],
                67,
                "snponly.efi",
            )?,
            option_line(
                &[TagCond::is(&tag), TagCond::is("ipxe")],
                67,
                "http://127.0.0.1/boot.ipxe",
            )?,
            option_line(&[TagCond::is(&tag)], 255, "127.0.0.1")?,
        ];
        std::fs::write(
            dir.join("opts").join(format!("ironic-{n}.conf")),
            lines.join("\n") + "\n",
        )?;
    }
    Ok(())
}

fn request_bytes(message: u8, mac: MacAddr, xid: u32, options: &[(u8, &[u8])]) -> Vec<u8> {
    let mut b = vec![1, 1, 6, 1];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0; 16]); // secs, flags, ciaddr, yiaddr, siaddr
    b.extend_from_slice(&RELAY.octets());
    b.extend_from_slice(&mac.0);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, message]);
    for (code, data) in options {
        b.push(*code);
        b.push(data.len() as u8);
        b.extend_from_slice(data);
    }
    b.push(255);
    b
}

fn relay_socket(port: u16) -> BenchResult<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from((RELAY, port)).into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

async fn exchange(
    relay: &UdpSocket,
    server: SocketAddr,
    bytes: &[u8],
    xid: u32,
) -> BenchResult<Vec<u8>> {
    relay.send_to(bytes, server).await?;
    let mut buffer = vec![0u8; 1500];
    loop {
        let (len, _) =
            tokio::time::timeout(Duration::from_secs(2), relay.recv_from(&mut buffer)).await??;
        if len >= 240 && buffer[4..8] == xid.to_be_bytes() {
            buffer.truncate(len);
            return Ok(buffer);
        }
    }
}

async fn bench(clients: u32) -> BenchResult<()> {
    let dir = tempfile::tempdir()?;
    write_ironic_files(dir.path(), clients)?;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let pool = Pool::new(
        Ipv4Addr::new(127, 1, 0, 1),
        Ipv4Addr::new(127, 1, 255, 254),
        Ipv4Addr::new(255, 0, 0, 0),
    );
    let mut config = DhcpConfig::full(Ipv4Addr::LOCALHOST, vec![pool]);
    config.server_port = port;
    let settings = ServerSettings {
        hosts_dir: Some(dir.path().join("hosts")),
        opts_dir: Some(dir.path().join("opts")),
        lease_file: Some(dir.path().join("leases")),
        ..ServerSettings::default()
    };
    let server = DhcpServer::bind(
        settings,
        Responder::new(config, Leases::new())?,
        Arc::new(NoTrace),
    )?;
    let relay = relay_socket(port)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let prl: &[u8] = &[1, 3, 6, 15, 66, 67];
    // Warm-up: the first packet reads the host and option directories.
    exchange(&relay, target, &request_bytes(1, mac(0), 1, &[]), 1).await?;
    let mut latencies = Vec::with_capacity(clients as usize);
    let started = Instant::now();
    for n in 0..clients {
        let begun = Instant::now();
        let xid = 0x1000_0000 + n;
        let offer = exchange(
            &relay,
            target,
            &request_bytes(1, mac(n), xid, &[(55, prl)]),
            xid,
        )
        .await?;
        let offered: [u8; 4] = offer[16..20].try_into()?;
        let request = request_bytes(
            3,
            mac(n),
            xid,
            &[(55, prl), (54, &[127, 0, 0, 1]), (50, &offered)],
        );
        let ack = exchange(&relay, target, &request, xid).await?;
        if ack.get(242) != Some(&5) || ack[16..20] != offered {
            return Err(format!("client {n}: no ACK for {offered:?}").into());
        }
        latencies.push(begun.elapsed());
    }
    let total = started.elapsed();
    stop.send(()).ok();
    task.await??;
    let leases = std::fs::read_to_string(dir.path().join("leases"))?;
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "{clients} clients DISCOVER->OFFER->REQUEST->ACK in {total:?} ({:.0} clients/s); per client median {:?}, p99 {:?}, max {:?}; lease file {} lines",
        f64::from(clients) / total.as_secs_f64(),
        p(0.5),
        p(0.99),
        p(1.0),
        leases.lines().count()
    );
    Ok(())
}

fn main() -> BenchResult<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let clients: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench(clients))
}
