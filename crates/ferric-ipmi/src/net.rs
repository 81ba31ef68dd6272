//! A tokio UDP client over [`ClientSession`]: one socket, one session, one request at a time.
//!
//! [`Client::connect`] runs the whole handshake; the typed calls are what Ironic's
//! `ipmitool` power and management interfaces do (`power on|off|cycle|reset|diag|soft`,
//! `power status`, `chassis bootdev`, `chassis bootparam get 5`, `mc info`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tracing::debug;

pub use crate::client::Bridge;
use crate::client::{ClientConfig, ClientSession, Event, Lookup};
use crate::codes::{NETFN_APP, NETFN_CHASSIS};
use crate::commands::{
    parse_cipher_suite_records, BootDevice, BootFlags, BootOptionParameter, BootOptions,
    ChannelCipherSuites, ChassisControl, ChassisStatus, DeviceId, GetChannelCipherSuites,
    GetChassisStatus, GetDeviceId, GetSystemBootOptions, SetInProgress, SetSystemBootOptions,
    CURRENT_CHANNEL,
};
use crate::{CipherSuite, Error, Password, Privilege, Response};

/// The standard RMCP port.
pub const DEFAULT_PORT: u16 = 623;

/// A BMC to talk to and how.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or IP address.
    pub address: String,
    pub port: u16,
    pub username: String,
    pub password: Password,
    pub privilege: Privilege,
    /// `None`: ask the BMC, and take 17, then 3, then 2, then 1.
    pub cipher_suite: Option<CipherSuite>,
    /// Per attempt.
    pub timeout: Duration,
    /// Attempts per request, at least one.
    pub retries: u32,
    /// Single bridging of every request (ipmitool's `-b -t`).
    pub bridge: Option<Bridge>,
}

impl Target {
    /// Port 623, Administrator, cipher suite probed, 2 s per attempt, 3 attempts.
    pub fn new(
        address: impl Into<String>,
        username: impl Into<String>,
        password: Password,
    ) -> Self {
        Self {
            address: address.into(),
            port: DEFAULT_PORT,
            username: username.into(),
            password,
            privilege: Privilege::Administrator,
            cipher_suite: None,
            timeout: Duration::from_secs(2),
            retries: 3,
            bridge: None,
        }
    }

    fn peer(&self) -> String {
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
}

/// One RMCP+ session with a BMC over UDP.
#[derive(Debug)]
pub struct Client {
    socket: UdpSocket,
    session: ClientSession,
    peer: String,
    cipher_suite: CipherSuite,
}

impl Client {
    /// Resolves the address, opens a socket and runs the full handshake.
    pub async fn connect(target: &Target) -> Result<Client, Error> {
        let peer = target.peer();
        let io = |source| Error::Io {
            peer: peer.clone(),
            source,
        };
        let addr = resolve(&target.address, target.port).await.map_err(io)?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(io)?;
        socket.connect(addr).await.map_err(io)?;
        let config = ClientConfig {
            username: target.username.as_bytes().to_vec(),
            password: target.password.clone(),
            kg: None,
            privilege: target.privilege,
            cipher_suite: target.cipher_suite,
            lookup: Lookup::NameOnly,
            timeout: target.timeout,
            attempts: target.retries.max(1),
            peer: peer.clone(),
            bridge: target.bridge,
        };
        let mut session = ClientSession::new(config);
        session.start(Instant::now());
        let mut client = Client {
            socket,
            session,
            peer,
            cipher_suite: target.cipher_suite.unwrap_or(CipherSuite::Suite3),
        };
        loop {
            match client.next_event().await? {
                Event::Established {
                    cipher_suite,
                    privilege,
                } => {
                    debug!(peer = %client.peer, %cipher_suite, ?privilege, "IPMI session established");
                    client.cipher_suite = cipher_suite;
                    return Ok(client);
                }
                Event::Failed(e) => return Err(e),
                _ => {}
            }
        }
    }

    /// The negotiated cipher suite (worth remembering for the next connection).
    pub fn cipher_suite(&self) -> CipherSuite {
        self.cipher_suite
    }

    /// The privilege the session runs at.
    pub fn privilege(&self) -> Option<Privilege> {
        self.session.privilege()
    }

    /// One raw request; a non-zero completion code is returned, not an error.
    pub async fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<Response, Error> {
        let id = self.session.request(Instant::now(), netfn, cmd, data)?;
        loop {
            match self.next_event().await? {
                Event::Response { id: got, response } if got == id => return Ok(response),
                Event::RequestFailed { id: got, error } if got == id => return Err(error),
                Event::Failed(e) => return Err(e),
                _ => {}
            }
        }
    }

