//! The tokio TFTP server: one listening socket, and per read request a task
//! with its own socket (a new TID, RFC 1350) on the local address the
//! request was sent to.
//!
//! Files are resolved lexically ([`super::path`]), then canonicalized and
//! refused when their real path leaves the canonical root (symlinks out of
//! the root), and must be regular files. They are read window by window
//! with positional reads on the blocking pool, never whole.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::sys::socket::{
    self as nixsock, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn,
    SockaddrIn6, SockaddrStorage,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use super::options::{negotiate, Limits};
use super::packet::{encode_error, ErrorCode, Mode, Packet, PacketError, Request, MAX_BLKSIZE};
use super::path::{self, PathError};
use super::transfer::{Action, ReadTransfer};
use crate::trace::{Client, Event, EventKind, TraceSink};

/// How the server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpSettings {
    /// The directory served; nothing outside it is ever sent.
    pub root: PathBuf,
    /// Where requests arrive, e.g. `0.0.0.0:69` or `127.0.0.1:6969`.
    pub listen: SocketAddr,
    /// Largest block size granted (8..=65464). The default, 1468, fills one
    /// 1500-byte Ethernet frame (1500 - 20 IP - 8 UDP - 4 TFTP): larger
    /// blocks are IP-fragmented on ordinary networks, and one lost fragment
    /// loses the whole block, while some PXE ROMs handle fragments badly.
    /// Raise it for jumbo-frame networks.
    pub max_blksize: u16,
    /// Largest window granted (1..=65535). A transfer holds about two
    /// windows of memory: its DATA packets and the read buffer.
    pub max_windowsize: u16,
    /// Retransmission timeout when the client sets none.
    pub timeout: Duration,
    /// Timeouts (seconds) a client may ask for with the timeout option.
    pub client_timeouts: RangeInclusive<u8>,
    /// Resends without progress before a transfer is given up.
    pub retries: u32,
    /// Transfers at once; requests beyond it get ERROR 0 "server busy".
    pub max_transfers: usize,
}

impl Default for TftpSettings {
    fn default() -> TftpSettings {
        let limits = Limits::default();
        TftpSettings {
            root: PathBuf::from("/srv/tftp"),
            listen: SocketAddr::from(([0, 0, 0, 0], 69)),
            max_blksize: limits.max_blksize,
            max_windowsize: limits.max_windowsize,
            timeout: limits.default_timeout,
            client_timeouts: limits.timeouts,
            retries: 5,
            max_transfers: 64,
        }
    }
}

