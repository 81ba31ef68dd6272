//! The erase steps: `erase_devices_metadata` (IPA's
//! `destroy_disk_metadata` on every disk) and `erase_devices` (IPA's shred
//! with `agent_erase_devices_iterations` random passes, then zeros unless
//! `agent_erase_devices_zeroize` is false). Disks listed in the node's
//! `properties.skip_block_devices` (root device hints each) are skipped.

use std::sync::{Arc, Mutex};

use ferric_ipa::inventory::BlockDevice;
use ferric_ipa::{ErrorKind, RestError, RootDeviceHints};
use serde_json::{Map, Value};

use crate::agent::Agent;
use crate::disk;
use crate::executor::CommandEntry;
use crate::imaging;

/// The disks to erase: every disk except the skip list's, in reverse name
/// order as IPA does.
fn erasable(agent: &Agent) -> Vec<BlockDevice> {
    let skip: Vec<RootDeviceHints> = agent
        .node()
        .and_then(|n| n.properties.get("skip_block_devices").cloned())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|hint| RootDeviceHints::parse(hint).ok().flatten())
        .collect();
    let mut disks: Vec<BlockDevice> = disk::disks(agent)
        .into_iter()
        .filter(|d| !skip.iter().any(|h| h.matches(d)))
        .collect();
    disks.sort_by(|a, b| b.name.cmp(&a.name));
    disks
}

/// `erase_devices_metadata`.
pub async fn erase_devices_metadata(agent: &Arc<Agent>) -> Result<(), RestError> {
    let mut failures = Vec::new();
    for device in erasable(agent) {
        let path = disk::writable_path(agent, &device)?;
        if let Err(e) = imaging::destroy_metadata(&path).await {
            tracing::error!(device = %device.name, error = %e, "failed to erase the metadata");
            failures.push(format!("\"{}\": {e}", device.name));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(RestError::new(
            ErrorKind::BlockDeviceErase,
            format!(
                "Failed to erase the metadata on the device(s): {}",
                failures.join("; ")
            ),
        ))
    }
}

/// `erase_devices`: `{device name: null}` for every disk shredded.
pub async fn erase_devices(
    agent: &Arc<Agent>,
    entry: &Arc<CommandEntry>,
) -> Result<Value, RestError> {
    let node = agent.node();
    let passes = node
        .as_ref()
        .and_then(|n| n.internal_u64("agent_erase_devices_iterations"))
        .unwrap_or(1);
    let zero = node
        .as_ref()
        .is_none_or(|n| n.internal_flag("agent_erase_devices_zeroize", true));
    let passes = u32::try_from(passes).unwrap_or(u32::MAX);
    let status = Arc::new(Mutex::new(Value::Null));
    let reader = status.clone();
    entry.set_progress(Arc::new(move || {
        reader.lock().map(|v| v.clone()).unwrap_or(Value::Null)
    }));
    let mut results = Map::new();
    for device in erasable(agent) {
        let path = disk::writable_path(agent, &device)?;
        let name = device.name.clone();
        let status = status.clone();
        let publish = Arc::new(move |mut p: Value| {
            if let Some(map) = p.as_object_mut() {
                map.insert("device".into(), Value::String(name.clone()));
            }
            if let Ok(mut s) = status.lock() {
                *s = p;
            }
        });
        imaging::erase(path, passes, zero, publish)
            .await
            .map_err(|e| {
                RestError::new(
                    ErrorKind::BlockDeviceErase,
                    format!("Erasing block device {} failed: {e}", device.name),
                )
            })?;
        results.insert(device.name.clone(), Value::Null);
    }
    Ok(Value::Object(results))
}
