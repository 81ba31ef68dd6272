//! `POST /v1/events` (from 1.54): external events (Neutron's port
//! binding), checked against Ironic's schema, logged and otherwise ignored,
//! as Ironic does.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferric_core::jsonschema::{first_error, root_cause, Draft};
use serde_json::{json, Value};

use crate::context::{Ctx, JsonBody};
use crate::error::{ApiError, ApiResult};

const EVENTS: u32 = 54;

/// Ironic's request schema for events (JSON Schema 2020-12).
fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let nullable_uuid = json!({"type": ["string", "null"], "format": "uuid"});
        json!({
            "type": "object",
            "properties": {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "event": {"type": "string", "enum": [
                                "network.bind_port", "network.unbind_port", "network.delete_port"]},
                            "port_id": {"type": "string", "format": "uuid"},
                            "mac_address": {"type": "string", "format": "mac-address"},
                            "status": {"type": "string"},
                            "device_id": nullable_uuid,
                            "binding:host_id": nullable_uuid,
                            "binding:vnic_type": {"type": ["string", "null"]},
                        },
                        "required": ["event", "port_id", "mac_address", "status"],
                        "additionalProperties": false,
                    },
                },
            },
            "required": ["events"],
            "additionalProperties": false,
        })
    })
}

/// Ironic's text for a body its schema refuses.
fn check(body: &Value) -> ApiResult<()> {
    let Some(e) = first_error(schema(), body, Draft::TwentyTwelve) else {
        return Ok(());
    };
    let mut msg = format!("Schema error: {}", e.message);
    if let Some(cause) = root_cause(&e) {
        msg.push_str(&format!(". Possible root cause: {cause}"));
    }
    Err(ApiError::bad_request(msg))
}

pub async fn post(ctx: Ctx, JsonBody(body): JsonBody) -> ApiResult<Response> {
    if !ctx.version.at_least(EVENTS) {
        return Err(ApiError::not_found(
            "The API is not supported for this version",
        ));
    }
    check(&body)?;
    for event in body["events"].as_array().into_iter().flatten() {
        tracing::debug!(
            "Received external event: {}",
            ferric_core::python_repr(event)
        );
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: Value) -> String {
        check(&body).unwrap_err().message
    }

    /// Messages as Ironic (jsonschema 4.26) gives them.
    #[test]
    fn bodies_are_refused_as_ironic_refuses_them() {
        let ok = json!({"event": "network.bind_port", "port_id": "11111111-2222-3333-4444-555555555555",
                        "mac_address": "52:54:00:12:34:56", "status": "ACTIVE"});
        let with = |k: &str, v: Value| {
            let mut e = ok.clone();
            e[k] = v;
            json!({"events": [e]})
        };
        assert_eq!(check(&json!({"events": [ok.clone()]})), Ok(()));
        assert_eq!(
            msg(json!({})),
            "Schema error: 'events' is a required property"
        );
        assert_eq!(
            msg(json!({"events": []})),
            "Schema error: [] should be non-empty"
        );
        assert_eq!(
            msg(json!({"events": "x"})),
            "Schema error: 'x' is not of type 'array'"
        );
        assert_eq!(
            msg(json!({"events": [ok.clone()], "x": 1})),
            "Schema error: Additional properties are not allowed ('x' was unexpected)"
        );
        assert_eq!(
            msg(with("event", json!("network.foo"))),
            "Schema error: 'network.foo' is not one of ['network.bind_port', 'network.unbind_port', 'network.delete_port']"
        );
        assert_eq!(
            msg(with("port_id", json!("abc"))),
            "Schema error: 'abc' is not a 'uuid'"
        );
        assert_eq!(
            msg(with("mac_address", json!("zz"))),
            "Schema error: 'zz' is not a 'mac-address'"
        );
        assert_eq!(
            msg(json!({"events": [{"event": "network.bind_port"}]})),
            "Schema error: 'port_id' is a required property"
        );
        assert_eq!(
            msg(with("device_id", json!(5))),
            "Schema error: 5 is not of type 'string', 'null'"
        );
        assert_eq!(
            msg(json!({"events": [1]})),
            "Schema error: 1 is not of type 'object'"
        );
        assert_eq!(msg(json!([1])), "Schema error: [1] is not of type 'object'");
        assert_eq!(check(&with("device_id", Value::Null)), Ok(()));
    }
}
