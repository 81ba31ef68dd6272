//! The BMC end of IPMI over LAN, sans-IO: feed it each datagram with `now`, send what it
//! returns to the datagram's sender.
//!
//! The [`Server`] answers the session-less commands (Get Channel Authentication
//! Capabilities, Get Channel Cipher Suites, ASF presence ping), runs the RMCP+ handshake
//! (Open Session, RAKP 1-4) against a [`Users`] table, and inside a session handles Set
//! Session Privilege Level and Close Session itself, checks integrity, decrypts and drops
//! replayed and out-of-window packets. Every other request is handed to the caller as
//! [`Incoming::Request`], with the session's user and privilege (per-command privilege
//! checks are the caller's), and answered through [`Server::respond`].
//!
//! A request retried by the client (same command, sequence number and data) is answered
//! from the last response instead of being handed over twice, so a resent "power cycle"
//! cycles once. Handshake messages resent by a client get the same answer again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use tracing::debug;
use zeroize::Zeroizing;

use crate::codes::{self, NETFN_APP};
use crate::commands::{
    ChannelAuthCapabilities, ChannelCipherSuites, CloseSession, GetChannelAuthCapabilities,
    GetChannelCipherSuites, SetSessionPrivilege, CURRENT_CHANNEL,
};
use crate::crypto::{self, CipherSuite, RakpInputs, SessionCrypto, SessionKeys};
use crate::seq::{next_outbound, SeqWindow};
use crate::wire::message::Message;
use crate::wire::rakp::{
    OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4, ROLE_NAME_ONLY_LOOKUP,
};
use crate::wire::rmcp::{AsfMessage, PresencePong};
use crate::wire::session::{
    encode_v15_sessionless, encode_v20, PayloadType, V15Packet, V20Header, V20Packet,
};
use crate::wire::{self, Datagram};
use crate::{DecodeError, Privilege, Request, Response};

/// The LAN channel number this BMC reports.
pub const LAN_CHANNEL: u8 = 1;

/// The BMC's user table.
pub trait Users {
    /// Password for a user name (`None`: unknown user), and the user's maximum privilege.
    fn lookup(&self, username: &[u8]) -> Option<(Vec<u8>, Privilege)>;

    /// A log-in as `username` failed: its RAKP 3 did not verify, the console refused our
    /// RAKP 2 (the password it has is another), or it gave up after RAKP 2 and a new log-in
    /// as the same user started (ipmitool gives up silently on a wrong password). For
    /// lock-outs; returning `None` from [`Users::lookup`] then refuses the user.
    fn login_failed(&self, _username: &[u8]) {}

    /// A log-in as `username` succeeded (RAKP 3 verified).
    fn login_succeeded(&self, _username: &[u8]) {}
}

/// What the BMC offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Suites accepted in Open Session and listed by Get Channel Cipher Suites.
    pub cipher_suites: Vec<CipherSuite>,
    /// Sessions at once, handshakes in progress included.
    pub max_sessions: usize,
    /// A session (or handshake) silent this long is closed.
    pub idle_timeout: Duration,
    /// The managed system's GUID, sent in RAKP 2.
    pub guid: [u8; 16],
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            cipher_suites: CipherSuite::PROBE_ORDER.to_vec(),
            max_sessions: 8,
            idle_timeout: Duration::from_secs(60),
            guid: [0; 16],
        }
    }
}

/// A session, as the caller refers to it: the BMC's (managed system) session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionHandle(u32);

impl SessionHandle {
    pub fn id(self) -> u32 {
        self.0
    }
}

/// What became of a datagram.
#[derive(Debug)]
pub enum Incoming {
    /// A request inside a session for the caller: answer it with [`Server::respond`].
    Request {
        session: SessionHandle,
        username: Vec<u8>,
        privilege: Privilege,
        request: Request,
    },
    /// The session layer answered (or dropped) it: send these bytes if `Some`.
    Handled(Option<Vec<u8>>),
}

