//! The login phase of both ends (RFC 7143 sections 6 and 12), as sans-IO state machines:
//! no socket, no clock; random numbers come from the caller's [`RngCore`].
//!
//! - [`TargetLogin`], one per connection: feed it each decoded [`LoginRequest`] and send
//!   the [`LoginResponse`] of the [`TargetStep`] it returns, until `Done` (the connection
//!   enters the full feature phase with the [`Established`] session) or `Fail` (send the
//!   response, then close). Security stage (AuthMethod CHAP or None, one-way or mutual
//!   CHAP), operational stage, discovery sessions, continued text (C bit).
//! - [`InitiatorLogin`]: [`InitiatorLogin::start`] gives the first Login Request, each
//!   Login Response gives the next request or `Done`; failures are a [`LoginError`] whose
//!   `Display` is meant for operators.
//! - [`TextResponder`] answers SendTargets in the full feature phase (the target's
//!   session layer calls it); [`send_targets_request`] and [`SendTargetsReply`] are the
//!   initiator's side.
//!
//! What a target does not do: sessions of several connections (a Login Request with a
//! non-zero TSIH is refused with "session does not exist"), originating negotiations
//! (keys the initiator does not offer keep their RFC defaults, except the target's own
//! MaxRecvDataSegmentLength declaration), redirection.
//!
//! The target tolerates the forms libiscsi 1.19 (lib/login.c) and open-iscsi send: a
//! first request in the operational stage when no CHAP is required, T=1 on the first
//! security request, and the names sent again in the operational stage.

use std::sync::Arc;

use rand::RngCore;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::chap::{self, ChallengeProblem, ChapAuth, CHALLENGE_LEN};
use crate::params::{Limits, NegotiationError, Negotiator, Role, SessionParams, SessionType};
use crate::pdu::{
    Isid, LoginRequest, LoginResponse, LoginStatus, RejectReason, Stage, TargetSeq, TextRequest,
    TextResponse, BHS_LEN, ISCSI_VERSION, LOGIN_MAX_DATA_SEGMENT_LEN, RESERVED_TAG,
};
use crate::text::{
    TextAccumulator, TextError, TextList, IRRELEVANT, MAX_SHORT_VALUE_LEN, NOT_UNDERSTOOD, REJECT,
};

/// The longest iSCSI name (RFC 7143 section 4.2.7.1).
pub const MAX_NAME_LEN: usize = 223;
/// Login PDUs one login may take before it is given up.
pub const MAX_EXCHANGES: u32 = 32;
/// The default command window a target grants (MaxCmdSN - ExpCmdSN + 1).
pub const DEFAULT_COMMAND_WINDOW: u32 = 32;
/// The well-known iSCSI port.
pub const DEFAULT_PORT: u16 = 3260;

/// A session both ends agree on at the end of a successful login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established {
    /// The negotiated operational parameters.
    pub params: SessionParams,
    /// Normal or discovery.
    pub session_type: SessionType,
    /// InitiatorName.
    pub initiator_name: String,
    /// InitiatorAlias, if declared.
    pub initiator_alias: Option<String>,
    /// TargetName (None in a discovery session).
    pub target_name: Option<String>,
    /// TargetAlias, if declared.
    pub target_alias: Option<String>,
    /// TargetPortalGroupTag, if declared.
    pub target_portal_group_tag: Option<u16>,
    /// ISID.
    pub isid: Isid,
    /// TSIH assigned by the target.
    pub tsih: u16,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN of the first command of the full feature phase (the login was immediate:
    /// it is the login's CmdSN, and the target's ExpCmdSN).
    pub cmd_sn: u32,
    /// StatSN of the target's next response (the initiator's ExpStatSN).
    pub stat_sn: u32,
    /// MaxCmdSN granted by the final Login Response.
    pub max_cmd_sn: u32,
    /// The CHAP name the initiator authenticated with, when CHAP was used.
    pub chap_user: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Active,
    Done,
    Failed,
}

// ----------------------------------------------------------------------------------------
// Target

/// What a target serves, shared by its connections.
#[derive(Clone, Debug)]
pub struct TargetConfig {
    /// The target names (IQNs) served; compared without regard to ASCII case.
    pub target_names: Vec<String>,
    /// TargetAlias declared to initiators.
    pub target_alias: Option<String>,
    /// CHAP required of every initiator, in discovery sessions too (with the target's
    /// credentials, answered when the initiator asks for mutual CHAP); `None`:
    /// AuthMethod=None.
    pub chap: Option<ChapAuth>,
    /// Operational limits.
    pub limits: Limits,
    /// TargetPortalGroupTag of the portal.
    pub portal_group_tag: u16,
    /// The portal's `ip:port` (IPv6 in brackets) given in SendTargets answers as
    /// `TargetAddress=ip:port,tpgt`; `None` leaves the address out (the initiator then
    /// uses the discovery connection's).
    pub target_address: Option<String>,
    /// MaxCmdSN - ExpCmdSN + 1 granted in login responses (at least 1).
    pub command_window: u32,
}

impl TargetConfig {
    /// A target serving `target_names`, without CHAP, default limits, portal group 1.
    pub fn new(target_names: Vec<String>) -> Self {
        Self {
            target_names,
            target_alias: None,
            chap: None,
            limits: Limits::default(),
            portal_group_tag: 1,
            target_address: None,
            command_window: DEFAULT_COMMAND_WINDOW,
        }
    }

    /// The configured spelling of `name`, if served.
    fn served(&self, name: &str) -> Option<&str> {
        self.target_names
            .iter()
            .find(|t| t.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }

    fn max_cmd_sn(&self, exp_cmd_sn: u32) -> u32 {
        exp_cmd_sn.wrapping_add(self.command_window.max(1) - 1)
    }
}

/// What to do after a Login Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetStep {
    /// Send this response and wait for the next Login Request.
    Continue(LoginResponse),
    /// Send this final response; the connection is in the full feature phase.
    Done(LoginResponse, Box<Established>),
    /// Send this failure response, then close the connection.
    Fail(LoginResponse, TargetFailure),
}

/// Why a target refused a login: the status sent and the reason, for the log.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{status}: {reason}")]
pub struct TargetFailure {
    /// The status in the Login Response.
    pub status: LoginStatus,
    /// What happened (never contains secrets).
    pub reason: String,
}

fn failure(status: LoginStatus, reason: impl Into<String>) -> TargetFailure {
    TargetFailure {
        status,
        reason: reason.into(),
    }
}

fn initiator_error(reason: impl Into<String>) -> TargetFailure {
    failure(LoginStatus::InitiatorError, reason)
}

fn auth_failure(reason: impl Into<String>) -> TargetFailure {
    failure(LoginStatus::AuthenticationFailure, reason)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetAuth {
    /// Nothing negotiated yet.
    Start,
    /// AuthMethod=CHAP chosen, waiting for CHAP_A.
    ChapChosen,
    /// Challenge sent, waiting for CHAP_N and CHAP_R.
    ChallengeSent,
    /// Authenticated, or no authentication.
    Done,
}

/// The target's side of one connection's login.
pub struct TargetLogin {
    config: Arc<TargetConfig>,
    tsih: u16,
    next_stat_sn: u32,
    challenge: [u8; CHALLENGE_LEN],
    chap_id: u8,
    phase: Phase,
    stage: Option<Stage>,
    auth: TargetAuth,
    negotiator: Negotiator,
    text: TextAccumulator,
    isid: Isid,
    cid: u16,
    names_done: bool,
    initiator_name: Option<String>,
    initiator_alias: Option<String>,
    target_name: Option<String>,
    session_type: Option<SessionType>,
    chap_user: Option<String>,
    exchanges: u32,
}

impl std::fmt::Debug for TargetLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetLogin")
            .field("phase", &self.phase)
            .field("stage", &self.stage)
            .field("auth", &self.auth)
            .field("initiator_name", &self.initiator_name)
            .field("target_name", &self.target_name)
            .finish_non_exhaustive()
    }
}

