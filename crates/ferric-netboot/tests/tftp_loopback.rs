//! Ferric's TFTP server on 127.0.0.1 (ephemeral port) against real clients:
//! curl, tftp-hpa's `tftp`, Ferric's own client, and raw packets.
//!
//! A test whose external tool is missing is skipped with a printed reason,
//! and fails instead when FERRIC_REQUIRE_PEERS=1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_netboot::tftp::client::{fetch, ClientError, ClientOptions, Fetched};
use ferric_netboot::tftp::net::{TftpServer, TftpSettings};
use ferric_netboot::tftp::packet::{encode_ack, Mode, Packet, Request, TftpOption};
use ferric_netboot::trace::{Client, Event, EventKind, TraceSink};
use tokio::process::Command;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl TraceSink for Recorder {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn kinds(&self) -> Vec<EventKind> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.kind.clone())
            .collect()
    }

    fn clients(&self) -> Vec<Client> {
        self.0.lock().unwrap().iter().map(|e| e.client).collect()
    }
}

struct Server {
    addr: SocketAddr,
    /// `base/root` is served; `base/secret` sits just outside it.
    _base: tempfile::TempDir,
    root: PathBuf,
    trace: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut TftpSettings)) -> Server {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(base.path().join("secret"), b"top secret").unwrap();
        let mut settings = TftpSettings {
            root: root.clone(),
            listen: "127.0.0.1:0".parse().unwrap(),
            max_blksize: 65464,
            ..TftpSettings::default()
        };
        adjust(&mut settings);
        let trace = Arc::new(Recorder::default());
        let server = TftpServer::bind(settings, trace.clone()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            _base: base,
            root,
            trace,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("tftp://{}/{name}", self.addr)
    }

    fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// Bytes that differ from block to block, so that a block served twice or
/// out of place shows.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Whether an external tool is installed; skips (or, with
/// FERRIC_REQUIRE_PEERS=1, fails) when not.
fn have_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("FERRIC_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{name} is required (FERRIC_REQUIRE_PEERS=1) but not installed");
        }
        eprintln!("SKIPPED: {name} is not installed");
    }
    found
}

async fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl").args(args).output().await.unwrap()
}

async fn client_fetch(
    addr: SocketAddr,
    name: &str,
    options: ClientOptions,
) -> Result<(Fetched, Vec<u8>), ClientError> {
    let name = name.to_string();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        fetch(addr, &name, &options, &mut out).map(|done| (done, out))
    })
    .await
    .unwrap()
}

fn windowed(blksize: Option<u16>, windowsize: u16) -> ClientOptions {
    ClientOptions {
        blksize,
        windowsize: Some(windowsize),
        tsize: true,
        ..ClientOptions::default()
    }
}

fn assert_server_error(result: Result<(Fetched, Vec<u8>), ClientError>, expected_code: u16) {
    match result {
        Err(ClientError::Server { code, .. }) if code == expected_code => {}
        Err(other) => panic!("expected TFTP error {expected_code}, got {other}"),
        Ok(_) => panic!("expected TFTP error {expected_code}, got the file"),
    }
}

