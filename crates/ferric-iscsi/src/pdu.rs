//! The iSCSI PDUs of RFC 7143 section 11: the 48-byte basic header segment (BHS), the
//! additional header segments (AHS) of a SCSI Command, the data segment with its padding,
//! and the CRC32C header and data digests.
//!
//! Reading from a stream is two steps: read [`BHS_LEN`] bytes, ask [`remaining_len`] how
//! many more the PDU takes (it refuses a DataSegmentLength above the caller's limit, so a
//! peer cannot make us allocate 16 MiB), read those, then [`Pdu::decode`] the whole frame.
//! [`Pdu::decode_from`] does both on a buffer that may hold less or more than one PDU.
//!
//! Every PDU has its own struct with public fields and a `Default`, so callers build one
//! with `..Default::default()`. [`Pdu::encode`] writes the PDU with padding and digests;
//! [`DataIn::encode_with`] and [`DataOut::encode_with`] frame a borrowed data slice
//! without copying it.
//!
//! Decoding ignores reserved fields and never panics; every length and offset from the
//! wire is checked.

use std::borrow::Cow;

use thiserror::Error;

use crate::digest::{Crc32c, DigestType, Digests, DIGEST_LEN};

/// Length of the basic header segment.
pub const BHS_LEN: usize = 48;
/// The largest DataSegmentLength the 24-bit field can carry (and the largest
/// MaxRecvDataSegmentLength RFC 7143 allows).
pub const MAX_DATA_SEGMENT_LEN: u32 = 0x00FF_FFFF;
/// The data segment limit during login (RFC 7143 section 6.2: 8192 until negotiated).
pub const LOGIN_MAX_DATA_SEGMENT_LEN: u32 = 8192;
/// The reserved tag value: "no task" for an ITT, "no transfer" for a TTT.
pub const RESERVED_TAG: u32 = 0xFFFF_FFFF;
/// The only iSCSI version there is (Version-max, Version-min, Version-active).
pub const ISCSI_VERSION: u8 = 0x00;
/// The longest extended CDB the encoder writes: TotalAHSLength allows 1020 bytes of AHS,
/// 4 of them the Extended CDB AHS header (8 fewer again with a bidirectional read length).
pub const MAX_EXTENDED_CDB_LEN: usize = 1016;

const IMMEDIATE_BIT: u8 = 0x40;
const OPCODE_MASK: u8 = 0x3F;
const FINAL_BIT: u8 = 0x80;
const CONTINUE_BIT: u8 = 0x40;
const AHS_TYPE_EXTENDED_CDB: u8 = 1;
const AHS_TYPE_BIDI_READ_LENGTH: u8 = 2;

/// The 6-byte initiator session identifier (RFC 7143 section 11.12.5).
pub type Isid = [u8; 6];

/// The opcodes of RFC 7143 section 11.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x00, initiator.
    NopOut,
    /// 0x01, initiator.
    ScsiCommand,
    /// 0x02, initiator.
    TaskMgmtRequest,
    /// 0x03, initiator.
    LoginRequest,
    /// 0x04, initiator.
    TextRequest,
    /// 0x05, initiator.
    DataOut,
    /// 0x06, initiator.
    LogoutRequest,
    /// 0x10, initiator.
    Snack,
    /// 0x20, target.
    NopIn,
    /// 0x21, target.
    ScsiResponse,
    /// 0x22, target.
    TaskMgmtResponse,
    /// 0x23, target.
    LoginResponse,
    /// 0x24, target.
    TextResponse,
    /// 0x25, target.
    DataIn,
    /// 0x26, target.
    LogoutResponse,
    /// 0x31, target.
    R2t,
    /// 0x32, target.
    AsyncMessage,
    /// 0x3f, target.
    Reject,
}

impl Opcode {
    /// The opcode for a 6-bit value; `None` for reserved and vendor-specific ones.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value & OPCODE_MASK {
            0x00 => Opcode::NopOut,
            0x01 => Opcode::ScsiCommand,
            0x02 => Opcode::TaskMgmtRequest,
            0x03 => Opcode::LoginRequest,
            0x04 => Opcode::TextRequest,
            0x05 => Opcode::DataOut,
            0x06 => Opcode::LogoutRequest,
            0x10 => Opcode::Snack,
            0x20 => Opcode::NopIn,
            0x21 => Opcode::ScsiResponse,
            0x22 => Opcode::TaskMgmtResponse,
            0x23 => Opcode::LoginResponse,
            0x24 => Opcode::TextResponse,
            0x25 => Opcode::DataIn,
            0x26 => Opcode::LogoutResponse,
            0x31 => Opcode::R2t,
            0x32 => Opcode::AsyncMessage,
            0x3F => Opcode::Reject,
            _ => return None,
        })
    }

    /// The 6-bit value.
    pub fn to_u8(self) -> u8 {
        match self {
            Opcode::NopOut => 0x00,
            Opcode::ScsiCommand => 0x01,
            Opcode::TaskMgmtRequest => 0x02,
            Opcode::LoginRequest => 0x03,
            Opcode::TextRequest => 0x04,
            Opcode::DataOut => 0x05,
            Opcode::LogoutRequest => 0x06,
            Opcode::Snack => 0x10,
            Opcode::NopIn => 0x20,
            Opcode::ScsiResponse => 0x21,
            Opcode::TaskMgmtResponse => 0x22,
            Opcode::LoginResponse => 0x23,
            Opcode::TextResponse => 0x24,
            Opcode::DataIn => 0x25,
            Opcode::LogoutResponse => 0x26,
            Opcode::R2t => 0x31,
            Opcode::AsyncMessage => 0x32,
            Opcode::Reject => 0x3F,
        }
    }

    /// Whether an initiator sends this PDU (a target receives it).
    pub fn is_initiator(self) -> bool {
        self.to_u8() & 0x20 == 0
    }
}

/// Defines a one-byte code enum with named values, a catch-all `Other`, and the first
/// variant as the default.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $(#[$fmeta:meta])* $first:ident = $fval:literal
            $(, $(#[$vmeta:meta])* $variant:ident = $val:literal)* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[$fmeta])* $first,
            $($(#[$vmeta])* $variant,)*
            /// A value without a name here (reserved or vendor-specific).
            Other(u8),
        }

        impl $name {
            /// The code for a wire value.
            pub fn from_u8(value: u8) -> Self {
                match value {
                    $fval => $name::$first,
                    $($val => $name::$variant,)*
                    other => $name::Other(other),
                }
            }

            /// The wire value.
            pub fn to_u8(self) -> u8 {
                match self {
                    $name::$first => $fval,
                    $($name::$variant => $val,)*
                    $name::Other(value) => value,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$first
            }
        }
    };
}

code_enum! {
    /// The iSCSI service response of a SCSI Response (RFC 7143 section 11.4.3).
    ServiceResponse {
        /// 0x00: the command completed at the target (look at the status).
        CommandCompleted = 0x00,
        /// 0x01: target failure.
        TargetFailure = 0x01,
    }
}

code_enum! {
    /// Task management functions (RFC 7143 section 11.5.1).
    TmfFunction {
        /// 1
        AbortTask = 1,
        /// 2
        AbortTaskSet = 2,
        /// 3
        ClearAca = 3,
        /// 4
        ClearTaskSet = 4,
        /// 5
        LogicalUnitReset = 5,
        /// 6
        TargetWarmReset = 6,
        /// 7
        TargetColdReset = 7,
        /// 8
        TaskReassign = 8,
    }
}

code_enum! {
    /// Task management responses (RFC 7143 section 11.6.1).
    TmfResponse {
        /// 0
        FunctionComplete = 0,
        /// 1
        TaskDoesNotExist = 1,
        /// 2
        LunDoesNotExist = 2,
        /// 3
        TaskStillAllegiant = 3,
        /// 4
        TaskAllegianceReassignmentNotSupported = 4,
        /// 5
        FunctionNotSupported = 5,
        /// 6
        FunctionAuthorizationFailed = 6,
        /// 255
        FunctionRejected = 255,
    }
}

code_enum! {
    /// Logout reasons (RFC 7143 section 11.14.1).
    LogoutReason {
        /// 0: close the session.
        CloseSession = 0,
        /// 1: close this connection.
        CloseConnection = 1,
        /// 2: remove the connection for recovery.
        RemoveConnectionForRecovery = 2,
    }
}

code_enum! {
    /// Logout responses (RFC 7143 section 11.15.1).
    LogoutResponseCode {
        /// 0
        ClosedSuccessfully = 0,
        /// 1
        CidNotFound = 1,
        /// 2
        RecoveryNotSupported = 2,
        /// 3
        CleanupFailed = 3,
    }
}

code_enum! {
    /// Asynchronous events (RFC 7143 section 11.9.1).
    AsyncEvent {
        /// 0: a SCSI asynchronous event (sense data in the data segment).
        ScsiAsyncEvent = 0,
        /// 1: the target asks for a logout.
        LogoutRequested = 1,
        /// 2: the target will drop a connection.
        ConnectionDrop = 2,
        /// 3: the target will drop all connections of the session.
        SessionDrop = 3,
        /// 4: the target asks for parameter negotiation.
        NegotiationRequest = 4,
        /// 5: the target asks to terminate all active tasks (task termination).
        TaskTermination = 5,
        /// 255: vendor specific.
        VendorSpecific = 255,
    }
}

code_enum! {
    /// SNACK types (RFC 7143 section 11.16.1).
    SnackType {
        /// 0: Data/R2T SNACK.
        DataR2t = 0,
        /// 1: Status SNACK.
        Status = 1,
        /// 2: DataACK.
        DataAck = 2,
        /// 3: R-Data SNACK.
        RData = 3,
    }
}

code_enum! {
    /// Reject reasons (RFC 7143 section 11.17.1).
    RejectReason {
        /// 0x02: data (payload) digest error; the PDU's data was discarded.
        DataDigestError = 0x02,
        /// 0x01: reserved.
        Reserved = 0x01,
        /// 0x03: SNACK reject.
        SnackReject = 0x03,
        /// 0x04: protocol error.
        ProtocolError = 0x04,
        /// 0x05: command not supported.
        CommandNotSupported = 0x05,
        /// 0x06: immediate command rejected, too many immediate commands.
        ImmediateCommandReject = 0x06,
        /// 0x07: task in progress.
        TaskInProgress = 0x07,
        /// 0x08: invalid data ack.
        InvalidDataAck = 0x08,
        /// 0x09: invalid PDU field.
        InvalidPduField = 0x09,
        /// 0x0a: long operation reject, out of resources.
        LongOperationReject = 0x0A,
        /// 0x0b: deprecated (negotiation reset).
        NegotiationReset = 0x0B,
        /// 0x0c: waiting for logout.
        WaitingForLogout = 0x0C,
    }
}

/// Task attributes of a SCSI Command (RFC 7143 section 11.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TaskAttribute {
    /// 0
    Untagged,
    /// 1
    #[default]
    Simple,
    /// 2
    Ordered,
    /// 3
    HeadOfQueue,
    /// 4
    Aca,
}

impl TaskAttribute {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0 => TaskAttribute::Untagged,
            1 => TaskAttribute::Simple,
            2 => TaskAttribute::Ordered,
            3 => TaskAttribute::HeadOfQueue,
            4 => TaskAttribute::Aca,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            TaskAttribute::Untagged => 0,
            TaskAttribute::Simple => 1,
            TaskAttribute::Ordered => 2,
            TaskAttribute::HeadOfQueue => 3,
            TaskAttribute::Aca => 4,
        }
    }
}

