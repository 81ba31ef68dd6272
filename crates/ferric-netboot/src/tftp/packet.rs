//! TFTP packets (RFC 1350) with the option extension (RFC 2347): parsing
//! with typed errors, and encoding.
//!
//! Parsing never panics. Strings (file name, mode, option names and values)
//! must be printable ASCII; option names are compared and stored in lower
//! case. Requests are limited to 512 bytes (RFC 2347) and DATA to the
//! largest block size (RFC 2348).

use std::fmt;

/// Largest block size a client may ask for (RFC 2348).
pub const MAX_BLKSIZE: usize = 65464;
/// Largest request (RRQ/WRQ) accepted: RFC 2347 keeps requests within 512 bytes.
pub const MAX_REQUEST_LEN: usize = 512;
/// Largest DATA packet: the 4-byte header and the largest block.
pub const MAX_DATA_PACKET: usize = 4 + MAX_BLKSIZE;

const OP_RRQ: u16 = 1;
const OP_WRQ: u16 = 2;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet truncated: {0}")]
    Truncated(&'static str),
    #[error("unknown opcode {0}")]
    BadOpcode(u16),
    #[error("{0} is not NUL-terminated")]
    MissingNul(&'static str),
    #[error("{0} contains a byte that is not printable ASCII")]
    NonAscii(&'static str),
    #[error("empty {0}")]
    Empty(&'static str),
    #[error("unknown transfer mode {0:?}")]
    BadMode(String),
    #[error("option {0:?} has no value")]
    MissingValue(String),
    #[error("option {0:?} given twice")]
    DuplicateOption(String),
    #[error("{what} is {len} bytes, more than {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Transfer mode of a request (RFC 1350), matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Netascii,
    Octet,
    Mail,
}

impl Mode {
    fn parse(text: &str) -> Result<Mode, PacketError> {
        match text.to_ascii_lowercase().as_str() {
            "netascii" => Ok(Mode::Netascii),
            "octet" => Ok(Mode::Octet),
            "mail" => Ok(Mode::Mail),
            _ => Err(PacketError::BadMode(text.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// One option of a request or OACK; the name is in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TftpOption {
    pub name: String,
    pub value: String,
}

impl TftpOption {
    pub fn new(name: &str, value: impl fmt::Display) -> TftpOption {
        TftpOption {
            name: name.to_ascii_lowercase(),
            value: value.to_string(),
        }
    }
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    pub options: Vec<TftpOption>,
}

impl Request {
    /// The value of an option, by lower-case name.
    pub fn option(&self, name: &str) -> Option<&str> {
        find_option(&self.options, name)
    }
}

/// The value of an option in a list, by lower-case name.
pub fn find_option<'a>(options: &'a [TftpOption], name: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|o| o.name == name)
        .map(|o| o.value.as_str())
}

/// TFTP error codes (RFC 1350, RFC 2347).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionNegotiation = 8,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        self as u16
    }
}

/// A parsed packet. DATA borrows its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request),
    Wrq(Request),
    Data { block: u16, data: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: String },
    Oack(Vec<TftpOption>),
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let (head, body) = split_u16(bytes).ok_or(PacketError::Truncated("opcode"))?;
        match head {
            OP_RRQ => parse_request(bytes.len(), body).map(Packet::Rrq),
            OP_WRQ => parse_request(bytes.len(), body).map(Packet::Wrq),
            OP_DATA => parse_data(body),
            OP_ACK => parse_ack(body),
            OP_ERROR => parse_error(body),
            OP_OACK => parse_options(Fields::new(body)).map(Packet::Oack),
            other => Err(PacketError::BadOpcode(other)),
        }
    }

    /// Encodes the packet. Strings are written as given: build packets
    /// from checked values (see [`Request::validate`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Packet::Rrq(request) => encode_request(OP_RRQ, request, &mut out),
            Packet::Wrq(request) => encode_request(OP_WRQ, request, &mut out),
            Packet::Data { block, data } => {
                write_data_header(*block, &mut out);
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => out.extend_from_slice(&encode_ack(*block)),
            Packet::Error { code, message } => encode_error_into(*code, message, &mut out),
            Packet::Oack(options) => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                encode_options(options, &mut out);
            }
        }
        out
    }
}

impl Request {
    /// Checks that the request can be encoded into a packet its parser accepts.
    pub fn validate(&self) -> Result<(), PacketError> {
        let packet = Packet::Rrq(self.clone()).encode();
        Packet::parse(&packet).map(|_| ())
    }
}

