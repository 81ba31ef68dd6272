//! Operational parameters and their negotiation (RFC 7143 sections 6 and 13).
//!
//! [`Limits`] is what one end proposes or accepts; [`SessionParams`] the negotiated
//! result, starting from the RFC defaults. A [`Negotiator`] holds one end's side of the
//! negotiation: as responder ([`Negotiator::respond`]) it answers the peer's offers; as
//! originator ([`Negotiator::offers`], [`Negotiator::absorb`]) it makes offers and checks
//! the answers. The result functions:
//!
//! | key | kind | range |
//! | --- | --- | --- |
//! | HeaderDigest, DataDigest | list (`CRC32C`, `None`) | |
//! | MaxConnections | minimum | 1..=65535 |
//! | InitialR2T, DataPDUInOrder, DataSequenceInOrder | OR | |
//! | ImmediateData | AND | |
//! | MaxRecvDataSegmentLength | declarative, per direction | 512..=2^24-1 |
//! | MaxBurstLength, FirstBurstLength | minimum (First ≤ Max) | 512..=2^24-1 |
//! | DefaultTime2Wait | maximum | 0..=3600 |
//! | DefaultTime2Retain | minimum | 0..=3600 |
//! | MaxOutstandingR2T | minimum | 1..=65535 |
//! | ErrorRecoveryLevel | minimum | 0..=2 |
//! | iSCSIProtocolLevel (RFC 7144) | minimum, we speak 1 | 0..=31 |
//!
//! Values out of range or malformed are answered `Reject` (the key keeps its default);
//! IFMarker and OFMarker (RFC 3720) get `No`, their intervals `Irrelevant`, `X-` keys
//! and unknown keys `NotUnderstood`. A key the peer offers twice fails the negotiation.
//! When FirstBurstLength ends above MaxBurstLength (the keys came in the "wrong" order),
//! both ends clamp it to MaxBurstLength in [`Negotiator::finish`].

use thiserror::Error;

use crate::digest::{DigestType, Digests};
use crate::pdu::{WireConfig, MAX_DATA_SEGMENT_LEN};
use crate::text::{TextList, IRRELEVANT, MAX_SHORT_VALUE_LEN, NOT_UNDERSTOOD, REJECT};

/// The iSCSIProtocolLevel this crate implements (RFC 7143).
pub const PROTOCOL_LEVEL: u8 = 1;

/// Which end of the connection this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The initiator.
    Initiator,
    /// The target.
    Target,
}

/// SessionType.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SessionType {
    /// A session with a target, for SCSI commands.
    #[default]
    Normal,
    /// A discovery session: SendTargets only.
    Discovery,
}

impl SessionType {
    /// The key value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Normal => "Normal",
            SessionType::Discovery => "Discovery",
        }
    }

    /// Parses the key value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "Normal" => Some(SessionType::Normal),
            "Discovery" => Some(SessionType::Discovery),
            _ => None,
        }
    }
}

/// What one end proposes (as originator) or accepts (as responder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Header digests allowed, in order of preference.
    pub header_digests: Vec<DigestType>,
    /// Data digests allowed, in order of preference.
    pub data_digests: Vec<DigestType>,
    /// This end's MaxRecvDataSegmentLength (declared to the peer).
    pub max_recv_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// InitialR2T wanted (Yes is the conservative value).
    pub initial_r2t: bool,
    /// ImmediateData wanted.
    pub immediate_data: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// MaxConnections.
    pub max_connections: u16,
    /// DefaultTime2Wait, seconds.
    pub default_time2wait: u16,
    /// DefaultTime2Retain, seconds.
    pub default_time2retain: u16,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
    /// DataPDUInOrder wanted.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder wanted.
    pub data_sequence_in_order: bool,
}

impl Default for Limits {
    /// Digests allowed but not preferred, 256 KiB data segments, 1 MiB bursts with
    /// 256 KiB first bursts, immediate data without an initial R2T, error recovery
    /// level 0, one connection, one outstanding R2T.
    fn default() -> Self {
        Self {
            header_digests: vec![DigestType::None, DigestType::Crc32c],
            data_digests: vec![DigestType::None, DigestType::Crc32c],
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1_048_576,
            first_burst_length: 262_144,
            initial_r2t: false,
            immediate_data: true,
            max_outstanding_r2t: 1,
            max_connections: 1,
            default_time2wait: 2,
            default_time2retain: 0,
            error_recovery_level: 0,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
        }
    }
}

