//! One read transfer (the server sending a file), sans-IO.
//!
//! The caller owns the socket, the timer and the file. It calls [`start`]
//! and then, for each event, [`on_packet`], [`on_read`] or [`on_timeout`],
//! and carries out the returned [`Action`]:
//!
//! - `Transmit { wait }`: send [`datagrams`] to the client, then wait for a
//!   packet for at most `wait` (re-arming the timer);
//! - `Read { offset, len }`: read exactly `len` bytes at `offset` of the file
//!   (fewer only at its end) and hand them to [`on_read`] before anything else;
//! - `Wait`: nothing to send, keep the timer as it was (an ignored packet:
//!   duplicates must not extend the transfer's life);
//! - `Done` / `Failed`: the end; on `Failed { notify: true, .. }` send
//!   [`datagrams`] (an ERROR packet) first.
//!
//! The transfer keeps the DATA packets of the current window, so memory is
//! bounded by `windowsize * (blksize + 4)`. Windows follow RFC 7440: an ACK
//! for block n of the window starts the next window at n + 1, so a client
//! that saw a gap and acknowledged the last block it got in order is sent the
//! rest again; duplicate and old ACKs are ignored and the timer resends the
//! whole unacknowledged window. Block numbers are 16 bits on the wire and
//! roll over from 65535 to 0.
//!
//! [`start`]: ReadTransfer::start
//! [`on_packet`]: ReadTransfer::on_packet
//! [`on_read`]: ReadTransfer::on_read
//! [`on_timeout`]: ReadTransfer::on_timeout
//! [`datagrams`]: ReadTransfer::datagrams

use std::io;
use std::time::Duration;

use super::options::Negotiated;
use super::packet::{encode_error, encode_oack, write_data_header, ErrorCode, Packet};

/// Why a transfer ended without the whole file acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("no answer from the client after {0} retries")]
    TimedOut(u32),
    #[error("client sent error {code}: {message}")]
    ClientError { code: u16, message: String },
    #[error("reading the file failed: {0}")]
    Read(String),
    #[error(
        "file changed while being served: wanted {wanted} bytes at offset {offset}, got {got}"
    )]
    ShortRead {
        offset: u64,
        wanted: usize,
        got: usize,
    },
}

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Transmit {
        wait: Duration,
    },
    Read {
        offset: u64,
        len: usize,
    },
    Wait,
    Done {
        bytes: u64,
    },
    Failed {
        error: TransferError,
        bytes: u64,
        notify: bool,
    },
}

/// Datagrams laid out back to back, each `stride` bytes but the last,
/// which may be shorter.
#[derive(Debug, Clone, Copy)]
pub struct Datagrams<'a> {
    bytes: &'a [u8],
    stride: usize,
}

