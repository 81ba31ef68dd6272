//! `ClientSession` against `Server` in one process, on a manual clock: every cipher suite,
//! wrong passwords, replays, sequence windows, malformed datagrams, session limits, idle
//! expiry, retries.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::time::{Duration, Instant};

use common::{config, Chassis, TestUsers};
use ferric_ipmi::client::{ClientConfig, ClientSession, Event, Lookup};
use ferric_ipmi::codes;
use ferric_ipmi::commands::{ChassisControl, DeviceId};
use ferric_ipmi::server::{Incoming, Server, ServerConfig};
use ferric_ipmi::wire::rakp::{OpenSessionRequest, Rakp1, Rakp3, Rakp4};
use ferric_ipmi::wire::session::{encode_v20, PayloadType, V20Header};
use ferric_ipmi::wire::{self, Datagram};
use ferric_ipmi::{CipherSuite, Error, Privilege, Response};

const ALL: [CipherSuite; 4] = CipherSuite::PROBE_ORDER;

fn client_config(user: &str, password: &str, suite: Option<CipherSuite>) -> ClientConfig {
    ClientConfig {
        username: user.as_bytes().to_vec(),
        password: password.into(),
        kg: None,
        privilege: Privilege::Administrator,
        cipher_suite: suite,
        lookup: Lookup::NameOnly,
        timeout: Duration::from_secs(1),
        attempts: 3,
        peer: "in-process BMC".into(),
        bridge: None,
    }
}

/// A client and a server joined by a lossless wire, and a clock.
struct Pair {
    client: ClientSession,
    server: Server,
    users: TestUsers,
    chassis: Chassis,
    now: Instant,
    events: Vec<Event>,
    /// When set, datagrams from the client are kept here instead of delivered.
    hold: Option<Vec<Vec<u8>>>,
    /// Datagrams from the client this says yes to are lost.
    lose: fn(&[u8]) -> bool,
}

impl Pair {
    fn new(server: ServerConfig, client: ClientConfig) -> Self {
        Self::with_client(Server::new(server), ClientSession::new(client))
    }

    fn with_client(server: Server, client: ClientSession) -> Self {
        Self {
            client,
            server,
            users: TestUsers::admin(),
            chassis: Chassis::default(),
            now: Instant::now(),
            events: Vec::new(),
            hold: None,
            lose: |_| false,
        }
    }

