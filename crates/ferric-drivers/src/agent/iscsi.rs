//! The `iscsi` deploy interface: Ironic's removed `ISCSIDeploy`, kept and
//! made safe. The steps are the `direct` deploy's but one: in `write_image`
//! the conductor asks the agent to export the node's disk as an iSCSI target
//! (`iscsi.start_iscsi_target`, with a CHAP secret made for this deploy),
//! logs in with its own userspace initiator and streams the image onto the
//! disk through the same pipeline the agent uses (checksum, qcow2
//! conversion, zero blocks skipped where the disk reads zeros).
//!
//! The write runs as a job beside the node's lock: at most
//! `[iscsi] max_concurrent_deploys` write at once, the others queue; each
//! heartbeat of the agent asks the job how it goes. A conductor that
//! restarted has no job: the write starts again (it is idempotent), with a
//! new secret. Failures name the step that failed: starting the target,
//! connecting, logging in, writing at an LBA, flushing.
//!
//! Partition images are partitioned by the conductor too, as Ironic's iSCSI
//! deploy did (`deploy_partition_image`): the table, the EFI system
//! partition, the config drive, the image in the root partition, swap and
//! ephemeral, all over iSCSI. A whole-disk image's config drive gets a
//! partition of its own. The ids found on the disk (the root file system's
//! UUID, the disk identifier) are kept in `driver_internal_info` and
//! `prepare_instance_boot` uses them: the agent, which wrote nothing, is
//! not asked for them. A partition image boots from the network only
//! (`boot_option: netboot`): no boot loader is installed for one.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{InterfaceKind, JsonObject, Node, NodeUuid};
use ferric_image::partition::deploy::PartitionDeploySpec;
use ferric_image::partition::{BootMode, DiskLabel, PartitionImageSpec};
use ferric_image::{ImageSource, Progress};
use ferric_ipa::commands::{StartIscsiTargetParams, OPENSTACK_IQN_PREFIX};
use ferric_ipa::Secret;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::{command_error, AgentClient};
use super::direct::{image_source, DirectDeploy};
use super::iscsi_disk::Written;
use super::{current_step, step_id};
use crate::config::IscsiConfig;
use crate::error::DriverError;
use crate::interface::*;

const EVENT: &str = "deploying";
/// The initiator's name: the conductor's, one for all deploys.
pub const INITIATOR_NAME: &str = "iqn.2024-01.dev.ferric:conductor";
/// Ironic's LUN: the disk is always LUN 1 of the node's target.
pub const DEPLOY_LUN: u64 = 1;
/// `driver_internal_info` key of the ids the last iSCSI write found, in
/// IPA's `get_partition_uuids` form (`root uuid`, `efi system partition uuid`).
pub const PARTITION_UUIDS_KEY: &str = "iscsi_partition_uuids";

pub struct IscsiDeploy {
    direct: DirectDeploy,
    jobs: Arc<Jobs>,
}

impl IscsiDeploy {
    pub fn new(deploy: &crate::DeployConfig, iscsi: &IscsiConfig) -> Self {
        IscsiDeploy {
            direct: DirectDeploy::new(deploy),
            jobs: Arc::new(Jobs::new(iscsi.max_concurrent_deploys)),
        }
    }
}

/// The node's target name, as Ironic named it.
pub fn target_iqn(node: &NodeUuid) -> String {
    format!("{OPENSTACK_IQN_PREFIX}{node}")
}

/// One deploy's CHAP secrets: made per deploy, kept only in memory.
#[derive(Clone)]
pub struct DeployCredentials {
    pub user: String,
    pub secret: Secret,
    pub mutual_user: Option<String>,
    pub mutual_secret: Option<Secret>,
}