/// The negotiated operational parameters of a session (RFC defaults until negotiated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// HeaderDigest.
    pub header_digest: DigestType,
    /// DataDigest.
    pub data_digest: DigestType,
    /// MaxConnections.
    pub max_connections: u16,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxRecvDataSegmentLength declared by the initiator: the target sends data
    /// segments of at most this.
    pub initiator_max_recv_data_segment_length: u32,
    /// MaxRecvDataSegmentLength declared by the target: the initiator sends data
    /// segments of at most this.
    pub target_max_recv_data_segment_length: u32,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength (never above MaxBurstLength).
    pub first_burst_length: u32,
    /// DefaultTime2Wait.
    pub default_time2wait: u16,
    /// DefaultTime2Retain.
    pub default_time2retain: u16,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u16,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u8,
    /// iSCSIProtocolLevel (0 when not negotiated).
    pub protocol_level: u8,
}

impl Default for SessionParams {
    /// The defaults of RFC 7143 section 13.
    fn default() -> Self {
        Self {
            header_digest: DigestType::None,
            data_digest: DigestType::None,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            initiator_max_recv_data_segment_length: 8192,
            target_max_recv_data_segment_length: 8192,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
            protocol_level: 0,
        }
    }
}

impl SessionParams {
    /// The digests in force in the full feature phase.
    pub fn digests(&self) -> Digests {
        Digests {
            header: self.header_digest,
            data: self.data_digest,
        }
    }

    /// The largest data segment `role` accepts.
    pub fn recv_limit(&self, role: Role) -> u32 {
        match role {
            Role::Initiator => self.initiator_max_recv_data_segment_length,
            Role::Target => self.target_max_recv_data_segment_length,
        }
    }

    /// The largest data segment `role` may send.
    pub fn send_limit(&self, role: Role) -> u32 {
        match role {
            Role::Initiator => self.target_max_recv_data_segment_length,
            Role::Target => self.initiator_max_recv_data_segment_length,
        }
    }

    /// What `role`'s decoder uses in the full feature phase.
    pub fn wire_config(&self, role: Role) -> WireConfig {
        WireConfig::new(self.digests(), self.recv_limit(role))
    }
}

/// Why a negotiation failed (the login fails with "initiator error", or the initiator
/// gives up).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// The peer offered a key a second time.
    #[error("key {key} negotiated twice")]
    Duplicate {
        /// The key.
        key: String,
    },
    /// The peer's answer is not a possible result of our offer.
    #[error("answer {key}={value} does not fit our offer {offered}")]
    BadAnswer {
        /// The key.
        key: String,
        /// The answer.
        value: String,
        /// What we offered.
        offered: String,
    },
}

/// Whether `key` is one the [`Negotiator`] handles (operational keys, known or not);
/// false for the login keys (names, session type, portal keys, security keys).
pub fn is_operational_key(key: &str) -> bool {
    !matches!(
        key,
        "InitiatorName"
            | "InitiatorAlias"
            | "TargetName"
            | "TargetAlias"
            | "TargetAddress"
            | "TargetPortalGroupTag"
            | "SessionType"
            | "SendTargets"
            | "AuthMethod"
    ) && !key.starts_with("CHAP_")
}

/// The responder's answer to a value of a kind.
enum Outcome {
    /// Answer with this value.
    Answer(String),
    /// No answer (declarative keys).
    Silent,
}

/// One end's side of an operational negotiation.
#[derive(Clone, Debug)]
pub struct Negotiator {
    role: Role,
    limits: Limits,
    params: SessionParams,
    /// Keys the peer offered (each may come once).
    seen: Vec<String>,
    /// Keys we offered whose answer has not come, with the value offered.
    pending: Vec<(String, String)>,
    declared: bool,
}

impl Negotiator {
    /// A negotiation for `role` within `limits`.
    pub fn new(role: Role, limits: Limits) -> Self {
        Self {
            role,
            limits,
            params: SessionParams::default(),
            seen: Vec::new(),
            pending: Vec::new(),
            declared: false,
        }
    }

