//! The fuzz target's body, kept in the crate so the seed corpus also runs as a unit test
//! (`fuzz/corpus/pdu/`).
//!
//! Each input is read as a stream of PDUs under several wire configurations (login, and
//! full feature phase with and without digests): every PDU decoded must encode back to
//! itself; Login Requests go to a fresh [`TargetLogin`] (one requiring CHAP with fixed
//! credentials, one not), Login Responses to a fresh [`InitiatorLogin`], Text Requests to
//! a [`TextResponder`] and Text Responses to a [`SendTargetsReply`]. The raw input also
//! goes to the text, negotiation and CHAP value parsers. Nothing may panic.

use std::sync::Arc;

use rand::RngCore;

use crate::chap::{self, ChapAuth, ChapCredentials};
use crate::digest::Digests;
use crate::login::{
    parse_send_targets, InitiatorConfig, InitiatorLogin, InitiatorStep, Portal, SendTargetsReply,
    TargetConfig, TargetLogin, TargetStep, TextResponder,
};
use crate::params::{parse_number, Limits, Negotiator, Role, SessionType};
use crate::pdu::{LoginStatus, Pdu, TargetSeq, WireConfig, BHS_LEN, MAX_DATA_SEGMENT_LEN};
use crate::text::{TextAccumulator, TextList};

/// The target name the fuzz target serves.
pub const FUZZ_TARGET: &str = "iqn.2024-01.org.ferric:fuzz";
/// The CHAP user of the CHAP-requiring fuzz target.
pub const FUZZ_CHAP_USER: &str = "fuzz-user";
/// Its secret.
pub const FUZZ_CHAP_SECRET: &str = "fuzz-secret-123";
/// The target's CHAP credentials for mutual CHAP.
pub const FUZZ_TARGET_USER: &str = "fuzz-target";
/// Their secret.
pub const FUZZ_TARGET_SECRET: &str = "fuzz-target-secret";
/// The seed of the generator the fuzz targets draw challenges from.
pub const FUZZ_RNG_SEED: u64 = 0x0123_4567_89AB_CDEF;
/// The TSIH the fuzz targets assign.
pub const FUZZ_TSIH: u16 = 0x0101;

/// A deterministic generator (xorshift), so every run of an input is the same run.
#[derive(Clone, Debug)]
pub struct Xorshift(pub u64);

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
            chunk.copy_from_slice(bytes.get(..chunk.len()).unwrap_or_default());
        }
    }
}

/// The target configuration of the fuzz target: CHAP (with mutual credentials) or not.
pub fn fuzz_target_config(with_chap: bool) -> Arc<TargetConfig> {
    let mut config = TargetConfig::new(vec![FUZZ_TARGET.to_string()]);
    config.target_address = Some("127.0.0.1:3260".into());
    if with_chap {
        config.chap = fuzz_chap(true);
    }
    Arc::new(config)
}

/// The CHAP setup of the fuzz target and initiator.
pub fn fuzz_chap(mutual: bool) -> Option<ChapAuth> {
    let initiator =
        ChapCredentials::new(FUZZ_CHAP_USER, FUZZ_CHAP_SECRET.as_bytes().to_vec()).ok()?;
    let target =
        ChapCredentials::new(FUZZ_TARGET_USER, FUZZ_TARGET_SECRET.as_bytes().to_vec()).ok()?;
    ChapAuth::new(initiator, mutual.then_some(target)).ok()
}

/// What a run reached, so tests can tell that seeds go deep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// PDUs decoded (over all configurations).
    pub pdus: usize,
    /// Logins a fuzz target completed.
    pub target_logins: usize,
    /// Text Responses a fuzz target gave after a login.
    pub text_responses: usize,
}

/// Runs one fuzz input through everything; panics only on a bug.
pub fn fuzz_entry(data: &[u8]) {
    run(data);
}

/// [`fuzz_entry`], telling how far the input got.
pub fn run(data: &[u8]) -> Reached {
    let mut reached = Reached::default();
    let configs = [
        WireConfig::LOGIN,
        WireConfig::new(Digests::NONE, 262_144),
        WireConfig::new(Digests::CRC32C, 262_144),
    ];
    for config in configs {
        for with_chap in [false, true] {
            stream(data, config, with_chap, &mut reached);
        }
    }
    text_parsers(data);
    reached
}

