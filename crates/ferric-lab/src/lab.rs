//! The lab: the machines of a machines file, shared by the BMC's listeners,
//! and the one rule for logins both protocols follow.

use std::sync::Arc;
use std::time::Instant;

use crate::sim::Machine;

/// All machines, in file order (a machine's `index` is its position).
pub struct Lab {
    pub machines: Vec<Arc<Machine>>,
}

impl Lab {
    /// The machine of a name.
    pub fn machine(&self, name: &str) -> Option<&Arc<Machine>> {
        self.machines.iter().find(|m| m.name() == name)
    }

    /// The machine at an index.
    pub fn at(&self, index: usize) -> Option<&Arc<Machine>> {
        self.machines.get(index)
    }

    /// Checks a user name and password against every machine's BMC
    /// account; returns the indexes of the machines they open (empty: the
    /// login failed). A locked-out machine opens to nobody; a failure is
    /// counted against the machines with that user name when none opened.
    pub fn login(&self, username: &[u8], password: &[u8], now: Instant) -> Vec<usize> {
        let candidates: Vec<&Arc<Machine>> = self
            .machines
            .iter()
            .filter(|m| m.spec.username.as_bytes() == username)
            .collect();
        let opened: Vec<usize> = candidates
            .iter()
            .filter(|m| !m.is_locked_out(now) && m.spec.password.matches(password))
            .map(|m| m.index)
            .collect();
        if opened.is_empty() {
            for m in &candidates {
                m.record_failed_login(now);
            }
            tracing::info!(
                user = %String::from_utf8_lossy(username),
                "login refused"
            );
        } else {
            for index in &opened {
                if let Some(m) = self.at(*index) {
                    m.record_good_login();
                }
            }
        }
        opened
    }
}