    /// This end's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The parameters as negotiated so far.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Answers every operational key in `offers` (other keys are skipped: see
    /// [`is_operational_key`]). Keys that need no answer (declarations) get none.
    pub fn respond(&mut self, offers: &TextList) -> Result<TextList, NegotiationError> {
        let mut answers = TextList::new();
        for (key, value) in offers.iter().filter(|(k, _)| is_operational_key(k)) {
            if let Some(answer) = self.respond_one(key, value)? {
                answers.push(key, answer);
            }
        }
        Ok(answers)
    }

    /// Answers one offered key; `None` when no answer is due.
    pub fn respond_one(
        &mut self,
        key: &str,
        value: &str,
    ) -> Result<Option<String>, NegotiationError> {
        if self.seen.iter().any(|k| k == key) {
            return Err(NegotiationError::Duplicate { key: key.into() });
        }
        self.seen.push(key.into());
        if is_special(value) {
            // An answer to something we never offered: nothing to do.
            return Ok(None);
        }
        if value.len() > MAX_SHORT_VALUE_LEN {
            return Ok(Some(REJECT.into()));
        }
        Ok(match self.answer(key, value) {
            Outcome::Answer(a) => Some(a),
            Outcome::Silent => None,
        })
    }

    fn answer(&mut self, key: &str, value: &str) -> Outcome {
        let l = &self.limits;
        let p = &mut self.params;
        let reject = || Outcome::Answer(REJECT.into());
        match key {
            "HeaderDigest" => match choose_digest(value, &l.header_digests) {
                Some(d) => {
                    p.header_digest = d;
                    Outcome::Answer(d.as_str().into())
                }
                None => reject(),
            },
            "DataDigest" => match choose_digest(value, &l.data_digests) {
                Some(d) => {
                    p.data_digest = d;
                    Outcome::Answer(d.as_str().into())
                }
                None => reject(),
            },
            "MaxConnections" => numeric(value, 1, 65535, |v| {
                let r = v.min(u64::from(l.max_connections));
                p.max_connections = r as u16;
                r
            }),
            "InitialR2T" => boolean(value, |v| {
                p.initial_r2t = v || l.initial_r2t;
                p.initial_r2t
            }),
            "ImmediateData" => boolean(value, |v| {
                p.immediate_data = v && l.immediate_data;
                p.immediate_data
            }),
            "DataPDUInOrder" => boolean(value, |v| {
                p.data_pdu_in_order = v || l.data_pdu_in_order;
                p.data_pdu_in_order
            }),
            "DataSequenceInOrder" => boolean(value, |v| {
                p.data_sequence_in_order = v || l.data_sequence_in_order;
                p.data_sequence_in_order
            }),
            "MaxRecvDataSegmentLength" => {
                match parse_number(value)
                    .filter(|v| (512..=u64::from(MAX_DATA_SEGMENT_LEN)).contains(v))
                {
                    Some(v) => {
                        set_peer_recv(p, self.role, v as u32);
                        Outcome::Silent
                    }
                    None => reject(),
                }
            }
            "MaxBurstLength" => numeric(value, 512, u64::from(MAX_DATA_SEGMENT_LEN), |v| {
                let r = v.min(u64::from(l.max_burst_length));
                p.max_burst_length = r as u32;
                r
            }),
            "FirstBurstLength" => numeric(value, 512, u64::from(MAX_DATA_SEGMENT_LEN), |v| {
                let r = v
                    .min(u64::from(l.first_burst_length))
                    .min(u64::from(l.max_burst_length));
                p.first_burst_length = r as u32;
                r
            }),
            "DefaultTime2Wait" => numeric(value, 0, 3600, |v| {
                let r = v.max(u64::from(l.default_time2wait));
                p.default_time2wait = r as u16;
                r
            }),
            "DefaultTime2Retain" => numeric(value, 0, 3600, |v| {
                let r = v.min(u64::from(l.default_time2retain));
                p.default_time2retain = r as u16;
                r
            }),
            "MaxOutstandingR2T" => numeric(value, 1, 65535, |v| {
                let r = v.min(u64::from(l.max_outstanding_r2t));
                p.max_outstanding_r2t = r as u16;
                r
            }),
            "ErrorRecoveryLevel" => numeric(value, 0, 2, |v| {
                let r = v.min(u64::from(l.error_recovery_level));
                p.error_recovery_level = r as u8;
                r
            }),
            "iSCSIProtocolLevel" => numeric(value, 0, 31, |v| {
                let r = v.min(u64::from(PROTOCOL_LEVEL));
                p.protocol_level = r as u8;
                r
            }),
            // RFC 3720 markers, and iSER, which this crate does not do.
            "IFMarker" | "OFMarker" | "RDMAExtensions" => boolean(value, |_| false),
            "IFMarkInt"
            | "OFMarkInt"
            | "InitiatorRecvDataSegmentLength"
            | "TargetRecvDataSegmentLength" => Outcome::Answer(IRRELEVANT.into()),
            "TaskReporting" => {
                if value.split(',').any(|v| v == "RFC3720") {
                    Outcome::Answer("RFC3720".into())
                } else {
                    reject()
                }
            }
            _ => Outcome::Answer(NOT_UNDERSTOOD.into()),
        }
    }

