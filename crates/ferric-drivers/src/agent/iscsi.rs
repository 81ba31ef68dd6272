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

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ferric_core::{InterfaceKind, JsonObject, Node, NodeUuid};
use ferric_image::{ImageSource, Progress, WriteReport};
use ferric_ipa::commands::{StartIscsiTargetParams, OPENSTACK_IQN_PREFIX};
use ferric_ipa::Secret;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::{command_error, AgentClient};
use super::direct::{image_source, DirectDeploy};
use super::{current_step, step_id};
use crate::config::IscsiConfig;
use crate::error::DriverError;
use crate::interface::*;

const EVENT: &str = "deploying";
/// The initiator's name: the conductor's, one for all deploys.
pub const INITIATOR_NAME: &str = "iqn.2024-01.dev.ferric:conductor";
/// Ironic's LUN: the disk is always LUN 1 of the node's target.
pub const DEPLOY_LUN: u64 = 1;

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
}

/// How a node's write goes.
#[derive(Debug, Clone)]
enum JobState {
    Queued,
    Writing,
    Done(WriteReport),
    Failed(String),
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
            *job.state() = match outcome {
                Ok(report) => JobState::Done(report),
                Err(e) => JobState::Failed(e),
            };
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

async fn run_job(job: &Job, permits: &Semaphore, plan: &WritePlan) -> Result<WriteReport, String> {
    let _permit = permits
        .acquire()
        .await
        .map_err(|_| "the conductor is stopping".to_owned())?;
    *job.state() = JobState::Writing;
    super::iscsi_disk::write_image(plan, &job.progress).await
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

fn write_done_text(report: &WriteReport) -> String {
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    format!(
        "Image written over iSCSI ({} image, {:.1} MiB written, {:.1} MiB of zeros skipped{})",
        report.format.name(),
        mib(report.written),
        mib(report.zeros_skipped),
        report
            .verified
            .map(|a| format!(", {a} verified"))
            .unwrap_or_default()
    )
}

impl IscsiDeploy {
    /// `write_image`: the agent exports the disk, the conductor's job writes it.
    async fn write_image(&self, task: &mut Task<'_>) -> Result<Outcome, DriverError> {
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
        })
    }

    /// How the write goes, on a heartbeat during `write_image`.
    async fn write_progress(&self, task: &mut Task<'_>) -> Result<AgentProgress, DriverError> {
        let node = task.node.uuid;
        match self.jobs.take_finished(&node) {
            Some(JobState::Queued) | Some(JobState::Writing) => Ok(AgentProgress::Running),
            Some(JobState::Done(report)) => {
                task.record_event(EVENT, &write_done_text(&report)).await;
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
        let partition = task.node.instance_info.get("image_type") == Some(&json!("partition"))
            || (task.node.instance_info.contains_key("kernel")
                && task.node.instance_info.contains_key("ramdisk"));
        if partition {
            return Err(DriverError::InvalidParameter(
                "the iscsi deploy interface writes whole-disk images only (partition images are not supported yet)"
                    .into(),
            ));
        }
        if task
            .node
            .instance_info
            .get("configdrive")
            .is_some_and(|v| !v.is_null())
        {
            return Err(DriverError::InvalidParameter(
                "the iscsi deploy interface does not write config drives yet".into(),
            ));
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
        if step == "write_image" && super::flow_of(task.node) == StepFlow::Deploy {
            return self.write_image(task).await;
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
