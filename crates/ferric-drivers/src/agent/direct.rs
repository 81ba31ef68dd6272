//! The `direct` deploy interface, as Ironic's `AgentDeploy`: the node boots
//! the deploy ramdisk, its agent downloads the image, verifies and writes
//! it, the conductor sets the boot device to the disk and the node reboots
//! into the instance. Cleaning runs the agent's steps (erasing disks).
//!
//! Deploy steps, with Ironic's names and priorities: `deploy` (100: boot
//! the ramdisk), `write_image` (80: run on the agent), `prepare_instance_boot`
//! (60), `tear_down_agent` (40: the agent powers the node off),
//! `switch_to_tenant_network` (30), `boot_instance` (20).

use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{BootDevice, InterfaceKind, JsonObject, Node, PowerState, ProvisionState as S};
use serde_json::{json, Map, Value};

use super::client::{command_error, AgentClient};
use super::{
    cached_steps, current_step, execute_in_band, fast_track, flow_of, progress, refresh_steps,
    step_id,
};
use crate::error::DriverError;
use crate::interface::*;
use crate::power::{forget_agent, power_action};

pub struct DirectDeploy {
    /// Priorities of the agent's `erase_devices` and
    /// `erase_devices_metadata` in automated cleaning (`[deploy]`).
    erase_priorities: (i32, i32),
}

impl DirectDeploy {
    pub fn new(config: &crate::DeployConfig) -> Self {
        DirectDeploy {
            erase_priorities: (
                config.erase_devices_priority,
                config.erase_devices_metadata_priority,
            ),
        }
    }
}

/// The conductor's own deploy steps.
const OUT_OF_BAND: &[(&str, i32)] = &[
    ("deploy", 100),
    ("write_image", 80),
    ("prepare_instance_boot", 60),
    ("tear_down_agent", 40),
    ("switch_to_tenant_network", 30),
    ("boot_instance", 20),
];

const EVENT: &str = "deploying";

fn info_str<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.instance_info
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Ironic's image checks (`AgentDeploy.validate`), with its texts.
fn validate_image(node: &Node) -> Result<(), DriverError> {
    let Some(source) = info_str(node, "image_source") else {
        return Err(DriverError::MissingParameter(format!(
            "Node {} failed to validate deploy image info. Some parameters were missing. Missing are: \
             ['instance_info.image_source']",
            node.uuid
        )));
    };
    if !is_http(source) {
        return Err(DriverError::InvalidParameter(format!(
            "Validation of image href {source} failed, reason: Ferric deploys images from HTTP(S) URLs only"
        )));
    }
    if let Some(kind) = info_str(node, "image_type") {
        if !matches!(kind, "whole-disk" | "partition") {
            return Err(DriverError::InvalidParameter(format!(
                "Invalid image_type \"{kind}\", valid are partition, whole-disk"
            )));
        }
    }
    let checksum = info_str(node, "image_checksum");
    let algo = info_str(node, "image_os_hash_algo");
    let value = info_str(node, "image_os_hash_value");
    let complete = match (algo, value) {
        (Some(_), Some(_)) => true,
        (None, None) => checksum.is_some(),
        _ => false,
    };
    if !complete {
        return Err(DriverError::MissingParameter(format!(
            "image_source's \"image_checksum\", or \"image_os_hash_algo\" and \"image_os_hash_value\" must be \
             provided in instance_info for node {}",
            node.uuid
        )));
    }
    Ok(())
}

fn validate_root_device(node: &Node) -> Result<(), DriverError> {
    let Some(hints) = node.properties.get("root_device") else {
        return Ok(());
    };
    ferric_ipa::RootDeviceHints::parse(hints)
        .map(drop)
        .map_err(|e| {
            DriverError::InvalidParameter(format!(
                "Failed to validate the root device hints for node {}. Error: {e}",
                node.uuid
            ))
        })
}