impl DeployCredentials {
    fn new(node: &NodeUuid, mutual: bool) -> Self {
        let secret = || Secret::new(Alphanumeric.sample_string(&mut rand::rng(), 24));
        let user = format!("ferric-{}", &node.to_string()[..8]);
        DeployCredentials {
            user,
            secret: secret(),
            mutual_user: mutual.then(|| format!("ferric-target-{}", &node.to_string()[..8])),
            mutual_secret: mutual.then(secret),
        }
    }
}

/// Where and how the conductor writes one node's image.
#[derive(Clone)]
pub struct WritePlan {
    pub portal: SocketAddr,
    pub iqn: String,
    pub credentials: DeployCredentials,
    pub source: ImageSource,
    pub config: IscsiConfig,
    /// A partition image's layout, made by the conductor; `None` for a whole-disk image.
    pub partition: Option<PartitionDeploySpec>,
    /// `instance_info.configdrive`: base64 of a gzipped image, or its URL.
    pub configdrive: Option<Secret>,
}

/// How a node's write goes.
#[derive(Debug, Clone)]
enum JobState {
    Queued,
    Writing,
    Done(Box<Written>),
    Failed(String),
}

impl JobState {
    fn of(outcome: Result<Written, String>) -> Self {
        match outcome {
            Ok(written) => JobState::Done(Box::new(written)),
            Err(e) => JobState::Failed(e),
        }
    }
}

struct Job {
    state: Mutex<JobState>,
    progress: Progress,
    cancel: CancellationToken,
}

impl Job {
    fn state(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The conductor's iSCSI writes, at most `permits` at once.
struct Jobs {
    permits: Arc<Semaphore>,
    by_node: Mutex<HashMap<NodeUuid, Arc<Job>>>,
}

impl Jobs {
    fn new(concurrent: usize) -> Self {
        Jobs {
            permits: Arc::new(Semaphore::new(concurrent.max(1))),
            by_node: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<NodeUuid, Arc<Job>>> {
        self.by_node.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or restarts) the write of `node`, cancelling one in flight.
    fn start(&self, node: NodeUuid, plan: WritePlan) {
        let job = Arc::new(Job {
            state: Mutex::new(JobState::Queued),
            progress: Progress::default(),
            cancel: CancellationToken::new(),
        });
        if let Some(old) = self.map().insert(node, job.clone()) {
            old.cancel.cancel();
        }
        let permits = self.permits.clone();
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = run_job(&job, &permits, &plan) => outcome,
                _ = job.cancel.cancelled() => Err("the write was cancelled".to_owned()),
            };
            if let Err(e) = &outcome {
                tracing::warn!(%node, error = %e, "iSCSI write failed");
            }
            *job.state() = JobState::of(outcome);
        });
    }

    /// Forgets `node`'s job, cancelling it if it still runs.
    fn stop(&self, node: &NodeUuid) {
        if let Some(job) = self.map().remove(node) {
            job.cancel.cancel();
        }
    }

    /// Forgets a finished job and says how it ended.
    fn take_finished(&self, node: &NodeUuid) -> Option<JobState> {
        let mut map = self.map();
        let state = map.get(node)?.state().clone();
        if matches!(state, JobState::Done(_) | JobState::Failed(_)) {
            map.remove(node);
        }
        Some(state)
    }
}

async fn run_job(job: &Job, permits: &Semaphore, plan: &WritePlan) -> Result<Written, String> {
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| "the conductor is stopping".to_owned())?;
    *job.state() = JobState::Writing;
    super::iscsi_disk::write_image(plan, &job.progress, |outcome| {
        *job.state() = JobState::of(outcome.clone());
    })
    .await
}

/// The portal the agent's target listens on: the agent's own address.
fn portal_of(node: &Node, port: u16) -> Result<SocketAddr, DriverError> {
    let url = node
        .driver_internal_info
        .get("agent_url")
        .and_then(Value::as_str)
        .ok_or_else(|| DriverError::failed("the agent has not heartbeated: no agent_url"))?;
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    // Agents call back with an IP address; only a name needs (blocking) resolution.
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            DriverError::failed(format!(
                "cannot tell the agent's address from its URL {url}"
            ))
        })
}

