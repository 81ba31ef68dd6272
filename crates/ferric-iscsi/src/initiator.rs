//! The initiator's full feature phase, sans-IO (RFC 7143): after login, [`Initiator`]
//! turns SCSI commands into SCSI Command and Data-Out PDUs and the target's PDUs back into
//! command results. It never reads a socket or a clock: the caller feeds it decoded PDUs
//! ([`Initiator::receive`]), sends what [`Initiator::poll_transmit`] returns, and takes
//! the [`Event`]s from [`Initiator::poll_event`].
//!
//! What it does:
//! - Command numbering: an ITT per task, CmdSN in submission order, ExpStatSN on every
//!   PDU; a command waits while the target's window (ExpCmdSN..=MaxCmdSN) is closed.
//! - WRITE data: immediate data up to min(FirstBurstLength, the target's
//!   MaxRecvDataSegmentLength) when ImmediateData=Yes; unsolicited Data-Out up to
//!   FirstBurstLength when InitialR2T=No; Data-Out answering each R2T, in PDUs of at most
//!   the target's MaxRecvDataSegmentLength, DataSN restarting at 0 for each sequence.
//!   Data-Out PDUs are built when polled, around the caller's shared buffer
//!   ([`Transmit::DataOut`]); only immediate data is copied (into the SCSI Command PDU).
//! - READ data: Data-In checked (DataSN, buffer offset, bounds), status in the last Data-In
//!   (S bit) or a SCSI Response with sense data and residuals.
//! - NOP-In with a target transfer tag is answered; own NOP-Out pings ([`Initiator::ping`]).
//! - Reject fails the rejected command; an Asynchronous Message asking for logout stops new
//!   commands and logs out once the commands in flight are done; Logout.
//!
//! Error recovery level 0: a protocol violation by the target is a [`ProtocolError`],
//! after which the connection is to be closed.
//!
//! The second half of the module has the SCSI side: [`Cdb`] builders, [`SenseInfo`]
//! decoding with SPC names, and the parameter data the conductor reads ([`Capacity`],
//! [`BlockLimits`], [`Provisioning`]).

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use crate::digest::Digests;
use crate::params::SessionParams;
use crate::pdu::{
    AsyncEvent, AsyncMessage, DataIn, DataOut, Frame, LogoutReason, LogoutRequest, LogoutResponse,
    LogoutResponseCode, NopIn, NopOut, Opcode, Pdu, R2t, Reject, RejectReason, Residual,
    ScsiCommand, ScsiResponse, ServiceResponse, TaskAttribute, TextRequest, TextResponse,
    RESERVED_TAG,
};

/// An initiator task tag.
pub type Itt = u32;

/// The sequence numbers the full feature phase starts from (from the last Login Response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceStart {
    /// The CmdSN of the first command.
    pub cmd_sn: u32,
    /// The last Login Response's StatSN + 1.
    pub exp_stat_sn: u32,
    /// ExpCmdSN of the last Login Response.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN of the last Login Response.
    pub max_cmd_sn: u32,
}

/// The data a command moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataTransfer {
    /// No data.
    None,
    /// Data-in of at most this many bytes (the allocation / transfer length).
    Read(u32),
    /// Data-out: the whole buffer, shared with the Data-Out PDUs as they are sent.
    Write(Arc<Vec<u8>>),
}

/// A finished SCSI command (service response "command completed at target").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The command.
    pub cdb: Cdb,
    /// The SCSI status.
    pub status: ScsiStatus,
    /// The sense data decoded, when there was any.
    pub sense: Option<SenseInfo>,
    /// The raw sense data.
    pub sense_data: Vec<u8>,
    /// The residual the target reported.
    pub residual: Residual,
    /// The data-in received (as long as the target says it transferred).
    pub data: Vec<u8>,
}

/// Why a command has no [`Completion`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandFailure {
    /// The SCSI Response's service response was not "command completed".
    #[error("the target reported an iSCSI target failure (service response {response:#04x})")]
    TargetFailure {
        /// The service response code.
        response: u8,
    },
    /// The target rejected the SCSI Command PDU.
    #[error("the target rejected the command PDU ({})", reject_reason_text(*.reason))]
    Rejected {
        /// Reject reason.
        reason: RejectReason,
    },
    /// The command was never sent: the session is logging out.
    #[error("not sent: the session is logging out")]
    LoggingOut,
    /// The session logged out before the command finished.
    #[error("the session logged out before the command finished")]
    LoggedOut,
}

/// Something for the caller to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A command finished.
    Completed {
        /// Its tag.
        itt: Itt,
        /// The result.
        result: Result<Completion, CommandFailure>,
    },
    /// The answer to [`Initiator::ping`].
    Pong {
        /// The ping's tag.
        itt: Itt,
        /// The data echoed.
        data: Vec<u8>,
    },
    /// A text exchange ([`Initiator::send_text`]) finished, with all the response data.
    Text {
        /// The exchange's tag.
        itt: Itt,
        /// The response text, continuation PDUs joined.
        data: Vec<u8>,
    },
    /// The target asked for a logout within this many seconds (Asynchronous Message 1 or
    /// 4): no new commands are sent; a Logout follows when the ones in flight are done.
    LogoutRequested {
        /// Parameter3: seconds left.
        within_secs: u16,
    },
    /// The target announced it will drop the connection (Asynchronous Message 2 or 3).
    TargetDropping {
        /// Time2Wait, seconds.
        time2wait: u16,
    },
    /// A SCSI asynchronous event (Asynchronous Message 0) with its sense data.
    ScsiAsyncEvent {
        /// The sense data decoded.
        sense: Option<SenseInfo>,
    },
    /// The Logout Response arrived: the connection is to be closed.
    LoggedOut {
        /// Its response code (0 = closed successfully).
        response: LogoutResponseCode,
    },
}

/// The target broke the protocol (error recovery level 0: close the connection).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("protocol error by the target: {0}")]
pub struct ProtocolError(pub String);

fn violation(detail: impl Into<String>) -> ProtocolError {
    ProtocolError(detail.into())
}

/// Why [`Initiator::submit`] refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Logging out, logged out or failed: no more commands.
    #[error("the session is {0}: no new commands")]
    NotRunning(&'static str),
    /// [`Initiator::send_text`] while a text exchange is under way.
    #[error("a text exchange is already under way")]
    TextInProgress,
    /// A data-out buffer of 4 GiB or more.
    #[error("{0} bytes of data-out: more than one command can carry")]
    TooLong(usize),
}

/// A PDU to send, built when polled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transmit {
    /// Any PDU but Data-Out.
    Pdu(Pdu),
    /// A Data-Out PDU whose data is `buffer[range]`.
    DataOut {
        /// The header (`data` empty).
        header: DataOut,
        /// The write's buffer.
        buffer: Arc<Vec<u8>>,
        /// The part this PDU carries.
        range: Range<usize>,
    },
}

impl Transmit {
    /// The encoded PDU in parts; the data segment of a Data-Out is borrowed.
    pub fn frame(&self, digests: Digests) -> FrameBuf<'_> {
        match self {
            Transmit::Pdu(pdu) => FrameBuf::Owned(pdu.encode(digests)),
            Transmit::DataOut {
                header,
                buffer,
                range,
            } => {
                let data = buffer.get(range.clone()).unwrap_or_default();
                FrameBuf::Borrowed(header.encode_with(data, digests))
            }
        }
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode_into(&self, digests: Digests, out: &mut Vec<u8>) {
        match self.frame(digests) {
            FrameBuf::Owned(bytes) => out.extend_from_slice(&bytes),
            FrameBuf::Borrowed(frame) => {
                out.extend_from_slice(&frame.head);
                out.extend_from_slice(frame.data);
                out.extend_from_slice(&frame.tail);
            }
        }
    }
}

/// An encoded PDU: one buffer, or a Data-Out frame around the caller's data.
#[derive(Debug)]
pub enum FrameBuf<'a> {
    /// The whole PDU.
    Owned(Vec<u8>),
    /// Header and trailer around borrowed data.
    Borrowed(Frame<'a>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    /// The target asked for a logout: send it when no command is in flight.
    LogoutWanted,
    LoggingOut,
    LoggedOut,
    Failed,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::LogoutWanted | State::LoggingOut => "logging out",
            State::LoggedOut => "logged out",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug)]
enum TaskData {
    None,
    Read {
        buf: Vec<u8>,
        next_offset: u32,
        /// The end of the highest Data-In received.
        received: u32,
    },
    Write(Arc<Vec<u8>>),
}

#[derive(Debug)]
struct Task {
    cdb: Cdb,
    data: TaskData,
    expected_len: u32,
    next_data_sn: u32,
    next_r2t_sn: u32,
}

/// A run of Data-Out PDUs still to send: unsolicited, or answering one R2T.
#[derive(Clone, Debug)]
struct DataOutRun {
    itt: Itt,
    ttt: u32,
    offset: u32,
    end: u32,
    next_data_sn: u32,
}

#[derive(Debug)]
enum Outgoing {
    Command(Itt),
    DataOut(DataOutRun),
    NopReply { ttt: u32, lun: u64 },
    Ping { itt: Itt, data: Vec<u8> },
    Text { itt: Itt, ttt: u32, data: Vec<u8> },
    Logout(Itt),
}

#[derive(Debug, Default)]
struct TextExchange {
    itt: Itt,
    data: Vec<u8>,
}

/// Text responses are small (SendTargets); a target that sends more is refused.
const MAX_TEXT_RESPONSE: usize = 1 << 20;

/// One connection's full feature phase (one session, one connection, ERL 0).
#[derive(Debug)]
pub struct Initiator {
    params: SessionParams,
    lun: u64,
    state: State,
    cmd_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    exp_stat_sn: u32,
    next_itt: Itt,
    tasks: HashMap<Itt, Task>,
    /// Submitted commands not sent yet, in CmdSN order.
    pending: VecDeque<Itt>,
    outbox: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    pings: HashMap<Itt, ()>,
    text: Option<TextExchange>,
    logout_itt: Option<Itt>,
    failure: Option<ProtocolError>,
}

/// `a < b` in 32-bit serial number arithmetic (RFC 1982).
fn serial_lt(a: u32, b: u32) -> bool {
    a != b && (b.wrapping_sub(a) as i32) > 0
}

impl Initiator {
    /// A full feature phase on raw LUN `lun` (the 8-byte LUN field, see
    /// [`crate::pdu::lun_from_number`]).
    pub fn new(params: SessionParams, start: SequenceStart, lun: u64) -> Self {
        Self {
            params,
            lun,
            state: State::Running,
            cmd_sn: start.cmd_sn,
            exp_cmd_sn: start.exp_cmd_sn,
            max_cmd_sn: start.max_cmd_sn,
            exp_stat_sn: start.exp_stat_sn,
            next_itt: 1,
            tasks: HashMap::new(),
            pending: VecDeque::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            pings: HashMap::new(),
            text: None,
            logout_itt: None,
            failure: None,
        }
    }

    /// The negotiated values in use.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Commands submitted and not finished (sent or waiting for the window).
    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the target's command window lets the next command out now.
    pub fn window_open(&self) -> bool {
        !serial_lt(self.max_cmd_sn, self.cmd_sn)
    }

    /// The CmdSN the next command gets.
    pub fn cmd_sn(&self) -> u32 {
        self.cmd_sn
    }

