//! `/v1/nodes/{node}/states/console`: the node's console, shown and
//! switched on or off (Ironic's NodeConsoleController).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ferric_core::Ident;
use serde_json::{json, Map, Value};

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
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let enabled = enabled_of(body, p)?;
    let node = load(&app, &ctx, &raw).await?;
    app.conductor
        .set_console_mode(&Ident::Uuid(node.uuid), enabled)
        .await?;
    let location = format!("{}/v1/nodes/{raw}/states/console", ctx.base);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response())
}

/// `enabled` (a boolean, or one of oslo's boolean strings) from the body's
/// object or the query, as Ironic's framework merges both into the
/// handler's arguments; a body that is no object adds none.
fn enabled_of(body: Value, mut p: Params) -> ApiResult<bool> {
    let mut obj = match body {
        Value::Object(obj) => obj,
        _ => Map::new(),
    };
    let in_body = obj.remove("enabled");
    let in_query = p.take("enabled");
    if let Some(extra) = obj.keys().next() {
        return Err(ApiError::bad_request(format!(
            "Unexpected arguments: {extra}"
        )));
    }
    p.finish()?;
    let value = match (in_query, in_body) {
        (Some(q), Some(b)) => {
            // Given twice, the argument is the list of both.
            let both = Value::Array(vec![Value::String(q), b]);
            return parse_bool("enabled", &ferric_core::python_repr(&both));
        }
        (Some(q), None) => Value::String(q),
        (None, Some(b)) => b,
        (None, None) => Value::Null,
    };
    match value {
        Value::Null => Err(ApiError::bad_request(
            "Missing mandatory parameter: enabled",
        )),
        Value::Bool(b) => Ok(b),
        Value::String(s) => parse_bool("enabled", &s),
        other => parse_bool("enabled", &other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Params {
        let pairs = q
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Params::from_pairs(pairs)
    }

    #[test]
    fn enabled_takes_booleans_and_their_strings() {
        let of = |body: Value| enabled_of(body, Params::default());
        assert_eq!(of(json!({"enabled": true})), Ok(true));
        assert_eq!(of(json!({"enabled": "off"})), Ok(false));
        assert_eq!(of(json!({"enabled": 1})), Ok(true));
        assert_eq!(
            of(json!({})).unwrap_err().message,
            "Missing mandatory parameter: enabled"
        );
        assert!(of(json!({"enabled": "maybe"}))
            .unwrap_err()
            .message
            .starts_with("Invalid enabled: Unrecognized value 'maybe'"));
        assert_eq!(
            of(json!({"enabled": true, "x": 1})).unwrap_err().message,
            "Unexpected arguments: x"
        );
        assert_eq!(
            of(json!([1])).unwrap_err().message,
            "Missing mandatory parameter: enabled"
        );
    }

    /// As Ironic's: the query's arguments count as the body's do.
    #[test]
    fn enabled_may_come_in_the_query() {
        assert_eq!(enabled_of(json!({}), query("enabled=false")), Ok(false));
        assert_eq!(enabled_of(json!([1]), query("enabled=yes")), Ok(true));
        assert_eq!(
            enabled_of(json!({"enabled": true}), query("foo=1"))
                .unwrap_err()
                .message,
            "Unexpected arguments: foo"
        );
        assert!(enabled_of(json!({"enabled": true}), query("enabled=false"))
            .unwrap_err()
            .message
            .starts_with("Invalid enabled: Unrecognized value '['false', True]'"));
    }
}
