//! Known-answer tests from a real exchange: ipmitool 1.8.19 (`-C 3 power status`) against
//! pyghmi's fakebmc, captured by a UDP proxy (`tests/data/ipmitool-c3-fakebmc.txt`). Both
//! our ends are run with their random numbers fixed to the captured ones and must produce
//! the captured bytes.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{capture, ScriptedRng, TestUsers};
use ferric_ipmi::client::{ClientConfig, ClientSession, Event, Lookup};
use ferric_ipmi::codes;
use ferric_ipmi::crypto::{Hash, RakpInputs, SessionCrypto, SessionKeys};
use ferric_ipmi::server::{Incoming, Server, ServerConfig};
use ferric_ipmi::wire::message::Message;
use ferric_ipmi::wire::{self, Datagram};
use ferric_ipmi::{CipherSuite, Privilege, Response};

const CAPTURE: &str = include_str!("data/ipmitool-c3-fakebmc.txt");
const MANAGED_SID: [u8; 4] = [0x2e, 0xc3, 0xd4, 0xe6];
const CONSOLE_SID: [u8; 4] = [0xa4, 0xa3, 0xa2, 0xa0];
const RM: [u8; 16] = [
    0x87, 0x25, 0x7c, 0xfe, 0x40, 0x95, 0x3d, 0x67, 0xf6, 0x20, 0xbc, 0xd8, 0xec, 0x8a, 0x7f, 0x42,
];
const RC: [u8; 16] = [
    0x81, 0x0d, 0x0f, 0x1b, 0xe4, 0x67, 0xc4, 0xb4, 0x81, 0x94, 0xd8, 0x5d, 0x64, 0x5f, 0x3a, 0xdd,
];
const GUID: [u8; 16] = [
    0xfe, 0xd5, 0x52, 0xbe, 0x90, 0x9f, 0x4f, 0x16, 0x9c, 0xe5, 0x57, 0xec, 0x02, 0xb2, 0xdd, 0x7d,
];

/// The IV of an encrypted session datagram: the payload's first 16 bytes.
fn iv(datagram: &[u8]) -> &[u8] {
    &datagram[16..32]
}

/// pyghmi's answers to what ipmitool asked in the capture.
fn fakebmc_answer(netfn: u8, cmd: u8) -> Response {
    match (netfn, cmd) {
        (codes::NETFN_APP, codes::CMD_GET_DEVICE_ID) => {
            Response::ok(vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        }
        (codes::NETFN_CHASSIS, codes::CMD_GET_CHASSIS_STATUS) => Response::ok(vec![0, 0, 0]),
        _ => Response::error(codes::CC_INVALID_COMMAND),
    }
}

#[test]
fn our_server_answers_ipmitool_byte_for_byte_as_fakebmc_did() {
    let packets = capture(CAPTURE);
    let answers: Vec<&Vec<u8>> = packets.iter().filter(|(c, _)| !c).map(|(_, b)| b).collect();
    // Session id, then Rc, then one IV per encrypted answer, in the order they were used.
    let mut randoms: Vec<&[u8]> = vec![&MANAGED_SID, &RC];
    randoms.extend(answers.iter().filter(|a| a[5] == 0xc0).map(|a| iv(a)));
    let config = ServerConfig {
        cipher_suites: vec![CipherSuite::Suite3],
        max_sessions: 4,
        idle_timeout: Duration::from_secs(60),
        guid: GUID,
    };
    let mut server = Server::with_rng(config, Box::new(ScriptedRng::new(&randoms)));
    let users = TestUsers::admin();
    let now = Instant::now();
    let mut answered = 0;
    for pair in packets.chunks(2) {
        let [(true, request), (false, expected)] = pair else {
            panic!("capture not in request/answer pairs")
        };
        let answer = match server.handle(now, request, &users) {
            Incoming::Handled(answer) => answer,
            Incoming::Request {
                session,
                request,
                privilege,
                username,
            } => {
                assert_eq!(
                    (username.as_slice(), privilege),
                    (&b"admin"[..], Privilege::Administrator)
                );
                let response = fakebmc_answer(request.netfn, request.cmd);
                server.respond(session, &request, response)
            }
        };
        assert_eq!(
            answer.as_deref().map(common_hex),
            Some(common_hex(expected)),
            "answer {answered}"
        );
        answered += 1;
    }
    assert_eq!(answered, 11);
    assert_eq!(server.session_count(), 0, "ipmitool closed its session");
}

fn common_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn our_client_speaks_like_ipmitool_and_understands_fakebmc() {
    let packets = capture(CAPTURE);
    let config = ClientConfig {
        username: b"admin".to_vec(),
        password: "password".into(),
        kg: None,
        privilege: Privilege::Administrator,
        cipher_suite: Some(CipherSuite::Suite3),
        lookup: Lookup::NameOnly,
        timeout: Duration::from_secs(1),
        attempts: 1,
        peer: "fakebmc".into(),
        bridge: None,
    };
    let set_priv_iv = [0x5a; 16];
    let rng = ScriptedRng::new(&[&CONSOLE_SID, &RM, &set_priv_iv]);
    let mut client = ClientSession::with_rng(config, Box::new(rng));
    let now = Instant::now();
    client.start(now);
    // Get Channel Auth Capabilities, Open Session, RAKP 1 and RAKP 3: exactly ipmitool's.
    for step in 0..4 {
        let (true, sent) = &packets[2 * step] else {
            panic!()
        };
        let (false, answer) = &packets[2 * step + 1] else {
            panic!()
        };
        assert_eq!(
            client.poll_transmit().map(|d| common_hex(&d)),
            Some(common_hex(sent)),
            "step {step}"
        );
        client.handle(now, answer);
    }
    // Set Session Privilege Level: ipmitool used session sequence 3, we use 1; the
    // plaintext must match, and fakebmc's answer (to rqSeq 1) must establish the session.
    let ours = client.poll_transmit().unwrap();
    let crypto = keys();
    let open = |d: &[u8]| {
        let Ok(Datagram::V20(p)) = wire::decode(d) else {
            panic!()
        };
        assert_eq!(p.session_id, u32::from_le_bytes(MANAGED_SID));
        crypto.open(&p).unwrap()
    };
    assert_eq!(open(&ours), open(&packets[8].1));
    client.handle(now, &packets[9].1);
    assert!(matches!(
        client.poll_event(),
        Some(Event::Established {
            cipher_suite: CipherSuite::Suite3,
            privilege: Privilege::Administrator
        })
    ));
    // Our next request gets rqSeq 2, like ipmitool's DCMI probe: fakebmc's answer fits.
    let id = client.request(now, 0x2c, 0x3e, &[0x00, 0x02]).unwrap();
    let sent = client.poll_transmit().unwrap();
    assert_eq!(Message::decode(&open(&sent)).unwrap().seq, 2);
    client.handle(now, &packets[11].1);
    match client.poll_event() {
        Some(Event::Response { id: got, response }) => {
            assert_eq!(got, id);
            assert_eq!(response.completion_code, codes::CC_INVALID_COMMAND);
        }
        other => panic!("{other:?}"),
    }
}

fn keys() -> SessionCrypto {
    let inputs = RakpInputs {
        console_session_id: u32::from_le_bytes(CONSOLE_SID),
        managed_session_id: u32::from_le_bytes(MANAGED_SID),
        console_random: &RM,
        managed_random: &RC,
        managed_guid: &GUID,
        role: 0x14,
        username: b"admin",
    };
    SessionCrypto {
        suite: CipherSuite::Suite3,
        keys: SessionKeys::derive(Hash::Sha1, b"password", &inputs),
    }
}
