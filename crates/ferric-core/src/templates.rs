//! Deploy templates and runbooks: named lists of steps kept apart from
//! any node. A deploy template adds its steps to the deploy of a node whose
//! instance traits name it; a runbook is a list of steps a node that
//! carries its name (or one of its traits) may be cleaned or serviced with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{DeployTemplateUuid, RunbookUuid};
use crate::JsonObject;

/// One deploy step of a template; `priority` 0 turns the step off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateStep {
    pub interface: String,
    pub step: String,
    pub args: JsonObject,
    pub priority: i64,
}

/// Ironic's `DeployTemplate`: its name is a trait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployTemplate {
    pub id: i64,
    pub uuid: DeployTemplateUuid,
    pub name: String,
    pub steps: Vec<TemplateStep>,
    pub extra: JsonObject,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl TemplateStep {
    /// The step as the conductor plans it: Ironic's deploy-step dict.
    pub fn to_json(&self) -> JsonObject {
        let mut obj = JsonObject::new();
        obj.insert("interface".into(), self.interface.clone().into());
        obj.insert("step".into(), self.step.clone().into());
        obj.insert("args".into(), serde_json::Value::Object(self.args.clone()));
        obj.insert("priority".into(), self.priority.into());
        obj
    }
}

/// One clean or service step of a runbook, run in `order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunbookStep {
    pub interface: String,
    pub step: String,
    pub args: JsonObject,
    pub order: i64,
}

impl RunbookStep {
    /// The step as a user's clean or service step.
    pub fn to_json(&self) -> JsonObject {
        let mut obj = JsonObject::new();
        obj.insert("interface".into(), self.interface.clone().into());
        obj.insert("step".into(), self.step.clone().into());
        obj.insert("args".into(), serde_json::Value::Object(self.args.clone()));
        obj.insert("order".into(), self.order.into());
        obj
    }
}

/// Ironic's `Runbook`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runbook {
    pub id: i64,
    pub uuid: RunbookUuid,
    pub name: String,
    pub description: Option<String>,
    pub steps: Vec<RunbookStep>,
    pub disable_ramdisk: bool,
    pub extra: JsonObject,
    pub public: bool,
    pub owner: Option<String>,
    /// The traits a node needs (one of them) to run the runbook.
    pub traits: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}