fn write_done_text(written: &Written, partition_image: bool) -> String {
    let report = &written.report;
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    let mut extra = String::new();
    if partition_image {
        let root = written.root_uuid.as_deref().unwrap_or("unknown");
        extra.push_str(&format!("; into the root partition, UUID {root}"));
    }
    if written.config_drive {
        extra.push_str("; config drive written");
    }
    format!(
        "Image written over iSCSI ({} image, {:.1} MiB written, {:.1} MiB of zeros skipped{}{extra})",
        report.format.name(),
        mib(report.written),
        mib(report.zeros_skipped),
        report
            .verified
            .map(|a| format!(", {a} verified"))
            .unwrap_or_default()
    )
}

/// The ids a write found, as IPA's `get_partition_uuids` names them.
fn uuids_json(written: &Written) -> Value {
    json!({
        "root uuid": written.root_uuid,
        "efi system partition uuid": written.efi_system_partition_uuid,
    })
}

fn is_whole_disk(node: &Node) -> bool {
    node.driver_internal_info
        .get("is_whole_disk_image")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

/// Partition images before `prepare` has recorded the image's type, as it
/// will: `image_type` when given, else a kernel and a ramdisk.
fn is_partition_image_requested(node: &Node) -> bool {
    let info = &node.instance_info;
    match info.get("image_type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => kind == "partition",
        _ => info.contains_key("kernel") && info.contains_key("ramdisk"),
    }
}

fn is_netboot(node: &Node) -> bool {
    crate::boot_mode::instance_capability(node, "boot_option").as_deref() == Some("netboot")
}

/// Why a partition image cannot boot from its disk after this deploy.
const LOCAL_BOOT_REFUSED: &str = "the iscsi deploy interface boots partition images from the \
    network only: no boot loader is installed for them (ferric-agent does not install grub). \
    Set instance_info capabilities boot_option to netboot, or deploy a whole-disk image";

/// A size in MiB from `instance_info`: a number or a numeric string.
fn info_mb(node: &Node, key: &str) -> Result<Option<u64>, String> {
    match node.instance_info.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("instance_info.{key} must be a whole number, not {n}")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("instance_info.{key} must be a whole number, not {s:?}")),
        Some(other) => Err(format!(
            "instance_info.{key} must be a whole number, not {other}"
        )),
    }
}

/// `instance_info.root_mb`, else `root_gb` × 1024, as IPA reads them.
fn root_mb(node: &Node) -> Result<Option<u64>, String> {
    Ok(match info_mb(node, "root_mb")? {
        Some(mb) => Some(mb),
        None => info_mb(node, "root_gb")?.map(|gb| gb.saturating_mul(1024)),
    }
    .filter(|mb| *mb > 0))
}

/// The partition image's layout as the `direct` deploy sends it the agent
/// (`image_info`: sizes, boot mode, disk label), for the conductor to make.
pub(crate) fn partition_spec(node: &Node) -> Result<PartitionDeploySpec, String> {
    let root_mb = root_mb(node)?
        .ok_or_else(|| "partition images need instance_info.root_gb (or root_mb)".to_owned())?;
    let mode = crate::boot_mode::requested(node);
    let boot_mode = BootMode::parse(&mode).ok_or_else(|| format!("unknown boot mode {mode:?}"))?;
    let disk_label = match crate::boot_mode::instance_capability(node, "disk_label") {
        None => None,
        Some(label) => {
            Some(DiskLabel::parse(&label).ok_or_else(|| format!("unknown disk_label {label:?}"))?)
        }
    };
    let cpu_arch = node
        .properties
        .get("cpu_arch")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut spec = PartitionDeploySpec::new(PartitionImageSpec {
        root_mb,
        swap_mb: info_mb(node, "swap_mb")?.unwrap_or(0),
        ephemeral_mb: info_mb(node, "ephemeral_mb")?.unwrap_or(0),
        boot_mode,
        disk_label,
        cpu_arch,
        ..Default::default()
    });
    spec.ephemeral_format = node
        .instance_info
        .get("ephemeral_format")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
        .map(str::to_owned);
    spec.preserve_ephemeral = preserve_ephemeral(node);
    Ok(spec)
}

