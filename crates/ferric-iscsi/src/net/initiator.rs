//! The tokio iSCSI initiator: one session of one TCP connection to a target's LUN, for
//! the conductor to write a deploy image onto a node's disk.
//!
//! A [`Session`] logs in ([`crate::login::InitiatorLogin`]), then runs the sans-IO
//! [`Initiator`] with a reader task (one PDU at a time, framed by
//! [`crate::pdu::remaining_len`]), a writer task (PDUs batched into few `write_all`s) and a
//! watchdog that ends the session when a command gets no answer within
//! `command_timeout`. Writes are pipelined: [`Session::submit_write`] returns once the
//! WRITE(16) is queued, at most `queue_depth` are in flight (so at most that many write
//! buffers are alive), and [`Session::flush`] collects their results and sends
//! SYNCHRONIZE CACHE(16).
//!
//! Every [`Error`] says which step failed in words for an operator: the connect (address,
//! OS error), the login, a SCSI command (name, LBA, status, sense key and ASC/ASCQ by
//! their SPC names), a protocol violation by the target, a timeout, a closed connection.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::chap::{ChapAuth, ChapCredentials};
use crate::digest::Digests;
use crate::initiator::{
    unmap_parameter_list, Cdb, Completion, DataTransfer, Event, Initiator, Itt, ParameterDataError,
    SequenceStart, Transmit, READ_CAPACITY16_LEN, SENSE_ILLEGAL_REQUEST, VPD_BLOCK_LIMITS,
    VPD_LOGICAL_BLOCK_PROVISIONING,
};
pub use crate::initiator::{
    BlockLimits, Capacity, CommandFailure, Provisioning, ScsiStatus, SenseInfo,
};
use crate::login::{
    self, parse_send_targets, Established, InitiatorLogin, InitiatorStep, LoginError, Portal,
};
use crate::params::{Limits, Role, SessionParams};
use crate::pdu::{self, LogoutResponseCode, Pdu, Residual, WireConfig, BHS_LEN};

/// How to log in and how long to wait.
#[derive(Clone, Debug)]
pub struct InitiatorConfig {
    /// Our IQN (InitiatorName).
    pub initiator_name: String,
    /// The target's IQN (TargetName).
    pub target_name: String,
    /// The LUN number (Ironic's agent exports LUN 1).
    pub lun: u64,
    /// One-way CHAP: our credentials, sent when the target asks.
    pub chap: Option<ChapCredentials>,
    /// Mutual CHAP: the credentials the target must prove it knows.
    pub mutual_chap: Option<ChapCredentials>,
    /// What we offer in the operational negotiation.
    pub limits: Limits,
    /// Bounds the TCP connect, and separately the whole login.
    pub connect_timeout: Duration,
    /// How long a command may go unanswered before the session is given up.
    pub command_timeout: Duration,
    /// Writes in flight at once (and write buffers alive at once).
    pub queue_depth: usize,
}

impl InitiatorConfig {
    /// LUN 1, no CHAP, default limits, 10 s to connect, 60 s per command, 8 writes in
    /// flight.
    pub fn new(initiator_name: impl Into<String>, target_name: impl Into<String>) -> Self {
        Self {
            initiator_name: initiator_name.into(),
            target_name: target_name.into(),
            lun: 1,
            chap: None,
            mutual_chap: None,
            limits: Limits::default(),
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            queue_depth: 8,
        }
    }
}

/// What went wrong, in the words an operator reads (`Display`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("cannot connect to the iSCSI target at {addr}: {source}")]
    Connect {
        /// The portal.
        addr: SocketAddr,
        /// The OS error (or a timeout).
        #[source]
        source: io::Error,
    },
    /// The login failed.
    #[error("iSCSI login failed: {0}")]
    Login(#[source] LoginError),
    /// A SCSI command ended with a status other than GOOD.
    #[error("{}", scsi_text(command, *lba, *status, sense.as_ref()))]
    Scsi {
        /// The command's name ("WRITE(16)").
        command: &'static str,
        /// The LBA it addressed, for block commands.
        lba: Option<u64>,
        /// The SCSI status.
        status: ScsiStatus,
        /// The sense data, decoded.
        sense: Option<SenseInfo>,
    },
    /// The command did not complete at the iSCSI level (target failure, Reject...).
    #[error("{}{} failed: {failure}", command, at(*lba))]
    Command {
        /// The command's name.
        command: &'static str,
        /// The LBA it addressed.
        lba: Option<u64>,
        /// Why.
        failure: CommandFailure,
    },
    /// The target's answer to a command cannot be used.
    #[error("unusable answer to {command}: {source}")]
    BadData {
        /// The command's name.
        command: &'static str,
        /// What is wrong with the data.
        #[source]
        source: ParameterDataError,
    },
    /// The target broke the iSCSI protocol; the connection was closed.
    #[error("iSCSI protocol error by the target: {0}")]
    Protocol(String),
    /// No answer in time; the connection was closed.
    #[error("iSCSI timeout: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// The connection is gone.
    #[error("the iSCSI connection is closed: {0}")]
    Closed(String),
    /// The request cannot be carried out (unaligned write, unsupported feature...).
    #[error("{0}")]
    Invalid(String),
}

impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::Connect { addr, source } => Error::Connect {
                addr: *addr,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            Error::Login(e) => Error::Login(e.clone()),
            Error::Scsi {
                command,
                lba,
                status,
                sense,
            } => Error::Scsi {
                command,
                lba: *lba,
                status: *status,
                sense: *sense,
            },
            Error::Command {
                command,
                lba,
                failure,
            } => Error::Command {
                command,
                lba: *lba,
                failure: failure.clone(),
            },
            Error::BadData { command, source } => Error::BadData {
                command,
                source: source.clone(),
            },
            Error::Protocol(text) => Error::Protocol(text.clone()),
            Error::Timeout { what } => Error::Timeout { what: what.clone() },
            Error::Closed(why) => Error::Closed(why.clone()),
            Error::Invalid(why) => Error::Invalid(why.clone()),
        }
    }
}

fn at(lba: Option<u64>) -> String {
    lba.map(|lba| format!(" at LBA {lba}")).unwrap_or_default()
}

fn scsi_text(
    command: &str,
    lba: Option<u64>,
    status: ScsiStatus,
    sense: Option<&SenseInfo>,
) -> String {
    let mut text = format!("{command}{} failed with SCSI status {status}", at(lba));
    if let Some(sense) = sense {
        text.push_str(": ");
        text.push_str(&sense.to_string());
    }
    text
}

/// Why the session ended, kept to tell every later caller.
#[derive(Clone, Debug)]
enum Ended {
    Protocol(String),
    Timeout(String),
    Closed(String),
}

impl Ended {
    fn to_error(&self) -> Error {
        match self {
            Ended::Protocol(text) => Error::Protocol(text.clone()),
            Ended::Timeout(what) => Error::Timeout { what: what.clone() },
            Ended::Closed(why) => Error::Closed(why.clone()),
        }
    }
}

enum Waiter {
    Reply(oneshot::Sender<Result<Completion, Error>>),
    Write {
        _permit: OwnedSemaphorePermit,
        lba: u64,
    },
}

struct Pending {
    waiter: Waiter,
    deadline: Instant,
    cdb: Cdb,
}

struct Inner {
    machine: Initiator,
    waiters: HashMap<Itt, Pending>,
    logout: Option<oneshot::Sender<LogoutResponseCode>>,
    ended: Option<Ended>,
    write_error: Option<Error>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake_writer: Notify,
    write_slots: Arc<Semaphore>,
    queue_depth: u32,
    command_timeout: Duration,
    digests: Digests,
    wire: WireConfig,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent-enough state for tearing down.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the session: every waiting caller gets `why`, the tasks stop.
    fn end(&self, why: Ended) {
        let mut inner = self.lock();
        if inner.ended.is_none() {
            tracing::warn!(reason = ?why, "iSCSI session ended");
            inner.ended = Some(why.clone());
        }
        let waiters: Vec<Pending> = inner.waiters.drain().map(|(_, p)| p).collect();
        for pending in waiters {
            match pending.waiter {
                Waiter::Reply(tx) => {
                    let _ = tx.send(Err(why.to_error()));
                }
                Waiter::Write { .. } => {
                    if inner.write_error.is_none() {
                        inner.write_error = Some(why.to_error());
                    }
                }
            }
        }
        inner.logout = None;
        drop(inner);
        self.write_slots.close();
        self.wake_writer.notify_one();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
    }

    fn ended(&self) -> Option<Error> {
        self.lock().ended.as_ref().map(Ended::to_error)
    }

    /// Applies the machine's events to the waiters.
    fn dispatch_events(&self, inner: &mut Inner) {
        while let Some(event) = inner.machine.poll_event() {
            match event {
                Event::Completed { itt, result } => complete(inner, itt, result),
                Event::LoggedOut { response } => {
                    if let Some(tx) = inner.logout.take() {
                        let _ = tx.send(response);
                    }
                }
                Event::LogoutRequested { within_secs } => {
                    tracing::warn!(within_secs, "the iSCSI target asks us to log out");
                }
                Event::TargetDropping { time2wait } => {
                    tracing::warn!(time2wait, "the iSCSI target will drop the connection");
                }
                Event::ScsiAsyncEvent { sense } => {
                    tracing::info!(?sense, "SCSI asynchronous event");
                }
                Event::Pong { .. } | Event::Text { .. } => {}
            }
        }
    }
}

