//! Version discovery: `GET /` and `GET /v1`.

use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::context::Ctx;
use crate::version::{at, MAX, MIN};

fn version_object(ctx: &Ctx) -> Value {
    json!({
        "id": "v1",
        "links": [{"href": format!("{}/v1/", ctx.base), "rel": "self"}],
        "status": "CURRENT",
        "min_version": MIN.to_string(),
        "version": MAX.to_string(),
    })
}

pub async fn root(ctx: Ctx) -> Response {
    Json(json!({
        "name": "OpenStack Ironic API",
        "description": "Ironic is an OpenStack project which enables the provision and management of baremetal machines.",
        "default_version": version_object(&ctx),
        "versions": [version_object(&ctx)],
    }))
    .into_response()
}

/// Resources listed in `/v1`, with the version each appeared in; only
/// those Ferric serves.
const RESOURCES: &[(&str, u32)] = &[
    ("chassis", 1),
    ("nodes", 1),
    ("ports", 1),
    ("drivers", 1),
    ("portgroups", at::PORTGROUPS),
    ("volume", at::VOLUME),
    ("conductors", at::CONDUCTORS),
    ("events", 54),
    ("deploy_templates", 55),
    ("shards", at::NODE_SHARD),
    ("runbooks", crate::runbooks::RUNBOOKS),
    ("inspection_rules", at::INSPECTION_RULES),
];

pub async fn v1(ctx: Ctx) -> Response {
    let link = |name: &str| {
        json!([
            {"href": format!("{}/v1/{name}/", ctx.base), "rel": "self"},
            {"href": format!("{}/{name}/", ctx.base), "rel": "bookmark"},
        ])
    };
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), json!("v1"));
    doc.insert(
        "links".into(),
        json!([
            {"href": format!("{}/v1/", ctx.base), "rel": "self"},
            {"href": "https://docs.openstack.org//ironic/latest/contributor//webapi.html", "rel": "describedby", "type": "text/html"},
        ]),
    );
    doc.insert(
        "media_types".into(),
        json!({"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}),
    );
    for (name, min) in RESOURCES.iter().take(4) {
        if ctx.version.at_least(*min) {
            doc.insert((*name).into(), link(name));
        }
    }
    doc.insert("version".into(), version_object(&ctx));
    for (name, min) in RESOURCES.iter().skip(4) {
        if ctx.version.at_least(*min) {
            doc.insert((*name).into(), link(name));
        }
    }
    Json(Value::Object(doc)).into_response()
}