impl TargetLogin {
    /// A login on a new connection. `tsih` is the handle the session gets if the login
    /// succeeds (non-zero, unique among the target's sessions); `rng` draws the CHAP
    /// challenge and identifier and the initial StatSN.
    pub fn new<R: RngCore + ?Sized>(config: Arc<TargetConfig>, tsih: u16, rng: &mut R) -> Self {
        let mut challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut challenge);
        let chap_id = (rng.next_u32() & 0xFF) as u8;
        let next_stat_sn = rng.next_u32();
        let negotiator = Negotiator::new(Role::Target, config.limits.clone());
        Self {
            config,
            tsih,
            next_stat_sn,
            challenge,
            chap_id,
            phase: Phase::Active,
            stage: None,
            auth: TargetAuth::Start,
            negotiator,
            text: TextAccumulator::default(),
            isid: [0; 6],
            cid: 0,
            names_done: false,
            initiator_name: None,
            initiator_alias: None,
            target_name: None,
            session_type: None,
            chap_user: None,
            exchanges: 0,
        }
    }

    /// Handles one Login Request.
    pub fn handle(&mut self, req: &LoginRequest) -> TargetStep {
        match self.step(req) {
            Ok(step) => step,
            Err(why) => {
                tracing::info!(
                    initiator = self.initiator_name.as_deref().unwrap_or("?"),
                    "login refused: {why}"
                );
                self.phase = Phase::Failed;
                let csg = if req.csg == Stage::FullFeature {
                    Stage::Security
                } else {
                    req.csg
                };
                let rsp = self.response(req, false, csg, csg, why.status, Vec::new());
                TargetStep::Fail(rsp, why)
            }
        }
    }

    /// A failure response to a PDU that is not a decodable Login Request (the raw
    /// header): [`LoginStatus::InvalidDuringLogin`] for another opcode, or
    /// [`LoginStatus::InitiatorError`] for a malformed one. The login is over; close
    /// the connection after sending it.
    pub fn reject(&mut self, status: LoginStatus, bhs: &[u8; BHS_LEN]) -> LoginResponse {
        self.phase = Phase::Failed;
        let mut isid = [0u8; 6];
        isid.copy_from_slice(&bhs[8..14]);
        let word = |at: usize| u32::from_be_bytes([bhs[at], bhs[at + 1], bhs[at + 2], bhs[at + 3]]);
        let req = LoginRequest {
            isid,
            itt: word(16),
            cmd_sn: word(24),
            ..Default::default()
        };
        self.response(
            &req,
            false,
            Stage::Security,
            Stage::Security,
            status,
            Vec::new(),
        )
    }

    /// Whether the login ended (done or failed).
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }

    fn step(&mut self, req: &LoginRequest) -> Result<TargetStep, TargetFailure> {
        if self.phase != Phase::Active {
            return Err(failure(
                LoginStatus::InvalidDuringLogin,
                "Login Request after the login ended",
            ));
        }
        self.exchanges += 1;
        if self.exchanges > MAX_EXCHANGES {
            return Err(initiator_error("too many login exchanges"));
        }
        self.check_header(req)?;
        let keys = match self.text.push(&req.data, req.continue_) {
            Ok(Some(keys)) => keys,
            Ok(None) => {
                let rsp = self.response(
                    req,
                    false,
                    req.csg,
                    req.csg,
                    LoginStatus::Success,
                    Vec::new(),
                );
                return Ok(TargetStep::Continue(rsp));
            }
            Err(e) => return Err(initiator_error(format!("login text: {e}"))),
        };
        keys.check_unique()
            .map_err(|e| initiator_error(format!("login text: {e}")))?;
        let mut answers = TextList::new();
        self.take_names(&keys, &mut answers)?;
        match req.csg {
            Stage::Security => self.security(&keys, &mut answers)?,
            _ => self.operational(&keys, &mut answers)?,
        }
        self.transition(req, answers)
    }

    fn check_header(&mut self, req: &LoginRequest) -> Result<(), TargetFailure> {
        if req.version_min > ISCSI_VERSION || req.version_max < req.version_min {
            return Err(failure(
                LoginStatus::UnsupportedVersion,
                format!(
                    "initiator speaks versions {}..={}, this target {ISCSI_VERSION}",
                    req.version_min, req.version_max
                ),
            ));
        }
        if req.tsih != 0 {
            return Err(failure(
                LoginStatus::SessionDoesNotExist,
                format!(
                    "TSIH {}: adding connections to a session is not supported",
                    req.tsih
                ),
            ));
        }
        if req.transit && req.continue_ {
            return Err(initiator_error("T and C bits both set"));
        }
        if req.csg == Stage::FullFeature {
            return Err(initiator_error("Login Request in the full feature stage"));
        }
        if req.transit && req.nsg <= req.csg {
            return Err(initiator_error(format!(
                "transit from {:?} to {:?}",
                req.csg, req.nsg
            )));
        }
        match self.stage {
            None => {
                self.stage = Some(req.csg);
                self.isid = req.isid;
                self.cid = req.cid;
            }
            Some(stage) if stage != req.csg => {
                return Err(initiator_error(format!(
                    "request for stage {:?} while in {stage:?}",
                    req.csg
                )));
            }
            Some(_) if req.isid != self.isid => {
                return Err(initiator_error("ISID changed during login"));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Names and session type, declared in the first request (repeated values are fine).
    fn take_names(&mut self, keys: &TextList, answers: &mut TextList) -> Result<(), TargetFailure> {
        for (key, value) in keys.iter() {
            match key {
                "InitiatorName" => {
                    set_once(&mut self.initiator_name, key, checked_name(key, value)?)?
                }
                "TargetName" => set_once(&mut self.target_name, key, checked_name(key, value)?)?,
                "InitiatorAlias" => {
                    if value.len() > MAX_SHORT_VALUE_LEN {
                        return Err(initiator_error("InitiatorAlias too long"));
                    }
                    self.initiator_alias = Some(value.to_string());
                }
                "SessionType" => {
                    let t = SessionType::parse(value).ok_or_else(|| {
                        failure(
                            LoginStatus::SessionTypeNotSupported,
                            format!("SessionType={}", shorten(value)),
                        )
                    })?;
                    if self.session_type.is_some_and(|s| s != t) {
                        return Err(initiator_error("SessionType changed during login"));
                    }
                    self.session_type = Some(t);
                }
                "SendTargets" => answers.push(key, IRRELEVANT),
                _ => {}
            }
        }
        if !self.names_done {
            self.names_done = true;
            self.first_text_checks(answers)?;
        }
        Ok(())
    }

    fn first_text_checks(&mut self, answers: &mut TextList) -> Result<(), TargetFailure> {
        if self.initiator_name.is_none() {
            return Err(failure(LoginStatus::MissingParameter, "no InitiatorName"));
        }
        let session_type = *self.session_type.get_or_insert(SessionType::Normal);
        if session_type == SessionType::Discovery {
            return Ok(());
        }
        let Some(asked) = self.target_name.as_deref() else {
            return Err(failure(LoginStatus::MissingParameter, "no TargetName"));
        };
        let Some(served) = self.config.served(asked) else {
            return Err(failure(
                LoginStatus::NotFound,
                format!("no target named {}", shorten(asked)),
            ));
        };
        self.target_name = Some(served.to_string());
        answers.push(
            "TargetPortalGroupTag",
            self.config.portal_group_tag.to_string(),
        );
        if let Some(alias) = &self.config.target_alias {
            answers.push("TargetAlias", alias.clone());
        }
        Ok(())
    }

    fn security(&mut self, keys: &TextList, answers: &mut TextList) -> Result<(), TargetFailure> {
        let mut response = ChapResponseKeys::default();
        for (key, value) in keys.iter() {
            match key {
                "AuthMethod" => self.choose_auth_method(value, answers)?,
                "CHAP_A" => self.send_challenge(value, answers)?,
                "CHAP_N" => response.name = Some(value),
                "CHAP_R" => response.response = Some(value),
                "CHAP_I" => response.identifier = Some(value),
                "CHAP_C" => response.challenge = Some(value),
                k if k.starts_with("CHAP_") => answers.push(k, NOT_UNDERSTOOD),
                _ => {}
            }
        }
        if response.any() {
            self.check_chap_response(&response, answers)?;
        }
        // Operational keys in the security stage are negotiated all the same.
        let ops = self
            .negotiator
            .respond(keys)
            .map_err(|e| initiator_error(e.to_string()))?;
        answers.extend(ops);
        Ok(())
    }

    fn choose_auth_method(
        &mut self,
        offer: &str,
        answers: &mut TextList,
    ) -> Result<(), TargetFailure> {
        if self.auth != TargetAuth::Start {
            return Err(initiator_error("AuthMethod negotiated twice"));
        }
        let offers = |m: &str| offer.split(',').any(|o| o == m);
        if self.config.chap.is_some() {
            if !offers("CHAP") {
                return Err(auth_failure(format!(
                    "CHAP is required; the initiator offered AuthMethod={}",
                    shorten(offer)
                )));
            }
            answers.push("AuthMethod", "CHAP");
            self.auth = TargetAuth::ChapChosen;
        } else {
            if !offers("None") {
                return Err(auth_failure(format!(
                    "the initiator offered AuthMethod={} and this target has no CHAP credentials",
                    shorten(offer)
                )));
            }
            answers.push("AuthMethod", "None");
            self.auth = TargetAuth::Done;
        }
        Ok(())
    }

    fn send_challenge(&mut self, offer: &str, answers: &mut TextList) -> Result<(), TargetFailure> {
        if self.auth != TargetAuth::ChapChosen {
            return Err(initiator_error("CHAP_A outside the CHAP exchange"));
        }
        let Some(algorithm) = chap::choose_algorithm(offer) else {
            return Err(auth_failure(format!(
                "no CHAP algorithm in common (CHAP_A={}; this target has MD5)",
                shorten(offer)
            )));
        };
        answers.push("CHAP_A", algorithm.to_string());
        answers.push("CHAP_I", self.chap_id.to_string());
        answers.push("CHAP_C", chap::encode_hex(&self.challenge));
        self.auth = TargetAuth::ChallengeSent;
        Ok(())
    }

    fn check_chap_response(
        &mut self,
        keys: &ChapResponseKeys<'_>,
        answers: &mut TextList,
    ) -> Result<(), TargetFailure> {
        let (TargetAuth::ChallengeSent, Some(auth)) = (self.auth, self.config.chap.clone()) else {
            return Err(initiator_error("CHAP response keys before a challenge"));
        };
        let (Some(name), Some(response)) = (keys.name, keys.response) else {
            return Err(auth_failure("CHAP_N or CHAP_R missing"));
        };
        let response =
            chap::decode_binary(response).map_err(|_| auth_failure("malformed CHAP_R"))?;
        let expected = auth.initiator();
        let user_ok = name.as_bytes().ct_eq(expected.user.as_bytes());
        let response_ok = chap::verify(self.chap_id, &expected.secret, &self.challenge, &response);
        if !(bool::from(user_ok) && response_ok) {
            return Err(auth_failure(format!(
                "CHAP for user {}: wrong user name or response",
                shorten(name)
            )));
        }
        match (keys.identifier, keys.challenge) {
            (None, None) => {}
            (Some(identifier), Some(challenge)) => {
                self.answer_mutual(&auth, identifier, challenge, answers)?
            }
            _ => return Err(auth_failure("CHAP_I and CHAP_C must come together")),
        }
        self.auth = TargetAuth::Done;
        self.chap_user = Some(name.to_string());
        Ok(())
    }

    fn answer_mutual(
        &self,
        auth: &ChapAuth,
        identifier: &str,
        challenge: &str,
        answers: &mut TextList,
    ) -> Result<(), TargetFailure> {
        let Some(ours) = auth.target() else {
            return Err(auth_failure(
                "the initiator asks for mutual CHAP, which this target has no credentials for",
            ));
        };
        let id =
            chap::parse_identifier(identifier).map_err(|_| auth_failure("malformed CHAP_I"))?;
        let challenge =
            chap::decode_binary(challenge).map_err(|_| auth_failure("malformed CHAP_C"))?;
        match chap::check_challenge(&challenge, Some(&self.challenge)) {
            Ok(()) => {}
            Err(ChallengeProblem::Reflected) => {
                return Err(auth_failure(
                    "the initiator's challenge is the target's own (reflection)",
                ))
            }
            Err(ChallengeProblem::Length(n)) => {
                return Err(auth_failure(format!("mutual CHAP challenge of {n} bytes")))
            }
        }
        answers.push("CHAP_N", ours.user.clone());
        answers.push(
            "CHAP_R",
            chap::encode_hex(&chap::response(id, &ours.secret, &challenge)),
        );
        Ok(())
    }

    fn operational(
        &mut self,
        keys: &TextList,
        answers: &mut TextList,
    ) -> Result<(), TargetFailure> {
        if self.auth != TargetAuth::Done {
            if self.config.chap.is_some() {
                return Err(auth_failure(
                    "operational stage without CHAP authentication",
                ));
            }
            self.auth = TargetAuth::Done;
        }
        if keys
            .iter()
            .any(|(k, _)| k == "AuthMethod" || k.starts_with("CHAP_"))
        {
            return Err(initiator_error("security keys in the operational stage"));
        }
        let ops = self
            .negotiator
            .respond(keys)
            .map_err(|e| initiator_error(e.to_string()))?;
        answers.extend(ops);
        if let Some((key, value)) = self.negotiator.take_declaration() {
            answers.push(key, value);
        }
        Ok(())
    }

    /// Whether the security stage may be left now.
    fn security_done(&mut self) -> Result<bool, TargetFailure> {
        match self.auth {
            TargetAuth::Done => Ok(true),
            TargetAuth::Start if self.config.chap.is_some() => Err(auth_failure(
                "the initiator left the security stage without authenticating",
            )),
            TargetAuth::Start => {
                self.auth = TargetAuth::Done;
                Ok(true)
            }
            TargetAuth::ChapChosen | TargetAuth::ChallengeSent => Ok(false),
        }
    }

    fn transition(
        &mut self,
        req: &LoginRequest,
        answers: TextList,
    ) -> Result<TargetStep, TargetFailure> {
        let data = answers.encode();
        if data.len() > LOGIN_MAX_DATA_SEGMENT_LEN as usize {
            return Err(initiator_error(
                "the answers to this request exceed 8192 bytes",
            ));
        }
        let may_transit = req.transit
            && match req.csg {
                Stage::Security => self.security_done()?,
                _ => true,
            };
        if !may_transit {
            let rsp = self.response(req, false, req.csg, req.csg, LoginStatus::Success, data);
            return Ok(TargetStep::Continue(rsp));
        }
        if req.nsg != Stage::FullFeature {
            self.stage = Some(req.nsg);
            let rsp = self.response(req, true, req.csg, req.nsg, LoginStatus::Success, data);
            return Ok(TargetStep::Continue(rsp));
        }
        let mut rsp = self.response(
            req,
            true,
            req.csg,
            Stage::FullFeature,
            LoginStatus::Success,
            data,
        );
        rsp.tsih = self.tsih;
        self.phase = Phase::Done;
        let established = self.established(&rsp);
        tracing::info!(
            initiator = %established.initiator_name,
            target = established.target_name.as_deref().unwrap_or("(discovery)"),
            tsih = established.tsih,
            "login complete"
        );
        Ok(TargetStep::Done(rsp, Box::new(established)))
    }

    fn established(&self, rsp: &LoginResponse) -> Established {
        let session_type = self.session_type.unwrap_or_default();
        let normal = session_type == SessionType::Normal;
        Established {
            params: self.negotiator.finish(),
            session_type,
            initiator_name: self.initiator_name.clone().unwrap_or_default(),
            initiator_alias: self.initiator_alias.clone(),
            target_name: self.target_name.clone().filter(|_| normal),
            target_alias: self.config.target_alias.clone().filter(|_| normal),
            target_portal_group_tag: normal.then_some(self.config.portal_group_tag),
            isid: self.isid,
            tsih: rsp.tsih,
            cid: self.cid,
            cmd_sn: rsp.exp_cmd_sn,
            stat_sn: self.next_stat_sn,
            max_cmd_sn: rsp.max_cmd_sn,
            chap_user: self.chap_user.clone(),
        }
    }

    fn response(
        &mut self,
        req: &LoginRequest,
        transit: bool,
        csg: Stage,
        nsg: Stage,
        status: LoginStatus,
        data: Vec<u8>,
    ) -> LoginResponse {
        let stat_sn = self.next_stat_sn;
        self.next_stat_sn = stat_sn.wrapping_add(1);
        LoginResponse {
            transit,
            continue_: false,
            csg,
            nsg,
            version_max: ISCSI_VERSION,
            version_active: ISCSI_VERSION,
            isid: req.isid,
            tsih: 0,
            itt: req.itt,
            stat_sn,
            exp_cmd_sn: req.cmd_sn,
            max_cmd_sn: self.config.max_cmd_sn(req.cmd_sn),
            status,
            data,
        }
    }
}

#[derive(Default)]
struct ChapResponseKeys<'a> {
    name: Option<&'a str>,
    response: Option<&'a str>,
    identifier: Option<&'a str>,
    challenge: Option<&'a str>,
}

impl ChapResponseKeys<'_> {
    fn any(&self) -> bool {
        self.name.is_some()
            || self.response.is_some()
            || self.identifier.is_some()
            || self.challenge.is_some()
    }
}

