//! The typed commands of the agent's command API, and the parser from a
//! request (body + query) to a command.
//!
//! Names are `extension.command`. Errors follow IPA's `execute_command`:
//! a name without a dot is 400 "Invalid command: Command name must be of
//! the form <extension>.<name>"; an unknown extension is 404 "Not found:
//! Extension with id X not found."; an unknown command of a known extension
//! is 400 "Invalid command: Unknown command: X"; bad parameters are 400
//! "Invalid command parameters: ...".
//!
//! The extensions known here are the ones Ferric's agent implements:
//! `clean`, `deploy`, `standby`, `image`, `log` and `iscsi` (IPA removed its
//! iSCSI extension in 2021; Ferric keeps it, with CHAP).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::command::{CommandQuery, CommandRequest};
use crate::error::{ErrorKind, RestError};
use crate::fault::AgentFault;
use crate::image_info::{CacheImageParams, PrepareImageParams};
use crate::steps::{ExecuteStepParams, GetStepsParams, StepKind};

/// The extensions this crate knows.
pub const EXTENSIONS: &[&str] = &["clean", "deploy", "standby", "image", "log", "iscsi"];

/// The IQN prefix Ironic gave a node's target: `iqn.2008-10.org.openstack:NODE_UUID`.
pub const OPENSTACK_IQN_PREFIX: &str = "iqn.2008-10.org.openstack:";

/// `iscsi.start_iscsi_target` params: IPA's (`iqn`, `wipe_disk_metadata`,
/// `portal_port`) and Ferric's CHAP credentials. With `chap_username` and
/// `chap_secret` the target accepts only initiators that prove the secret;
/// with the `mutual_*` pair too, it proves its own to them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StartIscsiTargetParams {
    /// The target's name; IPA generates `iqn.2008-10.org.openstack:<uuid>`.
    #[serde(default)]
    pub iqn: Option<String>,
    /// Destroy the disk's partition tables and signatures before exporting it.
    #[serde(default)]
    pub wipe_disk_metadata: bool,
    /// TCP port of the portal (3260 when absent).
    #[serde(default)]
    pub portal_port: Option<u16>,
    /// The user name an initiator must log in with (Ferric's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_username: Option<String>,
    /// The secret it must prove (Ferric's; at least 12 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chap_secret: Option<crate::Secret>,
    /// The name the target proves itself under (mutual CHAP, Ferric's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_chap_username: Option<String>,
    /// The target's own secret (mutual CHAP, Ferric's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutual_chap_secret: Option<crate::Secret>,
}

/// `image.install_bootloader` params.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstallBootloaderParams {
    /// Root partition UUID, or the disk identifier for whole-disk images.
    #[serde(default)]
    pub root_uuid: Option<String>,
    /// EFI system partition UUID.
    #[serde(default)]
    pub efi_system_part_uuid: Option<String>,
    /// PReP boot partition UUID (ppc64).
    #[serde(default)]
    pub prep_boot_part_uuid: Option<String>,
    /// `bios` (IPA's default) or `uefi`.
    #[serde(default = "default_boot_mode")]
    pub target_boot_mode: String,
    /// Succeed even if the bootloader could not be installed.
    #[serde(default)]
    pub ignore_bootloader_failure: Option<bool>,
}

fn default_boot_mode() -> String {
    "bios".into()
}

/// A command the agent runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `clean.get_clean_steps` / `deploy.get_deploy_steps` (synchronous).
    GetSteps(StepKind, GetStepsParams),
    /// `clean.execute_clean_step` / `deploy.execute_deploy_step` (asynchronous).
    ExecuteStep(ExecuteStepParams),
    /// `standby.prepare_image` (asynchronous).
    PrepareImage(PrepareImageParams),
    /// `standby.cache_image` (asynchronous).
    CacheImage(CacheImageParams),
    /// `standby.power_off` (asynchronous).
    PowerOff,
    /// `standby.run_image`: reboot (asynchronous).
    RunImage,
    /// `standby.sync` (synchronous).
    Sync,
    /// `standby.get_partition_uuids` (synchronous).
    GetPartitionUuids,
    /// `image.install_bootloader` (asynchronous).
    InstallBootloader(InstallBootloaderParams),
    /// `log.collect_system_logs` (synchronous).
    CollectSystemLogs,
    /// `iscsi.start_iscsi_target` (synchronous).
    StartIscsiTarget(StartIscsiTargetParams),
}

