//! The target's full feature phase on one connection (RFC 7143), sans-IO.
//!
//! [`TargetConnection`] takes the decoded PDUs of a logged-in connection
//! ([`TargetConnection::receive`]) and the results of the SCSI commands it handed out
//! ([`TargetConnection::complete`]); [`TargetConnection::poll_action`] gives what to do
//! next: a PDU to send, a command to run on the logical units (on a blocking thread), a
//! logical unit or target reset, or the end of the connection. No socket, no clock.
//!
//! What it does:
//! - Command numbering (section 4.2.2): non-immediate commands are delivered in CmdSN
//!   order; those ahead of ExpCmdSN inside the window wait, those outside
//!   [ExpCmdSN, MaxCmdSN] (and duplicates) are dropped silently. MaxCmdSN is
//!   ExpCmdSN - 1 + (queue depth - SCSI tasks in progress), so at most
//!   [`ConnectionConfig::queue_depth`] tasks exist; it never goes backwards.
//! - SCSI commands run one at a time, in the order they were delivered.
//! - READ: Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength, in
//!   sequences of at most MaxBurstLength (F on each sequence's last PDU); GOOD status
//!   without sense rides on the last Data-In (S bit), anything else gets a SCSI Response.
//! - WRITE: immediate data, unsolicited Data-Out up to FirstBurstLength, then R2Ts of at
//!   most MaxBurstLength, MaxOutstandingR2T at a time. Data must come in offset order
//!   (DataPDUInOrder and DataSequenceInOrder are Yes: both are OR-negotiated and the
//!   target asks for Yes). A wrong DataSN, buffer offset, TTT or length ends the task at
//!   once with CHECK CONDITION (ABORTED COMMAND); later Data-Out of an ended task is
//!   dropped. A data digest error on a Data-Out gets a Reject (reason 0x02), then the
//!   same CHECK CONDITION (PROTOCOL SERVICE CRC ERROR).
//! - Residuals (O/U bits and count): data-in against the Expected Data Transfer Length
//!   when R is set (0 otherwise), data-out likewise with W. All the data-out (up to
//!   the EDTL) goes to the logical unit, which writes what the CDB says, except that of
//!   a data-in CDB, which is dropped.
//!   Bidirectional commands get CHECK CONDITION (INVALID FIELD IN CDB).
//! - NOP-Out/NOP-In pings both ways, task management (ABORT TASK, ABORT TASK SET, CLEAR
//!   TASK SET, LOGICAL UNIT RESET, TARGET WARM/COLD RESET; the others "not supported"),
//!   SendTargets, Logout, Reject of SNACK (ErrorRecoveryLevel 0) and of what cannot be
//!   handled, the Asynchronous Message that asks for a logout.
//!
//! Memory bound per connection: the data-out kept is at most
//! `queue_depth × FirstBurstLength` (immediate and unsolicited data) plus
//! [`ConnectionConfig::write_budget`] (solicited data: a task reserves what it still needs
//! before its first R2T, tasks get their reservations in command order, so the oldest
//! one always can); a data-out longer than [`ConnectionConfig::max_transfer_bytes`] is
//! refused with CHECK CONDITION before any R2T. Data-in is at most the one running
//! command's, cut to the EDTL, plus its queued Data-In PDUs (a copy). Commands waiting
//! for a CmdSN gap to close are inside the window, so at most `queue_depth` PDUs of at
//! most our MaxRecvDataSegmentLength.

use std::collections::{HashMap, VecDeque};

use tracing::{debug, info, warn};

use crate::digest::Digests;
use crate::login::{Established, TextResponder};
use crate::params::{SessionParams, SessionType};
use crate::pdu::{
    AsyncEvent, AsyncMessage, DataIn, DataOut, LogoutReason, LogoutRequest, LogoutResponse,
    LogoutResponseCode, NopIn, NopOut, Pdu, R2t, Reject, RejectReason, Residual, ScsiCommand,
    ScsiResponse, ServiceResponse, TargetSeq, TaskMgmtRequest, TaskMgmtResponse, TextRequest,
    TmfFunction, TmfResponse, BHS_LEN, RESERVED_TAG,
};

/// Default number of SCSI tasks a connection may have at once (the CmdSN window).
pub const DEFAULT_QUEUE_DEPTH: u32 = 32;
/// Default bound on solicited write data buffered per connection.
pub const DEFAULT_WRITE_BUDGET: u32 = 16 << 20;
/// Default largest data-out of one command.
pub const DEFAULT_MAX_TRANSFER_BYTES: u32 = 8 << 20;

/// SCSI status GOOD.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status CONDITION MET.
pub const STATUS_CONDITION_MET: u8 = 0x04;
/// SCSI status TASK SET FULL.
pub const STATUS_TASK_SET_FULL: u8 = 0x28;

const SENSE_ILLEGAL_REQUEST: u8 = 0x05;
const SENSE_ABORTED_COMMAND: u8 = 0x0B;
/// INVALID FIELD IN CDB.
const ASC_INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
/// DATA PHASE ERROR: a Data-Out with a wrong DataSN, offset or TTT.
const ASC_DATA_PHASE_ERROR: (u8, u8) = (0x4B, 0x00);
/// TOO MUCH WRITE DATA.
const ASC_TOO_MUCH_WRITE_DATA: (u8, u8) = (0x4B, 0x02);
/// DATA OFFSET ERROR.
const ASC_DATA_OFFSET_ERROR: (u8, u8) = (0x4B, 0x05);
/// PROTOCOL SERVICE CRC ERROR (RFC 7143 section 11.4.7.2).
const ASC_PROTOCOL_SERVICE_CRC_ERROR: (u8, u8) = (0x47, 0x05);

/// What a CDB moves, as the logical unit reads it (`scsi::Transfer`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DataTransfer {
    /// No data.
    #[default]
    None,
    /// This many bytes to the initiator.
    In(u32),
    /// This many bytes from the initiator.
    Out(u32),
}

/// Everything a connection needs from its login.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// The negotiated parameters.
    pub params: SessionParams,
    /// Normal or discovery.
    pub session_type: SessionType,
    /// The connection ID from the login.
    pub cid: u16,
    /// The StatSN of the next status PDU (one past the final Login Response's).
    pub stat_sn: u32,
    /// ExpCmdSN after the login.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN the final Login Response announced.
    pub max_cmd_sn: u32,
    /// The most SCSI tasks at once.
    pub queue_depth: u32,
    /// The longest data-out one command may ask for.
    pub max_transfer_bytes: u32,
    /// Solicited write data buffered at most (raised to `max_transfer_bytes` if lower).
    pub write_budget: u32,
}

impl ConnectionConfig {
    /// The configuration of the session a login established, with the default depth
    /// and bounds.
    pub fn from_established(established: &Established) -> Self {
        Self {
            params: established.params,
            session_type: established.session_type,
            cid: established.cid,
            stat_sn: established.stat_sn,
            exp_cmd_sn: established.cmd_sn,
            max_cmd_sn: established.max_cmd_sn,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            max_transfer_bytes: DEFAULT_MAX_TRANSFER_BYTES,
            write_budget: DEFAULT_WRITE_BUDGET,
        }
    }
}

/// A SCSI command ready to run on the logical units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiJob {
    /// The task's ITT: hand it back to [`TargetConnection::complete`].
    pub itt: u32,
    /// The raw 8-byte LUN field.
    pub lun: u64,
    /// The whole CDB.
    pub cdb: Vec<u8>,
    /// The data-out: all the initiator sent (its EDTL), none for a data-in CDB.
    pub data_out: Vec<u8>,
    /// The most data-in the initiator takes (its EDTL when R is set, else 0).
    pub allocation: u32,
}

/// What a SCSI command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandResult {
    /// The SCSI status.
    pub status: u8,
    /// Sense data (empty without CHECK CONDITION).
    pub sense: Vec<u8>,
    /// Data-in, at most the job's `allocation`.
    pub data_in: Vec<u8>,
    /// The data-in the command wanted to return (at least `data_in.len()`; more when
    /// `allocation` cut it).
    pub data_in_wanted: u32,
    /// The command could not be run at all (iSCSI response "target failure").
    pub target_failure: bool,
}

impl CommandResult {
    /// GOOD with this data-in.
    pub fn good(data_in: Vec<u8>) -> Self {
        let wanted = u32::try_from(data_in.len()).unwrap_or(u32::MAX);
        Self {
            data_in,
            data_in_wanted: wanted,
            ..Self::default()
        }
    }

    /// CHECK CONDITION with this sense data.
    pub fn check_condition(sense: Vec<u8>) -> Self {
        Self {
            status: STATUS_CHECK_CONDITION,
            sense,
            ..Self::default()
        }
    }

    /// The command could not be run (the worker died).
    pub fn target_failure() -> Self {
        Self {
            target_failure: true,
            ..Self::default()
        }
    }
}

/// What the connection's driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this PDU.
    Send(Pdu),
    /// Run this command, then call [`TargetConnection::complete`].
    Execute(ScsiJob),
    /// LOGICAL UNIT RESET of this LUN (raw LUN field) has been done at the iSCSI level;
    /// reset the logical unit's state (before sending what follows).
    ResetLun(u64),
    /// TARGET WARM or COLD RESET: reset every logical unit (before what follows).
    ResetTarget,
    /// Close the connection (after writing everything before this).
    Close,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Closed,
}

/// A command that arrived ahead of ExpCmdSN, or a CmdSN an ABORT TASK consumed.
#[derive(Debug)]
enum Held {
    Pdu(Box<Pdu>, DataTransfer),
    Consumed,
}