fn checked_name(key: &str, value: &str) -> Result<String, TargetFailure> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(initiator_error(format!("{key} of {} bytes", value.len())));
    }
    Ok(value.to_string())
}

fn set_once(slot: &mut Option<String>, key: &str, value: String) -> Result<(), TargetFailure> {
    match slot {
        Some(old) if !old.eq_ignore_ascii_case(&value) => {
            Err(initiator_error(format!("{key} changed during login")))
        }
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// A value cut for a log line.
fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

// ----------------------------------------------------------------------------------------
// Initiator

/// What an initiator logs in with.
#[derive(Clone, Debug)]
pub struct InitiatorConfig {
    /// InitiatorName (an IQN).
    pub initiator_name: String,
    /// InitiatorAlias.
    pub initiator_alias: Option<String>,
    /// TargetName; `None` for a discovery session.
    pub target_name: Option<String>,
    /// CHAP credentials (and the target's, for mutual CHAP); `None` offers
    /// AuthMethod=None.
    pub chap: Option<ChapAuth>,
    /// Operational limits.
    pub limits: Limits,
    /// ISID (see [`random_isid`]).
    pub isid: Isid,
    /// Connection ID.
    pub cid: u16,
    /// ITT of the Login Requests.
    pub itt: u32,
    /// CmdSN of the Login Requests (and of the first command after login).
    pub cmd_sn: u32,
}

impl InitiatorConfig {
    /// A login to `target_name` (None: discovery) without CHAP and default limits.
    pub fn new(initiator_name: impl Into<String>, target_name: Option<String>, isid: Isid) -> Self {
        Self {
            initiator_name: initiator_name.into(),
            initiator_alias: None,
            target_name,
            chap: None,
            limits: Limits::default(),
            isid,
            cid: 0,
            itt: 0,
            cmd_sn: 1,
        }
    }

    fn session_type(&self) -> SessionType {
        if self.target_name.is_some() {
            SessionType::Normal
        } else {
            SessionType::Discovery
        }
    }
}

/// An ISID of the "random" format (RFC 7143 section 11.12.5: type 10b, 24 random bits,
/// qualifier 0), as libiscsi makes them.
pub fn random_isid<R: RngCore + ?Sized>(rng: &mut R) -> Isid {
    let r = rng.next_u32().to_be_bytes();
    [0x80, r[1], r[2], r[3], 0, 0]
}

/// What to do after a Login Response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitiatorStep {
    /// Send this Login Request and wait for the response.
    Send(LoginRequest),
    /// The login succeeded: the connection is in the full feature phase.
    Done(Box<Established>),
}

/// Why an initiator's login failed, in words for an operator.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoginError {
    /// The target answered with a failure status.
    #[error("the target refused the login: {status}")]
    Rejected {
        /// The target's status.
        status: LoginStatus,
    },
    /// The target redirects the initiator elsewhere (not followed here).
    #[error("the target redirects the login to {}: {status}", address.as_deref().unwrap_or("an unnamed address"))]
    Redirected {
        /// The target's status.
        status: LoginStatus,
        /// TargetAddress of the response.
        address: Option<String>,
    },
    /// The target wants CHAP and no credentials are configured.
    #[error("the target requires CHAP authentication and no CHAP credentials are configured")]
    ChapRequired,
    /// The target answered AuthMethod=Reject.
    #[error("the target refused AuthMethod={offered}")]
    AuthMethodRefused {
        /// What we offered.
        offered: String,
    },
    /// Mutual CHAP is configured, but the target chose not to authenticate.
    #[error("mutual CHAP is configured but the target did not authenticate itself (it chose AuthMethod=None or skipped CHAP)")]
    MutualChapSkipped,
    /// The target's mutual CHAP response is wrong.
    #[error("the target's mutual CHAP response is wrong (wrong target secret?)")]
    MutualChapFailed,
    /// The target's mutual CHAP name is not the configured one.
    #[error("the target's mutual CHAP name is {got:?}, expected {expected:?}")]
    MutualChapName {
        /// Configured name.
        expected: String,
        /// Name received.
        got: String,
    },
    /// The target left out CHAP_N/CHAP_R when leaving the security stage.
    #[error("the target finished CHAP without its mutual CHAP response")]
    MutualChapMissing,
    /// The target's challenge is unacceptable.
    #[error("the target's CHAP challenge is unacceptable: {0}")]
    BadChallenge(String),
    /// The target offered no CHAP algorithm we have.
    #[error("the target does not do CHAP with MD5 (CHAP_A={0})")]
    ChapAlgorithm(String),
    /// The operational negotiation failed.
    #[error("parameter negotiation failed: {0}")]
    Negotiation(#[from] NegotiationError),
    /// The response breaks the protocol.
    #[error("malformed login response: {0}")]
    Malformed(String),
    /// The login did not end.
    #[error("the login did not finish after {0} exchanges")]
    TooManyExchanges(u32),
    /// `handle` was called when no login is in progress.
    #[error("no login is in progress")]
    NotInProgress,
}

fn malformed(what: impl Into<String>) -> LoginError {
    LoginError::Malformed(what.into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InitiatorAuth {
    /// AuthMethod offered.
    Offered,
    /// AuthMethod=CHAP chosen, CHAP_A sent.
    AlgorithmSent,
    /// CHAP_N/CHAP_R sent (and our challenge for mutual CHAP).
    ResponseSent,
    /// Authenticated, or no authentication.
    Done,
}

/// The initiator's side of a login.
pub struct InitiatorLogin {
    config: InitiatorConfig,
    negotiator: Negotiator,
    text: TextAccumulator,
    phase: Phase,
    stage: Stage,
    auth: InitiatorAuth,
    auth_offer: String,
    mutual_id: u8,
    mutual_challenge: [u8; CHALLENGE_LEN],
    mutual_verified: bool,
    chap_used: bool,
    exp_stat_sn: u32,
    exchanges: u32,
    target_alias: Option<String>,
    target_portal_group_tag: Option<u16>,
}

impl std::fmt::Debug for InitiatorLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitiatorLogin")
            .field("phase", &self.phase)
            .field("stage", &self.stage)
            .field("auth", &self.auth)
            .field("target_name", &self.config.target_name)
            .finish_non_exhaustive()
    }
}

impl InitiatorLogin {
    /// A login; `rng` draws the mutual CHAP challenge and identifier.
    pub fn new<R: RngCore + ?Sized>(config: InitiatorConfig, rng: &mut R) -> Self {
        let mut mutual_challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut mutual_challenge);
        let mutual_id = (rng.next_u32() & 0xFF) as u8;
        let auth_offer = match &config.chap {
            None => "None",
            Some(c) if c.target().is_some() => "CHAP",
            Some(_) => "CHAP,None",
        }
        .to_string();
        let negotiator = Negotiator::new(Role::Initiator, config.limits.clone());
        Self {
            config,
            negotiator,
            text: TextAccumulator::default(),
            phase: Phase::NotStarted,
            stage: Stage::Security,
            auth: InitiatorAuth::Offered,
            auth_offer,
            mutual_id,
            mutual_challenge,
            mutual_verified: false,
            chap_used: false,
            exp_stat_sn: 0,
            exchanges: 0,
            target_alias: None,
            target_portal_group_tag: None,
        }
    }

    /// The first Login Request: names, session type and AuthMethod, asking to go on to
    /// the operational stage.
    pub fn start(&mut self) -> LoginRequest {
        self.phase = Phase::Active;
        let c = &self.config;
        let mut keys = TextList::new();
        keys.push("InitiatorName", c.initiator_name.clone());
        if let Some(alias) = &c.initiator_alias {
            keys.push("InitiatorAlias", alias.clone());
        }
        if let Some(target) = &c.target_name {
            keys.push("TargetName", target.clone());
        }
        keys.push("SessionType", c.session_type().as_str());
        keys.push("AuthMethod", self.auth_offer.clone());
        self.request(true, Stage::Operational, keys)
    }

    /// Handles one Login Response. After an error the login is over (close the
    /// connection).
    pub fn handle(&mut self, rsp: &LoginResponse) -> Result<InitiatorStep, LoginError> {
        if self.phase != Phase::Active {
            return Err(LoginError::NotInProgress);
        }
        let result = self.step(rsp);
        match &result {
            Err(e) => {
                tracing::info!(
                    target = self.config.target_name.as_deref().unwrap_or("(discovery)"),
                    "login failed: {e}"
                );
                self.phase = Phase::Failed;
            }
            Ok(InitiatorStep::Done(_)) => self.phase = Phase::Done,
            Ok(InitiatorStep::Send(_)) => {}
        }
        result
    }

    fn step(&mut self, rsp: &LoginResponse) -> Result<InitiatorStep, LoginError> {
        self.exchanges += 1;
        if self.exchanges > MAX_EXCHANGES {
            return Err(LoginError::TooManyExchanges(MAX_EXCHANGES));
        }
        // A refusal is reported as such even when the target zeroed the ISID in it
        // (tgt does).
        if rsp.itt == self.config.itt && !rsp.status.is_success() {
            return Err(self.refusal(rsp));
        }
        if rsp.itt != self.config.itt || rsp.isid != self.config.isid {
            return Err(malformed("ITT or ISID differs from the request's"));
        }
        if rsp.version_active != ISCSI_VERSION {
            return Err(malformed(format!("version-active {}", rsp.version_active)));
        }
        if rsp.csg != self.stage {
            return Err(malformed(format!(
                "response for stage {:?} while in {:?}",
                rsp.csg, self.stage
            )));
        }
        if rsp.transit && rsp.continue_ {
            return Err(malformed("T and C bits both set"));
        }
        self.exp_stat_sn = rsp.stat_sn.wrapping_add(1);
        let keys = match self.text.push(&rsp.data, rsp.continue_) {
            Ok(Some(keys)) => keys,
            // The target continues its text: ask for the rest with an empty request.
            Ok(None) => {
                return Ok(InitiatorStep::Send(self.request(
                    false,
                    self.stage,
                    TextList::new(),
                )))
            }
            Err(e) => return Err(malformed(format!("login text: {e}"))),
        };
        self.take_target_declarations(&keys);
        match self.stage {
            Stage::Security => self.security(&keys, rsp),
            _ => self.operational(&keys, rsp),
        }
    }

    fn refusal(&self, rsp: &LoginResponse) -> LoginError {
        let status = rsp.status;
        if status.is_redirect() {
            let address = TextList::parse(&rsp.data)
                .ok()
                .and_then(|k| k.get("TargetAddress").map(str::to_string));
            return LoginError::Redirected { status, address };
        }
        if status == LoginStatus::AuthenticationFailure
            && self.config.chap.is_none()
            && self.stage == Stage::Security
        {
            return LoginError::ChapRequired;
        }
        LoginError::Rejected { status }
    }

    fn take_target_declarations(&mut self, keys: &TextList) {
        if let Some(alias) = keys.get("TargetAlias") {
            self.target_alias = Some(alias.to_string());
        }
        if let Some(tag) = keys.get("TargetPortalGroupTag") {
            self.target_portal_group_tag =
                crate::params::parse_number(tag).and_then(|t| u16::try_from(t).ok());
        }
    }

    fn security(
        &mut self,
        keys: &TextList,
        rsp: &LoginResponse,
    ) -> Result<InitiatorStep, LoginError> {
        let mut next = TextList::new();
        let mut challenge = (None, None);
        let mut target_response = (None, None);
        for (key, value) in keys.iter() {
            match key {
                "AuthMethod" => self.auth_method_chosen(value, &mut next)?,
                "CHAP_A" if chap::choose_algorithm(value).is_none() => {
                    return Err(LoginError::ChapAlgorithm(shorten(value)))
                }
                "CHAP_I" => challenge.0 = Some(value),
                "CHAP_C" => challenge.1 = Some(value),
                "CHAP_N" => target_response.0 = Some(value),
                "CHAP_R" => target_response.1 = Some(value),
                _ => {}
            }
        }
        if challenge.0.is_some() || challenge.1.is_some() {
            self.answer_challenge(challenge, &mut next)?;
        }
        if target_response.0.is_some() || target_response.1.is_some() {
            self.verify_target(target_response)?;
        }
        next.extend(self.negotiator.absorb(keys)?);
        if rsp.transit {
            return self.leave_security(rsp);
        }
        // Go on: with the next CHAP keys, or ask again to leave the stage.
        let transit = self.auth != InitiatorAuth::AlgorithmSent;
        Ok(InitiatorStep::Send(self.request(
            transit,
            Stage::Operational,
            next,
        )))
    }

    fn auth_method_chosen(&mut self, chosen: &str, next: &mut TextList) -> Result<(), LoginError> {
        if self.auth != InitiatorAuth::Offered {
            return Err(malformed("AuthMethod answered twice"));
        }
        match chosen {
            "CHAP" if self.config.chap.is_none() => Err(LoginError::ChapRequired),
            "CHAP" => {
                next.push("CHAP_A", chap::ALGORITHM_MD5.to_string());
                self.auth = InitiatorAuth::AlgorithmSent;
                Ok(())
            }
            "None" if self.mutual().is_some() => Err(LoginError::MutualChapSkipped),
            "None" if self.auth_offer.split(',').any(|o| o == "None") => {
                self.auth = InitiatorAuth::Done;
                Ok(())
            }
            REJECT => Err(LoginError::AuthMethodRefused {
                offered: self.auth_offer.clone(),
            }),
            other => Err(malformed(format!(
                "the target chose AuthMethod={}, which was not offered",
                shorten(other)
            ))),
        }
    }

    fn mutual(&self) -> Option<&chap::ChapCredentials> {
        self.config.chap.as_ref().and_then(ChapAuth::target)
    }

    fn answer_challenge(
        &mut self,
        (identifier, challenge): (Option<&str>, Option<&str>),
        next: &mut TextList,
    ) -> Result<(), LoginError> {
        if self.auth != InitiatorAuth::AlgorithmSent {
            return Err(malformed("CHAP challenge outside the CHAP exchange"));
        }
        let (Some(identifier), Some(challenge), Some(auth)) =
            (identifier, challenge, self.config.chap.clone())
        else {
            return Err(malformed("CHAP_I or CHAP_C missing"));
        };
        let id = chap::parse_identifier(identifier).map_err(|e| malformed(e.to_string()))?;
        let challenge =
            chap::decode_binary(challenge).map_err(|e| LoginError::BadChallenge(e.to_string()))?;
        if let Err(ChallengeProblem::Length(n)) = chap::check_challenge(&challenge, None) {
            return Err(LoginError::BadChallenge(format!(
                "{n} bytes (at least {} are required)",
                chap::MIN_CHALLENGE_LEN
            )));
        }
        let ours = auth.initiator();
        next.push("CHAP_N", ours.user.clone());
        next.push(
            "CHAP_R",
            chap::encode_hex(&chap::response(id, &ours.secret, &challenge)),
        );
        if auth.target().is_some() {
            // Our challenge must not be the target's (RFC 7143 section 12.1.3).
            if challenge.as_slice() == self.mutual_challenge.as_slice() {
                self.mutual_challenge.iter_mut().for_each(|b| *b = !*b);
            }
            next.push("CHAP_I", self.mutual_id.to_string());
            next.push("CHAP_C", chap::encode_hex(&self.mutual_challenge));
        }
        self.auth = InitiatorAuth::ResponseSent;
        Ok(())
    }

    fn verify_target(
        &mut self,
        (name, response): (Option<&str>, Option<&str>),
    ) -> Result<(), LoginError> {
        let Some(expected) = self.mutual().cloned() else {
            return Err(malformed(
                "CHAP_N/CHAP_R from the target without mutual CHAP",
            ));
        };
        if self.auth != InitiatorAuth::ResponseSent {
            return Err(malformed("target CHAP response before ours"));
        }
        let (Some(name), Some(response)) = (name, response) else {
            return Err(LoginError::MutualChapMissing);
        };
        if name != expected.user {
            return Err(LoginError::MutualChapName {
                expected: expected.user.clone(),
                got: shorten(name),
            });
        }
        let response = chap::decode_binary(response).map_err(|_| LoginError::MutualChapFailed)?;
        if !chap::verify(
            self.mutual_id,
            &expected.secret,
            &self.mutual_challenge,
            &response,
        ) {
            return Err(LoginError::MutualChapFailed);
        }
        self.mutual_verified = true;
        Ok(())
    }

    fn leave_security(&mut self, rsp: &LoginResponse) -> Result<InitiatorStep, LoginError> {
        match self.auth {
            InitiatorAuth::Done => {}
            InitiatorAuth::ResponseSent if self.mutual().is_some() && !self.mutual_verified => {
                return Err(LoginError::MutualChapMissing);
            }
            InitiatorAuth::ResponseSent => {
                self.auth = InitiatorAuth::Done;
                self.chap_used = true;
            }
            InitiatorAuth::Offered if self.mutual().is_some() => {
                return Err(LoginError::MutualChapSkipped)
            }
            InitiatorAuth::Offered => self.auth = InitiatorAuth::Done,
            InitiatorAuth::AlgorithmSent => {
                return Err(malformed(
                    "the target left the security stage in the middle of CHAP",
                ))
            }
        }
        if rsp.nsg != Stage::Operational {
            return Err(malformed(format!(
                "the target went to {:?}, not the operational stage",
                rsp.nsg
            )));
        }
        self.stage = Stage::Operational;
        let offers = self.negotiator.offers(self.config.session_type());
        Ok(InitiatorStep::Send(self.request(
            true,
            Stage::FullFeature,
            offers,
        )))
    }

    fn operational(
        &mut self,
        keys: &TextList,
        rsp: &LoginResponse,
    ) -> Result<InitiatorStep, LoginError> {
        let counter = self.negotiator.absorb(keys)?;
        if !rsp.transit {
            return Ok(InitiatorStep::Send(self.request(
                true,
                Stage::FullFeature,
                counter,
            )));
        }
        if rsp.nsg != Stage::FullFeature {
            return Err(malformed(format!(
                "transit to {:?} from the operational stage",
                rsp.nsg
            )));
        }
        if rsp.tsih == 0 {
            return Err(malformed("the final Login Response has no TSIH"));
        }
        Ok(InitiatorStep::Done(Box::new(self.established(rsp))))
    }

    fn established(&self, rsp: &LoginResponse) -> Established {
        let c = &self.config;
        Established {
            params: self.negotiator.finish(),
            session_type: c.session_type(),
            initiator_name: c.initiator_name.clone(),
            initiator_alias: c.initiator_alias.clone(),
            target_name: c.target_name.clone(),
            target_alias: self.target_alias.clone(),
            target_portal_group_tag: self.target_portal_group_tag,
            isid: c.isid,
            tsih: rsp.tsih,
            cid: c.cid,
            cmd_sn: c.cmd_sn,
            stat_sn: self.exp_stat_sn,
            max_cmd_sn: rsp.max_cmd_sn,
            chap_user: c
                .chap
                .as_ref()
                .filter(|_| self.chap_used)
                .map(|a| a.initiator().user.clone()),
        }
    }

    fn request(&self, transit: bool, nsg: Stage, keys: TextList) -> LoginRequest {
        let c = &self.config;
        LoginRequest {
            transit,
            continue_: false,
            csg: self.stage,
            nsg: if transit { nsg } else { self.stage },
            version_max: ISCSI_VERSION,
            version_min: ISCSI_VERSION,
            isid: c.isid,
            tsih: 0,
            itt: c.itt,
            cid: c.cid,
            cmd_sn: c.cmd_sn,
            exp_stat_sn: self.exp_stat_sn,
            data: keys.encode(),
        }
    }
}

