//! Inspection rules (API 1.96): conditions on what inspection found, and
//! actions to take on the node when they hold.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::ids::InspectionRuleUuid;

/// A rule as stored. Conditions and actions are kept as given (after
/// Ironic's validation); a `sensitive` rule never shows them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionRule {
    pub id: i64,
    pub uuid: InspectionRuleUuid,
    pub priority: i64,
    pub description: Option<String>,
    pub scope: Option<String>,
    pub sensitive: bool,
    pub phase: Option<String>,
    pub conditions: Vec<Value>,
    pub actions: Vec<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Conditions and actions may carry secrets (a BMC password to set): logs
/// get their number only.
impl fmt::Debug for InspectionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InspectionRule")
            .field("uuid", &self.uuid)
            .field("priority", &self.priority)
            .field("phase", &self.phase)
            .field("sensitive", &self.sensitive)
            .field("conditions", &self.conditions.len())
            .field("actions", &self.actions.len())
            .finish_non_exhaustive()
    }
}