impl TftpSettings {
    fn validate(&self) -> Result<(), ServerError> {
        let bad = |why: &str| Err(ServerError::Settings(why.to_string()));
        if !(8..=MAX_BLKSIZE as u16).contains(&self.max_blksize) {
            return bad("max_blksize must be within 8..=65464");
        }
        if self.max_windowsize == 0 {
            return bad("max_windowsize must be at least 1");
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive");
        }
        if self.max_transfers == 0 {
            return bad("max_transfers must be at least 1");
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            max_blksize: self.max_blksize,
            max_windowsize: self.max_windowsize,
            timeouts: self.client_timeouts.clone(),
            default_timeout: self.timeout,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid TFTP settings: {0}")]
    Settings(String),
    #[error("TFTP root {path}: {source}")]
    Root { path: PathBuf, source: io::Error },
    #[error("TFTP root {0} is not a directory")]
    RootNotADirectory(PathBuf),
    #[error("binding TFTP socket {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Starts a server and runs it until `shutdown` resolves.
pub async fn serve(
    settings: TftpSettings,
    trace: Arc<dyn TraceSink>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    TftpServer::bind(settings, trace).await?.run(shutdown).await
}

/// A bound server; [`TftpServer::run`] serves requests.
pub struct TftpServer {
    socket: UdpSocket,
    shared: Arc<Shared>,
}

struct Shared {
    settings: TftpSettings,
    limits: Limits,
    /// The root as configured, made absolute: matched against absolute
    /// request names.
    root: PathBuf,
    canonical_root: PathBuf,
    trace: Arc<dyn TraceSink>,
    slots: Arc<Semaphore>,
}

impl TftpServer {
    /// Checks the settings and the root, and binds the listening socket.
    pub async fn bind(
        settings: TftpSettings,
        trace: Arc<dyn TraceSink>,
    ) -> Result<TftpServer, ServerError> {
        settings.validate()?;
        let root_error = |source| ServerError::Root {
            path: settings.root.clone(),
            source,
        };
        let root = std::path::absolute(&settings.root).map_err(root_error)?;
        let canonical_root = tokio::fs::canonicalize(&root).await.map_err(root_error)?;
        if !canonical_root.is_dir() {
            return Err(ServerError::RootNotADirectory(settings.root.clone()));
        }
        let socket = bind_listener(settings.listen)?;
        tracing::info!(listen = %settings.listen, root = %canonical_root.display(), "TFTP server bound");
        let shared = Shared {
            limits: settings.limits(),
            slots: Arc::new(Semaphore::new(settings.max_transfers)),
            settings,
            root,
            canonical_root,
            trace,
        };
        Ok(TftpServer {
            socket,
            shared: Arc::new(shared),
        })
    }

    /// The bound address (with the real port when the port was 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown` resolves; transfers still running then are
    /// aborted. Errors receiving on the socket are logged, not fatal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::pin!(shutdown);
        let mut transfers = JoinSet::new();
        let mut buf = vec![0u8; 2048];
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = transfers.join_next(), if !transfers.is_empty() => {
                    if let Err(error) = done {
                        tracing::error!(%error, "TFTP transfer task failed");
                    }
                }
                received = recv_with_destination(&self.socket, &mut buf) => match received {
                    Ok(datagram) => {
                        if let Some(job) = self.dispatch(&datagram, &buf[..datagram.len]) {
                            transfers.spawn(job);
                        }
                    }
                    Err(error) => {
                        // Transient (ENOBUFS, a queued ICMP error): keep
                        // serving, without spinning on a persistent one.
                        tracing::warn!(%error, "receiving on the TFTP socket");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
            }
        }
        tracing::info!(running = transfers.len(), "TFTP server stopping");
        transfers.shutdown().await;
        Ok(())
    }

    /// Answers one datagram on the listening socket; a read request that
    /// can be served becomes a transfer future.
    fn dispatch(
        &self,
        datagram: &Datagram,
        bytes: &[u8],
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let peer = datagram.from;
        let reply_from = datagram
            .local_ip
            .unwrap_or_else(|| self.shared.settings.listen.ip());
        match Packet::parse(bytes) {
            Ok(Packet::Rrq(request)) => self.accept_read(request, peer, reply_from),
            Ok(Packet::Wrq(request)) => {
                let error = "read-only server: write requests are refused";
                self.shared.refuse(
                    peer,
                    reply_from,
                    &request.filename,
                    ErrorCode::AccessViolation,
                    error,
                );
                None
            }
            Err(error) if is_request(bytes) => {
                let code = match error {
                    PacketError::DuplicateOption(_) => ErrorCode::OptionNegotiation,
                    _ => ErrorCode::IllegalOperation,
                };
                tracing::debug!(%peer, %error, "malformed TFTP request");
                send_error_from(reply_from, peer, code, &error.to_string());
                None
            }
            Ok(other) => {
                tracing::debug!(%peer, packet = ?opcode_name(&other), "ignoring non-request on the TFTP port");
                None
            }
            Err(error) => {
                tracing::debug!(%peer, %error, "ignoring junk on the TFTP port");
                None
            }
        }
    }

    fn accept_read(
        &self,
        request: Request,
        peer: SocketAddr,
        local_ip: IpAddr,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        if request.mode != Mode::Octet {
            let error = format!(
                "{} mode is not supported, use octet (binary)",
                request.mode.as_str()
            );
            self.shared.refuse(
                peer,
                local_ip,
                &request.filename,
                ErrorCode::IllegalOperation,
                &error,
            );
            return None;
        }
        let Ok(permit) = Arc::clone(&self.shared.slots).try_acquire_owned() else {
            self.shared.refuse(
                peer,
                local_ip,
                &request.filename,
                ErrorCode::NotDefined,
                "server busy",
            );
            return None;
        };
        let shared = Arc::clone(&self.shared);
        Some(async move { shared.run_transfer(request, peer, local_ip, permit).await })
    }
}

fn is_request(bytes: &[u8]) -> bool {
    matches!(bytes, [0, 1 | 2, ..])
}

fn opcode_name(packet: &Packet<'_>) -> &'static str {
    match packet {
        Packet::Rrq(_) => "RRQ",
        Packet::Wrq(_) => "WRQ",
        Packet::Data { .. } => "DATA",
        Packet::Ack { .. } => "ACK",
        Packet::Error { .. } => "ERROR",
        Packet::Oack(_) => "OACK",
    }
}

/// How a transfer ended early.
struct Failure {
    /// Bytes the client acknowledged.
    bytes: u64,
    error: String,
    /// The client answered the OACK with an ERROR.
    ended_after_oack: bool,
}

/// A file opened for a transfer, or why not.
struct Opened {
    file: Arc<File>,
    size: u64,
}

struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    fn from_io(error: &io::Error) -> Refusal {
        match error.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                Refusal::new(ErrorCode::FileNotFound, "file not found")
            }
            io::ErrorKind::PermissionDenied => {
                Refusal::new(ErrorCode::AccessViolation, "permission denied")
            }
            _ => Refusal::new(ErrorCode::NotDefined, format!("cannot open file: {error}")),
        }
    }
}

