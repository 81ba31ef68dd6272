//! IPMI over LAN (RMCP+) for the lab's machines: one UDP socket per
//! `ipmi_listen`, each with a `ferric_ipmi` session server. A machine's own
//! port serves that machine; the shared port tells machines apart by the
//! session's user name.
//!
//! The session layer (handshake, integrity, encryption, cipher suites) is
//! `ferric_ipmi::server::Server`'s; this module answers what it hands over:
//! Get Device ID, Get System GUID, Get Chassis Status, Chassis Control and
//! Set/Get System Boot Options. Changing anything needs Operator privilege
//! (completion code 0xD4 otherwise).
//!
//! Faults: requests (session-less and in-session IPMI messages) are dropped
//! at the `packet_loss` rate and each answer is sent `delay_ms` late, both
//! of the machine the datagram belongs to (on the shared port, datagrams
//! before the user name is known take the largest of its machines'). The
//! RMCP+ handshake itself (Open Session, RAKP 1 and 3) is not dropped:
//! ipmitool does not retry those messages, it restarts the handshake at
//! most 4 times whatever `-R` says, so 30 % loss there would fail one
//! command in five. `max_sessions` caps the sessions of a machine's own
//! port (the shared port takes its machines' smallest cap): an Open Session
//! Request over it is refused with "insufficient resources".
//!
//! Failed logins count toward the machine's lockout. A client holding a
//! wrong password finds out from RAKP 2 and (ipmitool, pyghmi) gives up
//! without a RAKP 3, so a handshake that gets no RAKP 3 within 3 s of its
//! RAKP 2 is a failed login, as is a RAKP 3 carrying an error or a wrong
//! key. While a lockout lasts the user is unknown to the BMC, whatever the
//! password.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferric_ipmi::codes;
use ferric_ipmi::commands::{
    BootDevice as IpmiBootDevice, BootFlags, BootOptionParameter, BootOptions, ChassisControl,
    ChassisStatus, DeviceId, GetSystemBootOptions, SetInProgress, SetSystemBootOptions,
};
use ferric_ipmi::server::{Incoming, Server, ServerConfig, SessionHandle, Users};
use ferric_ipmi::wire::rakp::{
    OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use ferric_ipmi::wire::session::{encode_v20, PayloadType, V20Header};
use ferric_ipmi::wire::{self, Datagram};
use ferric_ipmi::{CipherSuite, Privilege, Request, Response};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

use crate::faults::Faults;
use crate::machine::{BootDevice, BootMode, Power};
use crate::sim::{BootChange, Machine, MachineError, PowerAction};

/// "Command not supported in present state".
const CC_NOT_IN_PRESENT_STATE: u8 = 0xd5;
/// The session server's own limit; lab caps are applied before it.
const SERVER_MAX_SESSIONS: usize = 64;
/// How long a silent session stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A handshake with no RAKP 3 this long after its RAKP 2 is a failed login.
const ABANDONED_AFTER: Duration = Duration::from_secs(3);

/// One IPMI socket and the machines it serves.
pub struct Port {
    pub addr: SocketAddr,
    pub machines: Vec<Arc<Machine>>,
}

/// The ports of a lab: each machine's own, then the shared one (if any
/// machine uses it).
pub fn ports(shared: Option<SocketAddr>, machines: &[Arc<Machine>]) -> Vec<Port> {
    let mut ports: Vec<Port> = machines
        .iter()
        .filter_map(|m| {
            m.spec.ipmi_listen.map(|addr| Port {
                addr,
                machines: vec![m.clone()],
            })
        })
        .collect();
    if let Some(addr) = shared {
        let on_shared: Vec<Arc<Machine>> = machines
            .iter()
            .filter(|m| m.spec.ipmi_listen.is_none())
            .cloned()
            .collect();
        if !on_shared.is_empty() {
            ports.push(Port {
                addr,
                machines: on_shared,
            });
        }
    }
    ports
}

/// Open IPMI sessions per machine, for the lab's state view (known for
/// machines on a port of their own).
#[derive(Debug, Default)]
pub struct IpmiSessions {
    counts: Mutex<HashMap<usize, usize>>,
}

impl IpmiSessions {
    /// Sessions open on a machine's own port.
    pub fn of(&self, machine: usize) -> Option<usize> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&machine)
            .copied()
    }

    fn set(&self, machine: usize, count: usize) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(machine, count);
    }
}