    /// This end's MaxRecvDataSegmentLength declaration, the first time it is asked for
    /// (a target adds it to its first operational-stage response; [`Negotiator::offers`]
    /// includes it).
    pub fn take_declaration(&mut self) -> Option<(&'static str, String)> {
        if self.declared {
            return None;
        }
        self.declared = true;
        let ours = self.limits.max_recv_data_segment_length;
        match self.role {
            Role::Initiator => self.params.initiator_max_recv_data_segment_length = ours,
            Role::Target => self.params.target_max_recv_data_segment_length = ours,
        }
        Some(("MaxRecvDataSegmentLength", ours.to_string()))
    }

    /// The originator's offers (in the order open-iscsi sends them), remembered so the
    /// answers can be checked. A discovery session offers only the keys that apply to it.
    pub fn offers(&mut self, session_type: SessionType) -> TextList {
        let l = &self.limits;
        let yes_no = |b: bool| if b { "Yes" } else { "No" }.to_string();
        let digests = |list: &[DigestType]| {
            let names: Vec<&str> = list.iter().map(|d| d.as_str()).collect();
            if names.is_empty() {
                "None".to_string()
            } else {
                names.join(",")
            }
        };
        let mut offers: Vec<(&'static str, String)> = vec![
            ("HeaderDigest", digests(&l.header_digests)),
            ("DataDigest", digests(&l.data_digests)),
            ("DefaultTime2Wait", l.default_time2wait.to_string()),
            ("DefaultTime2Retain", l.default_time2retain.to_string()),
            ("ErrorRecoveryLevel", l.error_recovery_level.to_string()),
        ];
        if session_type == SessionType::Normal {
            offers.extend([
                ("InitialR2T", yes_no(l.initial_r2t)),
                ("ImmediateData", yes_no(l.immediate_data)),
                ("MaxBurstLength", l.max_burst_length.to_string()),
                (
                    "FirstBurstLength",
                    l.first_burst_length.min(l.max_burst_length).to_string(),
                ),
                ("MaxOutstandingR2T", l.max_outstanding_r2t.to_string()),
                ("MaxConnections", l.max_connections.to_string()),
                ("DataPDUInOrder", yes_no(l.data_pdu_in_order)),
                ("DataSequenceInOrder", yes_no(l.data_sequence_in_order)),
            ]);
        }
        let mut list = TextList::new();
        for (key, value) in offers {
            self.pending.push((key.to_string(), value.clone()));
            list.push(key, value);
        }
        if let Some((key, value)) = self.take_declaration() {
            list.push(key, value);
        }
        list
    }

    /// Takes in the peer's keys as originator: answers to our offers are checked and
    /// applied, declarations recorded, and keys the peer originated answered (the
    /// returned list goes into our next PDU). Non-operational keys are skipped.
    pub fn absorb(&mut self, keys: &TextList) -> Result<TextList, NegotiationError> {
        let mut counter = TextList::new();
        for (key, value) in keys.iter().filter(|(k, _)| is_operational_key(k)) {
            if let Some(i) = self.pending.iter().position(|(k, _)| k == key) {
                let (_, offered) = self.pending.remove(i);
                self.apply_answer(key, value, &offered)?;
            } else if let Some(answer) = self.respond_one(key, value)? {
                counter.push(key, answer);
            }
        }
        Ok(counter)
    }

