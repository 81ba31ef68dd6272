//! The fuzz target's body, kept in the crate so the seed corpus also runs as a unit test.
//!
//! Each input goes to every decoder, to a fresh [`Server`], and to both ends of a session
//! established in memory with fixed random numbers: raw, and sealed with the session's real
//! keys so that it reaches the message and command layers behind the integrity check.

use std::time::{Duration, Instant};

use rand::RngCore;

use crate::client::{Bridge, ClientConfig, ClientSession, Event, Lookup};
use crate::commands::{
    BootOptions, ChannelAuthCapabilities, ChannelCipherSuites, ChassisControl, ChassisStatus,
    CloseSession, DeviceId, GetChannelAuthCapabilities, GetChannelCipherSuites,
    GetSystemBootOptions, SetSessionPrivilege, SetSystemBootOptions,
};
use crate::crypto::{decrypt_payload, CipherSuite};
use crate::server::{Incoming, Server, ServerConfig, Users};
use crate::wire::message::Message;
use crate::wire::rakp::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4};
use crate::wire::rmcp::decode_asf;
use crate::wire::session::PayloadType;
use crate::wire::{self, Datagram};
use crate::{Privilege, Response};

/// A deterministic generator (xorshift), so every run of an input is the same run.
struct Xorshift(u64);

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

struct OneUser;

impl Users for OneUser {
    fn lookup(&self, username: &[u8]) -> Option<(Vec<u8>, Privilege)> {
        (username == b"admin").then(|| (b"password".to_vec(), Privilege::Administrator))
    }
}

/// Runs one fuzz input through everything; panics only on a bug.
pub fn fuzz_entry(data: &[u8]) {
    decoders(data);
    let suite = match data.first().map(|b| b % 4) {
        Some(0) => CipherSuite::Suite1,
        Some(1) => CipherSuite::Suite2,
        Some(2) => CipherSuite::Suite17,
        _ => CipherSuite::Suite3,
    };
    let now = Instant::now();
    let mut fresh = Server::with_rng(config(), Box::new(Xorshift(7)));
    let _ = fresh.handle(now, data, &OneUser);
    assert!(fresh.session_count() <= 1);

    let bridge = (data.get(1).is_some_and(|b| b & 1 == 1)).then_some(Bridge {
        channel: 7,
        target_address: 0x72,
    });
    let Some((mut client, mut server)) = established(suite, bridge, now) else {
        panic!("the in-memory handshake failed for {suite}");
    };
    // A request of the caller's waits for an answer, bridged or not.
    let _ = client.request(now, 0x00, 0x01, &[]);
    while client.poll_transmit().is_some() {}
    // Raw, to both ends.
    feed_server(&mut server, now, data);
    client.handle(now, data);
    // Sealed with the real keys, as a request to the server and a response to the client.
    if let Some(sealed) = client.seal_for_server(data) {
        feed_server(&mut server, now, &sealed);
        feed_server(&mut server, now, &sealed);
    }
    if let Some(sealed) = server.seal_for_client(data) {
        client.handle(now, &sealed);
    }
    while client.poll_event().is_some() {}
    client.handle_timeout(now + Duration::from_secs(5));
    assert!(server.session_count() <= config().max_sessions);
}

fn config() -> ServerConfig {
    ServerConfig {
        cipher_suites: CipherSuite::PROBE_ORDER.to_vec(),
        max_sessions: 2,
        idle_timeout: Duration::from_secs(60),
        guid: [0x42; 16],
    }
}

fn feed_server(server: &mut Server, now: Instant, datagram: &[u8]) {
    if let Incoming::Request {
        session, request, ..
    } = server.handle(now, datagram, &OneUser)
    {
        let response = Response::ok(request.data.clone());
        let _ = server.respond(session, &request, response);
    }
}