impl Shared {
    async fn run_transfer(
        self: Arc<Self>,
        request: Request,
        peer: SocketAddr,
        local_ip: IpAddr,
        _permit: OwnedSemaphorePermit,
    ) {
        let name = request.filename.as_str();
        let Some(socket) = self.transfer_socket(peer, local_ip, name).await else {
            return;
        };
        let Some(opened) = self.open_or_refuse(&socket, peer, name).await else {
            return;
        };
        let negotiated = negotiate(&request.options, &self.limits, Some(opened.size));
        tracing::debug!(
            %peer, file = %name, size = opened.size, blksize = negotiated.blksize,
            windowsize = negotiated.windowsize, "TFTP transfer starting"
        );
        let mut driver = Driver {
            socket,
            peer,
            file: opened.file,
            transfer: ReadTransfer::new(&negotiated, opened.size, self.settings.retries),
            gso: true,
            answered_oack: false,
        };
        let size_offered = negotiated
            .acknowledged
            .iter()
            .any(|o| o.name == "tsize")
            .then_some(opened.size);
        let outcome = driver.run().await;
        self.report(peer, name, outcome, size_offered);
    }

    /// A new socket (a new TID) on the local address the request came to.
    async fn transfer_socket(
        &self,
        peer: SocketAddr,
        local_ip: IpAddr,
        name: &str,
    ) -> Option<UdpSocket> {
        match UdpSocket::bind(SocketAddr::new(local_ip, 0)).await {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(%peer, %local_ip, %error, "cannot bind a TFTP transfer socket");
                self.record_failed(peer, name, 0, format!("no transfer socket: {error}"));
                None
            }
        }
    }

    /// Opens the file off the runtime; on refusal tells the client and
    /// traces it.
    async fn open_or_refuse(
        self: &Arc<Self>,
        socket: &UdpSocket,
        peer: SocketAddr,
        name: &str,
    ) -> Option<Opened> {
        let shared = Arc::clone(self);
        let requested = name.to_string();
        let refusal = match tokio::task::spawn_blocking(move || shared.open(&requested)).await {
            Ok(Ok(opened)) => return Some(opened),
            Ok(Err(refusal)) => refusal,
            Err(join_error) => Refusal::new(
                ErrorCode::NotDefined,
                format!("open task failed: {join_error}"),
            ),
        };
        tracing::info!(%peer, file = %name, error = %refusal.message, "TFTP request refused");
        send_error(socket, peer, refusal.code, &refusal.message).await;
        self.record_failed(peer, name, 0, refusal.message);
        None
    }

    fn report(
        &self,
        peer: SocketAddr,
        name: &str,
        outcome: Result<u64, Failure>,
        size_offered: Option<u64>,
    ) {
        match outcome {
            // Firmware (EDK2) asks for tsize, then ends the transfer before
            // any data to fetch the file for real: not a failure.
            Err(Failure {
                ended_after_oack: true,
                ..
            }) if size_offered.is_some() => {
                tracing::debug!(%peer, file = %name, "TFTP size asked");
                self.record(
                    peer,
                    EventKind::FileSizeAsked {
                        protocol: "tftp",
                        path: name.to_string(),
                        size: size_offered.unwrap_or_default(),
                    },
                );
            }
            Ok(bytes) => {
                tracing::info!(%peer, file = %name, bytes, "TFTP file served");
                let path = name.to_string();
                self.record(
                    peer,
                    EventKind::FileServed {
                        protocol: "tftp",
                        path,
                        bytes,
                    },
                );
            }
            Err(Failure { bytes, error, .. }) => {
                tracing::info!(%peer, file = %name, bytes, %error, "TFTP transfer failed");
                self.record_failed(peer, name, bytes, error);
            }
        }
    }

    /// Resolves and opens a requested file (blocking: call off the runtime).
    fn open(&self, requested: &str) -> Result<Opened, Refusal> {
        let relative = match path::resolve(&self.root, requested) {
            Err(PathError::Absolute) => path::resolve(&self.canonical_root, requested),
            other => other,
        }
        .map_err(|e| Refusal::new(ErrorCode::AccessViolation, e.to_string()))?;
        let real = std::fs::canonicalize(self.canonical_root.join(relative))
            .map_err(|e| Refusal::from_io(&e))?;
        self.check_inside_root(&real)?;
        if !std::fs::metadata(&real)
            .map_err(|e| Refusal::from_io(&e))?
            .is_file()
        {
            return Err(Refusal::new(
                ErrorCode::AccessViolation,
                "not a regular file",
            ));
        }
        let file = File::open(&real).map_err(|e| Refusal::from_io(&e))?;
        // The path may have been swapped between the checks and the open:
        // check what was actually opened.
        let metadata = file.metadata().map_err(|e| Refusal::from_io(&e))?;
        if !metadata.is_file() {
            return Err(Refusal::new(
                ErrorCode::AccessViolation,
                "not a regular file",
            ));
        }
        if let Ok(opened_path) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            self.check_inside_root(&opened_path)?;
        }
        Ok(Opened {
            file: Arc::new(file),
            size: metadata.len(),
        })
    }

    fn check_inside_root(&self, real: &Path) -> Result<(), Refusal> {
        if real.starts_with(&self.canonical_root) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::AccessViolation,
                "access violation: outside the TFTP root",
            ))
        }
    }

    /// Refuses a request with an ERROR from a new socket, and traces it.
    fn refuse(
        &self,
        peer: SocketAddr,
        local_ip: IpAddr,
        name: &str,
        code: ErrorCode,
        message: &str,
    ) {
        tracing::info!(%peer, file = %name, error = %message, "TFTP request refused");
        send_error_from(local_ip, peer, code, message);
        self.record_failed(peer, name, 0, message.to_string());
    }

    fn record_failed(&self, peer: SocketAddr, name: &str, bytes: u64, error: String) {
        let kind = EventKind::FileFailed {
            protocol: "tftp",
            path: name.to_string(),
            bytes,
            error,
        };
        self.record(peer, kind);
    }

    fn record(&self, peer: SocketAddr, kind: EventKind) {
        let event = Event {
            at: SystemTime::now(),
            client: Client::Address(peer.ip().to_canonical()),
            kind,
        };
        self.trace.record(event);
    }
}