fn is_whole_disk(node: &Node) -> bool {
    node.driver_internal_info
        .get("is_whole_disk_image")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// Ironic's `build_instance_info_for_deploy` for an HTTP image: checks the
/// URL answers, and records the image's URL and type.
async fn update_instance_info(task: &mut Task<'_>) -> Result<(), DriverError> {
    validate_image(task.node)?;
    let source = info_str(task.node, "image_source").unwrap_or("").to_owned();
    check_href(&source, task.config.agent.command_timeout).await?;
    let partition = task.node.instance_info.contains_key("kernel")
        && task.node.instance_info.contains_key("ramdisk");
    let kind = info_str(task.node, "image_type")
        .map(str::to_owned)
        .unwrap_or_else(|| if partition { "partition" } else { "whole-disk" }.to_owned());
    let info = &mut task.node.instance_info;
    info.insert("image_url".into(), json!(source));
    info.insert("image_type".into(), json!(kind));
    task.node
        .driver_internal_info
        .insert("is_whole_disk_image".into(), json!(kind == "whole-disk"));
    Ok(())
}

/// A HEAD of the image URL, as Ironic's `validate_href`: the conductor too
/// must reach it.
async fn check_href(url: &str, timeout: u64) -> Result<(), DriverError> {
    let failed = |reason: String| {
        DriverError::InvalidParameter(format!(
            "Validation of image href {url} failed, reason: {reason}"
        ))
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout.max(1)))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let resp = client
        .head(url)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if resp.status().as_u16() != 200 {
        return Err(failed(format!(
            "Got HTTP code {} instead of 200 in response to HEAD request.",
            resp.status().as_u16()
        )));
    }
    Ok(())
}

