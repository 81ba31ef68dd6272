//! Inspection: manageable (or inspect failed) → inspecting → manageable.

use ferric_core::Event;
use ferric_drivers::Outcome;

use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

pub(crate) async fn start(mut task: Task) -> Result<()> {
    let validated = async {
        task.driver()?;
        let name = task.node.driver.clone();
        let fail = |e| ConductorError::from_driver(&name, e);
        task.validate(InterfaceKind::Power).await.map_err(fail)?;
        task.validate(InterfaceKind::Inspect).await.map_err(fail)
    }
    .await;
    if let Err(e) = validated {
        return super::refuse(task, e).await;
    }
    super::begin(task, Event::Inspect, None, "inspect", |_| {}, run).await
}

async fn run(mut task: Task) -> Result<()> {
    task.driver()?;
    match task
        .call("inspect.inspect_hardware", |d, t| {
            d.inspect.inspect_hardware(t)
        })
        .await
    {
        Ok(Outcome::Done) => task.fire(Event::Done, None)?,
        Ok(Outcome::Wait | Outcome::RerunAfterReboot) => task.fire(Event::Wait, None)?,
        Err(e) => {
            task.node.last_error = Some(e.to_string());
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}
