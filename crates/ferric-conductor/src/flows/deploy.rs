//! Deploying: available (or deploy failed, active, error for rebuild)
//! → deploying → active, running deploy steps.

use ferric_core::{Event, JsonObject};
use serde_json::{json, Value};

use super::steps::{self, StepKind, StepsEnd};
use crate::error::{ConductorError, Result};
use crate::task::Task;
use ferric_core::InterfaceKind;

/// What a deploy request carries.
pub(crate) struct DeployRequest {
    pub(crate) rebuild: bool,
    pub(crate) configdrive: Option<Value>,
    pub(crate) deploy_steps: Vec<JsonObject>,
}

pub(crate) async fn start(mut task: Task, req: DeployRequest) -> Result<()> {
    if let Err(e) = check(&mut task, &req).await {
        return super::refuse(task, e).await;
    }
    let (event, rebuild) = if req.rebuild {
        (Event::Rebuild, true)
    } else {
        (Event::Deploy, false)
    };
    let prepare = move |t: &mut Task| {
        if !rebuild {
            adopt_instance_project_as_lessee(t);
        }
    };
    super::begin(task, event, None, "deploy", prepare, |t| run(t, req)).await
}

async fn check(task: &mut Task, req: &DeployRequest) -> Result<()> {
    let uuid = task.node.uuid.to_string();
    if task.node.maintenance {
        return Err(ConductorError::NodeInMaintenance {
            op: "provisioning",
            node: uuid,
        });
    }
    if req.rebuild && task.node.protected {
        return Err(ConductorError::NodeProtected(uuid));
    }
    let driver = task.driver()?;
    let prefix = format!("Failed to validate deploy or power info for node {uuid}: ");
    task.validate(InterfaceKind::Power)
        .await
        .map_err(|e| super::invalid(&prefix, e))?;
    task.validate(InterfaceKind::Deploy)
        .await
        .map_err(|e| super::invalid(&prefix, e))?;
    check_instance_traits(task).map_err(|e| ConductorError::Invalid(format!("{prefix}{e}")))?;
    let templates = TemplateSteps::of(task).await?;
    validated_template_steps(&driver, &task.node, &templates, steps::Missing::Skip)
        .map_err(|e| ConductorError::Invalid(format!("{prefix}{e}")))?;
    // Steps the driver lacks are refused now, not after the 202.
    plan_steps(
        &driver,
        &task.node,
        &req.deploy_steps,
        &templates,
        steps::Missing::Skip,
    )
    .map(drop)
    .map_err(ConductorError::Invalid)
}

/// The deploy steps of the deploy templates named by the node's instance
/// traits (Ironic's `_get_deployment_templates`), read afresh at each
/// planning: a template may change between the request and the plan.
#[derive(Debug, Default)]
pub(crate) struct TemplateSteps {
    names: Vec<String>,
    steps: Vec<JsonObject>,
}

impl TemplateSteps {
    pub(crate) async fn of(task: &Task) -> Result<TemplateSteps> {
        let traits: Vec<String> = task
            .node
            .instance_info
            .get("traits")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if traits.is_empty() {
            return Ok(TemplateSteps::default());
        }
        let templates = task
            .inner
            .store
            .list_deploy_templates_by_names(&traits)
            .await?;
        Ok(TemplateSteps {
            names: templates.iter().map(|t| t.name.clone()).collect(),
            steps: templates
                .iter()
                .flat_map(|t| t.steps.iter().map(|s| s.to_json()))
                .collect(),
        })
    }
}

/// The templates' steps checked against what the driver offers, as the
/// user's are; an interface and step may come from one template only.
fn validated_template_steps(
    driver: &ferric_drivers::Driver,
    node: &ferric_core::Node,
    templates: &TemplateSteps,
    missing: steps::Missing,
) -> Result<Vec<JsonObject>, String> {
    if templates.steps.is_empty() {
        return Ok(Vec::new());
    }
    let prefix = format!(
        "Validation of deploy steps from deploy templates matching this node's instance traits failed. \
         Matching deploy templates: {}. Errors: ",
        templates.names.join(",")
    );
    let validated =
        steps::check_user_steps(driver, node, StepKind::Deploy, &templates.steps, missing)
            .map_err(|e| format!("{prefix}{e}"))?;
    let mut errors: Vec<String> = validated.iter().filter_map(core_step_override).collect();
    let ids: Vec<String> = validated.iter().map(step_id).collect();
    let mut dups: Vec<&str> = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) && !dups.contains(&id.as_str()) {
            dups.push(id);
        }
    }
    if !dups.is_empty() {
        errors.push(format!(
            "deploy steps from all deploy templates matching this node's instance traits cannot have the same \
             interface and step. Duplicate deploy steps for {}",
            dups.join(", ")
        ));
    }
    if errors.is_empty() {
        Ok(validated)
    } else {
        Err(format!("{prefix}{}", errors.join("; ")))
    }
}

