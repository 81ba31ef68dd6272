//! `clean.get_clean_steps` / `deploy.get_deploy_steps` and their
//! `execute_*_step`: the steps Ferric's agent implements, under one
//! hardware manager, with IPA's version check before each step.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferric_ipa::steps::{
    ExecuteStepParams, GetStepsResult, StepDescription, StepKind, StepResult, WriteImageArgs,
};
use ferric_ipa::{ErrorKind, RestError};
use serde_json::{json, Value};

use crate::agent::Agent;
use crate::executor::{CommandEntry, Failure};

/// The key steps are listed under.
pub const MANAGER: &str = "FerricHardwareManager";
/// The hardware manager's name in `hardware_manager_version`.
pub const MANAGER_NAME: &str = "ferric_hardware_manager";
/// Its version: bump it when steps or their priorities change.
pub const MANAGER_VERSION: &str = "1.0";

fn step(name: &str, priority: i64, abortable: Option<bool>) -> StepDescription {
    StepDescription {
        step: name.to_owned(),
        priority,
        interface: "deploy".to_owned(),
        reboot_requested: false,
        abortable,
        argsinfo: None,
    }
}

/// The steps of `kind`, with IPA's priorities for the same steps.
pub fn descriptions(kind: StepKind) -> Vec<StepDescription> {
    match kind {
        StepKind::Clean => vec![
            step("erase_devices", 10, Some(true)),
            step("erase_devices_metadata", 99, Some(true)),
        ],
        StepKind::Deploy => vec![
            step("erase_devices_metadata", 0, None),
            step("write_image", 0, None),
        ],
    }
}

/// `{name: version}` of the hardware managers.
pub fn versions() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGER_NAME.to_owned(), MANAGER_VERSION.to_owned())])
}

/// `get_*_steps`' result.
pub fn get_steps(kind: StepKind) -> Value {
    GetStepsResult {
        kind,
        steps: BTreeMap::from([(MANAGER.to_owned(), descriptions(kind))]),
        hardware_manager_version: versions(),
    }
    .to_value()
}

/// IPA's `check_versions`: Ironic's recorded versions must be ours.
fn check_versions(provided: Option<&Value>) -> Result<(), RestError> {
    let ours = serde_json::to_value(versions()).unwrap_or(Value::Null);
    match provided {
        Some(theirs) if *theirs != ours => Err(RestError::version_mismatch(&ours, theirs)),
        _ => Ok(()),
    }
}

/// Runs one step and wraps its result as `{"<kind>_result", "<kind>_step"}`.
pub async fn execute_step(
    agent: &Arc<Agent>,
    params: ExecuteStepParams,
    entry: &Arc<CommandEntry>,
) -> Result<Value, Failure> {
    agent.cache_node(params.node.clone());
    check_versions(params.version.as_ref())?;
    let kind = params.kind;
    let requested = serde_json::to_value(&params.step).unwrap_or(Value::Null);
    let result = match params.step.step.as_str() {
        "erase_devices_metadata" => super::erase::erase_devices_metadata(agent)
            .await
            .map(|()| Value::Null),
        "erase_devices" => super::erase::erase_devices(agent, entry).await,
        "write_image" if kind == StepKind::Deploy => write_image(agent, &params, entry).await,
        other => Err(RestError::new(
            ErrorKind::HardwareManagerMethodNotFound,
            format!("Could not find method: {other}"),
        )),
    }?;
    Ok(StepResult {
        kind,
        result,
        step: requested,
    }
    .to_value())
}

/// The `write_image` deploy step: `standby.prepare_image` run inline; the
/// step's result is prepare_image's (`{"result": "prepare_image: ..."}`).
async fn write_image(
    agent: &Arc<Agent>,
    params: &ExecuteStepParams,
    entry: &Arc<CommandEntry>,
) -> Result<Value, RestError> {
    let args: WriteImageArgs =
        serde_json::from_value(Value::Object(params.step_args())).map_err(|e| {
            RestError::new(
                ErrorKind::InvalidCommandParams,
                format!("write_image arguments: {e}"),
            )
        })?;
    args.image_info.validate(agent.md5_enabled())?;
    let configdrive = args
        .configdrive
        .map(ferric_ipa::Secret::new)
        .or_else(|| args.image_info.configdrive.clone());
    let message =
        super::standby::prepare_image(agent, &args.image_info, configdrive, false, entry).await?;
    Ok(json!({"result": format!("prepare_image: {message}")}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_steps_like_ipa() {
        let clean = get_steps(StepKind::Clean);
        let steps = &clean["clean_steps"][MANAGER];
        assert_eq!(steps[1]["step"], "erase_devices_metadata");
        assert_eq!(steps[1]["priority"], 99);
        assert_eq!(steps[0]["abortable"], true);
        assert_eq!(
            clean["hardware_manager_version"][MANAGER_NAME],
            MANAGER_VERSION
        );
        let deploy = get_steps(StepKind::Deploy);
        assert_eq!(deploy["deploy_steps"][MANAGER][1]["step"], "write_image");
        assert!(deploy["deploy_steps"][MANAGER][1]
            .get("abortable")
            .is_none());
    }

    #[test]
    fn version_check() {
        assert!(check_versions(None).is_ok());
        assert!(check_versions(Some(&json!({MANAGER_NAME: MANAGER_VERSION}))).is_ok());
        let err = check_versions(Some(&json!({"generic_hardware_manager": "1.2"}))).unwrap_err();
        assert_eq!(err.code, 409);
        assert!(err
            .details
            .contains("versions used by ironic: {'generic_hardware_manager': '1.2'}"));
    }
}
