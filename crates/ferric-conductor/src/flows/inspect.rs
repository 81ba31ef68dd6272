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

/// The agent's inventory reached a node waiting in `inspect wait`: the
/// inspect interface reads it into the node in a worker, the inventory is
/// stored, and the node ends `manageable` (or `inspect failed`).
pub(crate) async fn continue_with(
    mut task: Task,
    inventory: ferric_core::JsonObject,
    plugin_data: ferric_core::JsonObject,
) -> Result<()> {
    if task.node.provision_state != ferric_core::ProvisionState::InspectWait {
        let e = ConductorError::NotFound {
            kind: "Node",
            ident: "lookup".into(),
        };
        return super::refuse(task, e).await;
    }
    let slot = match task.inner.worker_slot() {
        Ok(s) => s,
        Err(e) => return super::no_free_worker(task, e).await,
    };
    let now = ferric_core::naive_timestamp(task.now());
    task.set_internal("agent_last_heartbeat", serde_json::json!(now));
    task.fire(Event::Resume, None)?;
    task.save().await?;
    let inner = task.inner.clone();
    inner.spawn_flow(slot, "inspection", process(task, inventory, plugin_data));
    Ok(())
}

async fn process(
    mut task: Task,
    inventory: ferric_core::JsonObject,
    mut plugin_data: ferric_core::JsonObject,
) -> Result<()> {
    let (inv, data) = (inventory.clone(), plugin_data.clone());
    let read = task
        .call("inspect.continue_inspection", move |d, t| {
            Box::pin(async move { d.inspect.continue_inspection(t, &inv, &data).await })
        })
        .await;
    if let Err(e) = read {
        // The ramdisk is left neither running nor set to boot.
        if let Err(abort) = task.call("inspect.abort", |d, t| d.inspect.abort(t)).await {
            tracing::warn!(node = %task.node.uuid, error = %abort.chain(), "could not power the node off after a failed inspection");
        }
        task.node.last_error = Some(format!("Failed to finish inspection: {e}"));
        task.fire(Event::Fail, None)?;
        task.release().await?;
        return Ok(());
    }
    plugin_data.remove("logs");
    let stored = ferric_core::NodeInventory {
        node_uuid: task.node.uuid,
        inventory,
        plugin_data,
        created_at: task.now(),
    };
    if let Err(e) = task.inner.store.save_inventory(&stored).await {
        task.node.last_error = Some(format!(
            "Failed to finish inspection: could not store the inventory: {e}"
        ));
        task.fire(Event::Fail, None)?;
        task.release().await?;
        return Ok(());
    }
    task.fire(Event::Done, None)?;
    task.release().await?;
    Ok(())
}
