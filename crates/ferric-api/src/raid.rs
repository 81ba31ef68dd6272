//! RAID: `PUT /v1/nodes/{node}/states/raid` (the target RAID config, from
//! 1.12) and `GET /v1/drivers/{driver}/raid/logical_disk_properties`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_conductor::ConductorError;
use ferric_core::Ident;
use serde_json::{Map, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::load;
use crate::version::at;
use crate::AppState;

/// RAID is a standard interface some drivers lack: Ironic answers 404.
fn unsupported_is_not_found(e: ConductorError) -> ApiError {
    let unsupported = matches!(e, ConductorError::Unsupported { .. });
    let mut err = ApiError::from(e);
    if unsupported {
        err.status = StatusCode::NOT_FOUND;
    }
    err
}

pub async fn set_target(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    p.finish()?;
    let config = target_config(body)?;
    let node = load(&app, &ctx, &raw).await?;
    ctx.require(at::RAID_CONFIG)?;
    app.conductor
        .set_target_raid_config(&Ident::Uuid(node.uuid), config)
        .await
        .map_err(unsupported_is_not_found)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The body is the config itself, and must be an object; Ironic quotes
/// what it got as Python's `str` does (a string bare).
fn target_config(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(config) => Ok(config),
        other => {
            let got = match &other {
                Value::String(s) => s.clone(),
                v => ferric_core::python_repr(v),
            };
            Err(ApiError::bad_request(format!(
                "Expected types <class 'dict'> for target_raid_config: {got}"
            )))
        }
    }
}

pub async fn logical_disk_properties(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    ctx.require(at::RAID_CONFIG)?;
    crate::drivers::find_hosted(&app, &name)?;
    let props = app
        .conductor
        .raid_logical_disk_properties(&name)
        .map_err(unsupported_is_not_found)?;
    let out: Map<String, Value> = props
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(Json(Value::Object(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_config_that_is_no_object_is_quoted_as_python_prints_it() {
        let refused = |v: Value| target_config(v).unwrap_err().message;
        assert_eq!(
            refused(json!("x")),
            "Expected types <class 'dict'> for target_raid_config: x"
        );
        assert_eq!(
            refused(json!([1, "a"])),
            "Expected types <class 'dict'> for target_raid_config: [1, 'a']"
        );
        assert!(target_config(json!({})).is_ok());
    }
}
