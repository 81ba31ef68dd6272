//! DHCP messages on the wire: requests read through dhcproto's borrowed
//! parser (options kept as raw bytes, so relay information can be echoed
//! verbatim and multi-valued options are not lost), replies written with
//! dhcproto's encoder in an option order we choose (53 first, 82 last).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use dhcproto::v4::{
    self, borrowed, DhcpOption, Encodable, Encoder, Flags, HType, MessageType, Opcode,
    UnknownOption,
};

use super::hosts::{value_kind, ValueKind};
use super::DhcpError;
use crate::trace::MacAddr;

/// Largest datagram accepted (an Ethernet MTU).
pub const MAX_DATAGRAM: usize = 1500;
/// Fixed BOOTP header plus the magic cookie.
const HEADER_LEN: usize = 240;
/// Replies are padded to this size: some PXE ROMs drop shorter ones.
const MIN_REPLY_LEN: usize = 300;
/// Room for the boot file name in the BOOTP `file` field (NUL-terminated).
pub const FILE_FIELD_MAX: usize = 127;
/// Room for the server name in the BOOTP `sname` field (NUL-terminated).
pub const SNAME_FIELD_MAX: usize = 63;

pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_HOSTNAME: u8 = 12;
pub const OPT_DOMAIN: u8 = 15;
pub const OPT_BROADCAST: u8 = 28;
pub const OPT_VENDOR_OPTS: u8 = 43;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_PARAMETER_LIST: u8 = 55;
pub const OPT_MESSAGE: u8 = 56;
pub const OPT_RENEWAL: u8 = 58;
pub const OPT_REBINDING: u8 = 59;
pub const OPT_VENDOR_CLASS: u8 = 60;
pub const OPT_CLIENT_ID: u8 = 61;
pub const OPT_TFTP_SERVER: u8 = 66;
pub const OPT_BOOTFILE: u8 = 67;
pub const OPT_USER_CLASS: u8 = 77;
pub const OPT_RELAY_AGENT: u8 = 82;
pub const OPT_CLIENT_ARCH: u8 = 93;
pub const OPT_CLIENT_UUID: u8 = 97;
pub const OPT_IPXE_ENCAP: u8 = 175;

/// A client message, checked and with its options as raw bytes.
#[derive(Debug, Clone)]
pub struct Request {
    pub message: MessageType,
    pub xid: u32,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: MacAddr,
    /// Options by code; repeated codes are concatenated (RFC 3396).
    pub options: BTreeMap<u8, Vec<u8>>,
}