fn complete(inner: &mut Inner, itt: Itt, result: Result<Completion, CommandFailure>) {
    let Some(pending) = inner.waiters.remove(&itt) else {
        return;
    };
    match pending.waiter {
        Waiter::Reply(tx) => {
            let result = result.map_err(|failure| Error::Command {
                command: pending.cdb.name(),
                lba: pending.cdb.lba(),
                failure,
            });
            let _ = tx.send(result);
        }
        Waiter::Write { lba, .. } => {
            let error = match result {
                // A WRITE the target took only part of is a failed write, even if GOOD.
                Ok(c) if c.status.is_success() && c.residual != Residual::None => {
                    Some(Error::Protocol(format!(
                        "WRITE(16) at LBA {lba} completed with a residual ({:?}): not all the data was written",
                        c.residual
                    )))
                }
                Ok(c) if c.status.is_success() => None,
                Ok(c) => Some(Error::Scsi {
                    command: c.cdb.name(),
                    lba: Some(lba),
                    status: c.status,
                    sense: c.sense,
                }),
                Err(failure) => Some(Error::Command {
                    command: "WRITE(16)",
                    lba: Some(lba),
                    failure,
                }),
            };
            if let Some(error) = error {
                tracing::warn!(%error, "write failed");
                if inner.write_error.is_none() {
                    inner.write_error = Some(error);
                }
            }
            // The permit drops here: one more write may go.
        }
    }
}

/// One logged-in session with one LUN of a target.
pub struct Session {
    shared: Arc<Shared>,
    lun: u64,
    capacity: Capacity,
    limits: Mutex<Option<(BlockLimits, Provisioning)>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("lun", &self.lun)
            .field("block_size", &self.capacity.block_size)
            .finish_non_exhaustive()
    }
}

/// The outcome of a login: what the full feature phase starts from.
struct LoggedIn {
    params: SessionParams,
    start: SequenceStart,
}

impl Session {
    /// Connects, logs in, waits out the target's initial UNIT ATTENTIONs and reads the
    /// block size.
    pub async fn connect(addr: SocketAddr, config: InitiatorConfig) -> Result<Session, Error> {
        lun_field(config.lun)?;
        let mut stream = connect_tcp(addr, config.connect_timeout).await?;
        let login = tokio::time::timeout(config.connect_timeout, login(&mut stream, &config))
            .await
            .map_err(|_| Error::Timeout {
                what: format!(
                    "login to {} at {addr}: no answer within {:?}",
                    config.target_name, config.connect_timeout
                ),
            })??;
        let lun = lun_field(config.lun)?;
        tracing::debug!(params = ?login.params, "iSCSI login negotiated");
        let shared = start_tasks(stream, login, &config, lun);
        let mut session = Session {
            shared,
            lun,
            capacity: Capacity {
                block_size: 0,
                blocks: 0,
                thin: false,
                reads_zeros: false,
            },
            limits: Mutex::new(None),
        };
        session.wait_until_ready().await?;
        session.capacity = session.read_capacity().await?;
        tracing::info!(%addr, target = %config.target_name, block_size = session.capacity.block_size, "iSCSI session ready");
        Ok(session)
    }

    /// The block size (from READ CAPACITY(16) at connect).
    pub fn block_size(&self) -> u32 {
        self.capacity.block_size
    }

    /// READ CAPACITY(16) as read at connect.
    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// TEST UNIT READY until it passes: the first command of a new session gets a
    /// UNIT ATTENTION (power on / reset) from most targets.
    async fn wait_until_ready(&self) -> Result<(), Error> {
        self.scsi(Cdb::test_unit_ready(), DataTransfer::None)
            .await
            .map(drop)
    }

    /// Sends a command and waits for it; a UNIT ATTENTION (the command was not executed)
    /// is retried a few times.
    async fn scsi(&self, cdb: Cdb, transfer: DataTransfer) -> Result<Vec<u8>, Error> {
        const RETRIES: usize = 3;
        let mut retries = 0;
        loop {
            let completion = self.command(cdb, transfer.clone()).await?;
            if completion.status.is_success() {
                return Ok(completion.data);
            }
            let unit_attention = completion.sense.is_some_and(|s| s.is_unit_attention());
            if !unit_attention || retries == RETRIES {
                return Err(Error::Scsi {
                    command: cdb.name(),
                    lba: cdb.lba(),
                    status: completion.status,
                    sense: completion.sense,
                });
            }
            retries += 1;
            tracing::debug!(command = cdb.name(), sense = ?completion.sense, "retrying after UNIT ATTENTION");
        }
    }

