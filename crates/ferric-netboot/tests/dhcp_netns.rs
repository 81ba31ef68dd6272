//! Ferric's DHCP server (the `dhcp_server` example) against real clients
//! and a real dnsmasq, in network namespaces these tests create and always
//! remove: busybox udhcpc and ISC dhclient get leases and boot fields; an
//! unknown MAC gets nothing; in proxy mode beside dnsmasq a PXE client
//! sees both offers and gets Ferric's ACK on port 4011.
//!
//! Needs root, `ip`, `busybox`, `dhclient` and `dnsmasq`. Without them the
//! tests print why and pass, unless `FERRIC_REQUIRE_PEERS=1`.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferric_netboot::dhcp::{host_line, option_line, TagCond};
use ferric_netboot::trace::MacAddr;

// ----- preconditions -----

fn find_tool(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(name).is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// True when the test can run; prints why not, or panics when peers are required.
fn peers_ready(test: &str, tools: &[&str]) -> bool {
    let mut missing: Vec<String> = tools
        .iter()
        .filter(|t| !find_tool(t))
        .map(|t| t.to_string())
        .collect();
    if !is_root() {
        missing.insert(0, "root".to_string());
    }
    if missing.is_empty() {
        return true;
    }
    let reason = format!("{test}: skipped, missing {}", missing.join(", "));
    if std::env::var("FERRIC_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{reason} (FERRIC_REQUIRE_PEERS=1)");
    }
    // Straight to stderr: the test harness captures eprintln!.
    let _ = writeln!(std::io::stderr(), "{reason}");
    false
}

// ----- namespaces and processes -----

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A server namespace and a client namespace joined by a veth pair
/// (`veth-s` / `veth-c`); both are deleted on drop.
struct NetnsPair {
    server: String,
    client: String,
}

impl NetnsPair {
    fn new(server_addresses: &[&str]) -> NetnsPair {
        let id = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let pair = NetnsPair {
            server: format!("ferric-dhcp-s-{id}"),
            client: format!("ferric-dhcp-c-{id}"),
        };
        // The guard exists before anything is created: drop cleans up
        // whatever part of the setup succeeded.
        run(&["ip", "netns", "add", &pair.server]);
        run(&["ip", "netns", "add", &pair.client]);
        run(&[
            "ip",
            "-n",
            &pair.server,
            "link",
            "add",
            "veth-s",
            "type",
            "veth",
            "peer",
            "name",
            "veth-c",
            "netns",
            &pair.client,
        ]);
        for address in server_addresses {
            run(&[
                "ip",
                "-n",
                &pair.server,
                "addr",
                "add",
                address,
                "dev",
                "veth-s",
            ]);
        }
        for (ns, dev) in [(&pair.server, "veth-s"), (&pair.client, "veth-c")] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    fn client_mac(&self) -> MacAddr {
        let output = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.client,
                "cat",
                "/sys/class/net/veth-c/address",
            ])
            .output()
            .expect("read mac");
        MacAddr::parse(String::from_utf8_lossy(&output.stdout).trim()).expect("mac")
    }

    fn in_client(&self, command: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client]).args(command);
        cmd
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example binary, built once per test run.
fn server_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args([
                    "build",
                    "-q",
                    "-p",
                    "ferric-netboot",
                    "--example",
                    "dhcp_server",
                ])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo build");
            assert!(status.success(), "building the dhcp_server example failed");
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("target/<profile>");
            profile_dir.join("examples").join("dhcp_server")
        })
        .clone()
}

/// Ferric's server running in a namespace, its stdout (trace lines) kept.
struct FerricServer {
    _child: Running,
    lines: Arc<Mutex<Vec<String>>>,
}