/// A login stage (CSG and NSG, RFC 7143 section 11.12.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// 0: security negotiation.
    #[default]
    Security,
    /// 1: login operational negotiation.
    Operational,
    /// 3: full feature phase.
    FullFeature,
}

impl Stage {
    fn from_bits(bits: u8) -> Option<Self> {
        match bits & 0x03 {
            0 => Some(Stage::Security),
            1 => Some(Stage::Operational),
            3 => Some(Stage::FullFeature),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Stage::Security => 0,
            Stage::Operational => 1,
            Stage::FullFeature => 3,
        }
    }
}

/// The status of a Login Response (RFC 7143 section 11.13.5), with the words an operator
/// reads in its `Display`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LoginStatus {
    /// 0x0000
    #[default]
    Success,
    /// 0x0101
    TargetMovedTemporarily,
    /// 0x0102
    TargetMovedPermanently,
    /// 0x0200
    InitiatorError,
    /// 0x0201
    AuthenticationFailure,
    /// 0x0202
    AuthorizationFailure,
    /// 0x0203
    NotFound,
    /// 0x0204
    TargetRemoved,
    /// 0x0205
    UnsupportedVersion,
    /// 0x0206
    TooManyConnections,
    /// 0x0207
    MissingParameter,
    /// 0x0208
    CantIncludeInSession,
    /// 0x0209
    SessionTypeNotSupported,
    /// 0x020a
    SessionDoesNotExist,
    /// 0x020b
    InvalidDuringLogin,
    /// 0x0300
    TargetError,
    /// 0x0301
    ServiceUnavailable,
    /// 0x0302
    OutOfResources,
    /// Any other class and detail.
    Other {
        /// Status-Class.
        class: u8,
        /// Status-Detail.
        detail: u8,
    },
}

const LOGIN_STATUS_CODES: [(LoginStatus, u16); 18] = [
    (LoginStatus::Success, 0x0000),
    (LoginStatus::TargetMovedTemporarily, 0x0101),
    (LoginStatus::TargetMovedPermanently, 0x0102),
    (LoginStatus::InitiatorError, 0x0200),
    (LoginStatus::AuthenticationFailure, 0x0201),
    (LoginStatus::AuthorizationFailure, 0x0202),
    (LoginStatus::NotFound, 0x0203),
    (LoginStatus::TargetRemoved, 0x0204),
    (LoginStatus::UnsupportedVersion, 0x0205),
    (LoginStatus::TooManyConnections, 0x0206),
    (LoginStatus::MissingParameter, 0x0207),
    (LoginStatus::CantIncludeInSession, 0x0208),
    (LoginStatus::SessionTypeNotSupported, 0x0209),
    (LoginStatus::SessionDoesNotExist, 0x020A),
    (LoginStatus::InvalidDuringLogin, 0x020B),
    (LoginStatus::TargetError, 0x0300),
    (LoginStatus::ServiceUnavailable, 0x0301),
    (LoginStatus::OutOfResources, 0x0302),
];

impl LoginStatus {
    /// The status for a Status-Class and Status-Detail.
    pub fn from_parts(class: u8, detail: u8) -> Self {
        let code = u16::from_be_bytes([class, detail]);
        LOGIN_STATUS_CODES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(s, _)| *s)
            .unwrap_or(LoginStatus::Other { class, detail })
    }

    /// Status-Class and Status-Detail.
    pub fn parts(self) -> (u8, u8) {
        if let LoginStatus::Other { class, detail } = self {
            return (class, detail);
        }
        let code = LOGIN_STATUS_CODES
            .iter()
            .find(|(s, _)| *s == self)
            .map(|(_, c)| *c)
            .unwrap_or(0);
        let [class, detail] = code.to_be_bytes();
        (class, detail)
    }

    /// Status-Class: 0 success, 1 redirection, 2 initiator error, 3 target error.
    pub fn class(self) -> u8 {
        self.parts().0
    }

    /// Whether the login may go on.
    pub fn is_success(self) -> bool {
        self.class() == 0
    }

    /// Whether the target redirects the initiator (TargetAddress tells where).
    pub fn is_redirect(self) -> bool {
        self.class() == 1
    }

    /// What the status means, in words.
    pub fn description(self) -> &'static str {
        match self {
            LoginStatus::Success => "success",
            LoginStatus::TargetMovedTemporarily => "target moved temporarily",
            LoginStatus::TargetMovedPermanently => "target moved permanently",
            LoginStatus::InitiatorError => "initiator error (the target found the login malformed)",
            LoginStatus::AuthenticationFailure => "authentication failed",
            LoginStatus::AuthorizationFailure => "authorization failure (initiator not allowed)",
            LoginStatus::NotFound => "target not found",
            LoginStatus::TargetRemoved => "target removed",
            LoginStatus::UnsupportedVersion => "unsupported iSCSI version",
            LoginStatus::TooManyConnections => "too many connections",
            LoginStatus::MissingParameter => "missing parameter",
            LoginStatus::CantIncludeInSession => "cannot include the connection in the session",
            LoginStatus::SessionTypeNotSupported => "session type not supported",
            LoginStatus::SessionDoesNotExist => "session does not exist",
            LoginStatus::InvalidDuringLogin => "request invalid during login",
            LoginStatus::TargetError => "target error",
            LoginStatus::ServiceUnavailable => "service unavailable",
            LoginStatus::OutOfResources => "target out of resources",
            LoginStatus::Other { class: 1, .. } => "redirection",
            LoginStatus::Other { class: 2, .. } => "initiator error",
            LoginStatus::Other { class: 3, .. } => "target error",
            LoginStatus::Other { .. } => "unknown login status",
        }
    }
}

impl std::fmt::Display for LoginStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (class, detail) = self.parts();
        write!(f, "{} (0x{class:02x}{detail:02x})", self.description())
    }
}

/// A residual count with its over- or underflow flag (RFC 7143 section 11.4.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Residual {
    /// All expected data was transferred.
    #[default]
    None,
    /// Less data was transferred than expected, by this many bytes.
    Underflow(u32),
    /// More data was needed than expected, by this many bytes.
    Overflow(u32),
}

impl Residual {
    /// Flag bits and count, with the overflow bit at `overflow_bit` and underflow at
    /// `overflow_bit >> 1`.
    fn encode(self, overflow_bit: u8) -> (u8, u32) {
        match self {
            Residual::None => (0, 0),
            Residual::Underflow(n) => (overflow_bit >> 1, n),
            Residual::Overflow(n) => (overflow_bit, n),
        }
    }

    fn decode(
        opcode: Opcode,
        flags: u8,
        overflow_bit: u8,
        count: u32,
    ) -> Result<Self, DecodeError> {
        let over = flags & overflow_bit != 0;
        let under = flags & (overflow_bit >> 1) != 0;
        match (over, under) {
            (false, false) => Ok(Residual::None),
            (true, false) => Ok(Residual::Overflow(count)),
            (false, true) => Ok(Residual::Underflow(count)),
            (true, true) => Err(DecodeError::InvalidField {
                opcode: opcode.to_u8(),
                field: "residual overflow and underflow both set",
                value: u32::from(flags),
            }),
        }
    }

    /// The count, zero for [`Residual::None`].
    pub fn count(self) -> u32 {
        match self {
            Residual::None => 0,
            Residual::Underflow(n) | Residual::Overflow(n) => n,
        }
    }
}

/// Why a PDU could not be framed or decoded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a BHS.
    #[error("PDU truncated: {got} bytes, a PDU needs at least {needed}")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The frame is not exactly as long as its header says.
    #[error("PDU is {actual} bytes but its header describes {expected}")]
    Length {
        /// Length from the header.
        expected: usize,
        /// Length of the frame given.
        actual: usize,
    },
    /// A reserved or vendor-specific opcode.
    #[error("unsupported opcode 0x{opcode:02x}")]
    UnknownOpcode {
        /// The 6-bit opcode.
        opcode: u8,
    },
    /// DataSegmentLength above the limit the caller gave (the negotiated
    /// MaxRecvDataSegmentLength, or 8192 during login).
    #[error("opcode 0x{opcode:02x}: DataSegmentLength {length} exceeds the limit {max}")]
    DataSegmentTooLong {
        /// The 6-bit opcode.
        opcode: u8,
        /// DataSegmentLength.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// The header digest does not match: nothing in the header can be trusted.
    #[error("header digest mismatch: computed 0x{computed:08x}, received 0x{received:08x}")]
    HeaderDigest {
        /// CRC32C of the header.
        computed: u32,
        /// The digest on the wire.
        received: u32,
    },
    /// The data digest does not match; the header is sound (a target answers with a
    /// Reject, reason 0x02, and keeps the connection).
    #[error(
        "data digest mismatch on opcode 0x{opcode:02x} ITT 0x{itt:08x}: computed 0x{computed:08x}, received 0x{received:08x}"
    )]
    DataDigest {
        /// The 6-bit opcode.
        opcode: u8,
        /// Initiator task tag of the PDU.
        itt: u32,
        /// CRC32C of data and padding.
        computed: u32,
        /// The digest on the wire.
        received: u32,
    },
    /// A header field has a value the PDU cannot have.
    #[error("opcode 0x{opcode:02x}: invalid {field} (0x{value:x})")]
    InvalidField {
        /// The 6-bit opcode.
        opcode: u8,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// The additional header segments are malformed.
    #[error("opcode 0x{opcode:02x}: bad AHS: {detail}")]
    BadAhs {
        /// The 6-bit opcode.
        opcode: u8,
        /// What is wrong.
        detail: &'static str,
    },
    /// The data segment is malformed for this PDU.
    #[error("opcode 0x{opcode:02x}: bad data segment: {detail}")]
    BadData {
        /// The 6-bit opcode.
        opcode: u8,
        /// What is wrong.
        detail: &'static str,
    },
}

