//! The agent's command API (IPA's `api/app.py` and `extensions/base.py`).
//!
//! Routes (each also without the `/v1` prefix):
//!
//! | route | answer |
//! |---|---|
//! | `GET /v1/status` | [`AgentStatusInfo`] (`started_at`, `version`); no token needed |
//! | `GET /v1/commands/?agent_token=` | [`CommandList`] |
//! | `GET /v1/commands/{id}?wait=true&agent_token=` | one [`CommandResult`]; 404 when unknown |
//! | `POST /v1/commands/?wait=true\|false&agent_token=` | body [`CommandRequest`]; answer [`CommandResult`] |
//!
//! Every command route checks `agent_token` first: missing or wrong gives
//! 401 "401 Unauthorized: Token invalid." ([`crate::fault::AgentFault`]).
//! One command runs at a time: a new one while the last is `RUNNING` gets
//! 409 "Agent is busy: executing command NAME". `wait=true` (any case)
//! blocks until the command ends. A command that fails synchronously
//! answers 200 with status `FAILED`; unknown commands and bad parameters
//! answer 400/404 (see [`crate::commands`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RestError;
use crate::fault::AgentFault;
use crate::query;

/// `POST /v1/commands/` body: `{"name": "ext.cmd", "params": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRequest {
    /// `extension.command`, e.g. `deploy.execute_deploy_step`.
    pub name: String,
    /// Keyword arguments of the command.
    pub params: Map<String, Value>,
}

/// Largest request body the agent accepts (config drives travel inside
/// `write_image` params: Ironic caps them at 64 MiB before base64).
pub const MAX_BODY_BYTES: usize = 96 * 1024 * 1024;

impl CommandRequest {
    /// Parses a body as IPA does: JSON (`get_json(force=True)`), then an
    /// object with a string `name` and an object `params`.
    pub fn parse(body: &[u8]) -> Result<Self, AgentFault> {
        if body.len() > MAX_BODY_BYTES {
            return Err(AgentFault::http(
                413,
                "The data value transmitted exceeds the capacity limit.",
            ));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| AgentFault::bad_json(&e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(AgentFault::missing_name_or_params());
        };
        let params = match object.remove("params") {
            Some(Value::Object(params)) => params,
            _ => return Err(AgentFault::missing_name_or_params()),
        };
        match object.remove("name") {
            Some(Value::String(name)) => Ok(Self { name, params }),
            Some(_) => Err(AgentFault::from(RestError::new(
                crate::error::ErrorKind::InvalidCommand,
                "Command name must be of the form <extension>.<name>",
            ))),
            None => Err(AgentFault::missing_name_or_params()),
        }
    }
}

/// The query of command calls: `wait` and `agent_token`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CommandQuery {
    /// `wait=true` (case-insensitive); anything else means false.
    pub wait: bool,
    /// The presented token, if any.
    pub agent_token: Option<String>,
}

impl std::fmt::Debug for CommandQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandQuery")
            .field("wait", &self.wait)
            .field(
                "agent_token",
                &self.agent_token.as_ref().map(|_| crate::secret::MASK),
            )
            .finish()
    }
}

impl CommandQuery {
    /// Parses `wait=...&agent_token=...`.
    pub fn parse(query_string: &str) -> Self {
        let pairs = query::parse(query_string);
        Self {
            wait: query::first(&pairs, "wait").is_some_and(|w| w.eq_ignore_ascii_case("true")),
            agent_token: query::first(&pairs, "agent_token"),
        }
    }

    /// The query string a conductor sends (without `?`).
    pub fn to_query_string(&self) -> String {
        let wait = if self.wait { "true" } else { "false" };
        let mut pairs = vec![("wait", wait)];
        if let Some(token) = &self.agent_token {
            pairs.push(("agent_token", token.as_str()));
        }
        query::build(pairs)
    }
}

/// A command's status (`AgentCommandStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommandStatus {
    /// Still running (asynchronous commands).
    #[serde(rename = "RUNNING")]
    Running,
    /// Done; `command_result` holds the result.
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// Done; `command_error` says why.
    #[serde(rename = "FAILED")]
    Failed,
    /// The hardware manager versions changed since Ironic read the steps.
    /// IPA still spells it `CLEAN_VERSION_MISMATCH` on the wire.
    #[serde(rename = "CLEAN_VERSION_MISMATCH", alias = "VERSION_MISMATCH")]
    VersionMismatch,
}

impl CommandStatus {
    /// False while running.
    pub fn is_done(self) -> bool {
        self != Self::Running
    }
}

/// `command_error`: IPA's serialized exception, or a plain string from very
/// old agents (Ironic's `get_command_error` accepts both).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandError {
    /// `{"type", "code", "message", "details"}`.
    Rest(RestError),
    /// A bare message.
    Text(String),
    /// Anything else an agent sent.
    Other(Value),
}

impl CommandError {
    /// The text Ironic puts in `last_error`: `details`, else `message`.
    pub fn text(&self) -> String {
        match self {
            Self::Rest(e) if !e.details.is_empty() => e.details.clone(),
            Self::Rest(e) => e.message.clone(),
            Self::Text(t) => t.clone(),
            Self::Other(v) => v.to_string(),
        }
    }
}

impl From<RestError> for CommandError {
    fn from(error: RestError) -> Self {
        Self::Rest(error)
    }
}

/// One command's state, as `GET /v1/commands/` lists them.
///
/// `command_name` is the short name (`execute_deploy_step`, without the
/// extension): Ironic matches on that. IPA does not serialize
/// `command_params` (they hold node data and secrets); the field exists
/// for agents that do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    /// A UUID.
    pub id: String,
    /// Short command name.
    pub command_name: String,
    /// The params, when an agent chooses to echo them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_params: Option<Value>,
    /// Running or how it ended.
    pub command_status: CommandStatus,
    /// Set when failed.
    #[serde(default)]
    pub command_error: Option<CommandError>,
    /// Command-specific result; for running commands Ferric's agent puts
    /// progress here (see the agent's docs).
    #[serde(default)]
    pub command_result: Option<Value>,
}

