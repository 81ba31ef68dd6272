//! Vendor passthru: a node's or a driver's vendor methods, listed and
//! called (Ironic's `vendor_passthru` and `driver_vendor_passthru`).

use std::sync::Arc;

use ferric_core::{Ident, JsonObject, Node, NodeIdent};
use ferric_drivers::{bounded, DriverError, PassthruMethod, VendorInterface};
use serde_json::Value;

use crate::error::{ConductorError, Result};
use crate::task::call_unlocked;
use crate::{Conductor, Inner};

/// A passthru call's result: the method's return value, or nothing yet
/// for a method that runs on a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct PassthruAnswer {
    pub value: Value,
    pub is_async: bool,
    pub attach: bool,
}

/// A call to a vendor method.
#[derive(Debug, Clone)]
pub struct PassthruCall {
    pub method: String,
    pub http_method: String,
    pub args: JsonObject,
}

/// The route named by the call, if it answers the call's HTTP method.
fn route(methods: Vec<PassthruMethod>, call: &PassthruCall) -> Result<PassthruMethod> {
    let route = methods
        .into_iter()
        .find(|m| m.name == call.method)
        .ok_or_else(|| ConductorError::Invalid(format!("No handler for method {}", call.method)))?;
    if !route.http_methods.contains(&call.http_method.as_str()) {
        return Err(ConductorError::Invalid(format!(
            "The method {} does not support HTTP {}",
            call.method, call.http_method
        )));
    }
    Ok(route)
}

impl Conductor {
    /// The node's vendor methods.
    pub async fn node_passthru_methods(&self, ident: &NodeIdent) -> Result<Vec<PassthruMethod>> {
        let node = self.inner.store.get_node(ident).await?;
        Ok(self
            .inner
            .registry
            .compose(&node)?
            .vendor
            .passthru_methods())
    }

    /// The vendor methods of a hardware type's default vendor interface.
    pub fn driver_passthru_methods(&self, driver: &str) -> Result<Vec<PassthruMethod>> {
        Ok(self.default_vendor(driver)?.driver_passthru_methods())
    }

    fn default_vendor(&self, driver: &str) -> Result<Arc<dyn VendorInterface>> {
        let registry = &self.inner.registry;
        Ok(registry.default_vendor(registry.hardware_type(driver)?)?)
    }

    /// Calls one of the node's vendor methods: validated at once, then run
    /// at once (synchronous methods) or on a worker.
    pub async fn vendor_passthru(
        &self,
        ident: &NodeIdent,
        call: PassthruCall,
    ) -> Result<PassthruAnswer> {
        let node = self.inner.store.get_node(ident).await?;
        let route = route(
            self.inner
                .registry
                .compose(&node)?
                .vendor
                .passthru_methods(),
            &call,
        )?;
        let answer = PassthruAnswer {
            value: Value::Null,
            is_async: route.is_async,
            attach: route.attach,
        };
        if route.require_exclusive_lock {
            locked_passthru(&self.inner, node, call, answer).await
        } else {
            unlocked_passthru(&self.inner, node, call, answer).await
        }
    }

    /// Calls a driver-level vendor method of a hardware type's default
    /// vendor interface.
    pub async fn driver_vendor_passthru(
        &self,
        driver: &str,
        call: PassthruCall,
    ) -> Result<PassthruAnswer> {
        let vendor = self.default_vendor(driver)?;
        let route = route(vendor.driver_passthru_methods(), &call)?;
        let fail = |e| ConductorError::from_driver(driver, e);
        vendor
            .validate_driver_passthru(&call.method, &call.args)
            .await
            .map_err(fail)?;
        let deadline = tokio::time::Instant::now() + self.inner.call_timeout();
        let run = async move {
            let op = format!("vendor.{}", call.method);
            bounded(
                deadline,
                &op,
                vendor.driver_passthru(&call.method, &call.http_method, &call.args),
            )
            .await
        };
        let mut answer = PassthruAnswer {
            value: Value::Null,
            is_async: route.is_async,
            attach: route.attach,
        };
        if route.is_async {
            let slot = self.inner.worker_slot()?;
            self.inner
                .spawn_flow(slot, "driver vendor passthru", async move {
                    if let Err(e) = run.await {
                        tracing::error!(error = %e.chain(), "driver vendor passthru failed");
                    }
                    Ok(())
                });
        } else {
            answer.value = run.await.map_err(fail)?;
        }
        Ok(answer)
    }
}

