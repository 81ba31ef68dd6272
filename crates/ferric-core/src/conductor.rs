//! Conductors: the processes that do the work on nodes.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A registered conductor, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConductorRecord {
    pub id: i64,
    pub hostname: String,
    pub conductor_group: String,
    /// Hardware types this conductor serves.
    pub drivers: Vec<String>,
    pub online: bool,
    pub created_at: DateTime<Utc>,
    /// Refreshed by the conductor's heartbeat.
    pub updated_at: Option<DateTime<Utc>>,
}

impl ConductorRecord {
    /// Alive: online and heard from within `timeout` (Ironic's
    /// `heartbeat_timeout`).
    pub fn is_alive(&self, now: DateTime<Utc>, timeout: Duration) -> bool {
        let last = self.updated_at.unwrap_or(self.created_at);
        self.online && now - last <= timeout
    }
}