/// The BMC's session layer.
pub struct Server {
    config: ServerConfig,
    sessions: HashMap<u32, Session>,
    rng: Box<dyn RngCore + Send + Sync>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

struct Session {
    console_session_id: u32,
    suite: CipherSuite,
    /// The Open Session Request's privilege cap (`None`: no cap asked for).
    requested_max: Option<Privilege>,
    last_activity: Instant,
    stage: Stage,
}

enum Stage {
    /// Open Session answered; waiting for RAKP 1.
    Opened {
        tag: u8,
        answer: Vec<u8>,
    },
    /// RAKP 2 sent; waiting for RAKP 3.
    Challenged(Box<Challenge>),
    Active(Box<Active>),
}

struct Challenge {
    /// Already reported to [`Users::login_failed`] as given up.
    counted: bool,
    rakp1: Vec<u8>,
    answer: Vec<u8>,
    console_random: [u8; 16],
    managed_random: [u8; 16],
    role: u8,
    username: Vec<u8>,
    kuid: Zeroizing<Vec<u8>>,
    max_privilege: Privilege,
}

struct Active {
    crypto: SessionCrypto,
    username: Vec<u8>,
    max_privilege: Privilege,
    privilege: Privilege,
    out_seq: u32,
    window: SeqWindow,
    /// RAKP 3 and our RAKP 4, kept until the first session packet, for a resent RAKP 3.
    handshake_tail: Option<(Vec<u8>, Vec<u8>)>,
    /// A request handed to the caller and not answered yet.
    in_flight: Option<RequestKey>,
    /// The last answered request and its response message, for retries.
    last: Option<(RequestKey, Message)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestKey {
    netfn: u8,
    cmd: u8,
    rq_seq: u8,
    rq_addr: u8,
    data: Vec<u8>,
}

impl RequestKey {
    fn of(r: &Request) -> Self {
        Self {
            netfn: r.netfn,
            cmd: r.cmd,
            rq_seq: r.rq_seq,
            rq_addr: r.rq_addr,
            data: r.data.clone(),
        }
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

fn random_16(rng: &mut dyn RngCore) -> [u8; 16] {
    let mut out = [0u8; 16];
    rng.fill_bytes(&mut out);
    out
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Self::with_rng(config, Box::new(rand::rngs::StdRng::from_os_rng()))
    }

    /// A server drawing session ids, random numbers and IVs from `rng` (tests fix it).
    pub fn with_rng(config: ServerConfig, rng: Box<dyn RngCore + Send + Sync>) -> Self {
        Self {
            config,
            sessions: HashMap::new(),
            rng,
        }
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Sessions open or being opened.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Closes every session (and handshake) idle for longer than the idle timeout.
    pub fn expire(&mut self, now: Instant) {
        let timeout = self.config.idle_timeout;
        self.sessions.retain(|id, s| {
            let keep = now.saturating_duration_since(s.last_activity) <= timeout;
            if !keep {
                debug!(session = id, "closing idle IPMI session");
            }
            keep
        });
    }

    /// Handles one datagram from a remote console.
    pub fn handle(&mut self, now: Instant, datagram: &[u8], users: &dyn Users) -> Incoming {
        match wire::decode(datagram) {
            Err(e) => {
                debug!(error = %e, "dropping malformed IPMI datagram");
                Incoming::Handled(None)
            }
            Ok(Datagram::Asf(AsfMessage::PresencePing { rmcp_seq, tag })) => {
                let pong = AsfMessage::PresencePong {
                    rmcp_seq,
                    tag,
                    pong: PresencePong::IPMI_BMC,
                };
                Incoming::Handled(Some(pong.encode()))
            }
            Ok(Datagram::Asf(_)) => Incoming::Handled(None),
            Ok(Datagram::V15(packet)) => Incoming::Handled(self.sessionless_v15(&packet)),
            Ok(Datagram::V20(packet)) => self.handle_v20(now, &packet, users),
        }
    }

    fn handle_v20(&mut self, now: Instant, p: &V20Packet<'_>, users: &dyn Users) -> Incoming {
        let outside_session = p.session_id == 0 && !p.authenticated && !p.encrypted;
        let answer = match p.payload_type {
            PayloadType::Ipmi if p.session_id != 0 => return self.session_packet(now, p),
            PayloadType::Ipmi if outside_session => self.sessionless(p.payload, false),
            PayloadType::OpenSessionRequest if outside_session => self.open_session(now, p.payload),
            PayloadType::Rakp1 if outside_session => self.rakp1(now, p.payload, users),
            PayloadType::Rakp3 if outside_session => self.rakp3(now, p.payload, users),
            other => {
                debug!(payload = ?other, "dropping unexpected RMCP+ payload");
                None
            }
        };
        Incoming::Handled(answer)
    }

    fn sessionless_v15(&self, p: &V15Packet<'_>) -> Option<Vec<u8>> {
        if !p.is_sessionless() {
            debug!("dropping IPMI v1.5 session packet: only RMCP+ sessions are offered");
            return None;
        }
        self.sessionless(p.message, true)
    }

    /// The commands allowed outside a session, answered in the request's format.
    fn sessionless(&self, message: &[u8], v15: bool) -> Option<Vec<u8>> {
        let message = Message::decode(message).ok()?;
        let request = message.to_request()?;
        let response = self.sessionless_command(&request)?;
        let answer = Message::response_to(&request, &response).encode();
        Some(if v15 {
            encode_v15_sessionless(&answer)
        } else {
            unauthenticated(PayloadType::Ipmi, &answer)
        })
    }

    fn sessionless_command(&self, request: &Request) -> Option<Response> {
        if request.netfn != NETFN_APP {
            return None;
        }
        match request.cmd {
            codes::CMD_GET_CHANNEL_AUTH_CAPABILITIES => Some(self.auth_capabilities(request)),
            codes::CMD_GET_CHANNEL_CIPHER_SUITES => Some(self.cipher_suites(request)),
            // IPMI v1.5 log-in is not offered: say so rather than go silent.
            codes::CMD_GET_SESSION_CHALLENGE => Some(Response::error(codes::CC_INVALID_COMMAND)),
            _ => None,
        }
    }

    fn is_our_channel(channel: u8) -> bool {
        channel == CURRENT_CHANNEL || channel == LAN_CHANNEL
    }

    fn auth_capabilities(&self, request: &Request) -> Response {
        match GetChannelAuthCapabilities::decode(&request.data) {
            Ok(rq) if Self::is_our_channel(rq.channel) => {
                Response::ok(ChannelAuthCapabilities::rmcp_plus_only(LAN_CHANNEL).encode())
            }
            Ok(_) => Response::error(codes::CC_INVALID_DATA_FIELD),
            Err(_) => Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID),
        }
    }

    fn cipher_suites(&self, request: &Request) -> Response {
        match GetChannelCipherSuites::decode(&request.data) {
            Ok(rq) if Self::is_our_channel(rq.channel) => Response::ok(
                ChannelCipherSuites::chunk(LAN_CHANNEL, &self.config.cipher_suites, rq.list_index)
                    .encode(),
            ),
            Ok(_) => Response::error(codes::CC_INVALID_DATA_FIELD),
            Err(_) => Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID),
        }
    }