    /// Sends one command and waits for its completion (any status).
    async fn command(&self, cdb: Cdb, transfer: DataTransfer) -> Result<Completion, Error> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(cdb, transfer, Waiter::Reply(tx))?;
        rx.await.unwrap_or_else(|_| {
            Err(self
                .shared
                .ended()
                .unwrap_or(Error::Closed("session dropped".into())))
        })
    }

    fn enqueue(&self, cdb: Cdb, transfer: DataTransfer, waiter: Waiter) -> Result<(), Error> {
        let mut inner = self.shared.lock();
        if let Some(ended) = &inner.ended {
            return Err(ended.to_error());
        }
        let itt = inner
            .machine
            .submit(cdb, transfer)
            .map_err(|e| Error::Closed(format!("{}: {e}", describe(&cdb))))?;
        let deadline = Instant::now() + self.shared.command_timeout;
        inner.waiters.insert(
            itt,
            Pending {
                waiter,
                deadline,
                cdb,
            },
        );
        drop(inner);
        self.shared.wake_writer.notify_one();
        Ok(())
    }

    /// READ CAPACITY(16): block size, block count, thin provisioning, zeros after unmap.
    pub async fn read_capacity(&self) -> Result<Capacity, Error> {
        let cdb = Cdb::read_capacity16();
        let data = self
            .scsi(cdb, DataTransfer::Read(READ_CAPACITY16_LEN))
            .await?;
        Capacity::parse(&data).map_err(|source| Error::BadData {
            command: cdb.name(),
            source,
        })
    }

    /// The Block Limits VPD page (all zeros = nothing reported, when the target has no
    /// such page).
    pub async fn block_limits(&self) -> Result<BlockLimits, Error> {
        Ok(self.limits().await?.0)
    }

    /// The Logical Block Provisioning VPD page (all false when the target has none).
    pub async fn provisioning(&self) -> Result<Provisioning, Error> {
        Ok(self.limits().await?.1)
    }

    async fn limits(&self) -> Result<(BlockLimits, Provisioning), Error> {
        if let Some(cached) = *self.limits.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(cached);
        }
        let limits = match self.vpd_page(VPD_BLOCK_LIMITS).await? {
            Some(page) => BlockLimits::parse(&page).map_err(|source| Error::BadData {
                command: "INQUIRY (Block Limits VPD page)",
                source,
            })?,
            None => BlockLimits::default(),
        };
        let provisioning = match self.vpd_page(VPD_LOGICAL_BLOCK_PROVISIONING).await? {
            Some(page) => Provisioning::parse(&page).map_err(|source| Error::BadData {
                command: "INQUIRY (Logical Block Provisioning VPD page)",
                source,
            })?,
            None => Provisioning::default(),
        };
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = Some((limits, provisioning));
        Ok((limits, provisioning))
    }

    /// A VPD page, `None` when the target refuses it as an invalid field.
    async fn vpd_page(&self, page: u8) -> Result<Option<Vec<u8>>, Error> {
        const ALLOCATION: u16 = 255;
        match self
            .scsi(
                Cdb::inquiry(Some(page), ALLOCATION),
                DataTransfer::Read(ALLOCATION.into()),
            )
            .await
        {
            Ok(data) => Ok(Some(data)),
            Err(Error::Scsi {
                sense: Some(sense), ..
            }) if sense.key == SENSE_ILLEGAL_REQUEST => Ok(None),
            Err(other) => Err(other),
        }
    }

    fn bytes_for(&self, blocks: u64) -> Result<u32, Error> {
        blocks
            .checked_mul(u64::from(self.capacity.block_size))
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| Error::Invalid(format!("{blocks} blocks are too many for one command")))
    }

    /// Reads `blocks` blocks at `lba`.
    pub async fn read(&self, lba: u64, blocks: u32) -> Result<Vec<u8>, Error> {
        let len = self.bytes_for(u64::from(blocks))?;
        self.scsi(Cdb::read16(lba, blocks), DataTransfer::Read(len))
            .await
    }

    /// Queues a WRITE(16) of `data` (a whole number of blocks) at `lba`; returns once it is
    /// queued, waiting while `queue_depth` writes are in flight. Its result is checked by
    /// later calls and [`Session::flush`]: a write error already seen is returned here.
    pub async fn submit_write(&self, lba: u64, data: Vec<u8>) -> Result<(), Error> {
        let block_size = self.capacity.block_size as usize;
        if data.is_empty() || block_size == 0 || !data.len().is_multiple_of(block_size) {
            return Err(Error::Invalid(format!(
                "a write of {} bytes at LBA {lba} is not a whole number of {block_size}-byte blocks",
                data.len()
            )));
        }
        let blocks = u32::try_from(data.len() / block_size)
            .map_err(|_| Error::Invalid(format!("a write of {} bytes is too long", data.len())))?;
        self.check_write_error()?;
        let permit = Arc::clone(&self.shared.write_slots)
            .acquire_owned()
            .await
            .map_err(|_| {
                self.shared
                    .ended()
                    .unwrap_or(Error::Closed("session closed".into()))
            })?;
        self.check_write_error()?;
        let waiter = Waiter::Write {
            _permit: permit,
            lba,
        };
        self.enqueue(
            Cdb::write16(lba, blocks),
            DataTransfer::Write(Arc::new(data)),
            waiter,
        )
    }

    /// The first write error, if one happened: it stays, every later write and flush
    /// returns it.
    fn check_write_error(&self) -> Result<(), Error> {
        match &self.shared.lock().write_error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// Waits for every submitted write, then SYNCHRONIZE CACHE(16); the first write error
    /// wins.
    pub async fn flush(&self) -> Result<(), Error> {
        self.wait_for_writes().await?;
        self.scsi(Cdb::synchronize_cache16(), DataTransfer::None)
            .await
            .map(drop)
    }

    async fn wait_for_writes(&self) -> Result<(), Error> {
        let all = Arc::clone(&self.shared.write_slots)
            .acquire_many_owned(self.shared.queue_depth)
            .await;
        self.check_write_error()?;
        match all {
            Ok(_permits) => Ok(()),
            Err(_) => Err(self
                .shared
                .ended()
                .unwrap_or(Error::Closed("session closed".into()))),
        }
    }

    /// Unmaps `blocks` blocks from `lba`: UNMAP when the target has it, else WRITE SAME(16)
    /// with UNMAP; split by the block limits.
    pub async fn unmap(&self, lba: u64, blocks: u64) -> Result<(), Error> {
        if !self.capacity.thin {
            return Err(Error::Invalid(
                "the logical unit is not thin-provisioned (LBPME=0): it cannot unmap".into(),
            ));
        }
        let (limits, provisioning) = self.limits().await?;
        let end = lba.checked_add(blocks).ok_or_else(|| {
            Error::Invalid(format!("unmap of {blocks} blocks at LBA {lba} overflows"))
        })?;
        let use_unmap = limits.max_unmap_blocks > 0 && limits.max_unmap_descriptors > 0;
        if !use_unmap && !provisioning.write_same16_unmap {
            return Err(Error::Invalid(
                "the target supports neither UNMAP nor WRITE SAME(16) with UNMAP".into(),
            ));
        }
        let per_command = match (use_unmap, limits.max_write_same_blocks) {
            (true, _) => limits.max_unmap_blocks,
            // MAXIMUM WRITE SAME LENGTH 0: no limit reported.
            (false, 0) => u32::MAX,
            (false, max) => u32::try_from(max).unwrap_or(u32::MAX),
        };
        let mut next = lba;
        while next < end {
            let count = u32::try_from(end - next)
                .unwrap_or(u32::MAX)
                .min(per_command);
            if use_unmap {
                // One descriptor: the per-command limit is MAXIMUM UNMAP LBA COUNT anyway.
                let list = unmap_parameter_list(&[(next, count)]).unwrap_or_default();
                let len = u16::try_from(list.len()).unwrap_or(u16::MAX);
                self.scsi(Cdb::unmap(len), DataTransfer::Write(Arc::new(list)))
                    .await?;
            } else {
                let zeros = Arc::new(vec![0u8; self.capacity.block_size as usize]);
                self.scsi(
                    Cdb::write_same16_unmap(next, count),
                    DataTransfer::Write(zeros),
                )
                .await?;
            }
            next += u64::from(count);
        }
        Ok(())
    }

    /// Waits for the writes in flight, logs out and closes the connection. Write errors
    /// are [`Session::flush`]'s to report, not this.
    pub async fn logout(self) -> Result<(), Error> {
        if let Err(error) = self.wait_for_writes().await {
            tracing::debug!(%error, "logging out after a failed write");
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.shared.lock();
            if let Some(ended) = &inner.ended {
                return Err(ended.to_error());
            }
            inner
                .machine
                .logout()
                .map_err(|e| Error::Closed(format!("logout: {e}")))?;
            inner.logout = Some(tx);
        }
        self.shared.wake_writer.notify_one();
        let response = tokio::time::timeout(self.shared.command_timeout, rx).await;
        let result = match response {
            Ok(Ok(LogoutResponseCode::ClosedSuccessfully)) => Ok(()),
            Ok(Ok(other)) => Err(Error::Closed(format!(
                "the target refused the logout: {}",
                logout_response_text(other)
            ))),
            Ok(Err(_)) => Err(self
                .shared
                .ended()
                .unwrap_or(Error::Closed("logout: session ended".into()))),
            Err(_) => Err(Error::Timeout {
                what: format!("Logout: no answer within {:?}", self.shared.command_timeout),
            }),
        };
        self.shared.end(Ended::Closed("logged out".into()));
        result
    }
}