/// A client and a server with a session up, joined in memory.
fn established(
    suite: CipherSuite,
    bridge: Option<Bridge>,
    now: Instant,
) -> Option<(ClientSession, Server)> {
    let config = ClientConfig {
        username: b"admin".to_vec(),
        password: "password".into(),
        kg: None,
        privilege: Privilege::Administrator,
        cipher_suite: Some(suite),
        lookup: Lookup::NameOnly,
        timeout: Duration::from_secs(1),
        attempts: 1,
        peer: "fuzz".into(),
        bridge,
    };
    let mut client = ClientSession::with_rng(config, Box::new(Xorshift(11)));
    let mut server = Server::with_rng(self::config(), Box::new(Xorshift(13)));
    client.start(now);
    while let Some(datagram) = client.poll_transmit() {
        if let Incoming::Handled(Some(answer)) = server.handle(now, &datagram, &OneUser) {
            client.handle(now, &answer);
        }
    }
    matches!(client.poll_event(), Some(Event::Established { .. })).then_some((client, server))
}

/// Every decoder in the crate, on the raw input and on its payload.
fn decoders(data: &[u8]) {
    let _ = decode_asf(data);
    let payload = match wire::decode(data) {
        Ok(Datagram::V15(p)) => p.message.to_vec(),
        Ok(Datagram::V20(p)) => {
            for len in [0, 12, 16] {
                let _ = p.split_trailer(len);
            }
            let _ = decrypt_payload(&[0x11; 16], p.payload);
            if p.payload_type == PayloadType::Ipmi {
                p.payload.to_vec()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    for bytes in [data, payload.as_slice()] {
        if let Ok(m) = Message::decode(bytes) {
            assert_eq!(
                Message::decode(&m.encode()).as_ref(),
                Ok(&m),
                "re-encoding changed it"
            );
            let _ = m.to_response();
            commands(&m.body);
        }
        let _ = OpenSessionRequest::decode(bytes);
        let _ = OpenSessionResponse::decode(bytes);
        let _ = Rakp1::decode(bytes);
        let _ = Rakp2::decode(bytes);
        let _ = Rakp3::decode(bytes);
        let _ = Rakp4::decode(bytes);
        commands(bytes);
    }
}

fn commands(data: &[u8]) {
    let _ = DeviceId::decode(data);
    let _ = GetChannelAuthCapabilities::decode(data);
    let _ = ChannelAuthCapabilities::decode(data);
    let _ = GetChannelCipherSuites::decode(data);
    let _ = ChannelCipherSuites::decode(data);
    let _ = crate::commands::parse_cipher_suite_records(data);
    let _ = SetSessionPrivilege::decode(data);
    let _ = CloseSession::decode(data);
    let _ = ChassisStatus::decode(data);
    let _ = ChassisControl::decode(data);
    let _ = GetSystemBootOptions::decode(data);
    if let Ok(rq) = SetSystemBootOptions::decode(data) {
        assert_eq!(SetSystemBootOptions::decode(&rq.encode()).as_ref(), Ok(&rq));
    }
    let _ = BootOptions::decode(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_fuzz_corpus_runs_clean() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/datagram");
        let mut count = 0;
        for entry in std::fs::read_dir(&corpus).expect("corpus directory") {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            fuzz_entry(&bytes);
            for cut in [
                0,
                1,
                4,
                14,
                16,
                bytes.len() / 2,
                bytes.len().saturating_sub(1),
            ] {
                fuzz_entry(&bytes[..cut.min(bytes.len())]);
            }
            count += 1;
        }
        assert!(count >= 20, "corpus has {count} files");
    }

    #[test]
    fn sealed_inputs_reach_the_command_layer() {
        let now = Instant::now();
        for suite in CipherSuite::PROBE_ORDER {
            let (mut client, mut server) = established(suite, None, now).unwrap();
            // Get Chassis Status, rqSeq 1.
            let message = [0x20, 0x00, 0xe0, 0x81, 0x04, 0x01, 0x7a];
            let sealed = client.seal_for_server(&message).unwrap();
            match server.handle(now, &sealed, &OneUser) {
                Incoming::Request { request, .. } => {
                    assert_eq!((request.netfn, request.cmd), (0, 1))
                }
                other => panic!("{suite}: {other:?}"),
            }
            assert!(server.seal_for_client(&message).is_some());
        }
    }
}