/// Serves a bound port until `stopping` turns true.
pub async fn serve(
    socket: UdpSocket,
    port: Port,
    counts: Arc<IpmiSessions>,
    mut stopping: watch::Receiver<bool>,
) {
    let guid = match port.machines.as_slice() {
        [only] => *only.uuid.as_bytes(),
        _ => *crate::machine::stable_uuid(&format!("ipmi {}", port.addr)).as_bytes(),
    };
    let (answers, mut answered) = mpsc::channel(64);
    let mut listener = Listener {
        socket: Arc::new(socket),
        server: Server::new(ServerConfig {
            cipher_suites: CipherSuite::PROBE_ORDER.to_vec(),
            max_sessions: SERVER_MAX_SESSIONS,
            idle_timeout: IDLE_TIMEOUT,
            guid,
        }),
        machines: port.machines,
        handshakes: HashMap::new(),
        awaiting_rakp3: HashMap::new(),
        answers,
        counts,
    };
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            received = listener.socket.recv_from(&mut buf) => match received {
                Ok((len, peer)) => {
                    let datagram = buf.get(..len).unwrap_or_default();
                    listener.on_datagram(Instant::now(), peer, datagram);
                }
                Err(e) => tracing::debug!(error = %e, "IPMI receive failed"),
            },
            Some(answer) = answered.recv() => listener.on_answer(answer),
            _ = tick.tick() => listener.housekeeping(Instant::now()),
            () = crate::sim::stopped(&mut stopping) => break,
        }
    }
}

/// A machine's answer to a request, back to the socket's loop.
struct Answer {
    session: SessionHandle,
    request: Request,
    response: Response,
    peer: SocketAddr,
    delay: Duration,
}

/// What the lab needs to know of a datagram before the session server
/// sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sniffed {
    OpenSession {
        tag: u8,
        console_session_id: u32,
    },
    Rakp1 {
        managed_session_id: u32,
        username: Vec<u8>,
    },
    Rakp3 {
        managed_session_id: u32,
        status: u8,
    },
    InSession {
        session_id: u32,
    },
    Other,
}

fn sniff(datagram: &[u8]) -> Sniffed {
    let Ok(Datagram::V20(packet)) = wire::decode(datagram) else {
        return Sniffed::Other;
    };
    match packet.payload_type {
        PayloadType::OpenSessionRequest => {
            OpenSessionRequest::decode(packet.payload).map_or(Sniffed::Other, |m| {
                Sniffed::OpenSession {
                    tag: m.tag,
                    console_session_id: m.console_session_id,
                }
            })
        }
        PayloadType::Rakp1 => {
            Rakp1::decode(packet.payload).map_or(Sniffed::Other, |m| Sniffed::Rakp1 {
                managed_session_id: m.managed_session_id,
                username: m.username,
            })
        }
        PayloadType::Rakp3 => {
            Rakp3::decode(packet.payload).map_or(Sniffed::Other, |m| Sniffed::Rakp3 {
                managed_session_id: m.managed_session_id,
                status: m.status,
            })
        }
        _ if packet.session_id != 0 => Sniffed::InSession {
            session_id: packet.session_id,
        },
        _ => Sniffed::Other,
    }
}

/// The status of a RAKP 2 or 4 the server answered with, if it is one.
fn handshake_status(answer: &[u8], expected: PayloadType) -> Option<u8> {
    match wire::decode(answer) {
        Ok(Datagram::V20(p)) if p.payload_type == expected => match expected {
            PayloadType::Rakp2 => Rakp2::decode(p.payload).ok().map(|m| m.status),
            PayloadType::Rakp4 => Rakp4::decode(p.payload).ok().map(|m| m.status),
            _ => None,
        },
        _ => None,
    }
}

/// The user table of a port: each machine's account, Administrator, unless
/// it is locked out.
struct PortUsers<'a> {
    machines: &'a [Arc<Machine>],
    now: Instant,
}