    /// A request whose completion code must be 0; returns the response data.
    async fn call(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<Vec<u8>, Error> {
        self.request(netfn, cmd, data).await?.into_result()
    }

    pub async fn device_id(&mut self) -> Result<DeviceId, Error> {
        let data = self.call(GetDeviceId::NETFN, GetDeviceId::CMD, &[]).await?;
        Ok(DeviceId::decode(&data)?)
    }

    pub async fn chassis_status(&mut self) -> Result<ChassisStatus, Error> {
        let data = self
            .call(GetChassisStatus::NETFN, GetChassisStatus::CMD, &[])
            .await?;
        Ok(ChassisStatus::decode(&data)?)
    }

    pub async fn chassis_control(&mut self, c: ChassisControl) -> Result<(), Error> {
        self.call(ChassisControl::NETFN, ChassisControl::CMD, &c.encode())
            .await
            .map(drop)
    }

    async fn set_boot_option(&mut self, parameter: BootOptionParameter) -> Result<(), Error> {
        let data = SetSystemBootOptions::new(parameter).encode();
        self.call(NETFN_CHASSIS, SetSystemBootOptions::CMD, &data)
            .await
            .map(drop)
    }

    /// Like [`Client::set_boot_option`], but a BMC refusing the parameter is only logged
    /// (many do not implement set-in-progress or the boot info acknowledge).
    async fn set_optional_boot_option(
        &mut self,
        parameter: BootOptionParameter,
    ) -> Result<(), Error> {
        match self.set_boot_option(parameter).await {
            Err(Error::Completion { code, meaning }) => {
                debug!(peer = %self.peer, code, meaning, "BMC refused an optional boot option");
                Ok(())
            }
            other => other,
        }
    }

    /// Sets the boot device. `uefi: Some(true)` sends what Ironic sends in UEFI mode, the
    /// boot flags alone (`0x00 0x08 0x05 0xe0|0xa0 DEV 0 0 0`); otherwise what `ipmitool
    /// chassis bootdev DEV [options=persistent]` sends: set in progress, boot info
    /// acknowledge, the flags (legacy boot), commit write, set complete.
    pub async fn set_boot_device(
        &mut self,
        d: BootDevice,
        persistent: bool,
        uefi: Option<bool>,
    ) -> Result<(), Error> {
        let efi = uefi == Some(true);
        let flags = BootOptionParameter::BootFlags(BootFlags::boot(d, persistent, efi));
        if efi {
            return self.set_boot_option(flags).await;
        }
        self.set_optional_boot_option(BootOptionParameter::SetInProgress(
            SetInProgress::InProgress,
        ))
        .await?;
        self.set_optional_boot_option(BootOptionParameter::BootInfoAcknowledge {
            write_mask: 0x01,
            data: 0x01,
        })
        .await?;
        self.set_boot_option(flags).await?;
        self.set_optional_boot_option(BootOptionParameter::SetInProgress(
            SetInProgress::CommitWrite,
        ))
        .await?;
        self.set_optional_boot_option(BootOptionParameter::SetInProgress(SetInProgress::Complete))
            .await
    }

    /// Keeps the boot flags valid past the BMC's 60-second timeout (Ironic's
    /// `0x00 0x08 0x03 0x08`, sent before setting a boot device).
    pub async fn disable_boot_flag_timeout(&mut self) -> Result<(), Error> {
        self.set_boot_option(BootOptionParameter::ValidBitClearing(0x08))
            .await
    }

    /// The boot flags (boot option parameter 5).
    pub async fn boot_device(&mut self) -> Result<BootFlags, Error> {
        let data = self
            .call(
                GetSystemBootOptions::NETFN,
                GetSystemBootOptions::CMD,
                &GetSystemBootOptions::boot_flags().encode(),
            )
            .await?;
        match BootOptions::decode(&data)?.parameter {
            BootOptionParameter::BootFlags(flags) => Ok(flags),
            other => Err(Error::Protocol(format!(
                "BMC answered boot option parameter {} for parameter 5",
                other.selector()
            ))),
        }
    }

    /// The cipher suites the BMC lists for this channel (the ones this crate knows).
    pub async fn cipher_suites(&mut self) -> Result<Vec<CipherSuite>, Error> {
        let mut records = Vec::new();
        for list_index in 0..0x40u8 {
            let rq = GetChannelCipherSuites {
                channel: CURRENT_CHANNEL,
                payload_type: 0,
                list_index,
            };
            let data = self
                .call(NETFN_APP, GetChannelCipherSuites::CMD, &rq.encode())
                .await?;
            let chunk = ChannelCipherSuites::decode(&data)?;
            records.extend_from_slice(&chunk.records);
            if chunk.records.len() < GetChannelCipherSuites::CHUNK {
                break;
            }
        }
        Ok(parse_cipher_suite_records(&records)
            .into_iter()
            .filter_map(CipherSuite::from_id)
            .collect())
    }

    /// Closes the session (Close Session).
    pub async fn close(mut self) -> Result<(), Error> {
        self.session.close(Instant::now());
        loop {
            match self.next_event().await? {
                Event::Closed => return Ok(()),
                Event::Failed(e) => return Err(e),
                _ => {}
            }
        }
    }

    /// Drives the session until it has an event.
    async fn next_event(&mut self) -> Result<Event, Error> {
        let mut buf = vec![0u8; 2048];
        loop {
            while let Some(datagram) = self.session.poll_transmit() {
                self.send(&datagram).await?;
            }
            if let Some(event) = self.session.poll_event() {
                return Ok(event);
            }
            let Some(deadline) = self.session.poll_timeout() else {
                return Err(Error::Closed);
            };
            tokio::select! {
                received = self.socket.recv(&mut buf) => match received {
                    Ok(n) => self.session.handle(Instant::now(), buf.get(..n).unwrap_or_default()),
                    // ICMP port unreachable from an earlier send: the retry timer handles it.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                    Err(source) => return Err(Error::Io { peer: self.peer.clone(), source }),
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.session.handle_timeout(Instant::now());
                }
            }
        }
    }

    async fn send(&self, datagram: &[u8]) -> Result<(), Error> {
        match self.socket.send(datagram).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            Err(source) => Err(Error::Io {
                peer: self.peer.clone(),
                source,
            }),
        }
    }
}

impl Drop for Client {
    /// Best effort: tell the BMC the session is over, so it does not hold a slot until its
    /// idle timeout.
    fn drop(&mut self) {
        if self.session.is_established() {
            self.session.close(Instant::now());
            while let Some(datagram) = self.session.poll_transmit() {
                let _ = self.socket.try_send(&datagram);
            }
        }
    }
}

async fn resolve(address: &str, port: u16) -> std::io::Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host((address, port)).await?;
    addrs.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{address} resolves to no address"),
        )
    })
}