/// The `image_info` Ironic's `write_image` sends the agent.
fn image_info(node: &Node, stream_raw_images: bool) -> Value {
    let source = info_str(node, "image_source").unwrap_or("");
    let id = source.rsplit('/').next().unwrap_or(source);
    let mut info = Map::new();
    info.insert("id".into(), json!(id));
    info.insert(
        "urls".into(),
        json!([info_str(node, "image_url").unwrap_or(source)]),
    );
    for (to, from) in [
        ("disk_format", "image_disk_format"),
        ("container_format", "image_container_format"),
        ("checksum", "image_checksum"),
    ] {
        info.insert(
            to.into(),
            node.instance_info.get(from).cloned().unwrap_or(Value::Null),
        );
    }
    info.insert("stream_raw_images".into(), json!(stream_raw_images));
    if let (Some(algo), Some(value)) = (
        info_str(node, "image_os_hash_algo"),
        info_str(node, "image_os_hash_value"),
    ) {
        info.insert("os_hash_algo".into(), json!(algo));
        info.insert("os_hash_value".into(), json!(value));
    }
    info.insert("node_uuid".into(), json!(node.uuid.to_string()));
    if !is_whole_disk(node) {
        for label in [
            "kernel",
            "ramdisk",
            "root_gb",
            "root_mb",
            "swap_mb",
            "ephemeral_mb",
            "ephemeral_format",
            "configdrive",
            "preserve_ephemeral",
            "image_type",
        ] {
            info.insert(
                label.into(),
                node.instance_info
                    .get(label)
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        info.insert(
            "deploy_boot_mode".into(),
            json!(crate::boot_mode::requested(node)),
        );
        let option = crate::boot_mode::instance_capability(node, "boot_option")
            .filter(|o| o == "netboot")
            .unwrap_or_else(|| "local".to_owned());
        info.insert("boot_option".into(), json!(option));
        if let Some(label) = capability(node, "disk_label") {
            info.insert("disk_label".into(), json!(label));
        }
    }
    if let Some(cd) = node
        .instance_info
        .get("configdrive")
        .filter(|v| !v.is_null())
    {
        info.insert("configdrive".into(), cd.clone());
    }
    Value::Object(info)
}

/// The image the conductor itself writes (the `iscsi` deploy): the URL
/// `write_image` would give the agent, and the checksum by Ironic's precedence.
pub(crate) fn image_source(node: &Node) -> Result<ferric_image::ImageSource, String> {
    let url = info_str(node, "image_url")
        .or_else(|| info_str(node, "image_source"))
        .ok_or("instance_info has no image_source")?;
    let checksum = ferric_image::ExpectedChecksum::from_image_info(
        info_str(node, "image_checksum"),
        info_str(node, "image_os_hash_algo"),
        info_str(node, "image_os_hash_value"),
    )
    .map_err(|e| e.to_string())?;
    Ok(ferric_image::ImageSource {
        urls: vec![url.to_owned()],
        checksum,
        disk_format: info_str(node, "image_disk_format").map(str::to_owned),
    })
}

/// The end of `prepare_instance_boot`, shared by the `direct` and `iscsi`
/// deploys: the boot interface prepares the instance's boot, then the boot
/// device is set to the disk unless the instance is netbooted.
pub(crate) async fn boot_into_instance(
    task: &mut Task<'_>,
    netboot: bool,
) -> Result<Outcome, DriverError> {
    let boot = task.driver.boot.clone();
    boot.prepare_instance(task)
        .await
        .map_err(|e| DriverError::failed(format!("Failed to prepare instance for booting: {e}")))?;
    if netboot {
        task.record_event(EVENT, "Boot prepared to netboot the instance")
            .await;
        return Ok(Outcome::Done);
    }
    let persistent = task
        .node
        .driver_info
        .get("force_persistent_boot_device")
        .and_then(Value::as_str)
        != Some("Never");
    let management = task.driver.management.clone();
    management
        .set_boot_device(task, BootDevice::Disk, persistent)
        .await
        .map_err(|e| {
            DriverError::failed(format!(
                "Failed to change the boot device to disk when deploying node {}: {e}",
                task.node.uuid
            ))
        })?;
    task.record_event(EVENT, "Boot device set to disk").await;
    Ok(Outcome::Done)
}

fn capability(node: &Node, key: &str) -> Option<String> {
    node.instance_info
        .get("capabilities")
        .and_then(Value::as_object)
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl DirectDeploy {
    /// `deploy`: boot the ramdisk, unless fast track reuses a live agent.
    async fn deploy(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        if fast_track(task).await {
            tracing::info!(node = %task.node.uuid, "fast track: the agent is up, no reboot");
            refresh_steps(task, StepFlow::Deploy).await?;
            return Ok(Outcome::Done);
        }
        let rebooted = task
            .node
            .driver_internal_info
            .remove("deployment_reboot")
            .is_some();
        if !rebooted {
            power_action(task, PowerState::Rebooting).await?;
        }
        task.record_event(EVENT, "Booting the deploy ramdisk").await;
        Ok(Outcome::Wait)
    }

    /// `write_image`: the agent's own `write_image` step, given the image.
    async fn write_image(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let info = image_info(task.node, task.config.agent.stream_raw_images);
        let configdrive = task
            .node
            .instance_info
            .get("configdrive")
            .cloned()
            .unwrap_or(Value::Null);
        let url = info["urls"][0].as_str().unwrap_or("").to_owned();
        let step = json!({
            "interface": "deploy",
            "step": "write_image",
            "args": {"image_info": info, "configdrive": configdrive},
        });
        execute_in_band(task, StepFlow::Deploy, step).await?;
        task.record_event(EVENT, &format!("Image write started from {url}"))
            .await;
        Ok(Outcome::Wait)
    }

    /// `prepare_instance_boot`: the root partition's UUID, the boot loader
    /// where one is needed, then the boot device set to the disk.
    async fn prepare_instance_boot(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let client = AgentClient::for_node(task.node, &task.config.agent)?;
        let uuids = client
            .command("standby.get_partition_uuids", Map::new(), true)
            .await?
            .command_result
            .unwrap_or(Value::Null);
        let root = uuids
            .get("root uuid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(root) = &root {
            task.node
                .driver_internal_info
                .insert("root_uuid_or_disk_id".into(), json!(root));
        }
        let whole_disk = is_whole_disk(task.node);
        let mode = crate::boot_mode::requested(task.node);
        let netboot = crate::boot_mode::instance_capability(task.node, "boot_option").as_deref()
            == Some("netboot");
        if !netboot && ((!whole_disk && root.is_some()) || (whole_disk && mode == "uefi")) {
            let efi = uuids
                .get("efi system partition uuid")
                .cloned()
                .unwrap_or(Value::Null);
            let mut params = Map::new();
            params.insert("root_uuid".into(), json!(root));
            params.insert("efi_system_part_uuid".into(), efi);
            params.insert("prep_boot_part_uuid".into(), Value::Null);
            params.insert("target_boot_mode".into(), json!(mode));
            params.insert("software_raid".into(), json!(false));
            let result = client
                .command("image.install_bootloader", params, true)
                .await?;
            if result.command_status == ferric_ipa::CommandStatus::Failed {
                return Err(DriverError::failed(format!(
                    "Failed to install a bootloader when deploying node {}: {}",
                    task.node.uuid,
                    command_error(&result)
                )));
            }
        }
        boot_into_instance(task, netboot).await
    }

    /// `tear_down_agent`: the agent powers the node off (soft), the power
    /// interface confirms it, or forces it.
    async fn tear_down_agent(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let client = AgentClient::for_node(task.node, &task.config.agent)?;
        let can_power_on = task
            .driver
            .power
            .supported_power_states()
            .contains(&PowerState::On);
        let oob = task
            .node
            .driver_info
            .get("deploy_forces_oob_reboot")
            .is_some_and(|v| v == &json!(true) || v == &json!("true") || v == &json!("True"));
        if task.node.disable_power_off {
            client.command("standby.sync", Map::new(), true).await?;
            return Ok(Outcome::Done);
        }
        if !can_power_on {
            client.command("standby.sync", Map::new(), true).await?;
            power_action(task, PowerState::Rebooting).await?;
            return Ok(Outcome::Done);
        }
        if oob {
            if let Err(e) = client.command("standby.sync", Map::new(), true).await {
                tracing::warn!(node = %task.node.uuid, error = %e, "could not flush the file systems before a hard power-off");
            }
            power_action(task, PowerState::Off).await?;
        } else {
            self.soft_power_off(task, &client).await?;
        }
        task.record_event(EVENT, "Powered off by the agent to boot the instance")
            .await;
        Ok(Outcome::Done)
    }

    /// Ironic's `soft_power_off`: the agent powers off; the power interface
    /// is asked until it agrees, else it forces the power off. Ironic asks
    /// `post_deploy_get_power_state_retries` times, every
    /// `..._retry_interval`; Ferric keeps that deadline but asks every
    /// second (at most), so a node that is off is seen off within a second.
    async fn soft_power_off(
        &self,
        task: &mut Task<'_>,
        client: &AgentClient,
    ) -> Result<(), DriverError> {
        if let Err(e) = client.command("standby.power_off", Map::new(), false).await {
            tracing::warn!(node = %task.node.uuid, error = %e, "failed to soft power off the node through its agent");
        }
        let agent = &task.config.agent;
        let interval = Duration::from_secs(agent.post_deploy_get_power_state_retry_interval);
        let deadline = tokio::time::Instant::now()
            + interval.saturating_mul(agent.post_deploy_get_power_state_retries);
        let pause = interval.min(Duration::from_secs(1));
        let power = task.driver.power.clone();
        loop {
            if matches!(power.get_power_state(task).await, Ok(PowerState::Off)) {
                forget_agent(task.node);
                task.node.power_state = Some(PowerState::Off);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = task.cancel.cancelled() => break,
            }
        }
        tracing::warn!(node = %task.node.uuid, "the node did not power off in time; forcing it off");
        power_action(task, PowerState::Off).await
    }

    /// `boot_instance`: power on into the instance.
    async fn boot_instance(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let can_power_on = task
            .driver
            .power
            .supported_power_states()
            .contains(&PowerState::On);
        let result = if task.node.disable_power_off {
            power_action(task, PowerState::Rebooting).await
        } else if can_power_on {
            power_action(task, PowerState::On).await
        } else {
            Ok(())
        };
        result.map_err(|e| {
            DriverError::failed(format!(
                "Error booting node {} after deploy. {e}",
                task.node.uuid
            ))
        })?;
        task.record_event(EVENT, "Powered on into the instance")
            .await;
        Ok(Outcome::Done)
    }
}

#[async_trait]
impl Interface for DirectDeploy {
    fn name(&self) -> &'static str {
        "direct"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Deploy
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            (
                "deploy_forces_oob_reboot",
                "Whether Ironic should force a reboot of the Node via the out-of-band channel after \
                 deployment is complete. Provides compatibility with older deploy ramdisks. Defaults to \
                 False. Optional.",
            ),
            (
                "agent_verify_ca",
                "Either a Boolean value, a path to a CA_BUNDLE file or directory with certificates of \
                 trusted CAs. If set to True ironic will verify the agent's certificate; if False the \
                 driver will ignore verifying the SSL certificate. If it's a path the driver will use \
                 the specified certificate or one of the certificates in the directory. Defaults to \
                 True. Optional",
            ),
        ]
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        task.driver.boot.validate(task).await?;
        validate_root_device(task.node)?;
        validate_image(task.node)
    }

    fn steps(&self, node: &Node) -> Vec<StepDef> {
        let mut steps: Vec<StepDef> = OUT_OF_BAND
            .iter()
            .map(|(name, priority)| {
                let mut def =
                    StepDef::new(InterfaceKind::Deploy, name, *priority, &[StepFlow::Deploy]);
                def.abortable = true;
                def
            })
            .collect();
        let in_band = cached_steps(node, StepFlow::Deploy, InterfaceKind::Deploy, (0, 0))
            .into_iter()
            .filter(|s| !OUT_OF_BAND.iter().any(|(n, _)| *n == s.step));
        steps.extend(in_band);
        steps.extend(cached_steps(
            node,
            StepFlow::Clean,
            InterfaceKind::Deploy,
            self.erase_priorities,
        ));
        steps
    }

    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        let flow = flow_of(task.node);
        if flow == StepFlow::Deploy {
            match step {
                "deploy" => return self.deploy(task).await,
                "write_image" => return self.write_image(task).await,
                "prepare_instance_boot" => return self.prepare_instance_boot(task).await,
                "tear_down_agent" => return self.tear_down_agent(task).await,
                "switch_to_tenant_network" => return Ok(Outcome::Done),
                "boot_instance" => return self.boot_instance(task).await,
                _ => {}
            }
        }
        let known = task
            .node
            .driver_internal_info
            .contains_key(&format!("agent_cached_{}_steps", flow.as_str()));
        if !known {
            return Err(DriverError::failed(format!(
                "{} step deploy.{step} has not been found: the agent is not running",
                flow.as_str()
            )));
        }
        let mut request = current_step(task.node, flow);
        request.insert("args".into(), Value::Object(args.clone()));
        execute_in_band(task, flow, Value::Object(request)).await?;
        Ok(Outcome::Wait)
    }
}