    fn new_session_id(&mut self) -> u32 {
        loop {
            let id = self.rng.next_u32();
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// The status refusing a proposal, naming the first algorithm none of our suites has.
    fn refusal_for(&self, proposed: wire::rakp::Algorithms) -> u8 {
        let ours: Vec<_> = self
            .config
            .cipher_suites
            .iter()
            .map(|s| s.algorithms())
            .collect();
        if !ours
            .iter()
            .any(|a| a.authentication == proposed.authentication)
        {
            codes::RMCP_INVALID_AUTH_ALGORITHM
        } else if !ours.iter().any(|a| a.integrity == proposed.integrity) {
            codes::RMCP_INVALID_INTEGRITY_ALGORITHM
        } else if !ours
            .iter()
            .any(|a| a.confidentiality == proposed.confidentiality)
        {
            codes::RMCP_INVALID_CONFIDENTIALITY_ALGORITHM
        } else {
            codes::RMCP_NO_CIPHER_SUITE_MATCH
        }
    }

    fn open_session(&mut self, now: Instant, payload: &[u8]) -> Option<Vec<u8>> {
        let rq = match OpenSessionRequest::decode(payload) {
            Ok(rq) => rq,
            Err(e) => {
                debug!(error = %e, "dropping malformed Open Session Request");
                return None;
            }
        };
        if let Some(answer) = self.resent_open_session(&rq) {
            return Some(answer);
        }
        self.expire(now);
        let refuse = |status| {
            debug!(status, "refusing Open Session Request");
            Some(unauthenticated(
                PayloadType::OpenSessionResponse,
                &OpenSessionResponse::refusal(rq.tag, status, rq.console_session_id).encode(),
            ))
        };
        let suite = CipherSuite::from_algorithms(rq.algorithms)
            .filter(|s| self.config.cipher_suites.contains(s));
        let requested_max = Privilege::from_u8(rq.max_privilege);
        if rq.console_session_id == 0 {
            return refuse(codes::RMCP_INVALID_SESSION_ID);
        }
        if rq.max_privilege != 0 && requested_max.is_none() {
            return refuse(codes::RMCP_INVALID_ROLE);
        }
        let Some(suite) = suite else {
            return refuse(self.refusal_for(rq.algorithms));
        };
        if self.sessions.len() >= self.config.max_sessions {
            return refuse(codes::RMCP_INSUFFICIENT_RESOURCES);
        }
        let managed_session_id = self.new_session_id();
        let response = OpenSessionResponse {
            tag: rq.tag,
            status: codes::RMCP_OK,
            max_privilege: requested_max.unwrap_or(Privilege::Administrator).as_u8(),
            console_session_id: rq.console_session_id,
            managed_session_id,
            algorithms: suite.algorithms(),
        };
        let answer = unauthenticated(PayloadType::OpenSessionResponse, &response.encode());
        self.sessions.insert(
            managed_session_id,
            Session {
                console_session_id: rq.console_session_id,
                suite,
                requested_max,
                last_activity: now,
                stage: Stage::Opened {
                    tag: rq.tag,
                    answer: answer.clone(),
                },
            },
        );
        Some(answer)
    }

    fn resent_open_session(&self, rq: &OpenSessionRequest) -> Option<Vec<u8>> {
        self.sessions.values().find_map(|s| match &s.stage {
            Stage::Opened { tag, answer }
                if *tag == rq.tag && s.console_session_id == rq.console_session_id =>
            {
                Some(answer.clone())
            }
            _ => None,
        })
    }

    fn rakp1(&mut self, now: Instant, payload: &[u8], users: &dyn Users) -> Option<Vec<u8>> {
        let m = match Rakp1::decode(payload) {
            Ok(m) => m,
            Err(DecodeError::TooLong { .. }) => {
                return self.refuse_rakp1_raw(payload, codes::RMCP_INVALID_NAME_LENGTH)
            }
            Err(e) => {
                debug!(error = %e, "dropping malformed RAKP 1");
                return None;
            }
        };
        let Some(session) = self.sessions.get(&m.managed_session_id) else {
            return Some(rakp2_refusal(m.tag, codes::RMCP_INVALID_SESSION_ID, 0));
        };
        let console_sid = session.console_session_id;
        match &session.stage {
            Stage::Challenged(c) if c.rakp1 == payload => return Some(c.answer.clone()),
            Stage::Opened { .. } => {}
            _ => {
                debug!("dropping RAKP 1 for a session past RAKP 1");
                return None;
            }
        }
        let (suite, requested_max) = (session.suite, session.requested_max);
        self.count_given_up(&m.username, m.managed_session_id, users);
        match self.admit(&m, requested_max, users) {
            Err(status) => {
                debug!(status, user = %String::from_utf8_lossy(&m.username), "refusing RAKP 1");
                self.sessions.remove(&m.managed_session_id);
                Some(rakp2_refusal(m.tag, status, console_sid))
            }
            Ok((kuid, max_privilege)) => {
                let managed_random = random_16(self.rng.as_mut());
                let challenge = Challenge {
                    counted: false,
                    rakp1: payload.to_vec(),
                    answer: Vec::new(),
                    console_random: m.console_random,
                    managed_random,
                    role: m.role,
                    username: m.username.clone(),
                    kuid,
                    max_privilege,
                };
                let answer =
                    self.rakp2(suite, console_sid, m.managed_session_id, m.tag, &challenge);
                let session = self.sessions.get_mut(&m.managed_session_id)?;
                session.last_activity = now;
                session.stage = Stage::Challenged(Box::new(Challenge {
                    answer: answer.clone(),
                    ..challenge
                }));
                Some(answer)
            }
        }
    }

    /// Reports earlier handshakes of `username` left after RAKP 2 as failed log-ins, once.
    fn count_given_up(&mut self, username: &[u8], current: u32, users: &dyn Users) {
        for (id, session) in &mut self.sessions {
            if let Stage::Challenged(c) = &mut session.stage {
                if *id != current && !c.counted && c.username == username {
                    c.counted = true;
                    users.login_failed(username);
                }
            }
        }
    }

    /// Looks the user up as RAKP 1 asks: the key and the session's privilege cap, or the
    /// RMCP+ status refusing it.
    fn admit(
        &self,
        m: &Rakp1,
        requested_max: Option<Privilege>,
        users: &dyn Users,
    ) -> Result<(Zeroizing<Vec<u8>>, Privilege), u8> {
        let requested = Privilege::from_u8(m.role & 0x0f).ok_or(codes::RMCP_INVALID_ROLE)?;
        let (password, user_max) = users
            .lookup(&m.username)
            .ok_or(codes::RMCP_UNAUTHORIZED_NAME)?;
        let password = Zeroizing::new(password);
        let name_only = m.role & ROLE_NAME_ONLY_LOOKUP != 0;
        // Username/privilege lookup wants a user with that name *at* that privilege.
        if !name_only && requested > user_max {
            return Err(codes::RMCP_UNAUTHORIZED_NAME);
        }
        let cap = requested.min(user_max);
        let cap = requested_max.map_or(cap, |r| cap.min(r));
        Ok((password, cap))
    }

    fn rakp2(
        &self,
        suite: CipherSuite,
        console_session_id: u32,
        managed_session_id: u32,
        tag: u8,
        c: &Challenge,
    ) -> Vec<u8> {
        let inputs = RakpInputs {
            console_session_id,
            managed_session_id,
            console_random: &c.console_random,
            managed_random: &c.managed_random,
            managed_guid: &self.config.guid,
            role: c.role,
            username: &c.username,
        };
        let message = Rakp2 {
            tag,
            status: codes::RMCP_OK,
            console_session_id,
            managed_random: c.managed_random,
            managed_guid: self.config.guid,
            auth_code: crypto::rakp2_auth_code(suite.hash(), &c.kuid, &inputs).to_vec(),
        };
        unauthenticated(PayloadType::Rakp2, &message.encode())
    }

    /// A RAKP 2 refusal for a RAKP 1 too malformed to decode (tag and session id only).
    fn refuse_rakp1_raw(&mut self, payload: &[u8], status: u8) -> Option<Vec<u8>> {
        let tag = *payload.first()?;
        let sid_bytes: [u8; 4] = payload.get(4..8)?.try_into().ok()?;
        let session = self.sessions.remove(&u32::from_le_bytes(sid_bytes))?;
        Some(rakp2_refusal(tag, status, session.console_session_id))
    }

    fn rakp3(&mut self, now: Instant, payload: &[u8], users: &dyn Users) -> Option<Vec<u8>> {
        let m = match Rakp3::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                debug!(error = %e, "dropping malformed RAKP 3");
                return None;
            }
        };
        let Some(session) = self.sessions.get(&m.managed_session_id) else {
            return Some(rakp4_refusal(m.tag, codes::RMCP_INVALID_SESSION_ID, 0));
        };
        let (suite, console_sid) = (session.suite, session.console_session_id);
        let challenge = match &session.stage {
            Stage::Active(a) => {
                return a
                    .handshake_tail
                    .as_ref()
                    .filter(|(rakp3, _)| rakp3 == payload)
                    .map(|(_, rakp4)| rakp4.clone());
            }
            Stage::Opened { .. } => {
                debug!("dropping RAKP 3 before RAKP 1");
                return None;
            }
            Stage::Challenged(c) => c,
        };
        if m.status != codes::RMCP_OK {
            debug!(
                status = m.status,
                "remote console abandoned the handshake in RAKP 3"
            );
            if m.status == codes::RMCP_INVALID_INTEGRITY_CHECK {
                users.login_failed(&challenge.username);
            }
            self.sessions.remove(&m.managed_session_id);
            return None;
        }
        let inputs = RakpInputs {
            console_session_id: console_sid,
            managed_session_id: m.managed_session_id,
            console_random: &challenge.console_random,
            managed_random: &challenge.managed_random,
            managed_guid: &self.config.guid,
            role: challenge.role,
            username: &challenge.username,
        };
        let expected = crypto::rakp3_auth_code(suite.hash(), &challenge.kuid, &inputs);
        if !crypto::codes_match(&expected, &m.auth_code) {
            debug!(user = %String::from_utf8_lossy(&challenge.username), "RAKP 3 fails: wrong password");
            users.login_failed(&challenge.username);
            self.sessions.remove(&m.managed_session_id);
            return Some(rakp4_refusal(
                m.tag,
                codes::RMCP_INVALID_INTEGRITY_CHECK,
                console_sid,
            ));
        }
        let keys = SessionKeys::derive(suite.hash(), &challenge.kuid, &inputs);
        let rakp4 = Rakp4 {
            tag: m.tag,
            status: codes::RMCP_OK,
            console_session_id: console_sid,
            icv: keys.rakp4_icv(suite, &inputs),
        };
        let answer = unauthenticated(PayloadType::Rakp4, &rakp4.encode());
        users.login_succeeded(&challenge.username);
        let active = Active {
            crypto: SessionCrypto { suite, keys },
            username: challenge.username.clone(),
            max_privilege: challenge.max_privilege,
            privilege: challenge.max_privilege.min(Privilege::User),
            out_seq: 0,
            window: SeqWindow::new(),
            handshake_tail: Some((payload.to_vec(), answer.clone())),
            in_flight: None,
            last: None,
        };
        let session = self.sessions.get_mut(&m.managed_session_id)?;
        session.last_activity = now;
        session.stage = Stage::Active(Box::new(active));
        Some(answer)
    }

