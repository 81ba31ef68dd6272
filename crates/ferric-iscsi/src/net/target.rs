//! The tokio iSCSI target server: serves [`LogicalUnits`] to several sessions at once,
//! one TCP connection each (MaxConnections=1).
//!
//! Each accepted connection is a task: the login ([`TargetLogin`]) within
//! [`TargetConfig::login_timeout`], then the sans-IO [`TargetConnection`]. A reader task
//! frames one PDU at a time ([`pdu::remaining_len`], so a peer cannot make us allocate
//! more than our MaxRecvDataSegmentLength) and hands it over a small bounded channel;
//! SCSI commands run on [`tokio::task::spawn_blocking`] with the logical units behind
//! one mutex shared by all sessions; each PDU is written with one `write_all`. A
//! connection quiet for [`KEEPALIVE_IDLE`] gets a NOP-In ping, and is dropped if that
//! stays unanswered as long again.
//!
//! Errors never stop the server: a bad connection is logged and closed. Logins are
//! logged with the initiator's name and the reason of a refusal, never a secret.
//! [`TargetServer::shutdown`] stops accepting, asks every session to log out (an
//! Asynchronous Message), closes what is left after [`SHUTDOWN_GRACE`], and flushes the
//! logical units.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, Instant};
use tracing::{debug, info, warn, Instrument};

use crate::chap::{ChapAuth, ChapCredentials};
use crate::digest::{DigestType, Digests};
use crate::login::{
    Established, TargetConfig as LoginConfig, TargetFailure, TargetLogin, TargetStep,
};
use crate::params::{Limits, Role};
use crate::pdu::{self, DecodeError, LoginStatus, Pdu, WireConfig, BHS_LEN};
use crate::scsi::{Backing, Disk, LogicalUnits, MemBacking, Outcome, Transfer};
use crate::target::{
    Action, CommandResult, ConnectionConfig, DataTransfer, ScsiJob, TargetConnection,
    DEFAULT_MAX_TRANSFER_BYTES, DEFAULT_QUEUE_DEPTH,
};

/// Quiet time after which a connection is pinged, and then given to answer.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// How long [`TargetServer::shutdown`] lets sessions log out before closing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// PDUs read ahead of the connection's machine.
const READ_AHEAD: usize = 4;

/// What the server serves and how.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    /// The target's IQN.
    pub iqn: String,
    /// TargetAlias.
    pub alias: Option<String>,
    /// CHAP every initiator must pass (`None`: no authentication).
    pub chap: Option<ChapCredentials>,
    /// The credentials the target proves back (mutual CHAP; needs `chap`).
    pub mutual_chap: Option<ChapCredentials>,
    /// Operational limits offered in the login.
    pub limits: Limits,
    /// TargetPortalGroupTag.
    pub portal_group_tag: u16,
    /// Connections (= sessions) at once; more are closed at once.
    pub max_sessions: usize,
    /// The whole login must be done within this.
    pub login_timeout: Duration,
}

impl TargetConfig {
    /// A target named `iqn`: no CHAP, default limits, portal group 1, 8 sessions, 15 s
    /// to log in.
    pub fn new(iqn: impl Into<String>) -> Self {
        Self {
            iqn: iqn.into(),
            alias: None,
            chap: None,
            mutual_chap: None,
            limits: Limits::default(),
            portal_group_tag: 1,
            max_sessions: 8,
            login_timeout: Duration::from_secs(15),
        }
    }

    fn login_config(&self) -> io::Result<LoginConfig> {
        let chap = match (&self.chap, &self.mutual_chap) {
            (Some(chap), mutual) => Some(
                ChapAuth::new(chap.clone(), mutual.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            (None, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "mutual CHAP needs the initiator's CHAP credentials too",
                ))
            }
            (None, None) => None,
        };
        let mut login = LoginConfig::new(vec![self.iqn.clone()]);
        login.target_alias = self.alias.clone();
        login.chap = chap;
        login.limits = self.limits.clone();
        login.portal_group_tag = self.portal_group_tag;
        login.command_window = DEFAULT_QUEUE_DEPTH;
        Ok(login)
    }
}

/// A running target: a listener task and its connections.
pub struct TargetServer {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    sessions_ended: watch::Receiver<u64>,
    listener: JoinHandle<()>,
    flush: Arc<dyn Fn() -> io::Result<()> + Send + Sync>,
}