impl FerricServer {
    fn start(namespace: &str, args: &[String]) -> FerricServer {
        let mut child = Command::new("ip")
            .args(["netns", "exec", namespace])
            .arg(server_binary())
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dhcp_server");
        let stdout = child.stdout.take().expect("stdout");
        let child = Running(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let server = FerricServer {
            _child: child,
            lines,
        };
        server.wait_for("ready", Duration::from_secs(60));
        server
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in server output: {:#?}",
                self.lines.lock().expect("lines")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }
}

fn wait_for_file(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\nexit 0\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// Host and option files as Ironic's dnsmasq provider writes them.
fn ironic_files(dir: &Path, mac: MacAddr, tftp: &str) -> (PathBuf, PathBuf) {
    let hosts = dir.join("hostsdir");
    let opts = dir.join("optsdir");
    std::fs::create_dir_all(&hosts).expect("hostsdir");
    std::fs::create_dir_all(&opts).expect("optsdir");
    let tag = "7b2e5d5c-node";
    let host = host_line(mac, &[tag, "ironic"]).expect("host line");
    std::fs::write(hosts.join(format!("ironic-{mac}.conf")), host + "\n").expect("host file");
    let lines = [
        option_line(&[TagCond::is(tag), TagCond::not("ipxe")], 67, "pxelinux.0"),
        option_line(
            &[TagCond::is(tag), TagCond::is("ipxe")],
            67,
            "http://192.0.2.1/boot.ipxe",
        ),
        option_line(&[TagCond::is(tag)], 66, tftp),
        option_line(&[TagCond::is(tag)], 150, tftp),
        option_line(&[TagCond::is(tag)], 255, tftp),
    ];
    let text: Vec<String> = lines.into_iter().map(|l| l.expect("option line")).collect();
    std::fs::write(opts.join("ironic-7b2e5d5c.conf"), text.join("\n") + "\n").expect("opts file");
    (hosts, opts)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn full_mode_server(pair: &NetnsPair, dir: &Path, hosts: &Path, opts: &Path) -> FerricServer {
    let lease_file = dir.join("ferric.leases");
    FerricServer::start(
        &pair.server,
        &args(&[
            "--interface",
            "veth-s",
            "--server-ip",
            "10.99.0.1",
            "--range",
            "10.99.0.100,10.99.0.120,255.255.255.0",
            "--router",
            "10.99.0.1",
            "--hostsdir",
            &hosts.display().to_string(),
            "--optsdir",
            &opts.display().to_string(),
            "--leasefile",
            &lease_file.display().to_string(),
        ]),
    )
}

// ----- full mode -----

#[test]
fn udhcpc_gets_a_lease_and_boot_fields() {
    if !peers_ready("udhcpc_gets_a_lease_and_boot_fields", &["ip", "busybox"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = NetnsPair::new(&["10.99.0.1/24"]);
    let mac = pair.client_mac();
    let (hosts, opts) = ironic_files(dir.path(), mac, "10.99.0.5");
    let server = full_mode_server(&pair, dir.path(), &hosts, &opts);
    let out = dir.path().join("udhcpc.out");
    let script = write_script(
        dir.path(),
        "udhcpc.sh",
        &format!("echo \"$1 ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid router=$router\" >> {}", out.display()),
    );
    let status = pair
        .in_client(&[
            "busybox", "udhcpc", "-f", "-q", "-n", "-i", "veth-c", "-t", "5", "-T", "1",
        ])
        .args([
            "-s",
            &script.display().to_string(),
            "-V",
            "PXEClient",
            "-x",
            "93:0000",
        ])
        .status()
        .expect("udhcpc");
    assert!(
        status.success(),
        "udhcpc failed; server said:\n{}",
        server.output()
    );
    let text = wait_for_file(&out, "bound", Duration::from_secs(5));
    assert!(
        text.contains("bound ip=10.99.0.100 siaddr=10.99.0.5 boot_file=pxelinux.0 serverid=10.99.0.1 router=10.99.0.1"),
        "{text}"
    );
    let leases = wait_for_file(
        &dir.path().join("ferric.leases"),
        &mac.to_string(),
        Duration::from_secs(5),
    );
    assert!(leases.contains(&format!("{mac} 10.99.0.100 ")), "{leases}");
    server.wait_for("DhcpSent { message: \"ACK\"", Duration::from_secs(2));
    assert!(
        server.output().contains("67=pxelinux.0") || server.output().contains("file=pxelinux.0")
    );
}

#[test]
fn dhclient_gets_a_lease() {
    if !peers_ready("dhclient_gets_a_lease", &["ip", "dhclient"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = NetnsPair::new(&["10.99.0.1/24"]);
    let mac = pair.client_mac();
    let (hosts, opts) = ironic_files(dir.path(), mac, "10.99.0.1");
    let server = full_mode_server(&pair, dir.path(), &hosts, &opts);
    let out = dir.path().join("dhclient.out");
    let script = write_script(
        dir.path(),
        "dhclient.sh",
        &format!("echo \"$reason ip=$new_ip_address file=$new_filename server=$new_dhcp_server_identifier\" >> {}", out.display()),
    );
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "timeout 30;\nrequest subnet-mask, routers, domain-name-servers;\n",
    )
    .expect("conf");
    let path = |p: &Path| p.display().to_string();
    let _dhclient = Running(
        pair.in_client(&["dhclient", "-d", "-1", "-v"])
            .args(["-cf", &path(&conf), "-sf", &path(&script)])
            .args([
                "-lf",
                &path(&dir.path().join("dhclient.leases")),
                "-pf",
                &path(&dir.path().join("dhclient.pid")),
            ])
            .arg("veth-c")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dhclient"),
    );
    let text = wait_for_file(&out, "BOUND", Duration::from_secs(30));
    assert!(
        text.contains("BOUND ip=10.99.0.100 file=pxelinux.0 server=10.99.0.1"),
        "{text}\n{}",
        server.output()
    );
}

#[test]
fn unknown_mac_gets_nothing() {
    if !peers_ready("unknown_mac_gets_nothing", &["ip", "busybox"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = NetnsPair::new(&["10.99.0.1/24"]);
    let other = MacAddr([0x52, 0x54, 0, 0xee, 0xee, 0xee]);
    let (hosts, opts) = ironic_files(dir.path(), other, "10.99.0.1");
    let server = full_mode_server(&pair, dir.path(), &hosts, &opts);
    let out = dir.path().join("udhcpc.out");
    let script = write_script(
        dir.path(),
        "udhcpc.sh",
        &format!("echo \"$1 ip=$ip\" >> {}", out.display()),
    );
    let status = pair
        .in_client(&[
            "busybox", "udhcpc", "-f", "-q", "-n", "-i", "veth-c", "-t", "2", "-T", "1",
        ])
        .args(["-s", &script.display().to_string()])
        .status()
        .expect("udhcpc");
    assert!(!status.success(), "udhcpc got a lease from nobody?");
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(!text.contains("bound"), "{text}");
    server.wait_for(
        "unknown MAC (no host line) and discovery is off",
        Duration::from_secs(2),
    );
}

// ----- proxy mode beside dnsmasq -----

/// A minimal DHCP client message, built by hand.
fn client_message(
    message: u8,
    mac: MacAddr,
    xid: u32,
    ciaddr: Ipv4Addr,
    options: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut b = vec![1, 1, 6, 0];
    b.extend_from_slice(&xid.to_be_bytes());
    b.extend_from_slice(&[0, 0, 0x80, 0]); // secs, broadcast flag
    b.extend_from_slice(&ciaddr.octets());
    b.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    b.extend_from_slice(&mac.0);
    b.extend_from_slice(&[0; 10 + 64 + 128]);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, message]);
    for (code, data) in options {
        b.push(*code);
        b.push(data.len() as u8);
        b.extend_from_slice(data);
    }
    b.push(255);
    if b.len() < 300 {
        b.resize(300, 0);
    }
    b
}

#[derive(Debug, Clone)]
struct Seen {
    yiaddr: Ipv4Addr,
    siaddr: Ipv4Addr,
    file: String,
    options: Vec<(u8, Vec<u8>)>,
}

impl Seen {
    fn parse(bytes: &[u8]) -> Option<Seen> {
        if bytes.len() < 240 || bytes[0] != 2 {
            return None;
        }
        let addr =
            |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
        let file = &bytes[108..236];
        let end = file.iter().position(|b| *b == 0).unwrap_or(file.len());
        let mut options = Vec::new();
        let mut at = 240;
        while at + 1 < bytes.len() && bytes[at] != 255 {
            if bytes[at] == 0 {
                at += 1;
                continue;
            }
            let len = bytes[at + 1] as usize;
            options.push((bytes[at], bytes.get(at + 2..at + 2 + len)?.to_vec()));
            at += 2 + len;
        }
        Some(Seen {
            yiaddr: addr(16),
            siaddr: addr(20),
            file: String::from_utf8_lossy(&file[..end]).into_owned(),
            options,
        })
    }

    fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    fn message_type(&self) -> u8 {
        self.option(53).map_or(0, |d| d[0])
    }

    fn server_id(&self) -> Option<Ipv4Addr> {
        let d: [u8; 4] = self.option(54)?.try_into().ok()?;
        Some(Ipv4Addr::from(d))
    }
}

/// Collects replies with `xid` for `window`.
fn collect(socket: &UdpSocket, xid: u32, window: Duration) -> Vec<(Seen, SocketAddr)> {
    let deadline = Instant::now() + window;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1500];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv_from(&mut buffer) {
            Ok((len, from)) => {
                let same_xid = len >= 8 && buffer[4..8] == xid.to_be_bytes();
                if let Some(reply) = Seen::parse(&buffer[..len]).filter(|_| same_xid) {
                    seen.push((reply, from));
                }
            }
            Err(_) => break,
        }
    }
    seen
}

/// What the test's PXE client saw.
struct PxeRun {
    offers: Vec<Seen>,
    dnsmasq_ack: Option<Seen>,
    replies_to_request_from_ferric: usize,
    proxy_ack: Option<(Seen, SocketAddr)>,
}

/// The PXE client: runs in a thread moved into the client namespace.
fn pxe_client(pair: &NetnsPair, mac: MacAddr) -> PxeRun {
    let netns_path = format!("/run/netns/{}", pair.client);
    let client_ns = pair.client.clone();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns_path).expect("open netns");
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("socket");
        socket.set_reuse_address(true).expect("reuse");
        socket.set_broadcast(true).expect("broadcast");
        socket.bind_device(Some(b"veth-c")).expect("bind device");
        socket
            .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 68)).into())
            .expect("bind 68");
        let socket: UdpSocket = socket.into();
        let vendor: &[u8] = b"PXEClient:Arch:00000:UNDI:002001";
        let pxe_options: [(u8, &[u8]); 4] = [
            (60, vendor),
            (93, &[0, 0]),
            (97, &[0; 17]),
            (55, &[1, 3, 43, 54, 60, 66, 67]),
        ];
        let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);