impl CommandResult {
    /// A result for a command that has just started.
    pub fn running(id: impl Into<String>, command_name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            command_name: command_name.into(),
            command_params: None,
            command_status: CommandStatus::Running,
            command_error: None,
            command_result: None,
        }
    }

    /// The `TypeError` check Ironic applies (`_raise_if_typeerror`).
    pub fn is_type_error(&self) -> bool {
        matches!(&self.command_error, Some(CommandError::Rest(e)) if e.error_type == "TypeError")
    }
}

/// Wraps a string result as IPA does for synchronous commands:
/// `{"result": text}`.
pub fn sync_text_result(text: impl Into<String>) -> Value {
    let mut map = Map::new();
    map.insert("result".into(), Value::String(text.into()));
    Value::Object(map)
}

/// Wraps a string result as IPA does for asynchronous commands:
/// `{"result": "NAME: text"}`.
pub fn async_text_result(command_name: &str, text: &str) -> Value {
    sync_text_result(format!("{command_name}: {text}"))
}

/// `GET /v1/commands/` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandList {
    /// Every command since the agent started, oldest first.
    pub commands: Vec<CommandResult>,
}

/// `GET /v1/status` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatusInfo {
    /// When the agent started, in seconds since the epoch (Python's
    /// `time.time()`); null before it started running.
    pub started_at: Option<f64>,
    /// The agent's version.
    pub version: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_requests_like_ipa() {
        let ok = CommandRequest::parse(br#"{"name": "standby.sync", "params": {}}"#).unwrap();
        assert_eq!(ok.name, "standby.sync");
        assert!(ok.params.is_empty());
        let missing = CommandRequest::parse(br#"{"name": "standby.sync"}"#).unwrap_err();
        assert_eq!(missing.status, 400);
        assert_eq!(
            missing.faultstring,
            "400 Bad Request: Missing or invalid name or params"
        );
        let list_params = CommandRequest::parse(br#"{"name": "a.b", "params": []}"#).unwrap_err();
        assert_eq!(list_params.status, 400);
        let not_json = CommandRequest::parse(b"{oops").unwrap_err();
        assert!(not_json
            .faultstring
            .starts_with("400 Bad Request: Failed to decode JSON object"));
        let array = CommandRequest::parse(b"[1]").unwrap_err();
        assert_eq!(array.status, 400);
        let number_name = CommandRequest::parse(br#"{"name": 5, "params": {}}"#).unwrap_err();
        assert_eq!(number_name.status, 400);
    }

    #[test]
    fn parses_the_query() {
        let q = CommandQuery::parse("wait=TRUE&agent_token=abc");
        assert!(q.wait);
        assert_eq!(q.agent_token.as_deref(), Some("abc"));
        assert!(!CommandQuery::parse("wait=1").wait);
        assert!(!format!("{q:?}").contains("abc"));
        assert_eq!(q.to_query_string(), "wait=true&agent_token=abc");
    }

    #[test]
    fn round_trips_results_written_from_ipa() {
        // BaseCommandResult.serialize() of a finished execute_deploy_step.
        let text = json!({
            "id": "4e4f1d3c-2b9a-4a5b-9f3e-6a2d7f0b1c2d",
            "command_name": "execute_deploy_step",
            "command_status": "SUCCEEDED",
            "command_error": null,
            "command_result": {
                "deploy_result": null,
                "deploy_step": {"interface": "deploy", "step": "write_image", "args": {}}
            }
        });
        let result: CommandResult = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(result.command_status, CommandStatus::Succeeded);
        assert_eq!(serde_json::to_value(&result).unwrap(), text);

        let failed = json!({
            "id": "x", "command_name": "prepare_image", "command_status": "FAILED",
            "command_error": {"type": "ImageDownloadError", "code": 500, "message": "Error downloading image", "details": "Download of image y failed: boom"},
            "command_result": null
        });
        let result: CommandResult = serde_json::from_value(failed.clone()).unwrap();
        assert_eq!(
            result.command_error.as_ref().unwrap().text(),
            "Download of image y failed: boom"
        );
        assert_eq!(serde_json::to_value(&result).unwrap(), failed);

        let mismatch: CommandResult = serde_json::from_value(json!({
            "id": "x", "command_name": "execute_clean_step", "command_status": "CLEAN_VERSION_MISMATCH",
            "command_error": "old style", "command_result": null
        }))
        .unwrap();
        assert_eq!(mismatch.command_status, CommandStatus::VersionMismatch);
        assert_eq!(mismatch.command_error.unwrap().text(), "old style");
        assert_eq!(
            serde_json::to_value(CommandStatus::VersionMismatch).unwrap(),
            "CLEAN_VERSION_MISMATCH"
        );
    }

    #[test]
    fn lists_and_status() {
        let list: CommandList = serde_json::from_value(json!({"commands": []})).unwrap();
        assert!(list.commands.is_empty());
        let status: AgentStatusInfo =
            serde_json::from_value(json!({"started_at": 1764581230.25, "version": "13.0.0"}))
                .unwrap();
        assert_eq!(status.version, "13.0.0");
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"started_at": 1764581230.25, "version": "13.0.0"})
        );
    }

    #[test]
    fn wraps_text_results() {
        assert_eq!(sync_text_result("ok"), json!({"result": "ok"}));
        assert_eq!(
            async_text_result("power_off", "done"),
            json!({"result": "power_off: done"})
        );
    }
}