impl Command {
    /// The full name, `extension.command`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::GetSteps(StepKind::Clean, _) => "clean.get_clean_steps",
            Self::GetSteps(StepKind::Deploy, _) => "deploy.get_deploy_steps",
            Self::ExecuteStep(p) if p.kind == StepKind::Clean => "clean.execute_clean_step",
            Self::ExecuteStep(_) => "deploy.execute_deploy_step",
            Self::PrepareImage(_) => "standby.prepare_image",
            Self::CacheImage(_) => "standby.cache_image",
            Self::PowerOff => "standby.power_off",
            Self::RunImage => "standby.run_image",
            Self::Sync => "standby.sync",
            Self::GetPartitionUuids => "standby.get_partition_uuids",
            Self::InstallBootloader(_) => "image.install_bootloader",
            Self::CollectSystemLogs => "log.collect_system_logs",
            Self::StartIscsiTarget(_) => "iscsi.start_iscsi_target",
        }
    }

    /// The short name IPA records as `command_name`.
    pub fn short_name(&self) -> &'static str {
        let name = self.name();
        name.split_once('.').map_or(name, |(_, short)| short)
    }

    /// True for commands that return `RUNNING` and finish in the background.
    pub fn is_async(&self) -> bool {
        !matches!(
            self,
            Self::GetSteps(..)
                | Self::Sync
                | Self::GetPartitionUuids
                | Self::CollectSystemLogs
                | Self::StartIscsiTarget(_)
        )
    }

    /// Types a request's name and params.
    pub fn from_request(request: &CommandRequest) -> Result<Self, RestError> {
        let (extension, command) = request.name.split_once('.').ok_or_else(|| {
            RestError::new(
                ErrorKind::InvalidCommand,
                "Command name must be of the form <extension>.<name>",
            )
        })?;
        if !EXTENSIONS.contains(&extension) {
            return Err(RestError::object_not_found("Extension", extension));
        }
        let p = &request.params;
        let unknown = || {
            RestError::new(
                ErrorKind::InvalidCommand,
                format!("Unknown command: {command}"),
            )
        };
        Ok(match (extension, command) {
            ("clean", "get_clean_steps") => Self::GetSteps(StepKind::Clean, typed(p)?),
            ("deploy", "get_deploy_steps") => Self::GetSteps(StepKind::Deploy, typed(p)?),
            ("clean", "execute_clean_step") => Self::ExecuteStep(step_params(StepKind::Clean, p)?),
            ("deploy", "execute_deploy_step") => {
                Self::ExecuteStep(step_params(StepKind::Deploy, p)?)
            }
            ("standby", "prepare_image") => Self::PrepareImage(typed(p)?),
            ("standby", "cache_image") => Self::CacheImage(typed(p)?),
            ("standby", "power_off") => Self::PowerOff,
            ("standby", "run_image") => Self::RunImage,
            ("standby", "sync") => Self::Sync,
            ("standby", "get_partition_uuids") => Self::GetPartitionUuids,
            ("image", "install_bootloader") => Self::InstallBootloader(typed(p)?),
            ("log", "collect_system_logs") => Self::CollectSystemLogs,
            ("iscsi", "start_iscsi_target") => Self::StartIscsiTarget(typed(p)?),
            _ => return Err(unknown()),
        })
    }

    /// The request a conductor sends for this command.
    pub fn to_request(&self) -> CommandRequest {
        let params = match self {
            Self::GetSteps(_, p) => to_map(p),
            Self::ExecuteStep(p) => p.to_params(),
            Self::PrepareImage(p) => to_map(p),
            Self::CacheImage(p) => to_map(p),
            Self::InstallBootloader(p) => to_map(p),
            Self::StartIscsiTarget(p) => to_map(p),
            Self::PowerOff
            | Self::RunImage
            | Self::Sync
            | Self::GetPartitionUuids
            | Self::CollectSystemLogs => Map::new(),
        };
        CommandRequest {
            name: self.name().to_owned(),
            params,
        }
    }
}

fn invalid_params(error: impl std::fmt::Display) -> RestError {
    RestError::new(ErrorKind::InvalidCommandParams, error.to_string())
}

fn typed<T: serde::de::DeserializeOwned>(params: &Map<String, Value>) -> Result<T, RestError> {
    serde_json::from_value(Value::Object(params.clone())).map_err(invalid_params)
}

fn step_params(
    kind: StepKind,
    params: &Map<String, Value>,
) -> Result<ExecuteStepParams, RestError> {
    ExecuteStepParams::from_params(kind, params).map_err(invalid_params)
}

fn to_map<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// A parsed `POST /v1/commands/` call.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCommand {
    /// `wait` and the presented token.
    pub query: CommandQuery,
    /// The command.
    pub command: Command,
}