    /// ExpStatSN as we send it.
    pub fn exp_stat_sn(&self) -> u32 {
        self.exp_stat_sn
    }

    /// The logout finished (the connection can be closed).
    pub fn is_logged_out(&self) -> bool {
        self.state == State::LoggedOut
    }

    fn allocate_itt(&mut self) -> Itt {
        loop {
            let itt = self.next_itt;
            self.next_itt = self.next_itt.wrapping_add(1);
            let in_use = itt == RESERVED_TAG
                || self.tasks.contains_key(&itt)
                || self.pings.contains_key(&itt)
                || self.logout_itt == Some(itt)
                || self.text.as_ref().is_some_and(|t| t.itt == itt);
            if !in_use {
                return itt;
            }
        }
    }

    /// Queues a SCSI command; it goes out (in submission order) when the window allows.
    pub fn submit(&mut self, cdb: Cdb, transfer: DataTransfer) -> Result<Itt, SubmitError> {
        if self.state != State::Running {
            return Err(SubmitError::NotRunning(self.state.name()));
        }
        let (data, expected_len) = match transfer {
            DataTransfer::None => (TaskData::None, 0),
            DataTransfer::Read(len) => (
                TaskData::Read {
                    buf: Vec::new(),
                    next_offset: 0,
                    received: 0,
                },
                len,
            ),
            DataTransfer::Write(buf) => {
                let len = u32::try_from(buf.len()).map_err(|_| SubmitError::TooLong(buf.len()))?;
                (TaskData::Write(buf), len)
            }
        };
        let itt = self.allocate_itt();
        let task = Task {
            cdb,
            data,
            expected_len,
            next_data_sn: 0,
            next_r2t_sn: 0,
        };
        self.tasks.insert(itt, task);
        self.pending.push_back(itt);
        Ok(itt)
    }

    /// Queues a NOP-Out ping (immediate, a reply requested); [`Event::Pong`] answers it.
    pub fn ping(&mut self, data: Vec<u8>) -> Result<Itt, SubmitError> {
        if matches!(self.state, State::LoggedOut | State::Failed) {
            return Err(SubmitError::NotRunning(self.state.name()));
        }
        let itt = self.allocate_itt();
        self.pings.insert(itt, ());
        self.outbox.push_back(Outgoing::Ping { itt, data });
        Ok(itt)
    }

    /// Sends a Text Request (e.g. `SendTargets=All` in a discovery session); continuation
    /// is handled here and [`Event::Text`] has the whole response.
    pub fn send_text(&mut self, data: Vec<u8>) -> Result<Itt, SubmitError> {
        if self.state != State::Running {
            return Err(SubmitError::NotRunning(self.state.name()));
        }
        if self.text.is_some() {
            return Err(SubmitError::TextInProgress);
        }
        let itt = self.allocate_itt();
        self.text = Some(TextExchange {
            itt,
            data: Vec::new(),
        });
        self.outbox.push_back(Outgoing::Text {
            itt,
            ttt: RESERVED_TAG,
            data,
        });
        Ok(itt)
    }

    /// Closes the session: commands not sent yet fail with [`CommandFailure::LoggingOut`];
    /// a Logout Request goes out now (immediate); [`Event::LoggedOut`] follows.
    pub fn logout(&mut self) -> Result<Itt, SubmitError> {
        if !matches!(self.state, State::Running | State::LogoutWanted) {
            return Err(SubmitError::NotRunning(self.state.name()));
        }
        Ok(self.start_logout())
    }

    fn start_logout(&mut self) -> Itt {
        self.fail_pending(CommandFailure::LoggingOut);
        self.state = State::LoggingOut;
        let itt = self.allocate_itt();
        self.logout_itt = Some(itt);
        self.outbox.push_back(Outgoing::Logout(itt));
        itt
    }

    fn fail_pending(&mut self, failure: CommandFailure) {
        while let Some(itt) = self.pending.pop_front() {
            self.tasks.remove(&itt);
            self.events.push_back(Event::Completed {
                itt,
                result: Err(failure.clone()),
            });
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next PDU to send, if any: replies and Data-Out first, then new commands while
    /// the window is open.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.state == State::Failed {
            return None;
        }
        loop {
            if let Some(out) = self.outbox.pop_front() {
                if let Some(transmit) = self.build(out) {
                    return Some(transmit);
                }
                continue;
            }
            if !self.release_next_command() {
                return None;
            }
        }
    }

    /// Moves the oldest pending command to the outbox if the window allows.
    fn release_next_command(&mut self) -> bool {
        if self.state != State::Running || !self.window_open() {
            return false;
        }
        let Some(itt) = self.pending.pop_front() else {
            return false;
        };
        self.outbox.push_back(Outgoing::Command(itt));
        true
    }

    fn build(&mut self, out: Outgoing) -> Option<Transmit> {
        match out {
            Outgoing::Command(itt) => self.build_command(itt),
            Outgoing::DataOut(run) => self.build_data_out(run),
            Outgoing::NopReply { ttt, lun } => {
                Some(self.nop_out(RESERVED_TAG, ttt, lun, Vec::new()))
            }
            Outgoing::Ping { itt, data } => Some(self.nop_out(itt, RESERVED_TAG, 0, data)),
            Outgoing::Text { itt, ttt, data } => {
                Some(Transmit::Pdu(Pdu::TextRequest(TextRequest {
                    immediate: false,
                    final_: true,
                    continue_: false,
                    lun: 0,
                    itt,
                    ttt,
                    cmd_sn: self.next_cmd_sn(),
                    exp_stat_sn: self.exp_stat_sn,
                    data,
                })))
            }
            Outgoing::Logout(itt) => Some(Transmit::Pdu(Pdu::LogoutRequest(LogoutRequest {
                immediate: true,
                reason: LogoutReason::CloseSession,
                itt,
                cid: 0,
                cmd_sn: self.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            }))),
        }
    }

    fn next_cmd_sn(&mut self) -> u32 {
        let sn = self.cmd_sn;
        self.cmd_sn = self.cmd_sn.wrapping_add(1);
        sn
    }

    /// A NOP-Out: a ping (`itt` set) or the reply to a target's NOP-In (`ttt` set); both
    /// immediate, so the CmdSN is not advanced.
    fn nop_out(&self, itt: Itt, ttt: u32, lun: u64, data: Vec<u8>) -> Transmit {
        Transmit::Pdu(Pdu::NopOut(NopOut {
            immediate: true,
            lun,
            itt,
            ttt,
            cmd_sn: self.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            data,
        }))
    }

    fn build_command(&mut self, itt: Itt) -> Option<Transmit> {
        let params = self.params;
        if !self.tasks.contains_key(&itt) {
            return None;
        }
        let cmd_sn = self.next_cmd_sn();
        let task = self.tasks.get(&itt)?;
        let mut pdu = ScsiCommand {
            immediate: false,
            final_: true,
            read: matches!(task.data, TaskData::Read { .. }),
            write: matches!(task.data, TaskData::Write(_)),
            attr: TaskAttribute::Simple,
            lun: self.lun,
            itt,
            expected_data_transfer_length: task.expected_len,
            cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            cdb: task.cdb.padded(),
            ..Default::default()
        };
        let mut unsolicited = None;
        if let TaskData::Write(buf) = &task.data {
            let len = task.expected_len;
            let immediate = if params.immediate_data {
                len.min(params.first_burst_length)
                    .min(params.target_max_recv_data_segment_length)
            } else {
                0
            };
            pdu.data = buf.get(..immediate as usize).unwrap_or_default().to_vec();
            let unsolicited_end = if params.initial_r2t {
                immediate
            } else {
                len.min(params.first_burst_length)
            };
            if unsolicited_end > immediate {
                pdu.final_ = false;
                unsolicited = Some(DataOutRun {
                    itt,
                    ttt: RESERVED_TAG,
                    offset: immediate,
                    end: unsolicited_end,
                    next_data_sn: 0,
                });
            }
        }
        if let Some(run) = unsolicited {
            // The unsolicited data follows its command before anything else.
            self.outbox.push_front(Outgoing::DataOut(run));
        }
        Some(Transmit::Pdu(Pdu::ScsiCommand(pdu)))
    }

    fn build_data_out(&mut self, mut run: DataOutRun) -> Option<Transmit> {
        let Some(Task {
            data: TaskData::Write(buf),
            ..
        }) = self.tasks.get(&run.itt)
        else {
            // The command finished (or failed) meanwhile: nothing more to send for it.
            return None;
        };
        let buffer = Arc::clone(buf);
        let len =
            (run.end - run.offset).min(self.params.target_max_recv_data_segment_length.max(1));
        let range = run.offset as usize..(run.offset + len) as usize;
        let header = DataOut {
            final_: run.offset + len == run.end,
            lun: self.lun,
            itt: run.itt,
            ttt: run.ttt,
            exp_stat_sn: self.exp_stat_sn,
            data_sn: run.next_data_sn,
            buffer_offset: run.offset,
            data: Vec::new(),
        };
        run.offset += len;
        run.next_data_sn = run.next_data_sn.wrapping_add(1);
        if run.offset < run.end {
            self.outbox.push_front(Outgoing::DataOut(run));
        }
        Some(Transmit::DataOut {
            header,
            buffer,
            range,
        })
    }

