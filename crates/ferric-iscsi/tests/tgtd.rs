//! The initiator against Debian's tgt (`tgtd` + `tgtadm`): pipelined writes compared byte
//! for byte with the backing file, read-back, CHAP and mutual CHAP, errors with decoded
//! sense, UNMAP on a thin LU, discovery.
//!
//! Each test starts its own `tgtd -f --iscsi portal=127.0.0.1:PORT -C N` (its own
//! control port, so it clashes with no other tgtd) under `timeout -s KILL 300`, and a
//! [`Tgtd`] guard removes the target, stops tgtd and kills it as a last resort, even when
//! the test fails. Without tgtd installed the tests print why and pass, unless
//! FERRIC_REQUIRE_PEERS=1.

#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferric_iscsi::chap::ChapCredentials;
use ferric_iscsi::net::initiator::{Error, InitiatorConfig, Session};

const TGTD: &str = "/usr/sbin/tgtd";
const TGTADM: &str = "/usr/sbin/tgtadm";
const IQN: &str = "iqn.2024-01.org.ferric:tgtd-test";
const INITIATOR: &str = "iqn.2024-01.org.ferric:conductor";
const DISK_SIZE: u64 = 64 << 20;
const BLOCK: u64 = 512;
/// Every test ends within this, tgtd included.
const TEST_LIMIT: Duration = Duration::from_secs(120);

/// CHAP accounts to create on the target.
#[derive(Default, Clone)]
struct Accounts {
    /// The initiator must log in with these.
    incoming: Option<(&'static str, &'static str)>,
    /// The target proves itself with these (mutual CHAP).
    outgoing: Option<(&'static str, &'static str)>,
}

/// A running tgtd with one target and LUN 1 on a temporary file.
struct Tgtd {
    timeout_process: Child,
    port: u16,
    control: u16,
    backing: PathBuf,
    _dir: tempfile::TempDir,
}

