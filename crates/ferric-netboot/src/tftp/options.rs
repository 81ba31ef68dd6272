//! Option negotiation for a read request: blksize (RFC 2348), timeout and
//! tsize (RFC 2349), windowsize (RFC 7440).
//!
//! Unknown options and options with values out of their RFC range are
//! ignored, that is not acknowledged; values above the server's limits are
//! lowered to them. Only requested options are acknowledged, in the order
//! requested.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::packet::{TftpOption, MAX_BLKSIZE};

/// Block size without options (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest block size a client may ask for (RFC 2348).
pub const MIN_BLKSIZE: u16 = 8;

/// What the server allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size granted, 8..=65464.
    pub max_blksize: u16,
    /// Largest window granted, 1..=65535.
    pub max_windowsize: u16,
    /// Timeouts (seconds) a client may set; others are not acknowledged.
    pub timeouts: RangeInclusive<u8>,
    /// Retransmission timeout when the client sets none.
    pub default_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_blksize: 1468,
            max_windowsize: 64,
            timeouts: 1..=255,
            default_timeout: Duration::from_secs(1),
        }
    }
}

/// The parameters of a transfer and the options to acknowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub blksize: u16,
    pub windowsize: u16,
    pub timeout: Duration,
    /// For the OACK; empty means no OACK (the transfer starts with DATA 1).
    pub acknowledged: Vec<TftpOption>,
}

/// Negotiates the options of a read request for a file of `file_size`
/// bytes (`None` when the size is not known in advance: tsize is then not
/// acknowledged).
pub fn negotiate(requested: &[TftpOption], limits: &Limits, file_size: Option<u64>) -> Negotiated {
    let mut negotiated = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        windowsize: 1,
        timeout: limits.default_timeout,
        acknowledged: Vec::new(),
    };
    for option in requested {
        let Some(value) = parse_number(&option.value) else {
            continue;
        };
        let granted = match option.name.as_str() {
            "blksize" => grant_blksize(value, limits)
                .inspect(|&b| negotiated.blksize = b)
                .map(u64::from),
            "windowsize" => grant_windowsize(value, limits)
                .inspect(|&w| negotiated.windowsize = w)
                .map(u64::from),
            "timeout" => grant_timeout(value, limits)
                .inspect(|&t| negotiated.timeout = Duration::from_secs(u64::from(t)))
                .map(u64::from),
            "tsize" => file_size,
            _ => None,
        };
        if let Some(granted) = granted {
            negotiated
                .acknowledged
                .push(TftpOption::new(&option.name, granted));
        }
    }
    negotiated
}

fn grant_blksize(value: u64, limits: &Limits) -> Option<u16> {
    if value < u64::from(MIN_BLKSIZE) {
        return None;
    }
    let max = limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE as u16);
    Some(value.min(u64::from(max)) as u16)
}

fn grant_windowsize(value: u64, limits: &Limits) -> Option<u16> {
    if value == 0 {
        return None;
    }
    Some(value.min(u64::from(limits.max_windowsize.max(1))) as u16)
}

/// RFC 2349: 1..=255 seconds, and the server acknowledges the value as
/// given or not at all.
fn grant_timeout(value: u64, limits: &Limits) -> Option<u8> {
    let seconds = u8::try_from(value).ok().filter(|&s| s >= 1)?;
    limits.timeouts.contains(&seconds).then_some(seconds)
}