    /// Feeds one PDU from the target. An error is final: close the connection.
    pub fn receive(&mut self, pdu: Pdu) -> Result<(), ProtocolError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let result = self.dispatch(pdu);
        if let Err(error) = &result {
            self.state = State::Failed;
            self.failure = Some(error.clone());
        } else {
            self.maybe_logout_when_idle();
        }
        result
    }

    fn dispatch(&mut self, pdu: Pdu) -> Result<(), ProtocolError> {
        if self.state == State::LoggedOut {
            return Err(violation(format!(
                "{:?} PDU after the Logout Response",
                pdu.opcode()
            )));
        }
        match pdu {
            Pdu::ScsiResponse(p) => self.on_scsi_response(p),
            Pdu::DataIn(p) => self.on_data_in(p),
            Pdu::R2t(p) => self.on_r2t(p),
            Pdu::NopIn(p) => self.on_nop_in(p),
            Pdu::AsyncMessage(p) => self.on_async(p),
            Pdu::Reject(p) => self.on_reject(p),
            Pdu::LogoutResponse(p) => self.on_logout_response(p),
            Pdu::TextResponse(p) => self.on_text_response(p),
            other => Err(violation(format!(
                "unexpected {:?} PDU in the full feature phase",
                other.opcode()
            ))),
        }
    }

    /// RFC 7143 4.2.2.1: MaxCmdSN and ExpCmdSN only move forward, and a pair with
    /// MaxCmdSN < ExpCmdSN - 1 is ignored.
    fn update_window(&mut self, exp_cmd_sn: u32, max_cmd_sn: u32) {
        if serial_lt(max_cmd_sn, exp_cmd_sn.wrapping_sub(1)) {
            return;
        }
        if serial_lt(self.exp_cmd_sn, exp_cmd_sn) {
            self.exp_cmd_sn = exp_cmd_sn;
        }
        if serial_lt(self.max_cmd_sn, max_cmd_sn) {
            self.max_cmd_sn = max_cmd_sn;
        }
    }

    /// A PDU that consumed StatSN `stat_sn`.
    fn acknowledge_status(&mut self, stat_sn: u32) {
        let next = stat_sn.wrapping_add(1);
        if serial_lt(self.exp_stat_sn, next) {
            if stat_sn != self.exp_stat_sn {
                tracing::debug!(stat_sn, expected = self.exp_stat_sn, "StatSN skipped ahead");
            }
            self.exp_stat_sn = next;
        }
    }

    fn task_mut(&mut self, itt: Itt, pdu: &str) -> Result<&mut Task, ProtocolError> {
        self.tasks
            .get_mut(&itt)
            .ok_or_else(|| violation(format!("{pdu} for unknown task {itt:#010x}")))
    }

    fn complete(&mut self, itt: Itt, result: Result<Completion, CommandFailure>) {
        self.tasks.remove(&itt);
        self.pending.retain(|&p| p != itt);
        self.events.push_back(Event::Completed { itt, result });
    }

    fn on_scsi_response(&mut self, p: ScsiResponse) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        self.acknowledge_status(p.stat_sn);
        let task = self
            .tasks
            .remove(&p.itt)
            .ok_or_else(|| violation(format!("SCSI Response for unknown task {:#010x}", p.itt)))?;
        if p.response != ServiceResponse::CommandCompleted {
            let failure = CommandFailure::TargetFailure {
                response: p.response.to_u8(),
            };
            self.events.push_back(Event::Completed {
                itt: p.itt,
                result: Err(failure),
            });
            return Ok(());
        }
        let status = ScsiStatus(p.status);
        let cdb = task.cdb;
        let data = finished_data(task, p.residual, status)?;
        let completion = Completion {
            cdb,
            status,
            sense: SenseInfo::parse(&p.sense),
            sense_data: p.sense,
            residual: p.residual,
            data,
        };
        self.events.push_back(Event::Completed {
            itt: p.itt,
            result: Ok(completion),
        });
        Ok(())
    }

    fn on_data_in(&mut self, p: DataIn) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        if p.status.is_some() {
            self.acknowledge_status(p.stat_sn);
        }
        let in_order = self.params.data_pdu_in_order && self.params.data_sequence_in_order;
        let task = self.task_mut(p.itt, "Data-In")?;
        let name = task.cdb.name();
        let expected_len = task.expected_len;
        if p.data_sn != task.next_data_sn {
            return Err(violation(format!(
                "Data-In of {name} has DataSN {}, expected {}",
                p.data_sn, task.next_data_sn
            )));
        }
        task.next_data_sn = task.next_data_sn.wrapping_add(1);
        let TaskData::Read {
            buf,
            next_offset,
            received,
        } = &mut task.data
        else {
            return Err(violation(format!(
                "Data-In for {name}, which reads no data"
            )));
        };
        let len = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
        let end = p
            .buffer_offset
            .checked_add(len)
            .filter(|&end| end <= expected_len);
        let Some(end) = end else {
            return Err(violation(format!(
                "Data-In of {name} at offset {} with {len} bytes runs past the {expected_len} bytes expected",
                p.buffer_offset
            )));
        };
        if in_order && p.buffer_offset != *next_offset {
            return Err(violation(format!(
                "Data-In of {name} at offset {}, expected {next_offset}",
                p.buffer_offset
            )));
        }
        if buf.len() < end as usize {
            buf.resize(end as usize, 0);
        }
        buf[p.buffer_offset as usize..end as usize].copy_from_slice(&p.data);
        *next_offset = end;
        *received = (*received).max(end);
        if let Some(status) = p.status {
            if !p.final_ {
                return Err(violation(format!(
                    "Data-In of {name} with status but without the F bit"
                )));
            }
            self.complete_from_data_in(p.itt, ScsiStatus(status), p.residual)?;
        }
        Ok(())
    }

    fn complete_from_data_in(
        &mut self,
        itt: Itt,
        status: ScsiStatus,
        residual: Residual,
    ) -> Result<(), ProtocolError> {
        let Some(task) = self.tasks.remove(&itt) else {
            return Ok(());
        };
        let cdb = task.cdb;
        let data = finished_data(task, residual, status)?;
        let completion = Completion {
            cdb,
            status,
            sense: None,
            sense_data: Vec::new(),
            residual,
            data,
        };
        self.events.push_back(Event::Completed {
            itt,
            result: Ok(completion),
        });
        Ok(())
    }

    fn on_r2t(&mut self, p: R2t) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        let max_burst = self.params.max_burst_length;
        let task = self.task_mut(p.itt, "R2T")?;
        let name = task.cdb.name();
        if !matches!(task.data, TaskData::Write(_)) {
            return Err(violation(format!("R2T for {name}, which writes no data")));
        }
        if p.r2t_sn != task.next_r2t_sn {
            return Err(violation(format!(
                "R2T of {name} has R2TSN {}, expected {}",
                p.r2t_sn, task.next_r2t_sn
            )));
        }
        task.next_r2t_sn = task.next_r2t_sn.wrapping_add(1);
        let len = p.desired_data_transfer_length;
        let end = p
            .buffer_offset
            .checked_add(len)
            .filter(|&end| end <= task.expected_len);
        let (Some(end), true) = (end, len > 0) else {
            return Err(violation(format!(
                "R2T of {name} asks for {len} bytes at offset {} of {}",
                p.buffer_offset, task.expected_len
            )));
        };
        if len > max_burst {
            tracing::debug!(len, max_burst, "R2T asks for more than MaxBurstLength");
        }
        self.outbox.push_back(Outgoing::DataOut(DataOutRun {
            itt: p.itt,
            ttt: p.ttt,
            offset: p.buffer_offset,
            end,
            next_data_sn: 0,
        }));
        Ok(())
    }

    fn on_nop_in(&mut self, p: NopIn) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        if p.itt == RESERVED_TAG {
            // The target's own NOP-In: StatSN is not advanced; a TTT asks for a reply.
            if p.ttt != RESERVED_TAG {
                self.outbox.push_back(Outgoing::NopReply {
                    ttt: p.ttt,
                    lun: p.lun,
                });
            }
            return Ok(());
        }
        self.acknowledge_status(p.stat_sn);
        if self.pings.remove(&p.itt).is_none() {
            return Err(violation(format!(
                "NOP-In for unknown ping {:#010x}",
                p.itt
            )));
        }
        self.events.push_back(Event::Pong {
            itt: p.itt,
            data: p.data,
        });
        Ok(())
    }

    fn on_async(&mut self, p: AsyncMessage) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        self.acknowledge_status(p.stat_sn);
        match p.event {
            AsyncEvent::ScsiAsyncEvent => {
                // The data segment is SenseLength + sense data, as in a SCSI Response.
                let sense = p.data.get(2..).and_then(SenseInfo::parse);
                tracing::info!(?sense, "SCSI asynchronous event from the target");
                self.events.push_back(Event::ScsiAsyncEvent { sense });
            }
            AsyncEvent::LogoutRequested | AsyncEvent::NegotiationRequest => {
                tracing::info!(within_secs = p.parameter3, "the target requests a logout");
                self.events.push_back(Event::LogoutRequested {
                    within_secs: p.parameter3,
                });
                if self.state == State::Running {
                    self.state = State::LogoutWanted;
                    self.fail_pending(CommandFailure::LoggingOut);
                }
            }
            AsyncEvent::ConnectionDrop | AsyncEvent::SessionDrop => {
                tracing::warn!(
                    time2wait = p.parameter2,
                    "the target will drop the connection"
                );
                self.events.push_back(Event::TargetDropping {
                    time2wait: p.parameter2,
                });
            }
            other => tracing::debug!(?other, "ignoring asynchronous message"),
        }
        Ok(())
    }

    fn maybe_logout_when_idle(&mut self) {
        if self.state == State::LogoutWanted && self.tasks.is_empty() {
            self.start_logout();
        }
    }

    fn on_reject(&mut self, p: Reject) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        self.acknowledge_status(p.stat_sn);
        let reason = reject_reason_text(p.reason);
        let (Some(opcode), Some(itt)) = (p.rejected_opcode(), p.rejected_itt()) else {
            return Err(violation(format!(
                "Reject ({reason}) without the rejected header"
            )));
        };
        if p.reason == RejectReason::WaitingForLogout && self.state == State::Running {
            self.state = State::LogoutWanted;
        }
        match Opcode::from_u8(opcode) {
            Some(Opcode::ScsiCommand) if self.tasks.contains_key(&itt) => {
                self.complete(itt, Err(CommandFailure::Rejected { reason: p.reason }));
                Ok(())
            }
            Some(Opcode::NopOut) if self.pings.remove(&itt).is_some() => {
                tracing::warn!(reason, "the target rejected a ping");
                Ok(())
            }
            Some(Opcode::DataOut) => {
                let name = self.tasks.get(&itt).map_or("a command", |t| t.cdb.name());
                Err(violation(format!(
                    "the target rejected a Data-Out PDU of {name} ({reason})"
                )))
            }
            _ => Err(violation(format!(
                "the target rejected PDU opcode {opcode:#04x}, task {itt:#010x} ({reason})"
            ))),
        }
    }

    fn on_logout_response(&mut self, p: LogoutResponse) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        self.acknowledge_status(p.stat_sn);
        if self.logout_itt != Some(p.itt) {
            return Err(violation(format!(
                "Logout Response for unknown task {:#010x}",
                p.itt
            )));
        }
        self.logout_itt = None;
        self.state = State::LoggedOut;
        let left: Vec<Itt> = self.tasks.keys().copied().collect();
        for itt in left {
            self.complete(itt, Err(CommandFailure::LoggedOut));
        }
        self.events.push_back(Event::LoggedOut {
            response: p.response,
        });
        Ok(())
    }

    fn on_text_response(&mut self, p: TextResponse) -> Result<(), ProtocolError> {
        self.update_window(p.exp_cmd_sn, p.max_cmd_sn);
        self.acknowledge_status(p.stat_sn);
        let Some(text) = self.text.as_mut().filter(|t| t.itt == p.itt) else {
            return Err(violation(format!(
                "Text Response for unknown task {:#010x}",
                p.itt
            )));
        };
        if text.data.len() + p.data.len() > MAX_TEXT_RESPONSE {
            return Err(violation(format!(
                "Text Response over {MAX_TEXT_RESPONSE} bytes"
            )));
        }
        text.data.extend_from_slice(&p.data);
        if p.final_ {
            let data = std::mem::take(&mut text.data);
            self.text = None;
            self.events.push_back(Event::Text { itt: p.itt, data });
        } else {
            // More to come: an empty Text Request with the target's TTT asks for it.
            self.outbox.push_back(Outgoing::Text {
                itt: p.itt,
                ttt: p.ttt,
                data: Vec::new(),
            });
        }
        Ok(())
    }
}

/// The data-in of a finished command, checked against the residual the target reports.
fn finished_data(
    task: Task,
    residual: Residual,
    status: ScsiStatus,
) -> Result<Vec<u8>, ProtocolError> {
    let TaskData::Read {
        mut buf, received, ..
    } = task.data
    else {
        return Ok(Vec::new());
    };
    let transferred = match residual {
        Residual::Underflow(n) => task.expected_len.saturating_sub(n),
        Residual::None | Residual::Overflow(_) => task.expected_len,
    };
    if status.is_success() && received != transferred {
        return Err(violation(format!(
            "{} finished with {received} bytes of data-in, but the target reports {transferred}",
            task.cdb.name()
        )));
    }
    buf.truncate(transferred.min(received) as usize);
    Ok(buf)
}