#[async_trait]
impl DeployInterface for DirectDeploy {
    async fn prepare(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        match task.node.provision_state {
            S::Deploying => {
                if fast_track(task).await {
                    return update_instance_info(task).await;
                }
                if !task.node.disable_power_off {
                    power_action(task, PowerState::Off).await?;
                }
                update_instance_info(task).await?;
                task.node
                    .driver_internal_info
                    .insert("agent_start_attempted".into(), json!(true));
                let boot = task.driver.boot.clone();
                boot.prepare_ramdisk(task).await
            }
            S::Active | S::Adopting | S::Unrescuing => {
                let boot = task.driver.boot.clone();
                boot.prepare_instance(task).await
            }
            _ => {
                let boot = task.driver.boot.clone();
                boot.prepare_ramdisk(task).await
            }
        }
    }

    async fn tear_down(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        if !task.node.disable_power_off {
            power_action(task, PowerState::Off).await?;
        }
        Ok(())
    }

    async fn clean_up(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let boot = task.driver.boot.clone();
        boot.clean_up_ramdisk(task).await?;
        boot.clean_up_instance(task).await?;
        if task.node.disable_power_off {
            power_action(task, PowerState::Rebooting).await?;
        }
        Ok(())
    }

    async fn take_over(&self, _task: &mut Task<'_>) -> Result<(), DriverError> {
        Ok(())
    }