async fn assert_same_file(out: &Path, expected: &[u8]) {
    let got = tokio::fs::read(out).await.unwrap();
    assert_eq!(got.len(), expected.len(), "length of {}", out.display());
    assert!(got == expected, "content of {} differs", out.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_with_and_without_blksize() {
    if !have_tool("curl") {
        return;
    }
    let server = Server::start().await;
    let content = pattern(3 * 1024 * 1024 + 777, 1);
    server.write("images/deploy.kernel", &content);
    let out = tempfile::tempdir().unwrap();
    let with = out.path().join("with");
    let without = out.path().join("without");
    let url = server.url("images/deploy.kernel");
    let a = curl(&[
        "-s",
        "-S",
        &url,
        "--tftp-blksize",
        "1468",
        "-o",
        with.to_str().unwrap(),
    ])
    .await;
    assert!(
        a.status.success(),
        "curl blksize 1468: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_same_file(&with, &content).await;
    let b = curl(&["-s", "-S", &url, "-o", without.to_str().unwrap()]).await;
    assert!(
        b.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert_same_file(&without, &content).await;
    let served = EventKind::FileServed {
        protocol: "tftp",
        path: "images/deploy.kernel".into(),
        bytes: content.len() as u64,
    };
    assert_eq!(server.trace.kinds(), vec![served.clone(), served]);
    assert!(server
        .trace
        .clients()
        .iter()
        .all(|c| *c == Client::Address([127, 0, 0, 1].into())));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_fetches_an_exact_multiple_and_an_empty_file() {
    if !have_tool("curl") {
        return;
    }
    let server = Server::start().await;
    let exact = pattern(1468 * 40, 2);
    server.write("exact", &exact);
    server.write("empty", b"");
    let out = tempfile::tempdir().unwrap();
    // curl refuses an OACK with tsize 0 (tftpd-hpa's too), so the empty
    // file goes without options.
    for (name, content, flags) in [
        ("exact", &exact[..], ["--tftp-blksize", "1468"]),
        ("empty", &[][..], ["--tftp-no-options", "-s"]),
    ] {
        let path = out.path().join(name);
        let run = curl(&[
            "-s",
            "-S",
            &server.url(name),
            flags[0],
            flags[1],
            "-o",
            path.to_str().unwrap(),
        ])
        .await;
        assert!(
            run.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_same_file(&path, content).await;
    }
    let (done, got) = client_fetch(server.addr, "empty", windowed(Some(1468), 16))
        .await
        .unwrap();
    assert_eq!((done.tsize, got.len()), (Some(0), 0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tftp_hpa_client_fetches_lock_step() {
    if !have_tool("tftp") {
        return;
    }
    let server = Server::start().await;
    // tftp-hpa 5.2's client sends no options: 512-byte blocks, no OACK.
    let content = pattern(700_001, 3);
    server.write("pxelinux.0", &content);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("got");
    let run = Command::new("tftp")
        .args([
            &server.addr.ip().to_string(),
            &server.addr.port().to_string(),
            "-m",
            "binary",
            "-c",
            "get",
            "pxelinux.0",
        ])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "tftp: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_file(&path, &content).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_client_with_windowsize_16() {
    let server = Server::start().await;
    let content = pattern(5 * 1024 * 1024 + 3, 4);
    server.write("initrd", &content);
    for blksize in [Some(1468), Some(8192), None] {
        let (done, got) = client_fetch(server.addr, "initrd", windowed(blksize, 16))
            .await
            .unwrap();
        assert_eq!(done.windowsize, 16);
        assert_eq!(done.blksize, blksize.unwrap_or(512));
        assert_eq!(done.tsize, Some(content.len() as u64));
        assert!(got == content, "content differs at blksize {blksize:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowsize_is_capped_by_the_server() {
    let server = Server::start_with(|s| {
        s.max_windowsize = 4;
        s.max_blksize = 1024;
    })
    .await;
    let content = pattern(100_000, 5);
    server.write("f", &content);
    let (done, got) = client_fetch(server.addr, "f", windowed(Some(1468), 64))
        .await
        .unwrap();
    assert_eq!((done.blksize, done.windowsize), (1024, 4));
    assert!(got == content);
    server.stop().await;
}

/// A 33 MiB sparse file at 512-byte blocks needs 67585 blocks: block
/// numbers wrap from 65535 to 0.
fn write_rollover_file(server: &Server) -> Vec<u8> {
    let size = 33 * 1024 * 1024 + 100;
    let path = server.root.join("big.img");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(size as u64).unwrap();
    let mut content = vec![0u8; size];
    // Marks around the wrap and at the end, so misplaced blocks show.
    for (i, offset) in [
        0usize,
        65534 * 512,
        65535 * 512 - 3,
        65536 * 512,
        65537 * 512 + 9,
        size - 50,
    ]
    .iter()
    .enumerate()
    {
        let mark = pattern(40, i as u64 + 10);
        content[*offset..*offset + 40].copy_from_slice(&mark);
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(*offset as u64)).unwrap();
        f.write_all(&mark).unwrap();
    }
    content
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_numbers_roll_over_with_own_client() {
    let server = Server::start().await;
    let content = write_rollover_file(&server);
    let (done, got) = client_fetch(server.addr, "big.img", windowed(None, 16))
        .await
        .unwrap();
    assert_eq!(done.blksize, 512);
    assert_eq!(got.len(), content.len());
    assert!(got == content, "rolled-over content differs");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_numbers_roll_over_with_curl() {
    if !have_tool("curl") {
        return;
    }
    let server = Server::start().await;
    let content = write_rollover_file(&server);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("big");
    let run = curl(&[
        "-s",
        "-S",
        &server.url("big.img"),
        "--tftp-blksize",
        "512",
        "-o",
        path.to_str().unwrap(),
    ])
    .await;
    assert!(
        run.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_same_file(&path, &content).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_attempts_fail() {
    let server = Server::start().await;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, b"top secret").unwrap();
    std::os::unix::fs::symlink(&secret, server.root.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), server.root.join("dirlink")).unwrap();
    server.write("ok", b"fine");

    for name in ["../secret", "..\\secret", "/etc/passwd", "a/../../secret"] {
        assert_server_error(
            client_fetch(server.addr, name, ClientOptions::default()).await,
            2,
        );
    }
    for name in ["link", "dirlink/secret"] {
        assert_server_error(
            client_fetch(server.addr, name, ClientOptions::default()).await,
            2,
        );
    }
    // An absolute name under the root is accepted.
    let absolute = server.root.join("ok");
    let (_, got) = client_fetch(
        server.addr,
        absolute.to_str().unwrap(),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(got, b"fine");

    if have_tool("curl") {
        let out = tempfile::tempdir().unwrap();
        for url in [
            format!("tftp://{}/../secret", server.addr),
            format!("tftp://{}//etc/passwd", server.addr),
            format!("tftp://{}/link", server.addr),
        ] {
            let path = out.path().join("x");
            let run = curl(&["-s", "--path-as-is", &url, "-o", path.to_str().unwrap()]).await;
            assert!(!run.status.success(), "{url} was served");
            let got = std::fs::read(&path).unwrap_or_default();
            assert!(
                !got.starts_with(b"top secret") && !got.starts_with(b"root:"),
                "{url} leaked"
            );
        }
    }
    let failures = server
        .trace
        .kinds()
        .into_iter()
        .filter(|k| matches!(k, EventKind::FileFailed { bytes: 0, .. }))
        .count();
    assert!(failures >= 6, "each refusal is traced");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_directories_and_devices_are_refused() {
    let server = Server::start().await;
    std::fs::create_dir(server.root.join("dir")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", server.root.join("zero")).unwrap();
    assert_server_error(
        client_fetch(server.addr, "missing", ClientOptions::default()).await,
        1,
    );
    assert_server_error(
        client_fetch(server.addr, "dir", ClientOptions::default()).await,
        2,
    );
    assert_server_error(
        client_fetch(server.addr, "zero", ClientOptions::default()).await,
        2,
    );
    server.stop().await;
}

fn raw_socket() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    socket
}

fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (len, from) = socket.recv_from(&mut buf).unwrap();
    buf.truncate(len);
    (buf, from)
}

fn request(name: &str, options: Vec<TftpOption>) -> Request {
    Request {
        filename: name.into(),
        mode: Mode::Octet,
        options,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_requests_are_refused() {
    let server = Server::start().await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let socket = raw_socket();
        socket
            .send_to(&Packet::Wrq(request("upload", vec![])).encode(), addr)
            .unwrap();
        let (reply, _) = recv(&socket);
        assert!(
            matches!(Packet::parse(&reply), Ok(Packet::Error { code: 2, .. })),
            "{reply:?}"
        );
    })
    .await
    .unwrap();
    if have_tool("tftp") {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("up");
        std::fs::write(&local, b"data").unwrap();
        let run = Command::new("tftp")
            .args([
                &addr.ip().to_string(),
                &addr.port().to_string(),
                "-m",
                "binary",
                "-c",
                "put",
            ])
            .arg(&local)
            .arg("up")
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout).into_owned()
            + &String::from_utf8_lossy(&run.stderr);
        assert!(said.contains("Error code 2"), "tftp put: {said}");
        assert!(!server.root.join("up").exists());
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_modes_and_malformed_requests_get_errors() {
    let server = Server::start().await;
    server.write("f", b"x");
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let socket = raw_socket();
        let mut netascii = request("f", vec![]);
        netascii.mode = Mode::Netascii;
        socket
            .send_to(&Packet::Rrq(netascii).encode(), addr)
            .unwrap();
        assert!(matches!(
            Packet::parse(&recv(&socket).0),
            Ok(Packet::Error { code: 4, .. })
        ));
        socket
            .send_to(
                b"\x00\x01f\x00octet\x00blksize\x001\x00BLKSIZE\x002\x00",
                addr,
            )
            .unwrap();
        assert!(matches!(
            Packet::parse(&recv(&socket).0),
            Ok(Packet::Error { code: 8, .. })
        ));
        socket.send_to(b"\x00\x01f\x00binary\x00", addr).unwrap();
        assert!(matches!(
            Packet::parse(&recv(&socket).0),
            Ok(Packet::Error { code: 4, .. })
        ));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tid_gets_error_5_and_the_transfer_goes_on() {
    let server = Server::start().await;
    let content = pattern(700, 6);
    server.write("f", &content);
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let client = raw_socket();
        let stranger = raw_socket();
        client
            .send_to(&Packet::Rrq(request("f", vec![])).encode(), addr)
            .unwrap();
        let (first, tid) = recv(&client);
        assert_ne!(tid, addr, "the transfer uses a new port");
        assert_eq!(
            Packet::parse(&first),
            Ok(Packet::Data {
                block: 1,
                data: &content[..512]
            })
        );
        stranger.send_to(&encode_ack(1), tid).unwrap();
        let (reply, from) = recv(&stranger);
        assert_eq!(from, tid);
        assert!(
            matches!(Packet::parse(&reply), Ok(Packet::Error { code: 5, .. })),
            "{reply:?}"
        );
        client.send_to(&encode_ack(1), tid).unwrap();
        let (second, _) = recv(&client);
        assert_eq!(
            Packet::parse(&second),
            Ok(Packet::Data {
                block: 2,
                data: &content[512..]
            })
        );
        client.send_to(&encode_ack(2), tid).unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.trace.kinds(),
        vec![EventKind::FileServed {
            protocol: "tftp",
            path: "f".into(),
            bytes: 700
        }]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oack_is_sent_and_data_waits_for_ack_0() {
    let server = Server::start().await;
    server.write("f", &pattern(3000, 7));
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let client = raw_socket();
        let options = vec![TftpOption::new("BlkSize", 1000), TftpOption::new("tsize", 0), TftpOption::new("color", "red")];
        client.send_to(&Packet::Rrq(request("f", options)).encode(), addr).unwrap();
        let (oack, tid) = recv(&client);
        assert_eq!(
            Packet::parse(&oack),
            Ok(Packet::Oack(vec![TftpOption::new("blksize", 1000), TftpOption::new("tsize", 3000)]))
        );
        client.send_to(&encode_ack(0), tid).unwrap();
        let (data, _) = recv(&client);
        assert!(matches!(Packet::parse(&data), Ok(Packet::Data { block: 1, data }) if data.len() == 1000));
        // Abort: the client may end a transfer with an ERROR.
        client.send_to(&ferric_netboot::tftp::packet::encode_error(
            ferric_netboot::tftp::packet::ErrorCode::NotDefined, "enough"), tid).unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        &server.trace.kinds()[..],
        [EventKind::FileFailed { error, .. }] if error.contains("enough")
    ));
    server.stop().await;
}

/// UEFI firmware asks for tsize, then ends the transfer at the OACK: the
/// trace says the size was asked, not that a transfer failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_probe_is_traced_as_one() {
    let server = Server::start().await;
    server.write("snponly.efi", &pattern(5000, 3));
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let client = raw_socket();
        let options = vec![
            TftpOption::new("tsize", 0),
            TftpOption::new("blksize", 1468),
        ];
        client
            .send_to(&Packet::Rrq(request("snponly.efi", options)).encode(), addr)
            .unwrap();
        let (_oack, tid) = recv(&client);
        client
            .send_to(
                &ferric_netboot::tftp::packet::encode_error(
                    ferric_netboot::tftp::packet::ErrorCode::OptionNegotiation,
                    "User aborted the transfer",
                ),
                tid,
            )
            .unwrap();
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.trace.kinds(),
        vec![EventKind::FileSizeAsked {
            protocol: "tftp",
            path: "snponly.efi".into(),
            size: 5000
        }]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dozen_concurrent_transfers_are_all_correct() {
    let server = Server::start().await;
    let files: Vec<Vec<u8>> = (0..24)
        .map(|i| pattern(400_000 + i * 7919, i as u64 + 100))
        .collect();
    for (i, content) in files.iter().enumerate() {
        server.write(&format!("node{i}/kernel"), content);
    }
    let use_curl = have_tool("curl");
    let out = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for (i, content) in files.iter().cloned().enumerate() {
        let addr = server.addr;
        let name = format!("node{i}/kernel");
        if use_curl && i % 3 == 0 {
            let path = out.path().join(format!("curl{i}"));
            let url = server.url(&name);
            jobs.push(tokio::spawn(async move {
                let run = curl(&[
                    "-s",
                    "-S",
                    &url,
                    "--tftp-blksize",
                    "1468",
                    "-o",
                    path.to_str().unwrap(),
                ])
                .await;
                assert!(
                    run.status.success(),
                    "curl {i}: {}",
                    String::from_utf8_lossy(&run.stderr)
                );
                assert_same_file(&path, &content).await;
            }));
        } else {
            let options = if i % 2 == 0 {
                windowed(Some(1468), 16)
            } else {
                ClientOptions::default()
            };
            jobs.push(tokio::spawn(async move {
                let (_, got) = client_fetch(addr, &name, options).await.unwrap();
                assert!(got == content, "transfer {i} differs");
            }));
        }
    }
    for job in jobs {
        job.await.unwrap();
    }
    let served = server
        .trace
        .kinds()
        .iter()
        .filter(|k| matches!(k, EventKind::FileServed { .. }))
        .count();
    assert_eq!(served, 24);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_transfers_get_server_busy() {
    let server = Server::start_with(|s| s.max_transfers = 2).await;
    server.write("f", &pattern(10_000, 8));
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        // Two transfers that never acknowledge hold both slots.
        let holders: Vec<UdpSocket> = (0..2).map(|_| raw_socket()).collect();
        for holder in &holders {
            holder
                .send_to(&Packet::Rrq(request("f", vec![])).encode(), addr)
                .unwrap();
            assert!(matches!(
                Packet::parse(&recv(holder).0),
                Ok(Packet::Data { block: 1, .. })
            ));
        }
        let third = raw_socket();
        third
            .send_to(&Packet::Rrq(request("f", vec![])).encode(), addr)
            .unwrap();
        match Packet::parse(&recv(&third).0) {
            Ok(Packet::Error { code: 0, message }) => {
                assert!(message.contains("busy"), "{message}")
            }
            other => panic!("expected server busy, got {other:?}"),
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_transfers_time_out_after_the_retries() {
    let server = Server::start_with(|s| {
        s.timeout = Duration::from_millis(100);
        s.retries = 3;
    })
    .await;
    server.write("f", &pattern(2000, 9));
    let addr = server.addr;
    let resent = tokio::task::spawn_blocking(move || {
        let client = raw_socket();
        client
            .set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        client
            .send_to(&Packet::Rrq(request("f", vec![])).encode(), addr)
            .unwrap();
        let mut copies = 0;
        let mut buf = [0u8; 1024];
        while let Ok((len, _)) = client.recv_from(&mut buf) {
            assert!(matches!(
                Packet::parse(&buf[..len]),
                Ok(Packet::Data { block: 1, .. })
            ));
            copies += 1;
        }
        copies
    })
    .await
    .unwrap();
    assert_eq!(resent, 4, "the first send and 3 retries");
    assert!(matches!(
        &server.trace.kinds()[..],
        [EventKind::FileFailed { error, bytes: 0, .. }] if error.contains("retries")
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_answer_from_the_address_the_request_was_sent_to() {
    let server = Server::start_with(|s| s.listen = "0.0.0.0:0".parse().unwrap()).await;
    server.write("f", b"hello");
    let port = server.addr.port();
    tokio::task::spawn_blocking(move || {
        for ip in ["127.0.0.1", "127.0.0.2"] {
            let client = raw_socket();
            let to: SocketAddr = format!("{ip}:{port}").parse().unwrap();
            client
                .send_to(&Packet::Rrq(request("f", vec![])).encode(), to)
                .unwrap();
            let (data, tid) = recv(&client);
            assert_eq!(
                tid.ip().to_string(),
                ip,
                "the transfer answers from the request's address"
            );
            assert_ne!(tid.port(), port);
            assert_eq!(
                Packet::parse(&data),
                Ok(Packet::Data {
                    block: 1,
                    data: b"hello"
                })
            );
            client.send_to(&encode_ack(1), tid).unwrap();
        }
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    }
    let server = Server::start_with(|s| s.listen = "[::1]:0".parse().unwrap()).await;
    let content = pattern(200_000, 11);
    server.write("f", &content);
    let (done, got) = client_fetch(server.addr, "f", windowed(Some(1468), 16))
        .await
        .unwrap();
    assert_eq!(done.windowsize, 16);
    assert!(got == content);
    if have_tool("curl") {
        let out = tempfile::tempdir().unwrap();
        let path = out.path().join("f");
        let url = format!("tftp://[::1]:{}/f", server.addr.port());
        let run = curl(&["-s", "-S", &url, "-o", path.to_str().unwrap()]).await;
        assert!(
            run.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_same_file(&path, &content).await;
    }
    assert!(server
        .trace
        .clients()
        .iter()
        .all(|c| *c == Client::Address("::1".parse().unwrap())));
    server.stop().await;
}