/// Decimal digits only; `None` for anything else or on overflow.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<TftpOption> {
        pairs.iter().map(|(n, v)| TftpOption::new(n, v)).collect()
    }

    fn acked(n: &Negotiated) -> Vec<(String, String)> {
        n.acknowledged
            .iter()
            .map(|o| (o.name.clone(), o.value.clone()))
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn no_options_means_rfc1350_defaults_and_no_oack() {
        let n = negotiate(&[], &Limits::default(), Some(10));
        assert_eq!(
            (n.blksize, n.windowsize, n.timeout),
            (512, 1, Duration::from_secs(1))
        );
        assert!(n.acknowledged.is_empty());
    }

    #[test]
    fn blksize_is_granted_up_to_the_limit() {
        let limits = Limits {
            max_blksize: 1468,
            ..Limits::default()
        };
        let n = negotiate(&opts(&[("blksize", "1432")]), &limits, None);
        assert_eq!(n.blksize, 1432);
        assert_eq!(acked(&n), pairs(&[("blksize", "1432")]));
        let n = negotiate(&opts(&[("blksize", "65464")]), &limits, None);
        assert_eq!(n.blksize, 1468);
        assert_eq!(acked(&n), pairs(&[("blksize", "1468")]));
        let n = negotiate(&opts(&[("blksize", "99999999999")]), &limits, None);
        assert_eq!(n.blksize, 1468);
    }

    #[test]
    fn blksize_below_8_or_not_a_number_is_ignored() {
        for value in ["7", "0", "", "12a", "-1", "+9", "184467440737095516160"] {
            let n = negotiate(&opts(&[("blksize", value)]), &Limits::default(), None);
            assert_eq!(n.blksize, 512, "{value:?}");
            assert!(n.acknowledged.is_empty(), "{value:?}");
        }
        let n = negotiate(&opts(&[("blksize", "8")]), &Limits::default(), None);
        assert_eq!(n.blksize, 8);
    }

    #[test]
    fn server_limit_is_clamped_to_the_rfc_range() {
        let limits = Limits {
            max_blksize: 65535,
            ..Limits::default()
        };
        assert_eq!(
            negotiate(&opts(&[("blksize", "65535")]), &limits, None).blksize,
            65464
        );
        let limits = Limits {
            max_blksize: 1,
            ..Limits::default()
        };
        assert_eq!(
            negotiate(&opts(&[("blksize", "512")]), &limits, None).blksize,
            8
        );
    }

    #[test]
    fn windowsize_is_granted_up_to_the_limit() {
        let limits = Limits {
            max_windowsize: 32,
            ..Limits::default()
        };
        assert_eq!(
            negotiate(&opts(&[("windowsize", "16")]), &limits, None).windowsize,
            16
        );
        let n = negotiate(&opts(&[("windowsize", "65535")]), &limits, None);
        assert_eq!(
            (n.windowsize, acked(&n)),
            (32, pairs(&[("windowsize", "32")]))
        );
        let n = negotiate(&opts(&[("windowsize", "0")]), &limits, None);
        assert_eq!((n.windowsize, n.acknowledged.len()), (1, 0));
    }

    #[test]
    fn timeout_is_acknowledged_only_within_the_allowed_range() {
        let limits = Limits {
            timeouts: 1..=10,
            ..Limits::default()
        };
        let n = negotiate(&opts(&[("timeout", "3")]), &limits, None);
        assert_eq!(
            (n.timeout, acked(&n)),
            (Duration::from_secs(3), pairs(&[("timeout", "3")]))
        );
        for value in ["0", "11", "255", "256"] {
            let n = negotiate(&opts(&[("timeout", value)]), &limits, None);
            assert_eq!(n.timeout, Duration::from_secs(1), "{value}");
            assert!(n.acknowledged.is_empty(), "{value}");
        }
    }

    #[test]
    fn tsize_is_answered_with_the_file_size() {
        let n = negotiate(&opts(&[("tsize", "0")]), &Limits::default(), Some(123_456));
        assert_eq!(acked(&n), pairs(&[("tsize", "123456")]));
        let n = negotiate(&opts(&[("tsize", "0")]), &Limits::default(), None);
        assert!(n.acknowledged.is_empty());
    }

    #[test]
    fn unknown_options_are_ignored_and_order_is_kept() {
        let requested = opts(&[
            ("tsize", "0"),
            ("multicast", ""),
            ("utimeout", "5000"),
            ("windowsize", "8"),
            ("blksize", "1024"),
        ]);
        let n = negotiate(&requested, &Limits::default(), Some(7));
        assert_eq!(
            acked(&n),
            pairs(&[("tsize", "7"), ("windowsize", "8"), ("blksize", "1024")])
        );
    }

    #[test]
    fn names_were_lowered_by_the_parser() {
        // TftpOption::new lowers names like the packet parser does.
        let n = negotiate(&opts(&[("BlkSize", "1000")]), &Limits::default(), None);
        assert_eq!(n.blksize, 1000);
        assert_eq!(acked(&n), pairs(&[("blksize", "1000")]));
    }
}