/// `instance_info.configdrive` as the agent gets it: the string Ironic
/// stores (base64 of a gzipped ISO, or a URL); a dict is built into one.
fn configdrive_of(node: &Node) -> Result<Option<Secret>, String> {
    match node.instance_info.get("configdrive") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(Secret::new(s.clone()))),
        Some(dict @ Value::Object(_)) => ferric_image::configdrive::build_configdrive(
            dict,
            &node.uuid.to_string(),
            node.name.as_deref(),
            chrono::Utc::now().timestamp(),
        )
        .map(|built| Some(Secret::new(built)))
        .map_err(|e| {
            format!(
                "Failed to build the config drive for node {}: {e}",
                node.uuid
            )
        }),
        Some(_) => Err("instance_info.configdrive must be a string or a dict".to_owned()),
    }
}

impl IscsiDeploy {
    /// `write_image`: the agent exports the disk, the conductor's job writes it.
    async fn write_image(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        task.node.driver_internal_info.remove(PARTITION_UUIDS_KEY);
        let plan = self.start_target(task).await?;
        let portal = plan.portal;
        self.jobs.start(task.node.uuid, plan);
        task.record_event(
            EVENT,
            &format!(
                "iSCSI target started on the agent; the conductor writes the image to {portal}"
            ),
        )
        .await;
        Ok(Outcome::Wait)
    }

