//! The provisioning verbs of `PUT /v1/nodes/{node}/states/provision`, as
//! typed commands.

use ferric_core::states;
use ferric_core::{Event, Ident, JsonObject, NodeIdent};
use serde_json::Value;

use crate::error::{ConductorError, Result};
use crate::flows::{self, deploy::DeployRequest};
use crate::Conductor;

/// A verb and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ProvisionAction {
    Deploy {
        configdrive: Option<Value>,
        deploy_steps: Vec<JsonObject>,
    },
    Rebuild {
        configdrive: Option<Value>,
        deploy_steps: Vec<JsonObject>,
    },
    Undeploy,
    Manage,
    Provide,
    Inspect,
    Abort,
    Clean {
        clean_steps: Vec<JsonObject>,
        disable_ramdisk: Option<bool>,
    },
    Adopt,
    Rescue {
        password: ferric_core::Secret<String>,
    },
    Unrescue,
    Unhold,
    Service {
        service_steps: Vec<JsonObject>,
        disable_ramdisk: Option<bool>,
    },
}

impl ProvisionAction {
    /// The state machine event the verb fires first.
    pub fn event(&self) -> Event {
        match self {
            ProvisionAction::Deploy { .. } => Event::Deploy,
            ProvisionAction::Rebuild { .. } => Event::Rebuild,
            ProvisionAction::Undeploy => Event::Delete,
            ProvisionAction::Manage => Event::Manage,
            ProvisionAction::Provide => Event::Provide,
            ProvisionAction::Inspect => Event::Inspect,
            ProvisionAction::Abort => Event::Abort,
            ProvisionAction::Clean { .. } => Event::Clean,
            ProvisionAction::Adopt => Event::Adopt,
            ProvisionAction::Rescue { .. } => Event::Rescue,
            ProvisionAction::Unrescue => Event::Unrescue,
            ProvisionAction::Unhold => Event::Unhold,
            ProvisionAction::Service { .. } => Event::Service,
        }
    }
}

/// A verb as a client asked for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionRequest {
    /// The `target` string the client sent, quoted back in refusals.
    pub target: String,
    pub action: ProvisionAction,
}

impl Conductor {
    /// Starts a provisioning verb. Returns once the first transition is
    /// stored; the rest runs on the worker pool.
    pub async fn provision(&self, ident: &NodeIdent, req: ProvisionRequest) -> Result<()> {
        let node = self.inner.store.get_node(ident).await?;
        if !states::accepts(node.provision_state, req.action.event()) {
            return Err(match node.reservation {
                Some(holder) => ConductorError::NodeLocked {
                    node: node.uuid.to_string(),
                    holder,
                },
                None => ConductorError::InvalidStateRequested {
                    action: req.target,
                    node: node.uuid.to_string(),
                    state: node.provision_state.to_string(),
                },
            });
        }
        let task = self.inner.lock(&Ident::Uuid(node.uuid)).await?;
        if !states::accepts(task.node.provision_state, req.action.event()) {
            let e = ConductorError::InvalidStateRequested {
                action: req.target,
                node: task.node.uuid.to_string(),
                state: task.node.provision_state.to_string(),
            };
            return flows::refuse(task, e).await;
        }
        match req.action {
            ProvisionAction::Deploy {
                configdrive,
                deploy_steps,
            } => {
                let req = DeployRequest {
                    rebuild: false,
                    configdrive,
                    deploy_steps,
                };
                flows::deploy::start(task, req).await
            }
            ProvisionAction::Rebuild {
                configdrive,
                deploy_steps,
            } => {
                let req = DeployRequest {
                    rebuild: true,
                    configdrive,
                    deploy_steps,
                };
                flows::deploy::start(task, req).await
            }
            ProvisionAction::Undeploy => flows::teardown::start(task).await,
            ProvisionAction::Manage => flows::verify::start_manage(task).await,
            ProvisionAction::Provide => flows::clean::start_provide(task).await,
            ProvisionAction::Inspect => flows::inspect::start(task).await,
            ProvisionAction::Abort => flows::abort::start_abort(task).await,
            ProvisionAction::Clean {
                clean_steps,
                disable_ramdisk,
            } => flows::clean::start_manual(task, clean_steps, disable_ramdisk).await,
            ProvisionAction::Adopt => flows::deploy::start_adopt(task).await,
            ProvisionAction::Rescue { password } => {
                flows::rescue::start_rescue(task, password).await
            }
            ProvisionAction::Unrescue => flows::rescue::start_unrescue(task).await,
            ProvisionAction::Unhold => flows::abort::start_unhold(task).await,
            ProvisionAction::Service {
                service_steps,
                disable_ramdisk,
            } => flows::service::start(task, service_steps, disable_ramdisk).await,
        }
    }
}
