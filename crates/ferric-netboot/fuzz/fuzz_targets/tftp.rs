//! TFTP: the packet parser, the path checks, and a read transfer fed
//! arbitrary client packets, timeouts and reads.
#![no_main]

use std::path::{Component, Path};
use std::time::Duration;

use ferric_netboot::tftp::options::{negotiate, Limits};
use ferric_netboot::tftp::packet::{encode_ack, Packet, TftpOption};
use ferric_netboot::tftp::path::resolve;
use ferric_netboot::tftp::transfer::{Action, ReadTransfer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_packet(data);
    check_path(data);
    check_transfer(data);
});

fn check_packet(data: &[u8]) {
    let Ok(packet) = Packet::parse(data) else { return };
    // Error messages are decoded leniently and sanitised on encode, so
    // only the other packets must round-trip exactly.
    if !matches!(packet, Packet::Error { .. }) {
        let again = packet.encode();
        assert_eq!(Packet::parse(&again).ok(), Some(packet));
    }
}

fn check_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for root in ["/srv/tftp", "/"] {
        if let Ok(relative) = resolve(Path::new(root), text) {
            assert!(!relative.as_os_str().is_empty());
            assert!(relative
                .components()
                .all(|c| matches!(c, Component::Normal(_))), "{text:?} -> {relative:?}");
        }
    }
}

/// Layout: 2 bytes blksize, 1 byte windowsize, 3 bytes file size, 1 byte
/// option flags, then events: 0 timeout, 1 ACK (2 bytes), 2 packet (1 byte
/// length then bytes), 3 a failing read, 4 a short read next time.
fn check_transfer(data: &[u8]) {
    let [b0, b1, w, s0, s1, s2, flags, events @ ..] = data else { return };
    let size = u64::from(u32::from_be_bytes([0, *s0, *s1, *s2]));
    let mut requested = vec![
        TftpOption::new("blksize", u16::from_be_bytes([*b0, *b1])),
        TftpOption::new("windowsize", w),
    ];
    if flags & 1 != 0 {
        requested.push(TftpOption::new("tsize", 0));
    }
    let limits = Limits { max_blksize: 65464, max_windowsize: 32, timeouts: 1..=255, default_timeout: Duration::from_secs(1) };
    let negotiated = negotiate(&requested, &limits, Some(size));
    let mut transfer = ReadTransfer::new(&negotiated, size, u32::from(flags >> 4));
    let blksize = transfer.blksize();
    let windowsize = transfer.windowsize() as usize;
    let mut short_next = false;
    let mut action = transfer.start();
    let mut rest = events;
    for _ in 0..10_000 {
        action = match action {
            Action::Read { offset, len } => {
                assert!(offset + len as u64 <= size);
                assert!(len <= windowsize * blksize);
                if std::mem::take(&mut short_next) && len > 0 {
                    transfer.on_read(Ok(&vec![7u8; len - 1]))
                } else {
                    transfer.on_read(Ok(&vec![7u8; len]))
                }
            }
            Action::Transmit { .. } => {
                let datagrams = transfer.datagrams();
                assert!(datagrams.count() <= windowsize.max(1));
                for datagram in datagrams.iter() {
                    match Packet::parse(datagram) {
                        Ok(Packet::Data { data, .. }) => assert!(data.len() <= blksize),
                        Ok(Packet::Oack(_)) => assert_eq!(datagrams.count(), 1),
                        other => panic!("sent {other:?}"),
                    }
                }
                Action::Wait
            }
            Action::Done { bytes } => {
                assert_eq!(bytes, size);
                return;
            }
            Action::Failed { bytes, .. } => {
                assert!(bytes <= size);
                assert!(transfer.is_finished());
                return;
            }
            Action::Wait => match rest {
                [0, tail @ ..] => {
                    rest = tail;
                    transfer.on_timeout()
                }
                [1, hi, lo, tail @ ..] => {
                    rest = tail;
                    transfer.on_packet(&encode_ack(u16::from_be_bytes([*hi, *lo])))
                }
                [2, len, tail @ ..] => {
                    let (packet, tail) = tail.split_at(usize::from(*len).min(tail.len()));
                    rest = tail;
                    transfer.on_packet(packet)
                }
                [3, tail @ ..] => {
                    rest = tail;
                    transfer.on_read(Err(std::io::Error::other("fuzz")))
                }
                [4, tail @ ..] => {
                    rest = tail;
                    short_next = true;
                    Action::Wait
                }
                [_, tail @ ..] => {
                    rest = tail;
                    Action::Wait
                }
                [] => return,
            },
        };
    }
}