impl std::fmt::Debug for TargetServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetServer")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

/// What every connection task shares.
struct Shared<B: Backing> {
    luns: Arc<Mutex<LogicalUnits<B>>>,
    classifier: Classifier,
    login: LoginConfig,
    config: TargetConfig,
    sessions: Arc<Semaphore>,
    next_tsih: AtomicU16,
    max_transfer_bytes: u32,
    /// Counts the normal sessions that ended (logged out or dropped).
    sessions_ended: watch::Sender<u64>,
}

/// Why a connection ended badly.
#[derive(Debug, Error)]
enum ConnectionError {
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    #[error("login not finished within {0:?}")]
    LoginTimeout(Duration),
    #[error("login refused: {0}")]
    LoginRefused(TargetFailure),
    #[error("undecodable PDU: {0}")]
    Decode(DecodeError),
    #[error("no answer to a NOP-In ping within {0:?}")]
    KeepaliveTimeout(Duration),
}

impl TargetServer {
    /// Listens on `addr` and serves `luns` (shared by all sessions).
    pub async fn bind<B: Backing + 'static>(
        addr: SocketAddr,
        config: TargetConfig,
        luns: LogicalUnits<B>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, config, luns)
    }

    /// Serves `luns` on an already bound listener.
    pub fn serve<B: Backing + 'static>(
        listener: TcpListener,
        config: TargetConfig,
        luns: LogicalUnits<B>,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let login = config.login_config()?;
        let max_transfer_bytes = smallest_max_transfer(&luns);
        let classifier = Classifier::of(&luns);
        let luns = Arc::new(Mutex::new(luns));
        let (ended_tx, sessions_ended) = watch::channel(0);
        let shared = Arc::new(Shared {
            luns: luns.clone(),
            classifier,
            login,
            sessions: Arc::new(Semaphore::new(config.max_sessions.max(1))),
            config,
            next_tsih: AtomicU16::new(1),
            max_transfer_bytes,
            sessions_ended: ended_tx,
        });
        let (shutdown, stop) = watch::channel(false);
        info!(%local_addr, iqn = %shared.config.iqn, "iSCSI target listening");
        let listener = tokio::spawn(accept_loop(listener, shared, stop));
        let flush = Arc::new(move || flush_luns(&luns));
        Ok(Self {
            local_addr,
            shutdown,
            sessions_ended,
            listener,
            flush,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Changes each time a normal (not discovery) session ends, with the count
    /// so far: the agent tells its conductor at once that a write is over.
    pub fn sessions_ended(&self) -> watch::Receiver<u64> {
        self.sessions_ended.clone()
    }

    /// Stops accepting, asks the sessions to log out, closes them after
    /// [`SHUTDOWN_GRACE`], and flushes the logical units.
    pub async fn shutdown(self) -> io::Result<()> {
        let _ = self.shutdown.send(true);
        if let Err(error) = self.listener.await {
            warn!(%error, "target listener task failed");
        }
        let flush = self.flush.clone();
        tokio::task::spawn_blocking(move || flush())
            .await
            .map_err(io::Error::other)??;
        info!(local_addr = %self.local_addr, "iSCSI target stopped");
        Ok(())
    }
}

/// Answers `expected_transfer` without the logical units' lock (which a running
/// command holds): empty disks with the same LUNs and block sizes, since what a CDB
/// says about its data depends only on the block size.
struct Classifier(LogicalUnits<MemBacking>);

impl Classifier {
    fn of<B: Backing>(luns: &LogicalUnits<B>) -> Self {
        let mut shapes = LogicalUnits::new();
        for lun in luns.luns() {
            if let Some(disk) = luns.disk(lun) {
                let empty = Disk::new(
                    MemBacking(Vec::new()),
                    disk.identity().clone(),
                    disk.block_size(),
                    disk.read_only(),
                );
                // The LUN numbers come from a valid set: adding cannot fail.
                let _ = shapes.add(lun, empty);
            }
        }
        Self(shapes)
    }

    fn transfer(&self, lun_raw: u64, cdb: &[u8]) -> DataTransfer {
        match self.0.expected_transfer(lun_raw, cdb) {
            Transfer::None => DataTransfer::None,
            Transfer::In(len) => DataTransfer::In(len),
            Transfer::Out(len) => DataTransfer::Out(len),
        }
    }
}

/// The smallest MAXIMUM TRANSFER LENGTH of the logical units, in bytes.
fn smallest_max_transfer<B: Backing>(luns: &LogicalUnits<B>) -> u32 {
    luns.luns()
        .filter_map(|lun| luns.disk(lun))
        .map(|disk| u64::from(disk.limits().max_transfer_blocks) * u64::from(disk.block_size()))
        .min()
        .map_or(DEFAULT_MAX_TRANSFER_BYTES, |bytes| {
            u32::try_from(bytes).unwrap_or(u32::MAX)
        })
}

fn flush_luns<B: Backing>(luns: &Mutex<LogicalUnits<B>>) -> io::Result<()> {
    let mut luns = luns.blocking_lock();
    let numbers: Vec<u64> = luns.luns().collect();
    for lun in numbers {
        if let Some(disk) = luns.disk_mut(lun) {
            disk.backing_mut().flush()?;
        }
    }
    Ok(())
}

async fn accept_loop<B: Backing + 'static>(
    listener: TcpListener,
    shared: Arc<Shared<B>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&mut connections, &shared, &stop, stream, peer),
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = stop.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let deadline = Instant::now() + SHUTDOWN_GRACE + Duration::from_secs(3);
    while !connections.is_empty() {
        match tokio::time::timeout_at(deadline, connections.join_next()).await {
            Ok(_) => {}
            Err(_) => {
                warn!(
                    left = connections.len(),
                    "connections still open after shutdown, aborted"
                );
                connections.shutdown().await;
            }
        }
    }
}