    /// Asks the agent to export the disk under a fresh secret; the plan of the write.
    async fn start_target(&self, task: &mut Task<'_>) -> Result<WritePlan, DriverError> {
        let config = task.config.iscsi.clone();
        let node = &*task.node;
        let source = image_source(node).map_err(DriverError::failed)?;
        let partition = if is_whole_disk(node) {
            None
        } else {
            Some(partition_spec(node).map_err(DriverError::failed)?)
        };
        let configdrive = configdrive_of(node).map_err(DriverError::failed)?;
        let portal = portal_of(node, config.portal_port)?;
        let iqn = target_iqn(&node.uuid);
        let credentials = DeployCredentials::new(&node.uuid, config.mutual_chap);
        let params = StartIscsiTargetParams {
            iqn: Some(iqn.clone()),
            wipe_disk_metadata: !preserve_ephemeral(node),
            portal_port: Some(config.portal_port),
            chap_username: Some(credentials.user.clone()),
            chap_secret: Some(credentials.secret.clone()),
            mutual_chap_username: credentials.mutual_user.clone(),
            mutual_chap_secret: credentials.mutual_secret.clone(),
        };
        let request = ferric_ipa::Command::StartIscsiTarget(params).to_request();
        let client = AgentClient::for_node(node, &task.config.agent)?;
        let result = client.command(&request.name, request.params, true).await?;
        if result.command_status == ferric_ipa::CommandStatus::Failed {
            return Err(DriverError::failed(format!(
                "Failed to start the iSCSI target to deploy the node {}. Error: {}",
                node.uuid,
                command_error(&result)
            )));
        }
        // Ferric's agent says where it listens when it could not take the port asked.
        let port = result
            .command_result
            .as_ref()
            .and_then(|r| r.get("iscsi_target_portal_port"))
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok());
        let portal = port.map_or(portal, |p| SocketAddr::new(portal.ip(), p));
        Ok(WritePlan {
            portal,
            iqn,
            credentials,
            source,
            config,
            partition,
            configdrive,
        })
    }

    /// How the write goes, on a heartbeat during `write_image`.
    async fn write_progress(&self, task: &mut Task<'_>) -> Result<AgentProgress, DriverError> {
        let node = task.node.uuid;
        match self.jobs.take_finished(&node) {
            Some(JobState::Queued) | Some(JobState::Writing) => Ok(AgentProgress::Running),
            Some(JobState::Done(written)) => {
                let text = write_done_text(&written, !is_whole_disk(task.node));
                task.node
                    .driver_internal_info
                    .insert(PARTITION_UUIDS_KEY.into(), uuids_json(&written));
                task.record_event(EVENT, &text).await;
                Ok(AgentProgress::StepDone)
            }
            Some(JobState::Failed(e)) => Ok(AgentProgress::StepFailed(format!(
                "Deploy step deploy.write_image failed on node {node}. iSCSI deploy failed: {e}"
            ))),
            None => {
                tracing::info!(%node, "no iSCSI write in flight for this node (the conductor restarted?): starting it again");
                self.write_image(task).await?;
                Ok(AgentProgress::Running)
            }
        }
    }

    /// `prepare_instance_boot` of the `direct` deploy, with the ids the
    /// conductor found itself: the root for the boot interface's netboot
    /// config, the boot loader step where the agent has one (a whole disk
    /// in UEFI mode), then the boot device.
    async fn prepare_instance_boot(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        let uuids = task
            .node
            .driver_internal_info
            .get(PARTITION_UUIDS_KEY)
            .cloned()
            .unwrap_or(Value::Null);
        let root = uuids
            .get("root uuid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let whole_disk = is_whole_disk(task.node);
        let netboot = is_netboot(task.node);
        if !whole_disk && !netboot {
            return Err(DriverError::failed(LOCAL_BOOT_REFUSED));
        }
        match &root {
            Some(root) => {
                task.node
                    .driver_internal_info
                    .insert("root_uuid_or_disk_id".into(), json!(root));
            }
            None if !whole_disk => {
                return Err(DriverError::failed(format!(
                    "the iSCSI write of node {} recorded no root partition UUID: the partition \
                     image cannot be booted",
                    task.node.uuid
                )))
            }
            None => {}
        }
        let mode = crate::boot_mode::requested(task.node);
        if !netboot && mode == "uefi" {
            self.install_bootloader(task, root.as_deref(), &mode)
                .await?;
        }
        super::direct::boot_into_instance(task, netboot).await
    }

    /// The agent's `image.install_bootloader` for a whole disk in UEFI mode.
    async fn install_bootloader(
        &self,
        task: &mut Task<'_>,
        root: Option<&str>,
        mode: &str,
    ) -> Result<(), DriverError> {
        let client = AgentClient::for_node(task.node, &task.config.agent)?;
        let mut params = Map::new();
        params.insert("root_uuid".into(), json!(root));
        params.insert("efi_system_part_uuid".into(), Value::Null);
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
        Ok(())
    }
}

fn preserve_ephemeral(node: &Node) -> bool {
    matches!(
        node.instance_info.get("preserve_ephemeral"),
        Some(Value::Bool(true))
    ) || node.instance_info.get("preserve_ephemeral") == Some(&json!("true"))
}

fn is_writing_image(node: &Node) -> bool {
    step_id(&current_step(node, StepFlow::Deploy)) == "deploy.write_image"
}