// ----------------------------------------------------------------------------------------
// SendTargets

/// Answers Text Requests of the full feature phase on the target: SendTargets (All in a
/// discovery session, a name, or empty for the session's target), with continuation
/// when the answer is longer than the initiator's MaxRecvDataSegmentLength. Other keys
/// cannot be renegotiated here: known ones get `Reject`, unknown ones `NotUnderstood`.
#[derive(Debug)]
pub struct TextResponder {
    config: Arc<TargetConfig>,
    session_type: SessionType,
    session_target: Option<String>,
    max_send: usize,
    request: TextAccumulator,
    pending: Option<PendingText>,
    next_ttt: u32,
}

#[derive(Debug)]
struct PendingText {
    itt: u32,
    ttt: u32,
    rest: Vec<u8>,
}

impl TextResponder {
    /// A responder for the session `established` on a target with `config`.
    pub fn new(config: Arc<TargetConfig>, established: &Established) -> Self {
        Self {
            config,
            session_type: established.session_type,
            session_target: established.target_name.clone(),
            max_send: established.params.send_limit(Role::Target) as usize,
            request: TextAccumulator::default(),
            pending: None,
            next_ttt: 1,
        }
    }

    /// The Text Response to `req` with the session layer's sequence numbers, or the
    /// reason to answer with a Reject instead (a continuation of an exchange we do not
    /// have, or a malformed text).
    pub fn respond(
        &mut self,
        req: &TextRequest,
        seq: TargetSeq,
    ) -> Result<TextResponse, RejectReason> {
        if req.ttt != RESERVED_TAG {
            return self.continue_answer(req, seq);
        }
        self.pending = None;
        let keys = match self.request.push(&req.data, req.continue_) {
            Ok(Some(keys)) => keys,
            Ok(None) => {
                // Acknowledge a continued request; the initiator sends the rest with
                // this TTT, which `continue_answer` takes as part of the request.
                let ttt = self.take_ttt();
                self.pending = Some(PendingText {
                    itt: req.itt,
                    ttt,
                    rest: Vec::new(),
                });
                return Ok(text_response(req, seq, false, false, ttt, Vec::new()));
            }
            Err(_) => return Err(RejectReason::InvalidPduField),
        };
        let data = self.answer(&keys).encode();
        Ok(self.first_chunk(req, seq, data))
    }

    fn continue_answer(
        &mut self,
        req: &TextRequest,
        seq: TargetSeq,
    ) -> Result<TextResponse, RejectReason> {
        let Some(pending) = self.pending.take() else {
            return Err(RejectReason::InvalidPduField);
        };
        if pending.ttt != req.ttt || pending.itt != req.itt {
            return Err(RejectReason::InvalidPduField);
        }
        if self.request.is_pending() {
            // The initiator's request goes on.
            let mut fresh = req.clone();
            fresh.ttt = RESERVED_TAG;
            return self.respond(&fresh, seq);
        }
        Ok(self.first_chunk(req, seq, pending.rest))
    }

    fn first_chunk(
        &mut self,
        req: &TextRequest,
        seq: TargetSeq,
        mut data: Vec<u8>,
    ) -> TextResponse {
        if data.len() <= self.max_send {
            return text_response(req, seq, true, false, RESERVED_TAG, data);
        }
        let rest = data.split_off(self.max_send);
        let ttt = self.take_ttt();
        self.pending = Some(PendingText {
            itt: req.itt,
            ttt,
            rest,
        });
        text_response(req, seq, false, true, ttt, data)
    }

    fn take_ttt(&mut self) -> u32 {
        let ttt = self.next_ttt;
        self.next_ttt = match ttt.wrapping_add(1) {
            RESERVED_TAG | 0 => 1,
            n => n,
        };
        ttt
    }

    fn answer(&self, keys: &TextList) -> TextList {
        let mut out = TextList::new();
        for (key, value) in keys.iter() {
            match key {
                "SendTargets" => self.send_targets(value, &mut out),
                // Operational keys cannot be renegotiated here; names and security keys
                // belong to the login.
                k if known_key(k) || !crate::params::is_operational_key(k) => out.push(k, REJECT),
                k => out.push(k, NOT_UNDERSTOOD),
            }
        }
        out
    }