/// Starts a connection task, or closes the connection when the sessions are all taken.
fn admit<B: Backing + 'static>(
    connections: &mut JoinSet<()>,
    shared: &Arc<Shared<B>>,
    stop: &watch::Receiver<bool>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let Ok(permit) = shared.sessions.clone().try_acquire_owned() else {
        warn!(%peer, max = shared.config.max_sessions, "too many sessions, connection closed");
        return;
    };
    let shared = shared.clone();
    let stop = stop.clone();
    let span = tracing::info_span!("iscsi", %peer);
    connections.spawn(
        async move {
            match serve_connection(stream, shared, stop, permit).await {
                Ok(()) => debug!("connection closed"),
                Err(error) => warn!(%error, "connection closed"),
            }
        }
        .instrument(span),
    );
}

/// Frames and decodes PDUs; `None` at a clean end of stream.
struct PduReader {
    reader: BufReader<OwnedReadHalf>,
}

/// One frame as read: the PDU or why it could not be decoded, with its header.
struct Frame {
    header: [u8; BHS_LEN],
    pdu: Result<Pdu, DecodeError>,
    /// For a data digest error: the PDU decoded without its data digest.
    corrupt: Option<Pdu>,
}

impl PduReader {
    async fn next(&mut self, wire: &WireConfig) -> Result<Option<Frame>, ConnectionError> {
        let mut header = [0u8; BHS_LEN];
        match self.reader.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let rest = match pdu::remaining_len(&header, wire) {
            Ok(rest) => rest,
            // The data was not read: the stream cannot go on after the Reject.
            Err(error) => {
                return Ok(Some(Frame {
                    header,
                    pdu: Err(error),
                    corrupt: None,
                }))
            }
        };
        let mut frame = vec![0u8; BHS_LEN + rest];
        frame[..BHS_LEN].copy_from_slice(&header);
        self.reader.read_exact(&mut frame[BHS_LEN..]).await?;
        let pdu = Pdu::decode(&frame, wire);
        let corrupt = match &pdu {
            Err(DecodeError::DataDigest { .. }) => decode_without_data_digest(&frame, wire),
            _ => None,
        };
        Ok(Some(Frame {
            header,
            pdu,
            corrupt,
        }))
    }
}

/// The PDU of a frame whose data digest failed, decoded with the digest cut off.
fn decode_without_data_digest(frame: &[u8], wire: &WireConfig) -> Option<Pdu> {
    let body = frame.get(..frame.len().checked_sub(4)?)?;
    let lenient = WireConfig::new(
        Digests {
            header: wire.digests.header,
            data: DigestType::None,
        },
        wire.max_data_segment_len,
    );
    Pdu::decode(body, &lenient).ok()
}

