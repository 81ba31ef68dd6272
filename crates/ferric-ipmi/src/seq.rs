//! The inbound session sequence number check (IPMI v2.0 §6.12.13 and appendix A).
//!
//! Each end tracks the highest sequence number it accepted and which of the numbers just
//! below it it has seen. A packet is accepted once, if its number is at most
//! [`SEQUENCE_WINDOW`] above the highest (the window then slides) or at most that far below
//! and not seen yet. Zero is never a valid authenticated sequence number.

/// RMCP+'s window: 16 (IPMI v1.5 sessions used 8).
pub const SEQUENCE_WINDOW: u32 = 16;

/// A sliding-window replay filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeqWindow {
    highest: u32,
    /// Bit `i` set: `highest - 1 - i` was seen.
    seen_below: u32,
}

impl SeqWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `seq` would be accepted, without recording it.
    pub fn would_accept(&self, seq: u32) -> bool {
        self.classify(seq).is_some()
    }

    /// Accepts and records `seq`, or refuses it (replayed or outside the window).
    pub fn accept(&mut self, seq: u32) -> bool {
        match self.classify(seq) {
            Some(Position::Ahead(by)) => {
                self.seen_below = if by >= 32 {
                    0
                } else {
                    (self.seen_below << by) | (1 << (by - 1))
                };
                self.highest = seq;
                true
            }
            Some(Position::Behind(by)) => {
                self.seen_below |= 1 << (by - 1);
                true
            }
            None => false,
        }
    }

    pub fn highest(&self) -> u32 {
        self.highest
    }

    fn classify(&self, seq: u32) -> Option<Position> {
        if seq == 0 {
            return None;
        }
        let ahead = seq.wrapping_sub(self.highest);
        if (1..=SEQUENCE_WINDOW).contains(&ahead) {
            return Some(Position::Ahead(ahead));
        }
        let behind = self.highest.wrapping_sub(seq);
        let fresh =
            (1..=SEQUENCE_WINDOW).contains(&behind) && self.seen_below & (1 << (behind - 1)) == 0;
        fresh.then_some(Position::Behind(behind))
    }
}

enum Position {
    Ahead(u32),
    Behind(u32),
}

/// The next outbound sequence number after `seq`, skipping zero on wrap.
pub(crate) fn next_outbound(seq: u32) -> u32 {
    match seq.wrapping_add(1) {
        0 => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_in_order_and_refuses_replays() {
        let mut w = SeqWindow::new();
        assert!(!w.accept(0));
        for s in 1..=40 {
            assert!(w.accept(s), "{s}");
            assert!(!w.accept(s), "replayed {s}");
        }
    }

    #[test]
    fn first_packet_may_start_anywhere_in_the_first_window() {
        // ipmitool's first session packet carries sequence number 3.
        let mut w = SeqWindow::new();
        assert!(w.accept(3));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        let mut w = SeqWindow::new();
        assert!(!w.accept(SEQUENCE_WINDOW + 1));
    }

    #[test]
    fn late_packets_inside_the_window_are_accepted_once() {
        let mut w = SeqWindow::new();
        assert!(w.accept(10));
        assert!(w.accept(26)); // 16 ahead: slides
        assert!(w.accept(11)); // 15 behind, never seen
        assert!(!w.accept(11));
        assert!(w.accept(12));
        assert!(!w.accept(10), "16 behind but seen");
        assert!(!w.accept(9), "17 behind: out of window");
        assert!(
            !w.accept(26 + SEQUENCE_WINDOW + 1),
            "17 ahead: out of window"
        );
        assert!(w.would_accept(26 + SEQUENCE_WINDOW));
    }

    #[test]
    fn wraps_past_the_top() {
        let mut w = SeqWindow {
            highest: u32::MAX - 2,
            seen_below: 0,
        };
        assert!(w.accept(u32::MAX));
        assert!(w.accept(5));
        assert!(w.accept(u32::MAX - 1));
        assert_eq!(next_outbound(u32::MAX), 1);
        assert_eq!(next_outbound(1), 2);
    }
}