impl DecodeError {
    /// The Reject reason a target answers this error with, if the connection can go on
    /// after it. A header digest error gives `None` (the length fields cannot be trusted:
    /// drop the connection). [`DecodeError::DataSegmentTooLong`] gives
    /// [`RejectReason::ProtocolError`], but the data was not read, so the connection
    /// must be closed after sending the Reject.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self {
            DecodeError::DataDigest { .. } => Some(RejectReason::DataDigestError),
            DecodeError::UnknownOpcode { .. } => Some(RejectReason::CommandNotSupported),
            DecodeError::InvalidField { .. }
            | DecodeError::BadAhs { .. }
            | DecodeError::BadData { .. } => Some(RejectReason::InvalidPduField),
            DecodeError::DataSegmentTooLong { .. } => Some(RejectReason::ProtocolError),
            DecodeError::HeaderDigest { .. }
            | DecodeError::Truncated { .. }
            | DecodeError::Length { .. } => None,
        }
    }
}

/// What the decoder needs to know about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireConfig {
    /// Digests in force (none during login).
    pub digests: Digests,
    /// The largest data segment accepted: this end's MaxRecvDataSegmentLength.
    pub max_data_segment_len: u32,
}

impl WireConfig {
    /// The login phase: no digests, 8192-byte data segments.
    pub const LOGIN: WireConfig = WireConfig {
        digests: Digests::NONE,
        max_data_segment_len: LOGIN_MAX_DATA_SEGMENT_LEN,
    };

    /// A configuration for the full feature phase.
    pub fn new(digests: Digests, max_data_segment_len: u32) -> Self {
        Self {
            digests,
            max_data_segment_len,
        }
    }
}

/// The fields of a BHS needed before decoding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BhsSummary {
    /// The raw 6-bit opcode (may be reserved).
    pub opcode: u8,
    /// The I bit.
    pub immediate: bool,
    /// TotalAHSLength in bytes.
    pub total_ahs_len: usize,
    /// DataSegmentLength in bytes, without padding.
    pub data_segment_len: u32,
    /// Initiator task tag.
    pub itt: u32,
}

/// Reads the length and tag fields of a BHS.
pub fn summary(bhs: &[u8; BHS_LEN]) -> BhsSummary {
    BhsSummary {
        opcode: bhs[0] & OPCODE_MASK,
        immediate: bhs[0] & IMMEDIATE_BIT != 0,
        total_ahs_len: usize::from(bhs[4]) * 4,
        data_segment_len: u32::from_be_bytes([0, bhs[5], bhs[6], bhs[7]]),
        itt: be32(bhs, 16),
    }
}

/// How many bytes follow these 48 header bytes in the whole PDU: AHS, header digest,
/// data segment, padding and data digest. Refuses a data segment above
/// `config.max_data_segment_len`.
pub fn remaining_len(bhs: &[u8; BHS_LEN], config: &WireConfig) -> Result<usize, DecodeError> {
    let s = summary(bhs);
    if s.data_segment_len > config.max_data_segment_len {
        return Err(DecodeError::DataSegmentTooLong {
            opcode: s.opcode,
            length: s.data_segment_len,
            max: config.max_data_segment_len,
        });
    }
    let data = s.data_segment_len as usize;
    let data_digest = if data == 0 {
        0
    } else {
        config.digests.data.wire_len()
    };
    Ok(s.total_ahs_len + config.digests.header.wire_len() + padded(data) + data_digest)
}

/// The whole PDU's length, header included.
pub fn frame_len(bhs: &[u8; BHS_LEN], config: &WireConfig) -> Result<usize, DecodeError> {
    Ok(BHS_LEN + remaining_len(bhs, config)?)
}

/// `len` rounded up to a multiple of 4.
pub fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

fn be16(b: &[u8; BHS_LEN], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8; BHS_LEN], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8; BHS_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(v)
}

/// A BHS being written.
struct Bhs([u8; BHS_LEN]);

impl Bhs {
    fn new(opcode: Opcode, immediate: bool, flags: u8) -> Self {
        let mut b = [0u8; BHS_LEN];
        b[0] = opcode.to_u8() | if immediate { IMMEDIATE_BIT } else { 0 };
        b[1] = flags;
        Bhs(b)
    }

    fn u8(mut self, at: usize, v: u8) -> Self {
        self.0[at] = v;
        self
    }

    fn u16(mut self, at: usize, v: u16) -> Self {
        self.0[at..at + 2].copy_from_slice(&v.to_be_bytes());
        self
    }

    fn u32(mut self, at: usize, v: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&v.to_be_bytes());
        self
    }

    fn u64(mut self, at: usize, v: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&v.to_be_bytes());
        self
    }

    fn bytes(mut self, at: usize, v: &[u8]) -> Self {
        self.0[at..at + v.len()].copy_from_slice(v);
        self
    }

    /// The status trio of target PDUs: StatSN, ExpCmdSN, MaxCmdSN at 24, 28, 32.
    fn seq(self, stat_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) -> Self {
        self.u32(24, stat_sn)
            .u32(28, exp_cmd_sn)
            .u32(32, max_cmd_sn)
    }
}

/// An encoded PDU in three parts, so a large data segment can be written from where it
/// lies: `head` is BHS + AHS + header digest, `data` the data segment, `tail` the padding
/// and data digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// BHS, AHS and header digest.
    pub head: Vec<u8>,
    /// The data segment, unpadded.
    pub data: &'a [u8],
    /// Padding and data digest.
    pub tail: Vec<u8>,
}

impl Frame<'_> {
    /// Total length on the wire.
    pub fn len(&self) -> usize {
        self.head.len() + self.data.len() + self.tail.len()
    }

    /// Whether the frame is empty (never, for a real PDU).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write_into(&mut out);
        out
    }

    fn write_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(self.data);
        out.extend_from_slice(&self.tail);
    }
}

/// Builds the frame of a PDU from its header, AHS and data.
fn frame<'a>(bhs: Bhs, ahs: &[u8], data: &'a [u8], digests: Digests) -> Frame<'a> {
    debug_assert!(
        ahs.len().is_multiple_of(4) && ahs.len() <= 255 * 4,
        "AHS too long"
    );
    debug_assert!(
        data.len() <= MAX_DATA_SEGMENT_LEN as usize,
        "data segment longer than 2^24-1 bytes"
    );
    let data = data.get(..MAX_DATA_SEGMENT_LEN as usize).unwrap_or(data);
    let ahs = ahs.get(..255 * 4).unwrap_or(ahs);
    let mut bhs = bhs.0;
    bhs[4] = (ahs.len() / 4) as u8;
    let dsl = (data.len() as u32).to_be_bytes();
    bhs[5..8].copy_from_slice(&dsl[1..]);

    let mut head = Vec::with_capacity(BHS_LEN + ahs.len() + DIGEST_LEN);
    head.extend_from_slice(&bhs);
    head.extend_from_slice(ahs);
    if digests.header == DigestType::Crc32c {
        let mut crc = Crc32c::new();
        crc.update(&head);
        head.extend_from_slice(&crc.finish_wire());
    }

    let pad = padded(data.len()) - data.len();
    let mut tail = vec![0u8; pad];
    if digests.data == DigestType::Crc32c && !data.is_empty() {
        let mut crc = Crc32c::new();
        crc.update(data);
        crc.update(&tail);
        tail.extend_from_slice(&crc.finish_wire());
    }
    Frame { head, data, tail }
}

/// The sequence numbers a target response carries: StatSN, ExpCmdSN and MaxCmdSN (the
/// session layer owns them; helpers that build responses take them in this form).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TargetSeq {
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

/// NOP-Out (RFC 7143 section 11.18): a ping from the initiator, or the answer to a
/// target's NOP-In.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NopOut {
    /// The I bit.
    pub immediate: bool,
    /// LUN (raw 8 bytes), only meaningful when answering a NOP-In.
    pub lun: u64,
    /// Initiator task tag; [`RESERVED_TAG`] when answering a NOP-In.
    pub itt: u32,
    /// Target transfer tag: the NOP-In's when answering one, else [`RESERVED_TAG`].
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// Ping data.
    pub data: Vec<u8>,
}

/// NOP-In (RFC 7143 section 11.19).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NopIn {
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// The NOP-Out's ITT, or [`RESERVED_TAG`] for a target-initiated ping.
    pub itt: u32,
    /// [`RESERVED_TAG`] in an answer; another value asks the initiator for a NOP-Out.
    pub ttt: u32,
    /// StatSN (not advanced for a target-initiated ping).
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Ping data.
    pub data: Vec<u8>,
}

/// SCSI Command (RFC 7143 section 11.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiCommand {
    /// The I bit.
    pub immediate: bool,
    /// F: no unsolicited Data-Out follows.
    pub final_: bool,
    /// R: the command reads (Data-In expected).
    pub read: bool,
    /// W: the command writes (Data-Out expected).
    pub write: bool,
    /// Task attribute.
    pub attr: TaskAttribute,
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// Expected data transfer length (the write length for bidirectional commands).
    pub expected_data_transfer_length: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// The first 16 bytes of the CDB.
    pub cdb: [u8; 16],
    /// CDB bytes beyond 16 (the Extended CDB AHS, type 1); empty for most commands.
    pub extended_cdb: Vec<u8>,
    /// Bidirectional read expected data transfer length (AHS type 2).
    pub bidi_read_length: Option<u32>,
    /// Immediate data.
    pub data: Vec<u8>,
}

impl ScsiCommand {
    /// The whole CDB: the 16 header bytes followed by the extended CDB.
    pub fn full_cdb(&self) -> Vec<u8> {
        let mut cdb = self.cdb.to_vec();
        cdb.extend_from_slice(&self.extended_cdb);
        cdb
    }

    /// Sets the CDB from a slice of any length (the part beyond 16 bytes goes to the
    /// extended CDB; shorter CDBs are padded with zeros).
    pub fn set_cdb(&mut self, cdb: &[u8]) {
        let head = cdb.len().min(16);
        self.cdb = [0; 16];
        self.cdb[..head].copy_from_slice(&cdb[..head]);
        self.extended_cdb = cdb[head..].to_vec();
    }

    fn ahs(&self) -> Vec<u8> {
        let mut ahs = Vec::new();
        if !self.extended_cdb.is_empty() {
            let cap = MAX_EXTENDED_CDB_LEN
                - if self.bidi_read_length.is_some() {
                    8
                } else {
                    0
                };
            let ext = &self.extended_cdb[..self.extended_cdb.len().min(cap)];
            ahs.extend_from_slice(&((ext.len() + 1) as u16).to_be_bytes());
            ahs.push(AHS_TYPE_EXTENDED_CDB);
            ahs.push(0);
            ahs.extend_from_slice(ext);
            ahs.resize(padded(ahs.len()), 0);
        }
        if let Some(len) = self.bidi_read_length {
            ahs.extend_from_slice(&[0, 5, AHS_TYPE_BIDI_READ_LENGTH, 0]);
            ahs.extend_from_slice(&len.to_be_bytes());
        }
        ahs
    }

