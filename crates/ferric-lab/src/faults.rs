//! Faults a machine's BMC shows on request: lost packets (IPMI datagrams
//! dropped, Redfish requests answered 503), late answers, a session limit
//! and a wrong-password lockout. The same keys are read from the machines
//! file (`[machine.faults]`) and from `PUT /lab/machines/{name}/faults`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What a machine's BMC does wrong, on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// The fraction (0 to 1) of IPMI datagrams dropped and of Redfish
    /// requests answered 503.
    pub packet_loss: f64,
    /// Every answer is sent this late.
    pub delay_ms: u64,
    /// At most this many IPMI sessions, and this many Redfish sessions
    /// (none: the BMC's own limit).
    pub max_sessions: Option<usize>,
    /// After this many failed logins in a row, even the right password is
    /// refused for `lockout_seconds` (none: never).
    pub lockout_after: Option<u32>,
    /// How long a lockout lasts.
    pub lockout_seconds: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            packet_loss: 0.0,
            delay_ms: 0,
            max_sessions: None,
            lockout_after: None,
            lockout_seconds: 60,
        }
    }
}

impl Faults {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.packet_loss) {
            return Err((
                "packet_loss",
                format!("{} is not between 0 and 1", self.packet_loss),
            ));
        }
        if self.delay_ms > 600_000 {
            return Err(("delay_ms", "more than 600000 (10 minutes)".into()));
        }
        if self.max_sessions == Some(0) {
            return Err(("max_sessions", "must be at least 1".into()));
        }
        if self.lockout_after == Some(0) {
            return Err(("lockout_after", "must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether to lose this packet or request (drawn at random).
    pub fn lose_this_one(&self) -> bool {
        self.packet_loss > 0.0 && rand::random::<f64>() < self.packet_loss
    }

    /// How late each answer is sent.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }
}

/// Counts failed logins of one machine's user and locks it out.
#[derive(Debug, Default)]
pub struct LoginGuard {
    failures: u32,
    locked_until: Option<Instant>,
}

impl LoginGuard {
    /// Whether logins are refused now (an expired lockout is cleared).
    pub fn is_locked(&mut self, now: Instant) -> bool {
        match self.locked_until {
            Some(until) if now < until => true,
            Some(_) => {
                self.locked_until = None;
                self.failures = 0;
                false
            }
            None => false,
        }
    }

    /// Records a wrong password; returns whether that started a lockout.
    pub fn record_failure(&mut self, now: Instant, faults: &Faults) -> bool {
        if self.is_locked(now) {
            return false;
        }
        self.failures = self.failures.saturating_add(1);
        match faults.lockout_after {
            Some(limit) if self.failures >= limit => {
                self.locked_until = Some(now + Duration::from_secs(faults.lockout_seconds));
                true
            }
            _ => false,
        }
    }

    /// Records a good login: the count of failures starts again.
    pub fn record_success(&mut self) {
        self.failures = 0;
    }

    /// Seconds of lockout left, for the lab's state view.
    pub fn locked_for(&self, now: Instant) -> Option<u64> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| until.duration_since(now).as_secs().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_the_file_keys_and_refuses_others() {
        let f: Faults = serde_json::from_str(r#"{"packet_loss":0.3,"max_sessions":4}"#).unwrap();
        assert_eq!(f.packet_loss, 0.3);
        assert_eq!(f.max_sessions, Some(4));
        assert_eq!(f.lockout_seconds, 60);
        let e = serde_json::from_str::<Faults>(r#"{"packet_los":0.3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `packet_los`"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let bad = |f: Faults| f.validate().unwrap_err().0;
        assert_eq!(
            bad(Faults {
                packet_loss: -0.1,
                ..Faults::default()
            }),
            "packet_loss"
        );
        assert_eq!(
            bad(Faults {
                lockout_after: Some(0),
                ..Faults::default()
            }),
            "lockout_after"
        );
        assert!(Faults::default().validate().is_ok());
    }

    #[test]
    fn loss_of_zero_and_one_is_exact() {
        let never = Faults::default();
        let always = Faults {
            packet_loss: 1.0,
            ..Faults::default()
        };
        assert!((0..1000).all(|_| !never.lose_this_one()));
        assert!((0..1000).all(|_| always.lose_this_one()));
    }

    #[test]
    fn lockout_after_n_failures_for_t_seconds() {
        let faults = Faults {
            lockout_after: Some(3),
            lockout_seconds: 60,
            ..Faults::default()
        };
        let t0 = Instant::now();
        let mut guard = LoginGuard::default();
        assert!(!guard.record_failure(t0, &faults));
        assert!(!guard.record_failure(t0, &faults));
        assert!(!guard.is_locked(t0));
        assert!(guard.record_failure(t0, &faults));
        assert!(guard.is_locked(t0 + Duration::from_secs(59)));
        assert_eq!(guard.locked_for(t0 + Duration::from_secs(30)), Some(30));
        assert!(!guard.is_locked(t0 + Duration::from_secs(60)));
        // The count starts again after the lockout.
        assert!(!guard.record_failure(t0 + Duration::from_secs(61), &faults));
    }

    #[test]
    fn a_good_login_resets_the_count_and_no_limit_never_locks() {
        let faults = Faults {
            lockout_after: Some(2),
            ..Faults::default()
        };
        let now = Instant::now();
        let mut guard = LoginGuard::default();
        guard.record_failure(now, &faults);
        guard.record_success();
        assert!(!guard.record_failure(now, &faults));
        let mut free = LoginGuard::default();
        for _ in 0..100 {
            assert!(!free.record_failure(now, &Faults::default()));
        }
        assert!(!free.is_locked(now));
    }
}