impl Request {
    /// Parses and checks a datagram: a DHCP BOOTREQUEST from Ethernet.
    pub fn parse(datagram: &[u8]) -> Result<Request, DhcpError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(DhcpError::TooLarge(datagram.len()));
        }
        if datagram.len() < HEADER_LEN {
            return Err(DhcpError::Truncated(datagram.len()));
        }
        let message =
            borrowed::Message::new(datagram).map_err(|_| DhcpError::Truncated(datagram.len()))?;
        if message.opcode() != Opcode::BootRequest {
            return Err(DhcpError::NotBootRequest(u8::from(message.opcode())));
        }
        let (htype, hlen) = (u8::from(message.htype()), message.hlen());
        if message.htype() != HType::Eth || hlen != 6 {
            return Err(DhcpError::NotEthernet { htype, hlen });
        }
        if datagram[236..240] != v4::MAGIC {
            return Err(DhcpError::NotDhcp("no magic cookie (BOOTP is not served)"));
        }
        let options = collect_options(message.opts());
        let message_type = match options.get(&OPT_MESSAGE_TYPE).map(Vec::as_slice) {
            Some([kind]) => MessageType::from(*kind),
            _ => {
                return Err(DhcpError::NotDhcp(
                    "no message type option (BOOTP is not served)",
                ))
            }
        };
        if !matches!(
            message_type,
            MessageType::Discover
                | MessageType::Request
                | MessageType::Decline
                | MessageType::Release
                | MessageType::Inform
        ) {
            return Err(DhcpError::UnexpectedMessageType(u8::from(message_type)));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&datagram[28..34]);
        Ok(Request {
            message: message_type,
            xid: message.xid(),
            broadcast: message.flags().broadcast(),
            ciaddr: message.ciaddr(),
            giaddr: message.giaddr(),
            mac: MacAddr(mac),
            options,
        })
    }

    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options.get(&code).map(Vec::as_slice)
    }

    fn address_option(&self, code: u8) -> Option<Ipv4Addr> {
        let bytes: [u8; 4] = self.option(code)?.try_into().ok()?;
        Some(Ipv4Addr::from(bytes))
    }

    pub fn requested_ip(&self) -> Option<Ipv4Addr> {
        self.address_option(OPT_REQUESTED_IP)
    }

    pub fn server_id(&self) -> Option<Ipv4Addr> {
        self.address_option(OPT_SERVER_ID)
    }

    /// Whether the client listed `code` in its parameter request list.
    pub fn asked_for(&self, code: u8) -> bool {
        self.option(OPT_PARAMETER_LIST)
            .is_some_and(|list| list.contains(&code))
    }

    pub fn vendor_class(&self) -> Option<&[u8]> {
        self.option(OPT_VENDOR_CLASS)
    }

    /// Client system architectures from option 93 (a list of 16-bit types).
    pub fn architectures(&self) -> Vec<u16> {
        self.option(OPT_CLIENT_ARCH)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect()
    }

    /// The host name the client sent (option 12), if it is plain text.
    pub fn hostname(&self) -> Option<String> {
        let text = std::str::from_utf8(self.option(OPT_HOSTNAME)?).ok()?;
        let text = text.trim_end_matches('\0');
        let plain = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        plain.then(|| text.to_string())
    }

    /// PXE boot item (sub-option 71 of option 43), sent on port 4011.
    pub fn pxe_boot_item(&self) -> Option<Vec<u8>> {
        let mut rest = self.option(OPT_VENDOR_OPTS)?;
        while let [code, tail @ ..] = rest {
            match code {
                0 => rest = tail,
                255 => return None,
                _ => {
                    let (&len, data) = tail.split_first()?;
                    let value = data.get(..len as usize)?;
                    if *code == 71 {
                        return Some(value.to_vec());
                    }
                    rest = &data[len as usize..];
                }
            }
        }
        None
    }
}

fn collect_options(options: borrowed::DhcpOptionIterator<'_>) -> BTreeMap<u8, Vec<u8>> {
    let mut map: BTreeMap<u8, Vec<u8>> = BTreeMap::new();
    for option in options {
        map.entry(u8::from(option.code()))
            .or_default()
            .extend_from_slice(option.data());
    }
    map
}

/// The name used in traces: `DISCOVER`, `OFFER`, ...
pub fn message_name(message: MessageType) -> &'static str {
    match message {
        MessageType::Discover => "DISCOVER",
        MessageType::Offer => "OFFER",
        MessageType::Request => "REQUEST",
        MessageType::Decline => "DECLINE",
        MessageType::Ack => "ACK",
        MessageType::Nak => "NAK",
        MessageType::Release => "RELEASE",
        MessageType::Inform => "INFORM",
        _ => "OTHER",
    }
}

/// A reply being assembled: BOOTP fields and options in send order.
#[derive(Debug, Clone)]
pub struct ReplyBuilder {
    pub message: MessageType,
    pub xid: u32,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub mac: MacAddr,
    pub file: Option<Vec<u8>>,
    pub sname: Option<Vec<u8>>,
    options: Vec<(u8, Vec<u8>)>,
}

impl ReplyBuilder {
    /// A reply to `request` with the message type option already first.
    pub fn new(request: &Request, message: MessageType) -> ReplyBuilder {
        let mut reply = ReplyBuilder {
            message,
            xid: request.xid,
            broadcast: request.broadcast,
            ciaddr: request.ciaddr,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: request.giaddr,
            mac: request.mac,
            file: None,
            sname: None,
            options: Vec::new(),
        };
        reply.push(OPT_MESSAGE_TYPE, vec![u8::from(message)]);
        reply
    }

    /// Adds an option, replacing an earlier one with the same code.
    pub fn push(&mut self, code: u8, data: Vec<u8>) {
        self.options.retain(|(c, _)| *c != code);
        self.options.push((code, data));
    }

    pub fn has(&self, code: u8) -> bool {
        self.options.iter().any(|(c, _)| *c == code)
    }