fn logout_response_text(code: LogoutResponseCode) -> String {
    match code {
        LogoutResponseCode::ClosedSuccessfully => "closed successfully".into(),
        LogoutResponseCode::CidNotFound => "connection ID not found".into(),
        LogoutResponseCode::RecoveryNotSupported => "connection recovery not supported".into(),
        LogoutResponseCode::CleanupFailed => "cleanup failed".into(),
        LogoutResponseCode::Other(code) => format!("response {code:#04x}"),
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Stops the tasks (closing the socket) if the session was not logged out.
        let tasks =
            std::mem::take(&mut *self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
    }
}

/// The raw LUN field of LUN number `lun` (single-level, up to 16383).
fn lun_field(lun: u64) -> Result<u64, Error> {
    match u16::try_from(lun) {
        Ok(n) if n < 0x4000 => Ok(pdu::lun_from_number(n)),
        _ => Err(Error::Invalid(format!(
            "LUN {lun} is out of range (0 to 16383)"
        ))),
    }
}

fn describe(cdb: &Cdb) -> String {
    format!("{}{}", cdb.name(), at(cdb.lba()))
}

async fn connect_tcp(addr: SocketAddr, limit: Duration) -> Result<TcpStream, Error> {
    let stream = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(source)) => return Err(Error::Connect { addr, source }),
        Err(_) => {
            let source = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {limit:?}"),
            );
            return Err(Error::Connect { addr, source });
        }
    };
    stream
        .set_nodelay(true)
        .map_err(|source| Error::Connect { addr, source })?;
    Ok(stream)
}