/// Carries out a transfer's actions on its socket and file.
struct Driver {
    socket: UdpSocket,
    peer: SocketAddr,
    file: Arc<File>,
    transfer: ReadTransfer,
    /// Whether to send windows with UDP GSO; off after the kernel refuses it.
    gso: bool,
    /// The last packet from the client came while the OACK awaited ACK 0.
    answered_oack: bool,
}

enum Received {
    FromPeer(usize),
    Timeout,
}

impl Driver {
    /// Runs to the end: the bytes served, or the bytes acknowledged and why
    /// it failed.
    async fn run(&mut self) -> Result<u64, Failure> {
        let mut buf = vec![0u8; 2048];
        let mut read_buf = Vec::new();
        let mut deadline = Instant::now() + self.transfer.timeout();
        let mut action = self.transfer.start();
        loop {
            action = match action {
                Action::Transmit { wait } => {
                    self.send_datagrams().await;
                    deadline = Instant::now() + wait;
                    Action::Wait
                }
                Action::Read { offset, len } => {
                    let (buffer, result) =
                        read_at(Arc::clone(&self.file), offset, len, read_buf).await;
                    let action = self.transfer.on_read(result.map(|n| &buffer[..n]));
                    read_buf = buffer;
                    action
                }
                Action::Wait => match self.receive(&mut buf, deadline).await {
                    Ok(Received::FromPeer(len)) => {
                        self.answered_oack = self.transfer.is_negotiating();
                        self.transfer.on_packet(&buf[..len])
                    }
                    Ok(Received::Timeout) => self.transfer.on_timeout(),
                    Err(error) => {
                        return Err(Failure {
                            bytes: self.transfer.bytes_acknowledged(),
                            error: format!("socket error: {error}"),
                            ended_after_oack: false,
                        });
                    }
                },
                Action::Done { bytes } => return Ok(bytes),
                Action::Failed {
                    error,
                    bytes,
                    notify,
                } => {
                    if notify {
                        self.send_datagrams().await;
                    }
                    let ended_after_oack = self.answered_oack
                        && matches!(
                            error,
                            crate::tftp::transfer::TransferError::ClientError { .. }
                        );
                    return Err(Failure {
                        bytes,
                        error: error.to_string(),
                        ended_after_oack,
                    });
                }
            };
        }
    }