    /// Echoes options RFC 6842 (client id) and RFC 3046 (relay agent
    /// information, last) want back verbatim.
    pub fn echo_client_and_relay(&mut self, request: &Request) {
        if let Some(id) = request.option(OPT_CLIENT_ID) {
            self.push(OPT_CLIENT_ID, id.to_vec());
        }
        if let Some(relay) = request.option(OPT_RELAY_AGENT) {
            self.push(OPT_RELAY_AGENT, relay.to_vec());
        }
    }

    /// The options in send order, as `number=value` text for traces, then
    /// the BOOTP boot fields as `siaddr=` and `file=`.
    pub fn rendered(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .options
            .iter()
            .map(|(code, data)| format!("{code}={}", render_value(*code, data)))
            .collect();
        if !self.siaddr.is_unspecified() {
            lines.push(format!("siaddr={}", self.siaddr));
        }
        if let Some(file) = &self.file {
            lines.push(format!("file={}", String::from_utf8_lossy(file)));
        }
        lines
    }

    /// The datagram: header, options, end, padding to 300 bytes.
    pub fn encode(&self) -> Result<Vec<u8>, DhcpError> {
        let mut message = v4::Message::new_with_id(
            self.xid,
            self.ciaddr,
            self.yiaddr,
            self.siaddr,
            self.giaddr,
            &self.mac.0,
        );
        message.set_opcode(Opcode::BootReply).set_htype(HType::Eth);
        if self.broadcast {
            message.set_flags(Flags::default().set_broadcast());
        }
        if let Some(file) = self.file.as_deref().filter(|f| f.len() <= FILE_FIELD_MAX) {
            message.set_fname(file);
        }
        if let Some(sname) = self.sname.as_deref().filter(|s| s.len() <= SNAME_FIELD_MAX) {
            message.set_sname(sname);
        }
        let mut buffer = Vec::with_capacity(576);
        let mut encoder = Encoder::new(&mut buffer);
        let encode_error = |e: dhcproto::error::EncodeError| DhcpError::Encode(e.to_string());
        message.encode(&mut encoder).map_err(encode_error)?;
        for (code, data) in &self.options {
            let option = DhcpOption::Unknown(UnknownOption::new((*code).into(), data.clone()));
            option.encode(&mut encoder).map_err(encode_error)?;
        }
        encoder.write_u8(255).map_err(encode_error)?;
        if buffer.len() < MIN_REPLY_LEN {
            buffer.resize(MIN_REPLY_LEN, 0);
        }
        if buffer.len() > MAX_DATAGRAM {
            return Err(DhcpError::Encode(format!(
                "reply of {} bytes exceeds {MAX_DATAGRAM}",
                buffer.len()
            )));
        }
        Ok(buffer)
    }
}