    fn session_packet(&mut self, now: Instant, p: &V20Packet<'_>) -> Incoming {
        let id = p.session_id;
        let Some(request) = self.accept_packet(now, p) else {
            return Incoming::Handled(None);
        };
        let Some((active, console_sid)) = active_mut(&mut self.sessions, id) else {
            return Incoming::Handled(None);
        };
        let key = RequestKey::of(&request);
        if let Some((_, message)) = active.last.as_ref().filter(|(k, _)| *k == key) {
            let message = message.clone();
            let answer = seal(active, self.rng.as_mut(), console_sid, &message);
            return Incoming::Handled(Some(answer));
        }
        if active.in_flight.as_ref() == Some(&key) {
            return Incoming::Handled(None);
        }
        let is_app = request.netfn == NETFN_APP;
        if is_app && request.cmd == codes::CMD_CLOSE_SESSION {
            return Incoming::Handled(self.close_session(id, &request));
        }
        let response = if is_app && request.cmd == codes::CMD_SET_SESSION_PRIVILEGE {
            Some(set_privilege(active, &request))
        } else {
            self.sessionless_command(&request)
        };
        let Some((active, _)) = active_mut(&mut self.sessions, id) else {
            return Incoming::Handled(None);
        };
        if let Some(response) = response {
            let message = Message::response_to(&request, &response);
            let answer = seal(active, self.rng.as_mut(), console_sid, &message);
            return Incoming::Handled(Some(answer));
        }
        active.in_flight = Some(key);
        Incoming::Request {
            session: SessionHandle(id),
            username: active.username.clone(),
            privilege: active.privilege,
            request,
        }
    }