/// RFC 7143's words for a Reject reason.
pub fn reject_reason_text(reason: RejectReason) -> &'static str {
    match reason {
        RejectReason::DataDigestError => "data digest error",
        RejectReason::Reserved => "reserved reason",
        RejectReason::SnackReject => "SNACK reject",
        RejectReason::ProtocolError => "protocol error",
        RejectReason::CommandNotSupported => "command not supported",
        RejectReason::ImmediateCommandReject => {
            "immediate command reject: too many immediate commands"
        }
        RejectReason::TaskInProgress => "task in progress",
        RejectReason::InvalidDataAck => "invalid data ack",
        RejectReason::InvalidPduField => "invalid PDU field",
        RejectReason::LongOperationReject => "long operation reject: out of resources",
        RejectReason::NegotiationReset => "negotiation reset",
        RejectReason::WaitingForLogout => "waiting for logout",
        RejectReason::Other(_) => "unknown reason",
    }
}

// ---------------------------------------------------------------------------------------
// SCSI: status, sense data, CDBs and the parameter data the conductor reads.
// ---------------------------------------------------------------------------------------

/// A SCSI status byte (SAM-5 5.3) with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiStatus(pub u8);

impl ScsiStatus {
    /// GOOD.
    pub const GOOD: Self = Self(0x00);
    /// CHECK CONDITION: sense data says why.
    pub const CHECK_CONDITION: Self = Self(0x02);
    /// CONDITION MET (PRE-FETCH).
    pub const CONDITION_MET: Self = Self(0x04);
    /// BUSY.
    pub const BUSY: Self = Self(0x08);
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: Self = Self(0x18);
    /// TASK SET FULL.
    pub const TASK_SET_FULL: Self = Self(0x28);
    /// ACA ACTIVE.
    pub const ACA_ACTIVE: Self = Self(0x30);
    /// TASK ABORTED.
    pub const TASK_ABORTED: Self = Self(0x40);

    /// The SAM name, or `None` for a reserved value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "GOOD",
            0x02 => "CHECK CONDITION",
            0x04 => "CONDITION MET",
            0x08 => "BUSY",
            0x18 => "RESERVATION CONFLICT",
            0x28 => "TASK SET FULL",
            0x30 => "ACA ACTIVE",
            0x40 => "TASK ABORTED",
            _ => return None,
        })
    }

    /// GOOD or CONDITION MET: the command did what it was asked.
    pub fn is_success(self) -> bool {
        self == Self::GOOD || self == Self::CONDITION_MET
    }
}

impl std::fmt::Display for ScsiStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {:#04x}", self.0),
        }
    }
}

/// Sense data decoded from fixed (70h/71h) or descriptor (72h/73h) format (SPC-5 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenseInfo {
    /// SENSE KEY (4 bits).
    pub key: u8,
    /// ADDITIONAL SENSE CODE.
    pub asc: u8,
    /// ADDITIONAL SENSE CODE QUALIFIER.
    pub ascq: u8,
    /// The INFORMATION field when valid (for block commands: the first failing LBA).
    pub information: Option<u64>,
    /// Deferred error (response code 71h/73h): about an earlier command.
    pub deferred: bool,
}

/// Sense key ILLEGAL REQUEST.
pub const SENSE_ILLEGAL_REQUEST: u8 = 0x05;
/// Sense key UNIT ATTENTION.
pub const SENSE_UNIT_ATTENTION: u8 = 0x06;
/// Sense key NOT READY.
pub const SENSE_NOT_READY: u8 = 0x02;

impl SenseInfo {
    /// Decodes sense data (without the iSCSI 2-byte SenseLength prefix); `None` when it is
    /// too short or of an unknown response code.
    pub fn parse(sense: &[u8]) -> Option<Self> {
        let code = *sense.first()? & 0x7f;
        match code {
            0x70 | 0x71 => Self::parse_fixed(sense, code == 0x71),
            0x72 | 0x73 => Self::parse_descriptor(sense, code == 0x73),
            _ => None,
        }
    }

    fn parse_fixed(sense: &[u8], deferred: bool) -> Option<Self> {
        let key = *sense.get(2)? & 0x0f;
        // A target may send a short fixed-format sense: ASC/ASCQ then read as zero.
        let asc = sense.get(12).copied().unwrap_or(0);
        let ascq = sense.get(13).copied().unwrap_or(0);
        let valid = sense[0] & 0x80 != 0;
        let information = match sense.get(3..7) {
            Some(b) if valid => Some(u64::from(be32(b))),
            _ => None,
        };
        Some(Self {
            key,
            asc,
            ascq,
            information,
            deferred,
        })
    }

    fn parse_descriptor(sense: &[u8], deferred: bool) -> Option<Self> {
        let key = *sense.get(1)? & 0x0f;
        let asc = sense.get(2).copied().unwrap_or(0);
        let ascq = sense.get(3).copied().unwrap_or(0);
        let total = usize::from(sense.get(7).copied().unwrap_or(0));
        let descriptors = sense.get(8..).unwrap_or(&[]);
        let descriptors = &descriptors[..total.min(descriptors.len())];
        Some(Self {
            key,
            asc,
            ascq,
            information: information_descriptor(descriptors),
            deferred,
        })
    }

    /// The SPC name of the sense key.
    pub fn key_name(&self) -> &'static str {
        sense_key_name(self.key)
    }

    /// The SPC name of ASC/ASCQ for the common codes, `None` for the others.
    pub fn asc_name(&self) -> Option<&'static str> {
        asc_name(self.asc, self.ascq)
    }

    /// UNIT ATTENTION: the target reports an event (reset, capacity change...), the
    /// command was not executed and may be retried.
    pub fn is_unit_attention(&self) -> bool {
        self.key == SENSE_UNIT_ATTENTION
    }
}

/// The INFORMATION sense data descriptor (type 00h, SPC-5 4.4.2.2) if present and valid.
fn information_descriptor(mut descriptors: &[u8]) -> Option<u64> {
    while descriptors.len() >= 2 {
        let kind = descriptors[0];
        let len = usize::from(descriptors[1]) + 2;
        let body = descriptors.get(..len)?;
        if kind == 0x00 && len >= 12 && body[2] & 0x80 != 0 {
            return Some(be64(&body[4..12]));
        }
        descriptors = &descriptors[len..];
    }
    None
}

impl std::fmt::Display for SenseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key_name())?;
        match self.asc_name() {
            Some(name) => write!(f, ": {name}")?,
            None => write!(
                f,
                ": additional sense code {:02X}h/{:02X}h",
                self.asc, self.ascq
            )?,
        }
        if self.deferred {
            f.write_str(" (deferred error)")?;
        }
        Ok(())
    }
}

/// The SPC-5 name of a sense key (table 48).
pub fn sense_key_name(key: u8) -> &'static str {
    match key & 0x0f {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0x8 => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xa => "COPY ABORTED",
        0xb => "ABORTED COMMAND",
        0xd => "VOLUME OVERFLOW",
        0xe => "MISCOMPARE",
        0xf => "COMPLETED",
        _ => "RESERVED SENSE KEY",
    }
}

/// The SPC-5 names (annex D) of the ASC/ASCQ pairs a disk target commonly reports.
pub fn asc_name(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x00, 0x00) => "NO ADDITIONAL SENSE INFORMATION",
        (0x00, 0x06) => "I/O PROCESS TERMINATED",
        (0x02, 0x00) => "NO SEEK COMPLETE",
        (0x03, 0x00) => "PERIPHERAL DEVICE WRITE FAULT",
        (0x04, 0x00) => "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
        (0x04, 0x01) => "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
        (0x04, 0x02) => "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
        (0x04, 0x03) => "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
        (0x04, 0x04) => "LOGICAL UNIT NOT READY, FORMAT IN PROGRESS",
        (0x04, 0x1b) => "LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS",
        (0x08, 0x00) => "LOGICAL UNIT COMMUNICATION FAILURE",
        (0x0c, 0x00) => "WRITE ERROR",
        (0x0c, 0x02) => "WRITE ERROR - AUTO REALLOCATION FAILED",
        (0x10, 0x01) => "LOGICAL BLOCK GUARD CHECK FAILED",
        (0x11, 0x00) => "UNRECOVERED READ ERROR",
        (0x14, 0x01) => "RECORD NOT FOUND",
        (0x1a, 0x00) => "PARAMETER LIST LENGTH ERROR",
        (0x1d, 0x00) => "MISCOMPARE DURING VERIFY OPERATION",
        (0x20, 0x00) => "INVALID COMMAND OPERATION CODE",
        (0x21, 0x00) => "LOGICAL BLOCK ADDRESS OUT OF RANGE",
        (0x24, 0x00) => "INVALID FIELD IN CDB",
        (0x25, 0x00) => "LOGICAL UNIT NOT SUPPORTED",
        (0x26, 0x00) => "INVALID FIELD IN PARAMETER LIST",
        (0x26, 0x02) => "PARAMETER VALUE INVALID",
        (0x27, 0x00) => "WRITE PROTECTED",
        (0x27, 0x01) => "HARDWARE WRITE PROTECTED",
        (0x27, 0x02) => "LOGICAL UNIT SOFTWARE WRITE PROTECTED",
        (0x27, 0x07) => "SPACE ALLOCATION FAILED WRITE PROTECT",
        (0x28, 0x00) => "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED",
        (0x29, 0x00) => "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
        (0x29, 0x01) => "POWER ON OCCURRED",
        (0x29, 0x02) => "SCSI BUS RESET OCCURRED",
        (0x29, 0x03) => "BUS DEVICE RESET FUNCTION OCCURRED",
        (0x29, 0x04) => "DEVICE INTERNAL RESET",
        (0x29, 0x07) => "I_T NEXUS LOSS OCCURRED",
        (0x2a, 0x01) => "MODE PARAMETERS CHANGED",
        (0x2a, 0x09) => "CAPACITY DATA HAS CHANGED",
        (0x2c, 0x00) => "COMMAND SEQUENCE ERROR",
        (0x2f, 0x00) => "COMMANDS CLEARED BY ANOTHER INITIATOR",
        (0x31, 0x00) => "MEDIUM FORMAT CORRUPTED",
        (0x38, 0x07) => "THIN PROVISIONING SOFT THRESHOLD REACHED",
        (0x3a, 0x00) => "MEDIUM NOT PRESENT",
        (0x3e, 0x02) => "TIMEOUT ON LOGICAL UNIT",
        (0x3f, 0x03) => "INQUIRY DATA HAS CHANGED",
        (0x3f, 0x0e) => "REPORTED LUNS DATA HAS CHANGED",
        (0x44, 0x00) => "INTERNAL TARGET FAILURE",
        (0x47, 0x00) => "SCSI PARITY ERROR",
        (0x4b, 0x00) => "DATA PHASE ERROR",
        (0x4e, 0x00) => "OVERLAPPED COMMANDS ATTEMPTED",
        (0x55, 0x00) => "SYSTEM RESOURCE FAILURE",
        (0x55, 0x03) => "INSUFFICIENT RESOURCES",
        (0x5d, 0x00) => "FAILURE PREDICTION THRESHOLD EXCEEDED",
        _ => return None,
    })
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&b[..8]);
    u64::from_be_bytes(bytes)
}