    fn apply_answer(
        &mut self,
        key: &str,
        value: &str,
        offered: &str,
    ) -> Result<(), NegotiationError> {
        if is_special(value) {
            tracing::debug!(key, value, "peer declined our offer; the default stays");
            return Ok(());
        }
        let bad = || NegotiationError::BadAnswer {
            key: key.into(),
            value: value.chars().take(64).collect(),
            offered: offered.into(),
        };
        let p = &mut self.params;
        let num = |lo: u64, hi: u64| parse_number(value).filter(|v| (lo..=hi).contains(v));
        let ours = parse_number(offered).unwrap_or(0);
        let max_len = u64::from(MAX_DATA_SEGMENT_LEN);
        match key {
            "HeaderDigest" | "DataDigest" => {
                let d = DigestType::parse(value)
                    .filter(|d| offered.split(',').any(|o| o == d.as_str()))
                    .ok_or_else(bad)?;
                if key == "HeaderDigest" {
                    p.header_digest = d;
                } else {
                    p.data_digest = d;
                }
            }
            "InitialR2T" | "DataPDUInOrder" | "DataSequenceInOrder" => {
                // OR: a Yes offer can only come back Yes.
                let v = parse_bool(value)
                    .filter(|&v| v || offered == "No")
                    .ok_or_else(bad)?;
                match key {
                    "InitialR2T" => p.initial_r2t = v,
                    "DataPDUInOrder" => p.data_pdu_in_order = v,
                    _ => p.data_sequence_in_order = v,
                }
            }
            "ImmediateData" => {
                // AND: a No offer can only come back No.
                p.immediate_data = parse_bool(value)
                    .filter(|&v| !v || offered == "Yes")
                    .ok_or_else(bad)?;
            }
            "MaxBurstLength" => {
                p.max_burst_length = num(512, ours.min(max_len)).ok_or_else(bad)? as u32;
            }
            "FirstBurstLength" => {
                p.first_burst_length = num(512, ours.min(max_len)).ok_or_else(bad)? as u32;
            }
            "MaxConnections" => p.max_connections = num(1, ours.min(65535)).ok_or_else(bad)? as u16,
            "MaxOutstandingR2T" => {
                p.max_outstanding_r2t = num(1, ours.min(65535)).ok_or_else(bad)? as u16;
            }
            "DefaultTime2Wait" => p.default_time2wait = num(ours, 3600).ok_or_else(bad)? as u16,
            "DefaultTime2Retain" => {
                p.default_time2retain = num(0, ours.min(3600)).ok_or_else(bad)? as u16;
            }
            "ErrorRecoveryLevel" => {
                p.error_recovery_level = num(0, ours.min(2)).ok_or_else(bad)? as u8;
            }
            "iSCSIProtocolLevel" => p.protocol_level = num(0, ours.min(31)).ok_or_else(bad)? as u8,
            _ => {}
        }
        Ok(())
    }

    /// The negotiated parameters: offers left unanswered take the value their result
    /// function forces (an OR offer of Yes, an AND offer of No) or else the default, and
    /// FirstBurstLength is clamped to MaxBurstLength.
    pub fn finish(&self) -> SessionParams {
        let mut p = self.params;
        for (key, offered) in &self.pending {
            match (key.as_str(), offered.as_str()) {
                ("InitialR2T", "Yes") => p.initial_r2t = true,
                ("DataPDUInOrder", "Yes") => p.data_pdu_in_order = true,
                ("DataSequenceInOrder", "Yes") => p.data_sequence_in_order = true,
                ("ImmediateData", "No") => p.immediate_data = false,
                _ => {}
            }
        }
        p.first_burst_length = p.first_burst_length.min(p.max_burst_length);
        p
    }
}

fn set_peer_recv(p: &mut SessionParams, role: Role, value: u32) {
    match role {
        Role::Initiator => p.target_max_recv_data_segment_length = value,
        Role::Target => p.initiator_max_recv_data_segment_length = value,
    }
}

fn is_special(value: &str) -> bool {
    matches!(value, REJECT | IRRELEVANT | NOT_UNDERSTOOD)
}