    /// Checks a session packet (session, idleness, integrity, sequence window) and returns
    /// the request it carries.
    fn accept_packet(&mut self, now: Instant, p: &V20Packet<'_>) -> Option<Request> {
        let id = p.session_id;
        let Some(session) = self.sessions.get_mut(&id) else {
            debug!(session = id, "dropping packet for an unknown session");
            return None;
        };
        if now.saturating_duration_since(session.last_activity) > self.config.idle_timeout {
            debug!(session = id, "dropping packet for an expired session");
            self.sessions.remove(&id);
            return None;
        }
        let Stage::Active(active) = &mut session.stage else {
            debug!(
                session = id,
                "dropping session packet before the handshake finished"
            );
            return None;
        };
        let plain = match active.crypto.open(p) {
            Ok(plain) => plain,
            Err(e) => {
                debug!(session = id, error = %e, "dropping session packet");
                return None;
            }
        };
        if !active.window.accept(p.seq) {
            debug!(
                session = id,
                seq = p.seq,
                "dropping replayed or out-of-window packet"
            );
            return None;
        }
        let Some(request) = Message::decode(&plain).ok().and_then(|m| m.to_request()) else {
            debug!(
                session = id,
                "dropping session packet that is not a request"
            );
            return None;
        };
        session.last_activity = now;
        active.handshake_tail = None;
        Some(request)
    }