        let discover = client_message(1, mac, 0x0bad_cafe, Ipv4Addr::UNSPECIFIED, &pxe_options);
        socket.send_to(&discover, broadcast).expect("send discover");
        let offers: Vec<Seen> = collect(&socket, 0x0bad_cafe, Duration::from_secs(4))
            .into_iter()
            .map(|(s, _)| s)
            .collect();

        let address_offer = offers.iter().find(|o| !o.yiaddr.is_unspecified()).cloned();
        let mut dnsmasq_ack = None;
        let mut replies_to_request_from_ferric = 0;
        let mut proxy_ack = None;
        if let Some(offer) = address_offer {
            let server = offer.server_id().expect("dnsmasq server id").octets();
            let requested = offer.yiaddr.octets();
            let mut options = pxe_options.to_vec();
            options.push((54, &server));
            options.push((50, &requested));
            let request = client_message(3, mac, 0x0bad_cafe, Ipv4Addr::UNSPECIFIED, &options);
            socket.send_to(&request, broadcast).expect("send request");
            let replies = collect(&socket, 0x0bad_cafe, Duration::from_secs(3));
            replies_to_request_from_ferric = replies
                .iter()
                .filter(|(r, _)| r.server_id() == Some(Ipv4Addr::new(10, 98, 0, 2)))
                .count();
            dnsmasq_ack = replies
                .into_iter()
                .map(|(r, _)| r)
                .find(|r| r.message_type() == 5);
            if let Some(ack) = &dnsmasq_ack {
                let cidr = format!("{}/24", ack.yiaddr);
                run(&[
                    "ip", "-n", &client_ns, "addr", "add", &cidr, "dev", "veth-c",
                ]);
                std::thread::sleep(Duration::from_millis(300));
                let proxy_request = client_message(3, mac, 0x0bad_f00d, ack.yiaddr, &pxe_options);
                socket
                    .send_to(
                        &proxy_request,
                        SocketAddrV4::new(Ipv4Addr::new(10, 98, 0, 2), 4011),
                    )
                    .expect("send to 4011");
                proxy_ack = collect(&socket, 0x0bad_f00d, Duration::from_secs(3))
                    .into_iter()
                    .next();
            }
        }
        PxeRun {
            offers,
            dnsmasq_ack,
            replies_to_request_from_ferric,
            proxy_ack,
        }
    })
    .join()
    .expect("client thread")
}