impl Users for PortUsers<'_> {
    fn lookup(&self, username: &[u8]) -> Option<(Vec<u8>, Privilege)> {
        let machine = self
            .machines
            .iter()
            .find(|m| m.spec.username.as_bytes() == username)?;
        if machine.is_locked_out(self.now) {
            tracing::info!(machine = machine.name(), "IPMI login refused: locked out");
            return None;
        }
        Some((
            machine.spec.password.expose().as_bytes().to_vec(),
            Privilege::Administrator,
        ))
    }
}

struct Listener {
    socket: Arc<UdpSocket>,
    server: Server,
    machines: Vec<Arc<Machine>>,
    /// Managed session id → (machine position, last seen), from RAKP 1.
    handshakes: HashMap<u32, (usize, Instant)>,
    /// Handshakes answered with a good RAKP 2: managed session id →
    /// (machine position, when).
    awaiting_rakp3: HashMap<u32, (usize, Instant)>,
    answers: mpsc::Sender<Answer>,
    counts: Arc<IpmiSessions>,
}

impl Listener {
    fn on_datagram(&mut self, now: Instant, peer: SocketAddr, datagram: &[u8]) {
        let sniffed = sniff(datagram);
        let machine = self.machine_of(&sniffed, now);
        let faults = self.faults_of(machine);
        let handshake = matches!(
            sniffed,
            Sniffed::OpenSession { .. } | Sniffed::Rakp1 { .. } | Sniffed::Rakp3 { .. }
        );
        if !handshake && faults.lose_this_one() {
            tracing::debug!(%peer, "fault: IPMI datagram dropped");
            return;
        }
        if let Sniffed::OpenSession {
            tag,
            console_session_id,
        } = sniffed
        {
            if self.at_session_cap(now) {
                tracing::info!(%peer, "IPMI session refused: limit reached");
                let refusal = session_refusal(tag, console_session_id);
                self.send(refusal, peer, faults.delay());
                return;
            }
        }
        let users = PortUsers {
            machines: &self.machines,
            now,
        };
        let incoming = self.server.handle(now, datagram, &users);
        match incoming {
            Incoming::Handled(answer) => {
                self.note_login(&sniffed, machine, answer.as_deref(), now);
                if let Some(answer) = answer {
                    self.send(answer, peer, faults.delay());
                }
            }
            Incoming::Request {
                session,
                username,
                privilege,
                request,
            } => self.dispatch(session, &username, privilege, request, peer, faults.delay()),
        }
    }

    /// The position of the machine a datagram belongs to, when it is known.
    fn machine_of(&mut self, sniffed: &Sniffed, now: Instant) -> Option<usize> {
        if let [_] = self.machines.as_slice() {
            return Some(0);
        }
        match sniffed {
            Sniffed::Rakp1 {
                managed_session_id,
                username,
            } => {
                let position = self
                    .machines
                    .iter()
                    .position(|m| m.spec.username.as_bytes() == username.as_slice())?;
                self.handshakes.insert(*managed_session_id, (position, now));
                Some(position)
            }
            Sniffed::Rakp3 {
                managed_session_id: id,
                ..
            }
            | Sniffed::InSession { session_id: id } => {
                let entry = self.handshakes.get_mut(id)?;
                entry.1 = now;
                Some(entry.0)
            }
            Sniffed::OpenSession { .. } | Sniffed::Other => None,
        }
    }

    /// A machine's faults; for an unknown machine, the worst of the port's.
    fn faults_of(&self, machine: Option<usize>) -> Faults {
        if let Some(m) = machine.and_then(|i| self.machines.get(i)) {
            return m.faults();
        }
        self.machines
            .iter()
            .map(|m| m.faults())
            .fold(Faults::default(), |worst, f| Faults {
                packet_loss: worst.packet_loss.max(f.packet_loss),
                delay_ms: worst.delay_ms.max(f.delay_ms),
                ..worst
            })
    }

    fn at_session_cap(&mut self, now: Instant) -> bool {
        let cap = self
            .machines
            .iter()
            .filter_map(|m| m.faults().max_sessions)
            .min();
        self.server.expire(now);
        cap.is_some_and(|cap| self.server.session_count() >= cap)
    }

