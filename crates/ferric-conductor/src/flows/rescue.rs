//! Rescue: active → rescuing → rescue, booting a rescue ramdisk the user
//! can log in to; unrescue brings the instance back.

use ferric_core::Event;
use ferric_drivers::Outcome;
use serde_json::json;

use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

pub(crate) async fn start_rescue(
    mut task: Task,
    password: ferric_core::Secret<String>,
) -> Result<()> {
    if task.node.maintenance {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeInMaintenance {
                op: "rescuing",
                node,
            },
        )
        .await;
    }
    if let Err(e) = validate(&mut task, true).await {
        let msg = format!(
            "Failed to rescue instance {} for node {}: Validation failed: {e}",
            task.node.instance_uuid.as_deref().unwrap_or("None"),
            task.node.uuid
        );
        return super::refuse(task, ConductorError::Failed(msg)).await;
    }
    let store_password = |t: &mut Task| {
        t.node
            .instance_info
            .insert("rescue_password".into(), json!(password.expose()));
    };
    super::begin(task, Event::Rescue, None, "rescue", store_password, rescue).await
}

async fn validate(task: &mut Task, with_rescue: bool) -> Result<(), String> {
    task.driver().map_err(|e| e.to_string())?;
    let name = task.node.driver.clone();
    let text = |e| ConductorError::from_driver(&name, e).to_string();
    task.validate(InterfaceKind::Power).await.map_err(text)?;
    if with_rescue {
        task.validate(InterfaceKind::Rescue).await.map_err(text)?;
        task.validate(InterfaceKind::Network).await.map_err(text)?;
    }
    Ok(())
}

pub(crate) fn forget_rescue_password(task: &mut Task) {
    task.node.instance_info.remove("rescue_password");
    task.node.instance_info.remove("hashed_rescue_password");
}

async fn rescue(mut task: Task) -> Result<()> {
    task.driver()?;
    match task.call("rescue.rescue", |d, t| d.rescue.rescue(t)).await {
        Ok(Outcome::Done) => task.fire(Event::Done, None)?,
        Ok(Outcome::Wait | Outcome::RerunAfterReboot) => task.fire(Event::Wait, None)?,
        Err(e) => {
            forget_rescue_password(&mut task);
            task.node.last_error = Some(format!("Failed to rescue: {e}"));
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}

pub(crate) async fn start_unrescue(mut task: Task) -> Result<()> {
    task.remove_internal("agent_url");
    if task.node.maintenance {
        let node = task.node.uuid.to_string();
        return super::refuse(
            task,
            ConductorError::NodeInMaintenance {
                op: "unrescuing",
                node,
            },
        )
        .await;
    }
    if let Err(e) = validate(&mut task, false).await {
        let msg = format!(
            "Failed to unrescue instance {} for node {}: Validation failed: {e}",
            task.node.instance_uuid.as_deref().unwrap_or("None"),
            task.node.uuid
        );
        return super::refuse(task, ConductorError::Failed(msg)).await;
    }
    super::begin(task, Event::Unrescue, None, "unrescue", |_| {}, unrescue).await
}

async fn unrescue(mut task: Task) -> Result<()> {
    task.driver()?;
    match task
        .call("rescue.unrescue", |d, t| d.rescue.unrescue(t))
        .await
    {
        Ok(()) => task.fire(Event::Done, None)?,
        Err(e) => {
            task.node.last_error = Some(format!("Failed to unrescue: {e}"));
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}