async fn login(stream: &mut TcpStream, config: &InitiatorConfig) -> Result<LoggedIn, Error> {
    let chap = chap_auth(config.chap.clone(), config.mutual_chap.clone())?;
    let login = login_config(
        &config.initiator_name,
        Some(config.target_name.clone()),
        chap,
        config.limits.clone(),
    );
    let established = login_exchange(stream, login).await?;
    Ok(LoggedIn {
        params: established.params,
        start: sequence_start(&established),
    })
}

fn sequence_start(established: &Established) -> SequenceStart {
    SequenceStart {
        cmd_sn: established.cmd_sn,
        exp_stat_sn: established.stat_sn,
        exp_cmd_sn: established.cmd_sn,
        max_cmd_sn: established.max_cmd_sn,
    }
}

fn chap_auth(
    chap: Option<ChapCredentials>,
    mutual: Option<ChapCredentials>,
) -> Result<Option<ChapAuth>, Error> {
    match (chap, mutual) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::Invalid(
            "mutual CHAP is configured without the initiator's CHAP credentials".into(),
        )),
        (Some(ours), theirs) => ChapAuth::new(ours, theirs)
            .map(Some)
            .map_err(|e| Error::Invalid(format!("CHAP configuration: {e}"))),
    }
}

fn login_config(
    initiator_name: &str,
    target_name: Option<String>,
    chap: Option<ChapAuth>,
    limits: Limits,
) -> login::InitiatorConfig {
    let isid = login::random_isid(&mut rand::rng());
    let mut config = login::InitiatorConfig::new(initiator_name, target_name, isid);
    config.chap = chap;
    config.limits = limits;
    config
}

/// Runs the login phase on `stream` until the full feature phase.
async fn login_exchange(
    stream: &mut TcpStream,
    config: login::InitiatorConfig,
) -> Result<Established, Error> {
    let isid = config.isid;
    let mut login = InitiatorLogin::new(config, &mut rand::rng());
    let mut request = login.start();
    loop {
        let bytes = Pdu::LoginRequest(request).encode(Digests::NONE);
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| Error::Closed(format!("sending a Login Request failed: {e}")))?;
        let mut response = match read_pdu(stream, &WireConfig::LOGIN).await {
            Ok(Pdu::LoginResponse(response)) => response,
            Ok(other) => {
                return Err(Error::Protocol(format!(
                    "{:?} PDU during login",
                    other.opcode()
                )))
            }
            Err(Ended::Closed(why)) => return Err(Error::Closed(format!("during login: {why}"))),
            Err(ended) => return Err(ended.to_error()),
        };
        if !response.status.is_success() {
            // tgt zeroes the ISID of a failure response; the status is what matters.
            response.isid = isid;
        }
        match login.handle(&response).map_err(Error::Login)? {
            InitiatorStep::Send(next) => request = next,
            InitiatorStep::Done(established) => return Ok(*established),
        }
    }
}

/// A discovery result: the target's name and its portals ("host:port,tpgt").
pub type DiscoveredTargets = Vec<(String, Vec<String>)>;

impl Session {
    /// Asks the portal at `addr` which targets it has (a discovery session with
    /// SendTargets=All), within `limit`.
    pub async fn discover(
        addr: SocketAddr,
        initiator_name: &str,
        chap: Option<ChapCredentials>,
        limit: Duration,
    ) -> Result<DiscoveredTargets, Error> {
        tokio::time::timeout(limit, discover_within(addr, initiator_name, chap, limit))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("discovery at {addr}: no answer within {limit:?}"),
            })?
    }
}

async fn discover_within(
    addr: SocketAddr,
    initiator_name: &str,
    chap: Option<ChapCredentials>,
    limit: Duration,
) -> Result<DiscoveredTargets, Error> {
    let mut stream = connect_tcp(addr, limit).await?;
    let config = login_config(
        initiator_name,
        None,
        chap_auth(chap, None)?,
        Limits::default(),
    );
    let established = login_exchange(&mut stream, config).await?;
    let wire = established.params.wire_config(Role::Initiator);
    let mut machine = Initiator::new(established.params, sequence_start(&established), 0);
    machine
        .send_text(b"SendTargets=All\0".to_vec())
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let text = loop {
        if let Event::Text { data, .. } = drive(&mut stream, &mut machine, &wire).await? {
            break data;
        }
    };
    let targets = parse_send_targets(&text).map_err(|e| Error::Protocol(e.to_string()))?;
    if machine.logout().is_ok() {
        // The answer is in hand: a failed logout of a discovery session only gets logged.
        match drive(&mut stream, &mut machine, &wire).await {
            Ok(Event::LoggedOut { .. }) => {}
            other => tracing::debug!(?other, "discovery logout"),
        }
    }
    Ok(targets
        .into_iter()
        .map(|t| (t.name, t.portals.iter().map(portal_text).collect()))
        .collect())
}

