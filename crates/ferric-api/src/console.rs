//! `/v1/nodes/{node}/states/console`: the node's console, shown and
//! switched on or off (Ironic's NodeConsoleController).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::Ident;
use serde_json::{json, Value};

use crate::context::{parse_bool, Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::load;
use crate::AppState;

pub async fn show(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let info = app
        .conductor
        .get_console_information(&Ident::Uuid(node.uuid))
        .await?;
    Ok(Json(json!({"console_enabled": info.is_some(), "console_info": info})).into_response())
}

pub async fn set(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let enabled = enabled_of(body)?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .set_console_mode(&Ident::Uuid(node.uuid), enabled)
        .await?;
    let location = format!("{}/v1/nodes/{raw}/states/console", ctx.base);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response())
}

/// `{"enabled": <boolean>}`; the value may also be one of oslo's boolean
/// strings, as Ironic accepts.
fn enabled_of(body: Value) -> ApiResult<bool> {
    let Value::Object(mut obj) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object"));
    };
    let value = obj.remove("enabled");
    if let Some(extra) = obj.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unexpected arguments: {extra}"
        )));
    }
    match value {
        None | Some(Value::Null) => Err(ApiError::bad_request(
            "Missing mandatory parameter: enabled",
        )),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::String(s)) => parse_bool("enabled", &s),
        Some(other) => parse_bool("enabled", &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_takes_booleans_and_their_strings() {
        assert_eq!(enabled_of(json!({"enabled": true})), Ok(true));
        assert_eq!(enabled_of(json!({"enabled": "off"})), Ok(false));
        assert_eq!(enabled_of(json!({"enabled": 1})), Ok(true));
        assert_eq!(
            enabled_of(json!({})).unwrap_err().message,
            "Missing mandatory parameter: enabled"
        );
        assert!(enabled_of(json!({"enabled": "maybe"}))
            .unwrap_err()
            .message
            .starts_with("Invalid enabled: Unrecognized value 'maybe'"));
        assert_eq!(
            enabled_of(json!({"enabled": true, "x": 1}))
                .unwrap_err()
                .message,
            "Unexpected arguments: x"
        );
    }
}