/// Parses a whole `POST /v1/commands/` call: the query string, then the
/// body, then the command, in IPA's order. The token is *not* checked here
/// (the agent compares it with its own before parsing the body); a
/// missing token is reported by the caller.
pub fn parse_run_command(query_string: &str, body: &[u8]) -> Result<RunCommand, AgentFault> {
    let query = CommandQuery::parse(query_string);
    let request = CommandRequest::parse(body)?;
    let command = Command::from_request(&request)?;
    Ok(RunCommand { query, command })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(name: &str, params: Value) -> CommandRequest {
        CommandRequest {
            name: name.into(),
            params: params.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn types_every_command() {
        let node = json!({"node": {"uuid": "u"}, "ports": []});
        let cases = [
            ("clean.get_clean_steps", node.clone(), false),
            ("deploy.get_deploy_steps", node.clone(), false),
            (
                "clean.execute_clean_step",
                json!({"step": {"step": "erase_devices_metadata"}, "node": {"uuid": "u"}, "ports": []}),
                true,
            ),
            (
                "deploy.execute_deploy_step",
                json!({"step": {"step": "write_image"}, "node": {"uuid": "u"}, "ports": []}),
                true,
            ),
            (
                "standby.prepare_image",
                json!({"image_info": {"id": "i", "urls": ["u"]}}),
                true,
            ),
            (
                "standby.cache_image",
                json!({"image_info": {"id": "i", "urls": ["u"]}}),
                true,
            ),
            ("standby.power_off", json!({}), true),
            ("standby.run_image", json!({}), true),
            ("standby.sync", json!({}), false),
            ("standby.get_partition_uuids", json!({}), false),
            (
                "image.install_bootloader",
                json!({"root_uuid": "0x1234"}),
                true,
            ),
            ("log.collect_system_logs", json!({}), false),
            (
                "iscsi.start_iscsi_target",
                json!({"iqn": "iqn.2008-10.org.openstack:u", "portal_port": 3260,
                       "wipe_disk_metadata": true, "chap_username": "u", "chap_secret": "s3cret-s3cret"}),
                false,
            ),
        ];
        for (name, params, is_async) in cases {
            let command = Command::from_request(&request(name, params)).unwrap();
            assert_eq!(command.name(), name);
            assert_eq!(command.is_async(), is_async, "{name}");
            assert_eq!(
                Command::from_request(&command.to_request()).unwrap(),
                command,
                "{name}"
            );
        }
    }

    #[test]
    fn iscsi_params_are_ipas_and_the_secret_is_masked() {
        let ipa = Command::from_request(&request(
            "iscsi.start_iscsi_target",
            json!({"iqn": "iqn.x:y", "portal_port": 3260, "wipe_disk_metadata": false}),
        ))
        .unwrap();
        let Command::StartIscsiTarget(p) = ipa else {
            panic!("not start_iscsi_target: {ipa:?}")
        };
        assert_eq!(p.iqn.as_deref(), Some("iqn.x:y"));
        assert_eq!(p.portal_port, Some(3260));
        assert!(p.chap_secret.is_none());
        let with_chap = Command::from_request(&request(
            "iscsi.start_iscsi_target",
            json!({"chap_username": "ferric", "chap_secret": "very-secret-value"}),
        ))
        .unwrap();
        assert!(!format!("{with_chap:?}").contains("very-secret-value"));
        let wire = serde_json::to_string(&with_chap.to_request().params).unwrap();
        assert!(
            wire.contains("very-secret-value"),
            "the wire carries it: {wire}"
        );
        let bad_port = Command::from_request(&request(
            "iscsi.start_iscsi_target",
            json!({"portal_port": 70000}),
        ))
        .unwrap_err();
        assert_eq!(bad_port.code, 400);
    }

    #[test]
    fn short_names_are_what_ironic_matches() {
        let c = Command::from_request(&request("standby.power_off", json!({}))).unwrap();
        assert_eq!(c.short_name(), "power_off");
    }

    #[test]
    fn unknown_commands_get_ipa_errors() {
        let no_dot = Command::from_request(&request("power_off", json!({}))).unwrap_err();
        assert_eq!(
            no_dot.to_string(),
            "Invalid command: Command name must be of the form <extension>.<name>"
        );
        assert_eq!(no_dot.code, 400);
        let no_ext = Command::from_request(&request("nope.power_off", json!({}))).unwrap_err();
        assert_eq!(
            no_ext.to_string(),
            "Not found: Extension with id nope not found."
        );
        assert_eq!(no_ext.code, 404);
        let no_cmd = Command::from_request(&request("standby.dance", json!({}))).unwrap_err();
        assert_eq!(
            no_cmd.to_string(),
            "Invalid command: Unknown command: dance"
        );
        assert_eq!(no_cmd.code, 400);
        let bad =
            Command::from_request(&request("standby.prepare_image", json!({"image_info": 5})))
                .unwrap_err();
        assert_eq!(bad.error_type, "InvalidCommandParamsError");
        let missing =
            Command::from_request(&request("clean.get_clean_steps", json!({}))).unwrap_err();
        assert_eq!(missing.code, 400);
    }

    #[test]
    fn install_bootloader_defaults_to_bios() {
        let c = Command::from_request(&request("image.install_bootloader", json!({}))).unwrap();
        let Command::InstallBootloader(p) = c else {
            panic!("wrong command")
        };
        assert_eq!(p.target_boot_mode, "bios");
    }

    #[test]
    fn parses_a_whole_call() {
        let call = parse_run_command(
            "wait=true&agent_token=t",
            br#"{"name": "standby.sync", "params": {}}"#,
        )
        .unwrap();
        assert!(call.query.wait);
        assert_eq!(call.command, Command::Sync);
        let err = parse_run_command("", br#"{"name": "x.y", "params": {}}"#).unwrap_err();
        assert_eq!(err.status, 404);
    }
}