/// The per-connection state the PDUs of one input go to.
struct Ends {
    target: TargetLogin,
    config: Arc<TargetConfig>,
    responder: Option<TextResponder>,
    initiator: InitiatorLogin,
    send_targets: SendTargetsReply,
}

impl Ends {
    fn new(with_chap: bool) -> Self {
        let config = fuzz_target_config(with_chap);
        let mut rng = Xorshift(FUZZ_RNG_SEED);
        let target = TargetLogin::new(config.clone(), FUZZ_TSIH, &mut rng);
        let mut initiator_config = InitiatorConfig::new(
            "iqn.2024-01.org.ferric:fuzzer",
            Some(FUZZ_TARGET.into()),
            [0x80, 1, 2, 3, 0, 0],
        );
        initiator_config.chap = fuzz_chap(with_chap);
        let mut initiator = InitiatorLogin::new(initiator_config, &mut rng);
        let _ = initiator.start();
        Self {
            target,
            config,
            responder: None,
            initiator,
            send_targets: SendTargetsReply::new(),
        }
    }
}

fn stream(data: &[u8], config: WireConfig, with_chap: bool, reached: &mut Reached) {
    let mut ends = Ends::new(with_chap);
    let mut rest = data;
    for _ in 0..64 {
        match Pdu::decode_from(rest, &config) {
            Ok(Some((pdu, used))) => {
                reached.pdus += 1;
                check_roundtrip(&pdu, config.digests);
                feed(&mut ends, &pdu, reached);
                rest = rest.get(used..).unwrap_or_default();
            }
            Ok(None) => break,
            Err(e) => {
                let _ = (e.reject_reason(), e.to_string());
                if let Some(bhs) = rest
                    .get(..BHS_LEN)
                    .and_then(|b| <&[u8; BHS_LEN]>::try_from(b).ok())
                {
                    check_login_response(&ends.target.reject(LoginStatus::InitiatorError, bhs));
                }
                break;
            }
        }
    }
}

fn check_roundtrip(pdu: &Pdu, digests: Digests) {
    let bytes = pdu.encode(digests);
    let again = Pdu::decode(&bytes, &WireConfig::new(digests, MAX_DATA_SEGMENT_LEN));
    assert_eq!(again.as_ref(), Ok(pdu), "re-encoding changed the PDU");
}

fn check_login_response(rsp: &crate::pdu::LoginResponse) {
    assert!(rsp.data.len() <= crate::pdu::LOGIN_MAX_DATA_SEGMENT_LEN as usize);
    check_roundtrip(&Pdu::LoginResponse(rsp.clone()), Digests::NONE);
}

fn feed(ends: &mut Ends, pdu: &Pdu, reached: &mut Reached) {
    match pdu {
        Pdu::LoginRequest(req) => match ends.target.handle(req) {
            TargetStep::Continue(rsp) | TargetStep::Fail(rsp, _) => check_login_response(&rsp),
            TargetStep::Done(rsp, established) => {
                check_login_response(&rsp);
                assert_eq!(rsp.tsih, FUZZ_TSIH);
                reached.target_logins += 1;
                ends.responder = Some(TextResponder::new(ends.config.clone(), &established));
            }
        },
        Pdu::TextRequest(req) => {
            if let Some(responder) = &mut ends.responder {
                if let Ok(rsp) = responder.respond(req, TargetSeq::default()) {
                    reached.text_responses += 1;
                    check_roundtrip(&Pdu::TextResponse(rsp), Digests::NONE);
                }
            }
        }
        Pdu::LoginResponse(rsp) => {
            if let Ok(InitiatorStep::Send(next)) = ends.initiator.handle(rsp) {
                check_roundtrip(&Pdu::LoginRequest(next), Digests::NONE);
            }
        }
        Pdu::TextResponse(rsp) => {
            let _ = ends.send_targets.handle(rsp);
        }
        _ => {}
    }
}

