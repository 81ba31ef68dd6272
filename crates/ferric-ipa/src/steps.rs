//! Clean and deploy steps as the agent describes and runs them.
//!
//! * `clean.get_clean_steps` / `deploy.get_deploy_steps` (params `node`,
//!   `ports`) return `{"clean_steps": {MANAGER: [step, ...]},
//!   "hardware_manager_version": {name: version}}` (`deploy_steps` for
//!   deploy), each step a [`StepDescription`].
//! * `clean.execute_clean_step` / `deploy.execute_deploy_step` take
//!   [`ExecuteStepParams`] (`step`, `node`, `ports`, and `clean_version` /
//!   `deploy_version`: the `hardware_manager_version` Ironic recorded) and
//!   return `{"clean_result": ..., "clean_step": step}` /
//!   `{"deploy_result": ..., "deploy_step": step}` ([`StepResult`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::image_info::ImageInfo;
use crate::lookup::Node;

/// Which kind of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Cleaning (`clean.*`).
    Clean,
    /// Deployment (`deploy.*`).
    Deploy,
}

impl StepKind {
    /// `clean` or `deploy`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Deploy => "deploy",
        }
    }
}

/// A step as `get_*_steps` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepDescription {
    /// The step's name, e.g. `erase_devices_metadata`.
    pub step: String,
    /// 0 means "only when requested".
    pub priority: i64,
    /// The Ironic interface that runs it (`deploy`, `raid`, ...).
    pub interface: String,
    /// Whether Ironic must reboot the node after it.
    pub reboot_requested: bool,
    /// Whether the step may be aborted (clean steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abortable: Option<bool>,
    /// Argument descriptions, for steps that take arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argsinfo: Option<Value>,
}

/// `get_clean_steps` / `get_deploy_steps` result.
#[derive(Debug, Clone, PartialEq)]
pub struct GetStepsResult {
    /// Clean or deploy: decides the key (`clean_steps` / `deploy_steps`).
    pub kind: StepKind,
    /// Steps per hardware manager.
    pub steps: BTreeMap<String, Vec<StepDescription>>,
    /// `{manager name: version}`; Ironic sends it back as `*_version`.
    pub hardware_manager_version: BTreeMap<String, String>,
}

impl GetStepsResult {
    /// The JSON IPA returns as `command_result`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        let steps = serde_json::to_value(&self.steps).unwrap_or(Value::Null);
        map.insert(format!("{}_steps", self.kind.name()), steps);
        let versions = serde_json::to_value(&self.hardware_manager_version).unwrap_or(Value::Null);
        map.insert("hardware_manager_version".into(), versions);
        Value::Object(map)
    }

    /// Reads a `command_result` of `kind`.
    pub fn from_value(kind: StepKind, value: &Value) -> Result<Self, serde_json::Error> {
        let key = format!("{}_steps", kind.name());
        let steps = serde_json::from_value(value.get(&key).cloned().unwrap_or(Value::Null))?;
        let versions = value
            .get("hardware_manager_version")
            .cloned()
            .unwrap_or(Value::Null);
        Ok(Self {
            kind,
            steps,
            hardware_manager_version: serde_json::from_value(versions)?,
        })
    }
}

/// `get_*_steps` params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetStepsParams {
    /// The node (`node.as_dict(secure=True)`).
    pub node: Node,
    /// The node's ports (`port.as_dict()`).
    pub ports: Vec<Value>,
}

/// The step Ironic asks the agent to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRequest {
    /// The step's name.
    pub step: String,
    /// The interface (`deploy`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Its priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Keyword arguments for the step (`image_info`, `configdrive`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
    /// Other keys Ironic includes (`abortable`, `reboot_requested`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `execute_clean_step` / `execute_deploy_step` params.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteStepParams {
    /// Clean or deploy: decides the version key.
    pub kind: StepKind,
    /// The step to run.
    pub step: StepRequest,
    /// The node.
    pub node: Node,
    /// Its ports.
    pub ports: Vec<Value>,
    /// `clean_version` / `deploy_version`; `None` means "first run".
    pub version: Option<Value>,
    /// Other keyword arguments (merged with `step.args` for the step).
    pub extra: Map<String, Value>,
}

impl ExecuteStepParams {
    /// The version parameter's name: `clean_version` or `deploy_version`.
    pub fn version_key(kind: StepKind) -> String {
        format!("{}_version", kind.name())
    }

    /// Reads params of `kind`; the error names the bad parameter.
    pub fn from_params(kind: StepKind, params: &Map<String, Value>) -> Result<Self, String> {
        let mut params = params.clone();
        let step_value = params.remove("step").ok_or("missing parameter 'step'")?;
        if step_value.get("step").is_none() {
            return Err(format!("Malformed {}_step, no \"step\" key", kind.name()));
        }
        let step =
            serde_json::from_value(step_value).map_err(|e| format!("invalid 'step': {e}"))?;
        let node = serde_json::from_value(params.remove("node").ok_or("missing parameter 'node'")?)
            .map_err(|e| format!("invalid 'node': {e}"))?;
        let ports = match params.remove("ports") {
            Some(Value::Array(ports)) => ports,
            Some(Value::Null) | None => Vec::new(),
            Some(_) => return Err("invalid 'ports': expected a list".into()),
        };
        let version = params
            .remove(&Self::version_key(kind))
            .filter(|v| !v.is_null());
        Ok(Self {
            kind,
            step,
            node,
            ports,
            version,
            extra: params,
        })
    }