#[test]
fn proxy_mode_beside_dnsmasq() {
    if !peers_ready("proxy_mode_beside_dnsmasq", &["ip", "busybox", "dnsmasq"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = NetnsPair::new(&["10.98.0.1/24", "10.98.0.2/24"]);
    let mac = pair.client_mac();
    let (hosts, opts) = ironic_files(dir.path(), mac, "10.98.0.2");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let _dnsmasq = Running(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &pair.server,
                "dnsmasq",
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
            ])
            .args([
                "--user=root",
                "--dhcp-range=10.98.0.100,10.98.0.150,255.255.255.0,1h",
            ])
            .args([
                "--interface=veth-s",
                "--bind-interfaces",
                "--no-ping",
                "--log-dhcp",
            ])
            .arg(format!("--dhcp-leasefile={}", path("dnsmasq.leases")))
            .arg(format!("--pid-file={}", path("dnsmasq.pid")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(path("dnsmasq.log")).expect("log"))
            .spawn()
            .expect("dnsmasq"),
    );
    wait_for_file(
        &dir.path().join("dnsmasq.log"),
        "DHCP, sockets bound",
        Duration::from_secs(10),
    );
    let server = FerricServer::start(
        &pair.server,
        &args(&[
            "--mode",
            "proxy",
            "--interface",
            "veth-s",
            "--server-ip",
            "10.98.0.2",
            "--hostsdir",
            &hosts.display().to_string(),
            "--optsdir",
            &opts.display().to_string(),
        ]),
    );
    assert!(
        server.output().contains("ready ports=67,4011"),
        "{}",
        server.output()
    );

    let seen = pxe_client(&pair, mac);
    let dnsmasq_log =
        || std::fs::read_to_string(dir.path().join("dnsmasq.log")).unwrap_or_default();
    let context = || format!("ferric:\n{}\ndnsmasq:\n{}", server.output(), dnsmasq_log());

    let address_offer = seen
        .offers
        .iter()
        .find(|o| o.server_id() == Some(Ipv4Addr::new(10, 98, 0, 1)));
    let address_offer = address_offer
        .unwrap_or_else(|| panic!("no dnsmasq offer in {:?}\n{}", seen.offers, context()));
    assert_eq!(address_offer.message_type(), 2);
    let pxe_offer = seen
        .offers
        .iter()
        .find(|o| o.server_id() == Some(Ipv4Addr::new(10, 98, 0, 2)));
    let pxe_offer =
        pxe_offer.unwrap_or_else(|| panic!("no Ferric offer in {:?}\n{}", seen.offers, context()));
    assert_eq!(pxe_offer.message_type(), 2);
    assert_eq!(pxe_offer.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(pxe_offer.option(60), Some(&b"PXEClient"[..]));
    assert_eq!(
        pxe_offer.option(43),
        Some(&[6, 1, 8, 10, 4, 0, b'P', b'X', b'E', 255][..])
    );
    assert_eq!(pxe_offer.file, "pxelinux.0");
    assert_eq!(pxe_offer.siaddr, Ipv4Addr::new(10, 98, 0, 2));

    let ack = seen
        .dnsmasq_ack
        .as_ref()
        .unwrap_or_else(|| panic!("no dnsmasq ACK\n{}", context()));
    assert_eq!(ack.yiaddr, address_offer.yiaddr);
    assert_eq!(
        seen.replies_to_request_from_ferric,
        0,
        "Ferric answered dnsmasq's REQUEST\n{}",
        context()
    );
    server.wait_for("is the address server's", Duration::from_secs(2));

    let (proxy_ack, from) = seen
        .proxy_ack
        .clone()
        .unwrap_or_else(|| panic!("no ACK on 4011\n{}", context()));
    assert_eq!(proxy_ack.message_type(), 5);
    assert_eq!(from, SocketAddr::from((Ipv4Addr::new(10, 98, 0, 2), 4011)));
    assert_eq!(proxy_ack.file, "pxelinux.0");
    assert_eq!(proxy_ack.siaddr, Ipv4Addr::new(10, 98, 0, 2));
    assert_eq!(proxy_ack.option(60), Some(&b"PXEClient"[..]));

    // A plain client still gets its lease from dnsmasq; Ferric stays out.
    run(&["ip", "-n", &pair.client, "addr", "flush", "dev", "veth-c"]);
    let out = dir.path().join("udhcpc.out");
    let script = write_script(
        dir.path(),
        "udhcpc.sh",
        &format!("echo \"$1 ip=$ip serverid=$serverid\" >> {}", out.display()),
    );
    let status = pair
        .in_client(&[
            "busybox", "udhcpc", "-f", "-q", "-n", "-i", "veth-c", "-t", "5", "-T", "1",
        ])
        .args(["-s", &script.display().to_string()])
        .status()
        .expect("udhcpc");
    assert!(status.success(), "udhcpc failed\n{}", context());
    let text = wait_for_file(&out, "bound", Duration::from_secs(5));
    assert!(
        text.contains("bound ip=10.98.0.1") && text.contains("serverid=10.98.0.1"),
        "{text}"
    );
    server.wait_for("not a PXE or HTTP boot client", Duration::from_secs(2));
}