impl<'a> Datagrams<'a> {
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        self.bytes.chunks(self.stride.max(1))
    }

    /// All the datagrams, back to back.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The size of every datagram but the last.
    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn count(&self) -> usize {
        self.bytes.len().div_ceil(self.stride.max(1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// OACK sent, waiting for ACK 0.
    Negotiating,
    /// A read of `blocks` blocks from block `first` (`len` bytes) is due.
    Reading {
        first: u64,
        blocks: u64,
        len: usize,
    },
    /// The window is sent, waiting for an ACK.
    Waiting,
    Finished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outgoing {
    Nothing,
    Control(Vec<u8>),
    Window,
}

/// Encoded DATA packets for blocks `first .. first + count`.
#[derive(Debug, Default)]
struct Window {
    packets: Vec<u8>,
    first: u64,
    count: u64,
}

impl Window {
    fn end(&self) -> u64 {
        self.first + self.count
    }

    /// Drops the packets of blocks before `from`.
    fn keep_from(&mut self, from: u64, stride: usize) {
        if from >= self.end() {
            self.packets.clear();
            self.count = 0;
        } else if from > self.first {
            let dropped = from - self.first;
            let bytes = (dropped as usize)
                .saturating_mul(stride)
                .min(self.packets.len());
            self.packets.drain(..bytes);
            self.count -= dropped;
        }
        self.first = from;
    }
}

/// A read transfer: see the module docs.
#[derive(Debug)]
pub struct ReadTransfer {
    blksize: usize,
    windowsize: u64,
    timeout: Duration,
    max_retries: u32,
    size: u64,
    /// The final block (short, maybe empty), counting from 1.
    last_block: u64,
    oack: Option<Vec<u8>>,
    state: State,
    /// The first block not yet acknowledged.
    base: u64,
    retries: u32,
    window: Window,
    outgoing: Outgoing,
}

impl ReadTransfer {
    /// A transfer of a file of `size` bytes with negotiated parameters; it
    /// gives up after `max_retries` resends without progress.
    pub fn new(negotiated: &Negotiated, size: u64, max_retries: u32) -> ReadTransfer {
        let blksize = usize::from(negotiated.blksize.max(1));
        ReadTransfer {
            blksize,
            windowsize: u64::from(negotiated.windowsize.max(1)),
            timeout: negotiated.timeout,
            max_retries,
            size,
            last_block: size / blksize as u64 + 1,
            oack: (!negotiated.acknowledged.is_empty())
                .then(|| encode_oack(&negotiated.acknowledged)),
            state: State::Negotiating,
            base: 1,
            retries: 0,
            window: Window {
                first: 1,
                ..Window::default()
            },
            outgoing: Outgoing::Nothing,
        }
    }

    /// Sends the OACK, or starts with DATA 1 when no option was acknowledged.
    pub fn start(&mut self) -> Action {
        match &self.oack {
            Some(oack) => {
                self.state = State::Negotiating;
                self.outgoing = Outgoing::Control(oack.clone());
                Action::Transmit { wait: self.timeout }
            }
            None => self.fill_window(1),
        }
    }

    /// A datagram from the client's TID. Unparseable and unexpected
    /// packets are ignored.
    pub fn on_packet(&mut self, bytes: &[u8]) -> Action {
        if self.state == State::Finished {
            return Action::Wait;
        }
        match Packet::parse(bytes) {
            Ok(Packet::Ack { block }) => self.on_ack(block),
            Ok(Packet::Error { code, message }) => {
                self.fail(TransferError::ClientError { code, message }, false)
            }
            _ => Action::Wait,
        }
    }

    /// The result of the last `Read` action.
    pub fn on_read(&mut self, result: io::Result<&[u8]>) -> Action {
        let State::Reading { first, blocks, len } = self.state else {
            return Action::Wait;
        };
        let offset = self.offset_of(first);
        match result {
            Err(e) => self.fail(TransferError::Read(e.to_string()), true),
            Ok(data) if data.len() != len => {
                let error = TransferError::ShortRead {
                    offset,
                    wanted: len,
                    got: data.len(),
                };
                self.fail(error, true)
            }
            Ok(data) => {
                self.append_blocks(first, blocks, data);
                self.transmit_window()
            }
        }
    }

    /// The timer armed by the last `Transmit` expired.
    pub fn on_timeout(&mut self) -> Action {
        if !matches!(self.state, State::Negotiating | State::Waiting) {
            return Action::Wait;
        }
        self.retries += 1;
        if self.retries > self.max_retries {
            return self.fail(TransferError::TimedOut(self.max_retries), false);
        }
        if self.state == State::Negotiating {
            if let Some(oack) = &self.oack {
                self.outgoing = Outgoing::Control(oack.clone());
            }
        } else {
            self.outgoing = Outgoing::Window;
        }
        Action::Transmit { wait: self.timeout }
    }

    /// What to send for the last `Transmit` or notifying `Failed`.
    pub fn datagrams(&self) -> Datagrams<'_> {
        match &self.outgoing {
            Outgoing::Nothing => Datagrams {
                bytes: &[],
                stride: 1,
            },
            Outgoing::Control(packet) => Datagrams {
                bytes: packet,
                stride: packet.len(),
            },
            Outgoing::Window => Datagrams {
                bytes: &self.window.packets,
                stride: self.blksize + 4,
            },
        }
    }

    /// File bytes the client has acknowledged.
    pub fn bytes_acknowledged(&self) -> u64 {
        self.offset_of(self.base).min(self.size)
    }

    /// The OACK is out and ACK 0 has not come yet.
    pub fn is_negotiating(&self) -> bool {
        self.state == State::Negotiating
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    pub fn blksize(&self) -> usize {
        self.blksize
    }

    pub fn windowsize(&self) -> u64 {
        self.windowsize
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn offset_of(&self, block: u64) -> u64 {
        (block - 1).saturating_mul(self.blksize as u64)
    }

    fn on_ack(&mut self, wire_block: u16) -> Action {
        match self.state {
            State::Negotiating if wire_block == 0 => {
                self.retries = 0;
                self.fill_window(1)
            }
            State::Waiting => match self.acked_block(wire_block) {
                Some(block) => self.advance(block),
                None => Action::Wait,
            },
            _ => Action::Wait,
        }
    }

    /// The block of the sent window that a wire block number acknowledges;
    /// `None` for a duplicate of the last ACK, an old one, or a block not
    /// sent yet.
    fn acked_block(&self, wire_block: u16) -> Option<u64> {
        let last_acked = self.base - 1;
        let ahead = u64::from(wire_block.wrapping_sub(last_acked as u16));
        let block = last_acked + ahead;
        (ahead > 0 && block < self.window.end()).then_some(block)
    }

    fn advance(&mut self, acked: u64) -> Action {
        self.retries = 0;
        self.base = acked + 1;
        if acked >= self.last_block {
            self.state = State::Finished;
            self.outgoing = Outgoing::Nothing;
            return Action::Done { bytes: self.size };
        }
        self.fill_window(self.base)
    }

    /// Prepares the window starting at block `from`, keeping packets
    /// already built and asking for a read of the rest.
    fn fill_window(&mut self, from: u64) -> Action {
        let end = from
            .saturating_add(self.windowsize)
            .min(self.last_block + 1);
        self.window.keep_from(from, self.blksize + 4);
        let first_missing = self.window.end();
        if first_missing >= end {
            return self.transmit_window();
        }
        let offset = self.offset_of(first_missing);
        let wanted = (end - first_missing).saturating_mul(self.blksize as u64);
        let len = wanted.min(self.size - offset) as usize;
        self.state = State::Reading {
            first: first_missing,
            blocks: end - first_missing,
            len,
        };
        if len == 0 {
            // Only the empty final block is missing: nothing to read.
            return self.on_read(Ok(&[]));
        }
        Action::Read { offset, len }
    }

    fn append_blocks(&mut self, first: u64, blocks: u64, data: &[u8]) {
        let packets = &mut self.window.packets;
        packets.reserve(blocks as usize * (self.blksize + 4));
        for i in 0..blocks as usize {
            let start = (i * self.blksize).min(data.len());
            let stop = (start + self.blksize).min(data.len());
            write_data_header((first + i as u64) as u16, packets);
            packets.extend_from_slice(&data[start..stop]);
        }
        self.window.count += blocks;
    }

    fn transmit_window(&mut self) -> Action {
        self.state = State::Waiting;
        self.outgoing = Outgoing::Window;
        Action::Transmit { wait: self.timeout }
    }

    fn fail(&mut self, error: TransferError, notify: bool) -> Action {
        self.outgoing = if notify {
            Outgoing::Control(encode_error(ErrorCode::NotDefined, &error.to_string()))
        } else {
            Outgoing::Nothing
        };
        self.state = State::Finished;
        Action::Failed {
            error,
            bytes: self.bytes_acknowledged(),
            notify,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::options::{negotiate, Limits};
    use crate::tftp::packet::{encode_ack, TftpOption};

    /// Synthetic file content: a byte pattern that does not repeat on block
    /// boundaries.
    fn byte_at(offset: u64) -> u8 {
        (offset % 251) as u8
    }

    fn read(offset: u64, len: usize, size: u64) -> Vec<u8> {
        let end = (offset + len as u64).min(size);
        (offset..end).map(byte_at).collect()
    }

    fn negotiated(blksize: u16, windowsize: u16) -> Negotiated {
        Negotiated {
            blksize,
            windowsize,
            timeout: Duration::from_secs(1),
            acknowledged: vec![],
        }
    }

    /// Drives the transfer through reads, returning the next non-read
    /// action and the offsets read.
    fn settle(
        t: &mut ReadTransfer,
        mut action: Action,
        size: u64,
        reads: &mut Vec<(u64, usize)>,
    ) -> Action {
        while let Action::Read { offset, len } = action {
            reads.push((offset, len));
            let data = read(offset, len, size);
            action = t.on_read(Ok(&data));
        }
        action
    }

    /// (block, payload) of each datagram to send.
    fn sent(t: &ReadTransfer) -> Vec<(u16, Vec<u8>)> {
        t.datagrams()
            .iter()
            .map(|d| match Packet::parse(d).unwrap() {
                Packet::Data { block, data } => (block, data.to_vec()),
                other => panic!("not DATA: {other:?}"),
            })
            .collect()
    }

    fn blocks(t: &ReadTransfer) -> Vec<u16> {
        sent(t).into_iter().map(|(b, _)| b).collect()
    }

    fn ack(t: &mut ReadTransfer, block: u16, size: u64) -> Action {
        let action = t.on_packet(&encode_ack(block));
        settle(t, action, size, &mut vec![])
    }

    const WAIT: Action = Action::Transmit {
        wait: Duration::from_secs(1),
    };

    #[test]
    fn lock_step_without_options_starts_with_data_1() {
        let size = 1000;
        let mut t = ReadTransfer::new(&negotiated(512, 1), size, 5);
        let mut reads = vec![];
        let action = t.start();
        assert_eq!(
            action,
            Action::Read {
                offset: 0,
                len: 512
            }
        );
        assert_eq!(settle(&mut t, action, size, &mut reads), WAIT);
        assert_eq!(sent(&t), vec![(1, read(0, 512, size))]);
        assert_eq!(ack(&mut t, 1, size), WAIT);
        assert_eq!(sent(&t), vec![(2, read(512, 488, size))]);
        assert_eq!(ack(&mut t, 2, size), Action::Done { bytes: 1000 });
        assert!(t.is_finished());
        assert_eq!(t.on_packet(&encode_ack(2)), Action::Wait);
    }

    #[test]
    fn exact_multiple_of_blksize_ends_with_an_empty_block() {
        let size = 1024;
        let mut t = ReadTransfer::new(&negotiated(512, 1), size, 5);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        ack(&mut t, 1, size);
        // Block 3 is empty and needs no read.
        assert_eq!(t.on_packet(&encode_ack(2)), WAIT);
        assert_eq!(sent(&t), vec![(3, vec![])]);
        assert_eq!(ack(&mut t, 3, size), Action::Done { bytes: 1024 });
    }

    #[test]
    fn empty_file_is_one_empty_block() {
        let mut t = ReadTransfer::new(&negotiated(512, 4), 0, 5);
        assert_eq!(t.start(), WAIT);
        assert_eq!(sent(&t), vec![(1, vec![])]);
        assert_eq!(t.on_packet(&encode_ack(1)), Action::Done { bytes: 0 });
    }

    #[test]
    fn oack_is_sent_and_data_waits_for_ack_0() {
        let requested = vec![
            TftpOption::new("blksize", 1000),
            TftpOption::new("tsize", 0),
        ];
        let n = negotiate(&requested, &Limits::default(), Some(1500));
        let mut t = ReadTransfer::new(&n, 1500, 5);
        assert_eq!(t.start(), WAIT);
        let oack: Vec<u8> = t.datagrams().as_bytes().to_vec();
        assert_eq!(
            Packet::parse(&oack).unwrap(),
            Packet::Oack(vec![
                TftpOption::new("blksize", 1000),
                TftpOption::new("tsize", 1500)
            ])
        );
        assert_eq!(t.on_packet(&encode_ack(1)), Action::Wait);
        assert_eq!(t.on_timeout(), WAIT);
        assert_eq!(t.datagrams().as_bytes(), &oack[..]);
        assert_eq!(
            t.on_packet(&encode_ack(0)),
            Action::Read {
                offset: 0,
                len: 1000
            }
        );
        assert_eq!(t.on_read(Ok(&read(0, 1000, 1500))), WAIT);
        assert_eq!(blocks(&t), vec![1]);
        // A repeated ACK 0 is a duplicate now.
        assert_eq!(t.on_packet(&encode_ack(0)), Action::Wait);
    }

    #[test]
    fn windows_slide_and_resume_after_a_gap() {
        let size = 10 * 512 + 100; // blocks 1..=11
        let mut t = ReadTransfer::new(&negotiated(512, 4), size, 5);
        let mut reads = vec![];
        let action = t.start();
        assert_eq!(settle(&mut t, action, size, &mut reads), WAIT);
        assert_eq!(blocks(&t), vec![1, 2, 3, 4]);
        assert_eq!(ack(&mut t, 4, size), WAIT);
        assert_eq!(blocks(&t), vec![5, 6, 7, 8]);
        // The client lost block 7 and acknowledges 6: the next window
        // starts at 7, and only blocks 9 and 10 are read.
        let action = t.on_packet(&encode_ack(6));
        assert_eq!(
            action,
            Action::Read {
                offset: 8 * 512,
                len: 1024
            }
        );
        settle(&mut t, action, size, &mut reads);
        assert_eq!(blocks(&t), vec![7, 8, 9, 10]);
        for (block, data) in sent(&t) {
            assert_eq!(data, read((u64::from(block) - 1) * 512, 512, size));
        }
        assert_eq!(t.bytes_acknowledged(), 6 * 512);
        assert_eq!(ack(&mut t, 10, size), WAIT);
        assert_eq!(sent(&t), vec![(11, read(10 * 512, 100, size))]);
        assert_eq!(ack(&mut t, 11, size), Action::Done { bytes: size });
    }

    #[test]
    fn duplicate_old_and_future_acks_are_ignored() {
        let size = 20 * 512;
        let mut t = ReadTransfer::new(&negotiated(512, 4), size, 5);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        ack(&mut t, 4, size);
        assert_eq!(blocks(&t), vec![5, 6, 7, 8]);
        for stale in [4, 3, 0, 9, 100, 65535] {
            assert_eq!(t.on_packet(&encode_ack(stale)), Action::Wait, "ack {stale}");
        }
        assert_eq!(blocks(&t), vec![5, 6, 7, 8]);
        ack(&mut t, 8, size);
        assert_eq!(blocks(&t), vec![9, 10, 11, 12]);
    }

    #[test]
    fn garbage_and_other_packets_are_ignored() {
        let size = 2000;
        let mut t = ReadTransfer::new(&negotiated(512, 2), size, 5);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        for junk in [
            &[][..],
            &[0, 4, 0],
            &[0, 3, 0, 1, 1],
            &[0, 1, b'x', 0, b'o', b'c', b't', b'e', b't', 0],
            &[9, 9],
        ] {
            assert_eq!(t.on_packet(junk), Action::Wait);
        }
        assert_eq!(blocks(&t), vec![1, 2]);
    }

    #[test]
    fn block_numbers_roll_over_past_65535() {
        // 33 MiB at 512-byte blocks is 67584 blocks, past 65535.
        let size = 33 * 1024 * 1024 + 17;
        let mut t = ReadTransfer::new(&negotiated(512, 16), size, 5);
        let action = t.start();
        let mut action = settle(&mut t, action, size, &mut vec![]);
        let mut expected: u64 = 1;
        let mut received: u64 = 0;
        let mut saw_zero = false;
        while action == WAIT {
            let mut last = 0;
            for (block, data) in sent(&t) {
                assert_eq!(block, expected as u16);
                assert_eq!(
                    data.first().copied(),
                    (received < size).then(|| byte_at(received))
                );
                saw_zero |= block == 0 && expected == 65536;
                received += data.len() as u64;
                last = block;
                expected += 1;
            }
            action = ack(&mut t, last, size);
        }
        assert_eq!(action, Action::Done { bytes: size });
        assert_eq!(received, size);
        assert!(saw_zero, "block 65536 is sent as 0");
        assert_eq!(expected - 1, size / 512 + 1);
    }

    #[test]
    fn timeouts_resend_the_window_then_fail() {
        let size = 5000;
        let mut t = ReadTransfer::new(&negotiated(512, 4), size, 3);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        let first: Vec<u8> = t.datagrams().as_bytes().to_vec();
        for _ in 0..3 {
            assert_eq!(t.on_timeout(), WAIT);
            assert_eq!(t.datagrams().as_bytes(), &first[..]);
        }
        assert_eq!(
            t.on_timeout(),
            Action::Failed {
                error: TransferError::TimedOut(3),
                bytes: 0,
                notify: false
            }
        );
        assert!(t.is_finished());
    }

    #[test]
    fn progress_resets_the_retry_count() {
        let size = 5000;
        let mut t = ReadTransfer::new(&negotiated(512, 2), size, 2);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        assert_eq!(t.on_timeout(), WAIT);
        assert_eq!(t.on_timeout(), WAIT);
        // Block 1 of the resent window arrived: progress.
        assert_eq!(ack(&mut t, 1, size), WAIT);
        assert_eq!(blocks(&t), vec![2, 3]);
        assert_eq!(t.on_timeout(), WAIT);
        assert_eq!(t.on_timeout(), WAIT);
        assert!(matches!(
            t.on_timeout(),
            Action::Failed {
                error: TransferError::TimedOut(2),
                bytes: 512,
                ..
            }
        ));
    }

    #[test]
    fn timeout_without_a_timer_is_ignored() {
        let mut t = ReadTransfer::new(&negotiated(512, 1), 100, 0);
        assert_eq!(
            t.start(),
            Action::Read {
                offset: 0,
                len: 100
            }
        );
        assert_eq!(t.on_timeout(), Action::Wait);
        assert_eq!(t.on_packet(&encode_ack(1)), Action::Wait);
    }

    #[test]
    fn client_error_ends_the_transfer() {
        let requested = vec![TftpOption::new("tsize", 0)];
        let n = negotiate(&requested, &Limits::default(), Some(100));
        let mut t = ReadTransfer::new(&n, 100, 5);
        t.start();
        let error = encode_error(ErrorCode::OptionNegotiation, "just probing the size");
        assert_eq!(
            t.on_packet(&error),
            Action::Failed {
                error: TransferError::ClientError {
                    code: 8,
                    message: "just probing the size".into()
                },
                bytes: 0,
                notify: false,
            }
        );
        assert_eq!(t.datagrams().count(), 0);
    }

    #[test]
    fn read_errors_and_short_reads_fail_and_notify_the_client() {
        let mut t = ReadTransfer::new(&negotiated(512, 1), 1000, 5);
        t.start();
        let action = t.on_read(Err(io::Error::other("disk on fire")));
        assert!(matches!(
            action,
            Action::Failed {
                error: TransferError::Read(_),
                notify: true,
                ..
            }
        ));
        let notice = t.datagrams().as_bytes().to_vec();
        assert!(matches!(
            Packet::parse(&notice),
            Ok(Packet::Error { code: 0, .. })
        ));

        let mut t = ReadTransfer::new(&negotiated(512, 1), 1000, 5);
        t.start();
        assert_eq!(
            t.on_read(Ok(&[1, 2, 3])),
            Action::Failed {
                error: TransferError::ShortRead {
                    offset: 0,
                    wanted: 512,
                    got: 3
                },
                bytes: 0,
                notify: true
            }
        );
    }

    #[test]
    fn datagrams_never_exceed_blksize_plus_header() {
        let size = 3 * 8 + 5;
        let mut t = ReadTransfer::new(&negotiated(8, 8), size, 5);
        let action = t.start();
        settle(&mut t, action, size, &mut vec![]);
        let lens: Vec<usize> = t.datagrams().iter().map(<[u8]>::len).collect();
        assert_eq!(lens, vec![12, 12, 12, 9]);
        assert_eq!(t.datagrams().count(), 4);
        assert_eq!(t.datagrams().stride(), 12);
    }
}