    /// The server's answer to one datagram, running the chassis for handed-over requests.
    fn deliver(&mut self, datagram: &[u8]) -> Option<Vec<u8>> {
        match self.server.handle(self.now, datagram, &self.users) {
            Incoming::Handled(answer) => answer,
            Incoming::Request {
                session,
                privilege,
                request,
                ..
            } => {
                let response = self.chassis.execute(privilege, &request);
                self.server.respond(session, &request, response)
            }
        }
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(d) = self.client.poll_transmit() {
                moved = true;
                if let Some(held) = &mut self.hold {
                    held.push(d);
                } else if (self.lose)(&d) {
                } else if let Some(answer) = self.deliver(&d) {
                    self.client.handle(self.now, &answer);
                }
            }
            while let Some(e) = self.client.poll_event() {
                moved = true;
                self.events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    fn start(&mut self) -> Event {
        self.client.start(self.now);
        self.pump();
        self.events.pop().expect("an event")
    }

    fn connect(&mut self) -> (CipherSuite, Privilege) {
        match self.start() {
            Event::Established {
                cipher_suite,
                privilege,
            } => (cipher_suite, privilege),
            other => panic!("not established: {other:?}"),
        }
    }

    fn call(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Response {
        let id = self.client.request(self.now, netfn, cmd, data).unwrap();
        self.pump();
        match self.events.pop() {
            Some(Event::Response { id: got, response }) if got == id => response,
            other => panic!("no response: {other:?}"),
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.pump();
    }
}

#[test]
fn every_suite_handshakes_and_carries_requests() {
    for suite in ALL {
        let mut pair = Pair::new(
            config(&ALL),
            client_config("admin", "password", Some(suite)),
        );
        assert_eq!(pair.connect(), (suite, Privilege::Administrator), "{suite}");
        assert_eq!(pair.client.cipher_suite(), Some(suite));

        let r = pair.call(codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[]);
        assert_eq!(
            DeviceId::decode(&r.into_result().unwrap()).unwrap(),
            common::device_id()
        );

        let up = ChassisControl::PowerUp.encode();
        let r = pair.call(codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL, &up);
        assert_eq!(r.completion_code, 0);
        assert!(
            pair.chassis.power_on,
            "{suite}: power on reached the chassis"
        );

        let r = pair.call(0x2c, 0x00, &[0]);
        assert_eq!(r.completion_code, codes::CC_INVALID_COMMAND);
        assert_eq!(pair.server.session_count(), 1);

        pair.client.close(pair.now);
        pair.pump();
        assert!(matches!(pair.events.pop(), Some(Event::Closed)));
        assert_eq!(pair.server.session_count(), 0, "{suite}: closed on the BMC");
    }
}

#[test]
fn probing_takes_the_strongest_suite_both_offer() {
    let offered = [CipherSuite::Suite2, CipherSuite::Suite3];
    let mut pair = Pair::new(config(&offered), client_config("admin", "password", None));
    assert_eq!(pair.connect().0, CipherSuite::Suite3);
    let mut pair = Pair::new(config(&ALL), client_config("admin", "password", None));
    assert_eq!(pair.connect().0, CipherSuite::Suite17);
}

#[test]
fn a_suite_the_bmc_does_not_offer_is_refused_by_status() {
    let offered = [CipherSuite::Suite3];
    let mut pair = Pair::new(
        config(&offered),
        client_config("admin", "password", Some(CipherSuite::Suite17)),
    );
    match pair.start() {
        Event::Failed(Error::Refused { status, .. }) => {
            assert_eq!(status, codes::RMCP_INVALID_AUTH_ALGORITHM)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_password_is_reported_as_such_and_frees_the_bmc_slot() {
    for suite in ALL {
        let mut pair = Pair::new(
            config(&ALL),
            client_config("admin", "passw0rd", Some(suite)),
        );
        match pair.start() {
            Event::Failed(e @ Error::WrongPassword { .. }) => {
                let text = e.to_string();
                assert!(text.contains("wrong password"), "{text}");
                assert!(text.contains("invalid integrity check value"), "{text}");
                assert!(!text.contains("passw0rd"), "{text}");
            }
            other => panic!("{suite}: {other:?}"),
        }
        assert_eq!(
            pair.server.session_count(),
            0,
            "{suite}: RAKP 3 refusal freed it"
        );
    }
}

#[test]
fn unknown_user_is_refused_with_unauthorized_name() {
    let mut pair = Pair::new(config(&ALL), client_config("nobody", "password", None));
    match pair.start() {
        Event::Failed(e @ Error::Refused { status: 0x0d, .. }) => {
            assert!(e.to_string().contains("unauthorized name"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.server.session_count(), 0);
}

#[test]
fn privilege_is_capped_by_the_user() {
    // Name-only lookup: the session opens, but Administrator is refused (0x81).
    let mut pair = Pair::new(config(&ALL), client_config("operator", "oppass", None));
    match pair.start() {
        Event::Failed(Error::Completion { code, .. }) => {
            assert_eq!(code, codes::CC_PRIVILEGE_EXCEEDS_LIMIT)
        }
        other => panic!("{other:?}"),
    }
    // Username/privilege lookup: no operator user at Administrator.
    let mut cfg = client_config("operator", "oppass", None);
    cfg.lookup = Lookup::NameAndPrivilege;
    let mut pair = Pair::new(config(&ALL), cfg);
    assert!(matches!(
        pair.start(),
        Event::Failed(Error::Refused { status: 0x0d, .. })
    ));
    // At Operator it works, and chassis control is allowed; a User may not.
    let mut cfg = client_config("operator", "oppass", None);
    cfg.privilege = Privilege::Operator;
    let mut pair = Pair::new(config(&ALL), cfg);
    assert_eq!(pair.connect().1, Privilege::Operator);
    let r = pair.call(codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL, &[1]);
    assert_eq!(r.completion_code, 0);
    let mut cfg = client_config("viewer", "viewpass", None);
    cfg.privilege = Privilege::User;
    let mut pair = Pair::new(config(&ALL), cfg);
    assert_eq!(pair.connect().1, Privilege::User);
    let r = pair.call(codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL, &[1]);
    assert_eq!(r.completion_code, codes::CC_INSUFFICIENT_PRIVILEGE);
}

#[test]
fn wrong_rakp3_gets_invalid_integrity_check_value() {
    // A hand-driven console that skips checking RAKP 2 and signs RAKP 3 with a guess.
    let mut server = Server::new(config(&ALL));
    let users = TestUsers::admin();
    let now = Instant::now();
    let unauth = |payload_type, payload: &[u8]| {
        let header = V20Header {
            payload_type,
            encrypted: false,
            authenticated: false,
            session_id: 0,
            seq: 0,
        };
        encode_v20(header, payload, |_| Vec::new())
    };
    let open = OpenSessionRequest {
        tag: 1,
        max_privilege: 0,
        console_session_id: 0x1111_2222,
        algorithms: CipherSuite::Suite3.algorithms(),
    };
    let Incoming::Handled(Some(answer)) = server.handle(
        now,
        &unauth(PayloadType::OpenSessionRequest, &open.encode()),
        &users,
    ) else {
        panic!("no Open Session Response")
    };
    let Ok(Datagram::V20(p)) = wire::decode(&answer) else {
        panic!()
    };
    let rs = ferric_ipmi::wire::rakp::OpenSessionResponse::decode(p.payload).unwrap();
    let rakp1 = Rakp1 {
        tag: 2,
        managed_session_id: rs.managed_session_id,
        console_random: [3; 16],
        role: 0x14,
        username: b"admin".to_vec(),
    };
    let Incoming::Handled(Some(_rakp2)) =
        server.handle(now, &unauth(PayloadType::Rakp1, &rakp1.encode()), &users)
    else {
        panic!("no RAKP 2")
    };
    let rakp3 = Rakp3 {
        tag: 3,
        status: 0,
        managed_session_id: rs.managed_session_id,
        auth_code: vec![0x42; 20],
    };
    let Incoming::Handled(Some(answer)) =
        server.handle(now, &unauth(PayloadType::Rakp3, &rakp3.encode()), &users)
    else {
        panic!("no RAKP 4")
    };
    let Ok(Datagram::V20(p)) = wire::decode(&answer) else {
        panic!()
    };
    let rakp4 = Rakp4::decode(p.payload).unwrap();
    assert_eq!(rakp4.status, codes::RMCP_INVALID_INTEGRITY_CHECK);
    assert_eq!(rakp4.console_session_id, 0x1111_2222);
    assert_eq!(server.session_count(), 0);
}

#[test]
fn replayed_packets_are_dropped_both_ways() {
    for suite in ALL {
        let mut pair = Pair::new(
            config(&ALL),
            client_config("admin", "password", Some(suite)),
        );
        pair.connect();
        pair.hold = Some(Vec::new());
        let id = pair
            .client
            .request(
                pair.now,
                codes::NETFN_CHASSIS,
                codes::CMD_CHASSIS_CONTROL,
                &[1],
            )
            .unwrap();
        pair.pump();
        let sent = pair.hold.take().unwrap().pop().unwrap();
        let answer = pair.deliver(&sent).expect("first copy answered");
        assert_eq!(pair.chassis.controls.len(), 1);
        assert!(
            pair.deliver(&sent).is_none(),
            "{suite}: replay to the BMC dropped"
        );
        assert_eq!(
            pair.chassis.controls.len(),
            1,
            "{suite}: replay not executed"
        );
        pair.client.handle(pair.now, &answer);
        pair.client.handle(pair.now, &answer);
        pair.pump();
        let responses = pair
            .events
            .iter()
            .filter(|e| matches!(e, Event::Response { id: got, .. } if *got == id))
            .count();
        assert_eq!(responses, 1, "{suite}: replay to the console dropped");
    }
}

#[test]
fn packets_behind_the_window_are_dropped() {
    let mut pair = Pair::new(
        config(&ALL),
        client_config("admin", "password", Some(CipherSuite::Suite3)),
    );
    pair.connect();
    pair.hold = Some(Vec::new());
    pair.client
        .request(pair.now, codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[])
        .unwrap();
    pair.pump();
    let late = pair.hold.take().unwrap().pop().unwrap();
    for _ in 0..17 {
        pair.call(codes::NETFN_CHASSIS, codes::CMD_GET_CHASSIS_STATUS, &[]);
    }
    let before = pair.chassis.requests;
    assert!(
        pair.deliver(&late).is_none(),
        "17 behind the highest: dropped"
    );
    assert_eq!(pair.chassis.requests, before);
}

#[test]
fn packets_ahead_of_the_window_are_dropped() {
    let mut cfg = client_config("admin", "password", Some(CipherSuite::Suite17));
    cfg.attempts = 1;
    let mut pair = Pair::new(config(&ALL), cfg);
    pair.connect();
    // Lose 16 requests on the wire: the console's sequence number runs 17 ahead.
    pair.hold = Some(Vec::new());
    for _ in 0..16 {
        pair.client
            .request(pair.now, codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[])
            .unwrap();
        pair.pump();
        pair.advance(Duration::from_secs(1));
    }
    assert!(pair.events.iter().all(|e| matches!(
        e,
        Event::RequestFailed {
            error: Error::NoAnswer { attempts: 1, .. },
            ..
        } | Event::Established { .. }
    )));
    let within = pair.hold.take().unwrap().pop().unwrap();
    pair.hold = Some(Vec::new());
    pair.client
        .request(pair.now, codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[])
        .unwrap();
    pair.pump();
    let beyond = pair.hold.take().unwrap().pop().unwrap();
    // Seq 1 was Set Session Privilege; `beyond` is 18, 17 ahead: dropped. 17 is 16 ahead.
    assert!(pair.deliver(&beyond).is_none(), "17 ahead: dropped");
    assert!(pair.deliver(&within).is_some(), "16 ahead: accepted");
}

#[test]
fn truncated_oversized_and_tampered_datagrams_are_refused() {
    let mut pair = Pair::new(
        config(&ALL),
        client_config("admin", "password", Some(CipherSuite::Suite3)),
    );
    pair.connect();
    pair.hold = Some(Vec::new());
    pair.client
        .request(pair.now, codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[])
        .unwrap();
    pair.pump();
    let good = pair.hold.take().unwrap().pop().unwrap();
    for n in 0..good.len() {
        assert!(
            pair.deliver(&good[..n]).is_none(),
            "prefix of {n} bytes answered"
        );
    }
    let mut oversized = good.clone();
    oversized.resize(1025, 0);
    assert!(pair.deliver(&oversized).is_none());
    for i in 4..good.len() {
        let mut tampered = good.clone();
        tampered[i] ^= 0x01;
        assert!(
            pair.deliver(&tampered).is_none(),
            "byte {i} flipped, still answered"
        );
    }
    assert_eq!(pair.chassis.requests, 0);
    let answer = pair.deliver(&good).expect("the intact one is answered");
    // The console refuses the BMC's answer cut short or padded past 1024 bytes.
    pair.client.handle(pair.now, &answer[..answer.len() - 1]);
    let mut long = answer.clone();
    long.resize(1025, 0xff);
    pair.client.handle(pair.now, &long);
    pair.pump();
    assert!(!pair
        .events
        .iter()
        .any(|e| matches!(e, Event::Response { .. })));
    pair.client.handle(pair.now, &answer);
    pair.pump();
    assert!(matches!(pair.events.last(), Some(Event::Response { .. })));
}

#[test]
fn the_session_limit_is_enforced_and_freed_by_close() {
    let cfg = ServerConfig {
        max_sessions: 2,
        ..config(&ALL)
    };
    let mut server = Server::new(cfg);
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut pair = Pair::with_client(
            server,
            ClientSession::new(client_config("admin", "password", None)),
        );
        pair.connect();
        clients.push(pair.client);
        server = pair.server;
    }
    let mut third = Pair::with_client(
        server,
        ClientSession::new(client_config("admin", "password", None)),
    );
    match third.start() {
        Event::Failed(Error::Refused { status, .. }) => {
            assert_eq!(status, codes::RMCP_INSUFFICIENT_RESOURCES)
        }
        other => panic!("{other:?}"),
    }
    let mut first = Pair::with_client(third.server, clients.remove(0));
    first.client.close(first.now);
    first.pump();
    assert_eq!(first.server.session_count(), 1);
    let mut again = Pair::with_client(
        first.server,
        ClientSession::new(client_config("admin", "password", None)),
    );
    again.connect();
    assert_eq!(again.server.session_count(), 2);
}

#[test]
fn idle_sessions_expire() {
    let mut pair = Pair::new(config(&ALL), client_config("admin", "password", None));
    pair.connect();
    pair.now += Duration::from_secs(29);
    pair.server.expire(pair.now);
    assert_eq!(pair.server.session_count(), 1);
    pair.call(codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[]);
    pair.now += Duration::from_secs(31);
    pair.server.expire(pair.now);
    assert_eq!(pair.server.session_count(), 0);
    let id = pair
        .client
        .request(pair.now, codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[])
        .unwrap();
    pair.pump();
    for _ in 0..3 {
        pair.advance(Duration::from_secs(1));
    }
    match pair.events.pop() {
        Some(Event::RequestFailed { id: got, error }) => {
            assert_eq!(got, id);
            assert_eq!(
                error.to_string(),
                "no answer from BMC at in-process BMC after 3 attempts"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_lost_response_is_resent_without_running_the_command_twice() {
    let mut pair = Pair::new(config(&ALL), client_config("admin", "password", None));
    pair.connect();
    pair.chassis.power_on = true;
    pair.hold = Some(Vec::new());
    let id = pair
        .client
        .request(
            pair.now,
            codes::NETFN_CHASSIS,
            codes::CMD_CHASSIS_CONTROL,
            &[2],
        )
        .unwrap();
    pair.pump();
    let first = pair.hold.take().unwrap().pop().unwrap();
    let _lost = pair.deliver(&first).expect("answered, then lost");
    pair.advance(Duration::from_secs(1)); // the retry, with a new sequence number
    assert_eq!(pair.chassis.controls, vec![ChassisControl::PowerCycle]);
    assert!(
        matches!(pair.events.last(), Some(Event::Response { id: got, response }) if *got == id && response.completion_code == 0)
    );
}

#[test]
fn a_lost_handshake_message_restarts_the_handshake() {
    let mut pair = Pair::new(
        config(&ALL),
        client_config("admin", "password", Some(CipherSuite::Suite17)),
    );
    pair.client.start(pair.now);
    pair.pump(); // up to RAKP 4 and Set Session Privilege
    assert!(pair.client.is_established());

    let mut pair = Pair::new(
        config(&ALL),
        client_config("admin", "password", Some(CipherSuite::Suite17)),
    );
    pair.client.start(pair.now);
    // Deliver Get Channel Auth Capabilities and Open Session, lose RAKP 1.
    for _ in 0..2 {
        let d = pair.client.poll_transmit().unwrap();
        let a = pair.deliver(&d).unwrap();
        pair.client.handle(pair.now, &a);
    }
    let _lost_rakp1 = pair.client.poll_transmit().unwrap();
    pair.advance(Duration::from_secs(1));
    assert!(pair.client.is_established(), "{:?}", pair.events);
    // The abandoned half-open session stays until it idles out.
    assert_eq!(pair.server.session_count(), 2);
    pair.now += Duration::from_secs(20);
    pair.call(codes::NETFN_APP, codes::CMD_GET_DEVICE_ID, &[]);
    pair.now += Duration::from_secs(15);
    pair.server.expire(pair.now);
    assert_eq!(pair.server.session_count(), 1);
}

#[test]
fn no_answer_at_all_says_so() {
    let mut cfg = client_config("admin", "password", None);
    cfg.attempts = 2;
    let mut pair = Pair::new(config(&ALL), cfg);
    pair.hold = Some(Vec::new());
    pair.client.start(pair.now);
    pair.pump();
    pair.advance(Duration::from_secs(1));
    pair.advance(Duration::from_secs(1));
    match pair.events.pop() {
        Some(Event::Failed(e)) => assert_eq!(
            e.to_string(),
            "no answer from BMC at in-process BMC after 2 attempts"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(pair.hold.unwrap().len(), 2, "sent twice");
}

#[test]
fn presence_ping_is_answered() {
    let mut server = Server::new(config(&ALL));
    let ping = [
        0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x05, 0x00, 0x00,
    ];
    let Incoming::Handled(Some(pong)) = server.handle(Instant::now(), &ping, &TestUsers::admin())
    else {
        panic!("no pong")
    };
    assert_eq!(
        &pong[..12],
        &[0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x40, 0x05, 0x00, 0x10]
    );
    assert_eq!(pong[20], 0x81, "IPMI supported");
}

/// A user table that counts log-ins and locks a user out after `limit` failures.
struct LockingUsers {
    inner: TestUsers,
    failed: std::cell::Cell<u32>,
    succeeded: std::cell::Cell<u32>,
    limit: u32,
}

impl ferric_ipmi::server::Users for LockingUsers {
    fn lookup(&self, username: &[u8]) -> Option<(Vec<u8>, Privilege)> {
        if self.failed.get() >= self.limit {
            return None;
        }
        self.inner.lookup(username)
    }

    fn login_failed(&self, _username: &[u8]) {
        self.failed.set(self.failed.get() + 1);
    }

    fn login_succeeded(&self, _username: &[u8]) {
        self.succeeded.set(self.succeeded.get() + 1);
    }
}

/// Runs a client's handshake against `server` until it has an event; `drop_after` datagrams
/// from the client are delivered, the rest lost.
fn log_in(
    server: &mut Server,
    users: &LockingUsers,
    password: &str,
    drop_after: usize,
) -> Option<Event> {
    let now = Instant::now();
    let mut client =
        ClientSession::new(client_config("admin", password, Some(CipherSuite::Suite3)));
    client.start(now);
    let mut sent = 0;
    while let Some(d) = client.poll_transmit() {
        sent += 1;
        if sent > drop_after {
            continue;
        }
        if let Incoming::Handled(Some(answer)) = server.handle(now, &d, users) {
            client.handle(now, &answer);
        }
    }
    client.poll_event()
}

#[test]
fn failed_log_ins_are_reported_for_lock_outs() {
    let users = LockingUsers {
        inner: TestUsers::admin(),
        failed: Default::default(),
        succeeded: Default::default(),
        limit: 3,
    };
    let mut server = Server::new(ServerConfig {
        max_sessions: 16,
        ..config(&ALL)
    });
    assert!(matches!(
        log_in(&mut server, &users, "password", 99),
        Some(Event::Established { .. })
    ));
    assert_eq!((users.failed.get(), users.succeeded.get()), (1 - 1, 1));
    // Our console tells the BMC about a RAKP 2 that does not verify.
    assert!(matches!(
        log_in(&mut server, &users, "wrong", 99),
        Some(Event::Failed(Error::WrongPassword { .. }))
    ));
    assert_eq!(users.failed.get(), 1);
    // ipmitool just stops after RAKP 2: counted when the next log-in starts, once.
    log_in(&mut server, &users, "wrong", 3);
    assert_eq!(users.failed.get(), 1);
    assert!(matches!(
        log_in(&mut server, &users, "password", 99),
        Some(Event::Established { .. })
    ));
    assert_eq!(users.failed.get(), 2);
    log_in(&mut server, &users, "wrong", 3);
    // The next log-in counts the third failure and is already locked out...
    assert!(matches!(
        log_in(&mut server, &users, "wrong", 3),
        Some(Event::Failed(Error::Refused { status: 0x0d, .. }))
    ));
    assert_eq!(users.failed.get(), 3);
    // ...and so is the right password, refused as an unknown name.
    match log_in(&mut server, &users, "password", 99) {
        Some(Event::Failed(Error::Refused { status: 0x0d, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(users.failed.get(), 3);
}

#[test]
fn without_a_cipher_suite_list_open_session_probes_in_turn() {
    let offered = [CipherSuite::Suite2];
    let mut pair = Pair::new(config(&offered), client_config("admin", "password", None));
    // Lose every Get Channel Cipher Suites request, as a BMC without the command would.
    pair.lose = |d| match wire::decode(d) {
        Ok(Datagram::V20(p)) => p.payload_type == PayloadType::Ipmi && p.session_id == 0,
        _ => false,
    };
    pair.client.start(pair.now);
    pair.pump();
    for _ in 0..3 {
        pair.advance(Duration::from_secs(1));
    }
    match pair.events.pop() {
        Some(Event::Established { cipher_suite, .. }) => {
            assert_eq!(cipher_suite, CipherSuite::Suite2)
        }
        other => panic!("{other:?}"),
    }
    // 17 and 3 were refused on the way and left nothing behind.
    assert_eq!(pair.server.session_count(), 1);
}