    fn parse_ahs(&mut self, mut ahs: &[u8]) -> Result<(), DecodeError> {
        let bad = |detail| DecodeError::BadAhs {
            opcode: Opcode::ScsiCommand.to_u8(),
            detail,
        };
        let mut seen_ext = false;
        while !ahs.is_empty() {
            let (Some(&l0), Some(&l1), Some(&kind)) = (ahs.first(), ahs.get(1), ahs.get(2)) else {
                return Err(bad("AHS shorter than its 3-byte header"));
            };
            let len = usize::from(u16::from_be_bytes([l0, l1]));
            let total = padded(3 + len);
            let (Some(specific), Some(rest)) = (ahs.get(3..3 + len), ahs.get(total..)) else {
                return Err(bad("AHSLength runs past TotalAHSLength"));
            };
            match kind {
                AHS_TYPE_EXTENDED_CDB => {
                    if seen_ext {
                        return Err(bad("two extended CDB AHS"));
                    }
                    let Some(ext) = specific.get(1..) else {
                        return Err(bad("empty extended CDB AHS"));
                    };
                    seen_ext = true;
                    self.extended_cdb = ext.to_vec();
                }
                AHS_TYPE_BIDI_READ_LENGTH => {
                    let (5, Some(v)) = (len, specific.get(1..5)) else {
                        return Err(bad("bidirectional read length AHS is not 5 bytes"));
                    };
                    if self.bidi_read_length.is_some() {
                        return Err(bad("two bidirectional read length AHS"));
                    }
                    self.bidi_read_length = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                }
                _ => return Err(bad("unknown AHS type")),
            }
            ahs = rest;
        }
        Ok(())
    }
}

/// SCSI Response (RFC 7143 section 11.4).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScsiResponse {
    /// iSCSI service response.
    pub response: ServiceResponse,
    /// SCSI status (valid with [`ServiceResponse::CommandCompleted`]): 0x00 GOOD,
    /// 0x02 CHECK CONDITION, ...
    pub status: u8,
    /// Initiator task tag.
    pub itt: u32,
    /// SNACK tag (0 when no SNACK was answered).
    pub snack_tag: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// ExpDataSN: Data-In (and R2T) PDUs sent for the command.
    pub exp_data_sn: u32,
    /// Bidirectional read residual.
    pub bidi_read_residual: Residual,
    /// Residual.
    pub residual: Residual,
    /// Sense data (without the 2-byte SenseLength, which the codec writes).
    pub sense: Vec<u8>,
    /// iSCSI response data after the sense data (rarely used).
    pub response_data: Vec<u8>,
}

impl ScsiResponse {
    fn data(&self) -> Vec<u8> {
        if self.sense.is_empty() && self.response_data.is_empty() {
            return Vec::new();
        }
        let sense = &self.sense[..self.sense.len().min(usize::from(u16::MAX))];
        let mut data = Vec::with_capacity(2 + sense.len() + self.response_data.len());
        data.extend_from_slice(&(sense.len() as u16).to_be_bytes());
        data.extend_from_slice(sense);
        data.extend_from_slice(&self.response_data);
        data
    }

    fn parse_data(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        if data.is_empty() {
            return Ok(());
        }
        let bad = |detail| DecodeError::BadData {
            opcode: Opcode::ScsiResponse.to_u8(),
            detail,
        };
        let (Some(&h), Some(&l)) = (data.first(), data.get(1)) else {
            return Err(bad("data segment shorter than SenseLength"));
        };
        let sense_len = usize::from(u16::from_be_bytes([h, l]));
        let (Some(sense), Some(rest)) = (data.get(2..2 + sense_len), data.get(2 + sense_len..))
        else {
            return Err(bad("SenseLength runs past the data segment"));
        };
        self.sense = sense.to_vec();
        self.response_data = rest.to_vec();
        Ok(())
    }
}

/// Task Management Function Request (RFC 7143 section 11.5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    /// The I bit.
    pub immediate: bool,
    /// The function.
    pub function: TmfFunction,
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// Initiator task tag of this request.
    pub itt: u32,
    /// ITT of the task to abort ([`RESERVED_TAG`] when not ABORT TASK).
    pub referenced_task_tag: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// CmdSN of the referenced task (ABORT TASK).
    pub ref_cmd_sn: u32,
    /// ExpDataSN (TASK REASSIGN).
    pub exp_data_sn: u32,
}

/// Task Management Function Response (RFC 7143 section 11.6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    /// The response.
    pub response: TmfResponse,
    /// The request's ITT.
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
}

/// Login Request (RFC 7143 section 11.12). The I bit is always set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginRequest {
    /// T: the initiator wants to go to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next Login Request.
    pub continue_: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful with T).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// ISID.
    pub isid: Isid,
    /// TSIH: 0 for a new session.
    pub tsih: u16,
    /// Initiator task tag.
    pub itt: u32,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN (the login is immediate: the first command after login carries it too).
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// Text keys.
    pub data: Vec<u8>,
}

/// Login Response (RFC 7143 section 11.13).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginResponse {
    /// T: the target goes to `nsg`.
    pub transit: bool,
    /// C: the text continues in the next Login Response.
    pub continue_: bool,
    /// Current stage.
    pub csg: Stage,
    /// Next stage (meaningful with T).
    pub nsg: Stage,
    /// Version-max.
    pub version_max: u8,
    /// Version-active.
    pub version_active: u8,
    /// ISID of the request.
    pub isid: Isid,
    /// TSIH: set in the final response of a new session.
    pub tsih: u16,
    /// The request's ITT.
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Status-Class and Status-Detail.
    pub status: LoginStatus,
    /// Text keys.
    pub data: Vec<u8>,
}

/// Text Request (RFC 7143 section 11.10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextRequest {
    /// The I bit.
    pub immediate: bool,
    /// F: the last request of the exchange.
    pub final_: bool,
    /// C: the text continues in the next Text Request.
    pub continue_: bool,
    /// LUN (raw 8 bytes; usually 0).
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// [`RESERVED_TAG`] for a new exchange, else the TTT of the Text Response continued.
    pub ttt: u32,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// Text keys.
    pub data: Vec<u8>,
}

/// Text Response (RFC 7143 section 11.11).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextResponse {
    /// F: the exchange is complete.
    pub final_: bool,
    /// C: the text continues (answer with an empty Text Request carrying `ttt`).
    pub continue_: bool,
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// The request's ITT.
    pub itt: u32,
    /// [`RESERVED_TAG`] with F, else a tag for the continuation.
    pub ttt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Text keys.
    pub data: Vec<u8>,
}

/// SCSI Data-Out (RFC 7143 section 11.7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataOut {
    /// F: the last Data-Out of the sequence (unsolicited burst or R2T).
    pub final_: bool,
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// Initiator task tag of the command.
    pub itt: u32,
    /// The R2T's TTT, or [`RESERVED_TAG`] for unsolicited data.
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// DataSN within the sequence.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
    /// The data.
    pub data: Vec<u8>,
}

impl DataOut {
    fn bhs(&self) -> Bhs {
        Bhs::new(Opcode::DataOut, false, flag(self.final_, FINAL_BIT))
            .u64(8, self.lun)
            .u32(16, self.itt)
            .u32(20, self.ttt)
            .u32(28, self.exp_stat_sn)
            .u32(36, self.data_sn)
            .u32(40, self.buffer_offset)
    }

    /// Encodes this header around `data` (used instead of `self.data`) without copying it.
    pub fn encode_with<'a>(&self, data: &'a [u8], digests: Digests) -> Frame<'a> {
        frame(self.bhs(), &[], data, digests)
    }
}

/// SCSI Data-In (RFC 7143 section 11.8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataIn {
    /// F: the last Data-In of the sequence.
    pub final_: bool,
    /// A: the target asks for a DataACK SNACK (ErrorRecoveryLevel > 0 only).
    pub acknowledge: bool,
    /// S with the SCSI status: this PDU carries the command's status (needs F). When
    /// set, `stat_sn` and `residual` are meaningful.
    pub status: Option<u8>,
    /// Residual (with status only).
    pub residual: Residual,
    /// LUN (raw 8 bytes; meaningful with A).
    pub lun: u64,
    /// Initiator task tag of the command.
    pub itt: u32,
    /// [`RESERVED_TAG`] unless A is set.
    pub ttt: u32,
    /// StatSN (with status).
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// DataSN.
    pub data_sn: u32,
    /// Offset of this data in the command's buffer.
    pub buffer_offset: u32,
    /// The data.
    pub data: Vec<u8>,
}

impl DataIn {
    fn bhs(&self) -> Bhs {
        let (residual_bits, residual) = match self.status {
            Some(_) => self.residual.encode(0x04),
            None => (0, 0),
        };
        let flags = flag(self.final_, FINAL_BIT)
            | flag(self.acknowledge, 0x40)
            | flag(self.status.is_some(), 0x01)
            | residual_bits;
        Bhs::new(Opcode::DataIn, false, flags)
            .u8(3, self.status.unwrap_or(0))
            .u64(8, self.lun)
            .u32(16, self.itt)
            .u32(20, self.ttt)
            .seq(self.stat_sn, self.exp_cmd_sn, self.max_cmd_sn)
            .u32(36, self.data_sn)
            .u32(40, self.buffer_offset)
            .u32(44, residual)
    }

    /// Encodes this header around `data` (used instead of `self.data`) without copying it.
    pub fn encode_with<'a>(&self, data: &'a [u8], digests: Digests) -> Frame<'a> {
        frame(self.bhs(), &[], data, digests)
    }
}

/// Logout Request (RFC 7143 section 11.14).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    /// The I bit.
    pub immediate: bool,
    /// Reason code.
    pub reason: LogoutReason,
    /// Initiator task tag.
    pub itt: u32,
    /// CID of the connection to close (reasons 1 and 2).
    pub cid: u16,
    /// CmdSN.
    pub cmd_sn: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
}

/// Logout Response (RFC 7143 section 11.15).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutResponse {
    /// The response.
    pub response: LogoutResponseCode,
    /// The request's ITT.
    pub itt: u32,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// Time2Wait, seconds.
    pub time2wait: u16,
    /// Time2Retain, seconds.
    pub time2retain: u16,
}

/// Ready To Transfer (RFC 7143 section 11.8).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct R2t {
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// Initiator task tag of the command.
    pub itt: u32,
    /// Target transfer tag the Data-Out PDUs carry back.
    pub ttt: u32,
    /// StatSN (the next one; not advanced).
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// R2TSN.
    pub r2t_sn: u32,
    /// Offset of the requested data.
    pub buffer_offset: u32,
    /// Bytes requested.
    pub desired_data_transfer_length: u32,
}

/// Asynchronous Message (RFC 7143 section 11.9). ITT is always [`RESERVED_TAG`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsyncMessage {
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// AsyncEvent.
    pub event: AsyncEvent,
    /// AsyncVCode.
    pub vcode: u8,
    /// Parameter1.
    pub parameter1: u16,
    /// Parameter2.
    pub parameter2: u16,
    /// Parameter3.
    pub parameter3: u16,
    /// The data segment as sent (SenseLength, sense data, iSCSI event data).
    pub data: Vec<u8>,
}