/// Sends one PDU; an initiator that stops reading for [`KEEPALIVE_IDLE`] is
/// dropped, so it cannot hold a session slot forever.
async fn write_pdu(writer: &mut OwnedWriteHalf, pdu: &Pdu, digests: Digests) -> io::Result<()> {
    let bytes = match pdu {
        Pdu::DataIn(data_in) => data_in.encode_with(&data_in.data, digests).to_vec(),
        other => other.encode(digests),
    };
    match timeout(KEEPALIVE_IDLE, writer.write_all(&bytes)).await {
        Ok(written) => written,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the initiator read nothing for {KEEPALIVE_IDLE:?}"),
        )),
    }
}

async fn serve_connection<B: Backing + 'static>(
    stream: TcpStream,
    shared: Arc<Shared<B>>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let local = stream.local_addr()?;
    let (read_half, mut writer) = stream.into_split();
    let mut reader = PduReader {
        reader: BufReader::with_capacity(64 * 1024, read_half),
    };
    let mut login_config = shared.login.clone();
    login_config.target_address = Some(local.to_string());
    let login_config = Arc::new(login_config);
    let login_timeout = shared.config.login_timeout;
    let login = log_in(&mut reader, &mut writer, &shared, login_config.clone());
    let established = match timeout(login_timeout, login).await {
        Ok(Ok(Some(established))) => established,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(ConnectionError::LoginTimeout(login_timeout)),
    };
    info!(
        initiator = %established.initiator_name,
        session = established.session_type.as_str(),
        target = established.target_name.as_deref().unwrap_or("-"),
        tsih = established.tsih,
        "login ok"
    );
    let text = crate::login::TextResponder::new(login_config, &established);
    let mut config = ConnectionConfig::from_established(&established);
    config.max_transfer_bytes = shared.max_transfer_bytes;
    let conn = TargetConnection::new(config, text);
    let normal = established.session_type == crate::params::SessionType::Normal;
    let ended = shared.clone();
    let result = full_feature(reader, writer, conn, &established, shared, stop).await;
    if normal {
        ended.sessions_ended.send_modify(|n| *n += 1);
    }
    result
}

/// The login phase; `None` if the initiator went away.
async fn log_in<B: Backing>(
    reader: &mut PduReader,
    writer: &mut OwnedWriteHalf,
    shared: &Shared<B>,
    config: Arc<LoginConfig>,
) -> Result<Option<Established>, ConnectionError> {
    let tsih = next_tsih(&shared.next_tsih);
    let mut login = TargetLogin::new(config, tsih, &mut rand::rng());
    let wire = WireConfig::LOGIN;
    loop {
        let Some(frame) = reader.next(&wire).await? else {
            return Ok(None);
        };
        let step = match frame.pdu {
            Ok(Pdu::LoginRequest(request)) => login.handle(&request),
            Ok(other) => {
                let response = login.reject(LoginStatus::InvalidDuringLogin, &frame.header);
                let why = format!("{:?} PDU during the login", other.opcode());
                TargetStep::Fail(response, failure(LoginStatus::InvalidDuringLogin, why))
            }
            Err(error) => {
                let response = login.reject(LoginStatus::InitiatorError, &frame.header);
                TargetStep::Fail(
                    response,
                    failure(LoginStatus::InitiatorError, error.to_string()),
                )
            }
        };
        match step {
            TargetStep::Continue(response) => {
                write_pdu(writer, &response.into(), Digests::NONE).await?;
            }
            TargetStep::Done(response, established) => {
                write_pdu(writer, &response.into(), Digests::NONE).await?;
                return Ok(Some(*established));
            }
            TargetStep::Fail(response, why) => {
                write_pdu(writer, &response.into(), Digests::NONE).await?;
                let _ = writer.shutdown().await;
                return Err(ConnectionError::LoginRefused(why));
            }
        }
    }
}

fn failure(status: LoginStatus, reason: String) -> TargetFailure {
    TargetFailure { status, reason }
}

/// A TSIH for a new session: non-zero, wrapping.
fn next_tsih(counter: &AtomicU16) -> u16 {
    loop {
        let tsih = counter.fetch_add(1, Ordering::Relaxed);
        if tsih != 0 {
            return tsih;
        }
    }
}