    /// Follows logins: a good RAKP 2 starts waiting for RAKP 3; a RAKP 3
    /// (and the server's RAKP 4) says how the login went.
    fn note_login(
        &mut self,
        sniffed: &Sniffed,
        machine: Option<usize>,
        answer: Option<&[u8]>,
        now: Instant,
    ) {
        let Some(position) = machine else {
            return;
        };
        match sniffed {
            Sniffed::Rakp1 {
                managed_session_id, ..
            } => {
                let status = answer.and_then(|a| handshake_status(a, PayloadType::Rakp2));
                if status == Some(codes::RMCP_OK) {
                    self.awaiting_rakp3
                        .insert(*managed_session_id, (position, now));
                }
            }
            Sniffed::Rakp3 {
                managed_session_id,
                status,
            } => {
                if self.awaiting_rakp3.remove(managed_session_id).is_none() {
                    return; // a resent RAKP 3, or one for no handshake of ours
                }
                let answered = answer.and_then(|a| handshake_status(a, PayloadType::Rakp4));
                let Some(m) = self.machines.get(position) else {
                    return;
                };
                if *status == codes::RMCP_OK && answered == Some(codes::RMCP_OK) {
                    m.record_good_login();
                } else {
                    tracing::info!(machine = m.name(), "IPMI login failed in RAKP 3");
                    m.record_failed_login(now);
                }
            }
            _ => {}
        }
    }

    /// Handshakes left after RAKP 2 are failed logins.
    fn count_abandoned(&mut self, now: Instant) {
        let machines = &self.machines;
        self.awaiting_rakp3.retain(|_, (position, since)| {
            if now.duration_since(*since) < ABANDONED_AFTER {
                return true;
            }
            if let Some(m) = machines.get(*position) {
                tracing::info!(
                    machine = m.name(),
                    "IPMI login abandoned after RAKP 2: a wrong password"
                );
                m.record_failed_login(now);
            }
            false
        });
    }

    fn dispatch(
        &self,
        session: SessionHandle,
        username: &[u8],
        privilege: Privilege,
        request: Request,
        peer: SocketAddr,
        delay: Duration,
    ) {
        let Some(machine) = self
            .machines
            .iter()
            .find(|m| m.spec.username.as_bytes() == username)
            .cloned()
        else {
            return;
        };
        let answers = self.answers.clone();
        tokio::spawn(async move {
            let response = answer(&machine, privilege, &request).await;
            let _ = answers
                .send(Answer {
                    session,
                    request,
                    response,
                    peer,
                    delay,
                })
                .await;
        });
    }

    fn on_answer(&mut self, answer: Answer) {
        if let Some(bytes) = self
            .server
            .respond(answer.session, &answer.request, answer.response)
        {
            self.send(bytes, answer.peer, answer.delay);
        }
    }

    fn send(&self, bytes: Vec<u8>, peer: SocketAddr, delay: Duration) {
        if delay.is_zero() {
            if let Err(e) = self.socket.try_send_to(&bytes, peer) {
                tracing::debug!(%peer, error = %e, "IPMI send failed");
            }
            return;
        }
        let socket = self.socket.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Err(e) = socket.send_to(&bytes, peer).await {
                tracing::debug!(%peer, error = %e, "IPMI send failed");
            }
        });
    }

    fn housekeeping(&mut self, now: Instant) {
        self.server.expire(now);
        self.count_abandoned(now);
        self.handshakes
            .retain(|_, (_, seen)| now.duration_since(*seen) <= IDLE_TIMEOUT * 2);
        if let [only] = self.machines.as_slice() {
            self.counts.set(only.index, self.server.session_count());
        }
    }
}

/// An Open Session Response refusing for lack of resources.
fn session_refusal(tag: u8, console_session_id: u32) -> Vec<u8> {
    let payload =
        OpenSessionResponse::refusal(tag, codes::RMCP_INSUFFICIENT_RESOURCES, console_session_id)
            .encode();
    let header = V20Header {
        payload_type: PayloadType::OpenSessionResponse,
        encrypted: false,
        authenticated: false,
        session_id: 0,
        seq: 0,
    };
    encode_v20(header, &payload, |_| Vec::new())
}