    fn send_targets(&self, value: &str, out: &mut TextList) {
        let names: Vec<&str> = match (value, self.session_type) {
            ("All", SessionType::Discovery) => self
                .config
                .target_names
                .iter()
                .map(String::as_str)
                .collect(),
            ("All", SessionType::Normal) => {
                out.push("SendTargets", REJECT);
                return;
            }
            ("", _) => self.session_target.as_deref().into_iter().collect(),
            (name, SessionType::Discovery) => self.config.served(name).into_iter().collect(),
            (name, SessionType::Normal) => self
                .session_target
                .as_deref()
                .filter(|t| t.eq_ignore_ascii_case(name))
                .into_iter()
                .collect(),
        };
        for name in names {
            out.push("TargetName", name);
            if let Some(address) = &self.config.target_address {
                out.push(
                    "TargetAddress",
                    format!("{address},{}", self.config.portal_group_tag),
                );
            }
        }
    }
}

fn known_key(key: &str) -> bool {
    matches!(
        key,
        "HeaderDigest"
            | "DataDigest"
            | "MaxConnections"
            | "InitialR2T"
            | "ImmediateData"
            | "MaxRecvDataSegmentLength"
            | "MaxBurstLength"
            | "FirstBurstLength"
            | "DefaultTime2Wait"
            | "DefaultTime2Retain"
            | "MaxOutstandingR2T"
            | "DataPDUInOrder"
            | "DataSequenceInOrder"
            | "ErrorRecoveryLevel"
            | "iSCSIProtocolLevel"
            | "TaskReporting"
    )
}

fn text_response(
    req: &TextRequest,
    seq: TargetSeq,
    final_: bool,
    continue_: bool,
    ttt: u32,
    data: Vec<u8>,
) -> TextResponse {
    TextResponse {
        final_,
        continue_,
        lun: req.lun,
        itt: req.itt,
        ttt,
        stat_sn: seq.stat_sn,
        exp_cmd_sn: seq.exp_cmd_sn,
        max_cmd_sn: seq.max_cmd_sn,
        data,
    }
}

/// The Text Request of a discovery: `SendTargets=All`, immediate, final.
pub fn send_targets_request(itt: u32, cmd_sn: u32, exp_stat_sn: u32) -> TextRequest {
    TextRequest {
        immediate: true,
        final_: true,
        continue_: false,
        lun: 0,
        itt,
        ttt: RESERVED_TAG,
        cmd_sn,
        exp_stat_sn,
        data: b"SendTargets=All\0".to_vec(),
    }
}

/// The empty Text Request that asks for the continuation of a Text Response.
pub fn text_continue_request(itt: u32, ttt: u32, cmd_sn: u32, exp_stat_sn: u32) -> TextRequest {
    TextRequest {
        immediate: true,
        final_: true,
        ttt,
        itt,
        cmd_sn,
        exp_stat_sn,
        ..TextRequest::default()
    }
}

/// A target found by SendTargets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredTarget {
    /// TargetName.
    pub name: String,
    /// Its portals, in the order given (empty: the discovery connection's).
    pub portals: Vec<Portal>,
}

/// A TargetAddress: `host[:port][,tpgt]`, the host an IP address (IPv6 in brackets) or a
/// DNS name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// Address or name, without brackets.
    pub host: String,
    /// TCP port (3260 when not given).
    pub port: u16,
    /// Target portal group tag, when given.
    pub tpgt: Option<u16>,
}

impl Portal {
    /// Parses a TargetAddress value.
    pub fn parse(value: &str) -> Option<Portal> {
        let (address, tpgt) = match value.rsplit_once(',') {
            Some((a, t)) => (a, Some(t.parse().ok()?)),
            None => (value, None),
        };
        let (host, port) = if let Some(v6) = address.strip_prefix('[') {
            let (host, rest) = v6.split_once(']')?;
            match rest {
                "" => (host, None),
                r => (host, Some(r.strip_prefix(':')?)),
            }
        } else if address.matches(':').count() == 1 {
            let (h, p) = address.split_once(':')?;
            (h, Some(p))
        } else {
            (address, None)
        };
        let port = match port {
            Some(p) => p.parse().ok()?,
            None => DEFAULT_PORT,
        };
        (!host.is_empty()).then(|| Portal {
            host: host.to_string(),
            port,
            tpgt,
        })
    }
}

/// Why a SendTargets answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DiscoveryError {
    /// The text is malformed.
    #[error("SendTargets answer: {0}")]
    Text(#[from] TextError),
    /// A TargetAddress came before any TargetName.
    #[error("SendTargets answer: TargetAddress before any TargetName")]
    AddressWithoutTarget,
    /// A TargetAddress could not be parsed.
    #[error("SendTargets answer: bad TargetAddress {0:?}")]
    BadAddress(String),
    /// The target refused the request.
    #[error("the target answered SendTargets={0}")]
    Refused(String),
}

/// Parses the text of a SendTargets answer.
pub fn parse_send_targets(data: &[u8]) -> Result<Vec<DiscoveredTarget>, DiscoveryError> {
    let keys = TextList::parse(data)?;
    let mut targets: Vec<DiscoveredTarget> = Vec::new();
    for (key, value) in keys.iter() {
        match key {
            "TargetName" => targets.push(DiscoveredTarget {
                name: value.to_string(),
                portals: Vec::new(),
            }),
            "TargetAddress" => {
                let target = targets
                    .last_mut()
                    .ok_or(DiscoveryError::AddressWithoutTarget)?;
                let portal = Portal::parse(value)
                    .ok_or_else(|| DiscoveryError::BadAddress(shorten(value)))?;
                target.portals.push(portal);
            }
            "SendTargets" => return Err(DiscoveryError::Refused(shorten(value))),
            _ => {}
        }
    }
    Ok(targets)
}

/// Collects a SendTargets answer that may come in several Text Responses.
#[derive(Debug, Default)]
pub struct SendTargetsReply {
    text: TextAccumulator,
}

/// What to do after a Text Response to SendTargets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendTargetsStep {
    /// Ask for the rest with [`text_continue_request`] carrying this TTT.
    Continue {
        /// The response's TTT.
        ttt: u32,
    },
    /// The whole answer.
    Done(Vec<DiscoveredTarget>),
}

