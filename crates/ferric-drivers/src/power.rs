//! Power changes made by interfaces themselves (a deploy rebooting its node
//! into the ramdisk, a step restarting it), with the bookkeeping Ironic's
//! `node_power_action` does when a driver calls it.

use ferric_core::{Node, PowerState};

use crate::error::DriverError;
use crate::interface::Task;

/// What does not survive a machine's power-off or reboot: its agent (its
/// address may change with DHCP, its token and certificate are made anew)
/// and the steps that agent offered. As Ironic's
/// `wipe_internal_info_on_power_off`.
pub fn forget_agent(node: &mut Node) {
    for key in [
        "agent_url",
        "agent_secret_token",
        "agent_cached_deploy_steps",
        "agent_cached_clean_steps",
        "agent_cached_service_steps",
        "agent_verify_ca",
    ] {
        node.driver_internal_info.remove(key);
    }
}

/// Powers the node on or off, or reboots it, through its power interface,
/// and records the state it reached and when it changed
/// (`last_power_state_change`, as Ironic's `node_power_action`).
/// Power-offs and reboots forget the agent first, so the agent that boots
/// next gets a token of its own.
pub async fn power_action(task: &mut Task<'_>, target: PowerState) -> Result<(), DriverError> {
    if target != PowerState::On {
        forget_agent(task.node);
    }
    task.node.driver_internal_info.insert(
        "last_power_state_change".into(),
        serde_json::json!(ferric_core::naive_timestamp(chrono::Utc::now())),
    );
    let power = task.driver.power.clone();
    match target {
        PowerState::Rebooting | PowerState::SoftRebooting => power.reboot(task, None).await?,
        _ => power.set_power_state(task, target, None).await?,
    }
    task.node.power_state = Some(match target {
        PowerState::Off | PowerState::SoftPowerOff => PowerState::Off,
        _ => PowerState::On,
    });
    task.node.target_power_state = None;
    Ok(())
}
