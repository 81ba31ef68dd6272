//! The tokio DHCP server around [`Responder`]: sockets on the DHCP port
//! (and, in proxy mode, the PXE port), host and option directories
//! re-read when they change, the lease file kept current.
//!
//! Ports come from the responder's [`DhcpConfig`](super::DhcpConfig)
//! (`server_port`, `pxe_port`), so replies and sockets agree. The DHCP
//! socket binds `0.0.0.0`, the PXE socket (proxy mode) `server_ip`, both
//! with `SO_REUSEADDR` and `SO_BROADCAST`, and `SO_BINDTODEVICE` when an
//! interface is given. Beside another DHCP server on the same host
//! (proxy mode), that server must also set `SO_REUSEADDR` (dnsmasq does
//! with `--bind-interfaces`); unicast datagrams to port 67 may then reach
//! either socket, which is harmless for broadcast-only PXE clients but not
//! for the other server's unicast renewals: run proxy mode on another host
//! or namespace where that matters.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::hosts::HostTable;
use super::leases::Leases;
use super::responder::{Arrival, Mode, Responder};
use super::wire::MAX_DATAGRAM;
use crate::trace::TraceSink;

/// Where the server listens and what it reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Bind the sockets to this interface (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// dnsmasq `--dhcp-hostsdir`: host lines.
    pub hosts_dir: Option<PathBuf>,
    /// dnsmasq `--dhcp-optsdir`: option lines.
    pub opts_dir: Option<PathBuf>,
    /// dnsmasq-format lease file: loaded at start, rewritten on change.
    pub lease_file: Option<PathBuf>,
    /// Re-read the directories at least this often (also on mtime change).
    pub reload_interval: Duration,
}

