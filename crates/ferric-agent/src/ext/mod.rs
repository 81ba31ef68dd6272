//! The commands, as IPA's extensions: `clean`, `deploy` ([`steps`]),
//! `standby` ([`standby`]), `image` ([`bootloader`]), `log` ([`logs`]) and
//! `iscsi` ([`iscsi`]).
//! [`execute`] starts a typed command with IPA's sync/async semantics.

pub mod bootloader;
pub mod erase;
pub mod iscsi;
pub mod logs;
pub mod standby;
pub mod steps;

use std::sync::Arc;

use ferric_ipa::command::async_text_result;
use ferric_ipa::{Command, RestError};
use serde_json::Value;

use crate::agent::{Agent, Shutdown};
use crate::executor::{CommandEntry, Failure};

/// Starts `command`: synchronous ones run to their end; asynchronous ones
/// return at once with status RUNNING. Validation and busy errors come
/// back as `Err` (HTTP errors).
pub async fn execute(agent: &Arc<Agent>, command: Command) -> Result<Arc<CommandEntry>, RestError> {
    let name = command.short_name();
    if !command.is_async() {
        return agent
            .commands
            .run_sync(name, run_sync(agent, command))
            .await;
    }
    let validation = validate(agent, &command);
    let on_end_agent = agent.clone();
    let ends_process = matches!(command, Command::PowerOff | Command::RunImage);
    let worker = agent.clone();
    agent
        .commands
        .run_async(
            name,
            || validation,
            move |entry| run_async(worker, command, entry),
            move || {
                if !ends_process {
                    // IPA's force_heartbeat after every asynchronous command.
                    on_end_agent.heartbeat_now.notify_one();
                }
            },
        )
        .await
}

fn validate(agent: &Agent, command: &Command) -> Result<(), RestError> {
    match command {
        Command::PrepareImage(p) => p.image_info.validate(agent.md5_enabled()),
        Command::CacheImage(p) => p.image_info.validate(agent.md5_enabled()),
        _ => Ok(()),
    }
}

async fn run_sync(agent: &Arc<Agent>, command: Command) -> Result<Value, RestError> {
    match command {
        Command::GetSteps(kind, params) => {
            agent.cache_node(params.node);
            Ok(steps::get_steps(kind))
        }
        Command::Sync => {
            rustix::fs::sync();
            Ok(Value::Null)
        }
        Command::GetPartitionUuids => Ok(standby::partition_uuids(agent)),
        Command::CollectSystemLogs => logs::collect(agent).await,
        Command::StartIscsiTarget(params) => iscsi::start(agent, params).await,
        other => Err(RestError::new(
            ferric_ipa::ErrorKind::CommandExecution,
            format!("{} is not a synchronous command", other.name()),
        )),
    }
}

async fn run_async(
    agent: Arc<Agent>,
    command: Command,
    entry: Arc<CommandEntry>,
) -> Result<Value, Failure> {
    let name = command.short_name();
    let outcome = match command {
        Command::ExecuteStep(params) => steps::execute_step(&agent, params, &entry).await,
        Command::PrepareImage(p) => {
            let configdrive = p.configdrive.or_else(|| p.image_info.configdrive.clone());
            standby::prepare_image(&agent, &p.image_info, configdrive, false, &entry)
                .await
                .map(|msg| async_text_result(name, &msg))
                .map_err(Failure::from)
        }
        Command::CacheImage(p) => standby::cache_image(&agent, &p.image_info, p.force, &entry)
            .await
            .map(|msg| async_text_result(name, &msg))
            .map_err(Failure::from),
        Command::PowerOff => standby::shut_down(&agent, Shutdown::PowerOff).map_err(Failure::from),
        Command::RunImage => standby::shut_down(&agent, Shutdown::Reboot).map_err(Failure::from),
        Command::InstallBootloader(p) => bootloader::install(&agent, &p)
            .map(|msg| async_text_result(name, &msg))
            .map_err(Failure::from),
        other => Err(Failure::from(RestError::new(
            ferric_ipa::ErrorKind::CommandExecution,
            format!("{} is not an asynchronous command", other.name()),
        ))),
    };
    match &outcome {
        Ok(_) => tracing::info!(command = name, "asynchronous command completed"),
        Err(Failure::Error(e) | Failure::VersionMismatch(e)) => {
            tracing::error!(command = name, error = %e, "command failed")
        }
    }
    outcome
}