/// Ironic's step id, `interface.step`.
fn step_id(step: &JsonObject) -> String {
    let text = |k: &str| step.get(k).and_then(Value::as_str).unwrap_or("");
    format!("{}.{}", text("interface"), text("step"))
}

/// The core step (`deploy.deploy`) may only be turned off, not moved.
fn core_step_override(step: &JsonObject) -> Option<String> {
    let is_core = step.get("interface") == Some(&json!("deploy"))
        && step.get("step") == Some(&json!("deploy"));
    let raises = step.get("priority").and_then(Value::as_i64).unwrap_or(0) > 0;
    (is_core && raises).then(|| {
        "deploy step deploy on interface deploy is a core step and cannot be overridden by user steps. It \
         may be disabled by setting the priority to 0"
            .to_owned()
    })
}

/// `instance_info.traits` must be a list of traits the node has.
fn check_instance_traits(task: &Task) -> Result<(), String> {
    let Some(wanted) = task.node.instance_info.get("traits") else {
        return Ok(());
    };
    let uuid = task.node.uuid;
    let wanted: Vec<&str> = wanted
        .as_array()
        .and_then(|a| a.iter().map(Value::as_str).collect())
        .ok_or_else(|| {
            format!("Error parsing traits from Node {uuid} instance_info field. A list of strings is expected.")
        })?;
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|t| !task.node.traits.iter().any(|have| have == t))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Cannot specify instance traits that are not also set on the node. Node {uuid} is missing traits {}",
            missing.join(", ")
        ))
    }
}

/// Ironic's automatic lessee: the instance's project leases the node
/// while it is deployed.
fn adopt_instance_project_as_lessee(task: &mut Task) {
    let project = task
        .node
        .instance_info
        .get("project_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(project), None) = (project, &task.node.lessee) {
        task.node.lessee = Some(project);
        task.set_internal("automatic_lessee", json!(true));
    }
}

async fn run(mut task: Task, req: DeployRequest) -> Result<()> {
    super::wipe_deploy_info(&mut task);
    if let Some(configdrive) = req.configdrive {
        match stored_configdrive(&task, configdrive) {
            Ok(value) => {
                task.node.instance_info.insert("configdrive".into(), value);
            }
            Err(msg) => return fail(task, msg).await,
        }
    }
    let driver = task.driver()?;
    if let Err(e) = task
        .call("deploy.prepare", |d, t| d.deploy.prepare(t))
        .await
    {
        return fail(task, format!("Failed to prepare to deploy: {e}")).await;
    }
    let templates = TemplateSteps::of(&task).await?;
    let planned = plan_steps(
        &driver,
        &task.node,
        &req.deploy_steps,
        &templates,
        steps::Missing::Skip,
    );
    let steps = match planned {
        Ok(s) => s,
        Err(e) => return fail(task, e).await,
    };
    task.set_internal(
        "user_deploy_steps",
        Value::Array(req.deploy_steps.into_iter().map(Value::Object).collect()),
    );
    steps::store(&mut task, StepKind::Deploy, steps);
    continue_from(task, 0).await
}

/// A config drive given as a dict becomes the ISO image Ironic builds from
/// it, gzipped and base64-encoded; a string (a URL, or an image already
/// encoded) is kept as it is.
fn stored_configdrive(task: &Task, configdrive: Value) -> Result<Value, String> {
    if !configdrive.is_object() {
        return Ok(configdrive);
    }
    let built = ferric_image::configdrive::build_configdrive(
        &configdrive,
        &task.node.uuid.to_string(),
        task.node.name.as_deref(),
        task.now().timestamp(),
    )
    .map_err(|e| {
        format!(
            "Failed to build the config drive for node {}: {e}",
            task.node.uuid
        )
    })?;
    Ok(Value::String(built))
}

/// The driver's deploy steps, overridden by the user's and then by the
/// deploy templates' (Ironic's `_get_all_deployment_steps`): a step with
/// the same interface and name replaces the driver's priority and args;
/// priority 0 turns it off. A user's step wins over a template's.
/// Until the agent is up, steps it alone may offer are left out
/// (`Missing::Skip`); the plan is made again, strictly, once it is.
fn plan_steps(
    driver: &ferric_drivers::Driver,
    node: &ferric_core::Node,
    user: &[JsonObject],
    templates: &TemplateSteps,
    missing: steps::Missing,
) -> Result<Vec<JsonObject>, String> {
    let validated = steps::check_user_steps(driver, node, StepKind::Deploy, user, missing)
        .map_err(|e| format!("Cannot get deploy steps; failed to deploy: {e}"))?;
    let key = |s: &JsonObject| (s.get("interface").cloned(), s.get("step").cloned());
    for u in &validated {
        let is_core =
            u.get("interface") == Some(&json!("deploy")) && u.get("step") == Some(&json!("deploy"));
        let raises = u.get("priority").and_then(Value::as_i64).unwrap_or(0) > 0;
        if is_core && raises && user.iter().any(|orig| orig.get("priority").is_some()) {
            return Err("deploy step deploy on interface deploy is a core step and cannot be overridden by user \
                 steps. It may be disabled by setting the priority to 0"
                .into());
        }
    }
    let mut validated = validated;
    let from_templates = validated_template_steps(driver, node, templates, missing)?;
    let overridden: Vec<_> = validated.iter().map(key).collect();
    validated.extend(
        from_templates
            .into_iter()
            .filter(|t| !overridden.contains(&key(t))),
    );
    let mut plan: Vec<JsonObject> = steps::automated_steps(driver, node, StepKind::Deploy)
        .into_iter()
        .filter(|d| !validated.iter().any(|u| key(u) == key(d)))
        .collect();
    plan.extend(validated.into_iter().filter(|u| {
        let name = u.get("step").and_then(Value::as_str).unwrap_or("");
        steps::RESERVED_STEPS.contains(&name)
            || u.get("priority").and_then(Value::as_i64).unwrap_or(0) > 0
    }));
    steps::sort_steps(&mut plan);
    if plan.is_empty() {
        return Err("No deploy steps returned by the driver".into());
    }
    Ok(plan)
}

