//! Vendor passthru on nodes (`/v1/nodes/{node}/vendor_passthru`) and on
//! drivers (`/v1/drivers/{driver}/vendor_passthru`): the methods listed,
//! and called by `?method=` or as the last path segment, with any HTTP
//! method; 200 with the result for synchronous methods, 202 for the rest.

use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ferric_conductor::{PassthruAnswer, PassthruCall};
use ferric_core::Ident;
use ferric_drivers::PassthruMethod;
use serde_json::{json, Map, Value};

use crate::context::{Ctx, JsonBody, Params};
use crate::error::{ApiError, ApiResult};
use crate::nodes::{json_text, load};
use crate::AppState;

/// `{name: {http_methods, async, description, attach[, require_exclusive_lock]}}`.
fn methods_json(methods: &[PassthruMethod], node_level: bool) -> Value {
    let mut out = Map::new();
    for m in methods {
        let mut meta = json!({
            "http_methods": m.http_methods,
            "async": m.is_async,
            "description": m.description,
            "attach": m.attach,
        });
        if node_level {
            meta["require_exclusive_lock"] = json!(m.require_exclusive_lock);
        }
        out.insert(m.name.to_owned(), meta);
    }
    Value::Object(out)
}

fn answer(a: PassthruAnswer) -> ApiResult<Response> {
    if a.is_async {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    if a.attach {
        let bytes = match a.value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response());
    }
    let body = serde_json::to_string(&a.value).map_err(|_| ApiError::internal())?;
    Ok(json_text(StatusCode::OK, body))
}

/// The call a request makes: the method named in the path or the query,
/// and the body's object as its arguments.
fn passthru_call(
    http: &Method,
    in_path: Option<String>,
    mut p: Params,
    body: Value,
) -> ApiResult<PassthruCall> {
    let in_query = p.take("method");
    p.finish()?;
    let Some(method) = in_path.or(in_query) else {
        return Err(ApiError::bad_request("Missing mandatory parameter: method"));
    };
    if method.is_empty() {
        return Err(ApiError::bad_request("Method not specified"));
    }
    let args = match body {
        Value::Object(obj) => obj,
        Value::Null => Map::new(),
        other => {
            return Err(ApiError::bad_request(format!(
                "Expected types <class 'dict'> for data: {}",
                ferric_core::python_repr(&other)
            )))
        }
    };
    Ok(PassthruCall {
        method,
        http_method: http.as_str().to_ascii_uppercase(),
        args,
    })
}

pub async fn node_methods(
    State(app): State<AppState>,
    ctx: Ctx,
    Path(raw): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    let node = load(&app, &ctx, &raw).await?;
    let methods = app
        .conductor
        .node_passthru_methods(&Ident::Uuid(node.uuid))
        .await?;
    Ok(axum::Json(methods_json(&methods, true)).into_response())
}

pub async fn node_call(
    State(app): State<AppState>,
    ctx: Ctx,
    http: Method,
    Path(raw): Path<String>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    node_passthru(app, ctx, http, raw, None, p, body).await
}

pub async fn node_call_named(
    State(app): State<AppState>,
    ctx: Ctx,
    http: Method,
    Path((raw, method)): Path<(String, String)>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    node_passthru(app, ctx, http, raw, Some(method), p, body).await
}

/// `/vendor_passthru/methods` with another HTTP method than GET is a call
/// of a method named `methods`, as in Ironic.
pub async fn node_call_methods(
    State(app): State<AppState>,
    ctx: Ctx,
    http: Method,
    Path(raw): Path<String>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    node_passthru(app, ctx, http, raw, Some("methods".into()), p, body).await
}

async fn node_passthru(
    app: AppState,
    ctx: Ctx,
    http: Method,
    raw: String,
    method: Option<String>,
    p: Params,
    body: Value,
) -> ApiResult<Response> {
    let node = load(&app, &ctx, &raw).await?;
    let call = passthru_call(&http, method, p, body)?;
    let a = app
        .conductor
        .vendor_passthru(&Ident::Uuid(node.uuid), call)
        .await?;
    answer(a)
}

pub async fn driver_methods(
    State(app): State<AppState>,
    Path(name): Path<String>,
    p: Params,
) -> ApiResult<Response> {
    p.finish()?;
    crate::drivers::find_hosted(&app, &name)?;
    let methods = app.conductor.driver_passthru_methods(&name)?;
    Ok(axum::Json(methods_json(&methods, false)).into_response())
}

pub async fn driver_call(
    State(app): State<AppState>,
    http: Method,
    Path(name): Path<String>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    driver_passthru(app, http, name, None, p, body).await
}

pub async fn driver_call_named(
    State(app): State<AppState>,
    http: Method,
    Path((name, method)): Path<(String, String)>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    driver_passthru(app, http, name, Some(method), p, body).await
}

/// As [`node_call_methods`], for a driver.
pub async fn driver_call_methods(
    State(app): State<AppState>,
    http: Method,
    Path(name): Path<String>,
    p: Params,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    driver_passthru(app, http, name, Some("methods".into()), p, body).await
}

async fn driver_passthru(
    app: AppState,
    http: Method,
    name: String,
    method: Option<String>,
    p: Params,
    body: Value,
) -> ApiResult<Response> {
    let call = passthru_call(&http, method, p, body)?;
    crate::drivers::find_hosted(&app, &name)?;
    answer(app.conductor.driver_vendor_passthru(&name, call).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_list_as_ironic_shows_them() {
        let m = PassthruMethod {
            name: "m",
            http_methods: &["POST"],
            is_async: false,
            description: "d",
            attach: false,
            require_exclusive_lock: true,
        };
        assert_eq!(
            serde_json::to_string(&methods_json(&[m], true)).unwrap(),
            r#"{"m":{"http_methods":["POST"],"async":false,"description":"d","attach":false,"require_exclusive_lock":true}}"#
        );
        assert_eq!(methods_json(&[m], false)["m"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn a_call_needs_a_method() {
        let err = passthru_call(&Method::POST, None, Params::default(), json!({})).unwrap_err();
        assert_eq!(err.message, "Missing mandatory parameter: method");
        let err = passthru_call(
            &Method::POST,
            Some(String::new()),
            Params::default(),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.message, "Method not specified");
        let call = passthru_call(
            &Method::PUT,
            Some("x".into()),
            Params::default(),
            Value::Null,
        )
        .unwrap();
        assert_eq!(
            (call.method.as_str(), call.http_method.as_str()),
            ("x", "PUT")
        );
    }
}