fn text_parsers(data: &[u8]) {
    if let Ok(list) = TextList::parse(data) {
        assert_eq!(TextList::parse(&list.encode()).as_ref(), Ok(&list));
        let _ = list.check_unique();
        for role in [Role::Target, Role::Initiator] {
            let mut n = Negotiator::new(role, Limits::default());
            let _ = n.offers(SessionType::Normal);
            let _ = n.respond(&list);
            let _ = n.absorb(&list);
            let p = n.finish();
            assert!(p.first_burst_length <= p.max_burst_length);
        }
    }
    let mut acc = TextAccumulator::new(4096);
    for chunk in data.chunks(7) {
        let _ = acc.push(chunk, true);
    }
    let _ = acc.push(&[], false);
    let _ = parse_send_targets(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = chap::decode_binary(s);
        let _ = chap::parse_identifier(s);
        let _ = chap::choose_algorithm(s);
        let _ = Portal::parse(s);
        let _ = parse_number(s);
    }
}

/// The seed corpus: PDU streams as libiscsi and open-iscsi send them, a full CHAP login
/// against the fuzz target (its challenge comes from [`FUZZ_RNG_SEED`]), and PDUs of
/// every kind. `(file name, bytes)`.
pub fn seed_corpus() -> Vec<(&'static str, Vec<u8>)> {
    seeds::all()
}

mod seeds {
    use super::*;
    use crate::login::send_targets_request;
    use crate::pdu::{
        AsyncEvent, AsyncMessage, DataIn, DataOut, LoginRequest, LogoutReason, LogoutRequest,
        LogoutResponse, NopIn, NopOut, R2t, Reject, RejectReason, Residual, ScsiCommand,
        ScsiResponse, Snack, SnackType, Stage, TaskMgmtRequest, TaskMgmtResponse, TextResponse,
        TmfFunction, TmfResponse, RESERVED_TAG,
    };

    const ISID: [u8; 6] = [0x80, 0x11, 0x22, 0x33, 0, 0];

    fn login(transit: bool, csg: Stage, nsg: Stage, keys: &[&str]) -> Pdu {
        let mut data = Vec::new();
        for k in keys {
            data.extend_from_slice(k.as_bytes());
            data.push(0);
        }
        Pdu::LoginRequest(LoginRequest {
            transit,
            csg,
            nsg: if transit { nsg } else { csg },
            isid: ISID,
            itt: 0x10,
            cmd_sn: 1,
            data,
            ..Default::default()
        })
    }

