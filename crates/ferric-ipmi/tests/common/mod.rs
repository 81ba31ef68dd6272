//! Shared by the integration tests: a user table, a scripted RNG, an in-memory chassis
//! answering the commands Ironic uses, and a small UDP BMC built on `Server`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferric_ipmi::codes;
use ferric_ipmi::commands::{
    BootFlags, BootOptionParameter, BootOptions, ChassisControl, ChassisStatus, DeviceId,
    GetSystemBootOptions, SetInProgress, SetSystemBootOptions,
};
use ferric_ipmi::server::{Incoming, Server, ServerConfig, Users};
use ferric_ipmi::wire::message::Message;
use ferric_ipmi::{CipherSuite, Privilege, Request, Response};

/// User name → (password, maximum privilege).
#[derive(Clone, Default)]
pub struct TestUsers(pub HashMap<Vec<u8>, (Vec<u8>, Privilege)>);

impl TestUsers {
    pub fn admin() -> Self {
        Self::default()
            .with("admin", "password", Privilege::Administrator)
            .with("operator", "oppass", Privilege::Operator)
            .with("viewer", "viewpass", Privilege::User)
    }

    pub fn with(mut self, name: &str, password: &str, privilege: Privilege) -> Self {
        self.0.insert(
            name.as_bytes().to_vec(),
            (password.as_bytes().to_vec(), privilege),
        );
        self
    }
}

impl Users for TestUsers {
    fn lookup(&self, username: &[u8]) -> Option<(Vec<u8>, Privilege)> {
        self.0.get(username).cloned()
    }
}

/// Hands out the bytes it was given, then zeros: for known-answer tests.
pub struct ScriptedRng(pub VecDeque<u8>);

impl ScriptedRng {
    pub fn new(chunks: &[&[u8]]) -> Self {
        Self(chunks.iter().flat_map(|c| c.iter().copied()).collect())
    }
}

impl rand::RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for d in dst {
            *d = self.0.pop_front().unwrap_or(0);
        }
    }
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The captured datagrams of `tests/data/NAME`: (from the client?, bytes).
pub fn capture(text: &str) -> Vec<(bool, Vec<u8>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (dir, bytes) = l.split_once(' ').unwrap();
            (dir == "C>S", hex(bytes.trim()))
        })
        .collect()
}

/// A machine's chassis as the BMC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chassis {
    pub power_on: bool,
    pub boot_flags: BootFlags,
    pub set_in_progress: SetInProgress,
    pub controls: Vec<ChassisControl>,
    pub requests: usize,
}

impl Default for Chassis {
    fn default() -> Self {
        Self {
            power_on: false,
            boot_flags: BootFlags::none(),
            set_in_progress: SetInProgress::Complete,
            controls: Vec::new(),
            requests: 0,
        }
    }
}

pub fn device_id() -> DeviceId {
    DeviceId {
        device_id: 0x20,
        device_revision: 1,
        provides_sdrs: false,
        device_available: true,
        firmware_major: 1,
        firmware_minor: 0x02,
        ipmi_version: 0x02,
        additional_support: 0x00,
        manufacturer_id: 0x0000_a2b3,
        product_id: 0x0102,
        aux_firmware: None,
    }
}

impl Chassis {
    /// Answers a request handed over by the session layer.
    pub fn execute(&mut self, privilege: Privilege, request: &Request) -> Response {
        self.requests += 1;
        let operator = privilege >= Privilege::Operator;
        match (request.netfn, request.cmd) {
            (codes::NETFN_APP, codes::CMD_GET_DEVICE_ID) => Response::ok(device_id().encode()),
            (codes::NETFN_CHASSIS, codes::CMD_GET_CHASSIS_STATUS) => {
                Response::ok(ChassisStatus::with_power(self.power_on).encode())
            }
            (codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL) if !operator => {
                Response::error(codes::CC_INSUFFICIENT_PRIVILEGE)
            }
            (codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL) => {
                match ChassisControl::decode(&request.data) {
                    Ok(c) => self.control(c),
                    Err(_) => Response::error(codes::CC_INVALID_DATA_FIELD),
                }
            }
            (codes::NETFN_CHASSIS, codes::CMD_SET_SYSTEM_BOOT_OPTIONS) if !operator => {
                Response::error(codes::CC_INSUFFICIENT_PRIVILEGE)
            }
            (codes::NETFN_CHASSIS, codes::CMD_SET_SYSTEM_BOOT_OPTIONS) => {
                match SetSystemBootOptions::decode(&request.data) {
                    Ok(rq) => self.set_boot_option(rq.parameter),
                    Err(_) => Response::error(codes::CC_INVALID_DATA_FIELD),
                }
            }
            (codes::NETFN_CHASSIS, codes::CMD_GET_SYSTEM_BOOT_OPTIONS) => {
                match GetSystemBootOptions::decode(&request.data) {
                    Ok(rq) => self.boot_option(rq.selector),
                    Err(_) => Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID),
                }
            }
            _ => Response::error(codes::CC_INVALID_COMMAND),
        }
    }

    fn control(&mut self, c: ChassisControl) -> Response {
        self.controls.push(c);
        match c {
            ChassisControl::PowerUp => self.power_on = true,
            ChassisControl::PowerDown | ChassisControl::SoftShutdown => self.power_on = false,
            ChassisControl::PowerCycle | ChassisControl::HardReset => {
                if !self.power_on {
                    // A cycle of a machine that is off is refused, like many BMCs do.
                    return Response::error(0xd5);
                }
            }
            ChassisControl::PulseDiagnosticInterrupt => {}
        }
        Response::ok(Vec::new())
    }

    fn set_boot_option(&mut self, parameter: BootOptionParameter) -> Response {
        match parameter {
            BootOptionParameter::SetInProgress(s) => self.set_in_progress = s,
            BootOptionParameter::BootFlags(f) => self.boot_flags = f,
            BootOptionParameter::ValidBitClearing(_)
            | BootOptionParameter::BootInfoAcknowledge { .. } => {}
            BootOptionParameter::Other { .. } => {
                return Response::error(codes::CC_PARAMETER_NOT_SUPPORTED)
            }
        }
        Response::ok(Vec::new())
    }

    fn boot_option(&self, selector: u8) -> Response {
        let parameter = match selector {
            0 => BootOptionParameter::SetInProgress(self.set_in_progress),
            5 => BootOptionParameter::BootFlags(self.boot_flags),
            _ => return Response::error(codes::CC_PARAMETER_NOT_SUPPORTED),
        };
        Response::ok(BootOptions::new(parameter).encode())
    }
}

