//! Inspection: manageable (or inspect failed) → inspecting → manageable.

use ferric_core::Event;
use ferric_drivers::Outcome;

use crate::error::{ConductorError, Result};
use crate::task::Task;

pub(crate) async fn start(mut task: Task) -> Result<()> {
    let validated = async {
        let driver = task.driver()?;
        let name = task.node.driver.clone();
        let fail = |e| ConductorError::from_driver(&name, e);
        driver.power.validate(&task.dtask()).await.map_err(fail)?;
        driver.inspect.validate(&task.dtask()).await.map_err(fail)
    }
    .await;
    if let Err(e) = validated {
        return super::refuse(task, e).await;
    }
    super::begin(task, Event::Inspect, None, "inspect", |_| {}, run).await
}

async fn run(mut task: Task) -> Result<()> {
    let driver = task.driver()?;
    match driver.inspect.inspect_hardware(&mut task.dtask()).await {
        Ok(Outcome::Done) => task.fire(Event::Done, None)?,
        Ok(Outcome::Wait) => task.fire(Event::Wait, None)?,
        Err(e) => {
            task.node.last_error = Some(e.to_string());
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}
