//! Rescue: active → rescuing → rescue, booting a rescue ramdisk the user
//! can log in to; unrescue brings the instance back.

use ferric_core::Event;
use ferric_drivers::Outcome;
use serde_json::json;

use crate::error::{ConductorError, Result};
use crate::task::Task;

pub(crate) async fn start_rescue(mut task: Task, password: String) -> Result<()> {
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
            .insert("rescue_password".into(), json!(password));
    };
    super::begin(task, Event::Rescue, None, "rescue", store_password, rescue).await
}

async fn validate(task: &mut Task, with_rescue: bool) -> Result<(), String> {
    let driver = task.driver().map_err(|e| e.to_string())?;
    let name = task.node.driver.clone();
    let text = |e| ConductorError::from_driver(&name, e).to_string();
    driver.power.validate(&task.dtask()).await.map_err(text)?;
    if with_rescue {
        driver.rescue.validate(&task.dtask()).await.map_err(text)?;
        driver.network.validate(&task.dtask()).await.map_err(text)?;
    }
    Ok(())
}

pub(crate) fn forget_rescue_password(task: &mut Task) {
    task.node.instance_info.remove("rescue_password");
    task.node.instance_info.remove("hashed_rescue_password");
}

async fn rescue(mut task: Task) -> Result<()> {
    let driver = task.driver()?;
    match driver.rescue.rescue(&mut task.dtask()).await {
        Ok(Outcome::Done) => task.fire(Event::Done, None)?,
        Ok(Outcome::Wait) => task.fire(Event::Wait, None)?,
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
    let driver = task.driver()?;
    match driver.rescue.unrescue(&mut task.dtask()).await {
        Ok(()) => task.fire(Event::Done, None)?,
        Err(e) => {
            task.node.last_error = Some(format!("Failed to unrescue: {e}"));
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}