fn peers_required() -> bool {
    std::env::var("FERRIC_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// `None` (after printing why) when tgt is not installed and not required.
fn tgtd_available() -> bool {
    let present = Path::new(TGTD).exists() && Path::new(TGTADM).exists();
    if !present {
        assert!(
            !peers_required(),
            "FERRIC_REQUIRE_PEERS=1 but {TGTD} or {TGTADM} is missing"
        );
        eprintln!("skipped: {TGTD} / {TGTADM} not installed (Debian package tgt)");
    }
    present
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Whether a tgtd answers on control port `control`.
fn control_port_in_use(control: u16) -> bool {
    Command::new("timeout")
        .args(["10", TGTADM, "--lld", "iscsi", "-C", &control.to_string()])
        .args(["--mode", "system", "--op", "show"])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// A tgtd control port (a short int) no running tgtd uses, derived from the TCP port.
fn free_control_port(port: u16) -> u16 {
    let mut control = 1000 + port % 30_000;
    while control_port_in_use(control) {
        control = 1000 + (control + 1) % 30_000;
    }
    control
}

impl Tgtd {
    fn start(accounts: Accounts, thin: bool) -> Option<Tgtd> {
        if !tgtd_available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("disk.img");
        std::fs::File::create(&backing)
            .unwrap()
            .set_len(DISK_SIZE)
            .unwrap();
        let port = free_port();
        let control = free_control_port(port);
        let log = std::fs::File::create(dir.path().join("tgtd.log")).unwrap();
        let timeout_process = Command::new("timeout")
            .args(["-s", "KILL", "300", TGTD, "-f", "--iscsi"])
            .arg(format!("portal=127.0.0.1:{port}"))
            .args(["-C", &control.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start tgtd");
        let mut tgtd = Tgtd {
            timeout_process,
            port,
            control,
            backing,
            _dir: dir,
        };
        tgtd.wait_for_control();
        tgtd.configure(&accounts, thin);
        Some(tgtd)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Runs tgtadm on this tgtd's control port, bounded.
    fn tgtadm(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("timeout")
            .args([
                "30",
                TGTADM,
                "--lld",
                "iscsi",
                "-C",
                &self.control.to_string(),
            ])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tgtadm {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn wait_for_control(&mut self) {
        let start = Instant::now();
        while self.tgtadm(&["--mode", "system", "--op", "show"]).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "tgtd did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Not another tgtd that took the control port meanwhile: ours is still running.
        assert!(
            matches!(self.timeout_process.try_wait(), Ok(None)),
            "tgtd exited at start (control port {} taken?)",
            self.control
        );
    }

    fn configure(&self, accounts: &Accounts, thin: bool) {
        let backing = self.backing.to_str().unwrap();
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "--mode",
                "target",
                "--op",
                "new",
                "--tid",
                "1",
                "--targetname",
                IQN,
            ],
            vec![
                "--mode",
                "logicalunit",
                "--op",
                "new",
                "--tid",
                "1",
                "--lun",
                "1",
                "--backing-store",
                backing,
            ],
            vec![
                "--mode",
                "target",
                "--op",
                "bind",
                "--tid",
                "1",
                "--initiator-address",
                "ALL",
            ],
        ];
        for step in steps {
            self.tgtadm(&step).unwrap();
        }
        if thin {
            self.tgtadm(&[
                "--mode",
                "logicalunit",
                "--op",
                "update",
                "--tid",
                "1",
                "--lun",
                "1",
                "--params",
                "thin_provisioning=1",
            ])
            .unwrap();
        }
        if let Some((user, secret)) = accounts.incoming {
            self.tgtadm(&[
                "--mode",
                "account",
                "--op",
                "new",
                "--user",
                user,
                "--password",
                secret,
            ])
            .unwrap();
            self.tgtadm(&[
                "--mode", "account", "--op", "bind", "--tid", "1", "--user", user,
            ])
            .unwrap();
        }
        if let Some((user, secret)) = accounts.outgoing {
            self.tgtadm(&[
                "--mode",
                "account",
                "--op",
                "new",
                "--user",
                user,
                "--password",
                secret,
            ])
            .unwrap();
            self.tgtadm(&[
                "--mode",
                "account",
                "--op",
                "bind",
                "--tid",
                "1",
                "--user",
                user,
                "--outgoing",
            ])
            .unwrap();
        }
    }

    fn backing_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.backing).unwrap()
    }
}

impl Drop for Tgtd {
    fn drop(&mut self) {
        self.stop();
        // tgtd leaves its control socket and lock file behind.
        let socket = format!("/var/run/tgtd/socket.{}", self.control);
        let _ = std::fs::remove_file(format!("{socket}.lock"));
        let _ = std::fs::remove_file(socket);
    }
}

impl Tgtd {
    /// Removes the target and asks tgtd to exit; kills it after 5 s.
    fn stop(&mut self) {
        let _ = self.tgtadm(&[
            "--mode", "target", "--op", "delete", "--force", "--tid", "1",
        ]);
        let _ = self.tgtadm(&["--mode", "system", "--op", "delete"]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.timeout_process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Last resort: tgtd by its parent's pid (the timeout process), then timeout.
        let parent = self.timeout_process.id().to_string();
        if let Ok(out) = Command::new("pgrep").args(["-P", &parent]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = self.timeout_process.kill();
        let _ = self.timeout_process.wait();
    }
}

fn config() -> InitiatorConfig {
    InitiatorConfig {
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(30),
        ..InitiatorConfig::new(INITIATOR, IQN)
    }
}

/// Deterministic bytes that differ per position and per write.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn bounded<T>(test: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, test)
        .await
        .expect("test took too long")
}

/// Writes `regions` (LBA, bytes, chunk) with pipelined submit_write, flushes, and
/// returns the image the backing file must now hold.
async fn write_regions(session: &Session, regions: &[(u64, usize, usize)]) -> Vec<u8> {
    let mut image = vec![0u8; DISK_SIZE as usize];
    for (i, &(lba, len, chunk)) in regions.iter().enumerate() {
        let data = pattern(i as u64 + 1, len);
        let start = (lba * BLOCK) as usize;
        image[start..start + len].copy_from_slice(&data);
        for (n, piece) in data.chunks(chunk).enumerate() {
            let at = lba + (n * chunk) as u64 / BLOCK;
            session.submit_write(at, piece.to_vec()).await.unwrap();
        }
    }
    session.flush().await.unwrap();
    image
}

fn assert_same(image: &[u8], backing: &[u8]) {
    assert_eq!(image.len(), backing.len());
    if let Some(at) = image.iter().zip(backing).position(|(a, b)| a != b) {
        panic!(
            "backing file differs from what was written at byte {at} (LBA {})",
            at as u64 / BLOCK
        );
    }
}

#[tokio::test]
async fn pipelined_writes_land_byte_for_byte_and_read_back() {
    let Some(tgtd) = Tgtd::start(Accounts::default(), false) else {
        return;
    };
    bounded(async {
        let session = Session::connect(tgtd.addr(), config()).await.unwrap();
        let capacity = session.read_capacity().await.unwrap();
        assert_eq!(
            (capacity.block_size, capacity.blocks),
            (512, DISK_SIZE / BLOCK)
        );
        assert!(!capacity.thin && !capacity.reads_zeros);
        let limits = session.block_limits().await.unwrap();
        eprintln!("tgtd block limits: {limits:?}");

        let last_mib = DISK_SIZE / BLOCK - 2048;
        let regions = [
            (0, 8 << 20, 1 << 20),
            (20_001, 3 << 20, 256 << 10),
            (50_000, 4 << 20, 2 << 20),
            (90_000, 1 << 20, 4096),
            (last_mib, 1 << 20, 512 << 10),
        ];
        let image = write_regions(&session, &regions).await;
        let back = session.read(20_001, 4096).await.unwrap();
        let start = 20_001 * BLOCK as usize;
        assert_eq!(back, image[start..start + back.len()]);
        let tail = session.read(DISK_SIZE / BLOCK - 1, 1).await.unwrap();
        assert_eq!(tail, image[image.len() - 512..]);
        session.logout().await.unwrap();
        assert_same(&image, &tgtd.backing_bytes());
    })
    .await;
}

#[tokio::test]
async fn lba_past_the_end_fails_with_the_decoded_sense() {
    let Some(tgtd) = Tgtd::start(Accounts::default(), false) else {
        return;
    };
    bounded(async {
        let session = Session::connect(tgtd.addr(), config()).await.unwrap();
        let end = DISK_SIZE / BLOCK;
        session.submit_write(end, vec![0xaa; 4096]).await.unwrap();
        let error = session.flush().await.unwrap_err();
        let first = error.clone();
        let Error::Scsi { command, lba, sense: Some(sense), .. } = &error else {
            panic!("not a SCSI error with sense: {error:?}");
        };
        assert_eq!((*command, *lba, sense.key, sense.asc, sense.ascq), ("WRITE(16)", Some(end), 5, 0x21, 0));
        assert_eq!(
            error.to_string(),
            format!(
                "WRITE(16) at LBA {end} failed with SCSI status CHECK CONDITION: ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE"
            )
        );
        let error = session.read(end - 1, 2).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "READ(16) at LBA {} failed with SCSI status CHECK CONDITION: ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE",
                end - 1
            )
        );
        // The first write error sticks: later writes and flushes return it, so a deploy
        // cannot carry on past a lost write; other commands still work.
        let again = session.submit_write(0, vec![0x55; 512]).await.unwrap_err();
        assert_eq!(again.to_string(), first.to_string());
        assert_eq!(session.flush().await.unwrap_err().to_string(), first.to_string());
        assert_eq!(session.read(0, 1).await.unwrap(), vec![0; 512]);
        assert_eq!(
            session.unmap(0, 8).await.unwrap_err().to_string(),
            "the logical unit is not thin-provisioned (LBPME=0): it cannot unmap"
        );
        session.logout().await.unwrap();
        assert_eq!(tgtd.backing_bytes()[..512], [0; 512]);
    })
    .await;
}

const USER: &str = "conductor";
const SECRET: &str = "s3cret-secret-16";
const TARGET_USER: &str = "agent";
const TARGET_SECRET: &str = "mutual-secret-17b";

fn chap(user: &str, secret: &str) -> ChapCredentials {
    ChapCredentials::new(user, secret.as_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn chap_logs_in_and_a_wrong_secret_is_an_authentication_failure() {
    let accounts = Accounts {
        incoming: Some((USER, SECRET)),
        outgoing: None,
    };
    let Some(tgtd) = Tgtd::start(accounts, false) else {
        return;
    };
    bounded(async {
        let mut wrong = config();
        wrong.chap = Some(chap(USER, "not-the-secret-1"));
        let error = Session::connect(tgtd.addr(), wrong).await.unwrap_err();
        assert!(matches!(error, Error::Login(_)), "{error:?}");
        assert!(error.to_string().contains("authentication"), "{error}");
        eprintln!("wrong secret: {error}");

        let none = Session::connect(tgtd.addr(), config()).await.unwrap_err();
        assert!(matches!(none, Error::Login(_)), "{none:?}");

        let mut right = config();
        right.chap = Some(chap(USER, SECRET));
        let session = Session::connect(tgtd.addr(), right).await.unwrap();
        let image = write_regions(&session, &[(100, 1 << 20, 128 << 10)]).await;
        session.logout().await.unwrap();
        assert_same(&image, &tgtd.backing_bytes());
    })
    .await;
}

#[tokio::test]
async fn mutual_chap_checks_the_target() {
    let accounts = Accounts {
        incoming: Some((USER, SECRET)),
        outgoing: Some((TARGET_USER, TARGET_SECRET)),
    };
    let Some(tgtd) = Tgtd::start(accounts, false) else {
        return;
    };
    bounded(async {
        let mut wrong = config();
        wrong.chap = Some(chap(USER, SECRET));
        wrong.mutual_chap = Some(chap(TARGET_USER, "another-secret-99"));
        let error = Session::connect(tgtd.addr(), wrong).await.unwrap_err();
        assert!(matches!(error, Error::Login(_)), "{error:?}");
        eprintln!("wrong mutual secret: {error}");

        let mut right = config();
        right.chap = Some(chap(USER, SECRET));
        right.mutual_chap = Some(chap(TARGET_USER, TARGET_SECRET));
        let session = Session::connect(tgtd.addr(), right).await.unwrap();
        let image = write_regions(&session, &[(7, 2 << 20, 1 << 20)]).await;
        session.logout().await.unwrap();
        assert_same(&image, &tgtd.backing_bytes());
    })
    .await;
}

#[tokio::test]
async fn unmap_on_a_thin_lu_reads_back_zeros() {
    let Some(tgtd) = Tgtd::start(Accounts::default(), true) else {
        return;
    };
    bounded(async {
        let session = Session::connect(tgtd.addr(), config()).await.unwrap();
        let capacity = session.read_capacity().await.unwrap();
        assert!(capacity.thin, "{capacity:?}");
        eprintln!(
            "thin tgtd: {capacity:?}, {:?}, {:?}",
            session.provisioning().await.unwrap(),
            session.block_limits().await.unwrap()
        );
        let mut image = write_regions(&session, &[(0, 4 << 20, 1 << 20)]).await;
        session.unmap(2048, 4096).await.unwrap();
        image[2048 * 512..(2048 + 4096) * 512].fill(0);
        assert_eq!(session.read(2048, 8).await.unwrap(), vec![0; 4096]);
        session.logout().await.unwrap();
        assert_same(&image, &tgtd.backing_bytes());
    })
    .await;
}

#[tokio::test]
async fn discovery_lists_the_target() {
    let Some(tgtd) = Tgtd::start(Accounts::default(), false) else {
        return;
    };
    bounded(async {
        let targets = Session::discover(tgtd.addr(), INITIATOR, None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(targets.len(), 1, "{targets:?}");
        assert_eq!(targets[0].0, IQN);
        assert!(
            targets[0]
                .1
                .iter()
                .any(|a| a.starts_with(&format!("127.0.0.1:{}", tgtd.port))),
            "{targets:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Failures that need no tgtd: a closed port, a silent portal, and a fake target (our own
// login machine) that misbehaves after the login.

/// How the fake target behaves after the login.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Reads everything, answers nothing.
    Silent,
    /// Answers the first command with Data-In for a task that does not exist.
    BogusDataIn,
    /// Closes the connection.
    Hangs,
}

/// A target on 127.0.0.1 that logs one initiator in (no CHAP), then misbehaves.
async fn fake_target(misbehaviour: Misbehaviour) -> SocketAddr {
    use ferric_iscsi::digest::Digests;
    use ferric_iscsi::login::{TargetConfig, TargetLogin, TargetStep};
    use ferric_iscsi::pdu::{self, DataIn, Pdu, WireConfig, BHS_LEN};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_pdu(stream: &mut tokio::net::TcpStream, wire: &WireConfig) -> Option<Pdu> {
        let mut bhs = [0u8; BHS_LEN];
        stream.read_exact(&mut bhs).await.ok()?;
        let mut frame = bhs.to_vec();
        frame.resize(BHS_LEN + pdu::remaining_len(&bhs, wire).ok()?, 0);
        stream.read_exact(&mut frame[BHS_LEN..]).await.ok()?;
        Pdu::decode(&frame, wire).ok()
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let config = std::sync::Arc::new(TargetConfig::new(vec![IQN.to_string()]));
        let mut login = TargetLogin::new(config, 1, &mut rand::rng());
        let established = loop {
            let Some(Pdu::LoginRequest(req)) = read_pdu(&mut stream, &WireConfig::LOGIN).await
            else {
                return;
            };
            match login.handle(&req) {
                TargetStep::Continue(rsp) => stream
                    .write_all(&Pdu::LoginResponse(rsp).encode(Digests::NONE))
                    .await
                    .unwrap(),
                TargetStep::Done(rsp, established) => {
                    stream
                        .write_all(&Pdu::LoginResponse(rsp).encode(Digests::NONE))
                        .await
                        .unwrap();
                    break established;
                }
                TargetStep::Fail(..) => return,
            }
        };
        let wire = WireConfig::new(Digests::NONE, 1 << 20);
        match misbehaviour {
            Misbehaviour::Hangs => drop(stream),
            Misbehaviour::Silent => while read_pdu(&mut stream, &wire).await.is_some() {},
            Misbehaviour::BogusDataIn => {
                let Some(Pdu::ScsiCommand(cmd)) = read_pdu(&mut stream, &wire).await else {
                    return;
                };
                let data_in = DataIn {
                    itt: cmd.itt.wrapping_add(1000),
                    ttt: 0xffff_ffff,
                    stat_sn: established.stat_sn,
                    exp_cmd_sn: cmd.cmd_sn.wrapping_add(1),
                    max_cmd_sn: cmd.cmd_sn.wrapping_add(8),
                    data: vec![0; 8],
                    ..Default::default()
                };
                let bytes = Pdu::DataIn(data_in).encode(Digests::NONE);
                stream.write_all(&bytes).await.unwrap();
                while read_pdu(&mut stream, &wire).await.is_some() {}
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_closed_port_is_a_connect_error_naming_the_address() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let error = bounded(Session::connect(addr, config())).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("cannot connect to the iSCSI target at {addr}: Connection refused (os error 111)")
    );
}

#[tokio::test]
async fn a_portal_that_never_answers_the_login_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut quick = config();
    quick.connect_timeout = Duration::from_millis(300);
    let error = bounded(Session::connect(addr, quick)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("iSCSI timeout: login to {IQN} at {addr}: no answer within 300ms")
    );
    drop(listener);
}

#[tokio::test]
async fn an_unanswered_command_times_out_naming_it() {
    let addr = fake_target(Misbehaviour::Silent).await;
    let mut quick = config();
    quick.command_timeout = Duration::from_millis(300);
    let error = bounded(Session::connect(addr, quick)).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "iSCSI timeout: TEST UNIT READY: no answer within 300ms"
    );
}

#[tokio::test]
async fn a_protocol_violation_ends_the_session_with_what_the_target_did() {
    let addr = fake_target(Misbehaviour::BogusDataIn).await;
    let error = bounded(Session::connect(addr, config())).await.unwrap_err();
    assert!(matches!(error, Error::Protocol(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "iSCSI protocol error by the target: Data-In for unknown task 0x000003e9"
    );
}

#[tokio::test]
async fn a_target_hanging_up_is_reported_as_closed() {
    let addr = fake_target(Misbehaviour::Hangs).await;
    let error = bounded(Session::connect(addr, config())).await.unwrap_err();
    assert!(matches!(error, Error::Closed(_)), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the iSCSI connection is closed: the target closed the connection"
    );
}

// ---------------------------------------------------------------------------------------
// The same against our own target server (helper C's TargetServer over helper B's Disk).

async fn ferric_target(
    chap: Option<ChapCredentials>,
) -> (
    ferric_iscsi::net::target::TargetServer,
    tempfile::TempDir,
    PathBuf,
) {
    use ferric_iscsi::net::target::{TargetConfig, TargetServer};
    use ferric_iscsi::scsi::{Disk, FileBacking, Identity, LogicalUnits};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(DISK_SIZE)
        .unwrap();
    let disk = Disk::new(
        FileBacking::open(&path, false).unwrap(),
        Identity::new("ferric-test"),
        512,
        false,
    );
    let mut luns = LogicalUnits::new();
    luns.add(1, disk).unwrap();
    let mut config = TargetConfig::new(IQN);
    config.chap = chap;
    let server = TargetServer::bind("127.0.0.1:0".parse().unwrap(), config, luns)
        .await
        .unwrap();
    (server, dir, path)
}

#[tokio::test]
async fn pipelined_writes_to_the_ferric_target_land_byte_for_byte() {
    bounded(async {
        let (server, _dir, path) = ferric_target(None).await;
        let session = Session::connect(server.local_addr(), config()).await.unwrap();
        let capacity = session.read_capacity().await.unwrap();
        assert_eq!((capacity.block_size, capacity.blocks), (512, DISK_SIZE / BLOCK));
        eprintln!(
            "ferric target: {capacity:?}, {:?}, {:?}",
            session.block_limits().await.unwrap(),
            session.provisioning().await.unwrap()
        );
        let regions = [
            (0, 8 << 20, 1 << 20),
            (20_001, 3 << 20, 256 << 10),
            (90_000, 1 << 20, 4096),
            (DISK_SIZE / BLOCK - 2048, 1 << 20, 512 << 10),
        ];
        let mut image = write_regions(&session, &regions).await;
        let back = session.read(20_001, 4096).await.unwrap();
        let start = 20_001 * BLOCK as usize;
        assert_eq!(back, image[start..start + back.len()]);
        session.unmap(1024, 2048).await.unwrap();
        image[1024 * 512..3072 * 512].fill(0);
        assert_eq!(session.read(1024, 8).await.unwrap(), vec![0; 4096]);

        let end = DISK_SIZE / BLOCK;
        let error = session.read(end, 1).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "READ(16) at LBA {end} failed with SCSI status CHECK CONDITION: ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE"
            )
        );
        session.logout().await.unwrap();
        server.shutdown().await.unwrap();
        assert_same(&image, &std::fs::read(&path).unwrap());
    })
    .await;
}

#[tokio::test]
async fn the_ferric_target_with_chap() {
    bounded(async {
        let (server, _dir, path) = ferric_target(Some(chap(USER, SECRET))).await;
        let mut wrong = config();
        wrong.chap = Some(chap(USER, "not-the-secret-1"));
        let error = Session::connect(server.local_addr(), wrong)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("authentication"), "{error}");
        let mut right = config();
        right.chap = Some(chap(USER, SECRET));
        let session = Session::connect(server.local_addr(), right).await.unwrap();
        let image = write_regions(&session, &[(64, 2 << 20, 1 << 20)]).await;
        session.logout().await.unwrap();
        server.shutdown().await.unwrap();
        assert_same(&image, &std::fs::read(&path).unwrap());
    })
    .await;
}

#[tokio::test]
async fn crc32c_header_and_data_digests_against_tgtd() {
    use ferric_iscsi::digest::DigestType;
    let Some(tgtd) = Tgtd::start(Accounts::default(), false) else {
        return;
    };
    for key in ["HeaderDigest", "DataDigest"] {
        tgtd.tgtadm(&[
            "--mode", "target", "--op", "update", "--tid", "1", "--name", key, "--value", "CRC32C",
        ])
        .unwrap();
    }
    bounded(async {
        let mut digests = config();
        digests.limits.header_digests = vec![DigestType::Crc32c];
        digests.limits.data_digests = vec![DigestType::Crc32c];
        let session = Session::connect(tgtd.addr(), digests).await.unwrap();
        let image = write_regions(
            &session,
            &[(0, 4 << 20, 1 << 20), (40_000, 1 << 20, 64 << 10)],
        )
        .await;
        assert_eq!(
            session.read(40_000, 2048).await.unwrap(),
            image[40_000 * 512..(40_000 + 2048) * 512]
        );
        session.logout().await.unwrap();
        assert_same(&image, &tgtd.backing_bytes());
    })
    .await;
}