#[async_trait]
impl Interface for IscsiDeploy {
    fn name(&self) -> &'static str {
        "iscsi"
    }

    fn kind(&self) -> InterfaceKind {
        InterfaceKind::Deploy
    }

    fn properties(&self) -> Vec<(&'static str, &'static str)> {
        self.direct.properties()
    }

    async fn validate(&self, task: &Task<'_>) -> Result<(), DriverError> {
        self.direct.validate(task).await?;
        let node = &*task.node;
        if is_partition_image_requested(node) {
            if !is_netboot(node) {
                return Err(DriverError::InvalidParameter(LOCAL_BOOT_REFUSED.into()));
            }
            if root_mb(node)
                .map_err(DriverError::InvalidParameter)?
                .is_none()
            {
                return Err(DriverError::MissingParameter(format!(
                    "Some parameters were missing in node's instance_info. Missing are: \
                     ['instance_info.root_gb'] (node {}: partition images need a root size)",
                    node.uuid
                )));
            }
        }
        Ok(())
    }

    fn steps(&self, node: &Node) -> Vec<StepDef> {
        self.direct.steps(node)
    }

    async fn execute_step(
        &self,
        task: &mut Task<'_>,
        step: &str,
        args: &JsonObject,
    ) -> Result<Outcome, DriverError> {
        if super::flow_of(task.node) == StepFlow::Deploy {
            match step {
                "write_image" => return self.write_image(task).await,
                "prepare_instance_boot" => return self.prepare_instance_boot(task).await,
                _ => {}
            }
        }
        self.direct.execute_step(task, step, args).await
    }
}

#[async_trait]
impl DeployInterface for IscsiDeploy {
    async fn prepare(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.direct.prepare(task).await
    }

    async fn tear_down(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.jobs.stop(&task.node.uuid);
        self.direct.tear_down(task).await
    }

    async fn clean_up(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.jobs.stop(&task.node.uuid);
        self.direct.clean_up(task).await
    }

    async fn take_over(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.direct.take_over(task).await
    }

    async fn prepare_cleaning(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
        self.direct.prepare_cleaning(task).await
    }

    async fn tear_down_cleaning(&self, task: &mut Task<'_>) -> Result<(), DriverError> {
        self.direct.tear_down_cleaning(task).await
    }

    async fn refresh_steps(&self, task: &mut Task<'_>, flow: StepFlow) -> Result<(), DriverError> {
        self.direct.refresh_steps(task, flow).await
    }

    async fn heartbeat(
        &self,
        task: &mut Task<'_>,
        flow: StepFlow,
    ) -> Result<AgentProgress, DriverError> {
        if flow == StepFlow::Deploy && is_writing_image(task.node) {
            return self.write_progress(task).await;
        }
        self.direct.heartbeat(task, flow).await
    }
}

/// Seconds as a `Duration`, at least one.
pub(crate) fn secs(n: u64) -> Duration {
    Duration::from_secs(n.max(1))
}

#[cfg(test)]
mod tests {
    use ferric_image::{ImageFormat, WriteReport};

    use super::*;

    fn node(info: Value) -> Node {
        let mut node = Node::enroll(
            NodeUuid::new_random(),
            "fake-hardware".into(),
            Default::default(),
            chrono::Utc::now(),
        );
        node.instance_info = info.as_object().cloned().unwrap_or_default().into();
        node
    }

    #[test]
    fn the_partition_layout_is_what_the_agent_would_get() {
        let mut n = node(json!({
            "root_gb": "2", "swap_mb": 64, "ephemeral_mb": "0", "ephemeral_format": "",
            "preserve_ephemeral": "true",
            "capabilities": {"boot_mode": "bios", "disk_label": "gpt", "boot_option": "netboot"},
        }));
        n.properties.insert("cpu_arch".into(), json!("x86_64"));
        let spec = partition_spec(&n).unwrap();
        assert_eq!(spec.layout.root_mb, 2048);
        assert_eq!(spec.layout.swap_mb, 64);
        assert_eq!(spec.layout.ephemeral_mb, 0);
        assert_eq!(spec.layout.boot_mode, BootMode::Bios);
        assert_eq!(spec.layout.disk_label, Some(DiskLabel::Gpt));
        assert_eq!(spec.layout.cpu_arch, "x86_64");
        assert_eq!(spec.ephemeral_format, None);
        assert!(spec.preserve_ephemeral);
        assert_eq!(spec.sector_size, 512);

        let mb = node(json!({"root_mb": 100, "root_gb": 5}));
        assert_eq!(partition_spec(&mb).unwrap().layout.root_mb, 100);
        assert_eq!(
            partition_spec(&mb).unwrap().layout.boot_mode,
            BootMode::Uefi,
            "Ironic's default boot mode"
        );
        let none = partition_spec(&node(json!({"root_gb": 0}))).unwrap_err();
        assert_eq!(
            none,
            "partition images need instance_info.root_gb (or root_mb)"
        );
        let bad = partition_spec(&node(json!({"root_gb": "ten"}))).unwrap_err();
        assert_eq!(
            bad,
            "instance_info.root_gb must be a whole number, not \"ten\""
        );
        let label = node(json!({"root_gb": 1, "capabilities": {"disk_label": "zfs"}}));
        assert_eq!(
            partition_spec(&label).unwrap_err(),
            "unknown disk_label \"zfs\""
        );
    }