fn portal_text(portal: &Portal) -> String {
    let host = if portal.host.contains(':') {
        format!("[{}]", portal.host)
    } else {
        portal.host.clone()
    };
    match portal.tpgt {
        Some(tag) => format!("{host}:{},{tag}", portal.port),
        None => format!("{host}:{}", portal.port),
    }
}

/// Runs `machine` on `stream` in this task until its next event.
async fn drive(
    stream: &mut TcpStream,
    machine: &mut Initiator,
    wire: &WireConfig,
) -> Result<Event, Error> {
    loop {
        let mut out = Vec::new();
        while let Some(transmit) = machine.poll_transmit() {
            transmit.encode_into(wire.digests, &mut out);
        }
        if !out.is_empty() {
            stream
                .write_all(&out)
                .await
                .map_err(|e| Error::Closed(format!("sending to the target failed: {e}")))?;
        }
        if let Some(event) = machine.poll_event() {
            return Ok(event);
        }
        let pdu = read_pdu(stream, wire).await.map_err(|e| e.to_error())?;
        machine.receive(pdu).map_err(|e| Error::Protocol(e.0))?;
    }
}

fn start_tasks(
    stream: TcpStream,
    login: LoggedIn,
    config: &InitiatorConfig,
    lun: u64,
) -> Arc<Shared> {
    let (read, write) = stream.into_split();
    let queue_depth = config.queue_depth.clamp(1, 1024);
    let machine = Initiator::new(login.params, login.start, lun);
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            machine,
            waiters: HashMap::new(),
            logout: None,
            ended: None,
            write_error: None,
        }),
        wake_writer: Notify::new(),
        write_slots: Arc::new(Semaphore::new(queue_depth)),
        queue_depth: queue_depth as u32,
        command_timeout: config.command_timeout,
        digests: login.params.digests(),
        wire: login.params.wire_config(Role::Initiator),
        tasks: Mutex::new(Vec::new()),
    });
    let handles: [JoinHandle<()>; 3] = [
        tokio::spawn(read_loop(Arc::clone(&shared), read)),
        tokio::spawn(write_loop(Arc::clone(&shared), write)),
        tokio::spawn(watchdog(Arc::clone(&shared))),
    ];
    *shared.tasks.lock().unwrap_or_else(|p| p.into_inner()) =
        handles.iter().map(JoinHandle::abort_handle).collect();
    shared
}

/// Reads one PDU.
async fn read_pdu<R: AsyncReadExt + Unpin>(
    reader: &mut R,
    wire: &WireConfig,
) -> Result<Pdu, Ended> {
    let mut bhs = [0u8; BHS_LEN];
    reader.read_exact(&mut bhs).await.map_err(read_failed)?;
    let rest = pdu::remaining_len(&bhs, wire).map_err(|e| Ended::Protocol(e.to_string()))?;
    let mut frame = Vec::with_capacity(BHS_LEN + rest);
    frame.extend_from_slice(&bhs);
    frame.resize(BHS_LEN + rest, 0);
    reader
        .read_exact(&mut frame[BHS_LEN..])
        .await
        .map_err(read_failed)?;
    Pdu::decode(&frame, wire).map_err(|e| Ended::Protocol(e.to_string()))
}

fn read_failed(error: io::Error) -> Ended {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        Ended::Closed("the target closed the connection".into())
    } else {
        Ended::Closed(format!("reading from the target failed: {error}"))
    }
}

async fn read_loop(shared: Arc<Shared>, read: OwnedReadHalf) {
    let mut reader = BufReader::with_capacity(256 * 1024, read);
    loop {
        let pdu = match read_pdu(&mut reader, &shared.wire).await {
            Ok(pdu) => pdu,
            Err(why) => return shared.end(why),
        };
        let mut inner = shared.lock();
        let received = inner.machine.receive(pdu);
        shared.dispatch_events(&mut inner);
        let logged_out = inner.machine.is_logged_out();
        drop(inner);
        if let Err(error) = received {
            return shared.end(Ended::Protocol(error.0));
        }
        shared.wake_writer.notify_one();
        if logged_out {
            return;
        }
    }
}

/// Bytes batched into one `write_all`.
const WRITE_BATCH: usize = 1 << 20;