/// What the reader task hands to the connection.
type ReadResult = Result<Option<Frame>, ConnectionError>;

fn spawn_reader(
    mut reader: PduReader,
    wire: WireConfig,
) -> (mpsc::Receiver<ReadResult>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let task = tokio::spawn(async move {
        loop {
            let result = reader.next(&wire).await;
            let end = !matches!(&result, Ok(Some(frame)) if frame_can_continue(frame));
            if tx.send(result).await.is_err() || end {
                return;
            }
        }
    });
    (rx, task)
}

/// Whether the stream can be read past this frame (not after a header digest error or
/// an over-long data segment, whose data was not read).
fn frame_can_continue(frame: &Frame) -> bool {
    !matches!(
        frame.pdu,
        Err(DecodeError::HeaderDigest { .. } | DecodeError::DataSegmentTooLong { .. })
    )
}

/// The running SCSI command, if any: its ITT and its thread.
type Running = Option<(u32, JoinHandle<CommandResult>)>;

async fn full_feature<B: Backing + 'static>(
    reader: PduReader,
    mut writer: OwnedWriteHalf,
    mut conn: TargetConnection,
    established: &Established,
    shared: Arc<Shared<B>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let digests = established.params.digests();
    let wire = established.params.wire_config(Role::Target);
    let (mut frames, reader_task) = spawn_reader(reader, wire);
    let mut running: Running = None;
    let mut quiet_since = Instant::now();
    let mut stopping: Option<Instant> = None;
    let result = loop {
        if let Err(error) = perform(&mut conn, &mut writer, &mut running, &shared, digests).await {
            break Err(error);
        }
        if conn.is_closed() && running.is_none() {
            break Ok(());
        }
        let keepalive = quiet_since + KEEPALIVE_IDLE;
        let grace_over = stopping.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            read = frames.recv() => {
                quiet_since = Instant::now();
                match read {
                    Some(Ok(Some(frame))) => {
                        if let Err(error) = handle_frame(&mut conn, frame, &shared) {
                            break Err(error);
                        }
                    }
                    Some(Ok(None)) | None => {
                        debug!("initiator closed the connection");
                        break Ok(());
                    }
                    Some(Err(error)) => break Err(error),
                }
            }
            (itt, done) = wait_running(&mut running), if running.is_some() => {
                running = None;
                let result = done.unwrap_or_else(|error| {
                    warn!(%error, itt, "SCSI command task failed");
                    CommandResult::target_failure()
                });
                conn.complete(itt, result);
            }
            _ = tokio::time::sleep_until(keepalive), if !conn.is_closed() => {
                if conn.ping_outstanding() {
                    break Err(ConnectionError::KeepaliveTimeout(KEEPALIVE_IDLE));
                }
                if running.is_none() {
                    conn.ping();
                }
                quiet_since = Instant::now();
            }
            _ = stop.changed(), if stopping.is_none() => {
                info!("target shutting down: asking the initiator to log out");
                conn.request_logout(SHUTDOWN_GRACE.as_secs().try_into().unwrap_or(u16::MAX));
                stopping = Some(Instant::now() + SHUTDOWN_GRACE);
            }
            _ = tokio::time::sleep_until(grace_over), if stopping.is_some() => {
                info!("initiator did not log out in time, connection closed");
                conn.close();
            }
        }
    };
    if let Some((_, job)) = running.take() {
        // The command runs to its end on its thread; wait so the disk is consistent.
        let _ = job.await;
    }
    reader_task.abort();
    let _ = writer.shutdown().await;
    result
}

async fn wait_running(
    running: &mut Running,
) -> (u32, Result<CommandResult, tokio::task::JoinError>) {
    match running.as_mut() {
        Some((itt, job)) => (*itt, job.await),
        None => std::future::pending().await,
    }
}