/// SNACK Request (RFC 7143 section 11.16); decoded so a target at ErrorRecoveryLevel 0
/// can reject it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snack {
    /// Type.
    pub snack_type: SnackType,
    /// LUN (raw 8 bytes).
    pub lun: u64,
    /// Initiator task tag.
    pub itt: u32,
    /// Target transfer tag or SNACK tag.
    pub ttt: u32,
    /// ExpStatSN.
    pub exp_stat_sn: u32,
    /// BegRun.
    pub beg_run: u32,
    /// RunLength.
    pub run_length: u32,
}

/// Reject (RFC 7143 section 11.17). ITT is always [`RESERVED_TAG`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reject {
    /// Reason.
    pub reason: RejectReason,
    /// StatSN.
    pub stat_sn: u32,
    /// ExpCmdSN.
    pub exp_cmd_sn: u32,
    /// MaxCmdSN.
    pub max_cmd_sn: u32,
    /// DataSN/R2TSN (for a rejected SNACK).
    pub data_sn: u32,
    /// The complete header of the rejected PDU (48 bytes for a BHS).
    pub header: Vec<u8>,
}

impl Reject {
    /// The opcode of the rejected PDU, if the header is there.
    pub fn rejected_opcode(&self) -> Option<u8> {
        self.header.first().map(|b| b & OPCODE_MASK)
    }

    /// The ITT of the rejected PDU, if the header is there.
    pub fn rejected_itt(&self) -> Option<u32> {
        let b = self.header.get(16..20)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Any PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Pdu {
    NopOut(NopOut),
    ScsiCommand(ScsiCommand),
    TaskMgmtRequest(TaskMgmtRequest),
    LoginRequest(LoginRequest),
    TextRequest(TextRequest),
    DataOut(DataOut),
    LogoutRequest(LogoutRequest),
    Snack(Snack),
    NopIn(NopIn),
    ScsiResponse(ScsiResponse),
    TaskMgmtResponse(TaskMgmtResponse),
    LoginResponse(LoginResponse),
    TextResponse(TextResponse),
    DataIn(DataIn),
    LogoutResponse(LogoutResponse),
    R2t(R2t),
    AsyncMessage(AsyncMessage),
    Reject(Reject),
}

macro_rules! pdu_from {
    ($($variant:ident),+) => {
        $(impl From<$variant> for Pdu {
            fn from(p: $variant) -> Self {
                Pdu::$variant(p)
            }
        })+
    };
}

pdu_from!(
    NopOut,
    ScsiCommand,
    TaskMgmtRequest,
    LoginRequest,
    TextRequest,
    DataOut,
    LogoutRequest,
    Snack,
    NopIn,
    ScsiResponse,
    TaskMgmtResponse,
    LoginResponse,
    TextResponse,
    DataIn,
    LogoutResponse,
    R2t,
    AsyncMessage,
    Reject
);

fn flag(on: bool, bit: u8) -> u8 {
    if on {
        bit
    } else {
        0
    }
}

impl Pdu {
    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Pdu::NopOut(_) => Opcode::NopOut,
            Pdu::ScsiCommand(_) => Opcode::ScsiCommand,
            Pdu::TaskMgmtRequest(_) => Opcode::TaskMgmtRequest,
            Pdu::LoginRequest(_) => Opcode::LoginRequest,
            Pdu::TextRequest(_) => Opcode::TextRequest,
            Pdu::DataOut(_) => Opcode::DataOut,
            Pdu::LogoutRequest(_) => Opcode::LogoutRequest,
            Pdu::Snack(_) => Opcode::Snack,
            Pdu::NopIn(_) => Opcode::NopIn,
            Pdu::ScsiResponse(_) => Opcode::ScsiResponse,
            Pdu::TaskMgmtResponse(_) => Opcode::TaskMgmtResponse,
            Pdu::LoginResponse(_) => Opcode::LoginResponse,
            Pdu::TextResponse(_) => Opcode::TextResponse,
            Pdu::DataIn(_) => Opcode::DataIn,
            Pdu::LogoutResponse(_) => Opcode::LogoutResponse,
            Pdu::R2t(_) => Opcode::R2t,
            Pdu::AsyncMessage(_) => Opcode::AsyncMessage,
            Pdu::Reject(_) => Opcode::Reject,
        }
    }

    /// The initiator task tag field ([`RESERVED_TAG`] for Reject and Asynchronous
    /// Message; see [`Reject::rejected_itt`]).
    pub fn itt(&self) -> u32 {
        match self {
            Pdu::NopOut(p) => p.itt,
            Pdu::ScsiCommand(p) => p.itt,
            Pdu::TaskMgmtRequest(p) => p.itt,
            Pdu::LoginRequest(p) => p.itt,
            Pdu::TextRequest(p) => p.itt,
            Pdu::DataOut(p) => p.itt,
            Pdu::LogoutRequest(p) => p.itt,
            Pdu::Snack(p) => p.itt,
            Pdu::NopIn(p) => p.itt,
            Pdu::ScsiResponse(p) => p.itt,
            Pdu::TaskMgmtResponse(p) => p.itt,
            Pdu::LoginResponse(p) => p.itt,
            Pdu::TextResponse(p) => p.itt,
            Pdu::DataIn(p) => p.itt,
            Pdu::LogoutResponse(p) => p.itt,
            Pdu::R2t(p) => p.itt,
            Pdu::AsyncMessage(_) | Pdu::Reject(_) => RESERVED_TAG,
        }
    }