    /// Close Session: this session, or (for an administrator) another one.
    fn close_session(&mut self, id: u32, request: &Request) -> Option<Vec<u8>> {
        let target = CloseSession::decode(&request.data).map(|c| c.session_id);
        let exists = |sid: &u32| self.sessions.contains_key(sid);
        let (response, closed) = match target {
            Err(_) => (Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID), None),
            Ok(sid) if sid == id => (Response::ok(Vec::new()), Some(sid)),
            Ok(sid) if !exists(&sid) => (Response::error(codes::CC_INVALID_SESSION_ID), None),
            Ok(sid) => {
                let admin =
                    self.session_privilege(SessionHandle(id)) >= Some(Privilege::Administrator);
                if admin {
                    (Response::ok(Vec::new()), Some(sid))
                } else {
                    (Response::error(codes::CC_INSUFFICIENT_PRIVILEGE), None)
                }
            }
        };
        let (active, console_sid) = active_mut(&mut self.sessions, id)?;
        let answer = seal(
            active,
            self.rng.as_mut(),
            console_sid,
            &Message::response_to(request, &response),
        );
        if let Some(sid) = closed {
            debug!(session = sid, by = id, "IPMI session closed");
            self.sessions.remove(&sid);
        }
        Some(answer)
    }

    /// Answers a request handed out by [`Server::handle`]. `None` when the session is gone.
    pub fn respond(
        &mut self,
        session: SessionHandle,
        request: &Request,
        response: Response,
    ) -> Option<Vec<u8>> {
        let s = self.sessions.get_mut(&session.0)?;
        let console_sid = s.console_session_id;
        let Stage::Active(active) = &mut s.stage else {
            return None;
        };
        let key = RequestKey::of(request);
        if active.in_flight.as_ref() == Some(&key) {
            active.in_flight = None;
        }
        let message = Message::response_to(request, &response);
        let answer = seal(active, self.rng.as_mut(), console_sid, &message);
        active.last = Some((key, message));
        Some(answer)
    }