    async fn prepare_cleaning(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        if fast_track(task).await {
            refresh_steps(task, StepFlow::Clean).await?;
            return Ok(Outcome::Done);
        }
        task.node
            .driver_internal_info
            .insert("agent_start_attempted".into(), json!(true));
        let boot = task.driver.boot.clone();
        boot.prepare_ramdisk(task).await?;
        power_action(task, PowerState::Rebooting).await?;
        task.record_event("cleaning", "Booting the deploy ramdisk")
            .await;
        Ok(Outcome::Wait)
    }

    async fn tear_down_cleaning(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        let failed = task.node.fault.as_deref() == Some("clean failure");
        let keep = fast_track(task).await;
        if !(keep || failed || task.node.disable_power_off) {
            power_action(task, PowerState::Off).await?;
        }
        let boot = task.driver.boot.clone();
        boot.clean_up_ramdisk(task).await
    }

    async fn refresh_steps(&self, task: &mut Task<'_>, flow: StepFlow) -> Result<(), DriverError> {
        refresh_steps(task, flow).await
    }

    async fn heartbeat(
        &self,
        task: &mut Task<'_>,
        flow: StepFlow,
    ) -> Result<AgentProgress, DriverError> {
        let verdict = progress(task, flow).await?;
        if verdict == AgentProgress::StepDone && flow == StepFlow::Deploy {
            let current = step_id(&current_step(task.node, StepFlow::Deploy));
            if current == "deploy.write_image" {
                task.record_event(EVENT, "Image written to the disk").await;
            }
        }
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(info: Value) -> Node {
        let mut node = Node::enroll(
            ferric_core::NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            chrono::Utc::now(),
        );
        node.instance_info = info.as_object().cloned().unwrap_or_default().into();
        node
    }

    #[test]
    fn images_are_checked_as_ironic_does() {
        let missing = validate_image(&node(json!({}))).unwrap_err().to_string();
        assert!(
            missing.ends_with("Missing are: ['instance_info.image_source']"),
            "{missing}"
        );
        let no_sum = validate_image(&node(json!({"image_source": "http://x/i.raw"}))).unwrap_err();
        assert!(no_sum
            .to_string()
            .contains("must be provided in instance_info"));
        let half = node(json!({"image_source": "http://x/i.raw", "image_os_hash_algo": "sha256"}));
        assert!(validate_image(&half).is_err());
        let not_http = node(json!({"image_source": "glance://x", "image_checksum": "abc"}));
        assert!(validate_image(&not_http).is_err());
        let ok = node(
            json!({"image_source": "https://x/i.qcow2", "image_os_hash_algo": "sha512",
                             "image_os_hash_value": "ff"}),
        );
        validate_image(&ok).unwrap();
    }

    #[test]
    fn image_info_is_what_ironic_sends() {
        let mut n = node(json!({
            "image_source": "http://img/os.qcow2", "image_url": "http://img/os.qcow2?sig=1",
            "image_disk_format": "qcow2", "image_os_hash_algo": "sha256", "image_os_hash_value": "aa",
            "configdrive": "H4sI...", "root_gb": 10,
        }));
        n.driver_internal_info
            .insert("is_whole_disk_image".into(), json!(true));
        let info = image_info(&n, true);
        assert_eq!(info["id"], "os.qcow2");
        assert_eq!(info["urls"], json!(["http://img/os.qcow2?sig=1"]));
        assert_eq!(info["disk_format"], "qcow2");
        assert_eq!(info["os_hash_value"], "aa");
        assert_eq!(info["configdrive"], "H4sI...");
        assert_eq!(info["node_uuid"], n.uuid.to_string());
        assert!(
            info.get("root_gb").is_none(),
            "whole-disk images carry no partition sizes"
        );
        n.driver_internal_info
            .insert("is_whole_disk_image".into(), json!(false));
        let info = image_info(&n, true);
        assert_eq!(info["root_gb"], 10);
        assert_eq!(info["boot_option"], "local");
        assert_eq!(info["deploy_boot_mode"], "uefi");
    }

    #[test]
    fn boot_mode_follows_ironics_order() {
        let mut n = node(json!({}));
        assert_eq!(crate::boot_mode::requested(&n), "uefi");
        n.boot_mode = Some("uefi".into());
        n.properties
            .insert("capabilities".into(), json!("boot_mode:bios,foo:bar"));
        assert_eq!(
            crate::boot_mode::requested(&n),
            "bios",
            "the node's capability beats the detected mode"
        );
        n.instance_info
            .insert("deploy_boot_mode".into(), json!("uefi"));
        assert_eq!(crate::boot_mode::requested(&n), "uefi");
        n.instance_info
            .insert("capabilities".into(), json!({"boot_mode": "bios"}));
        assert_eq!(crate::boot_mode::requested(&n), "bios");
    }
}