impl SendTargetsReply {
    /// A fresh collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one Text Response.
    pub fn handle(&mut self, rsp: &TextResponse) -> Result<SendTargetsStep, DiscoveryError> {
        match self.text.push(&rsp.data, rsp.continue_) {
            Ok(None) => Ok(SendTargetsStep::Continue { ttt: rsp.ttt }),
            Ok(Some(keys)) => parse_send_targets(&keys.encode()).map(SendTargetsStep::Done),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chap::ChapCredentials;
    use crate::digest::{DigestType, Digests};
    use crate::pdu::{Pdu, WireConfig};

    const TARGET: &str = "iqn.2024-01.org.ferric:node-1";
    const INITIATOR: &str = "iqn.2024-01.org.ferric:conductor";
    const ISID: Isid = [0x80, 0x12, 0x34, 0x56, 0, 0];
    const TSIH: u16 = 0x1234;

    /// A deterministic generator, so the challenges and StatSNs of a test are fixed.
    pub(crate) struct Xorshift(pub u64);

    impl RngCore for Xorshift {
        fn next_u32(&mut self) -> u32 {
            (self.next_u64() >> 32) as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            for chunk in dst.chunks_mut(8) {
                let bytes = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
        }
    }

    fn creds(user: &str, secret: &str) -> ChapCredentials {
        ChapCredentials::new(user, secret.as_bytes().to_vec()).unwrap()
    }

    fn one_way(user: &str, secret: &str) -> Option<ChapAuth> {
        Some(ChapAuth::new(creds(user, secret), None).unwrap())
    }

    fn mutual(user: &str, secret: &str, tuser: &str, tsecret: &str) -> Option<ChapAuth> {
        Some(ChapAuth::new(creds(user, secret), Some(creds(tuser, tsecret))).unwrap())
    }

    fn target_config(chap: Option<ChapAuth>) -> Arc<TargetConfig> {
        let mut c = TargetConfig::new(vec![
            TARGET.to_string(),
            "iqn.2024-01.org.ferric:other".into(),
        ]);
        c.chap = chap;
        c.target_address = Some("192.0.2.10:3260".into());
        Arc::new(c)
    }

    fn initiator_config(target: Option<&str>, chap: Option<ChapAuth>) -> InitiatorConfig {
        let mut c = InitiatorConfig::new(INITIATOR, target.map(str::to_string), ISID);
        c.chap = chap;
        c.itt = 0x0a0b_0c0d;
        c.cmd_sn = 0x100;
        c
    }

    /// Through the codec both ways, as over a socket.
    fn over_wire(pdu: Pdu) -> Pdu {
        Pdu::decode(&pdu.encode(Digests::NONE), &WireConfig::LOGIN).unwrap()
    }

    fn wire_req(req: &LoginRequest) -> LoginRequest {
        let Pdu::LoginRequest(r) = over_wire(req.clone().into()) else {
            panic!()
        };
        r
    }

    fn wire_rsp(rsp: &LoginResponse) -> LoginResponse {
        let Pdu::LoginResponse(r) = over_wire(rsp.clone().into()) else {
            panic!()
        };
        r
    }

    type TargetOutcome = Option<Result<Established, TargetFailure>>;

    /// Runs an initiator against a target in memory.
    fn run(
        t: Arc<TargetConfig>,
        i: InitiatorConfig,
    ) -> (TargetOutcome, Result<Established, LoginError>) {
        let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
        let mut target = TargetLogin::new(t, TSIH, &mut rng);
        let mut initiator = InitiatorLogin::new(i, &mut rng);
        let mut req = initiator.start();
        for _ in 0..16 {
            let (rsp, outcome) = match target.handle(&wire_req(&req)) {
                TargetStep::Continue(r) => (r, None),
                TargetStep::Done(r, e) => (r, Some(Ok(*e))),
                TargetStep::Fail(r, f) => (r, Some(Err(f))),
            };
            match initiator.handle(&wire_rsp(&rsp)) {
                Ok(InitiatorStep::Send(next)) => {
                    assert!(
                        outcome.is_none(),
                        "target finished, initiator goes on: {outcome:?}"
                    );
                    req = next;
                }
                Ok(InitiatorStep::Done(e)) => return (outcome, Ok(*e)),
                Err(e) => return (outcome, Err(e)),
            }
        }
        panic!("login did not finish");
    }

    fn both_done(t: Arc<TargetConfig>, i: InitiatorConfig) -> (Established, Established) {
        match run(t, i) {
            (Some(Ok(t)), Ok(i)) => {
                assert_eq!(t.params, i.params);
                assert_eq!(
                    (t.tsih, t.isid, t.cmd_sn, t.stat_sn, t.max_cmd_sn),
                    (i.tsih, i.isid, i.cmd_sn, i.stat_sn, i.max_cmd_sn)
                );
                assert_eq!((t.tsih, t.cmd_sn, t.max_cmd_sn), (TSIH, 0x100, 0x100 + 31));
                assert_eq!(t.session_type, i.session_type);
                assert_eq!(t.target_name, i.target_name);
                assert_eq!(t.initiator_name, INITIATOR);
                assert_eq!(t.chap_user, i.chap_user);
                (t, i)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_authentication() {
        let (t, _) = both_done(target_config(None), initiator_config(Some(TARGET), None));
        assert_eq!(t.session_type, SessionType::Normal);
        assert_eq!(t.target_portal_group_tag, Some(1));
        assert_eq!(t.chap_user, None);
        assert_eq!(t.params.initiator_max_recv_data_segment_length, 262_144);
        assert_eq!(t.params.target_max_recv_data_segment_length, 262_144);
        assert!(t.params.immediate_data && !t.params.initial_r2t);
        assert_eq!(t.params.digests(), Digests::NONE);
    }

    #[test]
    fn one_way_chap() {
        let chap = one_way("conductor", "conductor-secret");
        let (t, _) = both_done(
            target_config(chap.clone()),
            initiator_config(Some(TARGET), chap),
        );
        assert_eq!(t.chap_user.as_deref(), Some("conductor"));
    }

    #[test]
    fn mutual_chap() {
        let chap = mutual("conductor", "conductor-secret", "node", "node-secret-123");
        let (t, i) = both_done(
            target_config(chap.clone()),
            initiator_config(Some(TARGET), chap),
        );
        assert_eq!(t.chap_user.as_deref(), Some("conductor"));
        assert_eq!(i.chap_user.as_deref(), Some("conductor"));
    }

    #[test]
    fn wrong_secret_or_user_fails_authentication() {
        for initiator in [
            one_way("conductor", "not-the-secret"),
            one_way("someone", "conductor-secret"),
        ] {
            let (t, i) = run(
                target_config(one_way("conductor", "conductor-secret")),
                initiator_config(Some(TARGET), initiator),
            );
            let failure = t.unwrap().unwrap_err();
            assert_eq!(failure.status, LoginStatus::AuthenticationFailure);
            let err = i.unwrap_err();
            assert_eq!(
                err,
                LoginError::Rejected {
                    status: LoginStatus::AuthenticationFailure
                }
            );
            assert_eq!(
                err.to_string(),
                "the target refused the login: authentication failed (0x0201)"
            );
        }
    }

    #[test]
    fn wrong_target_is_not_found() {
        let (t, i) = run(
            target_config(None),
            initiator_config(Some("iqn.2024-01.org.ferric:nope"), None),
        );
        assert_eq!(t.unwrap().unwrap_err().status, LoginStatus::NotFound);
        assert_eq!(
            i.unwrap_err().to_string(),
            "the target refused the login: target not found (0x0203)"
        );
    }

    #[test]
    fn target_names_match_without_case() {
        let upper = TARGET.to_uppercase();
        let (t, _) = run(target_config(None), initiator_config(Some(&upper), None));
        assert_eq!(t.unwrap().unwrap().target_name.as_deref(), Some(TARGET));
    }

    #[test]
    fn discovery_sessions() {
        for chap in [None, one_way("conductor", "conductor-secret")] {
            let (t, _) = both_done(target_config(chap.clone()), initiator_config(None, chap));
            assert_eq!(t.session_type, SessionType::Discovery);
            assert_eq!(t.target_name, None);
            assert_eq!(t.target_portal_group_tag, None);
        }
    }

    #[test]
    fn chap_required_without_credentials() {
        let (t, i) = run(
            target_config(one_way("conductor", "conductor-secret")),
            initiator_config(Some(TARGET), None),
        );
        assert_eq!(
            t.unwrap().unwrap_err().status,
            LoginStatus::AuthenticationFailure
        );
        let err = i.unwrap_err();
        assert_eq!(err, LoginError::ChapRequired);
        assert_eq!(
            err.to_string(),
            "the target requires CHAP authentication and no CHAP credentials are configured"
        );
    }

    #[test]
    fn credentials_unused_when_the_target_wants_none() {
        let (t, _) = both_done(
            target_config(None),
            initiator_config(Some(TARGET), one_way("conductor", "conductor-secret")),
        );
        assert_eq!(t.chap_user, None);
    }

    #[test]
    fn mutual_chap_failures() {
        let target_side = mutual("conductor", "conductor-secret", "node", "node-secret-123");
        // The initiator expects another target secret.
        let (t, i) = run(
            target_config(target_side.clone()),
            initiator_config(
                Some(TARGET),
                mutual("conductor", "conductor-secret", "node", "other-secret-12"),
            ),
        );
        assert!(t.is_none(), "{t:?}");
        let err = i.unwrap_err();
        assert_eq!(err, LoginError::MutualChapFailed);
        assert_eq!(
            err.to_string(),
            "the target's mutual CHAP response is wrong (wrong target secret?)"
        );
        // ... or another target name.
        let (_, i) = run(
            target_config(target_side),
            initiator_config(
                Some(TARGET),
                mutual("conductor", "conductor-secret", "nodeX", "node-secret-123"),
            ),
        );
        assert!(matches!(i, Err(LoginError::MutualChapName { .. })), "{i:?}");
        // The target has no credentials to prove itself with.
        let (t, _) = run(
            target_config(one_way("conductor", "conductor-secret")),
            initiator_config(
                Some(TARGET),
                mutual("conductor", "conductor-secret", "node", "node-secret-123"),
            ),
        );
        assert_eq!(
            t.unwrap().unwrap_err().status,
            LoginStatus::AuthenticationFailure
        );
        // A target without CHAP cannot satisfy an initiator that insists on it.
        let (_, i) = run(
            target_config(None),
            initiator_config(
                Some(TARGET),
                mutual("conductor", "conductor-secret", "node", "node-secret-123"),
            ),
        );
        assert_eq!(
            i.unwrap_err(),
            LoginError::Rejected {
                status: LoginStatus::AuthenticationFailure
            }
        );
    }

    #[test]
    fn crc32c_digests_when_both_prefer_them() {
        let mut t = TargetConfig::new(vec![TARGET.into()]);
        t.limits.header_digests = vec![DigestType::Crc32c, DigestType::None];
        let mut i = initiator_config(Some(TARGET), None);
        i.limits.header_digests = vec![DigestType::Crc32c];
        i.limits.data_digests = vec![DigestType::Crc32c, DigestType::None];
        let (t, _) = both_done(Arc::new(t), i);
        assert_eq!(t.params.digests(), Digests::CRC32C);
    }

    // --- The target against the exact PDUs libiscsi 1.19 and open-iscsi send. ---

    /// A Login Request as raw bytes, laid out by hand (not by our encoder).
    fn raw_login(flags: u8, keys: &[&str], cmd_sn: u32, exp_stat_sn: u32) -> Vec<u8> {
        let mut data = Vec::new();
        for k in keys {
            data.extend_from_slice(k.as_bytes());
            data.push(0);
        }
        let mut pdu = vec![0x43, flags, 0x00, 0x00, 0x00];
        pdu.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        pdu.extend_from_slice(&ISID);
        pdu.extend_from_slice(&[0, 0]); // TSIH
        pdu.extend_from_slice(&0x1357_9bdfu32.to_be_bytes()); // ITT
        pdu.extend_from_slice(&[0, 0, 0, 0]); // CID, reserved
        pdu.extend_from_slice(&cmd_sn.to_be_bytes());
        pdu.extend_from_slice(&exp_stat_sn.to_be_bytes());
        pdu.extend_from_slice(&[0; 16]);
        pdu.extend_from_slice(&data);
        pdu.resize(pdu.len().div_ceil(4) * 4, 0);
        pdu
    }

    fn decode_login(bytes: &[u8]) -> LoginRequest {
        match Pdu::decode(bytes, &WireConfig::LOGIN).unwrap() {
            Pdu::LoginRequest(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn rsp_text(rsp: &LoginResponse) -> String {
        String::from_utf8(rsp.data.clone())
            .unwrap()
            .replace('\0', "|")
    }

    const LIBISCSI_OPS: [&str; 16] = [
        "HeaderDigest=None,CRC32C",
        "DataDigest=None",
        "InitialR2T=No",
        "ImmediateData=Yes",
        "MaxBurstLength=262144",
        "FirstBurstLength=262144",
        "DefaultTime2Wait=2",
        "DefaultTime2Retain=0",
        "MaxOutstandingR2T=1",
        "ErrorRecoveryLevel=0",
        "IFMarker=No",
        "OFMarker=No",
        "MaxConnections=1",
        "MaxRecvDataSegmentLength=262144",
        "DataPDUInOrder=Yes",
        "DataSequenceInOrder=Yes",
    ];

    const OPS_ANSWER: &str = "HeaderDigest=None|DataDigest=None|InitialR2T=No|ImmediateData=Yes|\
        MaxBurstLength=262144|FirstBurstLength=262144|DefaultTime2Wait=2|DefaultTime2Retain=0|\
        MaxOutstandingR2T=1|ErrorRecoveryLevel=0|IFMarker=No|OFMarker=No|MaxConnections=1|\
        DataPDUInOrder=Yes|DataSequenceInOrder=Yes|MaxRecvDataSegmentLength=262144|";

    fn libiscsi_names() -> Vec<String> {
        vec![
            "InitiatorName=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test".into(),
            format!("TargetName={TARGET}"),
            "SessionType=Normal".into(),
        ]
    }

    fn fresh_target(chap: Option<ChapAuth>) -> TargetLogin {
        TargetLogin::new(target_config(chap), TSIH, &mut Xorshift(42))
    }

    #[test]
    fn libiscsi_without_chap_logs_in_with_one_pdu() {
        let mut target = fresh_target(None);
        let mut keys = libiscsi_names();
        keys.extend(LIBISCSI_OPS.iter().map(|s| s.to_string()));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        // CSG=1 NSG=3 T=1, CmdSN 0x2000, ExpStatSN 1.
        let req = decode_login(&raw_login(0x87, &keys, 0x2000, 1));
        let TargetStep::Done(rsp, est) = target.handle(&req) else {
            panic!()
        };
        assert_eq!(
            rsp_text(&rsp),
            format!("TargetPortalGroupTag=1|{OPS_ANSWER}")
        );
        let bytes = Pdu::LoginResponse(rsp.clone()).encode(Digests::NONE);
        assert_eq!(&bytes[..4], &[0x23, 0x87, 0x00, 0x00]);
        assert_eq!(
            &bytes[8..20],
            &[0x80, 0x12, 0x34, 0x56, 0, 0, 0x12, 0x34, 0x13, 0x57, 0x9b, 0xdf]
        );
        assert_eq!(&bytes[28..38], &[0, 0, 0x20, 0, 0, 0, 0x20, 0x1f, 0, 0]);
        assert_eq!(est.cmd_sn, 0x2000);
        assert_eq!(est.stat_sn, rsp.stat_sn.wrapping_add(1));
        assert_eq!(est.params.max_burst_length, 262_144);
        assert!(target.is_finished());
    }

    /// libiscsi's CHAP exchange (lib/login.c): T=1 with AuthMethod=CHAP,None, then CHAP_A
    /// with T=0, then the response (upper-case hex) with T=1, then the operational keys.
    fn libiscsi_chap(target: &mut TargetLogin, mutual_challenge: Option<&[u8]>) -> LoginResponse {
        let mut keys = libiscsi_names();
        keys.push("AuthMethod=CHAP,None".into());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let TargetStep::Continue(rsp) = target.handle(&decode_login(&raw_login(0x81, &keys, 7, 1)))
        else {
            panic!()
        };
        assert!(!rsp.transit);
        assert_eq!(rsp_text(&rsp), "TargetPortalGroupTag=1|AuthMethod=CHAP|");
        let TargetStep::Continue(rsp) = target.handle(&decode_login(&raw_login(
            0x01,
            &["CHAP_A=5"],
            7,
            rsp.stat_sn + 1,
        ))) else {
            panic!()
        };
        let keys = TextList::parse(&rsp.data).unwrap();
        assert_eq!(keys.get("CHAP_A"), Some("5"));
        let id = chap::parse_identifier(keys.get("CHAP_I").unwrap()).unwrap();
        let challenge = chap::decode_binary(keys.get("CHAP_C").unwrap()).unwrap();
        assert_eq!(challenge.len(), 32);
        let secret = creds("libiscsi-user", "libiscsi-secret").secret;
        let r = chap::encode_hex(&chap::response(id, &secret, &challenge)).to_uppercase();
        let mut keys = vec![
            "CHAP_N=libiscsi-user".to_string(),
            format!("CHAP_R=0x{}", &r[2..]),
        ];
        if let Some(c) = mutual_challenge {
            keys.push("CHAP_I=1".into());
            keys.push(format!(
                "CHAP_C=0x{}",
                &chap::encode_hex(c)[2..].to_uppercase()
            ));
        }
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let TargetStep::Continue(rsp) =
            target.handle(&decode_login(&raw_login(0x81, &keys, 7, rsp.stat_sn + 1)))
        else {
            panic!()
        };
        assert!(rsp.transit);
        assert_eq!((rsp.csg, rsp.nsg), (Stage::Security, Stage::Operational));
        let ops: Vec<&str> = LIBISCSI_OPS.to_vec();
        let TargetStep::Done(done, est) =
            target.handle(&decode_login(&raw_login(0x87, &ops, 7, rsp.stat_sn + 1)))
        else {
            panic!()
        };
        assert_eq!(rsp_text(&done), OPS_ANSWER);
        assert_eq!(done.tsih, TSIH);
        assert_eq!(est.chap_user.as_deref(), Some("libiscsi-user"));
        rsp
    }

    #[test]
    fn libiscsi_with_chap() {
        let mut target = fresh_target(one_way("libiscsi-user", "libiscsi-secret"));
        let rsp = libiscsi_chap(&mut target, None);
        assert!(rsp.data.is_empty());
    }

    #[test]
    fn libiscsi_with_mutual_chap() {
        let mut target = fresh_target(mutual(
            "libiscsi-user",
            "libiscsi-secret",
            "target-user",
            "target-secret-1",
        ));
        let challenge = [0x5A; 32];
        let rsp = libiscsi_chap(&mut target, Some(&challenge));
        let keys = TextList::parse(&rsp.data).unwrap();
        assert_eq!(keys.get("CHAP_N"), Some("target-user"));
        let expected = chap::response(1, &creds("x", "target-secret-1").secret, &challenge);
        assert_eq!(
            keys.get("CHAP_R"),
            Some(chap::encode_hex(&expected).as_str())
        );
    }

    #[test]
    fn libiscsi_with_a_user_against_a_target_without_chap() {
        // libiscsi keeps sending the names in the operational stage in this case.
        let mut target = fresh_target(None);
        let mut keys = libiscsi_names();
        keys.push("AuthMethod=CHAP,None".into());
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let TargetStep::Continue(rsp) = target.handle(&decode_login(&raw_login(0x81, &keys, 7, 1)))
        else {
            panic!()
        };
        assert!(rsp.transit);
        assert_eq!(rsp_text(&rsp), "TargetPortalGroupTag=1|AuthMethod=None|");
        let mut keys = libiscsi_names();
        keys.extend(LIBISCSI_OPS.iter().map(|s| s.to_string()));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let step = target.handle(&decode_login(&raw_login(0x87, &keys, 7, 2)));
        assert!(matches!(step, TargetStep::Done(..)), "{step:?}");
    }

    #[test]
    fn open_iscsi_normal_and_discovery() {
        let mut target = fresh_target(None);
        let first = [
            "InitiatorName=iqn.1993-08.org.debian:01:2f6b1d6c3c7a",
            "InitiatorAlias=conductor-1",
            &format!("TargetName={TARGET}"),
            "SessionType=Normal",
            "AuthMethod=None",
        ];
        let TargetStep::Continue(rsp) =
            target.handle(&decode_login(&raw_login(0x81, &first, 1, 0)))
        else {
            panic!()
        };
        assert_eq!(rsp_text(&rsp), "TargetPortalGroupTag=1|AuthMethod=None|");
        let ops = [
            "HeaderDigest=None",
            "DataDigest=None",
            "DefaultTime2Wait=2",
            "DefaultTime2Retain=0",
            "IFMarker=No",
            "OFMarker=No",
            "ErrorRecoveryLevel=0",
            "InitialR2T=No",
            "ImmediateData=Yes",
            "MaxBurstLength=16776192",
            "FirstBurstLength=262144",
            "MaxOutstandingR2T=1",
            "MaxConnections=1",
            "DataPDUInOrder=Yes",
            "DataSequenceInOrder=Yes",
            "MaxRecvDataSegmentLength=262144",
        ];
        let TargetStep::Done(rsp, est) = target.handle(&decode_login(&raw_login(0x87, &ops, 1, 1)))
        else {
            panic!()
        };
        assert!(rsp_text(&rsp).contains("MaxBurstLength=1048576|"));
        assert_eq!(est.initiator_alias.as_deref(), Some("conductor-1"));
        assert_eq!(est.params.max_burst_length, 1_048_576);

        let mut target = fresh_target(None);
        let first = [
            "InitiatorName=iqn.1993-08.org.debian:01:2f6b1d6c3c7a",
            "SessionType=Discovery",
            "AuthMethod=None",
        ];
        let TargetStep::Continue(rsp) =
            target.handle(&decode_login(&raw_login(0x81, &first, 1, 0)))
        else {
            panic!()
        };
        assert_eq!(rsp_text(&rsp), "AuthMethod=None|");
        let ops = [
            "HeaderDigest=None",
            "DataDigest=None",
            "DefaultTime2Wait=2",
            "DefaultTime2Retain=0",
            "IFMarker=No",
            "OFMarker=No",
            "ErrorRecoveryLevel=0",
            "MaxRecvDataSegmentLength=32768",
        ];
        let TargetStep::Done(_, est) = target.handle(&decode_login(&raw_login(0x87, &ops, 1, 1)))
        else {
            panic!()
        };
        assert_eq!(est.session_type, SessionType::Discovery);
        assert_eq!(est.params.initiator_max_recv_data_segment_length, 32768);

        // libiscsi's SendTargets request, byte for byte (lib/discovery.c).
        let mut text = vec![0x44, 0x80, 0, 0, 0, 0, 0, 16];
        text.extend_from_slice(&[0; 8]);
        text.extend_from_slice(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 3]);
        text.extend_from_slice(&[0; 16]);
        text.extend_from_slice(b"SendTargets=All\0");
        let config = est.params.wire_config(Role::Target);
        let Pdu::TextRequest(req) = Pdu::decode(&text, &config).unwrap() else {
            panic!()
        };
        let mut responder = TextResponder::new(target_config(None), &est);
        let seq = TargetSeq {
            stat_sn: 9,
            exp_cmd_sn: 1,
            max_cmd_sn: 32,
        };
        let rsp = responder.respond(&req, seq).unwrap();
        let bytes = Pdu::TextResponse(rsp.clone()).encode(Digests::NONE);
        assert_eq!(&bytes[..2], &[0x24, 0x80], "F only, as libiscsi requires");
        assert_eq!(
            String::from_utf8(rsp.data).unwrap(),
            format!(
                "TargetName={TARGET}\0TargetAddress=192.0.2.10:3260,1\0\
                 TargetName=iqn.2024-01.org.ferric:other\0TargetAddress=192.0.2.10:3260,1\0"
            )
        );
    }

    fn first_keys(target: &mut TargetLogin, keys: &[&str]) -> TargetStep {
        target.handle(&decode_login(&raw_login(0x87, keys, 1, 0)))
    }

    fn failed_with(step: TargetStep) -> LoginStatus {
        match step {
            TargetStep::Fail(rsp, why) => {
                assert_eq!(rsp.status, why.status);
                assert!(!rsp.transit && rsp.data.is_empty());
                why.status
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_failure_statuses() {
        let name = format!("TargetName={TARGET}");
        let init = "InitiatorName=iqn.x:y";
        let cases: Vec<(Vec<&str>, LoginStatus)> = vec![
            (vec![name.as_str()], LoginStatus::MissingParameter),
            (vec![init], LoginStatus::MissingParameter),
            (vec![init, "TargetName=iqn.nope"], LoginStatus::NotFound),
            (
                vec![init, name.as_str(), "SessionType=Bogus"],
                LoginStatus::SessionTypeNotSupported,
            ),
            (
                vec![
                    init,
                    name.as_str(),
                    "MaxBurstLength=512",
                    "MaxBurstLength=1024",
                ],
                LoginStatus::InitiatorError,
            ),
            (
                vec![init, name.as_str(), "AuthMethod=None"],
                LoginStatus::InitiatorError,
            ),
        ];
        for (keys, status) in cases {
            assert_eq!(
                failed_with(first_keys(&mut fresh_target(None), &keys)),
                status,
                "{keys:?}"
            );
        }
        // CHAP required: no skipping the security stage, no AuthMethod=None.
        let chap = one_way("u", "conductor-secret");
        let step = first_keys(&mut fresh_target(chap.clone()), &[init, name.as_str()]);
        assert_eq!(failed_with(step), LoginStatus::AuthenticationFailure);
        let mut t = fresh_target(chap.clone());
        let step = t.handle(&decode_login(&raw_login(
            0x81,
            &[init, &name, "AuthMethod=None"],
            1,
            0,
        )));
        assert_eq!(failed_with(step), LoginStatus::AuthenticationFailure);
        let mut t = fresh_target(chap);
        let step = t.handle(&decode_login(&raw_login(0x81, &[init, &name], 1, 0)));
        assert_eq!(failed_with(step), LoginStatus::AuthenticationFailure);
        // Header checks.
        let mut req = decode_login(&raw_login(0x87, &[init, &name], 1, 0));
        req.version_min = 1;
        req.version_max = 2;
        assert_eq!(
            failed_with(fresh_target(None).handle(&req)),
            LoginStatus::UnsupportedVersion
        );
        let mut req = decode_login(&raw_login(0x87, &[init, &name], 1, 0));
        req.tsih = 7;
        assert_eq!(
            failed_with(fresh_target(None).handle(&req)),
            LoginStatus::SessionDoesNotExist
        );
        let req = decode_login(&raw_login(0xC7, &[init, &name], 1, 0));
        assert_eq!(
            failed_with(fresh_target(None).handle(&req)),
            LoginStatus::InitiatorError
        );
        let req = decode_login(&raw_login(0x84, &[init, &name], 1, 0));
        assert_eq!(
            failed_with(fresh_target(None).handle(&req)),
            LoginStatus::InitiatorError
        );
    }

    #[test]
    fn continued_login_text_is_assembled() {
        let mut target = fresh_target(None);
        let mut keys = libiscsi_names();
        keys.extend(LIBISCSI_OPS.iter().map(|s| s.to_string()));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let whole = decode_login(&raw_login(0x87, &keys, 5, 0)).data;
        let (a, b) = whole.split_at(100);
        let mut first = decode_login(&raw_login(0x47, &[], 5, 0)); // C=1, T=0
        first.data = a.to_vec();
        let TargetStep::Continue(ack) = target.handle(&first) else {
            panic!()
        };
        assert!(ack.data.is_empty() && !ack.transit);
        let mut second = decode_login(&raw_login(0x87, &[], 5, 0));
        second.data = b.to_vec();
        let TargetStep::Done(rsp, _) = target.handle(&second) else {
            panic!()
        };
        assert_eq!(
            rsp_text(&rsp),
            format!("TargetPortalGroupTag=1|{OPS_ANSWER}")
        );
        assert_eq!(rsp.stat_sn, ack.stat_sn.wrapping_add(1));
    }

    #[test]
    fn mutual_challenge_reflection_and_length_are_refused() {
        for bad in [None, Some(vec![1u8; 8])] {
            let mut target = fresh_target(mutual("u", "conductor-secret", "t", "node-secret-123"));
            let name = format!("TargetName={TARGET}");
            let step = target.handle(&decode_login(&raw_login(
                0x81,
                &["InitiatorName=iqn.x:y", &name, "AuthMethod=CHAP"],
                1,
                0,
            )));
            assert!(matches!(step, TargetStep::Continue(_)));
            let TargetStep::Continue(rsp) =
                target.handle(&decode_login(&raw_login(0x01, &["CHAP_A=7,5"], 1, 0)))
            else {
                panic!()
            };
            let keys = TextList::parse(&rsp.data).unwrap();
            let id = chap::parse_identifier(keys.get("CHAP_I").unwrap()).unwrap();
            let c = keys.get("CHAP_C").unwrap().to_string();
            let secret = creds("u", "conductor-secret").secret;
            let r = chap::encode_hex(&chap::response(
                id,
                &secret,
                &chap::decode_binary(&c).unwrap(),
            ));
            // Reflection: our own challenge sent back; or a too short one.
            let theirs = match &bad {
                None => c.clone(),
                Some(short) => chap::encode_hex(short),
            };
            let keys = [
                "CHAP_N=u".to_string(),
                format!("CHAP_R={r}"),
                "CHAP_I=3".into(),
                format!("CHAP_C={theirs}"),
            ];
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let step = target.handle(&decode_login(&raw_login(0x81, &keys, 1, 0)));
            assert_eq!(failed_with(step), LoginStatus::AuthenticationFailure);
        }
    }

    #[test]
    fn requests_after_the_end_are_refused() {
        let mut target = fresh_target(None);
        let keys = ["InitiatorName=iqn.x:y", "SessionType=Discovery"];
        assert!(matches!(
            first_keys(&mut target, &keys),
            TargetStep::Done(..)
        ));
        let step = first_keys(&mut target, &keys);
        assert_eq!(failed_with(step), LoginStatus::InvalidDuringLogin);
    }

    #[test]
    fn reject_from_a_raw_header() {
        let mut target = fresh_target(None);
        let bytes = raw_login(0x8B, &[], 0x77, 0); // T, CSG=2: undecodable
        assert!(Pdu::decode(&bytes, &WireConfig::LOGIN).is_err());
        let bhs: &[u8; 48] = bytes[..48].try_into().unwrap();
        let rsp = target.reject(LoginStatus::InitiatorError, bhs);
        assert_eq!(
            (rsp.itt, rsp.isid, rsp.exp_cmd_sn),
            (0x1357_9bdf, ISID, 0x77)
        );
        assert_eq!(rsp.status, LoginStatus::InitiatorError);
        assert!(target.is_finished());
    }

    // --- The initiator against hand-made target responses. ---

    fn started(chap: Option<ChapAuth>) -> (InitiatorLogin, LoginRequest) {
        let mut i = InitiatorLogin::new(initiator_config(Some(TARGET), chap), &mut Xorshift(5));
        let req = i.start();
        (i, req)
    }

    fn reply(req: &LoginRequest, transit: bool, nsg: Stage, keys: &str) -> LoginResponse {
        LoginResponse {
            transit,
            csg: req.csg,
            nsg,
            isid: req.isid,
            itt: req.itt,
            stat_sn: 50,
            exp_cmd_sn: req.cmd_sn,
            max_cmd_sn: req.cmd_sn + 10,
            data: keys.replace('|', "\0").into_bytes(),
            ..Default::default()
        }
    }

    #[test]
    fn initiator_first_request() {
        let (_, req) = started(one_way("conductor", "conductor-secret"));
        assert!(req.transit);
        assert_eq!((req.csg, req.nsg), (Stage::Security, Stage::Operational));
        assert_eq!(
            String::from_utf8(req.data).unwrap(),
            format!(
                "InitiatorName={INITIATOR}\0TargetName={TARGET}\0SessionType=Normal\0AuthMethod=CHAP,None\0"
            )
        );
    }

    #[test]
    fn initiator_errors_are_specific() {
        let (mut i, req) = started(one_way("conductor", "conductor-secret"));
        let short = reply(&req, false, Stage::Security, "AuthMethod=CHAP|");
        let Ok(InitiatorStep::Send(next)) = i.handle(&short) else {
            panic!()
        };
        assert_eq!(next.data, b"CHAP_A=5\0");
        assert!(!next.transit);
        let challenge = reply(
            &next,
            false,
            Stage::Security,
            "CHAP_A=5|CHAP_I=1|CHAP_C=0x0102030405|",
        );
        let err = i.handle(&challenge).unwrap_err();
        assert!(matches!(err, LoginError::BadChallenge(_)), "{err:?}");
        assert_eq!(i.handle(&challenge), Err(LoginError::NotInProgress));

        let (mut i, req) = started(None);
        let chap = reply(&req, false, Stage::Security, "AuthMethod=CHAP|");
        assert_eq!(i.handle(&chap), Err(LoginError::ChapRequired));

        let (mut i, req) = started(None);
        let mut moved = reply(
            &req,
            false,
            Stage::Security,
            "TargetAddress=192.0.2.7:3260,1|",
        );
        moved.status = LoginStatus::TargetMovedTemporarily;
        let err = i.handle(&moved).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the target redirects the login to 192.0.2.7:3260,1: target moved temporarily (0x0101)"
        );

        let (mut i, req) = started(None);
        let Ok(InitiatorStep::Send(ops)) =
            i.handle(&reply(&req, true, Stage::Operational, "AuthMethod=None|"))
        else {
            panic!()
        };
        assert_eq!(
            (ops.csg, ops.nsg, ops.transit),
            (Stage::Operational, Stage::FullFeature, true)
        );
        assert_eq!(ops.exp_stat_sn, 51);
        let no_tsih = reply(&ops, true, Stage::FullFeature, "");
        assert_eq!(
            i.handle(&no_tsih),
            Err(LoginError::Malformed(
                "the final Login Response has no TSIH".into()
            ))
        );

        let (mut i, req) = started(Some(
            ChapAuth::new(
                creds("a", "conductor-secret"),
                Some(creds("b", "node-secret-123")),
            )
            .unwrap(),
        ));
        assert_eq!(
            i.handle(&reply(&req, true, Stage::Operational, "AuthMethod=None|")),
            Err(LoginError::MutualChapSkipped)
        );

        let (mut i, req) = started(None);
        let mut other = reply(&req, false, Stage::Security, "");
        other.itt ^= 1;
        assert!(matches!(i.handle(&other), Err(LoginError::Malformed(_))));
    }

    #[test]
    fn initiator_assembles_continued_responses_and_answers_target_offers() {
        let (mut i, req) = started(None);
        let Ok(InitiatorStep::Send(ops)) =
            i.handle(&reply(&req, true, Stage::Operational, "AuthMethod=None|"))
        else {
            panic!()
        };
        let mut part = reply(&ops, false, Stage::Operational, "MaxBurstLen");
        part.continue_ = true;
        let Ok(InitiatorStep::Send(empty)) = i.handle(&part) else {
            panic!()
        };
        assert!(empty.data.is_empty() && !empty.transit);
        let rest = reply(
            &empty,
            false,
            Stage::Operational,
            "gth=65536|X-vendor.Key=1|",
        );
        let Ok(InitiatorStep::Send(counter)) = i.handle(&rest) else {
            panic!()
        };
        assert_eq!(counter.data, b"X-vendor.Key=NotUnderstood\0");
        let mut last = reply(
            &counter,
            true,
            Stage::FullFeature,
            "MaxRecvDataSegmentLength=16384|",
        );
        last.tsih = 9;
        let Ok(InitiatorStep::Done(est)) = i.handle(&last) else {
            panic!()
        };
        assert_eq!(est.params.max_burst_length, 65536);
        assert_eq!(est.params.first_burst_length, 65536);
        assert_eq!(est.params.target_max_recv_data_segment_length, 16384);
        assert_eq!(est.tsih, 9);
    }

    // --- SendTargets. ---

    fn established(session_type: SessionType, max_send: u32) -> Established {
        Established {
            params: SessionParams {
                initiator_max_recv_data_segment_length: max_send,
                ..SessionParams::default()
            },
            session_type,
            initiator_name: INITIATOR.into(),
            initiator_alias: None,
            target_name: (session_type == SessionType::Normal).then(|| TARGET.to_string()),
            target_alias: None,
            target_portal_group_tag: None,
            isid: ISID,
            tsih: 1,
            cid: 0,
            cmd_sn: 1,
            stat_sn: 1,
            max_cmd_sn: 1,
            chap_user: None,
        }
    }

    fn text_req(keys: &str) -> TextRequest {
        TextRequest {
            final_: true,
            itt: 4,
            ttt: RESERVED_TAG,
            data: keys.replace('|', "\0").into_bytes(),
            ..Default::default()
        }
    }

    #[test]
    fn send_targets_in_a_normal_session() {
        let mut r =
            TextResponder::new(target_config(None), &established(SessionType::Normal, 8192));
        let seq = TargetSeq::default();
        let rsp = r.respond(&text_req("SendTargets=|"), seq).unwrap();
        assert_eq!(
            rsp.data,
            format!("TargetName={TARGET}\0TargetAddress=192.0.2.10:3260,1\0").into_bytes()
        );
        let rsp = r
            .respond(
                &text_req("SendTargets=All|MaxBurstLength=4096|X-a=1|InitiatorName=x|"),
                seq,
            )
            .unwrap();
        assert_eq!(
            rsp.data,
            b"SendTargets=Reject\0MaxBurstLength=Reject\0X-a=NotUnderstood\0InitiatorName=Reject\0"
        );
        let rsp = r
            .respond(&text_req("SendTargets=iqn.2024-01.org.ferric:other|"), seq)
            .unwrap();
        assert!(
            rsp.data.is_empty(),
            "another target is not reported in a normal session"
        );
    }

    #[test]
    fn long_send_targets_answers_continue() {
        let mut r = TextResponder::new(
            target_config(None),
            &established(SessionType::Discovery, 40),
        );
        let seq = TargetSeq::default();
        let mut reply = SendTargetsReply::new();
        let mut rsp = r.respond(&text_req("SendTargets=All|"), seq).unwrap();
        let mut chunks = 1;
        let found = loop {
            assert!(rsp.data.len() <= 40);
            match reply.handle(&rsp).unwrap() {
                SendTargetsStep::Continue { ttt } => {
                    assert_eq!((rsp.final_, rsp.continue_), (false, true));
                    assert_ne!(ttt, RESERVED_TAG);
                    rsp = r
                        .respond(&text_continue_request(4, ttt, 1, 1), seq)
                        .unwrap();
                    chunks += 1;
                }
                SendTargetsStep::Done(found) => break found,
            }
        };
        assert!(rsp.final_ && rsp.ttt == RESERVED_TAG);
        assert_eq!(chunks, 4, "143 bytes in 40-byte pieces");
        let portal = Portal {
            host: "192.0.2.10".into(),
            port: 3260,
            tpgt: Some(1),
        };
        assert_eq!(
            found,
            vec![
                DiscoveredTarget {
                    name: TARGET.into(),
                    portals: vec![portal.clone()]
                },
                DiscoveredTarget {
                    name: "iqn.2024-01.org.ferric:other".into(),
                    portals: vec![portal]
                },
            ]
        );
        assert_eq!(
            r.respond(&text_continue_request(4, 77, 1, 1), seq),
            Err(RejectReason::InvalidPduField)
        );
    }

    #[test]
    fn continued_text_requests_are_assembled() {
        let mut r = TextResponder::new(
            target_config(None),
            &established(SessionType::Discovery, 8192),
        );
        let seq = TargetSeq::default();
        let mut first = text_req("SendTarg");
        first.final_ = false;
        first.continue_ = true;
        let ack = r.respond(&first, seq).unwrap();
        assert!(ack.data.is_empty() && !ack.final_ && ack.ttt != RESERVED_TAG);
        let mut rest = text_req("ets=iqn.2024-01.org.ferric:other|");
        rest.ttt = ack.ttt;
        let rsp = r.respond(&rest, seq).unwrap();
        assert!(rsp.final_);
        assert_eq!(
            parse_send_targets(&rsp.data).unwrap()[0].name,
            "iqn.2024-01.org.ferric:other"
        );
    }

    #[test]
    fn send_targets_request_bytes_match_libiscsi() {
        let req = send_targets_request(5, 1, 3);
        let bytes = Pdu::TextRequest(req).encode(Digests::NONE);
        let mut expected = vec![0x44, 0x80, 0, 0, 0, 0, 0, 16];
        expected.extend_from_slice(&[0; 8]);
        expected.extend_from_slice(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 3]);
        expected.extend_from_slice(&[0; 16]);
        expected.extend_from_slice(b"SendTargets=All\0");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn portals_and_discovery_errors() {
        let p = |s| Portal::parse(s);
        assert_eq!(
            p("192.0.2.1:3261,2"),
            Some(Portal {
                host: "192.0.2.1".into(),
                port: 3261,
                tpgt: Some(2)
            })
        );
        assert_eq!(
            p("[fe80::1]:3260,1"),
            Some(Portal {
                host: "fe80::1".into(),
                port: 3260,
                tpgt: Some(1)
            })
        );
        assert_eq!(
            p("[fe80::1]"),
            Some(Portal {
                host: "fe80::1".into(),
                port: 3260,
                tpgt: None
            })
        );
        assert_eq!(
            p("fe80::1"),
            Some(Portal {
                host: "fe80::1".into(),
                port: 3260,
                tpgt: None
            })
        );
        assert_eq!(
            p("host.example,5"),
            Some(Portal {
                host: "host.example".into(),
                port: 3260,
                tpgt: Some(5)
            })
        );
        assert_eq!(p("1.2.3.4:x"), None);
        assert_eq!(p("1.2.3.4,99999"), None);
        assert_eq!(p(":3260"), None);
        assert_eq!(
            parse_send_targets(b"TargetAddress=1.2.3.4\0"),
            Err(DiscoveryError::AddressWithoutTarget)
        );
        assert_eq!(
            parse_send_targets(b"SendTargets=Reject\0"),
            Err(DiscoveryError::Refused("Reject".into()))
        );
        assert_eq!(parse_send_targets(b"").unwrap(), vec![]);
    }
}