/// A CDB of at most 16 bytes (the iSCSI BHS carries 16; longer ones need an AHS, which the
/// conductor never sends).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; 16],
    len: u8,
}

impl std::fmt::Debug for Cdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cdb({})", command_name(self.opcode(), self.bytes[1]))?;
        for b in self.as_bytes() {
            write!(f, " {b:02x}")?;
        }
        Ok(())
    }
}

impl Cdb {
    /// A CDB from raw bytes; `None` when empty or longer than 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let mut cdb = [0u8; 16];
        cdb[..bytes.len()].copy_from_slice(bytes);
        Some(Self {
            bytes: cdb,
            len: bytes.len() as u8,
        })
    }

    fn fixed<const N: usize>(bytes: [u8; N]) -> Self {
        let mut cdb = [0u8; 16];
        cdb[..N].copy_from_slice(&bytes);
        Self {
            bytes: cdb,
            len: N as u8,
        }
    }

    /// The CDB bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The 16 bytes the SCSI Command BHS carries (zero-padded).
    pub fn padded(&self) -> [u8; 16] {
        self.bytes
    }

    /// OPERATION CODE.
    pub fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    /// The command's name, for errors ("WRITE(16)").
    pub fn name(&self) -> &'static str {
        command_name(self.opcode(), self.bytes[1])
    }

    /// The LBA field for the block commands that have one (READ/WRITE/SYNCHRONIZE CACHE/
    /// WRITE SAME (10/16)), for error messages.
    pub fn lba(&self) -> Option<u64> {
        match self.opcode() {
            0x28 | 0x2a | 0x35 | 0x41 | 0x2f => Some(u64::from(be32(&self.bytes[2..6]))),
            0x88 | 0x8a | 0x91 | 0x93 | 0x8f => Some(be64(&self.bytes[2..10])),
            _ => None,
        }
    }

    /// TEST UNIT READY.
    pub fn test_unit_ready() -> Self {
        Self::fixed([0u8; 6])
    }

    /// READ(16) of `blocks` blocks at `lba`.
    pub fn read16(lba: u64, blocks: u32) -> Self {
        Self::lba_and_count16(0x88, 0, lba, blocks)
    }

    /// WRITE(16) of `blocks` blocks at `lba`.
    pub fn write16(lba: u64, blocks: u32) -> Self {
        Self::lba_and_count16(0x8a, 0, lba, blocks)
    }

    /// SYNCHRONIZE CACHE(16) of the whole medium (LBA 0, 0 blocks = to the end).
    pub fn synchronize_cache16() -> Self {
        Self::lba_and_count16(0x91, 0, 0, 0)
    }

    /// WRITE SAME(16) with the UNMAP bit: `blocks` blocks at `lba` unmapped (the data-out is
    /// one block of zeros).
    pub fn write_same16_unmap(lba: u64, blocks: u32) -> Self {
        Self::lba_and_count16(0x93, 0x08, lba, blocks)
    }

    fn lba_and_count16(opcode: u8, flags: u8, lba: u64, blocks: u32) -> Self {
        let mut c = [0u8; 16];
        c[0] = opcode;
        c[1] = flags;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        Self::fixed(c)
    }

    /// READ CAPACITY(16) (SERVICE ACTION IN(16), service action 10h) for 32 bytes.
    pub fn read_capacity16() -> Self {
        let mut c = [0u8; 16];
        c[0] = 0x9e;
        c[1] = 0x10;
        c[10..14].copy_from_slice(&READ_CAPACITY16_LEN.to_be_bytes());
        Self::fixed(c)
    }

    /// INQUIRY: the standard data (`page` = None) or a VPD page, `allocation` bytes.
    pub fn inquiry(page: Option<u8>, allocation: u16) -> Self {
        let mut c = [0u8; 6];
        c[0] = 0x12;
        if let Some(page) = page {
            c[1] = 0x01;
            c[2] = page;
        }
        c[3..5].copy_from_slice(&allocation.to_be_bytes());
        Self::fixed(c)
    }

    /// UNMAP with a parameter list of `param_len` bytes (see [`unmap_parameter_list`]).
    pub fn unmap(param_len: u16) -> Self {
        let mut c = [0u8; 10];
        c[0] = 0x42;
        c[7..9].copy_from_slice(&param_len.to_be_bytes());
        Self::fixed(c)
    }
}

/// Bytes READ CAPACITY(16) asks for.
pub const READ_CAPACITY16_LEN: u32 = 32;

/// The command's name for errors, from its operation code (and service action for 9Eh).
pub fn command_name(opcode: u8, byte1: u8) -> &'static str {
    match opcode {
        0x00 => "TEST UNIT READY",
        0x03 => "REQUEST SENSE",
        0x12 => "INQUIRY",
        0x25 => "READ CAPACITY(10)",
        0x28 => "READ(10)",
        0x2a => "WRITE(10)",
        0x35 => "SYNCHRONIZE CACHE(10)",
        0x41 => "WRITE SAME(10)",
        0x42 => "UNMAP",
        0xa0 => "REPORT LUNS",
        0x88 => "READ(16)",
        0x8a => "WRITE(16)",
        0x91 => "SYNCHRONIZE CACHE(16)",
        0x93 => "WRITE SAME(16)",
        0x9e if byte1 & 0x1f == 0x10 => "READ CAPACITY(16)",
        0x9e => "SERVICE ACTION IN(16)",
        _ => "SCSI command",
    }
}

/// Block descriptors one UNMAP parameter list can hold (its length field is 16 bits).
pub const MAX_UNMAP_DESCRIPTORS: usize = (u16::MAX as usize - 8) / 16;

/// The UNMAP parameter list (SBC-4 5.32.2) with one block descriptor per `(lba, blocks)`;
/// `None` for more than [`MAX_UNMAP_DESCRIPTORS`] ranges.
pub fn unmap_parameter_list(ranges: &[(u64, u32)]) -> Option<Vec<u8>> {
    if ranges.len() > MAX_UNMAP_DESCRIPTORS {
        return None;
    }
    let descriptors = u16::try_from(ranges.len() * 16).ok()?;
    let mut list = Vec::with_capacity(8 + usize::from(descriptors));
    list.extend_from_slice(&(descriptors + 6).to_be_bytes());
    list.extend_from_slice(&descriptors.to_be_bytes());
    list.extend_from_slice(&[0; 4]);
    for &(lba, blocks) in ranges {
        list.extend_from_slice(&lba.to_be_bytes());
        list.extend_from_slice(&blocks.to_be_bytes());
        list.extend_from_slice(&[0; 4]);
    }
    Some(list)
}

/// Why parameter data from the target could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParameterDataError {
    /// Fewer bytes than the fields we need.
    #[error("{what}: {got} bytes, at least {need} needed")]
    Short {
        /// Which data.
        what: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A value that makes no sense (block size 0...).
    #[error("{what}: {detail}")]
    Invalid {
        /// Which data.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// READ CAPACITY(16) parameter data (SBC-4 5.20.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// LOGICAL BLOCK LENGTH IN BYTES.
    pub block_size: u32,
    /// RETURNED LOGICAL BLOCK ADDRESS + 1.
    pub blocks: u64,
    /// LBPME: logical block provisioning management enabled (thin; UNMAP works).
    pub thin: bool,
    /// LBPRZ: unmapped blocks read as zeros.
    pub reads_zeros: bool,
}

impl Capacity {
    /// Decodes the 32 bytes of READ CAPACITY(16) data (at least the first 15 are needed).
    pub fn parse(data: &[u8]) -> Result<Self, ParameterDataError> {
        let what = "READ CAPACITY(16) data";
        if data.len() < 15 {
            return Err(ParameterDataError::Short {
                what,
                got: data.len(),
                need: 15,
            });
        }
        let last_lba = be64(&data[0..8]);
        let block_size = be32(&data[8..12]);
        if block_size == 0 || !block_size.is_power_of_two() {
            return Err(ParameterDataError::Invalid {
                what,
                detail: format!("block size {block_size} is not a power of two"),
            });
        }
        let blocks = last_lba.checked_add(1).ok_or(ParameterDataError::Invalid {
            what,
            detail: "last LBA is 2^64-1".into(),
        })?;
        Ok(Self {
            block_size,
            blocks,
            thin: data[14] & 0x80 != 0,
            reads_zeros: data[14] & 0x40 != 0,
        })
    }

    /// The size in bytes (saturating: a 2^64-byte disk is not a thing).
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// The Block Limits VPD page (B0h, SBC-4 6.6.4); 0 in a field = no limit reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockLimits {
    /// MAXIMUM TRANSFER LENGTH in blocks (0 = not reported).
    pub max_transfer_blocks: u32,
    /// OPTIMAL TRANSFER LENGTH in blocks.
    pub optimal_transfer_blocks: u32,
    /// OPTIMAL TRANSFER LENGTH GRANULARITY in blocks.
    pub optimal_granularity_blocks: u16,
    /// MAXIMUM UNMAP LBA COUNT (0 = UNMAP not supported).
    pub max_unmap_blocks: u32,
    /// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
    pub max_unmap_descriptors: u32,
    /// OPTIMAL UNMAP GRANULARITY in blocks.
    pub unmap_granularity_blocks: u32,
    /// MAXIMUM WRITE SAME LENGTH in blocks.
    pub max_write_same_blocks: u64,
}

/// Page code of the Block Limits VPD page.
pub const VPD_BLOCK_LIMITS: u8 = 0xb0;
/// Page code of the Logical Block Provisioning VPD page.
pub const VPD_LOGICAL_BLOCK_PROVISIONING: u8 = 0xb2;
/// Page code of the Supported VPD Pages page.
pub const VPD_SUPPORTED_PAGES: u8 = 0x00;

impl BlockLimits {
    /// Decodes the page (header included). Older targets send a 16-byte page (SBC-2:
    /// transfer lengths only); the unmap fields then read as 0.
    pub fn parse(page: &[u8]) -> Result<Self, ParameterDataError> {
        let body = vpd_body(page, VPD_BLOCK_LIMITS, "Block Limits VPD page")?;
        // Offsets below are the SBC's, counted from the page's first byte (header included).
        let field = |at: usize, len: usize| body.get(at - 4..at - 4 + len);
        let field32 = |at: usize| field(at, 4).map(be32).unwrap_or(0);
        Ok(Self {
            optimal_granularity_blocks: field(6, 2).map(be16).unwrap_or(0),
            max_transfer_blocks: field32(8),
            optimal_transfer_blocks: field32(12),
            max_unmap_blocks: field32(20),
            max_unmap_descriptors: field32(24),
            unmap_granularity_blocks: field32(28),
            max_write_same_blocks: field(36, 8).map(be64).unwrap_or(0),
        })
    }
}

/// The Logical Block Provisioning VPD page (B2h, SBC-4 6.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// LBPU: UNMAP supported.
    pub unmap: bool,
    /// LBPWS: WRITE SAME(16) with UNMAP supported.
    pub write_same16_unmap: bool,
    /// LBPWS10: WRITE SAME(10) with UNMAP supported.
    pub write_same10_unmap: bool,
    /// LBPRZ (3 bits in SBC-4; nonzero = unmapped blocks read as zeros).
    pub reads_zeros: bool,
}

