//! The remote console end of IPMI over LAN, sans-IO.
//!
//! [`ClientSession`] runs Get Channel Authentication Capabilities, then (when no cipher
//! suite is configured) Get Channel Cipher Suites to choose the strongest of 17, 3, 2, 1,
//! then Open Session, RAKP 1/2, RAKP 3/4 and Set Session Privilege Level, and carries
//! requests. It owns no socket and no clock: [`ClientSession::handle`] takes each datagram
//! received, [`ClientSession::poll_transmit`] gives datagrams to send,
//! [`ClientSession::poll_event`] reports progress, and [`ClientSession::handle_timeout`]
//! (at [`ClientSession::poll_timeout`]) retries.
//!
//! A request that goes unanswered is resent with a new session sequence number (the same
//! rqSeq) until its attempts are spent; a handshake step that goes unanswered restarts the
//! handshake at Open Session with a new console session id, as BMCs do not take kindly to a
//! RAKP 1 or 3 twice.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use tracing::{debug, warn};

use crate::codes::{self, NETFN_APP};
use crate::commands::{
    parse_cipher_suite_records, ChannelAuthCapabilities, ChannelCipherSuites, CloseSession,
    GetChannelAuthCapabilities, GetChannelCipherSuites, SetSessionPrivilege, CURRENT_CHANNEL,
};
use crate::crypto::{self, CipherSuite, RakpInputs, SessionCrypto, SessionKeys};
use crate::seq::{next_outbound, SeqWindow};
use crate::wire::message::Message;
use crate::wire::rakp::{
    OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4, MAX_USERNAME_LEN,
    ROLE_NAME_ONLY_LOOKUP,
};
use crate::wire::session::{encode_v15_sessionless, encode_v20, PayloadType, V20Header};
use crate::wire::{self, Datagram};
use crate::{Error, Password, Privilege, Request, Response};

/// The longest password IPMI v2.0 allows.
pub const MAX_PASSWORD_LEN: usize = 20;

/// How RAKP 1 asks the BMC to find the user (its role byte's bit 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookup {
    /// By name only; the privilege asked for caps the session (ipmitool's default).
    #[default]
    NameOnly,
    /// By name and privilege: the user must hold the privilege asked for.
    NameAndPrivilege,
}

/// Single bridging (ipmitool's `-b CHANNEL -t ADDRESS`): requests go to the controller at
/// `target_address` on `channel`, wrapped in Send Message (app 34h) with request tracking.
/// The answer comes embedded in Send Message's response or as a second response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bridge {
    pub channel: u8,
    pub target_address: u8,
}

impl Bridge {
    /// Send Message's request: tracking (40h) on the channel, then the inner message, which
    /// (as ipmitool builds it) keeps the remote console as requester.
    fn wrap(self, inner: &Message) -> Message {
        let mut body = vec![0x40 | (self.channel & 0x0f)];
        body.extend_from_slice(&inner.encode());
        Message {
            dst_addr: crate::BMC_ADDRESS,
            netfn: NETFN_APP,
            dst_lun: 0,
            src_addr: crate::REMOTE_CONSOLE_ADDRESS,
            seq: inner.seq,
            src_lun: 0,
            cmd: codes::CMD_SEND_MESSAGE,
            body,
        }
    }
}

/// What a session needs to know.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub username: Vec<u8>,
    pub password: Password,
    /// The BMC key; `None` uses the password (Kuid), as most BMCs are set up.
    pub kg: Option<Password>,
    pub privilege: Privilege,
    /// `None`: ask the BMC and take the strongest of 17, 3, 2, 1 it lists.
    pub cipher_suite: Option<CipherSuite>,
    pub lookup: Lookup,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per request (and for the handshake), at least 1.
    pub attempts: u32,
    /// The BMC's address, for error messages only.
    pub peer: String,
    /// Bridge the caller's requests (not the session's own) to another controller.
    pub bridge: Option<Bridge>,
}