/// Option bytes as readable text: addresses, numbers, text or hex.
pub fn render_value(code: u8, data: &[u8]) -> String {
    if code == OPT_MESSAGE_TYPE {
        if let [kind] = data {
            return message_name(MessageType::from(*kind)).to_string();
        }
    }
    match value_kind(code) {
        ValueKind::Addresses if !data.is_empty() && data.len().is_multiple_of(4) => data
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string())
            .collect::<Vec<_>>()
            .join(","),
        ValueKind::U8 | ValueKind::U16 | ValueKind::U32 | ValueKind::Time
            if (1..=4).contains(&data.len()) =>
        {
            data.iter()
                .fold(0u64, |n, b| (n << 8) | u64::from(*b))
                .to_string()
        }
        _ if is_printable(data) => String::from_utf8_lossy(data).into_owned(),
        _ => data
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

fn is_printable(data: &[u8]) -> bool {
    !data.is_empty() && data.iter().all(|b| (0x20..0x7f).contains(b))
}

#[cfg(test)]
pub(crate) mod build {
    //! Request datagrams for tests, written byte by byte (independent of
    //! the encoder under test).

    use super::*;

    pub struct RequestBytes {
        pub message: u8,
        pub mac: MacAddr,
        pub xid: u32,
        pub ciaddr: Ipv4Addr,
        pub giaddr: Ipv4Addr,
        pub broadcast: bool,
        pub options: Vec<(u8, Vec<u8>)>,
    }

    impl RequestBytes {
        pub fn new(message: MessageType, mac: MacAddr) -> RequestBytes {
            RequestBytes {
                message: u8::from(message),
                mac,
                xid: 0x1234_5678,
                ciaddr: Ipv4Addr::UNSPECIFIED,
                giaddr: Ipv4Addr::UNSPECIFIED,
                broadcast: false,
                options: Vec::new(),
            }
        }

        pub fn option(mut self, code: u8, data: &[u8]) -> RequestBytes {
            self.options.push((code, data.to_vec()));
            self
        }

        pub fn bytes(&self) -> Vec<u8> {
            let mut b = vec![1, 1, 6, 0];
            b.extend_from_slice(&self.xid.to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&(if self.broadcast { 0x8000u16 } else { 0 }).to_be_bytes());
            b.extend_from_slice(&self.ciaddr.octets());
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&self.giaddr.octets());
            b.extend_from_slice(&self.mac.0);
            b.extend_from_slice(&[0; 10 + 64 + 128]);
            b.extend_from_slice(&v4::MAGIC);
            b.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, self.message]);
            for (code, data) in &self.options {
                b.push(*code);
                b.push(data.len() as u8);
                b.extend_from_slice(data);
            }
            b.push(255);
            b
        }
    }

    /// A reply read back: fields and raw options.
    #[derive(Debug)]
    pub struct ParsedReply {
        pub op: u8,
        pub xid: u32,
        pub broadcast: bool,
        pub ciaddr: Ipv4Addr,
        pub yiaddr: Ipv4Addr,
        pub siaddr: Ipv4Addr,
        pub giaddr: Ipv4Addr,
        pub mac: [u8; 6],
        pub sname: String,
        pub file: String,
        pub options: Vec<(u8, Vec<u8>)>,
    }

    impl ParsedReply {
        pub fn parse(bytes: &[u8]) -> ParsedReply {
            assert!(bytes.len() >= 300, "reply shorter than 300 bytes");
            assert_eq!(&bytes[236..240], &v4::MAGIC);
            let addr =
                |at: usize| Ipv4Addr::new(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
            let text = |range: std::ops::Range<usize>| {
                let field = &bytes[range];
                let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
                String::from_utf8_lossy(&field[..end]).into_owned()
            };
            let mut options = Vec::new();
            let mut at = 240;
            while at < bytes.len() {
                match bytes[at] {
                    0 => at += 1,
                    255 => break,
                    code => {
                        let len = bytes[at + 1] as usize;
                        options.push((code, bytes[at + 2..at + 2 + len].to_vec()));
                        at += 2 + len;
                    }
                }
            }
            ParsedReply {
                op: bytes[0],
                xid: u32::from_be_bytes(bytes[4..8].try_into().unwrap()),
                broadcast: bytes[10] & 0x80 != 0,
                ciaddr: addr(12),
                yiaddr: addr(16),
                siaddr: addr(20),
                giaddr: addr(24),
                mac: bytes[28..34].try_into().unwrap(),
                sname: text(44..108),
                file: text(108..236),
                options,
            }
        }

        pub fn option(&self, code: u8) -> Option<&[u8]> {
            self.options
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, d)| d.as_slice())
        }

        pub fn message_type(&self) -> u8 {
            self.option(OPT_MESSAGE_TYPE).unwrap()[0]
        }

        pub fn codes(&self) -> Vec<u8> {
            self.options.iter().map(|(c, _)| *c).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 1, 2, 3]);

    #[test]
    fn parses_a_discover_with_raw_options() {
        let bytes = RequestBytes::new(MessageType::Discover, MAC)
            .option(OPT_PARAMETER_LIST, &[1, 3, 67])
            .option(OPT_CLIENT_ARCH, &[0, 7, 0, 16])
            .option(OPT_RELAY_AGENT, &[1, 3, b'a', b'b', b'c', 2, 1, 9])
            .bytes();
        let request = Request::parse(&bytes).unwrap();
        assert_eq!(request.message, MessageType::Discover);
        assert_eq!(request.mac, MAC);
        assert!(request.asked_for(67) && !request.asked_for(66));
        assert_eq!(request.architectures(), vec![7, 16]);
        assert_eq!(
            request.option(OPT_RELAY_AGENT).unwrap(),
            &[1, 3, b'a', b'b', b'c', 2, 1, 9]
        );
    }

    #[test]
    fn refuses_what_is_not_an_ethernet_dhcp_request() {
        let good = RequestBytes::new(MessageType::Discover, MAC).bytes();
        let mut reply = good.clone();
        reply[0] = 2;
        assert!(matches!(
            Request::parse(&reply),
            Err(DhcpError::NotBootRequest(2))
        ));
        let mut token_ring = good.clone();
        token_ring[1] = 6;
        assert!(matches!(
            Request::parse(&token_ring),
            Err(DhcpError::NotEthernet { .. })
        ));
        let mut long_hw = good.clone();
        long_hw[2] = 200;
        assert!(matches!(
            Request::parse(&long_hw),
            Err(DhcpError::NotEthernet { hlen: 200, .. })
        ));
        assert!(matches!(
            Request::parse(&good[..239]),
            Err(DhcpError::Truncated(239))
        ));
        let mut big = good.clone();
        big.resize(1501, 0);
        assert!(matches!(
            Request::parse(&big),
            Err(DhcpError::TooLarge(1501))
        ));
        let mut bootp = good.clone();
        bootp[236] = 0;
        assert!(matches!(Request::parse(&bootp), Err(DhcpError::NotDhcp(_))));
        let offer = RequestBytes::new(MessageType::Offer, MAC).bytes();
        assert!(matches!(
            Request::parse(&offer),
            Err(DhcpError::UnexpectedMessageType(2))
        ));
        let mut no_type = good.clone();
        no_type.truncate(240);
        no_type.push(255);
        assert!(matches!(
            Request::parse(&no_type),
            Err(DhcpError::NotDhcp(_))
        ));
    }

    #[test]
    fn reply_encodes_fields_and_options_in_order() {
        let request = Request::parse(
            &RequestBytes::new(MessageType::Discover, MAC)
                .option(OPT_CLIENT_ID, &[1, 2, 3])
                .option(OPT_RELAY_AGENT, &[1, 1, 7])
                .bytes(),
        )
        .unwrap();
        let mut reply = ReplyBuilder::new(&request, MessageType::Offer);
        reply.yiaddr = Ipv4Addr::new(10, 0, 0, 5);
        reply.siaddr = Ipv4Addr::new(10, 0, 0, 1);
        reply.file = Some(b"pxelinux.0".to_vec());
        reply.push(OPT_SERVER_ID, vec![10, 0, 0, 1]);
        reply.push(OPT_BOOTFILE, vec![b'x'; 300]);
        reply.echo_client_and_relay(&request);
        let parsed = ParsedReply::parse(&reply.encode().unwrap());
        assert_eq!(parsed.op, 2);
        assert_eq!(parsed.xid, 0x1234_5678);
        assert_eq!(parsed.yiaddr, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(parsed.file, "pxelinux.0");
        assert_eq!(parsed.mac, MAC.0);
        // 67 is 300 bytes: split in two options (RFC 3396).
        assert_eq!(parsed.codes(), vec![53, 54, 67, 67, 61, 82]);
        assert_eq!(
            reply.rendered()[..2],
            ["53=OFFER".to_string(), "54=10.0.0.1".to_string()]
        );
        assert!(reply.rendered().contains(&"file=pxelinux.0".to_string()));
    }

    #[test]
    fn pxe_boot_item_is_found_in_option_43() {
        let request = Request::parse(
            &RequestBytes::new(MessageType::Request, MAC)
                .option(OPT_VENDOR_OPTS, &[6, 1, 8, 71, 4, 0x80, 0, 0, 0, 255])
                .bytes(),
        )
        .unwrap();
        assert_eq!(request.pxe_boot_item(), Some(vec![0x80, 0, 0, 0]));
    }

    #[test]
    fn renders_values_readably() {
        assert_eq!(
            render_value(3, &[10, 0, 0, 1, 10, 0, 0, 2]),
            "10.0.0.1,10.0.0.2"
        );
        assert_eq!(render_value(51, &3600u32.to_be_bytes()), "3600");
        assert_eq!(render_value(67, b"snponly.efi"), "snponly.efi");
        assert_eq!(render_value(43, &[6, 1, 8, 255]), "06:01:08:ff");
    }
}