    /// `payload` sealed as the next packet of some established session (for the fuzz
    /// target).
    pub(crate) fn seal_for_client(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let (active, console_sid) = self.sessions.values_mut().find_map(|s| {
            let sid = s.console_session_id;
            match &mut s.stage {
                Stage::Active(a) => Some((a, sid)),
                _ => None,
            }
        })?;
        active.out_seq = next_outbound(active.out_seq);
        let iv = random_16(self.rng.as_mut());
        Some(
            active
                .crypto
                .seal(PayloadType::Ipmi, console_sid, active.out_seq, payload, &iv),
        )
    }

    /// The privilege a session runs at now, if it is established.
    pub fn session_privilege(&self, session: SessionHandle) -> Option<Privilege> {
        match &self.sessions.get(&session.0)?.stage {
            Stage::Active(a) => Some(a.privilege),
            _ => None,
        }
    }
}

fn rakp2_refusal(tag: u8, status: u8, console_sid: u32) -> Vec<u8> {
    unauthenticated(
        PayloadType::Rakp2,
        &Rakp2::refusal(tag, status, console_sid).encode(),
    )
}

fn rakp4_refusal(tag: u8, status: u8, console_sid: u32) -> Vec<u8> {
    let message = Rakp4 {
        tag,
        status,
        console_session_id: console_sid,
        icv: Vec::new(),
    };
    unauthenticated(PayloadType::Rakp4, &message.encode())
}

fn seal(
    active: &mut Active,
    rng: &mut dyn RngCore,
    console_sid: u32,
    message: &Message,
) -> Vec<u8> {
    active.out_seq = next_outbound(active.out_seq);
    let iv = random_16(rng);
    active.crypto.seal(
        PayloadType::Ipmi,
        console_sid,
        active.out_seq,
        &message.encode(),
        &iv,
    )
}

fn active_mut(sessions: &mut HashMap<u32, Session>, id: u32) -> Option<(&mut Active, u32)> {
    let session = sessions.get_mut(&id)?;
    let console_sid = session.console_session_id;
    match &mut session.stage {
        Stage::Active(active) => Some((active, console_sid)),
        _ => None,
    }
}

fn set_privilege(active: &mut Active, request: &Request) -> Response {
    let Ok(rq) = SetSessionPrivilege::decode(&request.data) else {
        return Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID);
    };
    if rq.privilege == 0 {
        return Response::ok(vec![active.privilege.as_u8()]);
    }
    match Privilege::from_u8(rq.privilege) {
        None => Response::error(codes::CC_INVALID_DATA_FIELD),
        Some(p) if p > active.max_privilege => Response::error(codes::CC_PRIVILEGE_EXCEEDS_LIMIT),
        Some(p) => {
            active.privilege = p;
            Response::ok(vec![p.as_u8()])
        }
    }
}