async fn write_loop(shared: Arc<Shared>, mut write: OwnedWriteHalf) {
    let mut buf = Vec::with_capacity(WRITE_BATCH + 64 * 1024);
    loop {
        let batch = next_batch(&shared);
        if batch.is_empty() {
            if shared.lock().ended.is_some() {
                return;
            }
            shared.wake_writer.notified().await;
            continue;
        }
        buf.clear();
        for transmit in &batch {
            transmit.encode_into(shared.digests, &mut buf);
        }
        drop(batch);
        if let Err(error) = write.write_all(&buf).await {
            return shared.end(Ended::Closed(format!(
                "sending to the target failed: {error}"
            )));
        }
    }
}

/// PDUs to send now, up to about [`WRITE_BATCH`] bytes.
fn next_batch(shared: &Shared) -> Vec<Transmit> {
    let mut inner = shared.lock();
    let mut batch = Vec::new();
    let mut bytes = 0;
    while bytes < WRITE_BATCH {
        let Some(transmit) = inner.machine.poll_transmit() else {
            break;
        };
        bytes += BHS_LEN + transmit_data_len(&transmit);
        batch.push(transmit);
    }
    batch
}

fn transmit_data_len(transmit: &Transmit) -> usize {
    match transmit {
        Transmit::DataOut { range, .. } => range.len(),
        Transmit::Pdu(Pdu::ScsiCommand(c)) => c.data.len(),
        Transmit::Pdu(_) => 0,
    }
}

/// Ends the session when a command waits longer than `command_timeout`.
async fn watchdog(shared: Arc<Shared>) {
    let tick =
        (shared.command_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let late = {
            let inner = shared.lock();
            inner
                .waiters
                .values()
                .filter(|p| p.deadline <= now)
                .min_by_key(|p| p.deadline)
                .map(|p| describe(&p.cdb))
        };
        if let Some(what) = late {
            let limit = shared.command_timeout;
            return shared.end(Ended::Timeout(format!(
                "{what}: no answer within {limit:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::RejectReason;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn a_session_can_be_shared_between_tasks() {
        assert_send_sync::<Session>();
        assert_send_sync::<Error>();
    }

    #[test]
    fn errors_read_as_the_operator_needs() {
        let sense =
            SenseInfo::parse(&[0x70, 0, 0x07, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x27, 0]).unwrap();
        let scsi = Error::Scsi {
            command: "WRITE(16)",
            lba: Some(2048),
            status: ScsiStatus::CHECK_CONDITION,
            sense: Some(sense),
        };
        assert_eq!(
            scsi.to_string(),
            "WRITE(16) at LBA 2048 failed with SCSI status CHECK CONDITION: DATA PROTECT: WRITE PROTECTED"
        );
        let busy = Error::Scsi {
            command: "SYNCHRONIZE CACHE(16)",
            lba: Some(0),
            status: ScsiStatus::BUSY,
            sense: None,
        };
        assert_eq!(
            busy.to_string(),
            "SYNCHRONIZE CACHE(16) at LBA 0 failed with SCSI status BUSY"
        );
        let rejected = Error::Command {
            command: "READ CAPACITY(16)",
            lba: None,
            failure: CommandFailure::Rejected {
                reason: RejectReason::InvalidPduField,
            },
        };
        assert_eq!(
            rejected.to_string(),
            "READ CAPACITY(16) failed: the target rejected the command PDU (invalid PDU field)"
        );
        let connect = Error::Connect {
            addr: "192.0.2.1:3260".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(connect.clone().to_string(), connect.to_string());
        assert_eq!(
            connect.to_string(),
            "cannot connect to the iSCSI target at 192.0.2.1:3260: connection refused"
        );
    }

    #[test]
    fn lun_numbers_map_to_single_level_lun_fields() {
        assert_eq!(lun_field(1).unwrap(), 0x0001_0000_0000_0000);
        assert_eq!(lun_field(300).unwrap(), 0x412c_0000_0000_0000);
        assert_eq!(
            lun_field(16_384).unwrap_err().to_string(),
            "LUN 16384 is out of range (0 to 16383)"
        );
    }

    #[test]
    fn portals_are_written_back_as_send_targets_gives_them() {
        let v4 = Portal::parse("10.0.0.5:3261,7").unwrap();
        assert_eq!(portal_text(&v4), "10.0.0.5:3261,7");
        let v6 = Portal::parse("[fd00::1]:3260").unwrap();
        assert_eq!(portal_text(&v6), "[fd00::1]:3260");
    }

    #[test]
    fn mutual_chap_alone_is_refused() {
        let target = ChapCredentials::new("agent", b"target-secret-1".to_vec()).unwrap();
        assert_eq!(
            chap_auth(None, Some(target)).unwrap_err().to_string(),
            "mutual CHAP is configured without the initiator's CHAP credentials"
        );
        assert!(chap_auth(None, None).unwrap().is_none());
    }

    #[test]
    fn logout_refusals_are_in_words() {
        assert_eq!(
            logout_response_text(LogoutResponseCode::CleanupFailed),
            "cleanup failed"
        );
        assert_eq!(
            logout_response_text(LogoutResponseCode::Other(0x7f)),
            "response 0x7f"
        );
    }
}