    /// The params as Ironic sends them.
    pub fn to_params(&self) -> Map<String, Value> {
        let mut map = self.extra.clone();
        map.insert(
            "step".into(),
            serde_json::to_value(&self.step).unwrap_or(Value::Null),
        );
        map.insert(
            "node".into(),
            serde_json::to_value(&self.node).unwrap_or(Value::Null),
        );
        map.insert("ports".into(), Value::Array(self.ports.clone()));
        map.insert(
            Self::version_key(self.kind),
            self.version.clone().unwrap_or(Value::Null),
        );
        map
    }

    /// The step's keyword arguments: extra params overlaid by `step.args`,
    /// as IPA's `kwargs.update(step.get('args') or {})`.
    pub fn step_args(&self) -> Map<String, Value> {
        let mut args = self.extra.clone();
        if let Some(step_args) = &self.step.args {
            args.extend(step_args.clone());
        }
        args
    }
}

/// `execute_*_step` result: `{"<kind>_result": result, "<kind>_step": step}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// Clean or deploy.
    pub kind: StepKind,
    /// What the step returned (often null).
    pub result: Value,
    /// The step that ran, as it was requested.
    pub step: Value,
}

impl StepResult {
    /// The JSON IPA returns as `command_result`.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert(format!("{}_result", self.kind.name()), self.result.clone());
        map.insert(format!("{}_step", self.kind.name()), self.step.clone());
        Value::Object(map)
    }

    /// Reads a `command_result` of `kind`.
    pub fn from_value(kind: StepKind, value: &Value) -> Option<Self> {
        Some(Self {
            kind,
            result: value.get(format!("{}_result", kind.name()))?.clone(),
            step: value.get(format!("{}_step", kind.name()))?.clone(),
        })
    }
}

/// Arguments of the `write_image` deploy step (Ironic's `write_image`
/// proxies `{"image_info": ..., "configdrive": ...}` as `step.args`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteImageArgs {
    /// The image to write.
    pub image_info: ImageInfo,
    /// A config drive: URL, or base64 of gzip of the ISO.
    #[serde(default)]
    pub configdrive: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_ipa_clean_steps() {
        // GenericHardwareManager.get_clean_steps() entries, as IPA returns them.
        let text = json!({
            "clean_steps": {"GenericHardwareManager": [
                {"step": "erase_devices", "priority": 10, "interface": "deploy", "reboot_requested": false, "abortable": true},
                {"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false, "abortable": true}
            ]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"}
        });
        let parsed = GetStepsResult::from_value(StepKind::Clean, &text).unwrap();
        assert_eq!(parsed.steps["GenericHardwareManager"][1].priority, 99);
        assert_eq!(parsed.to_value(), text);
        assert!(GetStepsResult::from_value(StepKind::Deploy, &text).is_err());
    }

    #[test]
    fn round_trips_deploy_steps_with_argsinfo() {
        let text = json!({
            "deploy_steps": {"GenericHardwareManager": [
                {"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false},
                {"step": "inject_files", "priority": 0, "interface": "deploy", "reboot_requested": false,
                 "argsinfo": {"files": {"description": "Files to inject", "required": false}}}
            ]},
            "hardware_manager_version": {"generic_hardware_manager": "1.2"}
        });
        let parsed = GetStepsResult::from_value(StepKind::Deploy, &text).unwrap();
        assert_eq!(parsed.to_value(), text);
    }

    #[test]
    fn reads_execute_params_from_ironic() {
        let params = json!({
            "step": {"interface": "deploy", "step": "write_image", "args": {"image_info": {"id": "img", "urls": ["http://x/img"]}, "configdrive": null}},
            "node": {"uuid": "fb1cf066-0b24-49b5-b8ce-4f1df789b019", "properties": {}, "instance_info": {}, "driver_internal_info": {}, "driver": "fake-hardware"},
            "ports": [{"address": "52:54:00:12:34:56"}],
            "deploy_version": {"generic_hardware_manager": "1.2"}
        });
        let map = params.as_object().unwrap();
        let p = ExecuteStepParams::from_params(StepKind::Deploy, map).unwrap();
        assert_eq!(p.step.step, "write_image");
        assert_eq!(p.node.extra["driver"], "fake-hardware");
        let args: WriteImageArgs = serde_json::from_value(Value::Object(p.step_args())).unwrap();
        assert_eq!(args.image_info.id, "img");
        assert_eq!(Value::Object(p.to_params()), params);
    }

    #[test]
    fn rejects_malformed_steps() {
        let no_step = json!({"step": {"interface": "deploy"}, "node": {"uuid": "u"}, "ports": []});
        let err = ExecuteStepParams::from_params(StepKind::Clean, no_step.as_object().unwrap())
            .unwrap_err();
        assert_eq!(err, "Malformed clean_step, no \"step\" key");
        let no_node = json!({"step": {"step": "x"}, "ports": []});
        assert!(
            ExecuteStepParams::from_params(StepKind::Clean, no_node.as_object().unwrap()).is_err()
        );
    }

    #[test]
    fn step_results() {
        let r = StepResult {
            kind: StepKind::Clean,
            result: Value::Null,
            step: json!({"step": "erase_devices_metadata"}),
        };
        let v = r.to_value();
        assert_eq!(
            v,
            json!({"clean_result": null, "clean_step": {"step": "erase_devices_metadata"}})
        );
        assert_eq!(StepResult::from_value(StepKind::Clean, &v), Some(r));
    }
}