/// The first digest of the offer that `allowed` has.
fn choose_digest(offer: &str, allowed: &[DigestType]) -> Option<DigestType> {
    offer
        .split(',')
        .filter_map(DigestType::parse)
        .find(|d| allowed.contains(d))
}

/// A numeric key: parse, range-check, compute the result with `f`, answer it.
fn numeric(value: &str, lo: u64, hi: u64, f: impl FnOnce(u64) -> u64) -> Outcome {
    match parse_number(value).filter(|v| (lo..=hi).contains(v)) {
        Some(v) => Outcome::Answer(f(v).to_string()),
        None => Outcome::Answer(REJECT.into()),
    }
}

/// A boolean key: parse, compute the result with `f`, answer it.
fn boolean(value: &str, f: impl FnOnce(bool) -> bool) -> Outcome {
    match parse_bool(value) {
        Some(v) => Outcome::Answer(if f(v) { "Yes" } else { "No" }.into()),
        None => Outcome::Answer(REJECT.into()),
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

/// A numerical value: decimal, or hex with `0x` (RFC 7143 section 5.1).
pub fn parse_number(value: &str) -> Option<u64> {
    if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        if hex.is_empty() || hex.len() > 16 {
            return None;
        }
        return u64::from_str_radix(hex, 16).ok();
    }
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pairs: &[(&str, &str)]) -> TextList {
        pairs.iter().copied().collect()
    }

    fn answers(list: &TextList) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// libiscsi 1.19's operational keys (lib/login.c, defaults of lib/init.c).
    fn libiscsi_offer() -> TextList {
        text(&[
            ("HeaderDigest", "None,CRC32C"),
            ("DataDigest", "None"),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "262144"),
            ("DefaultTime2Wait", "2"),
            ("DefaultTime2Retain", "0"),
            ("MaxOutstandingR2T", "1"),
            ("ErrorRecoveryLevel", "0"),
            ("IFMarker", "No"),
            ("OFMarker", "No"),
            ("MaxConnections", "1"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("DataPDUInOrder", "Yes"),
            ("DataSequenceInOrder", "Yes"),
        ])
    }

    #[test]
    fn target_answers_libiscsi() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        let a = n.respond(&libiscsi_offer()).unwrap();
        assert_eq!(
            answers(&a),
            answers(&text(&[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxBurstLength", "262144"),
                ("FirstBurstLength", "262144"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxOutstandingR2T", "1"),
                ("ErrorRecoveryLevel", "0"),
                ("IFMarker", "No"),
                ("OFMarker", "No"),
                ("MaxConnections", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
            ]))
        );
        assert_eq!(
            n.take_declaration(),
            Some(("MaxRecvDataSegmentLength", "262144".to_string()))
        );
        assert_eq!(n.take_declaration(), None);
        let p = n.finish();
        assert_eq!(p.initiator_max_recv_data_segment_length, 262_144);
        assert_eq!(p.target_max_recv_data_segment_length, 262_144);
        assert_eq!(p.send_limit(Role::Target), 262_144);
        assert!(!p.initial_r2t && p.immediate_data);
        assert_eq!(p.default_time2retain, 0);
    }

    #[test]
    fn target_answers_open_iscsi_within_its_limits() {
        let limits = Limits {
            max_burst_length: 65536,
            first_burst_length: 65536,
            header_digests: vec![DigestType::Crc32c, DigestType::None],
            ..Limits::default()
        };
        let mut n = Negotiator::new(Role::Target, limits);
        let offer = text(&[
            ("HeaderDigest", "CRC32C,None"),
            ("DataDigest", "CRC32C"),
            ("MaxBurstLength", "16776192"),
            ("FirstBurstLength", "262144"),
            ("DefaultTime2Wait", "0"),
            ("DefaultTime2Retain", "20"),
            ("MaxOutstandingR2T", "8"),
            ("ErrorRecoveryLevel", "2"),
        ]);
        let a = n.respond(&offer).unwrap();
        assert_eq!(
            answers(&a),
            answers(&text(&[
                ("HeaderDigest", "CRC32C"),
                ("DataDigest", "CRC32C"),
                ("MaxBurstLength", "65536"),
                ("FirstBurstLength", "65536"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxOutstandingR2T", "1"),
                ("ErrorRecoveryLevel", "0"),
            ]))
        );
        assert_eq!(n.finish().digests(), Digests::CRC32C);
    }

    #[test]
    fn digests_we_do_not_allow_are_rejected() {
        let limits = Limits {
            data_digests: vec![DigestType::None],
            ..Limits::default()
        };
        let mut n = Negotiator::new(Role::Target, limits);
        let a = n.respond(&text(&[("DataDigest", "CRC32C")])).unwrap();
        assert_eq!(a.get("DataDigest"), Some("Reject"));
        assert_eq!(n.finish().data_digest, DigestType::None);
    }

    #[test]
    fn out_of_range_and_malformed_values_are_rejected() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        let a = n
            .respond(&text(&[
                ("MaxBurstLength", "511"),
                ("FirstBurstLength", "16777216"),
                ("ErrorRecoveryLevel", "3"),
                ("MaxConnections", "0"),
                ("DefaultTime2Wait", "3601"),
                ("InitialR2T", "yes"),
                ("MaxOutstandingR2T", "-1"),
                ("MaxRecvDataSegmentLength", "100"),
                ("iSCSIProtocolLevel", "2"),
                ("X-com.example.Foo", "1"),
                ("Mystery", "1"),
                ("IFMarkInt", "2048"),
                ("TaskReporting", "ResponseFence,RFC3720"),
            ]))
            .unwrap();
        assert_eq!(
            answers(&a),
            answers(&text(&[
                ("MaxBurstLength", "Reject"),
                ("FirstBurstLength", "Reject"),
                ("ErrorRecoveryLevel", "Reject"),
                ("MaxConnections", "Reject"),
                ("DefaultTime2Wait", "Reject"),
                ("InitialR2T", "Reject"),
                ("MaxOutstandingR2T", "Reject"),
                ("MaxRecvDataSegmentLength", "Reject"),
                ("iSCSIProtocolLevel", "1"),
                ("X-com.example.Foo", "NotUnderstood"),
                ("Mystery", "NotUnderstood"),
                ("IFMarkInt", "Irrelevant"),
                ("TaskReporting", "RFC3720"),
            ]))
        );
        let p = n.finish();
        assert_eq!(p.max_burst_length, 262_144, "defaults stay");
        assert_eq!(p.initiator_max_recv_data_segment_length, 8192);
        assert_eq!(p.protocol_level, 1);
    }

    #[test]
    fn hex_numbers_and_long_values() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        let long = "1".repeat(256);
        let a = n
            .respond(&text(&[
                ("MaxBurstLength", "0x1000"),
                ("FirstBurstLength", &long),
            ]))
            .unwrap();
        assert_eq!(a.get("MaxBurstLength"), Some("4096"));
        assert_eq!(a.get("FirstBurstLength"), Some("Reject"));
    }

    #[test]
    fn a_key_offered_twice_fails() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        n.respond(&text(&[("MaxBurstLength", "4096")])).unwrap();
        assert_eq!(
            n.respond(&text(&[("MaxBurstLength", "8192")])),
            Err(NegotiationError::Duplicate {
                key: "MaxBurstLength".into()
            })
        );
    }

    #[test]
    fn login_keys_are_left_to_the_login_layer() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        let a = n
            .respond(&text(&[
                ("InitiatorName", "iqn.x"),
                ("AuthMethod", "None"),
                ("CHAP_A", "5"),
            ]))
            .unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn first_burst_is_clamped_to_max_burst() {
        let mut n = Negotiator::new(Role::Target, Limits::default());
        // FirstBurstLength before MaxBurstLength, larger than the final MaxBurstLength.
        let a = n
            .respond(&text(&[
                ("FirstBurstLength", "262144"),
                ("MaxBurstLength", "4096"),
            ]))
            .unwrap();
        assert_eq!(a.get("FirstBurstLength"), Some("262144"));
        let p = n.finish();
        assert_eq!((p.first_burst_length, p.max_burst_length), (4096, 4096));
    }

    #[test]
    fn initiator_offers_and_checks_answers() {
        let mut i = Negotiator::new(Role::Initiator, Limits::default());
        let offers = i.offers(SessionType::Normal);
        assert_eq!(
            String::from_utf8(offers.encode()).unwrap(),
            "HeaderDigest=None,CRC32C\0DataDigest=None,CRC32C\0DefaultTime2Wait=2\0\
             DefaultTime2Retain=0\0ErrorRecoveryLevel=0\0InitialR2T=No\0ImmediateData=Yes\0\
             MaxBurstLength=1048576\0FirstBurstLength=262144\0MaxOutstandingR2T=1\0\
             MaxConnections=1\0DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0\
             MaxRecvDataSegmentLength=262144\0"
        );
        // A target with smaller limits answers.
        let mut t = Negotiator::new(
            Role::Target,
            Limits {
                max_burst_length: 65536,
                immediate_data: false,
                max_recv_data_segment_length: 8192,
                ..Limits::default()
            },
        );
        let mut reply = t.respond(&offers).unwrap();
        let (k, v) = t.take_declaration().unwrap();
        reply.push(k, v);
        let counter = i.absorb(&reply).unwrap();
        assert!(counter.is_empty());
        let (ip, tp) = (i.finish(), t.finish());
        assert_eq!(ip, tp, "both ends agree");
        assert_eq!(ip.max_burst_length, 65536);
        assert_eq!(ip.first_burst_length, 65536);
        assert!(!ip.immediate_data);
        assert_eq!(ip.target_max_recv_data_segment_length, 8192);
        assert_eq!(ip.initiator_max_recv_data_segment_length, 262_144);
        assert_eq!(ip.send_limit(Role::Initiator), 8192);
    }

    #[test]
    fn initiator_refuses_answers_that_do_not_fit() {
        let bad_answers = [
            ("MaxBurstLength", "2097152"),
            ("HeaderDigest", "CRC64"),
            ("ImmediateData", "Maybe"),
            ("DataPDUInOrder", "No"),
            ("DefaultTime2Wait", "1"),
        ];
        for (key, value) in bad_answers {
            let mut i = Negotiator::new(Role::Initiator, Limits::default());
            i.offers(SessionType::Normal);
            let err = i.absorb(&text(&[(key, value)])).unwrap_err();
            assert!(
                matches!(err, NegotiationError::BadAnswer { key: ref k, .. } if k == key),
                "{key}={value}: {err:?}"
            );
        }
    }

    #[test]
    fn initiator_handles_declines_and_target_offers() {
        let mut i = Negotiator::new(
            Role::Initiator,
            Limits {
                immediate_data: false,
                ..Limits::default()
            },
        );
        i.offers(SessionType::Normal);
        let counter = i
            .absorb(&text(&[
                ("HeaderDigest", "Reject"),
                ("MaxOutstandingR2T", "NotUnderstood"),
                ("X-target.Key", "1"),
                ("MaxRecvDataSegmentLength", "65536"),
            ]))
            .unwrap();
        assert_eq!(
            answers(&counter),
            answers(&text(&[("X-target.Key", "NotUnderstood")]))
        );
        let p = i.finish();
        assert_eq!(p.header_digest, DigestType::None);
        assert!(!p.immediate_data, "unanswered AND offer of No stays No");
        assert_eq!(p.target_max_recv_data_segment_length, 65536);
    }

    #[test]
    fn discovery_offers_only_what_applies() {
        let mut i = Negotiator::new(Role::Initiator, Limits::default());
        let offers = i.offers(SessionType::Discovery);
        let keys: Vec<&str> = offers.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            vec![
                "HeaderDigest",
                "DataDigest",
                "DefaultTime2Wait",
                "DefaultTime2Retain",
                "ErrorRecoveryLevel",
                "MaxRecvDataSegmentLength"
            ]
        );
    }

    #[test]
    fn wire_config_per_role() {
        let p = SessionParams {
            header_digest: DigestType::Crc32c,
            initiator_max_recv_data_segment_length: 1000,
            target_max_recv_data_segment_length: 2000,
            ..SessionParams::default()
        };
        assert_eq!(p.wire_config(Role::Target).max_data_segment_len, 2000);
        assert_eq!(p.wire_config(Role::Initiator).max_data_segment_len, 1000);
        assert_eq!(
            p.wire_config(Role::Target).digests.header,
            DigestType::Crc32c
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("0x1F"), Some(31));
        assert_eq!(parse_number("+1"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("99999999999999999999999"), None);
    }
}