/// Appends the 4-byte DATA header for `block`.
pub fn write_data_header(block: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&OP_DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// An ACK packet for `block`.
pub fn encode_ack(block: u16) -> [u8; 4] {
    let [a, b] = OP_ACK.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

/// An ERROR packet. Non-printable characters in the message become `?`.
pub fn encode_error(code: ErrorCode, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + message.len());
    encode_error_into(code.code(), message, &mut out);
    out
}

/// An OACK packet with these options, in order.
pub fn encode_oack(options: &[TftpOption]) -> Vec<u8> {
    Packet::Oack(options.to_vec()).encode()
}

fn encode_error_into(code: u16, message: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&OP_ERROR.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend(
        message
            .bytes()
            .map(|b| if is_printable(b) { b } else { b'?' }),
    );
    out.push(0);
}

fn encode_request(opcode: u16, request: &Request, out: &mut Vec<u8>) {
    out.extend_from_slice(&opcode.to_be_bytes());
    push_string(&request.filename, out);
    push_string(request.mode.as_str(), out);
    encode_options(&request.options, out);
}

fn encode_options(options: &[TftpOption], out: &mut Vec<u8>) {
    for option in options {
        push_string(&option.name, out);
        push_string(&option.value, out);
    }
}

fn push_string(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    match bytes {
        [a, b, rest @ ..] => Some((u16::from_be_bytes([*a, *b]), rest)),
        _ => None,
    }
}

fn parse_request(total_len: usize, body: &[u8]) -> Result<Request, PacketError> {
    if total_len > MAX_REQUEST_LEN {
        return Err(PacketError::TooLong {
            what: "request",
            len: total_len,
            max: MAX_REQUEST_LEN,
        });
    }
    let mut fields = Fields::new(body);
    let filename = fields
        .next_string("file name")?
        .ok_or(PacketError::Truncated("file name"))?;
    if filename.is_empty() {
        return Err(PacketError::Empty("file name"));
    }
    let mode = fields
        .next_string("mode")?
        .ok_or(PacketError::Truncated("mode"))?;
    let mode = Mode::parse(mode)?;
    let options = parse_options(fields)?;
    Ok(Request {
        filename: filename.to_string(),
        mode,
        options,
    })
}

/// Parses `name NUL value NUL` pairs to the end. Trailing NUL padding after
/// the last pair is tolerated: some PXE ROMs pad their requests.
fn parse_options(mut fields: Fields<'_>) -> Result<Vec<TftpOption>, PacketError> {
    let mut options: Vec<TftpOption> = Vec::new();
    while !fields.only_padding_left() {
        let name = fields
            .next_string("option name")?
            .ok_or(PacketError::Truncated("option name"))?;
        if name.is_empty() {
            return Err(PacketError::Empty("option name"));
        }
        let name = name.to_ascii_lowercase();
        let value = match fields.next_string("option value")? {
            Some(value) if !value.is_empty() => value,
            _ => return Err(PacketError::MissingValue(name)),
        };
        if options.iter().any(|o| o.name == name) {
            return Err(PacketError::DuplicateOption(name));
        }
        options.push(TftpOption {
            name,
            value: value.to_string(),
        });
    }
    Ok(options)
}

fn parse_data(body: &[u8]) -> Result<Packet<'_>, PacketError> {
    let (block, data) = split_u16(body).ok_or(PacketError::Truncated("block number"))?;
    if data.len() > MAX_BLKSIZE {
        return Err(PacketError::TooLong {
            what: "data block",
            len: data.len(),
            max: MAX_BLKSIZE,
        });
    }
    Ok(Packet::Data { block, data })
}

/// Bytes after the block number are ignored: some clients pad ACKs.
fn parse_ack(body: &[u8]) -> Result<Packet<'_>, PacketError> {
    let (block, _) = split_u16(body).ok_or(PacketError::Truncated("block number"))?;
    Ok(Packet::Ack { block })
}

/// The message is decoded leniently (clients send all sorts), but it must
/// be NUL-terminated.
fn parse_error(body: &[u8]) -> Result<Packet<'_>, PacketError> {
    let (code, rest) = split_u16(body).ok_or(PacketError::Truncated("error code"))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(PacketError::MissingNul("error message"))?;
    let message = String::from_utf8_lossy(&rest[..end]).into_owned();
    Ok(Packet::Error { code, message })
}

fn is_printable(byte: u8) -> bool {
    (0x20..0x7f).contains(&byte)
}