impl Default for ServerSettings {
    fn default() -> ServerSettings {
        ServerSettings {
            interface: None,
            hosts_dir: None,
            opts_dir: None,
            lease_file: None,
            reload_interval: Duration::from_secs(2),
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot bind UDP port {port}{}: {source}", interface.as_deref().map(|i| format!(" on {i}")).unwrap_or_default())]
    Bind {
        port: u16,
        interface: Option<String>,
        source: io::Error,
    },
    #[error("cannot read lease file {path}: {source}")]
    LeaseFile { path: PathBuf, source: io::Error },
    #[error("socket error: {0}")]
    Socket(#[from] io::Error),
}

/// The current lease table, updated after every change.
pub type LeaseView = watch::Receiver<Arc<Leases>>;

/// Reads a dnsmasq-format lease file; a missing file is an empty table.
pub fn read_lease_file(path: &Path) -> Result<Leases, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Leases::parse(&text, &path.display().to_string())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Leases::new()),
        Err(source) => Err(ServerError::LeaseFile {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `text` to `path` through a temp file in the same directory and
/// a rename, so readers never see a partial file.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&temp, path)
}

/// A UDP socket as a DHCP server needs it.
fn bind_socket(
    address: Ipv4Addr,
    port: u16,
    interface: Option<&str>,
) -> Result<UdpSocket, ServerError> {
    let bind_error = |source| ServerError::Bind {
        port,
        interface: interface.map(String::from),
        source,
    };
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_broadcast(true).map_err(bind_error)?;
    if let Some(interface) = interface {
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(bind_error)?;
    }
    socket.set_nonblocking(true).map_err(bind_error)?;
    let address = SocketAddr::from((address, port));
    socket.bind(&address.into()).map_err(bind_error)?;
    UdpSocket::from_std(socket.into()).map_err(bind_error)
}

/// The host table, re-read when a directory's mtime changes or the
/// interval has passed.
struct HostSource {
    hosts_dir: Option<PathBuf>,
    opts_dir: Option<PathBuf>,
    interval: Duration,
    read_at: Option<Instant>,
    mtimes: (Option<SystemTime>, Option<SystemTime>),
    table: Arc<HostTable>,
}

fn mtime(dir: Option<&Path>) -> Option<SystemTime> {
    std::fs::metadata(dir?).and_then(|m| m.modified()).ok()
}

impl HostSource {
    fn new(settings: &ServerSettings) -> HostSource {
        HostSource {
            hosts_dir: settings.hosts_dir.clone(),
            opts_dir: settings.opts_dir.clone(),
            interval: settings.reload_interval,
            read_at: None,
            mtimes: (None, None),
            table: Arc::new(HostTable::new()),
        }
    }

    async fn current(&mut self) -> Arc<HostTable> {
        if self.hosts_dir.is_none() && self.opts_dir.is_none() {
            return self.table.clone();
        }
        let mtimes = (
            mtime(self.hosts_dir.as_deref()),
            mtime(self.opts_dir.as_deref()),
        );
        let stale =
            self.read_at.is_none_or(|at| at.elapsed() >= self.interval) || mtimes != self.mtimes;
        if stale {
            let (hosts, opts) = (self.hosts_dir.clone(), self.opts_dir.clone());
            let read = tokio::task::spawn_blocking(move || {
                HostTable::read_dirs(hosts.as_deref(), opts.as_deref())
            });
            match read.await {
                Ok(table) => self.table = Arc::new(table),
                Err(error) => tracing::warn!(%error, "reading DHCP host and option files failed"),
            }
            self.read_at = Some(Instant::now());
            self.mtimes = mtimes;
        }
        self.table.clone()
    }
}

/// A bound DHCP server; [`DhcpServer::run`] serves until shutdown.
pub struct DhcpServer {
    dhcp: UdpSocket,
    pxe: Option<UdpSocket>,
    responder: Responder,
    trace: Arc<dyn TraceSink>,
    hosts: HostSource,
    lease_file: Option<PathBuf>,
    leases: watch::Sender<Arc<Leases>>,
}

impl DhcpServer {
    /// Binds the sockets and loads the lease file into the responder.
    pub fn bind(
        settings: ServerSettings,
        mut responder: Responder,
        trace: Arc<dyn TraceSink>,
    ) -> Result<DhcpServer, ServerError> {
        if let Some(path) = &settings.lease_file {
            responder.load_leases(read_lease_file(path)?);
        }
        let config = responder.config();
        let interface = settings.interface.as_deref();
        let dhcp = bind_socket(Ipv4Addr::UNSPECIFIED, config.server_port, interface)?;
        // Bound to our address, so the ACK's source is the server
        // identifier the client sent its REQUEST to.
        let pxe = match config.mode {
            Mode::Proxy => Some(bind_socket(config.server_ip, config.pxe_port, interface)?),
            Mode::Full { .. } => None,
        };
        let (leases, _) = watch::channel(Arc::new(responder.leases().clone()));
        tracing::info!(
            port = config.server_port,
            interface,
            "DHCP server listening"
        );
        Ok(DhcpServer {
            dhcp,
            pxe,
            responder,
            trace,
            hosts: HostSource::new(&settings),
            lease_file: settings.lease_file,
            leases,
        })
    }

    /// The lease table as it changes (for mapping client IPs to MACs).
    pub fn leases(&self) -> LeaseView {
        self.leases.subscribe()
    }

    /// The bound local ports: DHCP, then PXE in proxy mode.
    pub fn local_ports(&self) -> io::Result<Vec<u16>> {
        let mut ports = vec![self.dhcp.local_addr()?.port()];
        if let Some(pxe) = &self.pxe {
            ports.push(pxe.local_addr()?.port());
        }
        Ok(ports)
    }

    /// Serves until `shutdown` completes, then writes the lease file a
    /// last time.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let persister = self
            .lease_file
            .clone()
            .map(|path| tokio::spawn(persist_leases(path, self.leases.subscribe())));
        let mut dhcp_buffer = vec![0u8; MAX_DATAGRAM + 1];
        let mut pxe_buffer = vec![0u8; MAX_DATAGRAM + 1];
        let (dhcp_port, pxe_port) = (
            self.responder.config().server_port,
            self.responder.config().pxe_port,
        );
        tokio::pin!(shutdown);
        loop {
            let (received, port, from_pxe) = tokio::select! {
                _ = &mut shutdown => break,
                received = self.dhcp.recv_from(&mut dhcp_buffer) => (received, dhcp_port, false),
                received = recv_optional(self.pxe.as_ref(), &mut pxe_buffer) => (received, pxe_port, true),
            };
            let (len, source) = match received {
                Ok(received) => received,
                Err(error) => {
                    // Transient (ENOBUFS, ICMP errors): keep serving.
                    tracing::warn!(port, %error, "receiving on DHCP socket failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let SocketAddr::V4(source) = source else {
                continue;
            };
            let datagram = if from_pxe {
                &pxe_buffer[..len]
            } else {
                &dhcp_buffer[..len]
            };
            let datagram = datagram.to_vec();
            self.handle(&datagram, Arrival { port, source }, from_pxe)
                .await;
        }
        drop(self.leases);
        if let Some(persister) = persister {
            if let Err(error) = persister.await {
                tracing::warn!(%error, "lease file writer failed");
            }
        }
        Ok(())
    }

    async fn handle(&mut self, datagram: &[u8], arrival: Arrival, from_pxe: bool) {
        let hosts = self.hosts.current().await;
        let generation = self.responder.leases().generation();
        let outcome = self.responder.handle(
            datagram,
            arrival,
            &hosts,
            SystemTime::now(),
            self.trace.as_ref(),
        );
        match outcome {
            Ok(Some(reply)) => {
                let socket = match (&self.pxe, from_pxe) {
                    (Some(pxe), true) => pxe,
                    _ => &self.dhcp,
                };
                if let Err(error) = socket.send_to(&reply.datagram, reply.destination).await {
                    tracing::warn!(destination = %reply.destination, %error, "cannot send DHCP reply");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::debug!(source = %arrival.source, %error, "dropping datagram"),
        }
        if self.responder.leases().generation() != generation {
            self.leases
                .send_replace(Arc::new(self.responder.leases().clone()));
        }
    }
}

async fn recv_optional(
    socket: Option<&UdpSocket>,
    buffer: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(socket) => socket.recv_from(buffer).await,
        None => std::future::pending().await,
    }
}

/// Writes the newest lease table after each change; bursts coalesce.
async fn persist_leases(path: PathBuf, mut leases: LeaseView) {
    while leases.changed().await.is_ok() {
        let text = leases.borrow_and_update().to_file_text();
        let target = path.clone();
        match tokio::task::spawn_blocking(move || write_atomically(&target, &text)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(path = %path.display(), %error, "cannot write lease file")
            }
            Err(error) => tracing::warn!(%error, "lease file writer panicked"),
        }
    }
}

/// Binds and serves until `shutdown`; see [`DhcpServer`].
pub async fn serve(
    settings: ServerSettings,
    responder: Responder,
    trace: Arc<dyn TraceSink>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    DhcpServer::bind(settings, responder, trace)?
        .run(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::{DhcpConfig, Pool};
    use crate::trace::NoTrace;

    #[test]
    fn lease_file_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dnsmasq.leases");
        assert!(
            read_lease_file(&path).unwrap().is_empty(),
            "missing file is empty"
        );
        write_atomically(&path, "0 52:54:00:00:00:01 10.0.0.5 * *\n").unwrap();
        let leases = read_lease_file(&path).unwrap();
        assert_eq!(
            leases.address_of(crate::trace::MacAddr([0x52, 0x54, 0, 0, 0, 1])),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[tokio::test]
    async fn host_source_rereads_when_files_change() {
        let dir = tempfile::tempdir().unwrap();
        let settings = ServerSettings {
            hosts_dir: Some(dir.path().to_path_buf()),
            reload_interval: Duration::from_secs(3600),
            ..ServerSettings::default()
        };
        let mut source = HostSource::new(&settings);
        assert_eq!(source.current().await.host_count(), 0);
        std::fs::write(
            dir.path().join(".ironic-1.conf.tmp"),
            "52:54:00:00:00:01,set:a\n",
        )
        .unwrap();
        std::fs::rename(
            dir.path().join(".ironic-1.conf.tmp"),
            dir.path().join("ironic-1.conf"),
        )
        .unwrap();
        // The rename changed the directory mtime; force a distinct one in
        // case the filesystem's clock granularity hid it.
        source.mtimes.0 = None;
        assert_eq!(source.current().await.host_count(), 1);
        source.read_at = Some(Instant::now() - Duration::from_secs(7200));
        std::fs::write(
            dir.path().join("ironic-1.conf"),
            "52:54:00:00:00:01,ignore\n",
        )
        .unwrap();
        let table = source.current().await;
        assert!(
            table
                .host(crate::trace::MacAddr([0x52, 0x54, 0, 0, 0, 1]))
                .unwrap()
                .ignore,
            "interval re-read"
        );
    }

    fn free_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A "relay" socket on 127.0.0.2 at the server's port: replies to
    /// giaddr 127.0.0.2 reach it, not the server's wildcard socket.
    fn relay_socket(port: u16) -> UdpSocket {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        socket.set_reuse_address(true).unwrap();
        socket.set_nonblocking(true).unwrap();
        socket
            .bind(&SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), port)).into())
            .unwrap();
        UdpSocket::from_std(socket.into()).unwrap()
    }

    #[tokio::test]
    async fn serves_relayed_clients_on_loopback_and_persists_leases() {
        use crate::dhcp::wire::build::{ParsedReply, RequestBytes};
        use dhcproto::v4::MessageType;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let lease_file = dir.path().join("leases");
        let mac = crate::trace::MacAddr([0x52, 0x54, 0, 0, 0, 1]);
        let mut config = DhcpConfig::full(
            Ipv4Addr::LOCALHOST,
            vec![Pool::new(
                Ipv4Addr::new(127, 0, 1, 10),
                Ipv4Addr::new(127, 0, 1, 20),
                Ipv4Addr::new(255, 0, 0, 0),
            )],
        );
        config.discovery = true;
        config.server_port = port;
        let responder = Responder::new(config, Leases::new()).unwrap();
        let settings = ServerSettings {
            lease_file: Some(lease_file.clone()),
            ..ServerSettings::default()
        };
        let server = DhcpServer::bind(settings, responder, Arc::new(NoTrace)).unwrap();
        let mut view = server.leases();
        let relay = relay_socket(port);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let exchange = |request: RequestBytes| {
            let relay = &relay;
            let bytes = request.bytes();
            async move {
                relay.send_to(&bytes, ("127.0.0.1", port)).await.unwrap();
                let mut reply = [0u8; 1500];
                let (len, _) =
                    tokio::time::timeout(Duration::from_secs(5), relay.recv_from(&mut reply))
                        .await
                        .unwrap()
                        .unwrap();
                ParsedReply::parse(&reply[..len])
            }
        };
        let mut discover = RequestBytes::new(MessageType::Discover, mac);
        discover.giaddr = Ipv4Addr::new(127, 0, 0, 2);
        let offer = exchange(discover).await;
        assert_eq!(offer.message_type(), 2);
        let mut request = RequestBytes::new(MessageType::Request, mac)
            .option(54, &[127, 0, 0, 1])
            .option(50, &offer.yiaddr.octets());
        request.giaddr = Ipv4Addr::new(127, 0, 0, 2);
        let ack = exchange(request).await;
        assert_eq!(ack.message_type(), 5);
        tokio::time::timeout(Duration::from_secs(5), view.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(view.borrow().address_of(mac), Some(offer.yiaddr));
        // A datagram that is not DHCP is dropped, the server goes on.
        relay
            .send_to(b"garbage", ("127.0.0.1", port))
            .await
            .unwrap();
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        let written = std::fs::read_to_string(&lease_file).unwrap();
        assert!(
            written.contains(&format!("52:54:00:00:00:01 {} ", offer.yiaddr)),
            "{written}"
        );
        assert_eq!(
            read_lease_file(&lease_file).unwrap().address_of(mac),
            Some(offer.yiaddr)
        );
    }
}