/// One R2T waiting for its data.
#[derive(Debug)]
struct OpenR2t {
    ttt: u32,
    offset: u32,
    length: u32,
    received: u32,
    next_data_sn: u32,
}

/// A SCSI command between its delivery and its response.
#[derive(Debug)]
struct Task {
    itt: u32,
    lun: u64,
    cdb: Vec<u8>,
    /// The EDTL if R is set, else 0.
    in_allowed: u32,
    /// The EDTL if W is set, else 0.
    out_allowed: u32,
    transfer: DataTransfer,
    /// Data-out bytes kept: the EDTL of W, 0 for a data-in CDB.
    needed: u32,
    data: Vec<u8>,
    /// Data-out bytes received, kept or not (the next expected buffer offset).
    received: u32,
    unsolicited_limit: u32,
    unsolicited_done: bool,
    unsolicited_data_sn: u32,
    /// The next offset to ask for with an R2T.
    next_r2t_offset: u32,
    r2t_sn: u32,
    r2ts: VecDeque<OpenR2t>,
    /// Budget reserved for solicited data (`None` until granted).
    reserved: Option<u32>,
    aborted: bool,
}

impl Task {
    fn data_complete(&self) -> bool {
        self.unsolicited_done && self.r2ts.is_empty() && self.next_r2t_offset >= self.needed
    }

    /// Solicited bytes still to ask for once unsolicited data is in.
    fn solicited_needed(&self) -> u32 {
        self.needed.saturating_sub(self.received)
    }
}

/// A TMF answered once the running command has finished.
#[derive(Debug)]
struct DeferredTmf {
    response: TaskMgmtResponse,
    before: Option<Action>,
    close_after: bool,
}

/// One logged-in connection of the target, in the full feature phase.
#[derive(Debug)]
pub struct TargetConnection {
    config: ConnectionConfig,
    state: State,
    stat_sn: u32,
    exp_cmd_sn: u32,
    max_cmd_sn: u32,
    held: HashMap<u32, Held>,
    tasks: HashMap<u32, Task>,
    /// Delivered tasks not yet running, in delivery order.
    order: VecDeque<u32>,
    running: Option<u32>,
    deferred: Vec<DeferredTmf>,
    budget_free: u32,
    next_ttt: u32,
    ping_ttt: Option<u32>,
    text: TextResponder,
    actions: VecDeque<Action>,
}

/// `a < b` in serial number arithmetic (RFC 1982, 32 bits).
fn serial_lt(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) < 0
}

fn serial_le(a: u32, b: u32) -> bool {
    a == b || serial_lt(a, b)
}

/// Fixed-format sense data (SPC-4 section 4.5.3) for iSCSI-level failures.
fn fixed_sense(key: u8, (asc, ascq): (u8, u8)) -> Vec<u8> {
    let mut sense = vec![0u8; 18];
    sense[0] = 0x70;
    sense[2] = key;
    sense[7] = 10;
    sense[12] = asc;
    sense[13] = ascq;
    sense
}

/// The residual of a transfer that wanted `wanted` bytes when `allowed` were expected.
fn residual(wanted: u32, allowed: u32) -> Residual {
    match wanted.cmp(&allowed) {
        std::cmp::Ordering::Greater => Residual::Overflow(wanted - allowed),
        std::cmp::Ordering::Less => Residual::Underflow(allowed - wanted),
        std::cmp::Ordering::Equal => Residual::None,
    }
}