impl Provisioning {
    /// Decodes the page (header included).
    pub fn parse(page: &[u8]) -> Result<Self, ParameterDataError> {
        let what = "Logical Block Provisioning VPD page";
        vpd_body(page, VPD_LOGICAL_BLOCK_PROVISIONING, what)?;
        let flags = *page.get(5).ok_or(ParameterDataError::Short {
            what,
            got: page.len(),
            need: 6,
        })?;
        Ok(Self {
            unmap: flags & 0x80 != 0,
            write_same16_unmap: flags & 0x40 != 0,
            write_same10_unmap: flags & 0x20 != 0,
            reads_zeros: flags & 0x1c != 0,
        })
    }
}

/// The page codes listed by the Supported VPD Pages page.
pub fn parse_supported_vpd_pages(page: &[u8]) -> Result<Vec<u8>, ParameterDataError> {
    vpd_body(page, VPD_SUPPORTED_PAGES, "Supported VPD Pages page").map(<[u8]>::to_vec)
}

/// Checks a VPD page's header (page code, length) and returns the page's body, cut to
/// the PAGE LENGTH or to what was received.
fn vpd_body<'a>(
    page: &'a [u8],
    code: u8,
    what: &'static str,
) -> Result<&'a [u8], ParameterDataError> {
    if page.len() < 4 {
        return Err(ParameterDataError::Short {
            what,
            got: page.len(),
            need: 4,
        });
    }
    if page[1] != code {
        return Err(ParameterDataError::Invalid {
            what,
            detail: format!("page code {:02X}h, expected {code:02X}h", page[1]),
        });
    }
    let len = usize::from(be16(&page[2..4]));
    let body = &page[4..];
    Ok(&body[..len.min(body.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{lun_from_number, BHS_LEN};

    const LUN1: u64 = 0x0001_0000_0000_0000;

    fn params() -> SessionParams {
        SessionParams {
            target_max_recv_data_segment_length: 8192,
            first_burst_length: 65536,
            max_burst_length: 262_144,
            immediate_data: true,
            initial_r2t: true,
            ..Default::default()
        }
    }

    fn start() -> SequenceStart {
        SequenceStart {
            cmd_sn: 10,
            exp_stat_sn: 100,
            exp_cmd_sn: 10,
            max_cmd_sn: 41,
        }
    }

    fn machine(params: SessionParams) -> Initiator {
        Initiator::new(params, start(), LUN1)
    }

    fn drain(m: &mut Initiator) -> Vec<Transmit> {
        std::iter::from_fn(|| m.poll_transmit()).collect()
    }

    fn events(m: &mut Initiator) -> Vec<Event> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    fn pattern(len: usize) -> Arc<Vec<u8>> {
        Arc::new((0..len).map(|i| (i * 7 + i / 251) as u8).collect())
    }

    fn command(t: &Transmit) -> &ScsiCommand {
        match t {
            Transmit::Pdu(Pdu::ScsiCommand(c)) => c,
            other => panic!("not a SCSI Command: {other:?}"),
        }
    }

    /// (TTT, DataSN, offset, length, F) of a Data-Out, and checks its data is the buffer's.
    fn data_out(t: &Transmit, expected: &[u8]) -> (u32, u32, u32, usize, bool) {
        let Transmit::DataOut {
            header,
            buffer,
            range,
        } = t
        else {
            panic!("not a Data-Out: {t:?}");
        };
        assert_eq!(header.buffer_offset as usize, range.start);
        assert_eq!(&buffer[range.clone()], &expected[range.clone()]);
        assert_eq!(header.lun, LUN1);
        (
            header.ttt,
            header.data_sn,
            header.buffer_offset,
            range.len(),
            header.final_,
        )
    }

    fn good_response(itt: Itt, stat_sn: u32, max_cmd_sn: u32) -> Pdu {
        Pdu::ScsiResponse(ScsiResponse {
            itt,
            stat_sn,
            exp_cmd_sn: 11,
            max_cmd_sn,
            ..Default::default()
        })
    }

    fn r2t(itt: Itt, ttt: u32, r2t_sn: u32, offset: u32, len: u32) -> Pdu {
        Pdu::R2t(R2t {
            lun: LUN1,
            itt,
            ttt,
            stat_sn: 100,
            exp_cmd_sn: 11,
            max_cmd_sn: 41,
            r2t_sn,
            buffer_offset: offset,
            desired_data_transfer_length: len,
        })
    }

    fn completed(events: &[Event]) -> Vec<(Itt, Result<Completion, CommandFailure>)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Completed { itt, result } => Some((*itt, result.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn write_sends_immediate_data_then_answers_the_r2t_in_segments() {
        let mut m = machine(params());
        let data = pattern(20_000);
        let itt = m
            .submit(Cdb::write16(0x1234, 40), DataTransfer::Write(data.clone()))
            .unwrap();
        let sent = drain(&mut m);
        assert_eq!(sent.len(), 1);
        let cmd = command(&sent[0]);
        assert_eq!(
            (
                cmd.final_,
                cmd.write,
                cmd.read,
                cmd.itt,
                cmd.cmd_sn,
                cmd.exp_stat_sn
            ),
            (true, true, false, itt, 10, 100)
        );
        assert_eq!(cmd.expected_data_transfer_length, 20_000);
        assert_eq!(cmd.lun, LUN1);
        assert_eq!(cmd.data, data[..8192].to_vec());
        assert_eq!(&cmd.cdb[..], Cdb::write16(0x1234, 40).as_bytes());

        m.receive(r2t(itt, 0x77, 0, 8192, 11_808)).unwrap();
        let sent = drain(&mut m);
        let runs: Vec<_> = sent.iter().map(|t| data_out(t, &data)).collect();
        assert_eq!(
            runs,
            vec![(0x77, 0, 8192, 8192, false), (0x77, 1, 16_384, 3616, true)]
        );

        m.receive(good_response(itt, 100, 41)).unwrap();
        let done = completed(&events(&mut m));
        assert_eq!(done.len(), 1);
        let completion = done[0].1.clone().unwrap();
        assert_eq!(completion.status, ScsiStatus::GOOD);
        assert_eq!(completion.cdb.name(), "WRITE(16)");
        assert_eq!(m.in_flight(), 0);
        assert_eq!(m.exp_stat_sn(), 101);
    }

    #[test]
    fn unsolicited_data_out_fills_the_first_burst_and_each_r2t_restarts_data_sn() {
        let p = SessionParams {
            target_max_recv_data_segment_length: 4096,
            first_burst_length: 16_384,
            initial_r2t: false,
            ..params()
        };
        let mut m = machine(p);
        let data = pattern(40_000);
        let itt = m
            .submit(Cdb::write16(0, 80), DataTransfer::Write(data.clone()))
            .unwrap();
        let sent = drain(&mut m);
        assert_eq!(sent.len(), 4);
        let cmd = command(&sent[0]);
        assert!(!cmd.final_, "unsolicited Data-Out follows: F must be 0");
        assert_eq!(cmd.data.len(), 4096);
        let runs: Vec<_> = sent[1..].iter().map(|t| data_out(t, &data)).collect();
        assert_eq!(
            runs,
            vec![
                (RESERVED_TAG, 0, 4096, 4096, false),
                (RESERVED_TAG, 1, 8192, 4096, false),
                (RESERVED_TAG, 2, 12_288, 4096, true),
            ]
        );
        // Two R2Ts outstanding at once (MaxOutstandingR2T > 1): each its own DataSN run.
        m.receive(r2t(itt, 5, 0, 16_384, 10_000)).unwrap();
        m.receive(r2t(itt, 6, 1, 26_384, 13_616)).unwrap();
        let runs: Vec<_> = drain(&mut m).iter().map(|t| data_out(t, &data)).collect();
        assert_eq!(
            runs,
            vec![
                (5, 0, 16_384, 4096, false),
                (5, 1, 20_480, 4096, false),
                (5, 2, 24_576, 1808, true),
                (6, 0, 26_384, 4096, false),
                (6, 1, 30_480, 4096, false),
                (6, 2, 34_576, 4096, false),
                (6, 3, 38_672, 1328, true),
            ]
        );
    }

    #[test]
    fn without_immediate_data_the_command_carries_none_and_everything_waits_for_r2t() {
        let p = SessionParams {
            immediate_data: false,
            ..params()
        };
        let mut m = machine(p);
        let data = pattern(1000);
        let itt = m
            .submit(Cdb::write16(0, 2), DataTransfer::Write(data.clone()))
            .unwrap();
        let sent = drain(&mut m);
        let cmd = command(&sent[0]);
        assert!(cmd.final_ && cmd.data.is_empty());
        m.receive(r2t(itt, 9, 0, 0, 1000)).unwrap();
        let runs: Vec<_> = drain(&mut m).iter().map(|t| data_out(t, &data)).collect();
        assert_eq!(runs, vec![(9, 0, 0, 1000, true)]);
    }

    #[test]
    fn r2t_outside_the_data_or_out_of_sequence_is_a_protocol_error() {
        let mut m = machine(params());
        let itt = m
            .submit(Cdb::write16(0, 40), DataTransfer::Write(pattern(20_000)))
            .unwrap();
        drain(&mut m);
        let err = m.receive(r2t(itt, 1, 0, 16_384, 4000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol error by the target: R2T of WRITE(16) asks for 4000 bytes at offset 16384 of 20000"
        );
        // After a protocol error the machine stays failed.
        assert_eq!(m.receive(good_response(itt, 100, 41)).unwrap_err(), err);
        assert!(m.poll_transmit().is_none());

        let mut m = machine(params());
        let itt = m
            .submit(Cdb::write16(0, 40), DataTransfer::Write(pattern(20_000)))
            .unwrap();
        drain(&mut m);
        let err = m.receive(r2t(itt, 1, 1, 8192, 4000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol error by the target: R2T of WRITE(16) has R2TSN 1, expected 0"
        );

        let mut m = machine(params());
        let itt = m
            .submit(Cdb::read16(0, 1), DataTransfer::Read(512))
            .unwrap();
        drain(&mut m);
        let err = m.receive(r2t(itt, 1, 0, 0, 512)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "protocol error by the target: R2T for READ(16), which writes no data"
        );
    }

    #[test]
    fn commands_wait_while_the_window_is_closed() {
        let s = SequenceStart {
            cmd_sn: 10,
            exp_stat_sn: 100,
            exp_cmd_sn: 10,
            max_cmd_sn: 11,
        };
        let mut m = Initiator::new(params(), s, LUN1);
        let a = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let b = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let c = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let sent: Vec<_> = drain(&mut m)
            .iter()
            .map(|t| (command(t).itt, command(t).cmd_sn))
            .collect();
        assert_eq!(sent, vec![(a, 10), (b, 11)]);
        assert!(!m.window_open());
        // A response that does not move MaxCmdSN keeps it closed.
        m.receive(good_response(a, 100, 11)).unwrap();
        assert!(m.poll_transmit().is_none());
        // An out-of-range pair (MaxCmdSN < ExpCmdSN - 1) is ignored.
        m.receive(Pdu::NopIn(NopIn {
            itt: RESERVED_TAG,
            ttt: RESERVED_TAG,
            exp_cmd_sn: 20,
            max_cmd_sn: 15,
            ..Default::default()
        }))
        .unwrap();
        assert!(m.poll_transmit().is_none());
        // A target NOP-In opening the window releases the third command.
        m.receive(Pdu::NopIn(NopIn {
            itt: RESERVED_TAG,
            ttt: RESERVED_TAG,
            stat_sn: 101,
            exp_cmd_sn: 11,
            max_cmd_sn: 12,
            ..Default::default()
        }))
        .unwrap();
        let sent = drain(&mut m);
        assert_eq!((command(&sent[0]).itt, command(&sent[0]).cmd_sn), (c, 12));
        // The unsolicited NOP-In's StatSN did not count: ExpStatSN is 101 after StatSN 100.
        assert_eq!(command(&sent[0]).exp_stat_sn, 101);
    }

    fn data_in(itt: Itt, data_sn: u32, offset: u32, data: &[u8]) -> DataIn {
        DataIn {
            lun: LUN1,
            itt,
            ttt: RESERVED_TAG,
            exp_cmd_sn: 11,
            max_cmd_sn: 41,
            data_sn,
            buffer_offset: offset,
            data: data.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn data_in_is_reassembled_and_the_s_bit_carries_status_and_residual() {
        let mut m = machine(params());
        let itt = m
            .submit(Cdb::inquiry(Some(0xb0), 1000), DataTransfer::Read(1000))
            .unwrap();
        let sent = drain(&mut m);
        let cmd = command(&sent[0]);
        assert!(cmd.read && !cmd.write && cmd.final_);
        assert_eq!(cmd.expected_data_transfer_length, 1000);
        let bytes = pattern(700);
        m.receive(Pdu::DataIn(data_in(itt, 0, 0, &bytes[..400])))
            .unwrap();
        assert!(m.poll_event().is_none());
        m.receive(Pdu::DataIn(DataIn {
            final_: true,
            status: Some(0),
            residual: Residual::Underflow(300),
            stat_sn: 100,
            ..data_in(itt, 1, 400, &bytes[400..])
        }))
        .unwrap();
        let done = completed(&events(&mut m));
        let completion = done[0].1.clone().unwrap();
        assert_eq!(completion.data, bytes.to_vec());
        assert_eq!(completion.residual, Residual::Underflow(300));
        assert_eq!(m.exp_stat_sn(), 101);
    }

    #[test]
    fn data_in_then_scsi_response() {
        let mut m = machine(params());
        let itt = m
            .submit(Cdb::read16(8, 1), DataTransfer::Read(512))
            .unwrap();
        drain(&mut m);
        let bytes = pattern(512);
        m.receive(Pdu::DataIn(DataIn {
            final_: true,
            ..data_in(itt, 0, 0, &bytes)
        }))
        .unwrap();
        m.receive(good_response(itt, 100, 41)).unwrap();
        let done = completed(&events(&mut m));
        assert_eq!(done[0].1.clone().unwrap().data, bytes.to_vec());
    }

    #[test]
    fn data_in_checks_data_sn_offset_and_bounds() {
        let cases: [(u32, u32, usize, &str); 3] = [
            (1, 0, 100, "Data-In of READ(16) has DataSN 1, expected 0"),
            (0, 100, 100, "Data-In of READ(16) at offset 100, expected 0"),
            (
                0,
                0,
                600,
                "Data-In of READ(16) at offset 0 with 600 bytes runs past the 512 bytes expected",
            ),
        ];
        for (data_sn, offset, len, message) in cases {
            let mut m = machine(params());
            let itt = m
                .submit(Cdb::read16(0, 1), DataTransfer::Read(512))
                .unwrap();
            drain(&mut m);
            let err = m
                .receive(Pdu::DataIn(data_in(itt, data_sn, offset, &vec![0; len])))
                .unwrap_err();
            assert_eq!(err, ProtocolError(message.to_string()));
        }
        let mut m = machine(params());
        m.submit(Cdb::read16(0, 1), DataTransfer::Read(512))
            .unwrap();
        drain(&mut m);
        let err = m
            .receive(Pdu::DataIn(data_in(77, 0, 0, &[0; 4])))
            .unwrap_err();
        assert_eq!(err.0, "Data-In for unknown task 0x0000004d");
    }

    #[test]
    fn good_status_with_less_data_than_the_residual_says_is_a_protocol_error() {
        let mut m = machine(params());
        let itt = m
            .submit(Cdb::read16(0, 2), DataTransfer::Read(1024))
            .unwrap();
        drain(&mut m);
        m.receive(Pdu::DataIn(data_in(itt, 0, 0, &[1; 512])))
            .unwrap();
        let err = m.receive(good_response(itt, 100, 41)).unwrap_err();
        assert_eq!(
            err.0,
            "READ(16) finished with 512 bytes of data-in, but the target reports 1024"
        );
    }

    #[test]
    fn check_condition_carries_decoded_sense() {
        let mut m = machine(params());
        let itt = m
            .submit(Cdb::write16(1 << 20, 1), DataTransfer::Write(pattern(512)))
            .unwrap();
        drain(&mut m);
        let mut sense = vec![0u8; 18];
        sense[0] = 0xf0; // valid, fixed format, current
        sense[2] = 0x05;
        sense[3..7].copy_from_slice(&0x0010_0000u32.to_be_bytes());
        sense[7] = 10;
        sense[12] = 0x21;
        m.receive(Pdu::ScsiResponse(ScsiResponse {
            status: 0x02,
            sense: sense.clone(),
            ..match good_response(itt, 100, 41) {
                Pdu::ScsiResponse(r) => r,
                _ => unreachable!(),
            }
        }))
        .unwrap();
        let done = completed(&events(&mut m));
        let completion = done[0].1.clone().unwrap();
        assert_eq!(completion.status, ScsiStatus::CHECK_CONDITION);
        assert_eq!(completion.sense_data, sense);
        let info = completion.sense.unwrap();
        assert_eq!(
            info,
            SenseInfo {
                key: 5,
                asc: 0x21,
                ascq: 0,
                information: Some(0x10_0000),
                deferred: false
            }
        );
        assert_eq!(
            info.to_string(),
            "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE"
        );
    }

    #[test]
    fn target_failure_and_reject_fail_the_command() {
        let mut m = machine(params());
        let a = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let b = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let sent = drain(&mut m);
        m.receive(Pdu::ScsiResponse(ScsiResponse {
            response: ServiceResponse::TargetFailure,
            itt: a,
            stat_sn: 100,
            ..Default::default()
        }))
        .unwrap();
        let header = sent[1].frame(Digests::NONE);
        let FrameBuf::Owned(bytes) = header else {
            panic!("a command is one buffer")
        };
        m.receive(Pdu::Reject(Reject {
            reason: RejectReason::CommandNotSupported,
            stat_sn: 101,
            header: bytes[..BHS_LEN].to_vec(),
            ..Default::default()
        }))
        .unwrap();
        let done = completed(&events(&mut m));
        assert_eq!(
            done[0],
            (a, Err(CommandFailure::TargetFailure { response: 1 }))
        );
        assert_eq!(
            done[1],
            (
                b,
                Err(CommandFailure::Rejected {
                    reason: RejectReason::CommandNotSupported
                })
            )
        );
        assert_eq!(
            done[1].1.clone().unwrap_err().to_string(),
            "the target rejected the command PDU (command not supported)"
        );
        assert_eq!(m.exp_stat_sn(), 102);
    }

    #[test]
    fn a_target_nop_in_with_a_ttt_gets_a_nop_out_reply_in_the_rfc_layout() {
        let mut m = machine(params());
        m.receive(Pdu::NopIn(NopIn {
            lun: LUN1,
            itt: RESERVED_TAG,
            ttt: 0x1122_3344,
            stat_sn: 100,
            exp_cmd_sn: 10,
            max_cmd_sn: 41,
            data: Vec::new(),
        }))
        .unwrap();
        let sent = drain(&mut m);
        assert_eq!(sent.len(), 1);
        let FrameBuf::Owned(bytes) = sent[0].frame(Digests::NONE) else {
            panic!()
        };
        let mut expected = [0u8; BHS_LEN];
        expected[0] = 0x40; // immediate, NOP-Out
        expected[1] = 0x80; // F
        expected[8..16].copy_from_slice(&LUN1.to_be_bytes());
        expected[16..20].copy_from_slice(&[0xff; 4]);
        expected[20..24].copy_from_slice(&0x1122_3344u32.to_be_bytes());
        expected[24..28].copy_from_slice(&10u32.to_be_bytes()); // CmdSN, not advanced
        expected[28..32].copy_from_slice(&100u32.to_be_bytes());
        assert_eq!(bytes, expected.to_vec());
        assert_eq!(m.cmd_sn(), 10);
        // A NOP-In without a TTT wants nothing.
        m.receive(Pdu::NopIn(NopIn {
            itt: RESERVED_TAG,
            ttt: RESERVED_TAG,
            ..Default::default()
        }))
        .unwrap();
        assert!(m.poll_transmit().is_none());
    }

    #[test]
    fn ping_and_pong() {
        let mut m = machine(params());
        let itt = m.ping(b"abcd".to_vec()).unwrap();
        let sent = drain(&mut m);
        let Transmit::Pdu(Pdu::NopOut(nop)) = &sent[0] else {
            panic!()
        };
        assert_eq!(
            (nop.immediate, nop.itt, nop.ttt, nop.cmd_sn),
            (true, itt, RESERVED_TAG, 10)
        );
        m.receive(Pdu::NopIn(NopIn {
            itt,
            ttt: RESERVED_TAG,
            stat_sn: 100,
            data: b"abcd".to_vec(),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            events(&mut m),
            vec![Event::Pong {
                itt,
                data: b"abcd".to_vec()
            }]
        );
        assert_eq!(m.exp_stat_sn(), 101);
        let err = m
            .receive(Pdu::NopIn(NopIn {
                itt,
                ..Default::default()
            }))
            .unwrap_err();
        assert_eq!(err.0, format!("NOP-In for unknown ping {itt:#010x}"));
    }

    #[test]
    fn the_scsi_command_bhs_has_the_rfc_layout() {
        let mut m = machine(SessionParams {
            immediate_data: false,
            ..params()
        });
        let itt = m
            .submit(
                Cdb::write16(0x0102_0304_0506_0708, 8),
                DataTransfer::Write(pattern(4096)),
            )
            .unwrap();
        let sent = drain(&mut m);
        let FrameBuf::Owned(bytes) = sent[0].frame(Digests::NONE) else {
            panic!()
        };
        let mut expected = [0u8; BHS_LEN];
        expected[0] = 0x01;
        expected[1] = 0xa1; // F, W, ATTR = simple
        expected[8..16].copy_from_slice(&lun_from_number(1).to_be_bytes());
        expected[16..20].copy_from_slice(&itt.to_be_bytes());
        expected[20..24].copy_from_slice(&4096u32.to_be_bytes());
        expected[24..28].copy_from_slice(&10u32.to_be_bytes());
        expected[28..32].copy_from_slice(&100u32.to_be_bytes());
        expected[32..48].copy_from_slice(&[0x8a, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 8, 0, 0]);
        assert_eq!(bytes, expected.to_vec());
    }

    fn async_message(event: AsyncEvent, parameter3: u16) -> Pdu {
        Pdu::AsyncMessage(AsyncMessage {
            stat_sn: 100,
            exp_cmd_sn: 11,
            max_cmd_sn: 41,
            event,
            parameter3,
            ..Default::default()
        })
    }

    #[test]
    fn a_logout_request_finishes_the_commands_in_flight_then_logs_out() {
        let s = SequenceStart {
            max_cmd_sn: 10,
            ..start()
        };
        let mut m = Initiator::new(params(), s, LUN1);
        let sent_one = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        let waiting = m
            .submit(Cdb::test_unit_ready(), DataTransfer::None)
            .unwrap();
        assert_eq!(drain(&mut m).len(), 1);
        m.receive(async_message(AsyncEvent::LogoutRequested, 5))
            .unwrap();
        let ev = events(&mut m);
        assert_eq!(ev[0], Event::LogoutRequested { within_secs: 5 });
        assert_eq!(
            completed(&ev),
            vec![(waiting, Err(CommandFailure::LoggingOut))]
        );
        assert!(
            m.poll_transmit().is_none(),
            "no logout while a command is in flight"
        );
        assert_eq!(
            m.submit(Cdb::test_unit_ready(), DataTransfer::None),
            Err(SubmitError::NotRunning("logging out"))
        );
        m.receive(good_response(sent_one, 101, 41)).unwrap();
        let sent = drain(&mut m);
        let Transmit::Pdu(Pdu::LogoutRequest(logout)) = &sent[0] else {
            panic!("{sent:?}")
        };
        assert!(logout.immediate);
        assert_eq!(logout.reason, LogoutReason::CloseSession);
        assert_eq!((logout.cmd_sn, logout.exp_stat_sn), (11, 102));
        m.receive(Pdu::LogoutResponse(LogoutResponse {
            itt: logout.itt,
            stat_sn: 102,
            ..Default::default()
        }))
        .unwrap();
        let ev = events(&mut m);
        assert_eq!(
            ev.last(),
            Some(&Event::LoggedOut {
                response: LogoutResponseCode::ClosedSuccessfully
            })
        );
        assert!(m.is_logged_out());
        let err = m.receive(Pdu::NopIn(NopIn::default())).unwrap_err();
        assert_eq!(err.0, "NopIn PDU after the Logout Response");
    }

    #[test]
    fn text_responses_are_joined_across_continuations() {
        let mut m = machine(params());
        let itt = m.send_text(b"SendTargets=All\0".to_vec()).unwrap();
        let sent = drain(&mut m);
        let Transmit::Pdu(Pdu::TextRequest(req)) = &sent[0] else {
            panic!()
        };
        assert_eq!(
            (req.itt, req.ttt, req.final_, req.cmd_sn),
            (itt, RESERVED_TAG, true, 10)
        );
        m.receive(Pdu::TextResponse(TextResponse {
            continue_: true,
            itt,
            ttt: 0x55,
            stat_sn: 100,
            data: b"TargetName=iqn.x\0Target".to_vec(),
            ..Default::default()
        }))
        .unwrap();
        let sent = drain(&mut m);
        let Transmit::Pdu(Pdu::TextRequest(req)) = &sent[0] else {
            panic!()
        };
        assert_eq!(
            (req.itt, req.ttt, req.cmd_sn, req.exp_stat_sn),
            (itt, 0x55, 11, 101)
        );
        assert!(req.data.is_empty());
        m.receive(Pdu::TextResponse(TextResponse {
            final_: true,
            itt,
            ttt: RESERVED_TAG,
            stat_sn: 101,
            data: b"Address=10.0.0.1:3260,1\0".to_vec(),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(
            events(&mut m),
            vec![Event::Text {
                itt,
                data: b"TargetName=iqn.x\0TargetAddress=10.0.0.1:3260,1\0".to_vec()
            }]
        );
    }

    #[test]
    fn a_write_answered_before_its_data_is_sent_drops_the_rest() {
        let mut m = machine(SessionParams {
            initial_r2t: false,
            target_max_recv_data_segment_length: 1024,
            ..params()
        });
        let itt = m
            .submit(Cdb::write16(0, 8), DataTransfer::Write(pattern(4096)))
            .unwrap();
        // Only the command goes out before the target answers.
        assert!(m.poll_transmit().is_some());
        m.receive(good_response(itt, 100, 41)).unwrap();
        assert!(m.poll_transmit().is_none());
    }

    #[test]
    fn cdbs_have_the_sbc_layout() {
        assert_eq!(
            Cdb::read16(0x0102_0304_0506_0708, 0x0a0b_0c0d).as_bytes(),
            [0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0]
        );
        assert_eq!(Cdb::synchronize_cache16().as_bytes(), {
            let mut c = [0u8; 16];
            c[0] = 0x91;
            c
        });
        assert_eq!(
            Cdb::write_same16_unmap(0x10, 0x20).as_bytes(),
            [0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 0]
        );
        assert_eq!(
            Cdb::read_capacity16().as_bytes(),
            [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
        );
        assert_eq!(
            Cdb::inquiry(Some(0xb0), 0x0140).as_bytes(),
            [0x12, 1, 0xb0, 0x01, 0x40, 0]
        );
        assert_eq!(Cdb::inquiry(None, 96).as_bytes(), [0x12, 0, 0, 0, 96, 0]);
        assert_eq!(
            Cdb::unmap(40).as_bytes(),
            [0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0]
        );
        assert_eq!(Cdb::test_unit_ready().as_bytes(), [0; 6]);
        assert_eq!(Cdb::read_capacity16().name(), "READ CAPACITY(16)");
        assert_eq!(Cdb::write16(77, 1).lba(), Some(77));
        assert_eq!(Cdb::inquiry(None, 1).lba(), None);
        assert!(Cdb::from_bytes(&[0; 17]).is_none() && Cdb::from_bytes(&[]).is_none());
    }

    #[test]
    fn unmap_parameter_list_has_the_sbc_layout() {
        let list = unmap_parameter_list(&[(0x1000, 0x800), (0x0001_0000_0000, 1)]).unwrap();
        let mut expected = vec![0, 38, 0, 32, 0, 0, 0, 0];
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x08, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(list, expected);
        let most = vec![(0, 1); MAX_UNMAP_DESCRIPTORS];
        assert_eq!(unmap_parameter_list(&most).unwrap().len(), 8 + 16 * 4095);
        assert!(unmap_parameter_list(&vec![(0, 1); MAX_UNMAP_DESCRIPTORS + 1]).is_none());
    }

    #[test]
    fn sense_in_both_formats_and_names() {
        // Descriptor format with an INFORMATION descriptor.
        let sense = [
            0x72, 0x05, 0x24, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34,
        ];
        let info = SenseInfo::parse(&sense).unwrap();
        assert_eq!(
            info,
            SenseInfo {
                key: 5,
                asc: 0x24,
                ascq: 0,
                information: Some(0x1234),
                deferred: false
            }
        );
        assert_eq!(info.to_string(), "ILLEGAL REQUEST: INVALID FIELD IN CDB");
        // Fixed format, INFORMATION not valid, unit attention.
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x06;
        fixed[12] = 0x29;
        let ua = SenseInfo::parse(&fixed).unwrap();
        assert!(ua.is_unit_attention() && ua.information.is_none());
        assert_eq!(
            ua.to_string(),
            "UNIT ATTENTION: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"
        );
        // Unknown ASC, deferred.
        fixed[0] = 0x71;
        fixed[2] = 0x03;
        fixed[12] = 0x80;
        fixed[13] = 0x01;
        assert_eq!(
            SenseInfo::parse(&fixed).unwrap().to_string(),
            "MEDIUM ERROR: additional sense code 80h/01h (deferred error)"
        );
        assert_eq!(SenseInfo::parse(&[]), None);
        assert_eq!(SenseInfo::parse(&[0x70, 0]), None);
        assert_eq!(SenseInfo::parse(&[0x00; 18]), None);
        // Truncated descriptors never panic.
        assert!(SenseInfo::parse(&[0x72, 5, 0x21, 0, 0, 0, 0, 200, 0x00, 0x0a, 0x80]).is_some());
        assert_eq!(ScsiStatus(0x18).to_string(), "RESERVATION CONFLICT");
        assert_eq!(ScsiStatus(0x22).to_string(), "status 0x22");
    }

    #[test]
    fn capacity_block_limits_and_provisioning_are_decoded() {
        let mut cap = [0u8; 32];
        cap[0..8].copy_from_slice(&0x1f_ffffu64.to_be_bytes());
        cap[8..12].copy_from_slice(&512u32.to_be_bytes());
        cap[14] = 0xc0;
        assert_eq!(
            Capacity::parse(&cap).unwrap(),
            Capacity {
                block_size: 512,
                blocks: 0x20_0000,
                thin: true,
                reads_zeros: true
            }
        );
        assert_eq!(Capacity::parse(&cap).unwrap().bytes(), 1 << 30);
        cap[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            Capacity::parse(&cap).unwrap_err().to_string(),
            "READ CAPACITY(16) data: block size 0 is not a power of two"
        );
        assert_eq!(
            Capacity::parse(&cap[..8]).unwrap_err().to_string(),
            "READ CAPACITY(16) data: 8 bytes, at least 15 needed"
        );

        let mut page = vec![0u8; 64];
        page[1] = 0xb0;
        page[3] = 0x3c;
        page[6..8].copy_from_slice(&8u16.to_be_bytes());
        page[8..12].copy_from_slice(&16_384u32.to_be_bytes());
        page[12..16].copy_from_slice(&2048u32.to_be_bytes());
        page[20..24].copy_from_slice(&0x40_0000u32.to_be_bytes());
        page[24..28].copy_from_slice(&16u32.to_be_bytes());
        page[28..32].copy_from_slice(&8u32.to_be_bytes());
        page[36..44].copy_from_slice(&0x1_0000u64.to_be_bytes());
        assert_eq!(
            BlockLimits::parse(&page).unwrap(),
            BlockLimits {
                max_transfer_blocks: 16_384,
                optimal_transfer_blocks: 2048,
                optimal_granularity_blocks: 8,
                max_unmap_blocks: 0x40_0000,
                max_unmap_descriptors: 16,
                unmap_granularity_blocks: 8,
                max_write_same_blocks: 0x1_0000,
            }
        );
        // An SBC-2 page of 12 bytes: the unmap fields read as 0.
        page[3] = 12;
        let short = BlockLimits::parse(&page[..16]).unwrap();
        assert_eq!(
            (short.max_transfer_blocks, short.max_unmap_blocks),
            (16_384, 0)
        );
        page[1] = 0xb1;
        assert_eq!(
            BlockLimits::parse(&page).unwrap_err().to_string(),
            "Block Limits VPD page: page code B1h, expected B0h"
        );

        let lbp = [0, 0xb2, 0, 4, 0, 0xe4, 2, 0];
        assert_eq!(
            Provisioning::parse(&lbp).unwrap(),
            Provisioning {
                unmap: true,
                write_same16_unmap: true,
                write_same10_unmap: true,
                reads_zeros: true
            }
        );
        assert_eq!(
            parse_supported_vpd_pages(&[0, 0, 0, 3, 0, 0x80, 0xb0]).unwrap(),
            vec![0, 0x80, 0xb0]
        );
    }
}