/// A machine's answer to one request.
async fn answer(machine: &Machine, privilege: Privilege, request: &Request) -> Response {
    let operator = privilege >= Privilege::Operator;
    match (request.netfn, request.cmd) {
        (codes::NETFN_APP, codes::CMD_GET_DEVICE_ID) => Response::ok(device_id().encode()),
        (codes::NETFN_APP, CMD_GET_SYSTEM_GUID) => Response::ok(machine.uuid.as_bytes().to_vec()),
        (codes::NETFN_CHASSIS, codes::CMD_GET_CHASSIS_STATUS) => {
            let on = machine.view().state.power == Power::On;
            Response::ok(ChassisStatus::with_power(on).encode())
        }
        (codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL) if !operator => {
            Response::error(codes::CC_INSUFFICIENT_PRIVILEGE)
        }
        (codes::NETFN_CHASSIS, codes::CMD_CHASSIS_CONTROL) => {
            chassis_control(machine, &request.data).await
        }
        (codes::NETFN_CHASSIS, codes::CMD_SET_SYSTEM_BOOT_OPTIONS) if !operator => {
            Response::error(codes::CC_INSUFFICIENT_PRIVILEGE)
        }
        (codes::NETFN_CHASSIS, codes::CMD_SET_SYSTEM_BOOT_OPTIONS) => {
            set_boot_options(machine, &request.data).await
        }
        (codes::NETFN_CHASSIS, codes::CMD_GET_SYSTEM_BOOT_OPTIONS) => {
            get_boot_options(machine, &request.data)
        }
        _ => Response::error(codes::CC_INVALID_COMMAND),
    }
}

/// Get System GUID (App, 37h).
const CMD_GET_SYSTEM_GUID: u8 = 0x37;

fn device_id() -> DeviceId {
    DeviceId {
        device_id: 0x20,
        device_revision: 1,
        provides_sdrs: false,
        device_available: true,
        firmware_major: 1,
        firmware_minor: 0x00,
        ipmi_version: 0x02,
        // Chassis device, bridge, IPMB event receiver (table 20-2).
        additional_support: 0x80,
        manufacturer_id: 0,
        product_id: 0x4c46,
        aux_firmware: None,
    }
}

async fn chassis_control(machine: &Machine, data: &[u8]) -> Response {
    let Ok(control) = ChassisControl::decode(data) else {
        return Response::error(codes::CC_INVALID_DATA_FIELD);
    };
    let action = match control {
        ChassisControl::PowerDown => PowerAction::ForceOff,
        ChassisControl::PowerUp => PowerAction::On,
        ChassisControl::PowerCycle => PowerAction::Cycle,
        ChassisControl::HardReset => PowerAction::ForceRestart,
        ChassisControl::PulseDiagnosticInterrupt => PowerAction::Nmi,
        ChassisControl::SoftShutdown => PowerAction::SoftOff,
    };
    match machine.power(action).await {
        Ok(()) => Response::ok(Vec::new()),
        Err(MachineError::NotPoweredOn) => Response::error(CC_NOT_IN_PRESENT_STATE),
        Err(MachineError::Stopped) => Response::error(codes::CC_NODE_BUSY),
    }
}

async fn set_boot_options(machine: &Machine, data: &[u8]) -> Response {
    let Ok(set) = SetSystemBootOptions::decode(data) else {
        return Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID);
    };
    let flags = match set.parameter {
        BootOptionParameter::BootFlags(flags) => flags,
        // Set-in-progress, valid-bit clearing and acknowledgements change
        // nothing a simulated machine keeps.
        BootOptionParameter::SetInProgress(_)
        | BootOptionParameter::ValidBitClearing(_)
        | BootOptionParameter::BootInfoAcknowledge { .. } => return Response::ok(Vec::new()),
        BootOptionParameter::Other { .. } => {
            return Response::error(codes::CC_PARAMETER_NOT_SUPPORTED)
        }
    };
    let Some(change) = boot_change(&flags) else {
        return Response::error(codes::CC_INVALID_DATA_FIELD);
    };
    match machine.set_boot(change).await {
        Ok(()) => Response::ok(Vec::new()),
        Err(_) => Response::error(codes::CC_NODE_BUSY),
    }
}