/// Validates and runs `call` under the node's lock, which an asynchronous
/// method keeps until it ends.
async fn locked_passthru(
    inner: &Arc<Inner>,
    node: Node,
    call: PassthruCall,
    mut answer: PassthruAnswer,
) -> Result<PassthruAnswer> {
    let mut task = inner.lock(&Ident::Uuid(node.uuid)).await?;
    let fail = {
        let driver = task.node.driver.clone();
        move |e| ConductorError::from_driver(&driver, e)
    };
    let (method, args) = (call.method.clone(), call.args.clone());
    let validated = task
        .call("vendor.validate", move |d, t| {
            Box::pin(async move { d.vendor.validate_passthru(t, &method, &args).await })
        })
        .await;
    if let Err(e) = validated {
        return crate::flows::refuse(task, fail(e)).await;
    }
    let op = format!("vendor.{}", call.method);
    if answer.is_async {
        let slot = match inner.worker_slot() {
            Ok(s) => s,
            Err(e) => return crate::flows::refuse(task, e).await,
        };
        inner.spawn_flow(slot, "vendor passthru", async move {
            if let Err(e) = task.call(&op, move |d, t| run_passthru(d, t, call)).await {
                log_failure(&task.node, &op, &e);
            }
            task.release().await?;
            Ok(())
        });
        return Ok(answer);
    }
    let result = task.call(&op, move |d, t| run_passthru(d, t, call)).await;
    task.release().await?;
    answer.value = result.map_err(fail)?;
    Ok(answer)
}

/// Validates and runs `call` without taking the node's lock; nothing it
/// does to the node is stored.
async fn unlocked_passthru(
    inner: &Arc<Inner>,
    mut node: Node,
    call: PassthruCall,
    mut answer: PassthruAnswer,
) -> Result<PassthruAnswer> {
    let driver = node.driver.clone();
    let fail = move |e| ConductorError::from_driver(&driver, e);
    let mut ports = Vec::new();
    let (method, args) = (call.method.clone(), call.args.clone());
    call_unlocked(
        inner,
        &mut node,
        &mut ports,
        "vendor.validate",
        move |d, t| Box::pin(async move { d.vendor.validate_passthru(t, &method, &args).await }),
    )
    .await
    .map_err(&fail)?;
    let op = format!("vendor.{}", call.method);
    if answer.is_async {
        let slot = inner.worker_slot()?;
        let worker = inner.clone();
        inner.spawn_flow(slot, "vendor passthru", async move {
            let ran = call_unlocked(&worker, &mut node, &mut ports, &op, move |d, t| {
                run_passthru(d, t, call)
            })
            .await;
            if let Err(e) = ran {
                log_failure(&node, &op, &e);
            }
            Ok(())
        });
        return Ok(answer);
    }
    answer.value = call_unlocked(inner, &mut node, &mut ports, &op, move |d, t| {
        run_passthru(d, t, call)
    })
    .await
    .map_err(fail)?;
    Ok(answer)
}

fn run_passthru<'t>(
    d: &'t ferric_drivers::Driver,
    t: &'t mut ferric_drivers::Task<'t>,
    call: PassthruCall,
) -> crate::task::DriverCall<'t, Value> {
    Box::pin(async move {
        d.vendor
            .passthru(t, &call.method, &call.http_method, &call.args)
            .await
    })
}

/// An asynchronous method has no one to answer: its failure is logged, as
/// Ironic's passthru wrapper does.
fn log_failure(node: &Node, op: &str, e: &DriverError) {
    tracing::error!(node = %node.uuid, error = %e.chain(), "vendor_passthru failed with method {op}");
}
