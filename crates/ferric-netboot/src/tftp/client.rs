//! A small blocking TFTP client (read only), for the examples, the tests
//! and the bench: options blksize, windowsize (RFC 7440) and tsize.
//!
//! As an RFC 7440 receiver it acknowledges every `windowsize` blocks and the
//! last one; on a gap (a block out of order) it acknowledges the last block
//! it has in order, once per gap, and on a timeout it resends its last ACK.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::sys::socket::{self as nixsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};

use super::packet::{
    encode_ack, encode_error, find_option, ErrorCode, Mode, Packet, PacketError, Request,
    TftpOption,
};

/// What to ask the server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    pub blksize: Option<u16>,
    pub windowsize: Option<u16>,
    /// Ask for the file size (tsize=0).
    pub tsize: bool,
    /// How long to wait for a packet before resending.
    pub timeout: Duration,
    /// Resends without progress before giving up.
    pub retries: u32,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            blksize: None,
            windowsize: None,
            tsize: false,
            timeout: Duration::from_secs(1),
            retries: 5,
        }
    }
}

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: u64,
    /// The size the server announced, if tsize was asked and granted.
    pub tsize: Option<u64>,
    pub blksize: u16,
    pub windowsize: u16,
    /// From the request to the last ACK.
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid request: {0}")]
    Request(#[from] PacketError),
    #[error("socket: {0}")]
    Socket(io::Error),
    #[error("writing the output: {0}")]
    Write(io::Error),
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    #[error("bad OACK: {0}")]
    BadOack(String),
    #[error("no answer after {0} retries")]
    TimedOut(u32),
}

/// Downloads `remote` from `server` into `out`.
pub fn fetch(
    server: SocketAddr,
    remote: &str,
    options: &ClientOptions,
    out: &mut impl Write,
) -> Result<Fetched, ClientError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(ClientError::Socket)?;
    // Receive a window's datagrams in one call where the kernel can (UDP
    // GRO); without it each datagram comes alone.
    let _ = nixsock::setsockopt(&socket, sockopt::UdpGroSegment, &true);
    // Room for two windows: a window that overflows the receive buffer
    // loses its tail, which only the timeout recovers.
    let window_bytes = usize::from(options.windowsize.unwrap_or(1))
        * (usize::from(options.blksize.unwrap_or(512)) + 4);
    let _ = nixsock::setsockopt(
        &socket,
        sockopt::RcvBuf,
        &(2 * window_bytes).clamp(256 << 10, 4 << 20),
    );
    socket
        .set_read_timeout(Some(options.timeout))
        .map_err(ClientError::Socket)?;
    let request = build_request(remote, options);
    request.validate()?;
    let rrq = Packet::Rrq(request).encode();
    let started = Instant::now();
    socket.send_to(&rrq, server).map_err(ClientError::Socket)?;
    let mut receiver = Receiver {
        socket,
        server,
        peer: None,
        rrq,
        options: options.clone(),
        blksize: 512,
        windowsize: 1,
        tsize: None,
        next: 1,
        since_ack: 0,
        gap_acked: false,
        oack_seen: false,
        progress: 0,
        bytes: 0,
    };
    receiver.run(out)?;
    Ok(Fetched {
        bytes: receiver.bytes,
        tsize: receiver.tsize,
        blksize: receiver.blksize,
        windowsize: receiver.windowsize,
        elapsed: started.elapsed(),
    })
}

fn build_request(remote: &str, options: &ClientOptions) -> Request {
    let mut requested = Vec::new();
    if let Some(blksize) = options.blksize {
        requested.push(TftpOption::new("blksize", blksize));
    }
    if let Some(windowsize) = options.windowsize {
        requested.push(TftpOption::new("windowsize", windowsize));
    }
    if options.tsize {
        requested.push(TftpOption::new("tsize", 0));
    }
    Request {
        filename: remote.to_string(),
        mode: Mode::Octet,
        options: requested,
    }
}

struct Receiver {
    socket: UdpSocket,
    server: SocketAddr,
    /// The server's TID, learned from its first answer.
    peer: Option<SocketAddr>,
    rrq: Vec<u8>,
    options: ClientOptions,
    blksize: u16,
    windowsize: u16,
    tsize: Option<u64>,
    /// The next block expected, counting from 1 without rollover.
    next: u64,
    since_ack: u16,
    gap_acked: bool,
    oack_seen: bool,
    /// Counts OACKs and in-order blocks, to reset the retry count.
    progress: u64,
    bytes: u64,
}

enum Progress {
    More,
    Finished,
}