    /// Encodes the PDU with padding and the given digests.
    ///
    /// Data segments must be shorter than 2^24 bytes (callers keep to the negotiated
    /// MaxRecvDataSegmentLength); longer ones are cut.
    pub fn encode(&self, digests: Digests) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(digests, &mut out);
        out
    }

    /// Appends the encoded PDU to `out`.
    pub fn encode_into(&self, digests: Digests, out: &mut Vec<u8>) {
        let (bhs, ahs, data) = self.parts();
        frame(bhs, &ahs, &data, digests).write_into(out);
    }

    fn parts(&self) -> (Bhs, Vec<u8>, Cow<'_, [u8]>) {
        let none = Vec::new;
        match self {
            Pdu::NopOut(p) => (
                Bhs::new(Opcode::NopOut, p.immediate, FINAL_BIT)
                    .u64(8, p.lun)
                    .u32(16, p.itt)
                    .u32(20, p.ttt)
                    .u32(24, p.cmd_sn)
                    .u32(28, p.exp_stat_sn),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::ScsiCommand(p) => (
                Bhs::new(
                    Opcode::ScsiCommand,
                    p.immediate,
                    flag(p.final_, FINAL_BIT)
                        | flag(p.read, 0x40)
                        | flag(p.write, 0x20)
                        | p.attr.bits(),
                )
                .u64(8, p.lun)
                .u32(16, p.itt)
                .u32(20, p.expected_data_transfer_length)
                .u32(24, p.cmd_sn)
                .u32(28, p.exp_stat_sn)
                .bytes(32, &p.cdb),
                p.ahs(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::TaskMgmtRequest(p) => (
                Bhs::new(
                    Opcode::TaskMgmtRequest,
                    p.immediate,
                    FINAL_BIT | (p.function.to_u8() & 0x7F),
                )
                .u64(8, p.lun)
                .u32(16, p.itt)
                .u32(20, p.referenced_task_tag)
                .u32(24, p.cmd_sn)
                .u32(28, p.exp_stat_sn)
                .u32(32, p.ref_cmd_sn)
                .u32(36, p.exp_data_sn),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::LoginRequest(p) => (
                Bhs::new(
                    Opcode::LoginRequest,
                    true,
                    login_flags(p.transit, p.continue_, p.csg, p.nsg),
                )
                .u8(2, p.version_max)
                .u8(3, p.version_min)
                .bytes(8, &p.isid)
                .u16(14, p.tsih)
                .u32(16, p.itt)
                .u16(20, p.cid)
                .u32(24, p.cmd_sn)
                .u32(28, p.exp_stat_sn),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::TextRequest(p) => (
                Bhs::new(
                    Opcode::TextRequest,
                    p.immediate,
                    flag(p.final_, FINAL_BIT) | flag(p.continue_, CONTINUE_BIT),
                )
                .u64(8, p.lun)
                .u32(16, p.itt)
                .u32(20, p.ttt)
                .u32(24, p.cmd_sn)
                .u32(28, p.exp_stat_sn),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::DataOut(p) => (p.bhs(), none(), Cow::Borrowed(&p.data)),
            Pdu::LogoutRequest(p) => (
                Bhs::new(
                    Opcode::LogoutRequest,
                    p.immediate,
                    FINAL_BIT | (p.reason.to_u8() & 0x7F),
                )
                .u32(16, p.itt)
                .u16(20, p.cid)
                .u32(24, p.cmd_sn)
                .u32(28, p.exp_stat_sn),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::Snack(p) => (
                Bhs::new(
                    Opcode::Snack,
                    false,
                    FINAL_BIT | (p.snack_type.to_u8() & 0x0F),
                )
                .u64(8, p.lun)
                .u32(16, p.itt)
                .u32(20, p.ttt)
                .u32(28, p.exp_stat_sn)
                .u32(40, p.beg_run)
                .u32(44, p.run_length),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::NopIn(p) => (
                Bhs::new(Opcode::NopIn, false, FINAL_BIT)
                    .u64(8, p.lun)
                    .u32(16, p.itt)
                    .u32(20, p.ttt)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::ScsiResponse(p) => {
                let (bidi_bits, bidi) = p.bidi_read_residual.encode(0x10);
                let (bits, residual) = p.residual.encode(0x04);
                (
                    Bhs::new(Opcode::ScsiResponse, false, FINAL_BIT | bidi_bits | bits)
                        .u8(2, p.response.to_u8())
                        .u8(3, p.status)
                        .u32(16, p.itt)
                        .u32(20, p.snack_tag)
                        .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                        .u32(36, p.exp_data_sn)
                        .u32(40, bidi)
                        .u32(44, residual),
                    none(),
                    Cow::Owned(p.data()),
                )
            }
            Pdu::TaskMgmtResponse(p) => (
                Bhs::new(Opcode::TaskMgmtResponse, false, FINAL_BIT)
                    .u8(2, p.response.to_u8())
                    .u32(16, p.itt)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::LoginResponse(p) => {
                let (class, detail) = p.status.parts();
                (
                    Bhs::new(
                        Opcode::LoginResponse,
                        false,
                        login_flags(p.transit, p.continue_, p.csg, p.nsg),
                    )
                    .u8(2, p.version_max)
                    .u8(3, p.version_active)
                    .bytes(8, &p.isid)
                    .u16(14, p.tsih)
                    .u32(16, p.itt)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                    .u8(36, class)
                    .u8(37, detail),
                    none(),
                    Cow::Borrowed(&p.data),
                )
            }
            Pdu::TextResponse(p) => (
                Bhs::new(
                    Opcode::TextResponse,
                    false,
                    flag(p.final_, FINAL_BIT) | flag(p.continue_, CONTINUE_BIT),
                )
                .u64(8, p.lun)
                .u32(16, p.itt)
                .u32(20, p.ttt)
                .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::DataIn(p) => (p.bhs(), none(), Cow::Borrowed(&p.data)),
            Pdu::LogoutResponse(p) => (
                Bhs::new(Opcode::LogoutResponse, false, FINAL_BIT)
                    .u8(2, p.response.to_u8())
                    .u32(16, p.itt)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                    .u16(40, p.time2wait)
                    .u16(42, p.time2retain),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::R2t(p) => (
                Bhs::new(Opcode::R2t, false, FINAL_BIT)
                    .u64(8, p.lun)
                    .u32(16, p.itt)
                    .u32(20, p.ttt)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                    .u32(36, p.r2t_sn)
                    .u32(40, p.buffer_offset)
                    .u32(44, p.desired_data_transfer_length),
                none(),
                Cow::Borrowed(&[]),
            ),
            Pdu::AsyncMessage(p) => (
                Bhs::new(Opcode::AsyncMessage, false, FINAL_BIT)
                    .u64(8, p.lun)
                    .u32(16, RESERVED_TAG)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                    .u8(36, p.event.to_u8())
                    .u8(37, p.vcode)
                    .u16(38, p.parameter1)
                    .u16(40, p.parameter2)
                    .u16(42, p.parameter3),
                none(),
                Cow::Borrowed(&p.data),
            ),
            Pdu::Reject(p) => (
                Bhs::new(Opcode::Reject, false, FINAL_BIT)
                    .u8(2, p.reason.to_u8())
                    .u32(16, RESERVED_TAG)
                    .seq(p.stat_sn, p.exp_cmd_sn, p.max_cmd_sn)
                    .u32(36, p.data_sn),
                none(),
                Cow::Borrowed(&p.header),
            ),
        }
    }

    /// Decodes exactly one PDU: `frame` holds the BHS and the [`remaining_len`] bytes
    /// after it. Checks the digests `config` names.
    pub fn decode(frame: &[u8], config: &WireConfig) -> Result<Pdu, DecodeError> {
        let bhs = bhs_of(frame)?;
        let expected = frame_len(bhs, config)?;
        if frame.len() != expected {
            return Err(DecodeError::Length {
                expected,
                actual: frame.len(),
            });
        }
        let s = summary(bhs);
        let ahs_end = BHS_LEN + s.total_ahs_len;
        let data_start = ahs_end + config.digests.header.wire_len();
        let data_len = s.data_segment_len as usize;
        let data_end = data_start + data_len;
        let padded_end = data_start + padded(data_len);
        // `expected` covered every one of these ranges.
        let (Some(header), Some(data), Some(padding)) = (
            frame.get(..ahs_end),
            frame.get(data_start..data_end),
            frame.get(data_start..padded_end),
        ) else {
            return Err(DecodeError::Truncated {
                needed: expected,
                got: frame.len(),
            });
        };
        if config.digests.header == DigestType::Crc32c {
            check_digest(header, frame.get(ahs_end..data_start))
                .map_err(|(computed, received)| DecodeError::HeaderDigest { computed, received })?;
        }
        if config.digests.data == DigestType::Crc32c && data_len > 0 {
            check_digest(padding, frame.get(padded_end..)).map_err(|(computed, received)| {
                DecodeError::DataDigest {
                    opcode: s.opcode,
                    itt: s.itt,
                    computed,
                    received,
                }
            })?;
        }
        let ahs = header.get(BHS_LEN..).unwrap_or_default();
        decode_body(bhs, ahs, data)
    }

    /// Decodes the first PDU in `buf`, if `buf` holds all of it: `Ok(None)` means read
    /// more; `Ok(Some((pdu, n)))` means the PDU took the first `n` bytes.
    pub fn decode_from(
        buf: &[u8],
        config: &WireConfig,
    ) -> Result<Option<(Pdu, usize)>, DecodeError> {
        let Ok(bhs) = bhs_of(buf) else {
            return Ok(None);
        };
        let len = frame_len(bhs, config)?;
        match buf.get(..len) {
            Some(frame) => Ok(Some((Pdu::decode(frame, config)?, len))),
            None => Ok(None),
        }
    }
}

fn bhs_of(buf: &[u8]) -> Result<&[u8; BHS_LEN], DecodeError> {
    buf.get(..BHS_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated {
            needed: BHS_LEN,
            got: buf.len(),
        })
}

/// Compares the CRC32C of `covered` with the 4 wire bytes in `digest`.
fn check_digest(covered: &[u8], digest: Option<&[u8]>) -> Result<(), (u32, u32)> {
    let mut crc = Crc32c::new();
    crc.update(covered);
    let computed = crc.finish();
    let received = digest
        .and_then(|d| <[u8; DIGEST_LEN]>::try_from(d).ok())
        .map(crate::digest::from_wire)
        .unwrap_or(!computed);
    if computed == received {
        Ok(())
    } else {
        Err((computed, received))
    }
}

fn login_flags(transit: bool, continue_: bool, csg: Stage, nsg: Stage) -> u8 {
    flag(transit, FINAL_BIT) | flag(continue_, CONTINUE_BIT) | (csg.bits() << 2) | nsg.bits()
}

/// CSG and NSG of a login PDU. NSG is only meaningful with T; without it a reserved
/// value is read as the current stage.
fn login_stages(opcode: Opcode, flags: u8) -> Result<(Stage, Stage), DecodeError> {
    let invalid = |field, value: u8| DecodeError::InvalidField {
        opcode: opcode.to_u8(),
        field,
        value: u32::from(value),
    };
    let csg_bits = (flags >> 2) & 0x03;
    let csg = Stage::from_bits(csg_bits).ok_or(invalid("CSG", csg_bits))?;
    let nsg = match Stage::from_bits(flags) {
        Some(nsg) => nsg,
        None if flags & FINAL_BIT == 0 => csg,
        None => return Err(invalid("NSG", flags & 0x03)),
    };
    Ok((csg, nsg))
}

fn decode_body(b: &[u8; BHS_LEN], ahs: &[u8], data: &[u8]) -> Result<Pdu, DecodeError> {
    let raw = b[0] & OPCODE_MASK;
    let opcode = Opcode::from_u8(raw).ok_or(DecodeError::UnknownOpcode { opcode: raw })?;
    // Only the SCSI Command defines AHS types; for other opcodes the AHS is skipped.
    let immediate = b[0] & IMMEDIATE_BIT != 0;
    let flags = b[1];
    let is = |bit: u8| flags & bit != 0;
    let data_vec = || data.to_vec();
    Ok(match opcode {
        Opcode::NopOut => Pdu::NopOut(NopOut {
            immediate,
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            data: data_vec(),
        }),
        Opcode::ScsiCommand => {
            let attr_bits = flags & 0x07;
            let attr = TaskAttribute::from_bits(attr_bits).ok_or(DecodeError::InvalidField {
                opcode: raw,
                field: "task attribute",
                value: u32::from(attr_bits),
            })?;
            let mut cdb = [0u8; 16];
            cdb.copy_from_slice(&b[32..48]);
            let mut cmd = ScsiCommand {
                immediate,
                final_: is(FINAL_BIT),
                read: is(0x40),
                write: is(0x20),
                attr,
                lun: be64(b, 8),
                itt: be32(b, 16),
                expected_data_transfer_length: be32(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
                cdb,
                extended_cdb: Vec::new(),
                bidi_read_length: None,
                data: data_vec(),
            };
            cmd.parse_ahs(ahs)?;
            Pdu::ScsiCommand(cmd)
        }
        Opcode::TaskMgmtRequest => Pdu::TaskMgmtRequest(TaskMgmtRequest {
            immediate,
            function: TmfFunction::from_u8(flags & 0x7F),
            lun: be64(b, 8),
            itt: be32(b, 16),
            referenced_task_tag: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            ref_cmd_sn: be32(b, 32),
            exp_data_sn: be32(b, 36),
        }),
        Opcode::LoginRequest => {
            let (csg, nsg) = login_stages(opcode, flags)?;
            Pdu::LoginRequest(LoginRequest {
                transit: is(FINAL_BIT),
                continue_: is(CONTINUE_BIT),
                csg,
                nsg,
                version_max: b[2],
                version_min: b[3],
                isid: isid_of(b),
                tsih: be16(b, 14),
                itt: be32(b, 16),
                cid: be16(b, 20),
                cmd_sn: be32(b, 24),
                exp_stat_sn: be32(b, 28),
                data: data_vec(),
            })
        }
        Opcode::TextRequest => Pdu::TextRequest(TextRequest {
            immediate,
            final_: is(FINAL_BIT),
            continue_: is(CONTINUE_BIT),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
            data: data_vec(),
        }),
        Opcode::DataOut => Pdu::DataOut(DataOut {
            final_: is(FINAL_BIT),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            exp_stat_sn: be32(b, 28),
            data_sn: be32(b, 36),
            buffer_offset: be32(b, 40),
            data: data_vec(),
        }),
        Opcode::LogoutRequest => Pdu::LogoutRequest(LogoutRequest {
            immediate,
            reason: LogoutReason::from_u8(flags & 0x7F),
            itt: be32(b, 16),
            cid: be16(b, 20),
            cmd_sn: be32(b, 24),
            exp_stat_sn: be32(b, 28),
        }),
        Opcode::Snack => Pdu::Snack(Snack {
            snack_type: SnackType::from_u8(flags & 0x0F),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            exp_stat_sn: be32(b, 28),
            beg_run: be32(b, 40),
            run_length: be32(b, 44),
        }),
        Opcode::NopIn => Pdu::NopIn(NopIn {
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            data: data_vec(),
        }),
        Opcode::ScsiResponse => {
            let mut rsp = ScsiResponse {
                response: ServiceResponse::from_u8(b[2]),
                status: b[3],
                itt: be32(b, 16),
                snack_tag: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                exp_data_sn: be32(b, 36),
                bidi_read_residual: Residual::decode(opcode, flags, 0x10, be32(b, 40))?,
                residual: Residual::decode(opcode, flags, 0x04, be32(b, 44))?,
                sense: Vec::new(),
                response_data: Vec::new(),
            };
            rsp.parse_data(data)?;
            Pdu::ScsiResponse(rsp)
        }
        Opcode::TaskMgmtResponse => Pdu::TaskMgmtResponse(TaskMgmtResponse {
            response: TmfResponse::from_u8(b[2]),
            itt: be32(b, 16),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
        }),
        Opcode::LoginResponse => {
            let (csg, nsg) = login_stages(opcode, flags)?;
            Pdu::LoginResponse(LoginResponse {
                transit: is(FINAL_BIT),
                continue_: is(CONTINUE_BIT),
                csg,
                nsg,
                version_max: b[2],
                version_active: b[3],
                isid: isid_of(b),
                tsih: be16(b, 14),
                itt: be32(b, 16),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                status: LoginStatus::from_parts(b[36], b[37]),
                data: data_vec(),
            })
        }
        Opcode::TextResponse => Pdu::TextResponse(TextResponse {
            final_: is(FINAL_BIT),
            continue_: is(CONTINUE_BIT),
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            data: data_vec(),
        }),
        Opcode::DataIn => {
            let with_status = is(0x01);
            Pdu::DataIn(DataIn {
                final_: is(FINAL_BIT),
                acknowledge: is(0x40),
                status: with_status.then_some(b[3]),
                residual: if with_status {
                    Residual::decode(opcode, flags, 0x04, be32(b, 44))?
                } else {
                    Residual::None
                },
                lun: be64(b, 8),
                itt: be32(b, 16),
                ttt: be32(b, 20),
                stat_sn: be32(b, 24),
                exp_cmd_sn: be32(b, 28),
                max_cmd_sn: be32(b, 32),
                data_sn: be32(b, 36),
                buffer_offset: be32(b, 40),
                data: data_vec(),
            })
        }
        Opcode::LogoutResponse => Pdu::LogoutResponse(LogoutResponse {
            response: LogoutResponseCode::from_u8(b[2]),
            itt: be32(b, 16),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            time2wait: be16(b, 40),
            time2retain: be16(b, 42),
        }),
        Opcode::R2t => Pdu::R2t(R2t {
            lun: be64(b, 8),
            itt: be32(b, 16),
            ttt: be32(b, 20),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            r2t_sn: be32(b, 36),
            buffer_offset: be32(b, 40),
            desired_data_transfer_length: be32(b, 44),
        }),
        Opcode::AsyncMessage => Pdu::AsyncMessage(AsyncMessage {
            lun: be64(b, 8),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            event: AsyncEvent::from_u8(b[36]),
            vcode: b[37],
            parameter1: be16(b, 38),
            parameter2: be16(b, 40),
            parameter3: be16(b, 42),
            data: data_vec(),
        }),
        Opcode::Reject => Pdu::Reject(Reject {
            reason: RejectReason::from_u8(b[2]),
            stat_sn: be32(b, 24),
            exp_cmd_sn: be32(b, 28),
            max_cmd_sn: be32(b, 32),
            data_sn: be32(b, 36),
            header: data_vec(),
        }),
    })
}

fn isid_of(b: &[u8; BHS_LEN]) -> Isid {
    let mut isid = [0u8; 6];
    isid.copy_from_slice(&b[8..14]);
    isid
}

/// The raw 8-byte LUN field for a LUN number, in the SAM single-level form
/// (peripheral device addressing below 256, flat space addressing up to 16383).
pub fn lun_from_number(lun: u16) -> u64 {
    let lun = lun & 0x3FFF;
    let first: u64 = if lun < 256 {
        0
    } else {
        0x40 | u64::from(lun >> 8)
    };
    (first << 56) | (u64::from(lun & 0xFF) << 48)
}

/// The LUN number of a raw single-level LUN field, `None` for other forms.
pub fn lun_number(raw: u64) -> Option<u16> {
    if raw & 0x0000_FFFF_FFFF_FFFF != 0 {
        return None;
    }
    let [b0, b1, ..] = raw.to_be_bytes();
    match b0 >> 6 {
        0 if b0 == 0 => Some(u16::from(b1)),
        1 => Some((u16::from(b0 & 0x3F) << 8) | u16::from(b1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(pdu: Pdu, digests: Digests) -> Vec<u8> {
        let bytes = pdu.encode(digests);
        let config = WireConfig::new(digests, MAX_DATA_SEGMENT_LEN);
        let bhs: &[u8; BHS_LEN] = bytes[..BHS_LEN].try_into().unwrap();
        assert_eq!(frame_len(bhs, &config).unwrap(), bytes.len());
        assert_eq!(Pdu::decode(&bytes, &config).unwrap(), pdu);
        bytes
    }

    /// RFC 3720 appendix B.4's READ (10) command PDU, and the header digest the RFC
    /// gives for those 48 bytes.
    #[test]
    fn rfc3720_read10_pdu_and_header_digest() {
        let mut cmd = ScsiCommand {
            final_: true,
            read: true,
            attr: TaskAttribute::Untagged,
            itt: 0x1400_0000,
            expected_data_transfer_length: 0x0000_0400,
            cmd_sn: 0x0000_0014,
            exp_stat_sn: 0x0000_0018,
            ..Default::default()
        };
        cmd.set_cdb(&[0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0]);
        let bytes = roundtrip(Pdu::ScsiCommand(cmd), Digests::CRC32C);
        let rfc: [u8; 52] = [
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x56, 0x3a, 0x96, 0xd9,
        ];
        assert_eq!(bytes, rfc);
    }

    #[test]
    fn login_request_exact_bytes() {
        let req = LoginRequest {
            transit: true,
            continue_: false,
            csg: Stage::Operational,
            nsg: Stage::FullFeature,
            isid: [0x80, 0x12, 0x34, 0x56, 0x00, 0x00],
            tsih: 0,
            itt: 0x0102_0304,
            cid: 7,
            cmd_sn: 0x1111_2222,
            exp_stat_sn: 1,
            data: b"InitiatorName=iqn.x\0".to_vec(),
            ..Default::default()
        };
        let bytes = roundtrip(Pdu::LoginRequest(req), Digests::NONE);
        let expected_head: [u8; 32] = [
            0x43, 0x87, 0x00, 0x00, 0x00, 0x00, 0x00, 20, 0x80, 0x12, 0x34, 0x56, 0x00, 0x00, 0x00,
            0x00, 0x01, 0x02, 0x03, 0x04, 0x00, 0x07, 0x00, 0x00, 0x11, 0x11, 0x22, 0x22, 0x00,
            0x00, 0x00, 0x01,
        ];
        assert_eq!(&bytes[..32], &expected_head);
        assert_eq!(bytes.len(), 48 + 20);
        assert_eq!(&bytes[48..], b"InitiatorName=iqn.x\0");
    }

    #[test]
    fn login_response_status_and_padding() {
        let rsp = LoginResponse {
            transit: false,
            csg: Stage::Security,
            nsg: Stage::Security,
            isid: [1, 2, 3, 4, 5, 6],
            itt: 9,
            stat_sn: 0x10,
            exp_cmd_sn: 0x20,
            max_cmd_sn: 0x3f,
            status: LoginStatus::AuthenticationFailure,
            data: b"A=B\0C".to_vec(),
            ..Default::default()
        };
        let bytes = roundtrip(Pdu::LoginResponse(rsp), Digests::NONE);
        assert_eq!(bytes[0], 0x23);
        assert_eq!(&bytes[36..38], &[0x02, 0x01]);
        assert_eq!(&bytes[5..8], &[0, 0, 5]);
        assert_eq!(bytes.len(), 48 + 8, "5 data bytes padded to 8");
        assert_eq!(&bytes[53..], &[0, 0, 0]);
    }

    #[test]
    fn every_pdu_roundtrips_with_and_without_digests() {
        let mut cmd = ScsiCommand {
            write: true,
            final_: false,
            attr: TaskAttribute::Ordered,
            lun: lun_from_number(3),
            itt: 5,
            expected_data_transfer_length: 4096,
            cmd_sn: 77,
            bidi_read_length: Some(512),
            data: vec![0xAB; 1000],
            ..Default::default()
        };
        cmd.set_cdb(&(0u8..32).collect::<Vec<_>>());
        let pdus: Vec<Pdu> = vec![
            NopOut {
                immediate: true,
                itt: 1,
                ttt: RESERVED_TAG,
                cmd_sn: 2,
                exp_stat_sn: 3,
                data: b"ping".to_vec(),
                ..Default::default()
            }
            .into(),
            cmd.into(),
            TaskMgmtRequest {
                immediate: true,
                function: TmfFunction::AbortTask,
                lun: 1 << 48,
                itt: 8,
                referenced_task_tag: 5,
                cmd_sn: 9,
                exp_stat_sn: 10,
                ref_cmd_sn: 77,
                exp_data_sn: 0,
            }
            .into(),
            TextRequest {
                immediate: true,
                final_: true,
                itt: 3,
                ttt: RESERVED_TAG,
                data: b"SendTargets=All\0".to_vec(),
                ..Default::default()
            }
            .into(),
            DataOut {
                final_: true,
                itt: 5,
                ttt: 0x99,
                exp_stat_sn: 4,
                data_sn: 2,
                buffer_offset: 8192,
                data: vec![1, 2, 3],
                ..Default::default()
            }
            .into(),
            LogoutRequest {
                immediate: true,
                reason: LogoutReason::CloseConnection,
                itt: 11,
                cid: 1,
                cmd_sn: 12,
                exp_stat_sn: 13,
            }
            .into(),
            Snack {
                snack_type: SnackType::Status,
                itt: RESERVED_TAG,
                beg_run: 4,
                run_length: 2,
                ..Default::default()
            }
            .into(),
            NopIn {
                itt: 1,
                ttt: RESERVED_TAG,
                stat_sn: 2,
                exp_cmd_sn: 3,
                max_cmd_sn: 34,
                data: b"ping".to_vec(),
                ..Default::default()
            }
            .into(),
            ScsiResponse {
                response: ServiceResponse::CommandCompleted,
                status: 0x02,
                itt: 5,
                stat_sn: 6,
                exp_cmd_sn: 7,
                max_cmd_sn: 8,
                exp_data_sn: 2,
                bidi_read_residual: Residual::Overflow(3),
                residual: Residual::Underflow(512),
                sense: vec![0x70, 0, 0x05, 0, 0, 0, 0, 10],
                response_data: vec![],
                ..Default::default()
            }
            .into(),
            TaskMgmtResponse {
                response: TmfResponse::FunctionRejected,
                itt: 8,
                stat_sn: 1,
                exp_cmd_sn: 2,
                max_cmd_sn: 3,
            }
            .into(),
            TextResponse {
                final_: false,
                continue_: true,
                itt: 3,
                ttt: 0x42,
                data: b"TargetName=iqn.a\0".to_vec(),
                ..Default::default()
            }
            .into(),
            DataIn {
                final_: true,
                status: Some(0),
                residual: Residual::Underflow(100),
                itt: 5,
                ttt: RESERVED_TAG,
                stat_sn: 9,
                data_sn: 1,
                buffer_offset: 512,
                data: vec![7; 13],
                ..Default::default()
            }
            .into(),
            LogoutResponse {
                response: LogoutResponseCode::ClosedSuccessfully,
                itt: 11,
                time2wait: 2,
                time2retain: 20,
                ..Default::default()
            }
            .into(),
            R2t {
                itt: 5,
                ttt: 0x100,
                r2t_sn: 1,
                buffer_offset: 65536,
                desired_data_transfer_length: 65536,
                ..Default::default()
            }
            .into(),
            AsyncMessage {
                event: AsyncEvent::LogoutRequested,
                parameter3: 5,
                ..Default::default()
            }
            .into(),
            Reject {
                reason: RejectReason::DataDigestError,
                header: vec![0x05; 48],
                stat_sn: 3,
                ..Default::default()
            }
            .into(),
        ];
        for pdu in pdus {
            roundtrip(pdu.clone(), Digests::NONE);
            let with = roundtrip(pdu.clone(), Digests::CRC32C);
            let without = pdu.encode(Digests::NONE);
            let data_digest = if without.len() > 48 + pdu_ahs_len(&without) {
                4
            } else {
                0
            };
            assert_eq!(with.len(), without.len() + 4 + data_digest, "{pdu:?}");
        }
    }

    fn pdu_ahs_len(bytes: &[u8]) -> usize {
        usize::from(bytes[4]) * 4
    }

    #[test]
    fn extended_cdb_and_bidi_ahs_layout() {
        let mut cmd = ScsiCommand {
            bidi_read_length: Some(0x0102_0304),
            ..Default::default()
        };
        cmd.set_cdb(&[0x7F; 20]);
        let bytes = Pdu::ScsiCommand(cmd.clone()).encode(Digests::NONE);
        // Extended CDB AHS: length 20-15=5, type 1, reserved, 4 CDB bytes (8 bytes, no
        // padding); then the bidirectional AHS.
        assert_eq!(bytes[4], 4, "TotalAHSLength in words");
        assert_eq!(
            &bytes[48..64],
            &[0, 5, 1, 0, 0x7F, 0x7F, 0x7F, 0x7F, 0, 5, 2, 0, 1, 2, 3, 4]
        );
        let Pdu::ScsiCommand(back) =
            Pdu::decode(&bytes, &WireConfig::new(Digests::NONE, 8192)).unwrap()
        else {
            panic!()
        };
        assert_eq!(back.full_cdb(), vec![0x7F; 20]);
    }

    #[test]
    fn framing_reports_remaining_bytes_and_limits() {
        let pdu = Pdu::DataOut(DataOut {
            data: vec![0; 10],
            ..Default::default()
        });
        let bytes = pdu.encode(Digests::CRC32C);
        let bhs: &[u8; 48] = bytes[..48].try_into().unwrap();
        // header digest 4 + 10 data + 2 pad + data digest 4
        let config = WireConfig::new(Digests::CRC32C, 8192);
        assert_eq!(remaining_len(bhs, &config).unwrap(), 20);
        assert_eq!(remaining_len(bhs, &WireConfig::LOGIN).unwrap(), 12);
        let tight = WireConfig::new(Digests::CRC32C, 9);
        assert_eq!(
            remaining_len(bhs, &tight),
            Err(DecodeError::DataSegmentTooLong {
                opcode: 0x05,
                length: 10,
                max: 9
            })
        );
        // A 16 MiB claim is refused before anything is allocated.
        let mut huge = *bhs;
        huge[5..8].copy_from_slice(&[0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            remaining_len(&huge, &WireConfig::LOGIN),
            Err(DecodeError::DataSegmentTooLong {
                length: 0xFF_FFFF,
                max: 8192,
                ..
            })
        ));
    }

    #[test]
    fn decode_from_a_stream_buffer() {
        let a = Pdu::NopIn(NopIn {
            itt: 1,
            data: vec![1, 2, 3],
            ..Default::default()
        });
        let b = Pdu::NopIn(NopIn {
            itt: 2,
            ..Default::default()
        });
        let mut buf = a.encode(Digests::NONE);
        buf.extend(b.encode(Digests::NONE));
        let config = WireConfig::LOGIN;
        assert_eq!(Pdu::decode_from(&buf[..47], &config), Ok(None));
        assert_eq!(Pdu::decode_from(&buf[..50], &config), Ok(None));
        let (first, n) = Pdu::decode_from(&buf, &config).unwrap().unwrap();
        assert_eq!((first, n), (a, 52));
        let (second, m) = Pdu::decode_from(&buf[n..], &config).unwrap().unwrap();
        assert_eq!((second, m), (b, 48));
    }

    #[test]
    fn digest_errors_are_told_apart() {
        let pdu = Pdu::DataOut(DataOut {
            itt: 0x77,
            data: vec![9; 8],
            ..Default::default()
        });
        let config = WireConfig::new(Digests::CRC32C, 8192);
        let good = pdu.encode(Digests::CRC32C);
        let mut bad_data = good.clone();
        bad_data[48 + 4] ^= 1;
        let err = Pdu::decode(&bad_data, &config).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::DataDigest {
                    opcode: 0x05,
                    itt: 0x77,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.reject_reason(), Some(RejectReason::DataDigestError));
        let mut bad_header = good.clone();
        bad_header[20] ^= 1;
        let err = Pdu::decode(&bad_header, &config).unwrap_err();
        assert!(matches!(err, DecodeError::HeaderDigest { .. }), "{err:?}");
        assert_eq!(err.reject_reason(), None);
    }

    #[test]
    fn reserved_opcodes_and_bad_fields_are_errors() {
        let mut bhs = [0u8; 48];
        bhs[0] = 0x1c; // vendor specific
        assert_eq!(
            Pdu::decode(&bhs, &WireConfig::LOGIN),
            Err(DecodeError::UnknownOpcode { opcode: 0x1c })
        );
        bhs[0] = 0x01;
        bhs[1] = 0x87; // task attribute 7
        assert!(matches!(
            Pdu::decode(&bhs, &WireConfig::LOGIN),
            Err(DecodeError::InvalidField {
                field: "task attribute",
                ..
            })
        ));
        bhs[0] = 0x21;
        bhs[1] = 0x86; // O and U both
        assert!(matches!(
            Pdu::decode(&bhs, &WireConfig::LOGIN),
            Err(DecodeError::InvalidField { .. })
        ));
        bhs[0] = 0x43;
        bhs[1] = 0x88; // T, CSG=2
        assert!(matches!(
            Pdu::decode(&bhs, &WireConfig::LOGIN),
            Err(DecodeError::InvalidField { field: "CSG", .. })
        ));
        bhs[0] = 0x21;
        bhs[1] = 0x80;
        bhs[7] = 1; // one data byte: no room for SenseLength
        let mut frame = bhs.to_vec();
        frame.extend([0, 0, 0, 0]);
        assert!(matches!(
            Pdu::decode(&frame, &WireConfig::LOGIN),
            Err(DecodeError::BadData { .. })
        ));
        assert_eq!(
            Pdu::decode(&frame[..50], &WireConfig::LOGIN),
            Err(DecodeError::Length {
                expected: 52,
                actual: 50
            })
        );
    }

    #[test]
    fn bad_ahs_is_refused() {
        let mut frame = vec![0u8; 52];
        frame[0] = 0x01;
        frame[1] = 0x81;
        frame[4] = 1;
        frame[48..52].copy_from_slice(&[0, 9, 1, 0]); // claims 9 bytes in a 4-byte area
        assert!(matches!(
            Pdu::decode(&frame, &WireConfig::LOGIN),
            Err(DecodeError::BadAhs { .. })
        ));
        frame[48..52].copy_from_slice(&[0, 0, 7, 0]);
        assert!(matches!(
            Pdu::decode(&frame, &WireConfig::LOGIN),
            Err(DecodeError::BadAhs {
                detail: "unknown AHS type",
                ..
            })
        ));
    }

    #[test]
    fn borrowed_data_frames_match_owned_encoding() {
        let data = vec![5u8; 4097];
        let header = DataIn {
            final_: true,
            itt: 3,
            data_sn: 4,
            buffer_offset: 100,
            ..Default::default()
        };
        let frame = header.encode_with(&data, Digests::CRC32C);
        assert!(std::ptr::eq(frame.data, data.as_slice()));
        let owned = Pdu::DataIn(DataIn {
            data: data.clone(),
            ..header.clone()
        });
        assert_eq!(frame.to_vec(), owned.encode(Digests::CRC32C));
        let out = DataOut {
            itt: 3,
            ..Default::default()
        };
        assert_eq!(
            out.encode_with(&data, Digests::NONE).to_vec(),
            Pdu::DataOut(DataOut {
                data,
                ..out.clone()
            })
            .encode(Digests::NONE)
        );
    }

    #[test]
    fn login_status_words_and_codes() {
        assert_eq!(LoginStatus::from_parts(2, 3), LoginStatus::NotFound);
        assert_eq!(LoginStatus::NotFound.parts(), (2, 3));
        assert_eq!(
            LoginStatus::AuthenticationFailure.to_string(),
            "authentication failed (0x0201)"
        );
        let odd = LoginStatus::from_parts(3, 9);
        assert_eq!(
            odd,
            LoginStatus::Other {
                class: 3,
                detail: 9
            }
        );
        assert_eq!(odd.parts(), (3, 9));
        assert!(LoginStatus::TargetMovedTemporarily.is_redirect());
    }

    #[test]
    fn reject_exposes_the_rejected_header() {
        let mut header = vec![0u8; 48];
        header[0] = 0x41;
        header[16..20].copy_from_slice(&0xDEAD_BEEFu32.to_be_bytes());
        let r = Reject {
            header,
            ..Default::default()
        };
        assert_eq!(r.rejected_opcode(), Some(0x01));
        assert_eq!(r.rejected_itt(), Some(0xDEAD_BEEF));
        assert_eq!(Pdu::Reject(r).itt(), RESERVED_TAG);
    }

    #[test]
    fn lun_forms() {
        assert_eq!(lun_from_number(0), 0);
        assert_eq!(lun_from_number(1), 0x0001_0000_0000_0000);
        assert_eq!(lun_from_number(300), 0x412C_0000_0000_0000);
        assert_eq!(lun_number(0x412C_0000_0000_0000), Some(300));
        assert_eq!(lun_number(0x0005_0000_0000_0000), Some(5));
        assert_eq!(lun_number(0x0005_0000_0000_0001), None);
        assert_eq!(lun_number(0x8005_0000_0000_0000), None);
    }

    #[test]
    fn opcode_directions() {
        assert!(Opcode::Snack.is_initiator());
        assert!(!Opcode::R2t.is_initiator());
        for v in 0..=0x3Fu8 {
            if let Some(op) = Opcode::from_u8(v) {
                assert_eq!(op.to_u8(), v);
            }
        }
    }
}