    fn ops() -> Vec<&'static str> {
        vec![
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
        ]
    }

    fn stream(pdus: &[Pdu]) -> Vec<u8> {
        pdus.iter().flat_map(|p| p.encode(Digests::NONE)).collect()
    }

    fn names() -> Vec<String> {
        vec![
            "InitiatorName=iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test".into(),
            format!("TargetName={FUZZ_TARGET}"),
            "SessionType=Normal".into(),
        ]
    }

    /// A libiscsi-style mutual CHAP login that the CHAP fuzz target completes.
    fn chap_login() -> Vec<u8> {
        let mut target = Ends::new(true).target;
        let mut first = names();
        first.push("AuthMethod=CHAP,None".into());
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        let mut pdus = vec![
            login(true, Stage::Security, Stage::Operational, &first),
            login(false, Stage::Security, Stage::Operational, &["CHAP_A=5"]),
        ];
        let mut challenge = None;
        for pdu in &pdus {
            let Pdu::LoginRequest(req) = pdu else {
                continue;
            };
            if let TargetStep::Continue(rsp) = target.handle(req) {
                let keys = TextList::parse(&rsp.data).unwrap_or_default();
                if let (Some(i), Some(c)) = (keys.get("CHAP_I"), keys.get("CHAP_C")) {
                    challenge = chap::parse_identifier(i)
                        .ok()
                        .zip(chap::decode_binary(c).ok());
                }
            }
        }
        let (id, challenge) = challenge.unwrap_or_default();
        let secret = fuzz_chap(false).map(|c| c.initiator().secret.clone());
        let r = secret
            .map(|s| chap::encode_hex(&chap::response(id, &s, &challenge)))
            .unwrap_or_default();
        let answer = [
            format!("CHAP_N={FUZZ_CHAP_USER}"),
            format!("CHAP_R={r}"),
            "CHAP_I=9".into(),
            format!("CHAP_C={}", chap::encode_hex(&[0x77; 32])),
        ];
        let answer: Vec<&str> = answer.iter().map(String::as_str).collect();
        pdus.push(login(true, Stage::Security, Stage::Operational, &answer));
        pdus.push(login(true, Stage::Operational, Stage::FullFeature, &ops()));
        stream(&pdus)
    }

    fn discovery() -> Vec<u8> {
        let first = [
            "InitiatorName=iqn.1993-08.org.debian:01:2f6b1d6c3c7a",
            "SessionType=Discovery",
            "AuthMethod=None",
        ];
        let second = [
            "HeaderDigest=None",
            "DataDigest=None",
            "DefaultTime2Wait=2",
            "DefaultTime2Retain=0",
            "IFMarker=No",
            "OFMarker=No",
            "ErrorRecoveryLevel=0",
            "MaxRecvDataSegmentLength=32768",
        ];
        stream(&[
            login(true, Stage::Security, Stage::Operational, &first),
            login(true, Stage::Operational, Stage::FullFeature, &second),
            Pdu::TextRequest(send_targets_request(0x11, 1, 2)),
        ])
    }

    fn libiscsi_no_chap() -> Vec<u8> {
        let mut keys = names();
        keys.extend(ops().into_iter().map(String::from));
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        stream(&[login(true, Stage::Operational, Stage::FullFeature, &keys)])
    }

    fn initiator_pdus() -> Vec<u8> {
        let mut cmd = ScsiCommand {
            final_: true,
            write: true,
            itt: 2,
            expected_data_transfer_length: 4096,
            cmd_sn: 1,
            bidi_read_length: Some(512),
            data: vec![0xA5; 512],
            ..Default::default()
        };
        cmd.set_cdb(&[
            0x2A, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        stream(&[
            Pdu::NopOut(NopOut {
                immediate: true,
                itt: 1,
                ttt: RESERVED_TAG,
                data: b"ping".to_vec(),
                ..Default::default()
            }),
            Pdu::ScsiCommand(cmd),
            Pdu::DataOut(DataOut {
                final_: true,
                itt: 2,
                ttt: 5,
                buffer_offset: 512,
                data: vec![0x5A; 100],
                ..Default::default()
            }),
            Pdu::TaskMgmtRequest(TaskMgmtRequest {
                immediate: true,
                function: TmfFunction::LogicalUnitReset,
                itt: 3,
                referenced_task_tag: RESERVED_TAG,
                ..Default::default()
            }),
            Pdu::Snack(Snack {
                snack_type: SnackType::Status,
                itt: RESERVED_TAG,
                ..Default::default()
            }),
            Pdu::LogoutRequest(LogoutRequest {
                immediate: true,
                reason: LogoutReason::CloseSession,
                itt: 4,
                ..Default::default()
            }),
        ])
    }

    fn target_pdus() -> Vec<u8> {
        let rsp = |transit, csg, nsg, keys: &str, tsih| {
            Pdu::LoginResponse(crate::pdu::LoginResponse {
                transit,
                csg,
                nsg,
                isid: [0x80, 1, 2, 3, 0, 0],
                tsih,
                data: keys.replace('|', "\0").into_bytes(),
                ..Default::default()
            })
        };
        stream(&[
            rsp(
                true,
                Stage::Security,
                Stage::Operational,
                "TargetPortalGroupTag=1|AuthMethod=None|",
                0,
            ),
            rsp(
                true,
                Stage::Operational,
                Stage::FullFeature,
                "HeaderDigest=None|MaxRecvDataSegmentLength=65536|",
                7,
            ),
            Pdu::NopIn(NopIn {
                itt: RESERVED_TAG,
                ttt: 9,
                ..Default::default()
            }),
            Pdu::ScsiResponse(ScsiResponse {
                status: 2,
                itt: 2,
                residual: Residual::Underflow(10),
                sense: vec![0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0],
                ..Default::default()
            }),
            Pdu::DataIn(DataIn {
                final_: true,
                status: Some(0),
                itt: 2,
                ttt: RESERVED_TAG,
                data: vec![1; 33],
                ..Default::default()
            }),
            Pdu::R2t(R2t {
                itt: 2,
                ttt: 5,
                desired_data_transfer_length: 4096,
                ..Default::default()
            }),
            Pdu::TaskMgmtResponse(TaskMgmtResponse {
                response: TmfResponse::FunctionComplete,
                itt: 3,
                ..Default::default()
            }),
            Pdu::TextResponse(TextResponse {
                final_: true,
                ttt: RESERVED_TAG,
                data: format!("TargetName={FUZZ_TARGET}\0TargetAddress=[::1]:3260,1\0")
                    .into_bytes(),
                ..Default::default()
            }),
            Pdu::LogoutResponse(LogoutResponse {
                itt: 4,
                time2wait: 2,
                ..Default::default()
            }),
            Pdu::AsyncMessage(AsyncMessage {
                event: AsyncEvent::LogoutRequested,
                parameter3: 5,
                ..Default::default()
            }),
            Pdu::Reject(Reject {
                reason: RejectReason::ProtocolError,
                header: vec![0x01; BHS_LEN],
                ..Default::default()
            }),
        ])
    }

    fn with_digests() -> Vec<u8> {
        [
            Pdu::DataOut(DataOut {
                itt: 2,
                data: vec![3; 7],
                ..Default::default()
            }),
            Pdu::NopOut(NopOut {
                itt: 1,
                ttt: RESERVED_TAG,
                ..Default::default()
            }),
        ]
        .iter()
        .flat_map(|p| p.encode(Digests::CRC32C))
        .collect()
    }

    pub(super) fn all() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("libiscsi-no-chap", libiscsi_no_chap()),
            ("libiscsi-mutual-chap", chap_login()),
            ("open-iscsi-discovery", discovery()),
            ("initiator-pdus", initiator_pdus()),
            ("target-pdus", target_pdus()),
            ("crc32c-digests", with_digests()),
            (
                "text-only",
                b"SendTargets=All\0MaxBurstLength=0x200\0X-a=\0".to_vec(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn corpus_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pdu")
    }

    #[test]
    fn the_fuzz_corpus_runs_clean() {
        let mut count = 0;
        for entry in std::fs::read_dir(corpus_dir()).expect("corpus directory") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            fuzz_entry(&bytes);
            for cut in [
                0,
                1,
                47,
                48,
                49,
                bytes.len() / 2,
                bytes.len().saturating_sub(1),
            ] {
                fuzz_entry(&bytes[..cut.min(bytes.len())]);
            }
            let mut flipped = bytes.clone();
            for i in (0..flipped.len()).step_by(13) {
                flipped[i] ^= 0x5A;
            }
            fuzz_entry(&flipped);
            count += 1;
        }
        assert!(count >= 7, "corpus has {count} files");
    }

    #[test]
    fn the_seed_files_are_the_generated_seeds() {
        for (name, bytes) in seed_corpus() {
            let on_disk = std::fs::read(corpus_dir().join(name)).unwrap_or_default();
            assert!(
                on_disk == bytes,
                "fuzz/corpus/pdu/{name} is stale: run `cargo test -p ferric-iscsi --lib fuzz::tests::write_seed_corpus -- --ignored`"
            );
        }
    }

    #[test]
    fn seeds_reach_the_login_machines() {
        let seeds: std::collections::HashMap<_, _> = seed_corpus().into_iter().collect();
        // The CHAP seed logs in to the CHAP target only; the others to the open target.
        assert_eq!(
            run(&seeds["libiscsi-mutual-chap"]).target_logins,
            2,
            "LOGIN and FFP configs"
        );
        assert_eq!(run(&seeds["libiscsi-no-chap"]).target_logins, 2);
        let discovery = run(&seeds["open-iscsi-discovery"]);
        assert_eq!(discovery.target_logins, 2);
        assert_eq!(discovery.text_responses, 2);
        assert!(run(&seeds["crc32c-digests"]).pdus >= 2);
        assert_eq!(
            run(&seeds["target-pdus"]).pdus,
            11 * 4,
            "decoded under both non-digest configs"
        );
    }

    #[test]
    #[ignore = "writes the seed corpus files"]
    fn write_seed_corpus() {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (name, bytes) in seed_corpus() {
            std::fs::write(corpus_dir().join(name), bytes).unwrap();
        }
    }
}