impl Receiver {
    fn run(&mut self, out: &mut impl Write) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 65536];
        let mut retries = 0;
        loop {
            let (len, from, segment) = match recv_coalesced(&self.socket, &mut buf) {
                Ok(received) => received,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    retries += 1;
                    if retries > self.options.retries {
                        return Err(ClientError::TimedOut(self.options.retries));
                    }
                    self.resend()?;
                    continue;
                }
                Err(e) => return Err(ClientError::Socket(e)),
            };
            if !self.accept_source(from)? {
                continue;
            }
            let before = self.progress;
            for datagram in buf[..len].chunks(segment.max(1)) {
                if let Progress::Finished = self.handle(datagram, out)? {
                    return Ok(());
                }
            }
            if self.progress != before {
                retries = 0;
            }
        }
    }

    /// Locks onto the server's first TID; others get ERROR 5.
    fn accept_source(&mut self, from: SocketAddr) -> Result<bool, ClientError> {
        match self.peer {
            Some(peer) if peer == from => Ok(true),
            Some(_) => {
                let error = encode_error(ErrorCode::UnknownTid, "unknown transfer ID");
                self.socket
                    .send_to(&error, from)
                    .map_err(ClientError::Socket)?;
                Ok(false)
            }
            None if from.ip() == self.server.ip() => {
                self.peer = Some(from);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn handle(&mut self, datagram: &[u8], out: &mut impl Write) -> Result<Progress, ClientError> {
        match Packet::parse(datagram) {
            Ok(Packet::Oack(options)) if self.next == 1 && !self.oack_seen => {
                self.apply_oack(&options)?;
                self.oack_seen = true;
                self.progress += 1;
                self.send_ack(0)?;
                Ok(Progress::More)
            }
            Ok(Packet::Data { block, data }) => self.on_data(block, data, out),
            Ok(Packet::Error { code, message }) => Err(ClientError::Server { code, message }),
            _ => Ok(Progress::More),
        }
    }

    fn on_data(
        &mut self,
        block: u16,
        data: &[u8],
        out: &mut impl Write,
    ) -> Result<Progress, ClientError> {
        if block != self.next as u16 || data.len() > usize::from(self.blksize) {
            if !self.gap_acked && self.next > 1 {
                self.gap_acked = true;
                self.since_ack = 0;
                self.send_ack((self.next - 1) as u16)?;
            }
            return Ok(Progress::More);
        }
        out.write_all(data).map_err(ClientError::Write)?;
        self.bytes += data.len() as u64;
        self.next += 1;
        self.progress += 1;
        self.since_ack += 1;
        self.gap_acked = false;
        if data.len() < usize::from(self.blksize) {
            self.send_ack(block)?;
            out.flush().map_err(ClientError::Write)?;
            return Ok(Progress::Finished);
        }
        if self.since_ack >= self.windowsize {
            self.since_ack = 0;
            self.send_ack(block)?;
        }
        Ok(Progress::More)
    }

    /// Takes the server's values; an option not asked for, or a value
    /// above what was asked, is refused with ERROR 8 (RFC 2347).
    fn apply_oack(&mut self, granted: &[TftpOption]) -> Result<(), ClientError> {
        let asked = build_request("-", &self.options).options;
        for option in granted {
            if find_option(&asked, &option.name).is_none() {
                return self.refuse_oack(format!("option {} was not requested", option.name));
            }
        }
        if let Some(value) = find_option(granted, "blksize") {
            match value.parse::<u16>() {
                Ok(b) if b >= 8 && Some(b) <= self.options.blksize => self.blksize = b,
                _ => return self.refuse_oack(format!("blksize {value}")),
            }
        }
        if let Some(value) = find_option(granted, "windowsize") {
            match value.parse::<u16>() {
                Ok(w) if w >= 1 && Some(w) <= self.options.windowsize => self.windowsize = w,
                _ => return self.refuse_oack(format!("windowsize {value}")),
            }
        }
        if let Some(value) = find_option(granted, "tsize") {
            match value.parse::<u64>() {
                Ok(size) => self.tsize = Some(size),
                Err(_) => return self.refuse_oack(format!("tsize {value}")),
            }
        }
        Ok(())
    }

    fn refuse_oack(&self, why: String) -> Result<(), ClientError> {
        if let Some(peer) = self.peer {
            let error = encode_error(ErrorCode::OptionNegotiation, &why);
            self.socket
                .send_to(&error, peer)
                .map_err(ClientError::Socket)?;
        }
        Err(ClientError::BadOack(why))
    }

    fn send_ack(&self, block: u16) -> Result<(), ClientError> {
        let peer = self.peer.unwrap_or(self.server);
        self.socket
            .send_to(&encode_ack(block), peer)
            .map_err(ClientError::Socket)?;
        Ok(())
    }

    /// On a timeout: the request again if nothing came yet, else an ACK of
    /// the last block in order (ACK 0 after an OACK), as RFC 7440 says.
    fn resend(&mut self) -> Result<(), ClientError> {
        self.since_ack = 0;
        match self.peer {
            Some(_) => self.send_ack((self.next - 1) as u16),
            None => self
                .socket
                .send_to(&self.rrq, self.server)
                .map(|_| ())
                .map_err(ClientError::Socket),
        }
    }
}

/// One receive: the bytes, the sender, and the size of each datagram in
/// them (several when GRO coalesced a burst, the last may be shorter).
fn recv_coalesced(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, usize)> {
    let mut control = nix::cmsg_space!(i32);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = nixsock::recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )?;
    let from = msg
        .address
        .as_ref()
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                })
        })
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let segment = msg
        .cmsgs()
        .ok()
        .and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                _ => None,
            })
        })
        .unwrap_or(msg.bytes);
    Ok((msg.bytes, from, segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(options: ClientOptions) -> Receiver {
        let server: SocketAddr = ([127, 0, 0, 1], 9).into();
        Receiver {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            server,
            peer: None,
            rrq: Vec::new(),
            options,
            blksize: 512,
            windowsize: 1,
            tsize: None,
            next: 1,
            since_ack: 0,
            gap_acked: false,
            oack_seen: false,
            progress: 0,
            bytes: 0,
        }
    }

    fn asked() -> ClientOptions {
        ClientOptions {
            blksize: Some(1468),
            windowsize: Some(16),
            tsize: true,
            ..ClientOptions::default()
        }
    }

    #[test]
    fn request_carries_only_the_options_asked_for() {
        assert!(build_request("f", &ClientOptions::default())
            .options
            .is_empty());
        let names: Vec<String> = build_request("f", &asked())
            .options
            .into_iter()
            .map(|o| o.name)
            .collect();
        assert_eq!(names, ["blksize", "windowsize", "tsize"]);
    }

    #[test]
    fn oack_values_within_the_request_are_taken() {
        let mut r = receiver(asked());
        let granted = [
            TftpOption::new("blksize", 1024),
            TftpOption::new("windowsize", 4),
            TftpOption::new("tsize", 99),
        ];
        r.apply_oack(&granted).unwrap();
        assert_eq!((r.blksize, r.windowsize, r.tsize), (1024, 4, Some(99)));
    }

    #[test]
    fn oack_above_the_request_or_unrequested_is_refused() {
        for granted in [
            vec![TftpOption::new("blksize", 2000)],
            vec![TftpOption::new("blksize", 4)],
            vec![TftpOption::new("windowsize", 17)],
            vec![TftpOption::new("windowsize", 0)],
            vec![TftpOption::new("tsize", "x")],
            vec![TftpOption::new("timeout", 1)],
        ] {
            let mut r = receiver(asked());
            assert!(
                matches!(r.apply_oack(&granted), Err(ClientError::BadOack(_))),
                "{granted:?}"
            );
        }
        let mut r = receiver(ClientOptions::default());
        assert!(matches!(
            r.apply_oack(&[TftpOption::new("blksize", 512)]),
            Err(ClientError::BadOack(_))
        ));
    }

    #[test]
    fn acks_every_window_and_the_short_last_block() {
        let mut r = receiver(ClientOptions {
            windowsize: Some(2),
            ..ClientOptions::default()
        });
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        r.peer = Some(peer.local_addr().unwrap());
        r.windowsize = 2;
        let mut out = Vec::new();
        let full = [7u8; 512];
        let acks = |peer: &UdpSocket| {
            let mut buf = [0u8; 16];
            let (n, _) = peer.recv_from(&mut buf).unwrap();
            Packet::parse(&buf[..n]).unwrap().encode()
        };
        assert!(matches!(r.on_data(1, &full, &mut out), Ok(Progress::More)));
        assert!(matches!(r.on_data(2, &full, &mut out), Ok(Progress::More)));
        assert_eq!(acks(&peer), encode_ack(2));
        // Block 4 before 3: a gap, acknowledged once with the last in order.
        assert!(matches!(r.on_data(4, &full, &mut out), Ok(Progress::More)));
        assert!(matches!(r.on_data(5, &full, &mut out), Ok(Progress::More)));
        assert_eq!(acks(&peer), encode_ack(2));
        assert!(matches!(
            r.on_data(3, &full[..10], &mut out),
            Ok(Progress::Finished)
        ));
        assert_eq!(acks(&peer), encode_ack(3));
        assert_eq!(out.len(), 2 * 512 + 10);
    }
}
