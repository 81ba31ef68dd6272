//! Vendor passthru: methods a vendor interface offers beyond Ironic's
//! standard interfaces, called through `/vendor_passthru` on a node or on
//! a driver.

use async_trait::async_trait;
use ferric_core::JsonObject;
use serde_json::Value;

use crate::error::DriverError;
use crate::interface::{Interface, Task};

/// One passthru method and how it is called (Ironic's `@passthru`
/// metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassthruMethod {
    pub name: &'static str,
    /// Upper-case HTTP methods it answers to.
    pub http_methods: &'static [&'static str],
    /// Runs on a worker after the request is answered with 202.
    pub is_async: bool,
    pub description: &'static str,
    /// The return value is sent as the raw body rather than as JSON.
    pub attach: bool,
    /// The node is locked while the method validates and runs.
    pub require_exclusive_lock: bool,
}

#[async_trait]
pub trait VendorInterface: Interface {
    /// Methods called on a node, in Ironic's order (by name).
    fn passthru_methods(&self) -> Vec<PassthruMethod> {
        Vec::new()
    }

    /// Methods called on the driver, without a node.
    fn driver_passthru_methods(&self) -> Vec<PassthruMethod> {
        Vec::new()
    }

    /// Checks a node method's arguments before it runs.
    async fn validate_passthru(
        &self,
        _task: &Task<'_>,
        _method: &str,
        _args: &JsonObject,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    /// Runs a node method; what it returns is the answer's body when the
    /// method is synchronous.
    async fn passthru(
        &self,
        _task: &mut Task<'_>,
        method: &str,
        _http_method: &str,
        _args: &JsonObject,
    ) -> Result<Value, DriverError> {
        Err(no_handler(method))
    }

    /// Checks a driver method's arguments before it runs.
    async fn validate_driver_passthru(
        &self,
        _method: &str,
        _args: &JsonObject,
    ) -> Result<(), DriverError> {
        Ok(())
    }

    async fn driver_passthru(
        &self,
        method: &str,
        _http_method: &str,
        _args: &JsonObject,
    ) -> Result<Value, DriverError> {
        Err(no_handler(method))
    }
}

/// Ironic's answer for a method the interface does not have.
pub fn no_handler(method: &str) -> DriverError {
    DriverError::InvalidParameter(format!("No handler for method {method}"))
}

/// Python's truth of a JSON value: null, false, 0, "" and empty
/// containers are false.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}