/// Runs the stored deploy steps from `start` to the end, a wait, a hold or
/// a failure.
pub(crate) async fn continue_from(mut task: Task, start: usize) -> Result<()> {
    match steps::run_steps(&mut task, StepKind::Deploy, start).await? {
        StepsEnd::Done => finish(task).await,
        StepsEnd::Failed(msg) => fail(task, msg).await,
        parked => steps::park(task, &parked).await,
    }
}

async fn finish(mut task: Task) -> Result<()> {
    task.node.deploy_step.clear();
    super::wipe_deploy_info(&mut task);
    task.fire(Event::Done, None)?;
    let inner = task.inner.clone();
    let node = task.release().await?;
    inner
        .record_history(
            &node,
            ferric_core::Severity::Info,
            "deploying",
            "Deploy done: the node is active",
        )
        .await;
    Ok(())
}

/// Ironic's deploying error handler.
pub(crate) async fn fail(mut task: Task, msg: String) -> Result<()> {
    tracing::warn!(node = %task.node.uuid, error = %msg, "deploy failed");
    let mut msg = msg;
    if task.driver().is_ok() {
        if let Err(e) = task
            .call("deploy.clean_up", |d, t| d.deploy.clean_up(t))
            .await
        {
            msg.push_str(&format!(". Also failed to clean up due to: {e}"));
        }
    }
    task.node.deploy_step.clear();
    task.node.last_error = Some(msg);
    super::wipe_deploy_info(&mut task);
    task.fire(Event::Fail, None)?;
    task.release().await?;
    Ok(())
}

/// `adopt`: manageable → adopting → active, taking over a node someone
/// deployed outside Ferric.
pub(crate) async fn start_adopt(task: Task) -> Result<()> {
    super::begin(task, Event::Adopt, None, "adopt", |_| {}, adopt).await
}

async fn adopt(mut task: Task) -> Result<()> {
    task.driver()?;
    let mut result = task
        .call("deploy.prepare", |d, t| d.deploy.prepare(t))
        .await;
    if result.is_ok() {
        result = task
            .call("deploy.take_over", |d, t| d.deploy.take_over(t))
            .await;
    }
    match result {
        Ok(()) => task.fire(Event::Done, None)?,
        Err(e) => {
            task.node.power_state = None;
            task.node.last_error = Some(format!(
                "Error while attempting to adopt node {}: {e}.",
                task.node.uuid
            ));
            task.fire(Event::Fail, None)?;
        }
    }
    task.release().await?;
    Ok(())
}

/// Plans the deploy steps again once the agent is up and has said which
/// steps it offers (the user's steps are checked against those too), and
/// keeps the place of the step under way.
pub(crate) async fn replan(task: &mut Task) -> Result<(), String> {
    let driver = task.driver().map_err(|e| e.to_string())?;
    let templates = TemplateSteps::of(task).await.map_err(|e| e.to_string())?;
    let user: Vec<JsonObject> = task
        .internal("user_deploy_steps")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default();
    let plan = plan_steps(
        &driver,
        &task.node,
        &user,
        &templates,
        steps::Missing::Refuse,
    )
    .map_err(|e| {
        format!(
            "Failed to validate the final deploy steps list for node {}: {e}",
            task.node.uuid
        )
    })?;
    let same = |s: &JsonObject| {
        s.get("interface") == task.node.deploy_step.get("interface")
            && s.get("step") == task.node.deploy_step.get("step")
    };
    let index = plan.iter().position(same).ok_or_else(|| {
        format!(
            "Failed to validate the final deploy steps list for node {}: the step under way, {}, is no longer in it",
            task.node.uuid,
            ferric_core::step_repr(&task.node.deploy_step)
        )
    })?;
    task.set_internal(
        StepKind::Deploy.list_key(),
        Value::Array(plan.into_iter().map(Value::Object).collect()),
    );
    task.set_internal(StepKind::Deploy.index_key(), json!(index));
    task.set_internal("steps_validated", json!(true));
    Ok(())
}