/// The controller bridged to: IPMB address 72h on channel 7.
pub const SATELLITE: (u8, u8) = (7, 0x72);

/// Answers Send Message (bridging) from `satellite`: the (request, response) pairs to give
/// `Server::respond`, in order. `embedded`: the answer inside Send Message's response;
/// else Send Message's own response, then the bridged answer as a second one.
pub fn bridge(
    satellite: &mut Chassis,
    privilege: Privilege,
    request: &Request,
    embedded: bool,
) -> Vec<(Request, Response)> {
    let inner = request
        .data
        .split_first()
        .filter(|(channel, _)| *channel & 0x0f == SATELLITE.0)
        .and_then(|(_, m)| Message::decode(m).ok())
        .filter(|m| m.dst_addr == SATELLITE.1)
        .and_then(|m| m.to_request());
    let Some(inner) = inner else {
        return vec![(request.clone(), Response::error(0xd3))];
    };
    let answer = satellite.execute(privilege, &inner);
    if embedded {
        let message = Message::response_to(&inner, &answer).encode();
        vec![(request.clone(), Response::ok(message))]
    } else {
        vec![(request.clone(), Response::ok(Vec::new())), (inner, answer)]
    }
}

/// A BMC on a UDP socket: `Server` for sessions, `Chassis` for commands.
pub struct UdpBmc {
    pub addr: SocketAddr,
    pub chassis: Arc<Mutex<Chassis>>,
    /// The controller behind the BMC, reached by bridging.
    pub satellite: Arc<Mutex<Chassis>>,
    pub sessions: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl UdpBmc {
    pub async fn start(port: u16, config: ServerConfig, users: TestUsers) -> Self {
        Self::start_bridging(port, config, users, true).await
    }

    /// `embedded`: how bridged answers come back (see [`bridge`]).
    pub async fn start_bridging(
        port: u16,
        config: ServerConfig,
        users: TestUsers,
        embedded: bool,
    ) -> Self {
        let socket = tokio::net::UdpSocket::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("binding 127.0.0.1:{port}: {e}"));
        let addr = socket.local_addr().unwrap();
        let chassis = Arc::new(Mutex::new(Chassis::default()));
        let satellite = Arc::new(Mutex::new(Chassis::default()));
        let sessions = Arc::new(Mutex::new(0));
        let (c, sat, s) = (chassis.clone(), satellite.clone(), sessions.clone());
        let task = tokio::spawn(async move {
            let mut server = Server::new(config);
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let now = std::time::Instant::now();
                server.expire(now);
                let answers = match server.handle(now, &buf[..n], &users) {
                    Incoming::Handled(answer) => answer.into_iter().collect(),
                    Incoming::Request {
                        session,
                        privilege,
                        request,
                        ..
                    } => {
                        let replies = if (request.netfn, request.cmd) == (6, 0x34) {
                            bridge(&mut sat.lock().unwrap(), privilege, &request, embedded)
                        } else {
                            let response = c.lock().unwrap().execute(privilege, &request);
                            vec![(request, response)]
                        };
                        replies
                            .into_iter()
                            .filter_map(|(rq, rs)| server.respond(session, &rq, rs))
                            .collect::<Vec<_>>()
                    }
                };
                *s.lock().unwrap() = server.session_count();
                for answer in answers {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        Self {
            addr,
            chassis,
            satellite,
            sessions,
            task,
        }
    }

    pub fn chassis(&self) -> Chassis {
        self.chassis.lock().unwrap().clone()
    }

    pub fn satellite(&self) -> Chassis {
        self.satellite.lock().unwrap().clone()
    }

    pub fn session_count(&self) -> usize {
        *self.sessions.lock().unwrap()
    }
}

impl Drop for UdpBmc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn config(suites: &[CipherSuite]) -> ServerConfig {
    ServerConfig {
        cipher_suites: suites.to_vec(),
        max_sessions: 4,
        idle_timeout: Duration::from_secs(30),
        guid: *b"ferric-ipmi-test",
    }
}