    /// The next datagram from the peer, or the deadline. Datagrams from
    /// other TIDs get ERROR 5 and do not disturb the transfer.
    async fn receive(&self, buf: &mut [u8], deadline: Instant) -> io::Result<Received> {
        loop {
            tokio::select! {
                received = self.socket.recv_from(buf) => {
                    let (len, from) = received?;
                    if from == self.peer {
                        return Ok(Received::FromPeer(len));
                    }
                    tracing::debug!(peer = %self.peer, stranger = %from, "datagram from an unknown TID");
                    send_error(&self.socket, from, ErrorCode::UnknownTid, "unknown transfer ID").await;
                }
                () = sleep_until(deadline) => return Ok(Received::Timeout),
            }
        }
    }
}

impl Driver {
    /// Sends what the transfer has to send: a window as few GSO batches
    /// (one syscall for up to 64 datagrams), else datagram by datagram.
    async fn send_datagrams(&mut self) {
        let datagrams = self.transfer.datagrams();
        let stride = datagrams.stride();
        let per_batch = (MAX_GSO_BYTES / stride.max(1)).min(MAX_GSO_SEGMENTS);
        if !self.gso || datagrams.count() < 2 || per_batch < 2 {
            return send_each(&self.socket, datagrams.iter(), self.peer).await;
        }
        for batch in datagrams.as_bytes().chunks(stride * per_batch) {
            if !self.gso {
                send_each(&self.socket, batch.chunks(stride), self.peer).await;
                continue;
            }
            if let Err(error) = send_gso(&self.socket, batch, stride, self.peer).await {
                // No GSO here (old kernel, no offload, segment above MTU).
                tracing::debug!(peer = %self.peer, %error, "UDP GSO refused, sending datagram by datagram");
                self.gso = false;
                send_each(&self.socket, batch.chunks(stride), self.peer).await;
            }
        }
    }
}

/// Linux caps a GSO send at 64 segments (UDP_MAX_SEGMENTS before 5.x) and
/// one UDP datagram's worth of bytes.
const MAX_GSO_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

async fn send_each<'a>(
    socket: &UdpSocket,
    datagrams: impl Iterator<Item = &'a [u8]>,
    peer: SocketAddr,
) {
    for datagram in datagrams {
        if let Err(error) = socket.send_to(datagram, peer).await {
            // Lost like any datagram: the retransmission timer covers it.
            tracing::debug!(%peer, %error, "TFTP send failed");
        }
    }
}