/// The boot change boot flags ask for; `None` for a device the machine
/// does not have.
fn boot_change(flags: &BootFlags) -> Option<BootChange> {
    let mode = Some(if flags.efi {
        BootMode::Uefi
    } else {
        BootMode::Legacy
    });
    if !flags.valid {
        return Some(BootChange {
            device: Some(BootDevice::None),
            persistent: Some(false),
            mode: None,
        });
    }
    let device = match flags.device {
        IpmiBootDevice::NoOverride => BootDevice::None,
        IpmiBootDevice::Pxe => BootDevice::Pxe,
        IpmiBootDevice::Disk | IpmiBootDevice::DiskSafeMode => BootDevice::Disk,
        IpmiBootDevice::Cdrom | IpmiBootDevice::RemoteCdrom => BootDevice::Cdrom,
        IpmiBootDevice::BiosSetup => BootDevice::Bios,
        _ => return None,
    };
    Some(BootChange {
        device: Some(device),
        persistent: Some(flags.persistent),
        mode,
    })
}

fn get_boot_options(machine: &Machine, data: &[u8]) -> Response {
    let Ok(get) = GetSystemBootOptions::decode(data) else {
        return Response::error(codes::CC_REQUEST_DATA_LENGTH_INVALID);
    };
    let parameter = match get.selector {
        0 => BootOptionParameter::SetInProgress(SetInProgress::Complete),
        5 => BootOptionParameter::BootFlags(boot_flags(machine)),
        _ => return Response::error(codes::CC_PARAMETER_NOT_SUPPORTED),
    };
    Response::ok(BootOptions::new(parameter).encode())
}

fn boot_flags(machine: &Machine) -> BootFlags {
    let state = machine.view().state;
    let efi = state.boot_mode == BootMode::Uefi;
    let device = match state.boot_override.device {
        BootDevice::None => {
            return BootFlags {
                efi,
                ..BootFlags::none()
            }
        }
        BootDevice::Pxe => IpmiBootDevice::Pxe,
        BootDevice::Disk => IpmiBootDevice::Disk,
        BootDevice::Cdrom => IpmiBootDevice::Cdrom,
        BootDevice::Bios => IpmiBootDevice::BiosSetup,
    };
    BootFlags::boot(device, state.boot_override.persistent, efi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_flags_become_changes() {
        let pxe = boot_change(&BootFlags::boot(IpmiBootDevice::Pxe, false, false)).unwrap();
        assert_eq!(
            pxe,
            BootChange {
                device: Some(BootDevice::Pxe),
                persistent: Some(false),
                mode: Some(BootMode::Legacy)
            }
        );
        let disk = boot_change(&BootFlags::boot(IpmiBootDevice::Disk, true, true)).unwrap();
        assert_eq!(disk.device, Some(BootDevice::Disk));
        assert_eq!(disk.persistent, Some(true));
        assert_eq!(disk.mode, Some(BootMode::Uefi));
        let cleared = boot_change(&BootFlags::none()).unwrap();
        assert_eq!(cleared.device, Some(BootDevice::None));
        assert!(boot_change(&BootFlags::boot(IpmiBootDevice::Floppy, false, false)).is_none());
    }

    #[test]
    fn an_open_session_refusal_decodes() {
        let refusal = session_refusal(7, 0xa0a1_a2a3);
        let Ok(Datagram::V20(packet)) = wire::decode(&refusal) else {
            panic!("not a v2.0 datagram");
        };
        assert_eq!(packet.payload_type, PayloadType::OpenSessionResponse);
        let response = OpenSessionResponse::decode(packet.payload).unwrap();
        assert_eq!(response.tag, 7);
        assert_eq!(response.status, codes::RMCP_INSUFFICIENT_RESOURCES);
        assert_eq!(response.console_session_id, 0xa0a1_a2a3);
    }

    #[test]
    fn garbage_sniffs_as_other() {
        assert_eq!(sniff(&[]), Sniffed::Other);
        assert_eq!(sniff(&[6, 0, 0xff, 7, 6, 0x10]), Sniffed::Other);
    }
}