/// Feeds one frame to the machine.
fn handle_frame<B: Backing + 'static>(
    conn: &mut TargetConnection,
    frame: Frame,
    shared: &Shared<B>,
) -> Result<(), ConnectionError> {
    let keep_going = frame_can_continue(&frame);
    match frame.pdu {
        Ok(pdu) => {
            let transfer = match &pdu {
                Pdu::ScsiCommand(cmd) => shared.classifier.transfer(cmd.lun, &cmd.full_cdb()),
                _ => DataTransfer::None,
            };
            conn.receive(pdu, transfer);
            Ok(())
        }
        Err(DecodeError::DataDigest { .. }) if frame.corrupt.is_some() => {
            if let Some(pdu) = frame.corrupt {
                warn!(opcode = ?pdu.opcode(), itt = pdu.itt(), "data digest error");
                conn.receive_corrupt(pdu);
            }
            Ok(())
        }
        Err(error) => match error.reject_reason() {
            Some(reason) => {
                warn!(%error, "PDU rejected");
                conn.reject_header(&frame.header, reason);
                if keep_going {
                    Ok(())
                } else {
                    conn.close();
                    Ok(())
                }
            }
            None => Err(ConnectionError::Decode(error)),
        },
    }
}

/// Does what the machine asks until it has nothing left.
async fn perform<B: Backing + 'static>(
    conn: &mut TargetConnection,
    writer: &mut OwnedWriteHalf,
    running: &mut Running,
    shared: &Arc<Shared<B>>,
    digests: Digests,
) -> Result<(), ConnectionError> {
    while let Some(action) = conn.poll_action() {
        match action {
            Action::Send(pdu) => write_pdu(writer, &pdu, digests).await?,
            Action::Execute(job) => *running = Some((job.itt, execute(shared.luns.clone(), job))),
            Action::ResetLun(lun) => info!(lun = format_args!("{lun:#018x}"), "logical unit reset"),
            Action::ResetTarget => info!("target reset"),
            Action::Close => {
                writer.flush().await?;
            }
        }
    }
    Ok(())
}

/// Runs a command on a blocking thread.
fn execute<B: Backing + 'static>(
    luns: Arc<Mutex<LogicalUnits<B>>>,
    job: ScsiJob,
) -> JoinHandle<CommandResult> {
    tokio::task::spawn_blocking(move || {
        let outcome = {
            let mut luns = luns.blocking_lock();
            luns.execute(job.lun, &job.cdb, &job.data_out, job.allocation)
        };
        command_result(outcome)
    })
}