/// One sendmsg with UDP_SEGMENT: the kernel splits `bytes` into datagrams
/// of `stride` bytes (the last may be shorter).
async fn send_gso(
    socket: &UdpSocket,
    bytes: &[u8],
    stride: usize,
    peer: SocketAddr,
) -> io::Result<()> {
    let segment =
        u16::try_from(stride).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    socket
        .async_io(Interest::WRITABLE, || {
            let iov = [io::IoSlice::new(bytes)];
            let cmsgs = [ControlMessage::UdpGsoSegments(&segment)];
            let fd = socket.as_raw_fd();
            let sent = match peer {
                SocketAddr::V4(v4) => nixsock::sendmsg(
                    fd,
                    &iov,
                    &cmsgs,
                    MsgFlags::empty(),
                    Some(&SockaddrIn::from(v4)),
                ),
                SocketAddr::V6(v6) => nixsock::sendmsg(
                    fd,
                    &iov,
                    &cmsgs,
                    MsgFlags::empty(),
                    Some(&SockaddrIn6::from(v6)),
                ),
            };
            sent.map(|_| ()).map_err(io::Error::from)
        })
        .await
}

async fn send_error(socket: &UdpSocket, peer: SocketAddr, code: ErrorCode, message: &str) {
    if let Err(error) = socket.send_to(&encode_error(code, message), peer).await {
        tracing::debug!(%peer, %error, "sending TFTP error failed");
    }
}

/// Sends an ERROR from a fresh socket on `local_ip`: replies to requests
/// come from a new TID, like transfers.
fn send_error_from(local_ip: IpAddr, peer: SocketAddr, code: ErrorCode, message: &str) {
    let sent = std::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))
        .and_then(|socket| socket.send_to(&encode_error(code, message), peer));
    if let Err(error) = sent {
        tracing::debug!(%peer, %error, "sending TFTP error failed");
    }
}

/// Reads `len` bytes at `offset` (fewer at the end of the file), reusing
/// `buf`. Returns the buffer and the count read. Data in the page cache is
/// read right here without blocking (RWF_NOWAIT); the rest on the blocking
/// pool, so a cold disk never stalls the runtime.
async fn read_at(
    file: Arc<File>,
    offset: u64,
    len: usize,
    mut buf: Vec<u8>,
) -> (Vec<u8>, io::Result<usize>) {
    buf.resize(len, 0);
    let cached = read_cached_at(&file, offset, &mut buf);
    if cached == len {
        return (buf, Ok(len));
    }
    let task = tokio::task::spawn_blocking(move || {
        let result =
            read_full_at(&file, offset + cached as u64, &mut buf[cached..]).map(|n| cached + n);
        (buf, result)
    });
    match task.await {
        Ok(done) => done,
        Err(join_error) => (Vec::new(), Err(io::Error::other(join_error))),
    }
}

/// Reads what the page cache holds, without waiting for the disk; stops
/// at the first miss, error or end of file (the blocking read then finds
/// out which).
fn read_cached_at(file: &File, offset: u64, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        let mut iov = [io::IoSliceMut::new(&mut buf[filled..])];
        match rustix::io::preadv2(
            file,
            &mut iov,
            offset + filled as u64,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) if n > 0 => filled += n,
            _ => break,
        }
    }
    filled
}

fn read_full_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A datagram on the listening socket and the local address it was sent to.
struct Datagram {
    len: usize,
    from: SocketAddr,
    local_ip: Option<IpAddr>,
}

fn bind_listener(addr: SocketAddr) -> Result<UdpSocket, ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let socket = std::net::UdpSocket::bind(addr).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    // Learn each request's destination address, so that its transfer
    // answers from the address the client talked to.
    let pktinfo = if addr.is_ipv4() {
        nixsock::setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)
    } else {
        nixsock::setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)
    };
    pktinfo.map_err(|errno| bind_error(io::Error::from(errno)))?;
    UdpSocket::from_std(socket).map_err(bind_error)
}

async fn recv_with_destination(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    socket
        .async_io(Interest::READABLE, || recvmsg_pktinfo(socket, buf))
        .await
}

fn recvmsg_pktinfo(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut control = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = nixsock::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let from = msg
        .address
        .as_ref()
        .and_then(sockaddr_to_std)
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let local_ip = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            // The local address (not the header's, which may be a broadcast).
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(IpAddr::from(
                u32::from_be(info.ipi_spec_dst.s_addr).to_be_bytes(),
            )),
            ControlMessageOwned::Ipv6PacketInfo(info) => Some(IpAddr::from(info.ipi6_addr.s6_addr)),
            _ => None,
        })
    });
    Ok(Datagram {
        len: msg.bytes,
        from,
        local_ip,
    })
}

fn sockaddr_to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}