impl ClientConfig {
    /// Refuses what IPMI cannot carry: user names over 16 bytes, passwords over 20.
    pub fn validate(&self) -> Result<(), Error> {
        if self.username.len() > MAX_USERNAME_LEN {
            return Err(Error::InvalidArgument(format!(
                "user name is {} bytes; IPMI allows at most {MAX_USERNAME_LEN}",
                self.username.len()
            )));
        }
        if self.password.len() > MAX_PASSWORD_LEN {
            return Err(Error::InvalidArgument(format!(
                "password is longer than the {MAX_PASSWORD_LEN} bytes IPMI v2.0 allows"
            )));
        }
        Ok(())
    }
}

/// Identifies a request across retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// What happened.
#[derive(Debug)]
pub enum Event {
    /// The session is up; requests may be sent.
    Established {
        cipher_suite: CipherSuite,
        privilege: Privilege,
    },
    Response {
        id: RequestId,
        response: Response,
    },
    /// A request went unanswered (the session stays up).
    RequestFailed {
        id: RequestId,
        error: Error,
    },
    /// The session could not be set up, or died.
    Failed(Error),
    /// Close Session answered (or gave up on).
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    AuthCaps,
    CipherSuites,
    Opening,
    AwaitRakp2,
    AwaitRakp4,
    SetPrivilege,
    Established,
    Closing,
    Closed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    AuthCaps,
    CipherSuites { index: u8 },
    SetPrivilege,
    Close,
    Caller,
}

struct Pending {
    id: RequestId,
    /// What goes on the wire (Send Message, when bridged).
    message: Message,
    /// The bridged request, and whether the BMC said it forwarded it.
    bridged: Option<(Message, bool)>,
    purpose: Purpose,
    deadline: Instant,
    attempts: u32,
}

struct Step {
    deadline: Instant,
}

/// The handshake's secrets and numbers.
#[derive(Default)]
struct Handshake {
    candidates: Vec<CipherSuite>,
    candidate: usize,
    suite: Option<CipherSuite>,
    tag: u8,
    attempts: u32,
    managed_session_id: u32,
    console_random: [u8; 16],
    managed_random: [u8; 16],
    managed_guid: [u8; 16],
    records: Vec<u8>,
}

/// One RMCP+ session with a BMC, as a remote console.
pub struct ClientSession {
    config: ClientConfig,
    rng: Box<dyn RngCore + Send + Sync>,
    phase: Phase,
    hs: Handshake,
    console_session_id: u32,
    crypto: Option<SessionCrypto>,
    out_seq: u32,
    window: SeqWindow,
    privilege: Option<Privilege>,
    rq_seq: u8,
    next_id: u64,
    pending: Vec<Pending>,
    step: Option<Step>,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("peer", &self.config.peer)
            .field("phase", &self.phase)
            .field("cipher_suite", &self.hs.suite)
            .finish_non_exhaustive()
    }
}

/// Requests in flight at once: rqSeq has 64 values, a few are enough.
const MAX_PENDING: usize = 16;

impl ClientSession {
    pub fn new(config: ClientConfig) -> Self {
        Self::with_rng(config, Box::new(rand::rngs::StdRng::from_os_rng()))
    }