/// NUL-terminated ASCII strings, one after the other.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Fields<'a> {
        Fields { rest }
    }

    fn only_padding_left(&self) -> bool {
        self.rest.iter().all(|&b| b == 0)
    }

    /// The next string, `None` at the end of the packet.
    fn next_string(&mut self, what: &'static str) -> Result<Option<&'a str>, PacketError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(PacketError::MissingNul(what))?;
        let (field, rest) = self.rest.split_at(end);
        self.rest = &rest[1..];
        if !field.iter().all(|&b| is_printable(b)) {
            return Err(PacketError::NonAscii(what));
        }
        // Printable ASCII is valid UTF-8.
        std::str::from_utf8(field)
            .map(Some)
            .map_err(|_| PacketError::NonAscii(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![0, 1];
        for part in parts {
            out.extend_from_slice(part);
            out.push(0);
        }
        out
    }

    #[test]
    fn parses_plain_rrq() {
        let bytes = rrq(&[b"pxelinux.0", b"octet"]);
        let packet = Packet::parse(&bytes).unwrap();
        assert_eq!(
            packet,
            Packet::Rrq(Request {
                filename: "pxelinux.0".into(),
                mode: Mode::Octet,
                options: vec![],
            })
        );
    }

    #[test]
    fn mode_and_option_names_are_case_insensitive() {
        let bytes = rrq(&[b"f", b"OcTeT", b"BLKSIZE", b"1468", b"TSize", b"0"]);
        let Packet::Rrq(request) = Packet::parse(&bytes).unwrap() else {
            panic!("not an RRQ")
        };
        assert_eq!(request.mode, Mode::Octet);
        assert_eq!(request.option("blksize"), Some("1468"));
        assert_eq!(request.option("tsize"), Some("0"));
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"NetAscii"])).map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn parses_wrq_data_ack_error_oack() {
        assert!(matches!(
            Packet::parse(&[0, 2, b'f', 0, b'o', b'c', b't', b'e', b't', 0]),
            Ok(Packet::Wrq(_))
        ));
        assert_eq!(
            Packet::parse(&[0, 3, 1, 2, 9, 9]),
            Ok(Packet::Data {
                block: 0x0102,
                data: &[9, 9]
            })
        );
        assert_eq!(
            Packet::parse(&[0, 3, 0, 7]),
            Ok(Packet::Data {
                block: 7,
                data: &[]
            })
        );
        assert_eq!(
            Packet::parse(&[0, 4, 0xff, 0xff]),
            Ok(Packet::Ack { block: 65535 })
        );
        assert_eq!(
            Packet::parse(&[0, 5, 0, 1, b'n', b'o', 0]),
            Ok(Packet::Error {
                code: 1,
                message: "no".into()
            })
        );
        assert_eq!(
            Packet::parse(&[0, 6, b'b', 0, b'8', 0]),
            Ok(Packet::Oack(vec![TftpOption::new("b", 8)]))
        );
    }

    #[test]
    fn ack_padding_is_ignored() {
        assert_eq!(
            Packet::parse(&[0, 4, 0, 3, 0, 0, 0]),
            Ok(Packet::Ack { block: 3 })
        );
    }

    #[test]
    fn request_padding_is_ignored() {
        let mut bytes = rrq(&[b"f", b"octet", b"tsize", b"0"]);
        bytes.extend_from_slice(&[0, 0, 0]);
        let Packet::Rrq(request) = Packet::parse(&bytes).unwrap() else {
            panic!("not an RRQ")
        };
        assert_eq!(request.options.len(), 1);
    }

    #[test]
    fn truncated_packets_are_refused() {
        assert_eq!(Packet::parse(&[]), Err(PacketError::Truncated("opcode")));
        assert_eq!(Packet::parse(&[0]), Err(PacketError::Truncated("opcode")));
        assert_eq!(
            Packet::parse(&[0, 3, 1]),
            Err(PacketError::Truncated("block number"))
        );
        assert_eq!(
            Packet::parse(&[0, 4]),
            Err(PacketError::Truncated("block number"))
        );
        assert_eq!(
            Packet::parse(&[0, 5, 0]),
            Err(PacketError::Truncated("error code"))
        );
        assert_eq!(
            Packet::parse(&[0, 1]),
            Err(PacketError::Truncated("file name"))
        );
        assert_eq!(
            Packet::parse(&rrq(&[b"f"])),
            Err(PacketError::Truncated("mode"))
        );
    }

    #[test]
    fn missing_nul_is_refused() {
        assert_eq!(
            Packet::parse(&[0, 1, b'f']),
            Err(PacketError::MissingNul("file name"))
        );
        assert_eq!(
            Packet::parse(&[0, 1, b'f', 0, b'o', b'c']),
            Err(PacketError::MissingNul("mode"))
        );
        let mut bytes = rrq(&[b"f", b"octet", b"tsize"]);
        bytes.extend_from_slice(b"0");
        assert_eq!(
            Packet::parse(&bytes),
            Err(PacketError::MissingNul("option value"))
        );
        assert_eq!(
            Packet::parse(&[0, 5, 0, 0, b'x']),
            Err(PacketError::MissingNul("error message"))
        );
    }

    #[test]
    fn bad_opcodes_are_refused() {
        for op in [0u16, 7, 255, 0xffff] {
            let [a, b] = op.to_be_bytes();
            assert_eq!(
                Packet::parse(&[a, b, 0, 0]),
                Err(PacketError::BadOpcode(op))
            );
        }
    }

    #[test]
    fn bad_mode_is_refused() {
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"binary"])),
            Err(PacketError::BadMode("binary".into()))
        );
    }

    #[test]
    fn non_ascii_and_control_bytes_are_refused() {
        assert_eq!(
            Packet::parse(&rrq(&[b"f\xc3\xa9", b"octet"])),
            Err(PacketError::NonAscii("file name"))
        );
        assert_eq!(
            Packet::parse(&rrq(&[b"a\nb", b"octet"])),
            Err(PacketError::NonAscii("file name"))
        );
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"octet", b"bl\x7fk", b"1"])),
            Err(PacketError::NonAscii("option name"))
        );
    }

    #[test]
    fn nul_inside_a_name_splits_fields_and_fails() {
        // "a\0b" as a name makes "b" the mode: refused, not silently served.
        assert_eq!(
            Packet::parse(&rrq(&[b"a\0b", b"octet"])),
            Err(PacketError::BadMode("b".into()))
        );
    }

    #[test]
    fn empty_fields_are_refused() {
        assert_eq!(
            Packet::parse(&rrq(&[b"", b"octet"])),
            Err(PacketError::Empty("file name"))
        );
        let mut bytes = rrq(&[b"f", b"octet"]);
        bytes.extend_from_slice(&[0, b'1', 0]);
        assert_eq!(
            Packet::parse(&bytes),
            Err(PacketError::Empty("option name"))
        );
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"octet", b"tsize"])),
            Err(PacketError::MissingValue("tsize".into()))
        );
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"octet", b"tsize", b""])),
            Err(PacketError::MissingValue("tsize".into()))
        );
    }

    #[test]
    fn duplicate_options_are_refused_in_any_case() {
        assert_eq!(
            Packet::parse(&rrq(&[b"f", b"octet", b"blksize", b"1", b"BlkSize", b"2"])),
            Err(PacketError::DuplicateOption("blksize".into()))
        );
    }

    #[test]
    fn over_long_packets_are_refused() {
        let name = vec![b'a'; MAX_REQUEST_LEN];
        assert!(matches!(
            Packet::parse(&rrq(&[&name, b"octet"])),
            Err(PacketError::TooLong {
                what: "request",
                ..
            })
        ));
        let mut data = vec![0, 3, 0, 1];
        data.resize(MAX_DATA_PACKET + 1, 0);
        assert!(matches!(
            Packet::parse(&data),
            Err(PacketError::TooLong {
                what: "data block",
                ..
            })
        ));
        data.truncate(MAX_DATA_PACKET);
        assert!(Packet::parse(&data).is_ok());
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let request = Request {
            filename: "dir/file".into(),
            mode: Mode::Octet,
            options: vec![
                TftpOption::new("blksize", 1468),
                TftpOption::new("windowsize", 16),
            ],
        };
        let packets = [
            Packet::Rrq(request.clone()),
            Packet::Wrq(request),
            Packet::Data {
                block: 9,
                data: b"abc",
            },
            Packet::Ack { block: 0 },
            Packet::Error {
                code: 5,
                message: "Unknown transfer ID".into(),
            },
            Packet::Oack(vec![TftpOption::new("tsize", 12)]),
        ];
        for packet in packets {
            assert_eq!(Packet::parse(&packet.encode()), Ok(packet.clone()));
        }
    }

    #[test]
    fn error_messages_are_sanitised_on_encode() {
        let bytes = encode_error(ErrorCode::NotDefined, "a\0b\u{e9}");
        assert_eq!(
            Packet::parse(&bytes),
            Ok(Packet::Error {
                code: 0,
                message: "a?b??".into()
            })
        );
    }

    #[test]
    fn validate_catches_unencodable_requests() {
        let mut request = Request {
            filename: "a\0b".into(),
            mode: Mode::Octet,
            options: vec![],
        };
        assert!(request.validate().is_err());
        request.filename = "ok".into();
        assert_eq!(request.validate(), Ok(()));
    }
}
