//! Undeploying: active (and the other deployed or failed states) →
//! deleting → cleaning → available.

use ferric_core::{Event, ProvisionState};

use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

pub(crate) async fn start(mut task: Task) -> Result<()> {
    task.remove_internal("agent_url");
    if task.node.protected {
        let node = task.node.uuid.to_string();
        return super::refuse(task, ConductorError::NodeProtected(node)).await;
    }
    let validated = match task.driver() {
        Ok(_) => task
            .validate(InterfaceKind::Power)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = validated {
        let msg = format!(
            "Failed to validate power driver interface. Can not delete instance. Error: {e}"
        );
        return super::refuse(task, ConductorError::Failed(msg)).await;
    }
    let previous = task.node.provision_state;
    super::begin(
        task,
        Event::Delete,
        None,
        "tear down",
        |_| {},
        move |t| run(t, previous),
    )
    .await
}

async fn run(mut task: Task, previous: ProvisionState) -> Result<()> {
    task.driver()?;
    let torn_down = tear_down(&mut task, previous).await;
    forget_instance(&mut task);
    if let Err(e) = torn_down {
        task.node.last_error = Some(format!("Failed to tear down: {e}"));
        task.fire(Event::Fail, None)?;
        task.release().await?;
        return Ok(());
    }
    task.fire(Event::Clean, None)?;
    task.save().await?;
    super::clean::run(task, None).await
}

async fn tear_down(
    task: &mut Task,
    previous: ProvisionState,
) -> Result<(), ferric_drivers::DriverError> {
    use ProvisionState as S;
    if matches!(
        previous,
        S::RescueWait | S::Rescue | S::UnrescueFailed | S::RescueFailed
    ) {
        task.call("rescue.clean_up", |d, t| d.rescue.clean_up(t))
            .await?;
    }
    if task.node.console_enabled {
        task.call("console.stop_console", |d, t| d.console.stop_console(t))
            .await?;
    }
    task.call("deploy.clean_up", |d, t| d.deploy.clean_up(t))
        .await?;
    task.call("deploy.tear_down", |d, t| d.deploy.tear_down(t))
        .await
}

/// What Ironic forgets about the instance once it is gone, success or not.
fn forget_instance(task: &mut Task) {
    task.node.instance_info.clear();
    task.node.instance_uuid = None;
    task.node.instance_name = None;
    task.node.deploy_step.clear();
    super::wipe_deploy_info(task);
    for key in [
        "instance",
        "root_uuid_or_disk_id",
        "is_whole_disk_image",
        "is_source_a_path",
        "deploy_boot_mode",
    ] {
        task.remove_internal(key);
    }
    if task.internal("automatic_lessee").is_some() {
        task.node.lessee = None;
        task.remove_internal("automatic_lessee");
    }
}