    /// A session drawing session ids, random numbers and IVs from `rng` (tests fix it).
    pub fn with_rng(config: ClientConfig, rng: Box<dyn RngCore + Send + Sync>) -> Self {
        Self {
            config,
            rng,
            phase: Phase::Idle,
            hs: Handshake::default(),
            console_session_id: 0,
            crypto: None,
            out_seq: 0,
            window: SeqWindow::new(),
            privilege: None,
            rq_seq: 0,
            next_id: 0,
            pending: Vec::new(),
            step: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Starts the handshake.
    pub fn start(&mut self, now: Instant) {
        if self.phase != Phase::Idle {
            return;
        }
        if let Err(e) = self.config.validate() {
            return self.fail(e);
        }
        self.phase = Phase::AuthCaps;
        let data = GetChannelAuthCapabilities::v2(self.config.privilege).encode();
        self.queue(
            now,
            NETFN_APP,
            codes::CMD_GET_CHANNEL_AUTH_CAPABILITIES,
            data,
            Purpose::AuthCaps,
        );
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// The negotiated cipher suite, once Open Session succeeded.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.hs.suite
    }

    /// The session privilege, once established.
    pub fn privilege(&self) -> Option<Privilege> {
        self.privilege
    }

    /// The BMC's id for this session (0 before Open Session).
    pub fn managed_session_id(&self) -> u32 {
        self.hs.managed_session_id
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`ClientSession::handle_timeout`] wants to be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let steps = self.step.iter().map(|s| s.deadline);
        steps.chain(self.pending.iter().map(|p| p.deadline)).min()
    }

    /// Sends a request inside the established session.
    pub fn request(
        &mut self,
        now: Instant,
        netfn: u8,
        cmd: u8,
        data: &[u8],
    ) -> Result<RequestId, Error> {
        match self.phase {
            Phase::Established => {}
            Phase::Closing | Phase::Closed | Phase::Failed => return Err(Error::Closed),
            _ => return Err(Error::NotEstablished),
        }
        if self.pending.len() >= MAX_PENDING {
            return Err(Error::Protocol(format!(
                "{MAX_PENDING} requests already waiting for the BMC"
            )));
        }
        Ok(self.queue(now, netfn, cmd, data.to_vec(), Purpose::Caller))
    }

    /// Closes the session (Close Session); [`Event::Closed`] follows.
    pub fn close(&mut self, now: Instant) {
        match self.phase {
            Phase::Established => {
                self.phase = Phase::Closing;
                let data = CloseSession {
                    session_id: self.hs.managed_session_id,
                    handle: None,
                }
                .encode();
                self.queue(
                    now,
                    NETFN_APP,
                    codes::CMD_CLOSE_SESSION,
                    data,
                    Purpose::Close,
                );
            }
            Phase::Closing | Phase::Closed | Phase::Failed => {}
            _ => {
                self.phase = Phase::Closed;
                self.step = None;
                self.pending.clear();
                self.events.push_back(Event::Closed);
            }
        }
    }

    fn attempts(&self) -> u32 {
        self.config.attempts.max(1)
    }

    fn no_answer(&self, attempts: u32) -> Error {
        Error::NoAnswer {
            peer: self.config.peer.clone(),
            attempts,
        }
    }

    fn fail(&mut self, error: Error) {
        debug!(peer = %self.config.peer, error = %error, "IPMI session failed");
        self.phase = Phase::Failed;
        self.step = None;
        self.pending.clear();
        self.events.push_back(Event::Failed(error));
    }

    fn next_rq_seq(&mut self) -> u8 {
        for _ in 0..64 {
            let seq = self.rq_seq;
            self.rq_seq = (self.rq_seq + 1) & 0x3f;
            if !self.pending.iter().any(|p| p.message.seq == seq) {
                return seq;
            }
        }
        self.rq_seq
    }

    fn queue(
        &mut self,
        now: Instant,
        netfn: u8,
        cmd: u8,
        data: Vec<u8>,
        purpose: Purpose,
    ) -> RequestId {
        let mut request = Request::new(netfn, cmd, data);
        request.rq_seq = self.next_rq_seq();
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let mut message = Message::from_request(&request);
        let mut bridged = None;
        if let (Some(bridge), Purpose::Caller) = (self.config.bridge, purpose) {
            message.dst_addr = bridge.target_address;
            let outer = bridge.wrap(&message);
            bridged = Some((message, false));
            message = outer;
        }
        let pending = Pending {
            id,
            message,
            bridged,
            purpose,
            deadline: now + self.config.timeout,
            attempts: 1,
        };
        self.transmit(&pending);
        self.pending.push(pending);
        id
    }

    /// Sends (or resends, with a new session sequence number) a pending request.
    fn transmit(&mut self, pending: &Pending) {
        let message = pending.message.encode();
        let datagram = match (&self.crypto, pending.purpose) {
            (_, Purpose::AuthCaps) => encode_v15_sessionless(&message),
            (_, Purpose::CipherSuites { .. }) | (None, _) => {
                unauthenticated(PayloadType::Ipmi, &message)
            }
            (Some(crypto), _) => {
                self.out_seq = next_outbound(self.out_seq);
                let mut iv = [0u8; 16];
                self.rng.fill_bytes(&mut iv);
                crypto.seal(
                    PayloadType::Ipmi,
                    self.hs.managed_session_id,
                    self.out_seq,
                    &message,
                    &iv,
                )
            }
        };
        self.outbox.push_back(datagram);
    }

    /// `payload` sealed as the next session packet to the BMC (for the fuzz target).
    pub(crate) fn seal_for_server(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let crypto = self.crypto.as_ref()?;
        self.out_seq = next_outbound(self.out_seq);
        let mut iv = [0u8; 16];
        self.rng.fill_bytes(&mut iv);
        let sid = self.hs.managed_session_id;
        Some(crypto.seal(PayloadType::Ipmi, sid, self.out_seq, payload, &iv))
    }

    /// Retries what is due; gives up on what has used its attempts.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.step.as_ref().is_some_and(|s| s.deadline <= now) {
            self.step_timed_out(now);
        }
        let due: Vec<usize> = (0..self.pending.len())
            .filter(|i| self.pending.get(*i).is_some_and(|p| p.deadline <= now))
            .collect();
        for i in due.into_iter().rev() {
            if i >= self.pending.len() {
                continue;
            }
            let mut p = self.pending.swap_remove(i);
            if p.attempts < self.attempts() {
                p.attempts += 1;
                p.deadline = now + self.config.timeout;
                if let Some((_, forwarded)) = &mut p.bridged {
                    *forwarded = false;
                }
                debug!(peer = %self.config.peer, cmd = p.message.cmd, attempt = p.attempts, "resending IPMI request");
                self.transmit(&p);
                self.pending.push(p);
            } else {
                self.request_gave_up(now, p);
            }
        }
    }

    fn step_timed_out(&mut self, now: Instant) {
        self.hs.attempts += 1;
        if self.hs.attempts >= self.attempts() {
            let error = self.no_answer(self.hs.attempts);
            return self.fail(error);
        }
        debug!(peer = %self.config.peer, attempt = self.hs.attempts + 1, "restarting the RMCP+ handshake");
        self.open_session(now);
    }

    fn request_gave_up(&mut self, now: Instant, p: Pending) {
        let error = self.no_answer(p.attempts);
        match p.purpose {
            Purpose::Caller => self
                .events
                .push_back(Event::RequestFailed { id: p.id, error }),
            Purpose::Close => {
                self.phase = Phase::Closed;
                self.events.push_back(Event::Closed);
            }
            Purpose::CipherSuites { .. } => {
                debug!(peer = %self.config.peer, "no cipher suite list; probing");
                self.probe(now, CipherSuite::PROBE_ORDER.to_vec());
            }
            Purpose::AuthCaps | Purpose::SetPrivilege => self.fail(error),
        }
    }

    /// Takes one received datagram.
    pub fn handle(&mut self, now: Instant, datagram: &[u8]) {
        if self.is_finished() {
            return;
        }
        let packet = match wire::decode(datagram) {
            Ok(p) => p,
            Err(e) => {
                return debug!(peer = %self.config.peer, error = %e, "dropping malformed datagram")
            }
        };
        match packet {
            Datagram::V15(p) if p.is_sessionless() => self.sessionless_response(now, p.message),
            Datagram::V20(p) if p.session_id == 0 && !p.authenticated => match p.payload_type {
                PayloadType::Ipmi => self.sessionless_response(now, p.payload),
                PayloadType::OpenSessionResponse => self.open_session_response(now, p.payload),
                PayloadType::Rakp2 => self.rakp2(now, p.payload),
                PayloadType::Rakp4 => self.rakp4(now, p.payload),
                _ => {}
            },
            Datagram::V20(p) if p.payload_type == PayloadType::Ipmi => {
                if p.session_id != self.console_session_id {
                    return debug!(peer = %self.config.peer, "dropping packet for another session");
                }
                let Some(crypto) = &self.crypto else { return };
                let plain = match crypto.open(&p) {
                    Ok(plain) => plain,
                    Err(e) => {
                        return debug!(peer = %self.config.peer, error = %e, "dropping session packet")
                    }
                };
                if !self.window.accept(p.seq) {
                    return debug!(peer = %self.config.peer, seq = p.seq, "dropping replayed or out-of-window packet");
                }
                self.response(now, &plain, false);
            }
            _ => {}
        }
    }

    fn sessionless_response(&mut self, now: Instant, message: &[u8]) {
        self.response(now, message, true);
    }

    fn response(&mut self, now: Instant, bytes: &[u8], sessionless: bool) {
        let Ok(message) = Message::decode(bytes) else {
            return debug!(peer = %self.config.peer, "dropping undecodable IPMI message");
        };
        let Ok(response) = message.to_response() else {
            return;
        };
        let position = self.pending.iter().position(|p| {
            let outside = matches!(p.purpose, Purpose::AuthCaps | Purpose::CipherSuites { .. })
                || self.crypto.is_none();
            let answers = match &p.bridged {
                // The bridged answer, as ipmitool matches it: sequence and command.
                Some((inner, true)) => inner.cmd == message.cmd,
                _ => p.message.netfn | 1 == message.netfn && p.message.cmd == message.cmd,
            };
            outside == sessionless && p.message.seq == message.seq && answers
        });
        let Some(i) = position else {
            return debug!(peer = %self.config.peer, seq = message.seq, "dropping unmatched response");
        };
        let mut p = self.pending.swap_remove(i);
        let response = match &mut p.bridged {
            Some((inner, forwarded @ false)) if response.completion_code == codes::CC_OK => {
                match Message::decode(&response.data) {
                    Ok(embedded) if embedded.cmd == inner.cmd && embedded.is_response() => {
                        match embedded.to_response() {
                            Ok(r) => r,
                            Err(_) => return,
                        }
                    }
                    _ => {
                        // Forwarded; the answer follows as a response of its own.
                        *forwarded = true;
                        self.pending.push(p);
                        return;
                    }
                }
            }
            _ => response,
        };
        match p.purpose {
            Purpose::Caller => self
                .events
                .push_back(Event::Response { id: p.id, response }),
            Purpose::AuthCaps => self.auth_caps(now, response),
            Purpose::CipherSuites { index } => self.cipher_suites(now, index, response),
            Purpose::SetPrivilege => self.privilege_set(response),
            Purpose::Close => {
                self.phase = Phase::Closed;
                self.crypto = None;
                self.events.push_back(Event::Closed);
            }
        }
    }

    fn auth_caps(&mut self, now: Instant, response: Response) {
        if self.phase != Phase::AuthCaps {
            return;
        }
        let caps = match response
            .into_result()
            .and_then(|d| Ok(ChannelAuthCapabilities::decode(&d)?))
        {
            Ok(caps) => caps,
            Err(e) => return self.fail(e),
        };
        if !caps.supports_ipmi_v2() {
            let peer = self.config.peer.clone();
            return self.fail(Error::NoIpmi2 { peer });
        }
        match self.config.cipher_suite {
            Some(suite) => self.probe(now, vec![suite]),
            None => {
                self.phase = Phase::CipherSuites;
                self.ask_cipher_suites(now, 0);
            }
        }
    }

    fn ask_cipher_suites(&mut self, now: Instant, index: u8) {
        let data = GetChannelCipherSuites {
            channel: CURRENT_CHANNEL,
            payload_type: 0,
            list_index: index,
        }
        .encode();
        self.queue(
            now,
            NETFN_APP,
            codes::CMD_GET_CHANNEL_CIPHER_SUITES,
            data,
            Purpose::CipherSuites { index },
        );
    }

    fn cipher_suites(&mut self, now: Instant, index: u8, response: Response) {
        if self.phase != Phase::CipherSuites {
            return;
        }
        let chunk = match response
            .into_result()
            .and_then(|d| Ok(ChannelCipherSuites::decode(&d)?))
        {
            Ok(chunk) => chunk,
            Err(e) => {
                debug!(peer = %self.config.peer, error = %e, "Get Channel Cipher Suites refused; probing");
                return self.probe(now, CipherSuite::PROBE_ORDER.to_vec());
            }
        };
        self.hs.records.extend_from_slice(&chunk.records);
        if chunk.records.len() == GetChannelCipherSuites::CHUNK && index < 0x3f {
            return self.ask_cipher_suites(now, index + 1);
        }
        let ids = parse_cipher_suite_records(&self.hs.records);
        let common: Vec<_> = CipherSuite::PROBE_ORDER
            .into_iter()
            .filter(|s| ids.contains(&s.id()))
            .collect();
        if common.is_empty() {
            let ours = CipherSuite::PROBE_ORDER
                .map(|s| s.id().to_string())
                .join(", ");
            let theirs = ids.iter().map(u8::to_string).collect::<Vec<_>>().join(", ");
            return self.fail(Error::NoCipherSuite { ours, theirs });
        }
        self.probe(now, common);
    }

    /// Tries Open Session with each of `candidates` in turn.
    fn probe(&mut self, now: Instant, candidates: Vec<CipherSuite>) {
        self.hs.candidates = candidates;
        self.hs.candidate = 0;
        self.open_session(now);
    }

    fn send_step(&mut self, now: Instant, datagram: Vec<u8>) {
        self.outbox.push_back(datagram);
        self.step = Some(Step {
            deadline: now + self.config.timeout,
        });
    }

    fn open_session(&mut self, now: Instant) {
        let Some(&suite) = self.hs.candidates.get(self.hs.candidate) else {
            return self.fail(Error::Protocol("no cipher suite left to try".into()));
        };
        self.phase = Phase::Opening;
        self.crypto = None;
        self.hs.suite = None;
        if self.step.is_some() {
            self.hs.tag = self.hs.tag.wrapping_add(1);
        }
        let mut sid = [0u8; 4];
        while u32::from_le_bytes(sid) == 0 {
            self.rng.fill_bytes(&mut sid);
        }
        self.console_session_id = u32::from_le_bytes(sid);
        let request = OpenSessionRequest {
            tag: self.hs.tag,
            max_privilege: 0,
            console_session_id: self.console_session_id,
            algorithms: suite.algorithms(),
        };
        self.send_step(
            now,
            unauthenticated(PayloadType::OpenSessionRequest, &request.encode()),
        );
    }

    fn open_session_response(&mut self, now: Instant, payload: &[u8]) {
        let Ok(rs) = OpenSessionResponse::decode(payload) else {
            return;
        };
        if self.phase != Phase::Opening
            || rs.tag != self.hs.tag
            || rs.console_session_id != self.console_session_id
        {
            return debug!(peer = %self.config.peer, "dropping stale Open Session Response");
        }
        if rs.status != codes::RMCP_OK {
            let more = self.hs.candidate + 1 < self.hs.candidates.len();
            if codes::is_algorithm_refusal(rs.status) && more {
                self.hs.candidate += 1;
                return self.open_session(now);
            }
            return self.fail(Error::refused("Open Session Request", rs.status));
        }
        let proposed = self.hs.candidates.get(self.hs.candidate).copied();
        let chosen =
            CipherSuite::from_algorithms(rs.algorithms).filter(|s| self.hs.candidates.contains(s));
        let Some(suite) = chosen else {
            return self.fail(Error::Protocol(format!(
                "BMC chose algorithms {:?}, which we did not propose",
                rs.algorithms
            )));
        };
        if Some(suite) != proposed {
            warn!(peer = %self.config.peer, %suite, "BMC chose another cipher suite than proposed");
        }
        if rs.managed_session_id == 0 {
            return self.fail(Error::Protocol("BMC gave session id 0".into()));
        }
        self.hs.suite = Some(suite);
        self.hs.managed_session_id = rs.managed_session_id;
        self.rng.fill_bytes(&mut self.hs.console_random);
        let rakp1 = Rakp1 {
            tag: self.hs.tag,
            managed_session_id: rs.managed_session_id,
            console_random: self.hs.console_random,
            role: self.role(),
            username: self.config.username.clone(),
        };
        self.phase = Phase::AwaitRakp2;
        self.send_step(now, unauthenticated(PayloadType::Rakp1, &rakp1.encode()));
    }

    fn role(&self) -> u8 {
        let lookup = match self.config.lookup {
            Lookup::NameOnly => ROLE_NAME_ONLY_LOOKUP,
            Lookup::NameAndPrivilege => 0,
        };
        self.config.privilege.as_u8() | lookup
    }

    fn inputs(&self) -> RakpInputs<'_> {
        RakpInputs {
            console_session_id: self.console_session_id,
            managed_session_id: self.hs.managed_session_id,
            console_random: &self.hs.console_random,
            managed_random: &self.hs.managed_random,
            managed_guid: &self.hs.managed_guid,
            role: self.role(),
            username: &self.config.username,
        }
    }

    fn rakp2(&mut self, now: Instant, payload: &[u8]) {
        let Ok(m) = Rakp2::decode(payload) else {
            return;
        };
        if self.phase != Phase::AwaitRakp2 || m.tag != self.hs.tag {
            return debug!(peer = %self.config.peer, "dropping stale RAKP 2");
        }
        if m.status != codes::RMCP_OK {
            return self.fail(Error::refused("RAKP 1", m.status));
        }
        if m.console_session_id != self.console_session_id {
            return debug!(peer = %self.config.peer, "dropping RAKP 2 for another session");
        }
        let Some(suite) = self.hs.suite else { return };
        self.hs.managed_random = m.managed_random;
        self.hs.managed_guid = m.managed_guid;
        let kuid = self.config.password.clone();
        let expected = crypto::rakp2_auth_code(suite.hash(), kuid.as_bytes(), &self.inputs());
        if !crypto::codes_match(&expected, &m.auth_code) {
            // Tell the BMC, so it can free the session, then give up.
            let refusal = Rakp3 {
                tag: self.hs.tag,
                status: codes::RMCP_INVALID_INTEGRITY_CHECK,
                managed_session_id: self.hs.managed_session_id,
                auth_code: Vec::new(),
            };
            self.outbox
                .push_back(unauthenticated(PayloadType::Rakp3, &refusal.encode()));
            let username = String::from_utf8_lossy(&self.config.username).into_owned();
            return self.fail(Error::WrongPassword { username });
        }
        let kg = self.config.kg.clone().unwrap_or(kuid.clone());
        let keys = SessionKeys::derive(suite.hash(), kg.as_bytes(), &self.inputs());
        self.crypto = Some(SessionCrypto { suite, keys });
        let rakp3 = Rakp3 {
            tag: self.hs.tag,
            status: codes::RMCP_OK,
            managed_session_id: self.hs.managed_session_id,
            auth_code: crypto::rakp3_auth_code(suite.hash(), kuid.as_bytes(), &self.inputs())
                .to_vec(),
        };
        self.phase = Phase::AwaitRakp4;
        self.send_step(now, unauthenticated(PayloadType::Rakp3, &rakp3.encode()));
    }

    fn rakp4(&mut self, now: Instant, payload: &[u8]) {
        let Ok(m) = Rakp4::decode(payload) else {
            return;
        };
        if self.phase != Phase::AwaitRakp4 || m.tag != self.hs.tag {
            return debug!(peer = %self.config.peer, "dropping stale RAKP 4");
        }
        if m.status != codes::RMCP_OK {
            return self.fail(Error::refused("RAKP 3", m.status));
        }
        if m.console_session_id != self.console_session_id {
            return debug!(peer = %self.config.peer, "dropping RAKP 4 for another session");
        }
        let (Some(suite), Some(crypto)) = (self.hs.suite, &self.crypto) else {
            return;
        };
        let expected = crypto.keys.rakp4_icv(suite, &self.inputs());
        if !crypto::codes_match(&expected, &m.icv) {
            return self.fail(Error::BadRakp4);
        }
        self.step = None;
        self.hs.attempts = 0;
        self.out_seq = 0;
        self.window = SeqWindow::new();
        self.phase = Phase::SetPrivilege;
        let data = SetSessionPrivilege {
            privilege: self.config.privilege.as_u8(),
        }
        .encode();
        self.queue(
            now,
            NETFN_APP,
            codes::CMD_SET_SESSION_PRIVILEGE,
            data,
            Purpose::SetPrivilege,
        );
    }

    fn privilege_set(&mut self, response: Response) {
        if self.phase != Phase::SetPrivilege {
            return;
        }
        let level = match response
            .into_result()
            .and_then(|d| Ok(SetSessionPrivilege::decode(&d)?))
        {
            Ok(level) => level,
            Err(e) => return self.fail(e),
        };
        let privilege = Privilege::from_u8(level.privilege).unwrap_or(self.config.privilege);
        let Some(cipher_suite) = self.hs.suite else {
            return;
        };
        self.privilege = Some(privilege);
        self.phase = Phase::Established;
        self.events.push_back(Event::Established {
            cipher_suite,
            privilege,
        });
    }
}

fn unauthenticated(payload_type: PayloadType, payload: &[u8]) -> Vec<u8> {
    let header = V20Header {
        payload_type,
        encrypted: false,
        authenticated: false,
        session_id: 0,
        seq: 0,
    };
    encode_v20(header, payload, |_| Vec::new())
}