    #[test]
    fn partition_images_are_told_apart_and_netboot_read_from_capabilities() {
        assert!(is_partition_image_requested(&node(
            json!({"image_type": "partition"})
        )));
        assert!(is_partition_image_requested(&node(
            json!({"kernel": "k", "ramdisk": "r"})
        )));
        assert!(!is_partition_image_requested(&node(json!({"kernel": "k"}))));
        assert!(!is_partition_image_requested(&node(
            json!({"image_type": "whole-disk", "kernel": "k", "ramdisk": "r"})
        )));
        assert!(is_netboot(&node(
            json!({"capabilities": {"boot_option": "netboot"}})
        )));
        assert!(is_netboot(&node(
            json!({"capabilities": "boot_option:netboot"})
        )));
        assert!(!is_netboot(&node(json!({}))));
        let mut n = node(json!({}));
        assert!(
            is_whole_disk(&n),
            "a whole disk until prepare says otherwise"
        );
        n.driver_internal_info
            .insert("is_whole_disk_image".into(), json!(false));
        assert!(!is_whole_disk(&n));
    }

    #[test]
    fn config_drives_are_passed_on_and_dicts_built() {
        assert!(configdrive_of(&node(json!({}))).unwrap().is_none());
        assert!(configdrive_of(&node(json!({"configdrive": null})))
            .unwrap()
            .is_none());
        let given = configdrive_of(&node(json!({"configdrive": "http://cd/x"})))
            .unwrap()
            .unwrap();
        assert_eq!(given.expose(), "http://cd/x");
        let built = configdrive_of(&node(json!({"configdrive": {"meta_data": {"a": "b"}}})))
            .unwrap()
            .unwrap();
        let decoded = ferric_image::configdrive::decode(built.expose()).unwrap();
        assert!(matches!(
            decoded,
            ferric_image::configdrive::ConfigDriveSource::Image(_)
        ));
        assert!(configdrive_of(&node(json!({"configdrive": 5}))).is_err());
    }

    #[test]
    fn the_done_event_says_what_was_written() {
        let written = Written {
            report: WriteReport {
                format: ImageFormat::Qcow2,
                virtual_size: 4 << 20,
                downloaded: 1 << 20,
                written: 3 << 20,
                zeros_skipped: 1 << 20,
                verified: None,
            },
            root_uuid: Some("0d9f3c1e".into()),
            efi_system_partition_uuid: Some("ABCD-1234".into()),
            config_drive: true,
        };
        assert_eq!(
            write_done_text(&written, true),
            "Image written over iSCSI (qcow2 image, 3.0 MiB written, 1.0 MiB of zeros skipped; \
             into the root partition, UUID 0d9f3c1e; config drive written)"
        );
        assert_eq!(
            uuids_json(&written),
            json!({"root uuid": "0d9f3c1e", "efi system partition uuid": "ABCD-1234"})
        );
        let plain = Written {
            config_drive: false,
            ..written
        };
        assert_eq!(
            write_done_text(&plain, false),
            "Image written over iSCSI (qcow2 image, 3.0 MiB written, 1.0 MiB of zeros skipped)"
        );
    }
}