/// The 48-byte header of a PDU as an initiator would have sent it (for a Reject).
fn header_of(pdu: &Pdu) -> Vec<u8> {
    let mut bytes = pdu.encode(Digests::NONE);
    bytes.truncate(BHS_LEN);
    bytes
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl TargetConnection {
    /// The machine for a connection that has just logged in; `text` answers its Text
    /// Requests (SendTargets).
    pub fn new(config: ConnectionConfig, text: TextResponder) -> Self {
        let mut config = config;
        config.queue_depth = config.queue_depth.max(1);
        config.write_budget = config.write_budget.max(config.max_transfer_bytes);
        let mut conn = Self {
            stat_sn: config.stat_sn,
            exp_cmd_sn: config.exp_cmd_sn,
            max_cmd_sn: config.max_cmd_sn,
            budget_free: config.write_budget,
            config,
            state: State::Running,
            held: HashMap::new(),
            tasks: HashMap::new(),
            order: VecDeque::new(),
            running: None,
            deferred: Vec::new(),
            next_ttt: 1,
            ping_ttt: None,
            text,
            actions: VecDeque::new(),
        };
        conn.update_window();
        conn
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Whether the connection has ended (nothing more will be produced but what is
    /// already queued).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The StatSN the next status PDU will carry.
    pub fn stat_sn(&self) -> u32 {
        self.stat_sn
    }

    /// ExpCmdSN.
    pub fn exp_cmd_sn(&self) -> u32 {
        self.exp_cmd_sn
    }

    /// MaxCmdSN.
    pub fn max_cmd_sn(&self) -> u32 {
        self.max_cmd_sn
    }

    /// SCSI tasks in progress.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Data-out bytes held by this connection's tasks.
    pub fn buffered_bytes(&self) -> usize {
        self.tasks.values().map(|t| t.data.len()).sum()
    }

    /// Whether a NOP-In ping is waiting for its NOP-Out.
    pub fn ping_outstanding(&self) -> bool {
        self.ping_ttt.is_some()
    }

    /// Sends a NOP-In asking the initiator for a NOP-Out (a keepalive); `false` if one
    /// is already outstanding or the connection is closed.
    pub fn ping(&mut self) -> bool {
        if self.ping_ttt.is_some() || self.is_closed() {
            return false;
        }
        let ttt = self.alloc_ttt();
        self.ping_ttt = Some(ttt);
        let nop = NopIn {
            lun: 0,
            itt: RESERVED_TAG,
            ttt,
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            data: Vec::new(),
        };
        self.send(nop.into());
        true
    }

    /// Asks the initiator to log out within `seconds` (Asynchronous Message, event 1),
    /// e.g. before the target shuts down.
    pub fn request_logout(&mut self, seconds: u16) {
        if self.is_closed() {
            return;
        }
        let message = AsyncMessage {
            lun: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            event: AsyncEvent::LogoutRequested,
            vcode: 0,
            parameter1: 0,
            parameter2: 0,
            parameter3: seconds,
            data: Vec::new(),
        };
        self.send(message.into());
    }

    /// Handles one PDU from the initiator. `transfer` is what the CDB asks for when the
    /// PDU is a SCSI Command (the logical unit's `expected_transfer`), ignored otherwise.
    pub fn receive(&mut self, pdu: Pdu, transfer: DataTransfer) {
        if self.is_closed() {
            return;
        }
        if let Err(reason) = self.check_allowed(&pdu) {
            self.reject(header_of(&pdu), reason);
            return;
        }
        match pdu {
            Pdu::DataOut(data) => self.data_out(data),
            Pdu::NopOut(nop) if nop.itt == RESERVED_TAG => self.nop_answer(&nop),
            Pdu::Snack(_) => self.reject(header_of(&pdu), RejectReason::SnackReject),
            other => self.numbered(other, transfer),
        }
    }

    /// Handles a PDU whose data digest did not match (decoded with its corrupt data):
    /// Reject with reason 0x02; a Data-Out also ends its task (ErrorRecoveryLevel 0).
    /// Rejected commands are not received (their CmdSN stays a gap, section 6.3).
    pub fn receive_corrupt(&mut self, pdu: Pdu) {
        if self.is_closed() {
            return;
        }
        self.reject(header_of(&pdu), RejectReason::DataDigestError);
        if let Pdu::DataOut(data) = pdu {
            let sense = fixed_sense(SENSE_ABORTED_COMMAND, ASC_PROTOCOL_SERVICE_CRC_ERROR);
            self.fail_task(data.itt, sense);
        }
    }

    /// Rejects a PDU that could not be decoded (its first 48 bytes), e.g. an unknown
    /// opcode. The connection goes on.
    pub fn reject_header(&mut self, header: &[u8], reason: RejectReason) {
        if self.is_closed() {
            return;
        }
        let header = header.get(..BHS_LEN).unwrap_or(header).to_vec();
        self.reject(header, reason);
    }

    /// The result of a job from [`Action::Execute`].
    pub fn complete(&mut self, itt: u32, result: CommandResult) {
        if self.running != Some(itt) {
            warn!(itt, "result for a command that is not running, ignored");
            return;
        }
        self.running = None;
        let Some(task) = self.tasks.remove(&itt) else {
            return;
        };
        self.release_budget(&task);
        self.update_window();
        if !task.aborted && !self.is_closed() {
            self.respond(&task, result);
        }
        self.flush_deferred();
        self.grant_budget();
        self.start_next();
    }

    /// Ends the connection without a word (e.g. the socket failed).
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.tasks.clear();
        self.order.clear();
        self.held.clear();
    }

    // ----- admission and ordering -----

    /// Refuses PDUs the session type or the parameters do not allow.
    fn check_allowed(&self, pdu: &Pdu) -> Result<(), RejectReason> {
        let discovery = self.config.session_type == SessionType::Discovery;
        match pdu {
            Pdu::NopOut(_) | Pdu::TextRequest(_) | Pdu::LogoutRequest(_) | Pdu::Snack(_) => Ok(()),
            Pdu::ScsiCommand(_) | Pdu::TaskMgmtRequest(_) | Pdu::DataOut(_) if discovery => {
                Err(RejectReason::ProtocolError)
            }
            Pdu::ScsiCommand(cmd) => self.check_command(cmd),
            Pdu::TaskMgmtRequest(_) | Pdu::DataOut(_) => Ok(()),
            _ => Err(RejectReason::ProtocolError),
        }
    }

    /// The protocol rules of a SCSI Command's flags and immediate data.
    fn check_command(&self, cmd: &ScsiCommand) -> Result<(), RejectReason> {
        let p = &self.config.params;
        let immediate = len_u32(cmd.data.len());
        let unsolicited_limit = p.first_burst_length.min(cmd.expected_data_transfer_length);
        let problem = if immediate > 0 && !cmd.write {
            Some("immediate data without the W bit")
        } else if immediate > 0 && !p.immediate_data {
            Some("immediate data but ImmediateData=No")
        } else if immediate > unsolicited_limit {
            Some("immediate data beyond FirstBurstLength or the EDTL")
        } else if !cmd.final_ && (!cmd.write || p.initial_r2t) {
            Some("F bit clear without unsolicited data allowed")
        } else if !cmd.final_ && immediate >= unsolicited_limit {
            Some("F bit clear but no unsolicited data left to send")
        } else {
            None
        };
        match problem {
            Some(what) => {
                warn!(itt = cmd.itt, what, "SCSI Command rejected");
                Err(RejectReason::ProtocolError)
            }
            None => Ok(()),
        }
    }

    /// CmdSN ordering of commands (section 4.2.2.1).
    fn numbered(&mut self, pdu: Pdu, transfer: DataTransfer) {
        let Some((cmd_sn, immediate)) = numbering(&pdu) else {
            self.reject(header_of(&pdu), RejectReason::ProtocolError);
            return;
        };
        if immediate {
            self.deliver(pdu, transfer);
            self.update_window();
            return;
        }
        let in_window = serial_le(self.exp_cmd_sn, cmd_sn) && serial_le(cmd_sn, self.max_cmd_sn);
        if !in_window || self.held.contains_key(&cmd_sn) {
            debug!(
                cmd_sn,
                exp_cmd_sn = self.exp_cmd_sn,
                max_cmd_sn = self.max_cmd_sn,
                "command outside the CmdSN window or duplicate, dropped"
            );
            return;
        }
        if cmd_sn != self.exp_cmd_sn {
            self.held.insert(cmd_sn, Held::Pdu(Box::new(pdu), transfer));
            return;
        }
        self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
        self.deliver(pdu, transfer);
        self.deliver_held();
        self.update_window();
    }

    /// Delivers the held commands that are now in sequence.
    fn deliver_held(&mut self) {
        while let Some(held) = self.held.remove(&self.exp_cmd_sn) {
            self.exp_cmd_sn = self.exp_cmd_sn.wrapping_add(1);
            if let Held::Pdu(pdu, transfer) = held {
                self.deliver(*pdu, transfer);
            }
            if self.is_closed() {
                return;
            }
        }
    }

    /// MaxCmdSN = ExpCmdSN - 1 + free task slots, never decreasing.
    fn update_window(&mut self) {
        let busy = len_u32(self.tasks.len());
        let free = self.config.queue_depth.saturating_sub(busy);
        let candidate = self.exp_cmd_sn.wrapping_add(free).wrapping_sub(1);
        if serial_lt(self.max_cmd_sn, candidate) {
            self.max_cmd_sn = candidate;
        }
    }

    fn deliver(&mut self, pdu: Pdu, transfer: DataTransfer) {
        match pdu {
            Pdu::ScsiCommand(cmd) => self.scsi_command(cmd, transfer),
            Pdu::NopOut(nop) => self.nop_out(nop),
            Pdu::TaskMgmtRequest(tmf) => self.task_management(&tmf),
            Pdu::TextRequest(text) => self.text_request(text),
            Pdu::LogoutRequest(logout) => self.logout(&logout),
            other => self.reject(header_of(&other), RejectReason::ProtocolError),
        }
    }

    // ----- SCSI commands -----

    fn scsi_command(&mut self, cmd: ScsiCommand, transfer: DataTransfer) {
        if self.tasks.contains_key(&cmd.itt) {
            warn!(itt = cmd.itt, "ITT of a task in progress reused");
            self.reject(
                header_of(&Pdu::ScsiCommand(cmd)),
                RejectReason::TaskInProgress,
            );
            return;
        }
        let edtl = cmd.expected_data_transfer_length;
        let in_allowed = if cmd.read { edtl } else { 0 };
        let out_allowed = if cmd.write { edtl } else { 0 };
        // All the data-out the initiator sends goes to the logical unit, even beyond
        // what the CDB says (it writes what the CDB says; COMPARE AND WRITE and WRITE
        // SAME check the size, also of a zero-length CDB); a data-in CDB's is dropped.
        let needed = match transfer {
            DataTransfer::In(_) => 0,
            DataTransfer::Out(_) | DataTransfer::None => out_allowed,
        };
        // Bidirectional commands are not supported; a data-out above the transfer
        // limit is refused before any of it is asked for.
        if (cmd.read && cmd.write) || needed > self.config.max_transfer_bytes {
            let sense = fixed_sense(SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
            let residual = data_out_residual(transfer, out_allowed, in_allowed);
            self.send_status(cmd.itt, STATUS_CHECK_CONDITION, sense, residual, 0);
            return;
        }
        if cmd.immediate && self.tasks.len() >= self.config.queue_depth as usize {
            let residual = data_out_residual(transfer, out_allowed, in_allowed);
            self.send_status(cmd.itt, STATUS_TASK_SET_FULL, Vec::new(), residual, 0);
            return;
        }
        let received = len_u32(cmd.data.len());
        let mut data = cmd.data;
        data.truncate(needed as usize);
        let task = Task {
            itt: cmd.itt,
            lun: cmd.lun,
            cdb: cmd_cdb(&cmd.cdb, &cmd.extended_cdb),
            in_allowed,
            out_allowed,
            transfer,
            needed,
            data,
            received,
            unsolicited_limit: self.config.params.first_burst_length.min(edtl),
            unsolicited_done: cmd.final_,
            unsolicited_data_sn: 0,
            next_r2t_offset: received,
            r2t_sn: 0,
            r2ts: VecDeque::new(),
            reserved: None,
            aborted: false,
        };
        self.order.push_back(task.itt);
        self.tasks.insert(task.itt, task);
        self.grant_budget();
        self.start_next();
    }

    /// Gives write budget to tasks in delivery order (the first one that cannot have
    /// its share stops the others: so the oldest task always gets its data).
    fn grant_budget(&mut self) {
        let mut issue = Vec::new();
        for itt in self.order.iter().copied() {
            let Some(task) = self.tasks.get_mut(&itt) else {
                continue;
            };
            if task.reserved.is_some() {
                continue;
            }
            if !task.unsolicited_done {
                break;
            }
            let want = task.solicited_needed();
            if want > self.budget_free {
                break;
            }
            self.budget_free -= want;
            task.reserved = Some(want);
            task.data.reserve_exact(want as usize);
            issue.push(itt);
        }
        for itt in issue {
            self.issue_r2ts(itt);
        }
    }

    fn release_budget(&mut self, task: &Task) {
        if let Some(reserved) = task.reserved {
            self.budget_free = self.budget_free.saturating_add(reserved);
        }
    }

    /// Sends R2Ts for a task up to MaxOutstandingR2T.
    fn issue_r2ts(&mut self, itt: u32) {
        let max_outstanding = usize::from(self.config.params.max_outstanding_r2t.max(1));
        let burst = self.config.params.max_burst_length.max(512);
        loop {
            let ttt = self.next_ttt_value();
            let (stat_sn, exp_cmd_sn, max_cmd_sn) =
                (self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn);
            let Some(task) = self.tasks.get_mut(&itt) else {
                return;
            };
            if task.reserved.is_none()
                || task.r2ts.len() >= max_outstanding
                || task.next_r2t_offset >= task.needed
            {
                return;
            }
            let offset = task.next_r2t_offset;
            let length = burst.min(task.needed - offset);
            task.next_r2t_offset = offset + length;
            task.r2ts.push_back(OpenR2t {
                ttt,
                offset,
                length,
                received: 0,
                next_data_sn: 0,
            });
            let r2t = R2t {
                lun: task.lun,
                itt,
                ttt,
                stat_sn,
                exp_cmd_sn,
                max_cmd_sn,
                r2t_sn: task.r2t_sn,
                buffer_offset: offset,
                desired_data_transfer_length: length,
            };
            task.r2t_sn = task.r2t_sn.wrapping_add(1);
            self.next_ttt = self.next_ttt.wrapping_add(1);
            self.send(r2t.into());
        }
    }

    /// Hands the next delivered task to the driver when nothing runs and its data is in.
    fn start_next(&mut self) {
        if self.running.is_some() || self.is_closed() {
            return;
        }
        let Some(&itt) = self.order.front() else {
            return;
        };
        let Some(task) = self.tasks.get_mut(&itt) else {
            self.order.pop_front();
            return self.start_next();
        };
        if !task.data_complete() {
            return;
        }
        self.order.pop_front();
        self.running = Some(itt);
        let job = ScsiJob {
            itt,
            lun: task.lun,
            cdb: task.cdb.clone(),
            data_out: std::mem::take(&mut task.data),
            allocation: task.in_allowed,
        };
        self.actions.push_back(Action::Execute(job));
    }

    // ----- Data-Out -----

    fn data_out(&mut self, data: DataOut) {
        let itt = data.itt;
        let Some(task) = self.tasks.get_mut(&itt) else {
            debug!(itt, "Data-Out for no task in progress, dropped");
            return;
        };
        if self.running == Some(itt) {
            debug!(itt, "Data-Out for a running command, dropped");
            return;
        }
        match accept_data(task, &data) {
            Ok(()) => {}
            Err((asc, what)) => {
                warn!(
                    itt,
                    data_sn = data.data_sn,
                    offset = data.buffer_offset,
                    what,
                    "bad Data-Out, task ended"
                );
                self.fail_task(itt, fixed_sense(SENSE_ABORTED_COMMAND, asc));
                return;
            }
        }
        if task.unsolicited_done && task.reserved.is_none() {
            self.grant_budget();
        } else {
            self.issue_r2ts(itt);
        }
        self.start_next();
    }

    /// Ends a task that is not running with CHECK CONDITION.
    fn fail_task(&mut self, itt: u32, sense: Vec<u8>) {
        if self.running == Some(itt) {
            return;
        }
        let Some(task) = self.tasks.remove(&itt) else {
            return;
        };
        self.order.retain(|&t| t != itt);
        self.release_budget(&task);
        let residual = data_out_residual(task.transfer, task.out_allowed, task.in_allowed);
        self.send_status(itt, STATUS_CHECK_CONDITION, sense, residual, task.r2t_sn);
        self.update_window();
        self.grant_budget();
        self.start_next();
    }

    // ----- responses -----

    fn respond(&mut self, task: &Task, result: CommandResult) {
        if result.target_failure {
            let response = ScsiResponse {
                response: ServiceResponse::TargetFailure,
                itt: task.itt,
                stat_sn: self.next_stat_sn(),
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn,
                ..ScsiResponse::default()
            };
            self.send(response.into());
            return;
        }
        let mut data_in = result.data_in;
        data_in.truncate(task.in_allowed as usize);
        let residual = match task.transfer {
            DataTransfer::Out(_) => {
                data_out_residual(task.transfer, task.out_allowed, task.in_allowed)
            }
            _ => {
                let wanted = result.data_in_wanted.max(len_u32(data_in.len()));
                residual_for_in(wanted, task.in_allowed, task.out_allowed)
            }
        };
        let collapse = matches!(result.status, STATUS_GOOD | STATUS_CONDITION_MET)
            && result.sense.is_empty()
            && !data_in.is_empty();
        let data_sn = self.send_data_in(
            task,
            &data_in,
            collapse.then_some((result.status, residual)),
        );
        if !collapse {
            let exp_data_sn = if data_in.is_empty() {
                task.r2t_sn
            } else {
                data_sn
            };
            self.send_status(task.itt, result.status, result.sense, residual, exp_data_sn);
        }
    }

    /// Sends `data` as Data-In PDUs; with `status`, the last one carries it (S bit).
    /// Returns the number of PDUs sent.
    fn send_data_in(&mut self, task: &Task, data: &[u8], status: Option<(u8, Residual)>) -> u32 {
        let segment = self
            .config
            .params
            .initiator_max_recv_data_segment_length
            .max(512) as usize;
        let burst = self.config.params.max_burst_length.max(512) as usize;
        let mut offset = 0usize;
        let mut data_sn = 0u32;
        while offset < data.len() {
            let burst_end = (offset / burst + 1) * burst;
            let end = (offset + segment).min(burst_end).min(data.len());
            let last = end == data.len();
            let (status_here, residual) = match status {
                Some((s, r)) if last => (Some(s), r),
                _ => (None, Residual::None),
            };
            let stat_sn = if status_here.is_some() {
                self.next_stat_sn()
            } else {
                self.stat_sn
            };
            let pdu = DataIn {
                final_: last || end == burst_end,
                acknowledge: false,
                status: status_here,
                residual,
                lun: task.lun,
                itt: task.itt,
                ttt: RESERVED_TAG,
                stat_sn,
                exp_cmd_sn: self.exp_cmd_sn,
                max_cmd_sn: self.max_cmd_sn,
                data_sn,
                buffer_offset: len_u32(offset),
                data: data[offset..end].to_vec(),
            };
            self.send(pdu.into());
            data_sn = data_sn.wrapping_add(1);
            offset = end;
        }
        data_sn
    }

    fn send_status(
        &mut self,
        itt: u32,
        status: u8,
        sense: Vec<u8>,
        residual: Residual,
        exp_data_sn: u32,
    ) {
        let response = ScsiResponse {
            response: ServiceResponse::CommandCompleted,
            status,
            itt,
            snack_tag: 0,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            exp_data_sn,
            bidi_read_residual: Residual::None,
            residual,
            sense,
            response_data: Vec::new(),
        };
        self.send(response.into());
    }

    // ----- NOP -----

    fn nop_out(&mut self, nop: NopOut) {
        if nop.ttt != RESERVED_TAG {
            self.nop_answer(&nop);
        }
        let limit = self.config.params.initiator_max_recv_data_segment_length as usize;
        let mut data = nop.data;
        data.truncate(limit);
        let reply = NopIn {
            lun: nop.lun,
            itt: nop.itt,
            ttt: RESERVED_TAG,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            data,
        };
        self.send(reply.into());
    }

    /// A NOP-Out without a reply wanted: the answer to our ping, or nothing.
    fn nop_answer(&mut self, nop: &NopOut) {
        if nop.ttt != RESERVED_TAG && self.ping_ttt == Some(nop.ttt) {
            self.ping_ttt = None;
        } else if nop.ttt != RESERVED_TAG {
            debug!(ttt = nop.ttt, "NOP-Out answers no ping of ours");
        }
    }

    // ----- task management -----

    fn task_management(&mut self, tmf: &TaskMgmtRequest) {
        let mut deferred = DeferredTmf {
            response: TaskMgmtResponse {
                response: TmfResponse::FunctionComplete,
                itt: tmf.itt,
                ..TaskMgmtResponse::default()
            },
            before: None,
            close_after: false,
        };
        let waits_for_running = match tmf.function {
            TmfFunction::AbortTask => {
                let (response, waits) = self.abort_task(tmf);
                deferred.response.response = response;
                waits
            }
            TmfFunction::AbortTaskSet | TmfFunction::ClearTaskSet => {
                self.abort_where(|t| t.lun == tmf.lun)
            }
            TmfFunction::LogicalUnitReset => {
                deferred.before = Some(Action::ResetLun(tmf.lun));
                self.abort_where(|t| t.lun == tmf.lun)
            }
            TmfFunction::TargetWarmReset | TmfFunction::TargetColdReset => {
                deferred.before = Some(Action::ResetTarget);
                deferred.close_after = tmf.function == TmfFunction::TargetColdReset;
                self.abort_where(|_| true)
            }
            TmfFunction::TaskReassign => {
                deferred.response.response = TmfResponse::TaskAllegianceReassignmentNotSupported;
                false
            }
            _ => {
                deferred.response.response = TmfResponse::FunctionNotSupported;
                false
            }
        };
        info!(
            function = ?tmf.function,
            referenced = tmf.referenced_task_tag,
            response = ?deferred.response.response,
            "task management"
        );
        self.update_window();
        self.deferred.push(deferred);
        if !waits_for_running {
            self.flush_deferred();
        }
        self.grant_budget();
        self.start_next();
    }

    /// ABORT TASK: the response, and whether it must wait for the running command.
    fn abort_task(&mut self, tmf: &TaskMgmtRequest) -> (TmfResponse, bool) {
        let itt = tmf.referenced_task_tag;
        if self.running == Some(itt) {
            if let Some(task) = self.tasks.get_mut(&itt) {
                task.aborted = true;
            }
            return (TmfResponse::FunctionComplete, true);
        }
        if let Some(task) = self.tasks.remove(&itt) {
            self.order.retain(|&t| t != itt);
            self.release_budget(&task);
            return (TmfResponse::FunctionComplete, false);
        }
        let held_sn = self.held.iter().find_map(|(&sn, held)| match held {
            Held::Pdu(pdu, _) if pdu.itt() == itt => Some(sn),
            _ => None,
        });
        if let Some(sn) = held_sn {
            self.held.insert(sn, Held::Consumed);
            return (TmfResponse::FunctionComplete, false);
        }
        // Section 11.5.1: a RefCmdSN in the window not yet received is taken as received.
        let ref_sn = tmf.ref_cmd_sn;
        let not_received = serial_le(self.exp_cmd_sn, ref_sn)
            && serial_lt(ref_sn, tmf.cmd_sn)
            && serial_le(ref_sn, self.max_cmd_sn)
            && !self.held.contains_key(&ref_sn);
        if not_received {
            self.held.insert(ref_sn, Held::Consumed);
            self.deliver_held();
            return (TmfResponse::FunctionComplete, false);
        }
        (TmfResponse::TaskDoesNotExist, false)
    }

    /// Aborts the tasks `matches` picks; `true` if the running command is one of them.
    fn abort_where(&mut self, matches: impl Fn(&Task) -> bool) -> bool {
        let doomed: Vec<u32> = self
            .tasks
            .values()
            .filter(|t| matches(t) && self.running != Some(t.itt))
            .map(|t| t.itt)
            .collect();
        for itt in doomed {
            if let Some(task) = self.tasks.remove(&itt) {
                self.release_budget(&task);
            }
        }
        self.order.retain(|itt| self.tasks.contains_key(itt));
        match self.running.and_then(|itt| self.tasks.get_mut(&itt)) {
            Some(task) if matches(task) => {
                task.aborted = true;
                true
            }
            _ => false,
        }
    }

    /// Sends the TMF responses that waited for the running command.
    fn flush_deferred(&mut self) {
        let running_aborted = self
            .running
            .and_then(|itt| self.tasks.get(&itt))
            .is_some_and(|t| t.aborted);
        if running_aborted {
            return;
        }
        for tmf in std::mem::take(&mut self.deferred) {
            if let Some(action) = tmf.before {
                self.actions.push_back(action);
            }
            let mut response = tmf.response;
            response.stat_sn = self.next_stat_sn();
            response.exp_cmd_sn = self.exp_cmd_sn;
            response.max_cmd_sn = self.max_cmd_sn;
            self.send(response.into());
            if tmf.close_after {
                self.finish();
                return;
            }
        }
    }

    // ----- text -----

    /// SendTargets and the other keys, answered by the login module's responder.
    fn text_request(&mut self, text: TextRequest) {
        let seq = TargetSeq {
            stat_sn: self.stat_sn,
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
        };
        match self.text.respond(&text, seq) {
            Ok(response) => {
                self.next_stat_sn();
                self.send(response.into());
            }
            Err(reason) => {
                warn!(?reason, "Text Request rejected");
                self.reject(header_of(&Pdu::TextRequest(text)), reason);
            }
        }
    }

    // ----- logout -----

    fn logout(&mut self, logout: &LogoutRequest) {
        let code = match logout.reason {
            LogoutReason::CloseSession => LogoutResponseCode::ClosedSuccessfully,
            LogoutReason::CloseConnection if logout.cid == self.config.cid => {
                LogoutResponseCode::ClosedSuccessfully
            }
            LogoutReason::CloseConnection => LogoutResponseCode::CidNotFound,
            _ => LogoutResponseCode::RecoveryNotSupported,
        };
        info!(reason = ?logout.reason, response = ?code, "logout");
        let response = LogoutResponse {
            response: code,
            itt: logout.itt,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            time2wait: 0,
            time2retain: 0,
        };
        self.send(response.into());
        if code == LogoutResponseCode::ClosedSuccessfully {
            self.finish();
        }
    }

    /// Ends the connection after what is queued: tasks are dropped.
    fn finish(&mut self) {
        self.tasks.retain(|itt, _| self.running == Some(*itt));
        if let Some(task) = self.running.and_then(|itt| self.tasks.get_mut(&itt)) {
            task.aborted = true;
        }
        self.order.clear();
        self.held.clear();
        self.state = State::Closed;
        self.actions.push_back(Action::Close);
    }

    // ----- helpers -----

    fn reject(&mut self, header: Vec<u8>, reason: RejectReason) {
        debug!(?reason, "Reject");
        let reject = Reject {
            reason,
            stat_sn: self.next_stat_sn(),
            exp_cmd_sn: self.exp_cmd_sn,
            max_cmd_sn: self.max_cmd_sn,
            data_sn: 0,
            header,
        };
        self.send(reject.into());
    }

    fn send(&mut self, pdu: Pdu) {
        // After a logout or a cold reset nothing more goes out.
        if !self.is_closed() {
            self.actions.push_back(Action::Send(pdu));
        }
    }

    fn next_stat_sn(&mut self) -> u32 {
        let sn = self.stat_sn;
        self.stat_sn = self.stat_sn.wrapping_add(1);
        sn
    }

    /// The TTT the next R2T or ping gets (never the reserved value).
    fn next_ttt_value(&mut self) -> u32 {
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        self.next_ttt
    }

    fn alloc_ttt(&mut self) -> u32 {
        let ttt = self.next_ttt_value();
        self.next_ttt = self.next_ttt.wrapping_add(1);
        ttt
    }
}

/// CmdSN and I bit of a numbered PDU.
fn numbering(pdu: &Pdu) -> Option<(u32, bool)> {
    match pdu {
        Pdu::ScsiCommand(p) => Some((p.cmd_sn, p.immediate)),
        Pdu::NopOut(p) => Some((p.cmd_sn, p.immediate)),
        Pdu::TaskMgmtRequest(p) => Some((p.cmd_sn, p.immediate)),
        Pdu::TextRequest(p) => Some((p.cmd_sn, p.immediate)),
        Pdu::LogoutRequest(p) => Some((p.cmd_sn, p.immediate)),
        _ => None,
    }
}

fn cmd_cdb(cdb: &[u8; 16], extended: &[u8]) -> Vec<u8> {
    let mut full = cdb.to_vec();
    full.extend_from_slice(extended);
    full
}

/// Residual of a command whose data direction is out (or none): the CDB's data-out
/// against the EDTL of W (or of R, when the command moves nothing).
fn data_out_residual(transfer: DataTransfer, out_allowed: u32, in_allowed: u32) -> Residual {
    match transfer {
        DataTransfer::Out(len) => residual(len, out_allowed),
        DataTransfer::In(len) => residual(len, in_allowed),
        DataTransfer::None => residual(0, out_allowed.max(in_allowed)),
    }
}

/// Residual of a data-in (or no-data) command after it ran.
fn residual_for_in(wanted: u32, in_allowed: u32, out_allowed: u32) -> Residual {
    if wanted == 0 && in_allowed == 0 {
        residual(0, out_allowed)
    } else {
        residual(wanted, in_allowed)
    }
}

/// Checks and stores one Data-Out of a task; the error is the sense ASC/ASCQ.
fn accept_data(task: &mut Task, data: &DataOut) -> Result<(), ((u8, u8), &'static str)> {
    let len = len_u32(data.data.len());
    let end = data
        .buffer_offset
        .checked_add(len)
        .ok_or((ASC_DATA_OFFSET_ERROR, "offset + length overflows"))?;
    if data.buffer_offset != task.received {
        return Err((ASC_DATA_OFFSET_ERROR, "buffer offset out of order"));
    }
    if data.ttt == RESERVED_TAG {
        if task.unsolicited_done {
            return Err((ASC_DATA_PHASE_ERROR, "unsolicited data after the F bit"));
        }
        if data.data_sn != task.unsolicited_data_sn {
            return Err((ASC_DATA_PHASE_ERROR, "unsolicited DataSN out of sequence"));
        }
        if end > task.unsolicited_limit {
            return Err((
                ASC_TOO_MUCH_WRITE_DATA,
                "unsolicited data beyond FirstBurstLength",
            ));
        }
        task.unsolicited_data_sn = task.unsolicited_data_sn.wrapping_add(1);
        if data.final_ {
            task.unsolicited_done = true;
            task.next_r2t_offset = end;
        }
    } else {
        let Some(r2t) = task.r2ts.front_mut() else {
            return Err((ASC_DATA_PHASE_ERROR, "solicited data without an open R2T"));
        };
        if r2t.ttt != data.ttt {
            return Err((ASC_DATA_PHASE_ERROR, "TTT of no open R2T (or out of order)"));
        }
        if data.data_sn != r2t.next_data_sn {
            return Err((ASC_DATA_PHASE_ERROR, "DataSN out of sequence"));
        }
        let r2t_end = r2t.offset + r2t.length;
        if end > r2t_end {
            return Err((ASC_TOO_MUCH_WRITE_DATA, "data beyond the R2T"));
        }
        if data.final_ && end != r2t_end {
            return Err((ASC_DATA_PHASE_ERROR, "F bit before the end of the R2T"));
        }
        r2t.next_data_sn = r2t.next_data_sn.wrapping_add(1);
        r2t.received += len;
        if end == r2t_end {
            task.r2ts.pop_front();
        }
    }
    keep(task, data.buffer_offset, &data.data);
    task.received = end;
    if task.unsolicited_done && task.next_r2t_offset < task.received {
        task.next_r2t_offset = task.received;
    }
    Ok(())
}

/// Keeps the part of `bytes` (at `offset`) below the task's `needed`.
fn keep(task: &mut Task, offset: u32, bytes: &[u8]) {
    let room = task.needed.saturating_sub(offset) as usize;
    let take = bytes.len().min(room);
    task.data.extend_from_slice(&bytes[..take]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::login::TargetConfig;

    const LUN1: u64 = 0x0001_0000_0000_0000;

    fn params() -> SessionParams {
        SessionParams {
            initial_r2t: false,
            immediate_data: true,
            initiator_max_recv_data_segment_length: 1024,
            target_max_recv_data_segment_length: 8192,
            max_burst_length: 2048,
            first_burst_length: 1024,
            max_outstanding_r2t: 1,
            ..SessionParams::default()
        }
    }

    const IQN: &str = "iqn.2024-01.org.ferric:t";

    fn established(params: SessionParams, session_type: SessionType) -> Established {
        Established {
            params,
            session_type,
            initiator_name: "iqn.2024-01.org.ferric:i".into(),
            initiator_alias: None,
            target_name: (session_type == SessionType::Normal).then(|| IQN.to_string()),
            target_alias: None,
            target_portal_group_tag: Some(1),
            isid: [0x80, 0, 0, 0, 0, 1],
            tsih: 1,
            cid: 0,
            cmd_sn: 10,
            stat_sn: 100,
            max_cmd_sn: 10,
            chap_user: None,
        }
    }

    fn responder(established: &Established) -> TextResponder {
        let mut config = TargetConfig::new(vec![IQN.to_string()]);
        config.target_address = Some("127.0.0.1:3260".into());
        TextResponder::new(Arc::new(config), established)
    }

    fn config_of(established: &Established) -> ConnectionConfig {
        let mut config = ConnectionConfig::from_established(established);
        config.queue_depth = 4;
        config.max_transfer_bytes = 64 * 1024;
        config
    }

    fn conn_with(params: SessionParams, session_type: SessionType) -> TargetConnection {
        let established = established(params, session_type);
        TargetConnection::new(config_of(&established), responder(&established))
    }

    fn conn() -> TargetConnection {
        conn_with(params(), SessionType::Normal)
    }

    fn drain(c: &mut TargetConnection) -> Vec<Action> {
        std::iter::from_fn(|| c.poll_action()).collect()
    }

    fn pdus(actions: &[Action]) -> Vec<&Pdu> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn read10(itt: u32, cmd_sn: u32, blocks: u8, edtl: u32) -> ScsiCommand {
        let mut cmd = ScsiCommand {
            final_: true,
            read: true,
            lun: LUN1,
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn,
            ..ScsiCommand::default()
        };
        cmd.set_cdb(&[0x28, 0, 0, 0, 0, 0, 0, 0, blocks, 0]);
        cmd
    }

    fn write10(
        itt: u32,
        cmd_sn: u32,
        blocks: u8,
        edtl: u32,
        immediate: Vec<u8>,
        final_: bool,
    ) -> ScsiCommand {
        let mut cmd = ScsiCommand {
            final_,
            write: true,
            lun: LUN1,
            itt,
            expected_data_transfer_length: edtl,
            cmd_sn,
            data: immediate,
            ..ScsiCommand::default()
        };
        cmd.set_cdb(&[0x2A, 0, 0, 0, 0, 0, 0, 0, blocks, 0]);
        cmd
    }

    fn data_out(itt: u32, ttt: u32, data_sn: u32, offset: u32, len: usize, final_: bool) -> Pdu {
        DataOut {
            final_,
            lun: LUN1,
            itt,
            ttt,
            exp_stat_sn: 0,
            data_sn,
            buffer_offset: offset,
            data: vec![(offset / 512 + 1) as u8; len],
        }
        .into()
    }

    fn job(actions: &[Action]) -> ScsiJob {
        actions
            .iter()
            .find_map(|a| match a {
                Action::Execute(job) => Some(job.clone()),
                _ => None,
            })
            .expect("an Execute action")
    }

    fn response(pdu: &Pdu) -> &ScsiResponse {
        match pdu {
            Pdu::ScsiResponse(r) => r,
            other => panic!("expected a SCSI Response, got {other:?}"),
        }
    }

    #[test]
    fn read_is_split_by_segment_and_burst_with_status_collapsed() {
        let mut c = conn();
        c.receive(read10(7, 10, 6, 3072).into(), DataTransfer::In(3072));
        let actions = drain(&mut c);
        let j = job(&actions);
        assert_eq!((j.itt, j.lun, j.allocation), (7, LUN1, 3072));
        assert_eq!(j.cdb.len(), 16);
        assert_eq!(&j.cdb[..10], &[0x28, 0, 0, 0, 0, 0, 0, 0, 6, 0]);
        assert!(j.data_out.is_empty());
        let data: Vec<u8> = (0..3072u32).map(|i| i as u8).collect();
        c.complete(7, CommandResult::good(data.clone()));
        let out = drain(&mut c);
        let ins: Vec<&DataIn> = pdus(&out)
            .into_iter()
            .map(|p| match p {
                Pdu::DataIn(d) => d,
                other => panic!("{other:?}"),
            })
            .collect();
        // 1024-byte segments, 2048-byte bursts: F at 2048 and at the end.
        let shape: Vec<_> = ins
            .iter()
            .map(|d| (d.data_sn, d.buffer_offset, d.data.len(), d.final_, d.status))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 0, 1024, false, None),
                (1, 1024, 1024, true, None),
                (2, 2048, 1024, true, Some(STATUS_GOOD)),
            ]
        );
        assert_eq!(ins[2].stat_sn, 100);
        assert_eq!(ins[2].residual, Residual::None);
        assert_eq!(c.stat_sn(), 101);
        let joined: Vec<u8> = ins.iter().flat_map(|d| d.data.clone()).collect();
        assert_eq!(joined, data);
        // The wire bytes of the last Data-In: opcode 0x25, F|S, status GOOD.
        let bytes = Pdu::DataIn(ins[2].clone()).encode(Digests::NONE);
        assert_eq!(&bytes[..4], &[0x25, 0x81, 0x00, 0x00]);
    }

    #[test]
    fn read_residuals_against_edtl() {
        // libiscsi Read10Invalid: one block with EDTL 0, 10000, 200; two blocks with 512.
        let cases = [
            (1u8, 0u32, 512u32, 0usize, Residual::Overflow(512)),
            (1, 10000, 512, 512, Residual::Underflow(9488)),
            (1, 200, 512, 200, Residual::Overflow(312)),
            (2, 512, 1024, 512, Residual::Overflow(512)),
        ];
        for (blocks, edtl, wanted, sent, expected) in cases {
            let mut c = conn();
            c.receive(read10(1, 10, blocks, edtl).into(), DataTransfer::In(wanted));
            let j = job(&drain(&mut c));
            assert_eq!(j.allocation, edtl);
            let result = CommandResult {
                data_in: vec![0xAB; (wanted as usize).min(edtl as usize)],
                data_in_wanted: wanted,
                ..CommandResult::default()
            };
            c.complete(1, result);
            let out = drain(&mut c);
            let p = pdus(&out);
            let got: usize = p
                .iter()
                .map(|p| match p {
                    Pdu::DataIn(d) => d.data.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(got, sent, "edtl {edtl}");
            let res = match p.last().unwrap() {
                Pdu::DataIn(d) => d.residual,
                Pdu::ScsiResponse(r) => r.residual,
                other => panic!("{other:?}"),
            };
            assert_eq!(res, expected, "edtl {edtl}");
        }
    }

    #[test]
    fn check_condition_goes_in_a_response_with_sense_length_prefix() {
        let mut c = conn();
        c.receive(read10(3, 10, 1, 512).into(), DataTransfer::In(512));
        drain(&mut c);
        let sense = fixed_sense(SENSE_ILLEGAL_REQUEST, (0x21, 0x00));
        c.complete(3, CommandResult::check_condition(sense.clone()));
        let out = drain(&mut c);
        let p = pdus(&out);
        assert_eq!(p.len(), 1);
        let r = response(p[0]);
        assert_eq!(r.status, STATUS_CHECK_CONDITION);
        assert_eq!(r.residual, Residual::Underflow(512));
        let bytes = p[0].encode(Digests::NONE);
        assert_eq!(bytes[0], 0x21);
        assert_eq!(bytes[1], 0x80 | 0x02, "F and U");
        assert_eq!(bytes[3], STATUS_CHECK_CONDITION);
        assert_eq!(&bytes[5..8], &[0, 0, 20], "DataSegmentLength = 2 + 18");
        assert_eq!(&bytes[44..48], &512u32.to_be_bytes());
        assert_eq!(&bytes[48..50], &[0, 18]);
        assert_eq!(&bytes[50..68], &sense[..]);
        assert_eq!(sense[..3], [0x70, 0, 0x05]);
    }

    #[test]
    fn write_with_immediate_unsolicited_and_solicited_data() {
        let mut p = params();
        p.max_burst_length = 1024;
        p.max_outstanding_r2t = 1;
        let mut c = conn_with(p, SessionType::Normal);
        // 6 blocks = 3072 bytes: 512 immediate, 512 unsolicited (FirstBurst 1024), 2 R2Ts.
        c.receive(
            write10(5, 10, 6, 3072, vec![0; 512], false).into(),
            DataTransfer::Out(3072),
        );
        assert!(drain(&mut c).is_empty());
        c.receive(
            data_out(5, RESERVED_TAG, 0, 512, 512, true),
            DataTransfer::None,
        );
        let out = drain(&mut c);
        let r2t = match pdus(&out)[..] {
            [Pdu::R2t(r)] => r.clone(),
            ref other => panic!("{other:?}"),
        };
        assert_eq!(
            (
                r2t.itt,
                r2t.r2t_sn,
                r2t.buffer_offset,
                r2t.desired_data_transfer_length
            ),
            (5, 0, 1024, 1024)
        );
        assert_eq!(r2t.stat_sn, 100, "R2T carries StatSN without advancing it");
        c.receive(
            data_out(5, r2t.ttt, 0, 1024, 1024, true),
            DataTransfer::None,
        );
        let out = drain(&mut c);
        let r2t2 = match pdus(&out)[..] {
            [Pdu::R2t(r)] => r.clone(),
            ref other => panic!("{other:?}"),
        };
        assert_eq!(
            (
                r2t2.r2t_sn,
                r2t2.buffer_offset,
                r2t2.desired_data_transfer_length
            ),
            (1, 2048, 1024)
        );
        assert_ne!(r2t2.ttt, r2t.ttt);
        c.receive(
            data_out(5, r2t2.ttt, 0, 2048, 512, false),
            DataTransfer::None,
        );
        assert!(drain(&mut c).is_empty());
        c.receive(
            data_out(5, r2t2.ttt, 1, 2560, 512, true),
            DataTransfer::None,
        );
        let j = job(&drain(&mut c));
        assert_eq!(j.data_out.len(), 3072);
        let marks: Vec<u8> = j.data_out.chunks(512).map(|c| c[0]).collect();
        assert_eq!(
            marks,
            vec![0, 2, 3, 3, 5, 6],
            "immediate zeros, then each PDU's mark"
        );
        c.complete(5, CommandResult::good(Vec::new()));
        let out = drain(&mut c);
        let r = response(pdus(&out)[0]);
        assert_eq!(
            (r.status, r.residual, r.exp_data_sn, r.stat_sn),
            (STATUS_GOOD, Residual::None, 2, 100)
        );
    }

    #[test]
    fn write_residuals_and_kept_data() {
        // libiscsi Write10Residuals: (blocks, EDTL) -> (data kept, residual).
        let cases = [
            (1u8, 0u32, 0usize, Residual::Overflow(512)),
            (1, 1024, 1024, Residual::Underflow(512)),
            (1, 200, 200, Residual::Overflow(312)),
            (2, 512, 512, Residual::Overflow(512)),
        ];
        for (blocks, edtl, kept, expected) in cases {
            let mut c = conn();
            let immediate = vec![7; edtl.min(1024) as usize];
            c.receive(
                write10(9, 10, blocks, edtl, immediate, true).into(),
                DataTransfer::Out(u32::from(blocks) * 512),
            );
            let j = job(&drain(&mut c));
            assert_eq!(j.data_out.len(), kept, "edtl {edtl}");
            c.complete(9, CommandResult::good(Vec::new()));
            let out = drain(&mut c);
            assert_eq!(response(pdus(&out)[0]).residual, expected, "edtl {edtl}");
        }
    }

    #[test]
    fn read_cdb_sent_as_write_discards_data_and_overflows() {
        // libiscsi Read10Invalid's last case: READ10 flagged W with a block of data.
        let mut c = conn();
        let mut cmd = write10(4, 10, 1, 512, vec![0xA6; 512], true);
        cmd.set_cdb(&[0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        c.receive(cmd.into(), DataTransfer::In(512));
        let j = job(&drain(&mut c));
        assert_eq!((j.allocation, j.data_out.len()), (0, 0));
        c.complete(
            4,
            CommandResult {
                data_in_wanted: 512,
                ..CommandResult::default()
            },
        );
        let out = drain(&mut c);
        let r = response(pdus(&out)[0]);
        assert_eq!(
            (r.status, r.residual),
            (STATUS_GOOD, Residual::Overflow(512))
        );
    }

    #[test]
    fn datasn_errors_end_the_task_with_check_condition() {
        for (first_sn, second) in [
            (0u32, Some(0u32)),
            (27, None),
            (u32::MAX, None),
            (1, Some(0)),
        ] {
            let mut p = params();
            p.immediate_data = false;
            p.first_burst_length = 1024;
            let mut c = conn_with(p, SessionType::Normal);
            let blocks = if second.is_some() { 2 } else { 1 };
            let len = blocks * 512;
            c.receive(
                write10(1, 10, blocks as u8, len, Vec::new(), false).into(),
                DataTransfer::Out(len),
            );
            c.receive(
                data_out(1, RESERVED_TAG, first_sn, 0, 512, second.is_none()),
                DataTransfer::None,
            );
            if let Some(sn) = second {
                c.receive(
                    data_out(1, RESERVED_TAG, sn, 512, 512, true),
                    DataTransfer::None,
                );
            }
            let out = drain(&mut c);
            assert!(
                out.iter().all(|a| !matches!(a, Action::Execute(_))),
                "{first_sn}"
            );
            let p = pdus(&out);
            assert_eq!(p.len(), 1, "{first_sn}: {p:?}");
            let r = response(p[0]);
            assert_eq!(r.status, STATUS_CHECK_CONDITION);
            assert_eq!(&r.sense[..3], &[0x70, 0, SENSE_ABORTED_COMMAND]);
            assert_eq!((r.sense[12], r.sense[13]), ASC_DATA_PHASE_ERROR);
            assert_eq!(c.task_count(), 0);
            // The window reopened and the next command works.
            c.receive(read10(2, 11, 1, 512).into(), DataTransfer::In(512));
            assert_eq!(job(&drain(&mut c)).itt, 2);
        }
    }

    #[test]
    fn solicited_data_errors() {
        let mut p = params();
        p.initial_r2t = true;
        p.immediate_data = false;
        let mut c = conn_with(p, SessionType::Normal);
        c.receive(
            write10(1, 10, 2, 1024, Vec::new(), true).into(),
            DataTransfer::Out(1024),
        );
        let out = drain(&mut c);
        let ttt = match pdus(&out)[..] {
            [Pdu::R2t(r)] => r.ttt,
            ref other => panic!("{other:?}"),
        };
        // Wrong TTT.
        c.receive(data_out(1, ttt + 100, 0, 0, 512, false), DataTransfer::None);
        let out = drain(&mut c);
        assert_eq!(response(pdus(&out)[0]).status, STATUS_CHECK_CONDITION);
        // A straggler for the ended task is dropped quietly.
        c.receive(data_out(1, ttt, 1, 512, 512, true), DataTransfer::None);
        assert!(drain(&mut c).is_empty());

        c.receive(
            write10(2, 11, 2, 1024, Vec::new(), true).into(),
            DataTransfer::Out(1024),
        );
        let out = drain(&mut c);
        let ttt = match pdus(&out)[..] {
            [Pdu::R2t(r)] => r.ttt,
            ref other => panic!("{other:?}"),
        };
        // Offset gap.
        c.receive(data_out(2, ttt, 0, 512, 512, true), DataTransfer::None);
        let out = drain(&mut c);
        let r = response(pdus(&out)[0]);
        assert_eq!((r.sense[12], r.sense[13]), ASC_DATA_OFFSET_ERROR);
    }

    #[test]
    fn commands_outside_the_window_are_dropped_and_gaps_wait() {
        let mut c = conn();
        assert_eq!((c.exp_cmd_sn(), c.max_cmd_sn()), (10, 13));
        // Too high and too low: silently dropped (libiscsi iSCSICmdSnTooHigh/TooLow).
        c.receive(read10(1, 14, 1, 512).into(), DataTransfer::In(512));
        c.receive(read10(2, 9, 1, 512).into(), DataTransfer::In(512));
        assert!(drain(&mut c).is_empty());
        assert_eq!(c.exp_cmd_sn(), 10);
        // 11 waits for 10.
        c.receive(read10(3, 11, 1, 512).into(), DataTransfer::In(512));
        assert!(drain(&mut c).is_empty());
        c.receive(read10(4, 10, 1, 512).into(), DataTransfer::In(512));
        let out = drain(&mut c);
        assert_eq!(job(&out).itt, 4);
        assert_eq!(c.exp_cmd_sn(), 12);
        // Two tasks in progress of 4: MaxCmdSN = 12 - 1 + 2.
        assert_eq!(c.max_cmd_sn(), 13);
        c.complete(4, CommandResult::good(vec![1; 512]));
        let out = drain(&mut c);
        assert_eq!(job(&out).itt, 3, "then the held one, in order");
        assert_eq!(c.max_cmd_sn(), 14);
        let last_in = pdus(&out)
            .into_iter()
            .find_map(|p| match p {
                Pdu::DataIn(d) => Some(d.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!((last_in.exp_cmd_sn, last_in.max_cmd_sn), (12, 14));
    }

    #[test]
    fn window_bounds_tasks_and_never_shrinks() {
        let mut c = conn();
        for i in 0..4 {
            c.receive(
                write10(i, 10 + i, 1, 512, Vec::new(), true).into(),
                DataTransfer::Out(512),
            );
        }
        assert_eq!(c.task_count(), 4);
        assert_eq!(c.max_cmd_sn(), 13);
        // A fifth is beyond MaxCmdSN.
        c.receive(
            write10(9, 14, 1, 512, Vec::new(), true).into(),
            DataTransfer::Out(512),
        );
        assert_eq!(c.task_count(), 4);
    }

    #[test]
    fn immediate_commands_skip_ordering_and_task_set_full() {
        let mut c = conn();
        let mut cmd = read10(1, 10, 1, 512);
        cmd.immediate = true;
        c.receive(cmd.into(), DataTransfer::In(512));
        assert_eq!(job(&drain(&mut c)).itt, 1);
        assert_eq!(
            c.exp_cmd_sn(),
            10,
            "immediate commands do not advance ExpCmdSN"
        );
    }

    #[test]
    fn bidirectional_and_oversized_writes_are_refused_before_data() {
        let mut c = conn();
        let mut cmd = read10(1, 10, 1, 512);
        cmd.write = true;
        c.receive(cmd.into(), DataTransfer::In(512));
        let out = drain(&mut c);
        let r = response(pdus(&out)[0]);
        assert_eq!(r.status, STATUS_CHECK_CONDITION);
        assert_eq!((r.sense[2], r.sense[12]), (SENSE_ILLEGAL_REQUEST, 0x24));

        let big = 128 * 1024;
        c.receive(
            write10(2, 11, 0, big, Vec::new(), true).into(),
            DataTransfer::Out(big),
        );
        let out = drain(&mut c);
        let p = pdus(&out);
        assert_eq!(p.len(), 1, "no R2T: {p:?}");
        assert_eq!(response(p[0]).status, STATUS_CHECK_CONDITION);
    }

    #[test]
    fn write_budget_is_granted_in_order() {
        let mut p = params();
        p.initial_r2t = true;
        p.immediate_data = false;
        p.max_burst_length = 64 * 1024;
        let mut est = established(p, SessionType::Normal);
        est.cmd_sn = 1;
        est.max_cmd_sn = 1;
        let mut config = config_of(&est);
        config.write_budget = 64 * 1024;
        let mut c = TargetConnection::new(config, responder(&est));
        c.receive(
            write10(1, 1, 0, 65536, Vec::new(), true).into(),
            DataTransfer::Out(65536),
        );
        c.receive(
            write10(2, 2, 0, 65536, Vec::new(), true).into(),
            DataTransfer::Out(65536),
        );
        let out = drain(&mut c);
        let r2ts: Vec<u32> = pdus(&out)
            .iter()
            .filter_map(|p| match p {
                Pdu::R2t(r) => Some(r.itt),
                _ => None,
            })
            .collect();
        assert_eq!(r2ts, vec![1], "the second waits for budget");
        let ttt = match pdus(&out)[0] {
            Pdu::R2t(r) => r.ttt,
            _ => unreachable!(),
        };
        for i in 0..8u32 {
            c.receive(
                data_out(1, ttt, i, i * 8192, 8192, i == 7),
                DataTransfer::None,
            );
        }
        let out = drain(&mut c);
        assert_eq!(job(&out).itt, 1);
        assert_eq!(c.buffered_bytes(), 0, "the data went to the job");
        c.complete(1, CommandResult::good(Vec::new()));
        let out = drain(&mut c);
        let kinds: Vec<u8> = pdus(&out).iter().map(|p| p.opcode().to_u8()).collect();
        assert_eq!(
            kinds,
            vec![0x21, 0x31],
            "response, then the second task's R2T"
        );
    }

    #[test]
    fn nop_out_ping_and_target_ping() {
        let mut c = conn();
        let nop = NopOut {
            itt: 0x42,
            ttt: RESERVED_TAG,
            cmd_sn: 10,
            data: b"ping".to_vec(),
            ..NopOut::default()
        };
        c.receive(nop.into(), DataTransfer::None);
        let out = drain(&mut c);
        match pdus(&out)[..] {
            [Pdu::NopIn(n)] => {
                assert_eq!(
                    (n.itt, n.ttt, n.stat_sn, n.exp_cmd_sn),
                    (0x42, RESERVED_TAG, 100, 11)
                );
                assert_eq!(n.data, b"ping");
            }
            ref other => panic!("{other:?}"),
        }
        // No reply wanted.
        let quiet = NopOut {
            immediate: true,
            itt: RESERVED_TAG,
            ttt: RESERVED_TAG,
            cmd_sn: 11,
            ..NopOut::default()
        };
        c.receive(quiet.into(), DataTransfer::None);
        assert!(drain(&mut c).is_empty());
        // Target ping.
        assert!(c.ping());
        assert!(!c.ping());
        let out = drain(&mut c);
        let ttt = match pdus(&out)[..] {
            [Pdu::NopIn(n)] => {
                assert_eq!((n.itt, n.stat_sn), (RESERVED_TAG, 101));
                n.ttt
            }
            ref other => panic!("{other:?}"),
        };
        assert_ne!(ttt, RESERVED_TAG);
        assert_eq!(c.stat_sn(), 101, "a target ping does not advance StatSN");
        let answer = NopOut {
            immediate: true,
            itt: RESERVED_TAG,
            ttt,
            cmd_sn: 11,
            ..NopOut::default()
        };
        c.receive(answer.into(), DataTransfer::None);
        assert!(!c.ping_outstanding());
        assert!(drain(&mut c).is_empty());
    }

    fn tmf(function: TmfFunction, itt: u32, referenced: u32, ref_cmd_sn: u32, cmd_sn: u32) -> Pdu {
        TaskMgmtRequest {
            immediate: true,
            function,
            lun: LUN1,
            itt,
            referenced_task_tag: referenced,
            cmd_sn,
            ref_cmd_sn,
            ..TaskMgmtRequest::default()
        }
        .into()
    }

    fn tmf_response(actions: &[Action]) -> TaskMgmtResponse {
        pdus(actions)
            .into_iter()
            .find_map(|p| match p {
                Pdu::TaskMgmtResponse(r) => Some(r.clone()),
                _ => None,
            })
            .expect("a TMF response")
    }

    #[test]
    fn abort_task_of_waiting_running_and_unknown_tasks() {
        let mut p = params();
        p.initial_r2t = true;
        p.immediate_data = false;
        let mut c = conn_with(p, SessionType::Normal);
        // A write waiting for its R2T data: aborted at once, its data then dropped.
        c.receive(
            write10(1, 10, 1, 512, Vec::new(), true).into(),
            DataTransfer::Out(512),
        );
        drain(&mut c);
        c.receive(
            tmf(TmfFunction::AbortTask, 50, 1, 10, 11),
            DataTransfer::None,
        );
        let out = drain(&mut c);
        assert_eq!(tmf_response(&out).response, TmfResponse::FunctionComplete);
        assert_eq!(c.task_count(), 0);
        // Unknown task.
        c.receive(
            tmf(TmfFunction::AbortTask, 51, 99, 5, 11),
            DataTransfer::None,
        );
        assert_eq!(
            tmf_response(&drain(&mut c)).response,
            TmfResponse::TaskDoesNotExist
        );
        // A running command: the answer waits for it and its result is dropped.
        c.receive(read10(2, 11, 1, 512).into(), DataTransfer::In(512));
        assert_eq!(job(&drain(&mut c)).itt, 2);
        c.receive(
            tmf(TmfFunction::AbortTask, 52, 2, 11, 12),
            DataTransfer::None,
        );
        assert!(drain(&mut c).is_empty());
        c.complete(2, CommandResult::good(vec![0; 512]));
        let out = drain(&mut c);
        assert_eq!(pdus(&out).len(), 1, "only the TMF response: {out:?}");
        assert_eq!(tmf_response(&out).response, TmfResponse::FunctionComplete);
    }

    #[test]
    fn lun_reset_and_cold_reset() {
        let mut c = conn();
        c.receive(read10(2, 10, 1, 512).into(), DataTransfer::In(512));
        drain(&mut c);
        c.receive(
            tmf(TmfFunction::LogicalUnitReset, 60, RESERVED_TAG, 0, 11),
            DataTransfer::None,
        );
        assert!(drain(&mut c).is_empty(), "waits for the running command");
        c.complete(2, CommandResult::good(vec![0; 512]));
        let out = drain(&mut c);
        assert_eq!(out[0], Action::ResetLun(LUN1));
        assert_eq!(tmf_response(&out).response, TmfResponse::FunctionComplete);

        c.receive(
            tmf(TmfFunction::TargetColdReset, 61, RESERVED_TAG, 0, 11),
            DataTransfer::None,
        );
        let out = drain(&mut c);
        assert_eq!(out[0], Action::ResetTarget);
        assert_eq!(tmf_response(&out).response, TmfResponse::FunctionComplete);
        assert_eq!(out.last(), Some(&Action::Close));
        assert!(c.is_closed());

        let mut c = conn();
        c.receive(
            tmf(TmfFunction::ClearAca, 62, RESERVED_TAG, 0, 10),
            DataTransfer::None,
        );
        assert_eq!(
            tmf_response(&drain(&mut c)).response,
            TmfResponse::FunctionNotSupported
        );
    }

    #[test]
    fn send_targets_in_discovery_and_normal_sessions() {
        let mut c = conn_with(params(), SessionType::Discovery);
        let text = TextRequest {
            final_: true,
            itt: 3,
            ttt: RESERVED_TAG,
            cmd_sn: 10,
            data: b"SendTargets=All\0".to_vec(),
            ..TextRequest::default()
        };
        c.receive(text.into(), DataTransfer::None);
        let out = drain(&mut c);
        match pdus(&out)[..] {
            [Pdu::TextResponse(t)] => {
                assert!(t.final_);
                assert_eq!(t.ttt, RESERVED_TAG);
                assert_eq!(
                    t.data,
                    b"TargetName=iqn.2024-01.org.ferric:t\0TargetAddress=127.0.0.1:3260,1\0"
                );
            }
            ref other => panic!("{other:?}"),
        }
        // SCSI commands are refused in a discovery session.
        c.receive(read10(1, 11, 1, 512).into(), DataTransfer::In(512));
        match pdus(&drain(&mut c))[..] {
            [Pdu::Reject(r)] => {
                assert_eq!(r.reason, RejectReason::ProtocolError);
                assert_eq!(r.header.len(), 48);
                assert_eq!(r.header[0] & 0x3F, 0x01);
            }
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn logout_snack_and_digest_errors() {
        let mut c = conn();
        let snack = crate::pdu::Snack {
            itt: 5,
            ..crate::pdu::Snack::default()
        };
        c.receive(snack.into(), DataTransfer::None);
        match pdus(&drain(&mut c))[..] {
            [Pdu::Reject(r)] => assert_eq!(r.reason, RejectReason::SnackReject),
            ref other => panic!("{other:?}"),
        }
        // Data digest error on a Data-Out: Reject 0x02, then CHECK CONDITION.
        c.receive(
            write10(1, 10, 2, 1024, vec![0; 512], false).into(),
            DataTransfer::Out(1024),
        );
        drain(&mut c);
        let bad = DataOut {
            final_: true,
            itt: 1,
            ttt: RESERVED_TAG,
            buffer_offset: 512,
            data: vec![0; 512],
            ..DataOut::default()
        };
        c.receive_corrupt(bad.into());
        let out = drain(&mut c);
        let p = pdus(&out);
        match p[..] {
            [Pdu::Reject(r), Pdu::ScsiResponse(s)] => {
                assert_eq!(r.reason, RejectReason::DataDigestError);
                assert_eq!((s.sense[12], s.sense[13]), ASC_PROTOCOL_SERVICE_CRC_ERROR);
            }
            ref other => panic!("{other:?}"),
        }
        let logout = LogoutRequest {
            immediate: true,
            reason: LogoutReason::CloseSession,
            itt: 9,
            cmd_sn: 11,
            ..LogoutRequest::default()
        };
        c.receive(logout.into(), DataTransfer::None);
        let out = drain(&mut c);
        match &out[..] {
            [Action::Send(Pdu::LogoutResponse(r)), Action::Close] => {
                assert_eq!(
                    (r.itt, r.response),
                    (9, LogoutResponseCode::ClosedSuccessfully)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(c.is_closed());
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_lt(u32::MAX, 0));
        assert!(serial_lt(5, 6));
        assert!(!serial_lt(6, 5));
        assert!(serial_le(7, 7));
        let mut c = conn();
        c.exp_cmd_sn = u32::MAX;
        c.max_cmd_sn = u32::MAX;
        c.update_window();
        assert_eq!(c.max_cmd_sn(), 2);
        c.receive(read10(1, u32::MAX, 1, 512).into(), DataTransfer::In(512));
        assert_eq!(c.exp_cmd_sn(), 0);
    }
}