fn command_result(outcome: Outcome) -> CommandResult {
    CommandResult {
        status: outcome.status.code(),
        sense: outcome.sense.unwrap_or_default(),
        data_in_wanted: outcome
            .data_in_wanted
            .max(u32::try_from(outcome.data_in.len()).unwrap_or(u32::MAX)),
        data_in: outcome.data_in,
        target_failure: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::{InitiatorConfig, InitiatorLogin, InitiatorStep};
    use crate::params::SessionType;
    use crate::pdu::{ScsiCommand, ScsiResponse};
    use crate::scsi::Identity;

    async fn server() -> TargetServer {
        server_with(TargetConfig::new("iqn.2024-01.org.ferric:unit")).await
    }

    async fn server_with(config: TargetConfig) -> TargetServer {
        let mut luns = LogicalUnits::new();
        let disk = Disk::new(
            MemBacking(vec![0u8; 1 << 20]),
            Identity::new("t1"),
            512,
            false,
        );
        luns.add(1, disk).unwrap();
        TargetServer::bind("127.0.0.1:0".parse().unwrap(), config, luns)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_logins_time_out_and_sessions_are_limited() {
        let mut config = TargetConfig::new("iqn.2024-01.org.ferric:unit");
        config.login_timeout = Duration::from_millis(200);
        config.max_sessions = 1;
        let server = server_with(config).await;
        let started = std::time::Instant::now();
        let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A second connection while the first holds the only session slot: closed at once.
        let mut extra = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(extra.read_to_end(&mut rest).await.unwrap(), 0);
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(silent.read_to_end(&mut rest).await.unwrap(), 0);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // The slot is free again.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_stream, established) = login(server.local_addr()).await;
        assert_eq!(established.tsih, 2, "the silent connection took TSIH 1");
        server.shutdown().await.unwrap();
    }

    async fn read_pdu(stream: &mut TcpStream, wire: &WireConfig) -> Pdu {
        let mut header = [0u8; BHS_LEN];
        stream.read_exact(&mut header).await.unwrap();
        let rest = pdu::remaining_len(&header, wire).unwrap();
        let mut frame = header.to_vec();
        frame.resize(BHS_LEN + rest, 0);
        stream.read_exact(&mut frame[BHS_LEN..]).await.unwrap();
        Pdu::decode(&frame, wire).unwrap()
    }

    /// Logs in with the crate's initiator login machine over a raw socket.
    async fn login(addr: SocketAddr) -> (TcpStream, Established) {
        login_with(addr, Limits::default()).await
    }

    async fn login_with(addr: SocketAddr, limits: Limits) -> (TcpStream, Established) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut config = InitiatorConfig::new(
            "iqn.2024-01.org.ferric:unit-initiator",
            Some("iqn.2024-01.org.ferric:unit".to_string()),
            [0x80, 0, 0, 0, 0, 9],
        );
        config.limits = limits;
        let mut login = InitiatorLogin::new(config, &mut rand::rng());
        let mut request = login.start();
        loop {
            stream
                .write_all(&Pdu::LoginRequest(request).encode(Digests::NONE))
                .await
                .unwrap();
            let Pdu::LoginResponse(response) = read_pdu(&mut stream, &WireConfig::LOGIN).await
            else {
                panic!("not a login response");
            };
            match login.handle(&response).unwrap() {
                InitiatorStep::Send(next) => request = next,
                InitiatorStep::Done(established) => return (stream, *established),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_a_read_capacity_and_logs_out() {
        let server = server().await;
        let mut ended = server.sessions_ended();
        let (mut stream, established) = login(server.local_addr()).await;
        let wire = established.params.wire_config(Role::Initiator);
        let digests = established.params.digests();
        let mut cmd = ScsiCommand {
            final_: true,
            read: true,
            lun: pdu::lun_from_number(1),
            itt: 1,
            expected_data_transfer_length: 8,
            cmd_sn: established.cmd_sn,
            exp_stat_sn: established.stat_sn,
            ..ScsiCommand::default()
        };
        cmd.set_cdb(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        stream
            .write_all(&Pdu::ScsiCommand(cmd).encode(digests))
            .await
            .unwrap();
        match read_pdu(&mut stream, &wire).await {
            Pdu::DataIn(data_in) => {
                // 1 MiB of 512-byte blocks: last LBA 2047.
                assert_eq!(data_in.data, vec![0, 0, 0x07, 0xFF, 0, 0, 0x02, 0]);
                assert_eq!(data_in.status, Some(0));
                assert_eq!(data_in.stat_sn, established.stat_sn);
            }
            other => panic!("{other:?}"),
        }
        // A command to a LUN that does not exist gets CHECK CONDITION.
        let mut tur = ScsiCommand {
            final_: true,
            lun: pdu::lun_from_number(5),
            itt: 2,
            cmd_sn: established.cmd_sn.wrapping_add(1),
            ..ScsiCommand::default()
        };
        tur.set_cdb(&[0; 6]);
        stream
            .write_all(&Pdu::ScsiCommand(tur).encode(digests))
            .await
            .unwrap();
        match read_pdu(&mut stream, &wire).await {
            Pdu::ScsiResponse(ScsiResponse {
                status, sense, itt, ..
            }) => {
                assert_eq!((itt, status), (2, 0x02));
                assert_eq!(
                    (sense[2], sense[12]),
                    (0x05, 0x25),
                    "LOGICAL UNIT NOT SUPPORTED"
                );
            }
            other => panic!("{other:?}"),
        }
        let logout = pdu::LogoutRequest {
            immediate: true,
            itt: 3,
            cmd_sn: established.cmd_sn.wrapping_add(2),
            ..pdu::LogoutRequest::default()
        };
        stream
            .write_all(&Pdu::LogoutRequest(logout).encode(digests))
            .await
            .unwrap();
        match read_pdu(&mut stream, &wire).await {
            Pdu::LogoutResponse(r) => assert_eq!(r.itt, 3),
            other => panic!("{other:?}"),
        }
        let mut rest = Vec::new();
        let n = stream.read_to_end(&mut rest).await.unwrap();
        assert_eq!(n, 0, "the target closed the connection");
        tokio::time::timeout(Duration::from_secs(5), ended.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*ended.borrow(), 1, "the session's end is told");
        server.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_login_closes_only_that_connection_and_shutdown_asks_for_logout() {
        let server = server().await;
        let mut bad = TcpStream::connect(server.local_addr()).await.unwrap();
        // A SCSI Command during the login: refused with a Login Response, then closed.
        let mut cmd = ScsiCommand::default();
        cmd.set_cdb(&[0; 6]);
        bad.write_all(&Pdu::ScsiCommand(cmd).encode(Digests::NONE))
            .await
            .unwrap();
        match read_pdu(&mut bad, &WireConfig::LOGIN).await {
            Pdu::LoginResponse(r) => assert_eq!(r.status, LoginStatus::InvalidDuringLogin),
            other => panic!("{other:?}"),
        }
        let mut rest = Vec::new();
        assert_eq!(bad.read_to_end(&mut rest).await.unwrap(), 0);
        // The server still serves others; at shutdown it asks them to log out.
        let (mut stream, established) = login(server.local_addr()).await;
        assert_eq!(established.session_type, SessionType::Normal);
        server.shutdown().await.unwrap();
        let wire = established.params.wire_config(Role::Initiator);
        match read_pdu(&mut stream, &wire).await {
            Pdu::AsyncMessage(m) => {
                assert_eq!(m.event, pdu::AsyncEvent::LogoutRequested);
                assert_eq!(m.parameter3, 2);
            }
            other => panic!("{other:?}"),
        }
        let mut rest = Vec::new();
        assert_eq!(
            stream.read_to_end(&mut rest).await.unwrap(),
            0,
            "closed after the grace"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn digest_errors_reject_data_and_drop_on_header() {
        let server = server().await;
        let limits = Limits {
            header_digests: vec![DigestType::Crc32c],
            data_digests: vec![DigestType::Crc32c],
            ..Limits::default()
        };
        let (mut stream, established) = login_with(server.local_addr(), limits).await;
        let digests = established.params.digests();
        assert_eq!(
            digests,
            Digests {
                header: DigestType::Crc32c,
                data: DigestType::Crc32c
            }
        );
        let wire = established.params.wire_config(Role::Initiator);
        // WRITE(10) of 2 blocks: 512 bytes immediate, 512 unsolicited with a bad digest.
        let mut cmd = ScsiCommand {
            final_: false,
            write: true,
            lun: pdu::lun_from_number(1),
            itt: 7,
            expected_data_transfer_length: 1024,
            cmd_sn: established.cmd_sn,
            data: vec![0x11; 512],
            ..ScsiCommand::default()
        };
        cmd.set_cdb(&[0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
        stream
            .write_all(&Pdu::ScsiCommand(cmd).encode(digests))
            .await
            .unwrap();
        let data_out = pdu::DataOut {
            final_: true,
            lun: pdu::lun_from_number(1),
            itt: 7,
            ttt: pdu::RESERVED_TAG,
            buffer_offset: 512,
            data: vec![0x22; 512],
            ..pdu::DataOut::default()
        };
        let mut bytes = Pdu::DataOut(data_out).encode(digests);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        stream.write_all(&bytes).await.unwrap();
        match read_pdu(&mut stream, &wire).await {
            Pdu::Reject(r) => {
                assert_eq!(r.reason, pdu::RejectReason::DataDigestError);
                assert_eq!(r.rejected_itt(), Some(7));
                assert_eq!(r.rejected_opcode(), Some(0x05));
            }
            other => panic!("{other:?}"),
        }
        match read_pdu(&mut stream, &wire).await {
            Pdu::ScsiResponse(r) => {
                assert_eq!((r.itt, r.status), (7, 0x02));
                assert_eq!((r.sense[2], r.sense[12], r.sense[13]), (0x0B, 0x47, 0x05));
            }
            other => panic!("{other:?}"),
        }
        // A header digest error: the connection is dropped.
        let nop = pdu::NopOut {
            itt: 8,
            ttt: pdu::RESERVED_TAG,
            cmd_sn: established.cmd_sn.wrapping_add(1),
            ..pdu::NopOut::default()
        };
        let mut bytes = Pdu::NopOut(nop).encode(digests);
        bytes[BHS_LEN] ^= 0xFF;
        stream.write_all(&bytes).await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).await.unwrap(), 0);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn tsih_skips_zero() {
        let counter = AtomicU16::new(u16::MAX);
        assert_eq!(next_tsih(&counter), u16::MAX);
        assert_eq!(next_tsih(&counter), 1);
    }
}
